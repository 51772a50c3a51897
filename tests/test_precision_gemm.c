/* Tests of ds_gemm: every mix of f32/f16/bf16 operands, transposes, alpha/beta, padded rows,
 * batches with broadcast operands, the skinny and oneDNN paths and their fallbacks, against an
 * fp64 reference within the bound the header states; shape, dtype and stride errors; the
 * primitive cache under concurrent callers and eviction; the BLAS thread cap inside scheduler
 * tasks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>

#include "deepseek/sched.h"
#include "precision_internal.h"
#include "test_util.h"

int openblas_get_num_threads(void); /* OpenBLAS, linked through the library */

static _Thread_local uint64_t rng = 0x2545f4914f6cdd1dull; /* per thread: workers fill in parallel */
static float rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* A host matrix (or batch of matrices) of dtype t, rows x cols with row stride ld. */
typedef struct mat {
  ds_tensor t;
  void *mem;
} mat;

static void mat_init(mat *m, ds_dtype dt, int64_t batch, int64_t rows, int64_t cols, int64_t ld) {
  size_t es = ds_dtype_size(dt);
  int64_t per = rows * ld;
  m->mem = calloc((size_t)((batch ? batch : 1) * per + 1), es);
  assert_non_null(m->mem);
  memset(&m->t, 0, sizeof m->t);
  m->t.data = m->mem;
  m->t.dtype = dt;
  int d = batch > 0 ? 1 : 0;
  m->t.ndim = 2 + d;
  if (d) m->t.shape[0] = batch, m->t.strides[0] = per;
  m->t.shape[d] = rows, m->t.shape[d + 1] = cols;
  m->t.strides[d] = ld, m->t.strides[d + 1] = 1;
}

static double get(const mat *m, int64_t b, int64_t i, int64_t j) {
  const ds_tensor *t = &m->t;
  int d = t->ndim - 2;
  int64_t off = (d ? b * t->strides[0] : 0) + i * t->strides[d] + j;
  switch (t->dtype) {
  case DS_DTYPE_F32: return ((const float *)t->data)[off];
  case DS_DTYPE_F16: return ds__f16_to_f32(((const uint16_t *)t->data)[off]);
  default: return ds__bf16_to_f32(((const uint16_t *)t->data)[off]);
  }
}

static void set(mat *m, int64_t b, int64_t i, int64_t j, float v) {
  ds_tensor *t = &m->t;
  int d = t->ndim - 2;
  int64_t off = (d ? b * t->strides[0] : 0) + i * t->strides[d] + j;
  switch (t->dtype) {
  case DS_DTYPE_F32: ((float *)t->data)[off] = v; break;
  case DS_DTYPE_F16: ((uint16_t *)t->data)[off] = ds__f32_to_f16(v); break;
  default: ((uint16_t *)t->data)[off] = ds__f32_to_bf16(v); break;
  }
}

static void fill(mat *m) {
  int d = m->t.ndim - 2;
  int64_t nb = d ? m->t.shape[0] : 1;
  for (int64_t b = 0; b < nb; b++)
    for (int64_t i = 0; i < m->t.shape[d]; i++)
      for (int64_t j = 0; j < m->t.shape[d + 1]; j++) set(m, b, i, j, rnd());
}

static double out_rel(ds_dtype t) {
  return t == DS_DTYPE_F32 ? 0x1p-24 : t == DS_DTYPE_F16 ? 0x1p-11 : 0x1p-8;
}

/* Checks C (after) against alpha * op(A) op(B) + beta * C0 in fp64, element by element:
 * |err| <= (k + 2) 2^-23 (|alpha| sum|a b| + |beta c0|) + half an ulp of C's dtype
 * (relative, or 2^-25 absolute in the fp16 subnormal range). */
static void check(const mat *c, const mat *c0, const mat *a, const mat *b, int ta, int tb,
                  int64_t batch, int64_t m, int64_t n, int64_t k, float alpha, float beta) {
  for (int64_t q = 0; q < batch; q++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0, mag = 0;
        int64_t qa = a->t.ndim == 3 ? q : 0, qb = b->t.ndim == 3 ? q : 0;
        for (int64_t p = 0; p < k; p++) {
          double x = ta ? get(a, qa, p, i) : get(a, qa, i, p);
          double y = tb ? get(b, qb, j, p) : get(b, qb, p, j);
          s += x * y, mag += fabs(x * y);
        }
        double old = beta != 0.0f ? get(c0, q, i, j) : 0.0;
        double want = alpha * s + beta * old, got = get(c, q, i, j);
        double tol = (double)(k + 2) * 0x1p-23 * (fabs(alpha) * mag + fabs(beta * old)) +
                     out_rel((ds_dtype)c->t.dtype) * fabs(want) +
                     (c->t.dtype == DS_DTYPE_F16 ? 0x1p-25 : 1e-38);
        if (!(fabs(got - want) <= tol)) {
          printf("gemm mismatch at [%lld,%lld,%lld] got %.9g want %.9g tol %.3g (m %lld n %lld "
                 "k %lld, dtypes %s %s %s, trans %d %d)\n",
                 (long long)q, (long long)i, (long long)j, got, want, tol, (long long)m,
                 (long long)n, (long long)k, ds_dtype_name(a->t.dtype), ds_dtype_name(b->t.dtype),
                 ds_dtype_name(c->t.dtype), ta, tb);
          fail();
        }
      }
}

/* One problem: fresh operands (rows padded by 3), ds_gemm, check, free. */
static void run_case(ds_context *ctx, ds_dtype da, ds_dtype db, ds_dtype dc, int ta, int tb,
                     int64_t batch, int a_batched, int64_t m, int64_t n, int64_t k, float alpha,
                     float beta) {
  mat a, b, c, c0;
  int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  mat_init(&a, da, a_batched ? batch : 0, ar, ac, ac + 3);
  mat_init(&b, db, 0, br, bc, bc + 1);
  mat_init(&c, dc, batch, m, n, n + 2);
  mat_init(&c0, dc, batch, m, n, n + 2);
  fill(&a), fill(&b), fill(&c);
  if (beta == 0.0f) /* C must not be read: NaN there must not come out */
    for (int64_t q = 0; q < (batch ? batch : 1); q++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) set(&c, q, i, j, NAN);
  memcpy(c0.mem, c.mem, (size_t)((batch ? batch : 1) * m * (n + 2)) * ds_dtype_size(dc));
  uint32_t flags = (ta ? DS_GEMM_TRANS_A : 0) | (tb ? DS_GEMM_TRANS_B : 0);
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, flags, alpha, beta), DS_OK);
  check(&c, &c0, &a, &b, ta, tb, batch ? batch : 1, m, n, k, alpha, beta);
  free(a.mem), free(b.mem), free(c.mem), free(c0.mem);
}

static const ds_dtype dts[] = {DS_DTYPE_F32, DS_DTYPE_F16, DS_DTYPE_BF16};

static void test_gemm_all_dtypes_and_transposes(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  static const int64_t ms[] = {1, 5, 64, 70}, ns[] = {3, 19}, ks[] = {1, 37, 300};
  int cnt = 0;
  for (int ia = 0; ia < 3; ia++)
    for (int ib = 0; ib < 3; ib++)
      for (int ic = 0; ic < 3; ic++)
        for (int tr = 0; tr < 4; tr++)
          for (int s = 0; s < 24; s++) {
            int64_t m = ms[s % 4], n = ns[(s / 4) % 2], k = ks[s / 8];
            float alpha = cnt % 2 ? 0.5f : 1.0f, beta = cnt % 3 == 2 ? -1.5f : 0.0f;
            if (((cnt++) % 5) && k == 300 && m == 70) continue; /* keep the run short */
            run_case(ctx, dts[ia], dts[ib], dts[ic], tr & 1, tr >> 1, 0, 0, m, n, k, alpha, beta);
          }
  ds_stats *st = NULL;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  double v[4] = {0};
  static const char *const paths[] = {"blas", "skinny", "onednn", "widened"};
  for (int i = 0; i < 4; i++) {
    char name[64];
    snprintf(name, sizeof name, "precision.gemm.%s", paths[i]);
    assert_int_equal(ds_stats_find(&v[i], st, name), DS_OK);
    printf("precision: gemm path %s: %.0f problems\n", paths[i], v[i]);
  }
  assert_true(v[0] > 0 && v[1] > 0 && v[2] + v[3] > 0);
  ds_stats_free(st);
  ds_context_destroy(ctx);
}

/* The widened path works in 256 x 256 x 256 tiles: shapes crossing every tile edge, each
 * transpose, 16-bit C read back (beta != 0) and not read (beta = 0). */
static void test_gemm_widened_tiles(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int tr = 0; tr < 4; tr++) {
    run_case(ctx, DS_DTYPE_BF16, DS_DTYPE_BF16, DS_DTYPE_BF16, tr & 1, tr >> 1, 0, 0, 300, 270,
             530, 1.0f, tr == 3 ? 0.0f : 0.75f);
    run_case(ctx, DS_DTYPE_F16, DS_DTYPE_F32, DS_DTYPE_F32, tr & 1, tr >> 1, 0, 0, 257, 513,
             256, 0.5f, tr == 1 ? -1.0f : 0.0f);
  }
  run_case(ctx, DS_DTYPE_F32, DS_DTYPE_BF16, DS_DTYPE_F16, 0, 1, 2, 1, 260, 40, 300, 1.0f, 1.0f);
  run_case(ctx, DS_DTYPE_F16, DS_DTYPE_F32, DS_DTYPE_BF16, 0, 0, 0, 0, 40, 300, 0, 1.0f, 0.5f);
  run_case(ctx, DS_DTYPE_F16, DS_DTYPE_F32, DS_DTYPE_F32, 1, 0, 0, 0, 40, 300, 0, 1.0f, 0.0f);
  ds_context_destroy(ctx);
}

static void test_gemm_isa_levels(void **state) {
  (void)state; /* the skinny kernel at every level the CPU has: both weight layouts */
  ds_context *ctx = ds_test_context(NULL, 0);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_PRECISION_SKINNY_MAX_M, 64), DS_OK);
  for (int isa = DS_PRECISION_ISA_SCALAR; isa <= (int)ds__prec_cpu_isa(); isa++) {
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_PRECISION_ISA, isa), DS_OK);
    for (int tb = 0; tb < 2; tb++)
      for (int w = 1; w < 3; w++) {
        run_case(ctx, DS_DTYPE_F32, dts[w], DS_DTYPE_F32, 0, tb, 0, 0, 13, 37, 517, 1.0f, 0.0f);
        run_case(ctx, DS_DTYPE_F32, dts[w], DS_DTYPE_F32, 0, tb, 0, 0, 64, 48, 256, 2.0f, 0.5f);
        run_case(ctx, DS_DTYPE_BF16, dts[w], DS_DTYPE_BF16, 1, tb, 0, 0, 3, 16, 9, 1.0f, 1.0f);
        run_case(ctx, DS_DTYPE_F32, dts[w], DS_DTYPE_F32, 0, tb, 0, 0, 1, 29, 70, 1.0f, 0.0f);
      }
  }
  ds_context_destroy(ctx);
}

static void test_gemm_batched(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int i = 0; i < 3; i++) {
    run_case(ctx, dts[i], dts[i], DS_DTYPE_F32, 0, 1, 3, 1, 8, 24, 40, 1.0f, 0.0f);
    run_case(ctx, DS_DTYPE_F32, dts[i], dts[i], 1, 0, 4, 0, 90, 10, 33, 1.0f, 1.0f);
  }
  /* A with batch stride 0: every entry reads the same A */
  mat a, b, c, c0;
  mat_init(&a, DS_DTYPE_F32, 2, 4, 6, 6);
  mat_init(&b, DS_DTYPE_BF16, 2, 6, 5, 5);
  mat_init(&c, DS_DTYPE_F32, 2, 4, 5, 5);
  mat_init(&c0, DS_DTYPE_F32, 2, 4, 5, 5);
  fill(&a), fill(&b);
  a.t.strides[0] = 0;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1.0f, 0.0f), DS_OK);
  check(&c, &c0, &a, &b, 0, 0, 2, 4, 5, 6, 1.0f, 0.0f);
  free(a.mem), free(b.mem), free(c.mem), free(c0.mem);
  ds_context_destroy(ctx);
}

static void test_gemm_k_zero_and_empty(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int i = 0; i < 3; i++) {
    mat a, b, c;
    mat_init(&a, dts[i], 0, 3, 0, 1);
    mat_init(&b, dts[i], 0, 0, 4, 4);
    mat_init(&c, dts[i], 0, 3, 4, 4);
    for (int j = 0; j < 12; j++) set(&c, 0, j / 4, j % 4, 2.0f);
    assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1.0f, 0.5f), DS_OK);
    for (int j = 0; j < 12; j++) assert_true(get(&c, 0, j / 4, j % 4) == 1.0);
    assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1.0f, 0.0f), DS_OK);
    for (int j = 0; j < 12; j++) assert_true(get(&c, 0, j / 4, j % 4) == 0.0);
    free(a.mem), free(b.mem), free(c.mem);
  }
  ds_context_destroy(ctx);
}

static void test_gemm_errors(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  mat a, b, c;
  mat_init(&a, DS_DTYPE_F32, 0, 4, 5, 5);
  mat_init(&b, DS_DTYPE_F32, 0, 6, 7, 7);
  mat_init(&c, DS_DTYPE_F32, 0, 4, 7, 7);
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_SHAPE);
  const char *msg = ds_context_last_error(ctx);
  assert_non_null(strstr(msg, "[4, 5]"));
  assert_non_null(strstr(msg, "[6, 7]"));
  assert_non_null(strstr(msg, "[4, 7]"));
  b.t.shape[0] = 5;
  c.t.shape[1] = 6;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_SHAPE);
  c.t.shape[1] = 7;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, DS_GEMM_TRANS_A, 1, 0), DS_ERR_SHAPE);
  assert_non_null(strstr(ds_context_last_error(ctx), "transposed"));
  a.t.dtype = DS_DTYPE_I32;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_DTYPE);
  a.t.dtype = DS_DTYPE_F32;
  a.t.strides[1] = 2;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_INVALID_ARG);
  a.t.strides[1] = 1, a.t.strides[0] = 3;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_INVALID_ARG);
  a.t.strides[0] = 5, a.t.ndim = 1;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_INVALID_ARG);
  a.t.ndim = 2;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0x10, 1, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_gemm(ctx, NULL, &a.t, &b.t, 0, 1, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_gemm(NULL, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_INVALID_ARG);
  c.t.device.type = DS_DEVICE_CUDA;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_ERR_UNSUPPORTED);
  c.t.device.type = DS_DEVICE_CPU;
  assert_int_equal(ds_gemm(ctx, &c.t, &a.t, &b.t, 0, 1, 0), DS_OK);
  /* batch mismatch */
  mat a3, c3;
  mat_init(&a3, DS_DTYPE_F32, 2, 4, 5, 5);
  mat_init(&c3, DS_DTYPE_F32, 3, 4, 7, 7);
  assert_int_equal(ds_gemm(ctx, &c3.t, &a3.t, &b.t, 0, 1, 0), DS_ERR_SHAPE);
  assert_int_equal(ds_gemm(ctx, &c.t, &a3.t, &b.t, 0, 1, 0), DS_ERR_SHAPE);
  free(a3.mem), free(c3.mem);
  free(a.mem), free(b.mem), free(c.mem);
  ds_context_destroy(ctx);
}

/* The oneDNN path itself (strides for transposes and padding, alpha as output scale, beta as
 * a sum post-op, 16-bit outputs) in test mode: fp32 problems go through oneDNN as well, so the
 * code runs on a CPU where oneDNN has no bf16/fp16 matmul (there, those fall back). */
static void test_gemm_onednn_path(void **state) {
  (void)state;
  ds__gemm_dnnl_test_mode = 1;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int d = 0; d < 3; d++)
    for (int tr = 0; tr < 4; tr++) {
      run_case(ctx, dts[d], dts[d], DS_DTYPE_F32, tr & 1, tr >> 1, 0, 0, 67, 21, 45, 1.0f, 0.0f);
      run_case(ctx, dts[d], dts[d], dts[d], tr & 1, tr >> 1, 0, 0, 80, 8, 16, 0.5f, -2.0f);
      run_case(ctx, dts[d], dts[d], DS_DTYPE_F32, tr & 1, tr >> 1, 0, 0, 3, 8, 16, 2.0f, 0.5f);
      run_case(ctx, dts[d], dts[d], DS_DTYPE_F32, tr & 1, tr >> 1, 2, 1, 66, 5, 7, 1.0f, 1.0f);
    }
  ds_stats *st = NULL;
  double v = 0;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, st, "precision.gemm.onednn"), DS_OK);
  ds_stats_free(st);
  printf("precision: %.0f problems through oneDNN\n", v);
  assert_true(v >= 16); /* at least the fp32 problems */
  ds_context_destroy(ctx);
  ds__gemm_dnnl_test_mode = 0;
}

typedef struct thread_arg {
  ds_context *ctx;
  int id;
} thread_arg;

static void *cache_worker(void *p) {
  thread_arg *t = p;
  for (int r = 0; r < 12; r++) { /* 4 threads x 12 shapes > 32 cache slots: evictions */
    int64_t m = 65 + (t->id * 12 + r) % 40;
    ds_dtype d = (r % 2) ? DS_DTYPE_BF16 : DS_DTYPE_F16;
    run_case(t->ctx, d, d, r % 3 ? DS_DTYPE_F32 : d, r % 2, r % 3 == 1, 0, 0, m, 9, 20, 1.0f,
             r % 4 == 1 ? 0.25f : 0.0f);
  }
  return NULL;
}

static void test_gemm_cache_concurrent(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  pthread_t th[4];
  thread_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i].ctx = ctx, args[i].id = i;
    assert_int_equal(pthread_create(&th[i], NULL, cache_worker, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  ds_context_destroy(ctx);
}

/* What a task saw: OpenBLAS's count while inside the cap, the worker's OpenMP count after a
 * ds_gemm, and whether its GEMM was right. */
typedef struct blas_task_arg {
  ds_context *ctx;
  int inside, omp_after, entered, gemm_ok;
} blas_task_arg;

static ds_status blas_task(void *p) {
  blas_task_arg *t = p;
  int e = ds__prec_blas_enter(t->ctx);
  t->entered = e;
  t->inside = openblas_get_num_threads();
  ds__prec_blas_leave(e);
  float a[48 * 40], b[40 * 36], c[48 * 36];
  for (int i = 0; i < 48 * 40; i++) a[i] = (float)(i % 7) - 3.0f;
  for (int i = 0; i < 40 * 36; i++) b[i] = (float)(i % 5) - 2.0f;
  ds_tensor ta, tb, tc;
  ds_device cpu = {DS_DEVICE_CPU, 0};
  ds_tensor_init(&ta, t->ctx, a, DS_DTYPE_F32, 2, (int64_t[]){48, 40}, NULL, cpu);
  ds_tensor_init(&tb, t->ctx, b, DS_DTYPE_F32, 2, (int64_t[]){40, 36}, NULL, cpu);
  ds_tensor_init(&tc, t->ctx, c, DS_DTYPE_F32, 2, (int64_t[]){48, 36}, NULL, cpu);
  t->gemm_ok = ds_gemm(t->ctx, &tc, &ta, &tb, 0, 1.0f, 0.0f) == DS_OK;
  for (int i = 0; i < 48 && t->gemm_ok; i++)
    for (int j = 0; j < 36; j++) {
      double r = 0;
      for (int k = 0; k < 40; k++) r += (double)a[i * 40 + k] * b[k * 36 + j];
      if (c[i * 36 + j] != (float)r) t->gemm_ok = 0;
    }
  int (*omp_get)(void) = NULL;
  *(void **)&omp_get = dlsym(RTLD_DEFAULT, "omp_get_max_threads");
  t->omp_after = omp_get ? omp_get() : -1;
  return DS_OK;
}

static void run_blas_tasks(int64_t cap, blas_task_arg *args, int n) {
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_PRECISION_TASK_BLAS_THREADS, 0, cap}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = 3;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  ds_task *tasks[8];
  for (int i = 0; i < n; i++) {
    args[i] = (blas_task_arg){ctx, -1, -1, -1, 0};
    assert_int_equal(ds_task_submit(&tasks[i], ctx, blas_task, &args[i], NULL), DS_OK);
  }
  for (int i = 0; i < n; i++) {
    assert_int_equal(ds_task_wait(tasks[i], -1), DS_OK);
    ds_task_release(tasks[i]);
  }
  ds_context_destroy(ctx);
}

static void test_gemm_blas_threads_in_tasks(void **state) {
  (void)state;
  int before = openblas_get_num_threads();
  assert_int_equal(ds__prec_blas_enter(NULL), 0); /* not in a task: nothing changes */
  blas_task_arg args[8];
  run_blas_tasks(1, args, 8); /* default cap 1: every task sees one BLAS thread */
  for (int i = 0; i < 8; i++) {
    assert_int_equal(args[i].entered, 1);
    assert_int_equal(args[i].inside, 1);
    assert_true(args[i].gemm_ok);
    if (args[i].omp_after != -1) assert_int_equal(args[i].omp_after, 1);
  }
  assert_int_equal(openblas_get_num_threads(), before); /* restored after the last task */
  run_blas_tasks(0, args, 2); /* 0: the libraries are left alone */
  for (int i = 0; i < 2; i++) {
    assert_int_equal(args[i].entered, 0);
    assert_int_equal(args[i].inside, before);
    assert_true(args[i].gemm_ok);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gemm_all_dtypes_and_transposes),
      cmocka_unit_test(test_gemm_widened_tiles),
      cmocka_unit_test(test_gemm_isa_levels),
      cmocka_unit_test(test_gemm_batched),
      cmocka_unit_test(test_gemm_k_zero_and_empty),
      cmocka_unit_test(test_gemm_errors),
      cmocka_unit_test(test_gemm_onednn_path),
      cmocka_unit_test(test_gemm_cache_concurrent),
      cmocka_unit_test(test_gemm_blas_threads_in_tasks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
