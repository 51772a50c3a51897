/* Fabric transfers to and from the first CUDA GPU (run by bench/gpu/check.sh):
 *   h2d / d2h      bandwidth of a buffer over pinned host memory made valid on the GPU (or
 *                  back on the host) through ds_buffer_acquire, against raw cudaMemcpy of the
 *                  same pinned bytes (goal: ratio >= 0.95);
 *   zero_copy_read a one-pass GPU reduction (cublasSasum) over data written by the host:
 *                  mapped pinned memory (DS_BUFFER_MAP_HOST, no copy) against copy-then-compute
 *                  through the fabric (goal: <= 1).
 * Medians of several repetitions. Skips (exit 0) without CUDA or a GPU. */
#include "bench_fabric_common.h"

#if DS_BENCH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

enum { REPS = 11 };

static double raw_once(void *dmem, void *host, size_t size, int to_device) {
  double t0 = bench_now_s();
  if (to_device)
    cudaMemcpy(dmem, host, size, cudaMemcpyHostToDevice);
  else
    cudaMemcpy(host, dmem, size, cudaMemcpyDeviceToHost);
  return bench_now_s() - t0;
}

static void bandwidth_case(ds_context *ctx, int32_t dev, size_t size, int to_device, int json,
                           int *hdr) {
  void *pinned = NULL, *dmem = NULL;
  if (cudaMallocHost(&pinned, size) != cudaSuccess || cudaMalloc(&dmem, size) != cudaSuccess) {
    fprintf(stderr, "bench_fabric_transfer_gpu: CUDA allocation failed\n");
    exit(1);
  }
  memset(pinned, 1, size);
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = DS_BUFFER_NO_ZERO_COPY;
  ds_buffer *b = NULL;
  check(ds_buffer_register(&b, ctx, pinned, size, &o), "register");
  void *mem = NULL;
  check(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_READ), "warm-up");
  check(ds_buffer_release(b, dev), "release");
  raw_once(dmem, pinned, size, 1);
  raw_once(dmem, pinned, size, 0);
  double tf[REPS], tr[REPS];
  for (int i = 0; i < REPS; i++) {
    if (i % 2) tr[i] = raw_once(dmem, pinned, size, to_device);
    tf[i] = fabric_once(b, dev, to_device);
    if (!(i % 2)) tr[i] = raw_once(dmem, pinned, size, to_device);
  }
  char cname[48];
  snprintf(cname, sizeof cname, "%s_%zuMiB", to_device ? "h2d" : "d2h", size >> 20);
  bench_row row = {"fabric_transfer_gpu", cname, "GB/s",
                   (double)size / bench_median(tf, REPS) / 1e9, "cudaMemcpy pinned",
                   (double)size / bench_median(tr, REPS) / 1e9, 0.95, "higher"};
  bench_print(&row, json, hdr);
  check(ds_buffer_destroy(b), "destroy");
  cudaFree(dmem);
  cudaFreeHost(pinned);
}

/* Host writes n floats, the GPU sums them once: seconds per round. */
static double read_once_case(ds_context *ctx, int32_t dev, cublasHandle_t h, size_t n,
                             uint32_t flags) {
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = flags;
  ds_buffer *b = NULL;
  check(ds_buffer_create(&b, ctx, n * sizeof(float), &o), "create");
  double t[REPS];
  for (int i = -1; i < REPS; i++) { /* round -1 warms up (allocation, registration) */
    double t0 = bench_now_s();
    float *hp = NULL, sum = 0;
    void *d = NULL;
    check(ds_buffer_acquire((void **)&hp, b, 0, DS_ACCESS_WRITE), "host write");
    for (size_t j = 0; j < n; j++) hp[j] = 1.0f;
    check(ds_buffer_release(b, 0), "release");
    check(ds_buffer_acquire(&d, b, dev, DS_ACCESS_READ), "device read");
    cublasSasum(h, (int)n, (const float *)d, 1, &sum);
    check(ds_buffer_release(b, dev), "release");
    if (sum != (float)n) {
      fprintf(stderr, "bench_fabric_transfer_gpu: wrong sum %g\n", (double)sum);
      exit(1);
    }
    if (i >= 0) t[i] = bench_now_s() - t0;
  }
  check(ds_buffer_destroy(b), "destroy");
  return bench_median(t, REPS);
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), hdr = 0;
  ds_context *ctx = bench_context("bench_fabric_transfer_gpu", NULL, 0);
  int32_t dev = -1;
  if (ds_fabric_device_find(&dev, ctx, DS_FABRIC_DEVICE_CUDA, 0) != DS_OK) {
    printf("bench_fabric_transfer_gpu: no CUDA device: skipped\n");
    ds_context_destroy(ctx);
    return 0;
  }
  ds_device_info info = DS_DEVICE_INFO_INIT;
  ds_fabric_device_info(&info, ctx, dev);
  if (!json) printf("CUDA device: %s\n", info.name);
  const size_t sizes[] = {(size_t)16 << 20, (size_t)256 << 20};
  for (int s = 0; s < 2; s++)
    for (int dir = 1; dir >= 0; dir--) bandwidth_case(ctx, dev, sizes[s], dir, json, &hdr);
  cublasHandle_t h = NULL;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    fprintf(stderr, "bench_fabric_transfer_gpu: cublasCreate failed\n");
    return 1;
  }
  size_t n = (size_t)16 << 20; /* 64 MiB of floats */
  double tz = read_once_case(ctx, dev, h, n, DS_BUFFER_MAP_HOST);
  double tc = read_once_case(ctx, dev, h, n, 0);
  bench_row row = {"fabric_transfer_gpu", "zero_copy_read_64MiB", "s", tz,
                   "copy then compute (fabric)", tc, 1.0, "lower"};
  bench_print(&row, json, &hdr);
  cublasDestroy(h);
  ds_context_destroy(ctx);
  return 0;
}
#else
int main(void) {
  printf("bench_fabric_transfer_gpu: built without CUDA: skipped\n");
  return 0;
}
#endif
