/* bench_precision_kernels_gpu: the training kernels on CUDA tensors, bf16 [16384, 4096]
 * activations (bias+GELU forward, softmax forward through cuDNN and through our kernel,
 * LayerNorm forward and backward, cross-entropy with its gradient), as effective bandwidth
 * (bytes the kernel must read and write / time) against cudaMemcpy device-to-device in the
 * same run (which moves 2x its size). These kernels are memory-bound, so the goal is >= 0.5
 * of the copy's bandwidth. Median of 5 after a warm-up. Without a CUDA build or device it says
 * so and exits 0. usage: bench_precision_kernels_gpu [--json] [--rows N]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>
#include <string.h>

#include "bench_common.h"

#ifdef DS_BENCH_HAVE_CUDA
#include <cuda_runtime.h>

#define REPS 5
#define COLS 4096

static int64_t rows = 16384;
static ds_context *ctx;
static void *bx, *by, *bdy, *bdx, *bcopy, *bvec, *bmean, *brstd, *blab;
static ds_tensor x, y, dy, dx, bias, gam, mean, rstd, lab;

static void ok(ds_status st, const char *what) {
  if (st != DS_OK) {
    fprintf(stderr, "bench_precision_kernels_gpu: %s: %s\n", what, ds_context_last_error(ctx));
    exit(1);
  }
}

static ds_tensor dev(void *p, ds_dtype dt, int64_t r, int64_t c) {
  ds_tensor t;
  int64_t s[2] = {r, c};
  ds_tensor_init(&t, ctx, p, dt, 2, s, NULL, (ds_device){DS_DEVICE_CUDA, 0});
  return t;
}

static void k_bias_gelu(void) {
  ok(ds_bias_act_forward_tensor(ctx, &y, &x, &bias, DS_ACT_GELU), "bias_act");
}
static void k_softmax(void) { ok(ds_softmax_forward_tensor(ctx, &y, &x, 0), "softmax"); }
static void k_ln_fwd(void) {
  ok(ds_layernorm_forward_tensor(ctx, &y, &mean, &rstd, &x, &gam, NULL, 1e-5f), "layernorm");
}
static void k_ln_bwd(void) {
  ok(ds_layernorm_backward_tensor(ctx, &dx, NULL, NULL, &dy, &x, &mean, &rstd, &gam),
     "layernorm backward");
}
static void k_ce(void) {
  float loss;
  ok(ds_cross_entropy_tensor(ctx, &loss, &dx, &x, &lab), "ce");
}
static void k_copy(void) {
  cudaMemcpy(bcopy, bx, (size_t)(rows * COLS) * 2, cudaMemcpyDeviceToDevice);
}

static double median_ms(void (*fn)(void)) {
  double t[REPS];
  fn();
  cudaDeviceSynchronize();
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    fn();
    cudaDeviceSynchronize();
    t[r] = (bench_now_s() - t0) * 1e3;
  }
  return bench_median(t, REPS);
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0, ndev = 0;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--rows")) rows = atoll(argv[i + 1]);
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    printf("# bench_precision_kernels_gpu: no CUDA device, skipped\n");
    return 0;
  }
  size_t act = (size_t)(rows * COLS) * 2;
  if (ds_context_create(&ctx, NULL) != DS_OK || cudaMalloc(&bx, act) || cudaMalloc(&by, act) ||
      cudaMalloc(&bdy, act) || cudaMalloc(&bdx, act) || cudaMalloc(&bcopy, act) ||
      cudaMalloc(&bvec, COLS * 4) || cudaMalloc(&bmean, (size_t)rows * 4) ||
      cudaMalloc(&brstd, (size_t)rows * 4) || cudaMalloc(&blab, (size_t)rows * 4))
    return 1;
  cudaMemset(bx, 0x3c, act), cudaMemset(bdy, 0x3c, act), cudaMemset(bvec, 0, COLS * 4);
  cudaMemset(blab, 0, (size_t)rows * 4); /* label 0 everywhere */
  x = dev(bx, DS_DTYPE_BF16, rows, COLS), y = dev(by, DS_DTYPE_BF16, rows, COLS);
  dy = dev(bdy, DS_DTYPE_BF16, rows, COLS), dx = dev(bdx, DS_DTYPE_BF16, rows, COLS);
  bias = dev(bvec, DS_DTYPE_F32, 1, COLS), gam = bias;
  mean = dev(bmean, DS_DTYPE_F32, 1, rows), rstd = dev(brstd, DS_DTYPE_F32, 1, rows);
  lab = dev(blab, DS_DTYPE_I32, 1, rows);
  double gb = (double)act * 1e-9, copy = 2 * gb / (median_ms(k_copy) * 1e-3);
  k_ln_fwd(); /* statistics for the backward */
  struct { const char *name; void (*fn)(void); double bytes; } ks[] = {
      {"bias_gelu_fwd_bf16", k_bias_gelu, 2 * gb},
      {"softmax_fwd_bf16_cudnn", k_softmax, 2 * gb},
      {"softmax_fwd_bf16_ours", k_softmax, 2 * gb},
      {"layernorm_fwd_bf16", k_ln_fwd, 2 * gb},
      {"layernorm_bwd_bf16", k_ln_bwd, 3 * gb},
      {"cross_entropy_bf16", k_ce, 2 * gb},
  };
  printf("# rows %lld x %d bf16; cudaMemcpy D2D %.0f GB/s\n", (long long)rows, COLS, copy);
  for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
    ds_context_set_param(ctx, DS_PARAM_PRECISION_CUDNN, strstr(ks[i].name, "ours") ? 0 : 1);
    bench_row r = {"bench_precision_kernels_gpu", ks[i].name, "GB/s",
                   ks[i].bytes / (median_ms(ks[i].fn) * 1e-3), "cudaMemcpy D2D GB/s", copy, 0.5,
                   "higher"};
    bench_print(&r, json, &header);
  }
  cudaFree(bx), cudaFree(by), cudaFree(bdy), cudaFree(bdx), cudaFree(bcopy), cudaFree(bvec);
  cudaFree(bmean), cudaFree(brstd), cudaFree(blab);
  ds_context_destroy(ctx);
  return 0;
}
#else
int main(void) {
  printf("# bench_precision_kernels_gpu: built without CUDA, skipped\n");
  return 0;
}
#endif
