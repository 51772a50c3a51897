/* The C side of the CUDA self-test: with CUDA, reports the result of the nvcc-compiled run
 * through the context; without CUDA, says the build has none. */
#include "build_config.h"
#include "cuda_selftest.h"
#include "internal.h"

#if DS_HAVE_CUDA
ds_status ds__cuda_selftest(ds_context *ctx, int device, double *gbps) {
  char msg[256] = "";
  ds_status st = ds__cuda_selftest_run(device, gbps, msg, sizeof msg);
  if (st != DS_OK) return ds__error(ctx, st, "cuda", "self-test on device %d: %s", device, msg);
  if (gbps) ds__log(ctx, DS_LOG_INFO, "cuda", "self-test on device %d: %.1f GB/s", device, *gbps);
  return DS_OK;
}
#else
ds_status ds__cuda_selftest(ds_context *ctx, int device, double *gbps) {
  if (gbps) *gbps = 0.0;
  return ds__error(ctx, DS_ERR_UNSUPPORTED, "cuda", "self-test on device %d: built without CUDA",
                   device);
}
#endif
