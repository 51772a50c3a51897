/* Internal interface of the precision module: the CPU kernel table (one per ISA level, chosen
 * by CPU feature detection), the scalar conversion reference, and the per-context state. */
#ifndef DS_PRECISION_INTERNAL_H
#define DS_PRECISION_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "deepseek/precision.h"

/* One backend's kernels. Every table has every entry; vector tables fall back to the scalar
 * code for tails. Selected once per context (ds__precision_state). */
typedef struct ds__prec_kernels {
  ds_precision_isa isa;
  void (*f32_to_f16)(uint16_t *dst, const float *src, size_t n);
  void (*f16_to_f32)(float *dst, const uint16_t *src, size_t n);
  void (*f32_to_bf16)(uint16_t *dst, const float *src, size_t n);
  void (*bf16_to_f32)(float *dst, const uint16_t *src, size_t n);
  /* fp32 -> bf16 with stochastic rounding keyed by key (ds__f32_to_bf16_sr_loop). */
  void (*f32_to_bf16_sr)(uint16_t *dst, const float *src, size_t n, uint32_t key);
  /* Skinny GEMM: C[m, n] = alpha * sum_k A[m, k] * W(k, n) + beta * C[m, n] for m < M, with
   * A fp32 row-major (lda) and W 16-bit (f16 when is_f16, else bf16): W(k, n) = w[n * ldw + k]
   * when w_nk, else w[k * ldw + n]. C fp32 (ldc). beta == 0 does not read C. */
  void (*skinny)(float *c, int64_t ldc, const float *a, int64_t lda, const uint16_t *w,
                 int64_t ldw, int w_nk, int is_f16, int64_t m, int64_t n, int64_t k,
                 float alpha, float beta);
} ds__prec_kernels;

extern const ds__prec_kernels ds__prec_kernels_scalar;
extern const ds__prec_kernels ds__prec_kernels_avx2;
extern const ds__prec_kernels ds__prec_kernels_avx512;

/* The best level this CPU supports (cached). */
ds_precision_isa ds__prec_cpu_isa(void);
/* The table for @p isa clamped to what the CPU supports (AUTO = best). Never NULL. */
const ds__prec_kernels *ds__prec_kernels_for(ds_precision_isa isa);
/* The table this context uses now (reads DS_PARAM_PRECISION_ISA). */
const ds__prec_kernels *ds__prec_kernels_ctx(ds_context *ctx);

/* ---- scalar reference conversions (convert_scalar.c) ---- */
uint16_t ds__f32_to_f16(float f);
float ds__f16_to_f32(uint16_t h);
uint16_t ds__f32_to_bf16(float f);
float ds__bf16_to_f32(uint16_t h);
void ds__skinny_scalar(float *c, int64_t ldc, const float *a, int64_t lda, const uint16_t *w,
                       int64_t ldw, int w_nk, int is_f16, int64_t m, int64_t n, int64_t k,
                       float alpha, float beta);
void ds__skinny_avx2(float *c, int64_t ldc, const float *a, int64_t lda, const uint16_t *w,
                     int64_t ldw, int w_nk, int is_f16, int64_t m, int64_t n, int64_t k,
                     float alpha, float beta);
void ds__f32_to_bf16_sr_avx2(uint16_t *dst, const float *src, size_t n, uint32_t key);

/* "[2, 3]" into buf (gemm.c), for shape messages. */
void ds__prec_shape_str(char *buf, size_t n, const ds_tensor *t);

/* 1 for the three dtypes this module computes with: f32, f16, bf16. */
static inline int ds__prec_dtype_ok(int t) {
  return t == DS_DTYPE_F32 || t == DS_DTYPE_F16 || t == DS_DTYPE_BF16;
}

static inline uint32_t ds__f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
/* The 16 random bits of stochastic rounding for element key + j: a multiply-xorshift hash,
 * 32-bit and branch-free so the loop below vectorises in each table's instruction set. */
static inline uint32_t ds__rand16(uint32_t x) {
  x *= 0x9e3779b1u;
  x ^= x >> 15, x *= 0x85ebca77u;
  x ^= x >> 13;
  return x & 0xffffu;
}

/* fp32 -> bf16 with stochastic rounding: adds 16 random bits below the kept ones and
 * truncates, so the expected result is the fp32 value (unbiased). Inf stays Inf and NaN a
 * quiet NaN (no random bits there: they could carry into the sign). Element j's bits come
 * from key + j, so a result depends only on (key, position): reproducible. */
static inline void ds__f32_to_bf16_sr_loop(uint16_t *dst, const float *src, size_t n,
                                           uint32_t key) {
  for (size_t j = 0; j < n; j++) {
    uint32_t b;
    memcpy(&b, &src[j], sizeof b);
    int special = (b & 0x7f800000u) == 0x7f800000u;
    uint32_t r = special ? 0u : ds__rand16(key + (uint32_t)j);
    uint32_t quiet = special && (b & 0x7fffffu) ? 0x40u : 0u;
    dst[j] = (uint16_t)(((b + r) >> 16) | quiet);
  }
}

static inline float ds__bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ---- per-context state (state.c) ---- */
struct ds__gemm_cache; /* cpu/gemm_dnnl.c */
struct ds__cuda_state; /* cuda_glue.c */
enum {
  DS__GEMM_BLAS,
  DS__GEMM_SKINNY,
  DS__GEMM_ONEDNN,
  DS__GEMM_WIDENED,
  DS__GEMM_CUDA,
  DS__GEMM_PATHS
};
struct ds__precision {
  pthread_mutex_t mu;
  struct ds__gemm_cache *gemm_cache;
  struct ds__cuda_state *cuda; /* cuBLAS handle, created on the first CUDA GEMM */
  void *scratch;               /* reusable fp32 widening buffer (see ds__prec_scratch_get) */
  size_t scratch_size;
  int scratch_busy;
  int stat_gemm[DS__GEMM_PATHS]; /* "precision.gemm.<path>" counters of 2-D problems */
  int stat_cudnn;                /* "precision.cudnn.softmax": softmax calls cuDNN ran */
};
/* The context's state, created on first use; NULL when out of memory. */
struct ds__precision *ds__precision_get(ds_context *ctx);
/* A buffer of at least @p bytes for widening operands: the context keeps one (up to
 * DS__SCRATCH_KEEP bytes) so repeated GEMMs on large weights do not pay fresh pages each
 * call; a caller finding it in use gets a private allocation. NULL on no memory. Give it back
 * with ds__prec_scratch_put. Thread-safe. */
#define DS__SCRATCH_KEEP ((size_t)256 << 20)
void *ds__prec_scratch_get(ds_context *ctx, struct ds__precision *p, size_t bytes);
void ds__prec_scratch_put(ds_context *ctx, struct ds__precision *p, void *buf);

/* ---- GEMM backends (cpu/) ---- */
/* One 2-D problem, fp32 accumulation. Pointers address element (0, 0) of each operand. */
typedef struct ds__gemm_2d {
  int64_t m, n, k;
  const void *a, *b;
  void *c;
  int64_t lda, ldb, ldc;
  ds_dtype ta, tb, tc;
  int trans_a, trans_b;
  float alpha, beta;
} ds__gemm_2d;
/* oneDNN matmul for 16-bit A and B; DS_ERR_UNSUPPORTED when oneDNN has no native kernel for
 * this case on this CPU (the caller then falls back). */
ds_status ds__gemm_dnnl(ds_context *ctx, const ds__gemm_2d *g);
/* Test hook: non-zero sends all-fp32 problems to oneDNN too and lets its reference
 * implementation through (skipped otherwise: the fp32 fallback is faster), so the tests cover
 * the oneDNN code (strides, attributes, cache) on a CPU without native bf16/fp16 kernels. */
extern int ds__gemm_dnnl_test_mode;
void ds__gemm_cache_destroy(ds_context *ctx, struct ds__gemm_cache *cache);
/* Inside a scheduler task, caps the BLAS/oneDNN threads (cpu/blas_threads.c); returns what
 * to pass to ds__prec_blas_leave after the GEMM. Outside a task: 0, nothing changes. */
int ds__prec_blas_enter(ds_context *ctx);
void ds__prec_blas_leave(int entered);

/* ---- CUDA path (cuda_glue.c): DS_ERR_UNAVAILABLE without a device, DS_ERR_UNSUPPORTED in a
 * build without CUDA ---- */
int ds__cuda_present(ds_context *ctx);
ds_status ds__cuda_convert(ds_context *ctx, void *dst, ds_dtype dt, const void *src, ds_dtype st,
                           size_t n);
/* A batch of 2-D problems in device memory, batch strides in elements (0 broadcasts). */
ds_status ds__gemm_cuda(ds_context *ctx, const ds__gemm_2d *g, int64_t batch, int64_t sa,
                        int64_t sb, int64_t sc);
void ds__cuda_state_destroy(ds_context *ctx, struct ds__cuda_state *c);
/* One training kernel (a struct ds__tk_args of cuda_backend.h) on the CUDA device; @p what
 * names it in messages. */
struct ds__tk_args;
ds_status ds__cuda_train(ds_context *ctx, struct ds__tk_args *a, const char *what);
/* Test hook (kernels_tensor.c): non-zero sends host tensors of the *_tensor kernels through
 * the CUDA kernel code run on the host (builds with CUDA only), to test it without a GPU. */
extern int ds__tk_host_emulation;

#endif /* DS_PRECISION_INTERNAL_H */
