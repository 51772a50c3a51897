/* bench_precision_convert: bandwidth of fp32 <-> fp16/bf16 conversion of 16 Mi elements
 * (64 MiB on the fp32 side) against memcpy of the fp32 buffer, measured in the same run, both
 * as bytes read + written per second on one thread. Rows for the best vector level (the goal,
 * >= 0.8x memcpy) and for the scalar reference. Median of 7 repetitions.
 * usage: bench_precision_convert [--json]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>

#include "bench_common.h"

#define N (16u << 20)
#define REPS 7

static ds_context *ctx;
static volatile float sink;

static double gbps(double bytes, double s) { return bytes / s * 1e-9; }

static double time_memcpy(float *dst, const float *src) {
  double t[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    memcpy(dst, src, (size_t)N * 4);
    t[r] = bench_now_s() - t0;
    sink += dst[r];
  }
  return gbps(2.0 * N * 4, bench_median(t, REPS));
}

static double time_convert(void *dst, ds_dtype dt, const void *src, ds_dtype st) {
  double t[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    if (ds_precision_convert(ctx, dst, dt, src, st, N) != DS_OK) exit(1);
    t[r] = bench_now_s() - t0;
  }
  return gbps((double)N * (ds_dtype_size(dt) + ds_dtype_size(st)), bench_median(t, REPS));
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ctx = bench_context("bench_precision_convert", NULL, 0);
  float *f = malloc((size_t)N * 4), *g = malloc((size_t)N * 4);
  uint16_t *h = malloc((size_t)N * 2);
  if (!f || !g || !h) return 1;
  for (uint32_t i = 0; i < N; i++) f[i] = (float)(i % 1000) * 0.001f - 0.5f, g[i] = 0;
  memset(h, 0, (size_t)N * 2);
  static const struct { const char *name; ds_dtype dst, src; } cases[] = {
      {"f32_to_f16", DS_DTYPE_F16, DS_DTYPE_F32}, {"f16_to_f32", DS_DTYPE_F32, DS_DTYPE_F16},
      {"f32_to_bf16", DS_DTYPE_BF16, DS_DTYPE_F32}, {"bf16_to_f32", DS_DTYPE_F32, DS_DTYPE_BF16}};
  for (int level = 0; level < 2; level++) {
    ds_precision_isa isa = level ? DS_PRECISION_ISA_SCALAR : DS_PRECISION_ISA_AUTO;
    ds_context_set_param(ctx, DS_PARAM_PRECISION_ISA, isa);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      double anchor = time_memcpy(g, f);
      int narrow = cases[c].src == DS_DTYPE_F32;
      double ours = time_convert(narrow ? (void *)h : (void *)g, cases[c].dst,
                                 narrow ? (void *)f : (void *)h, cases[c].src);
      char name[64];
      snprintf(name, sizeof name, "%s_%s", cases[c].name,
               ds_precision_isa_name(ds_precision_isa_in_use(ctx)));
      bench_row row = {"bench_precision_convert", name, "GB/s", ours, "memcpy 64MiB", anchor,
                       level ? 0.0 : 0.8, "higher"};
      bench_print(&row, json, &header);
    }
  }
  free(f), free(g), free(h);
  ds_context_destroy(ctx);
  return 0;
}
