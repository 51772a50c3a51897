/* Probes of backends this build lacks: no devices, no error. */
#include "build_config.h"
#include "fabric_internal.h"

#if !DS_HAVE_OPENCL
ds_status ds__fabric_opencl_probe(struct ds__fabric *fab) {
  (void)fab;
  return DS_OK;
}

ds_status ds__fabric_cl_kernel(ds_context *ctx, int32_t dev, const char *source,
                               const char *name, void **kernel) {
  (void)dev, (void)source, (void)kernel;
  return ds__error(ctx, DS_ERR_UNSUPPORTED, "fabric", "kernel %s: built without OpenCL",
                   name ? name : "(null)");
}
#endif
