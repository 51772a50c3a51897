/* ds_gemm: operand checks (shapes, dtypes, strides), batching, and the choice of path per 2-D
 * problem: OpenBLAS sgemm for fp32, the skinny kernel for small M with 16-bit weights, oneDNN
 * for 16-bit operands, else sgemm over 256^3 tiles widened one at a time into fp32 scratch. */
#include <cblas.h>

#include "precision_internal.h"

typedef struct mat_view {
  int64_t batch, rows, cols, ld, bstride;
} mat_view;

static ds_status view_of(ds_context *ctx, const ds_tensor *t, char name, mat_view *v) {
  if (t->ndim != 2 && t->ndim != 3)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "gemm: %c has %d dimensions (2 or 3 expected)", name, (int)t->ndim);
  int d = t->ndim - 2;
  v->batch = d ? t->shape[0] : 1;
  v->bstride = d ? t->strides[0] : 0;
  v->rows = t->shape[d];
  v->cols = t->shape[d + 1];
  v->ld = t->strides[d];
  if (v->batch < 0 || v->rows < 0 || v->cols < 0 || v->bstride < 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "gemm: %c has a negative size", name);
  if (v->rows && v->cols && t->strides[d + 1] != 1)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "gemm: %c's last stride is %lld (1 expected)", name,
                     (long long)t->strides[d + 1]);
  if (v->rows > 1 && v->ld < v->cols)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "gemm: %c's row stride %lld is less than its %lld columns", name,
                     (long long)v->ld, (long long)v->cols);
  if (v->ld < v->cols) v->ld = v->cols;
  if (v->ld < 1) v->ld = 1;
  return DS_OK;
}

/* 0 host memory, 1 CUDA device memory, -1 anything else. */
static int where(const ds_tensor *t) {
  if (t->device.type == DS_DEVICE_CPU || t->device.type == DS_DEVICE_CUDA_HOST) return 0;
  if (t->device.type == DS_DEVICE_CUDA || t->device.type == DS_DEVICE_CUDA_MANAGED) return 1;
  return -1;
}

void ds__prec_shape_str(char *buf, size_t n, const ds_tensor *t) {
  size_t o = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < t->ndim && i < DS_TENSOR_MAX_DIMS && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (o < n) snprintf(buf + o, n - o, "]");
}

static ds_status shape_error(ds_context *ctx, const ds_tensor *c, const ds_tensor *a,
                             const ds_tensor *b, uint32_t flags, const char *what) {
  char sa[128], sb[128], sc[128];
  ds__prec_shape_str(sa, sizeof sa, a);
  ds__prec_shape_str(sb, sizeof sb, b);
  ds__prec_shape_str(sc, sizeof sc, c);
  return ds__error(ctx, DS_ERR_SHAPE, "precision", "gemm: %s: A %s%s, B %s%s, C %s", what, sa,
                   flags & DS_GEMM_TRANS_A ? " (transposed)" : "", sb,
                   flags & DS_GEMM_TRANS_B ? " (transposed)" : "", sc);
}

/* rows x cols of dtype t at src (row stride ld) -> contiguous fp32. */
static void rows_to_f32(const ds__prec_kernels *k, float *dst, const void *src, ds_dtype t,
                        int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; r++) {
    const char *s = (const char *)src + (size_t)(r * ld) * ds_dtype_size(t);
    float *d = dst + r * cols;
    if (t == DS_DTYPE_F32)
      memcpy(d, s, (size_t)cols * sizeof(float));
    else
      (t == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(d, (const uint16_t *)s, (size_t)cols);
  }
}

static void rows_from_f32(const ds__prec_kernels *k, void *dst, ds_dtype t, int64_t ld,
                          const float *src, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    uint16_t *d = (uint16_t *)dst + r * ld;
    (t == DS_DTYPE_F16 ? k->f32_to_f16 : k->f32_to_bf16)(d, src + r * cols, (size_t)cols);
  }
}

static void sgemm(const ds__gemm_2d *g, const float *a, int64_t lda, const float *b,
                  int64_t ldb, float *c, int64_t ldc, float beta) {
  cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
              g->trans_b ? CblasTrans : CblasNoTrans, (int)g->m, (int)g->n, (int)g->k, g->alpha, a,
              (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* C as fp32: the caller's C when it is fp32, else scratch holding C (when beta reads it). */
static float *c_as_f32(ds_context *ctx, const ds__prec_kernels *k, const ds__gemm_2d *g,
                       int64_t *ldc, float **scratch) {
  *scratch = NULL;
  if (g->tc == DS_DTYPE_F32) {
    *ldc = g->ldc;
    return g->c;
  }
  *scratch = ds__alloc(ctx, (size_t)(g->m * g->n) * sizeof(float) + 1);
  if (*scratch && g->beta != 0.0f) rows_to_f32(k, *scratch, g->c, g->tc, g->m, g->n, g->ldc);
  *ldc = g->n;
  return *scratch;
}

static ds_status run_skinny(ds_context *ctx, const ds__prec_kernels *k, const ds__gemm_2d *g) {
  int64_t ldc = 0;
  float *cs = NULL, *c = c_as_f32(ctx, k, g, &ldc, &cs);
  float *as = NULL;
  const float *a = g->a;
  int64_t lda = g->lda;
  if (g->ta != DS_DTYPE_F32 || g->trans_a) {
    as = ds__alloc(ctx, (size_t)(g->m * g->k) * sizeof(float) + 1);
    if (as && !g->trans_a) rows_to_f32(k, as, g->a, g->ta, g->m, g->k, g->lda);
    if (as && g->trans_a) { /* stored [K, M]: widen then transpose (M <= 64, small) */
      float *tmp = ds__alloc(ctx, (size_t)(g->m * g->k) * sizeof(float) + 1);
      if (tmp) {
        rows_to_f32(k, tmp, g->a, g->ta, g->k, g->m, g->lda);
        for (int64_t p = 0; p < g->k; p++)
          for (int64_t i = 0; i < g->m; i++) as[i * g->k + p] = tmp[p * g->m + i];
      }
      ds__free(ctx, tmp);
      if (!tmp) ds__free(ctx, as), as = NULL;
    }
    a = as;
    lda = g->k;
  }
  ds_status st = DS_OK;
  if (!c || !a) {
    st = ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "gemm: no memory for scratch");
  } else {
    k->skinny(c, ldc, a, lda, g->b, g->ldb, g->trans_b, g->tb == DS_DTYPE_F16, g->m, g->n, g->k,
              g->alpha, g->beta);
    if (cs) rows_from_f32(k, g->c, g->tc, g->ldc, cs, g->m, g->n);
  }
  ds__free(ctx, as);
  ds__free(ctx, cs);
  return st;
}

/* Tiles of the widened path: 256 x 256 tiles of op(A), op(B) and (for a 16-bit C) C in
 * fp32, 768 KiB of scratch whatever the problem, so 16-bit weights are never copied whole
 * into fp32 (that copy cost as much memory as an fp32 weight: 4 MiB more for a 1024 x 1024
 * layer) and each widened tile is still in cache when sgemm packs it. The price, measured on
 * the MLP's 256 x 1024 x 1024 products: each A tile is widened again for every 256 columns
 * of C and sgemm packs smaller calls, about 0.85x of sgemm on the widened whole against
 * 0.93x for widening whole operands (thread CPU time; both lose to fp32 sgemm by the
 * conversions, which this CPU cannot avoid). PANEL (C columns per A tile) could trade
 * memory back for speed. */
enum { TILE = 256, PANEL = 256 };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The rows x cols block at (r0, c0) of a stored matrix x (dtype t, row stride ld) as fp32:
 * a pointer into x when it is fp32, else widened into buf (row stride cols). */
static const float *block_f32(const ds__prec_kernels *k, const void *x, ds_dtype t, int64_t ld,
                              int64_t r0, int64_t rows, int64_t c0, int64_t cols, float *buf,
                              int64_t *ld_out) {
  const char *p = (const char *)x + (size_t)(r0 * ld + c0) * ds_dtype_size(t);
  if (t == DS_DTYPE_F32) {
    *ld_out = ld;
    return (const float *)p;
  }
  rows_to_f32(k, buf, p, t, rows, cols, ld);
  *ld_out = cols;
  return buf;
}

typedef struct widen_ctx {
  const ds__prec_kernels *k;
  const ds__gemm_2d *g;
  float *sa, *sb; /* A and B tile scratch */
} widen_ctx;

/* C panel rows [i0, i0 + mb), columns [j0, j0 + np) (fp32 at c, row stride ldc) = beta C +
 * op(A) op(B), K in TILE steps; C not read when beta is 0. */
static void widened_panel(const widen_ctx *w, int64_t i0, int64_t mb, int64_t j0, int64_t np,
                          float *c, int64_t ldc) {
  const ds__gemm_2d *g = w->g;
  if (g->k == 0)
    for (int64_t i = 0; i < mb; i++)
      for (int64_t j = 0; j < np; j++) {
        float *e = &c[i * ldc + j];
        *e = g->beta == 0.0f ? 0.0f : g->beta * *e;
      }
  for (int64_t p0 = 0; p0 < g->k; p0 += TILE) {
    int64_t kb = min64(TILE, g->k - p0), lda, ldb;
    const float *a = g->trans_a ? block_f32(w->k, g->a, g->ta, g->lda, p0, kb, i0, mb, w->sa, &lda)
                                : block_f32(w->k, g->a, g->ta, g->lda, i0, mb, p0, kb, w->sa, &lda);
    for (int64_t j = j0; j < j0 + np; j += TILE) {
      int64_t nb = min64(TILE, j0 + np - j);
      const float *b = g->trans_b
                           ? block_f32(w->k, g->b, g->tb, g->ldb, j, nb, p0, kb, w->sb, &ldb)
                           : block_f32(w->k, g->b, g->tb, g->ldb, p0, kb, j, nb, w->sb, &ldb);
      cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                  g->trans_b ? CblasTrans : CblasNoTrans, (int)mb, (int)nb, (int)kb, g->alpha,
                  a, (int)lda, b, (int)ldb, p0 == 0 ? g->beta : 1.0f, c + (j - j0), (int)ldc);
    }
  }
}

/* Any dtypes, panel by panel: a 16-bit C panel is widened (when beta reads it), accumulated
 * in fp32 and rounded once. */
static ds_status run_widened(ds_context *ctx, struct ds__precision *p, const ds__prec_kernels *k,
                             const ds__gemm_2d *g) {
  size_t nc = g->tc != DS_DTYPE_F32 ? (size_t)TILE * PANEL : 0;
  float *scratch = ds__prec_scratch_get(ctx, p, (2 * (size_t)TILE * TILE + nc) * sizeof(float));
  if (!scratch)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "gemm: no memory for fp32 scratch");
  widen_ctx w = {k, g, scratch, scratch + TILE * TILE};
  float *sc = scratch + 2 * TILE * TILE;
  size_t es = ds_dtype_size(g->tc);
  for (int64_t i0 = 0; i0 < g->m; i0 += TILE)
    for (int64_t j0 = 0; j0 < g->n; j0 += PANEL) {
      int64_t mb = min64(TILE, g->m - i0), np = min64(PANEL, g->n - j0), ldc = g->ldc;
      char *cp = (char *)g->c + (size_t)(i0 * g->ldc + j0) * es;
      float *c = (float *)cp;
      if (g->tc != DS_DTYPE_F32) {
        c = sc, ldc = np;
        if (g->beta != 0.0f) rows_to_f32(k, sc, cp, g->tc, mb, np, g->ldc);
      }
      widened_panel(&w, i0, mb, j0, np, c, ldc);
      if (g->tc != DS_DTYPE_F32) rows_from_f32(k, cp, g->tc, g->ldc, sc, mb, np);
    }
  ds__prec_scratch_put(ctx, p, scratch);
  return DS_OK;
}

static int run_2d_path(ds_context *ctx, struct ds__precision *p, const ds__prec_kernels *k,
                       const ds__gemm_2d *g, ds_status *st) {
  if (ds__gemm_dnnl_test_mode && g->ta == g->tb) {
    *st = ds__gemm_dnnl(ctx, g);
    if (*st != DS_ERR_UNSUPPORTED) return DS__GEMM_ONEDNN;
  }
  if (g->ta == DS_DTYPE_F32 && g->tb == DS_DTYPE_F32 && g->tc == DS_DTYPE_F32) {
    sgemm(g, g->a, g->lda, g->b, g->ldb, g->c, g->ldc, g->beta);
    return DS__GEMM_BLAS;
  }
  if (g->tb != DS_DTYPE_F32 && g->m <= ds__param(ctx, DS_PARAM_PRECISION_SKINNY_MAX_M)) {
    *st = run_skinny(ctx, k, g);
    return DS__GEMM_SKINNY;
  }
  if (g->ta != DS_DTYPE_F32 && g->tb == g->ta) {
    *st = ds__gemm_dnnl(ctx, g);
    if (*st != DS_ERR_UNSUPPORTED) return DS__GEMM_ONEDNN;
  }
  *st = run_widened(ctx, p, k, g);
  return DS__GEMM_WIDENED;
}

static ds_status run_2d(ds_context *ctx, struct ds__precision *p, const ds__prec_kernels *k,
                        const ds__gemm_2d *g) {
  if (g->m == 0 || g->n == 0) return DS_OK;
  ds_status st = DS_OK;
  int path = run_2d_path(ctx, p, k, g, &st);
  if (st == DS_OK) ds__stat_add(ctx, p->stat_gemm[path], 1.0);
  return st;
}

ds_status ds_gemm(ds_context *ctx, ds_tensor *c, const ds_tensor *a, const ds_tensor *b,
                  uint32_t flags, float alpha, float beta) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "precision", "gemm: ctx is NULL");
  if (!c || !a || !b) return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "gemm: NULL tensor");
  if (flags & ~(DS_GEMM_TRANS_A | DS_GEMM_TRANS_B))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "gemm: unknown flags 0x%x", flags);
  if (!ds__prec_dtype_ok(a->dtype) || !ds__prec_dtype_ok(b->dtype) || !ds__prec_dtype_ok(c->dtype))
    return ds__error(ctx, DS_ERR_DTYPE, "precision",
                     "gemm: dtypes A %s, B %s, C %s (each must be f32, f16 or bf16)",
                     ds_dtype_name(a->dtype), ds_dtype_name(b->dtype), ds_dtype_name(c->dtype));
  mat_view va, vb, vc;
  ds_status st;
  if ((st = view_of(ctx, a, 'A', &va)) || (st = view_of(ctx, b, 'B', &vb)) ||
      (st = view_of(ctx, c, 'C', &vc)))
    return st;
  int ta = !!(flags & DS_GEMM_TRANS_A), tb = !!(flags & DS_GEMM_TRANS_B);
  int64_t m = ta ? va.cols : va.rows, ka = ta ? va.rows : va.cols;
  int64_t kb = tb ? vb.cols : vb.rows, n = tb ? vb.rows : vb.cols;
  if (ka != kb) return shape_error(ctx, c, a, b, flags, "inner dimensions differ");
  if (vc.rows != m || vc.cols != n) return shape_error(ctx, c, a, b, flags, "C is not [M, N]");
  if ((a->ndim == 3 && va.batch != vc.batch) || (b->ndim == 3 && vb.batch != vc.batch) ||
      (c->ndim == 2 && (a->ndim == 3 || b->ndim == 3) && (va.batch != 1 || vb.batch != 1)))
    return shape_error(ctx, c, a, b, flags, "batch sizes differ");
  if (m > INT32_MAX || n > INT32_MAX || ka > INT32_MAX || va.ld > INT32_MAX ||
      vb.ld > INT32_MAX || vc.ld > INT32_MAX)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "precision",
                     "gemm: a dimension or row stride exceeds 2^31 - 1 (BLAS int)");
  struct ds__precision *p = ds__precision_get(ctx);
  if (!p) return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "gemm: no memory for state");
  const ds__prec_kernels *kern = ds__prec_kernels_ctx(ctx);
  ds__gemm_2d g = {m, n, ka, a->data, b->data, c->data, va.ld, vb.ld, vc.ld,
                   (ds_dtype)a->dtype, (ds_dtype)b->dtype, (ds_dtype)c->dtype, ta, tb, alpha, beta};
  int wa = where(a), wb = where(b), wc = where(c);
  if (wa != wb || wb != wc || wa < 0 ||
      (wa == 1 && (a->device.index != c->device.index || b->device.index != c->device.index)))
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "precision",
                     "gemm: operands must all be in host memory or all on one CUDA device "
                     "(device types A %d, B %d, C %d)", (int)a->device.type, (int)b->device.type,
                     (int)c->device.type);
  if (wa == 1) {
    if (vc.batch == 0 || m == 0 || n == 0) return DS_OK;
    st = ds__gemm_cuda(ctx, &g, vc.batch, va.bstride, vb.bstride, vc.bstride);
    if (st == DS_OK) ds__stat_add(ctx, p->stat_gemm[DS__GEMM_CUDA], 1.0);
    return st;
  }
  size_t sa = ds_dtype_size(g.ta), sb = ds_dtype_size(g.tb), sc = ds_dtype_size(g.tc);
  int pinned = ds__prec_blas_enter(ctx);
  for (int64_t i = 0; i < vc.batch && st == DS_OK; i++) {
    g.a = (const char *)a->data + (size_t)(i * va.bstride) * sa;
    g.b = (const char *)b->data + (size_t)(i * vb.bstride) * sb;
    g.c = (char *)c->data + (size_t)(i * vc.bstride) * sc;
    st = run_2d(ctx, p, kern, &g);
  }
  ds__prec_blas_leave(pinned);
  return st;
}
