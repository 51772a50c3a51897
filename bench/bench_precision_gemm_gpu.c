/* bench_precision_gemm_gpu: ds_gemm on CUDA tensors (bf16 in, fp32 accumulate, bf16 out) at
 * n = 8192 (8192^3, 1.1 TFLOP a call) against cublasGemmEx called directly in the same run,
 * and against the H200 dense bf16 peak (~790 TFLOP/s; goal >= 70%, i.e. >= 553
 * TFLOP/s). The operands hold pseudo-random bf16 values in [-1, 1) (tensor-core power, and so
 * the clock, depends on the data: constant inputs would flatter both sides). Each timing is
 * ITERS calls in a row then one device synchronisation; median of REPS after a warm-up.
 * Without a CUDA build or device it says so and exits 0.
 * usage: bench_precision_gemm_gpu [--json] [--n N]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>
#include <string.h>

#include "bench_common.h"

#ifdef DS_BENCH_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#define REPS 5
#define ITERS 10
#define PEAK_TFLOPS 790.0

/* Milliseconds of one call: median over REPS of ITERS calls. */
static double median_ms(void (*fn)(void *), void *arg) {
  double t[REPS];
  fn(arg);
  cudaDeviceSynchronize();
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    for (int i = 0; i < ITERS; i++) fn(arg);
    cudaDeviceSynchronize();
    t[r] = (bench_now_s() - t0) * 1e3 / ITERS;
  }
  return bench_median(t, REPS);
}

/* n pseudo-random bf16 values in [-1, 1) (a uniform fp32 truncated to its upper half) into
 * device memory at d. */
static int fill_random(void *d, size_t n, uint32_t seed) {
  uint16_t *h = malloc(n * 2);
  if (!h) return -1;
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1664525u + 1013904223u;
    float f = (float)(x >> 9) / 4194304.0f - 1.0f; /* [-1, 1) */
    uint32_t bits;
    memcpy(&bits, &f, 4);
    h[i] = (uint16_t)(bits >> 16);
  }
  int rc = cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice) == cudaSuccess ? 0 : -1;
  free(h);
  return rc;
}

typedef struct prob {
  ds_context *ctx;
  cublasHandle_t h;
  int n;
  void *a, *b, *c;
  ds_tensor ta, tb, tc;
} prob;

static void run_ours(void *p) {
  prob *q = p;
  if (ds_gemm(q->ctx, &q->tc, &q->ta, &q->tb, 0, 1.0f, 0.0f) != DS_OK) {
    fprintf(stderr, "ds_gemm: %s\n", ds_context_last_error(q->ctx));
    exit(1);
  }
}

static void run_cublas(void *p) {
  prob *q = p;
  float one = 1.0f, zero = 0.0f;
  cublasGemmEx(q->h, CUBLAS_OP_N, CUBLAS_OP_N, q->n, q->n, q->n, &one, q->b, CUDA_R_16BF, q->n,
               q->a, CUDA_R_16BF, q->n, &zero, q->c, CUDA_R_16BF, q->n, CUBLAS_COMPUTE_32F,
               CUBLAS_GEMM_DEFAULT);
}

static ds_tensor t2(ds_context *ctx, void *d, int64_t n) {
  ds_tensor t;
  int64_t s[2] = {n, n};
  ds_tensor_init(&t, ctx, d, DS_DTYPE_BF16, 2, s, NULL, (ds_device){DS_DEVICE_CUDA, 0});
  return t;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0, n = 8192, ndev = 0;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    printf("# bench_precision_gemm_gpu: no CUDA device, skipped\n");
    return 0;
  }
  prob q = {0};
  q.n = n;
  size_t bytes = (size_t)n * (size_t)n * 2;
  if (ds_context_create(&q.ctx, NULL) != DS_OK || cublasCreate(&q.h) != CUBLAS_STATUS_SUCCESS ||
      cudaMalloc(&q.a, bytes) != cudaSuccess || cudaMalloc(&q.b, bytes) != cudaSuccess ||
      cudaMalloc(&q.c, bytes) != cudaSuccess)
    return 1;
  if (fill_random(q.a, bytes / 2, 1) || fill_random(q.b, bytes / 2, 2)) return 1;
  q.ta = t2(q.ctx, q.a, n), q.tb = t2(q.ctx, q.b, n), q.tc = t2(q.ctx, q.c, n);
  double flop = 2.0 * n * (double)n * n;
  double ours = flop / median_ms(run_ours, &q) * 1e-9, anchor = flop / median_ms(run_cublas, &q) * 1e-9;
  char cs[32];
  snprintf(cs, sizeof cs, "bf16_n%d", n);
  bench_row rows[] = {
      {"bench_precision_gemm_gpu", cs, "TFLOP/s", ours, "cublasGemmEx", anchor, 0.95, "higher"},
      {"bench_precision_gemm_gpu", cs, "TFLOP/s", ours, "H200 dense bf16 peak", PEAK_TFLOPS, 0.7,
       "higher"},
  };
  for (int i = 0; i < 2; i++) bench_print(&rows[i], json, &header);
  cudaFree(q.a), cudaFree(q.b), cudaFree(q.c);
  cublasDestroy(q.h);
  ds_context_destroy(q.ctx);
  return 0;
}
#else
int main(void) {
  printf("# bench_precision_gemm_gpu: built without CUDA, skipped\n");
  return 0;
}
#endif
