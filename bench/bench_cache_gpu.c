/* bench_cache_gpu: the cache's GPU tier on the first CUDA GPU (run by bench/gpu/check.sh), or on
 * any fabric device with its own memory given by --device N (e.g. PoCL's OpenCL device):
 *   put_4MiB  a put that lands in device memory (host copy, device allocation, host->device
 *             copy through the pinned staging buffer on CUDA), against a fabric buffer
 *             registered over the same host bytes and acquired for READ on the device (device
 *             allocation + one host->device copy);
 *   get_4MiB  a get of a GPU-tier entry (device->host copy into the caller's buffer), against
 *             making a device-modified fabric buffer valid on the host.
 * Rates in GB/s, medians of REPS; goal: ratio >= 0.8 (the staging memcpy is the difference).
 * Exits 0 with a skip line when there is no such device.
 * usage: bench_cache_gpu [--json] [--device N]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_common.h"

#define VAL (4u << 20)
#define NVAL 16
#define REPS 9

static void need(ds_status st, ds_context *ctx, const char *what) {
  if (st == DS_OK) return;
  fprintf(stderr, "bench_cache_gpu: %s: %s\n", what, ds_context_last_error(ctx));
  exit(1);
}

/* Fabric anchor of a put: seconds to register val and make it valid on the device (device
 * allocation + copy); the buffer is destroyed (device memory freed) untimed. */
static double fabric_put_once(ds_context *ctx, void *val, int32_t dev) {
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.flags = DS_BUFFER_NO_ZERO_COPY;
  ds_buffer *b = NULL;
  void *p = NULL;
  double t0 = bench_now_s();
  need(ds_buffer_register(&b, ctx, val, VAL, &bo), ctx, "register");
  need(ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ), ctx, "acquire");
  double t = bench_now_s() - t0;
  need(ds_buffer_release(b, dev), ctx, "release");
  need(ds_buffer_destroy(b), ctx, "destroy");
  return t;
}

/* Fabric anchor: seconds of one host->device (to_dev) or device->host transfer of VAL bytes. */
static double fabric_once(ds_context *ctx, ds_buffer *b, int32_t dev, int to_dev) {
  void *p = NULL;
  int32_t from = to_dev ? 0 : dev, to = to_dev ? dev : 0;
  need(ds_buffer_acquire(&p, b, from, DS_ACCESS_WRITE), ctx, "acquire"); /* valid only there */
  need(ds_buffer_release(b, from), ctx, "release");
  double t0 = bench_now_s();
  need(ds_buffer_acquire(&p, b, to, DS_ACCESS_READ), ctx, "acquire");
  double t = bench_now_s() - t0;
  need(ds_buffer_release(b, to), ctx, "release");
  return t;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  int32_t dev = -1;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--device")) dev = (int32_t)atoi(argv[i + 1]);
  ds_context *ctx = bench_context("bench_cache_gpu", NULL, 0);
  if (dev < 0 && ds_fabric_device_find(&dev, ctx, DS_FABRIC_DEVICE_CUDA, 0) != DS_OK) {
    printf("bench_cache_gpu: skipped (no CUDA GPU; --device N picks another device)\n");
    ds_context_destroy(ctx);
    return 0;
  }
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.gpu_bytes = (uint64_t)NVAL * (VAL + 64);
  o.gpu_device = dev;
  o.l1_bytes = 0;
  o.shards = 1;
  ds_cache *c = NULL;
  need(ds_cache_create(&c, ctx, &o), ctx, "create");
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.flags = DS_BUFFER_NO_ZERO_COPY;
  ds_buffer *b = NULL;
  need(ds_buffer_create(&b, ctx, VAL, &bo), ctx, "buffer");
  char *val = malloc(VAL), *out = malloc(VAL);
  for (size_t i = 0; i < VAL; i++) val[i] = (char)(i * 7);
  double put[REPS], get[REPS], a_in[REPS], a_out[REPS];
  for (int r = 0; r < REPS; r++) {
    int k = r % NVAL;
    ds_cache_remove(c, &k, sizeof k);
    double t0 = bench_now_s();
    need(ds_cache_put(c, &k, sizeof k, val, VAL), ctx, "put");
    put[r] = VAL / (bench_now_s() - t0) / 1e9;
    size_t len = 0;
    t0 = bench_now_s();
    need(ds_cache_get(c, &k, sizeof k, out, VAL, &len), ctx, "get");
    get[r] = VAL / (bench_now_s() - t0) / 1e9;
    if (len != VAL || memcmp(out, val, VAL)) need(DS_ERR_CORRUPT, ctx, "value check");
    a_in[r] = VAL / fabric_put_once(ctx, val, dev) / 1e9;
    a_out[r] = VAL / fabric_once(ctx, b, dev, 0) / 1e9;
  }
  ds_cache_tier_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  need(ds_cache_stats(c, DS_CACHE_GPU, &s), ctx, "stats");
  if (s.hits != REPS) need(DS_ERR_STATE, ctx, "every get should hit the GPU tier");
  bench_row r1 = {"bench_cache_gpu", "put_4MiB", "GB_s", bench_median(put, REPS),
                  "fabric register+h2d", bench_median(a_in, REPS), 0.8, "higher"};
  bench_row r2 = {"bench_cache_gpu", "get_4MiB", "GB_s", bench_median(get, REPS),
                  "fabric buffer d2h", bench_median(a_out, REPS), 0.8, "higher"};
  bench_print(&r1, json, &header);
  bench_print(&r2, json, &header);
  free(val);
  free(out);
  ds_buffer_destroy(b);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
  return 0;
}
