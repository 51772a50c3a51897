/* Tests of the training kernels on tensors (ds_*_tensor): every kernel, forward and backward,
 * with fp32, fp16 and bf16 inputs and outputs in every pairing, against fp64 references
 * within the per-dtype bounds the header states (half an ulp of the output format relative to
 * the element, plus the fp32 kernel's error relative to the row's scale), on a problem large
 * enough that the CPU path works in several row blocks. The same suite runs three ways: the
 * CPU kernels; the CUDA kernel code executed on the host (builds with CUDA); and the CUDA
 * kernels on a GPU when there is one, softmax through cuDNN and then through our own kernels
 * (skipped with a message otherwise; DS_REQUIRE_GPU=1 makes that a failure). Also shape,
 * dtype, device and label errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "cuda_backend.h"
#include "precision_internal.h"
#include "test_util.h"

#define R 37  /* rows: 300 columns make blocks of 27 rows, so two blocks */
#define C 300
#define N (R * C)
#define VOCAB 11

static const ds_dtype dts[3] = {DS_DTYPE_F32, DS_DTYPE_F16, DS_DTYPE_BF16};
static int on_gpu; /* operands in CUDA device memory */
static ds_context *ctx;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53 * 4.0 - 2.0;
}

/* ---- operands: host or device memory, filled from doubles rounded to the dtype ---- */

typedef struct opnd {
  ds_tensor t;
  void *host; /* the bytes, on the host */
  size_t bytes;
} opnd;

static double unit(ds_dtype dt) {
  return dt == DS_DTYPE_F16 ? 0x1p-11 : dt == DS_DTYPE_BF16 ? 0x1p-8 : 0.0;
}

static void put(ds_dtype dt, void *p, int64_t i, double v) {
  if (dt == DS_DTYPE_F32) ((float *)p)[i] = (float)v;
  else if (dt == DS_DTYPE_F16) ((uint16_t *)p)[i] = ds__f32_to_f16((float)v);
  else if (dt == DS_DTYPE_BF16) ((uint16_t *)p)[i] = ds__f32_to_bf16((float)v);
  else ((int32_t *)p)[i] = (int32_t)v;
}
static double get(ds_dtype dt, const void *p, int64_t i) {
  if (dt == DS_DTYPE_F32) return ((const float *)p)[i];
  if (dt == DS_DTYPE_F16) return ds__f16_to_f32(((const uint16_t *)p)[i]);
  if (dt == DS_DTYPE_BF16) return ds__bf16_to_f32(((const uint16_t *)p)[i]);
  return ((const int32_t *)p)[i];
}

/* A [rows, cols] operand of dtype dt from v (NULL: zeros); v is overwritten with the values
 * actually stored (rounded), so the references see what the kernels see. */
static void mk(opnd *o, ds_dtype dt, int64_t rows, int64_t cols, double *v) {
  int64_t n = rows * cols;
  o->bytes = (size_t)n * ds_dtype_size(dt);
  o->host = calloc(1, o->bytes + 4);
  assert_non_null(o->host);
  for (int64_t i = 0; i < n && v; i++) put(dt, o->host, i, v[i]), v[i] = get(dt, o->host, i);
  void *data = o->host;
  ds_device dev = {DS_DEVICE_CPU, 0};
#if DS_HAVE_CUDA
  if (on_gpu) {
    assert_int_equal(ds__cuda_test_alloc(&data, o->bytes + 4), DS_OK);
    assert_int_equal(ds__cuda_test_copy(data, o->host, o->bytes, 0), DS_OK);
    dev.type = DS_DEVICE_CUDA;
  }
#endif
  int64_t shape[2] = {rows, cols};
  assert_int_equal(ds_tensor_init(&o->t, ctx, data, dt, 2, shape, NULL, dev), DS_OK);
}

/* The operand's values now (copied back from the device). */
static double at(opnd *o, int64_t i) {
#if DS_HAVE_CUDA
  if (on_gpu && i == 0)
    assert_int_equal(ds__cuda_test_copy(o->host, o->t.data, o->bytes, 1), DS_OK);
#endif
  return get((ds_dtype)o->t.dtype, o->host, i);
}

static void drop(opnd *o) {
#if DS_HAVE_CUDA
  if (on_gpu) ds__cuda_test_free(o->t.data);
#endif
  free(o->host);
}

/* |got - want| <= unit(out) |want| + rel * scale, with the element and the scale named. */
static void close_to(opnd *o, const double *want, int64_t n, const double *scale, int per_row,
                     double rel, const char *what) {
  double u = unit((ds_dtype)o->t.dtype);
  for (int64_t i = 0; i < n; i++) {
    double g = at(o, i), w = want[i], s = scale ? scale[per_row ? i / C : i] : fabs(w);
    double tol = u * fabs(w) + rel * s + (o->t.dtype == DS_DTYPE_F16 ? 0x1p-24 : 1e-30);
    if (!(fabs(g - w) <= tol))
      fail_msg("%s (%s, %s): element %lld is %.9g, reference %.9g, bound %.3g", what,
               ds_dtype_name((ds_dtype)o->t.dtype), on_gpu ? "gpu" : "host", (long long)i, g, w,
               tol);
  }
}

/* Per-row max |v| into s[R]. */
static void row_scale(const double *v, double *s) {
  for (int i = 0; i < R; i++) {
    s[i] = 0;
    for (int j = 0; j < C; j++) s[i] = fmax(s[i], fabs(v[i * C + j]));
  }
}

static void fill(double *v, int64_t n, double scale) {
  for (int64_t i = 0; i < n; i++) v[i] = rnd() * scale;
}

/* ---- references ---- */

static double act_ref(double v, int act, double *grad) {
  const double k = sqrt(2 / M_PI), a = 0.044715;
  double t = tanh(k * (v + a * v * v * v)), s = 1 / (1 + exp(-v));
  switch (act) {
  case DS_ACT_RELU: *grad = v > 0; return v > 0 ? v : 0;
  case DS_ACT_GELU:
    *grad = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * a * v * v);
    return 0.5 * v * (1 + t);
  case DS_ACT_SILU: *grad = s * (1 + v * (1 - s)); return v * s;
  default: *grad = 1; return v;
  }
}

static double xv[N], dy[N], yv[N], ref[N], ref2[N], sc[N], bv[C], gam[C], bet[C], vr[C], vr2[C];

/* ---- the suite, for one pair of dtypes (in: xv and dy; out: yv and dx) ---- */

static void check_bias_act(ds_dtype in, ds_dtype out) {
  for (int act = DS_ACT_NONE; act <= DS_ACT_SILU; act++) {
    fill(xv, N, 2), fill(dy, N, 1), fill(bv, C, 0.5);
    opnd X, Y, DY, DX, B, DB;
    mk(&X, in, R, C, xv), mk(&DY, in, R, C, dy), mk(&B, DS_DTYPE_F32, 1, C, bv);
    mk(&Y, out, R, C, NULL), mk(&DX, out, R, C, NULL), mk(&DB, DS_DTYPE_F32, 1, C, NULL);
    assert_int_equal(ds_bias_act_forward_tensor(ctx, &Y.t, &X.t, &B.t, (ds_activation)act), DS_OK);
    assert_int_equal(ds_bias_act_backward_tensor(ctx, &DX.t, &DB.t, &DY.t, &X.t, &B.t,
                                                 (ds_activation)act), DS_OK);
    for (int j = 0; j < C; j++) vr[j] = vr2[j] = 0;
    /* the fp32 kernel's error scales with |xv + bv| (GELU's 1 + tanh cancels for xv << 0) */
    for (int i = 0; i < N; i++) {
      double g, v = xv[i] + bv[i % C];
      ref[i] = act_ref(v, act, &g);
      ref2[i] = dy[i] * g;
      sc[i] = fabs(ref[i]) + fabs(v);
      yv[i] = fabs(dy[i]) * (fabs(g) + fabs(v));
      vr[i % C] += ref2[i], vr2[i % C] += yv[i];
    }
    close_to(&Y, ref, N, sc, 0, 2e-6, "bias_act forward");
    close_to(&DX, ref2, N, yv, 0, 4e-6, "bias_act backward dx");
    close_to(&DB, vr, C, vr2, 0, 1e-5, "bias_act backward dbias");
    drop(&X), drop(&Y), drop(&DY), drop(&DX), drop(&B), drop(&DB);
  }
}

static void check_softmax(ds_dtype in, ds_dtype out) {
  for (int lg = 0; lg <= 1; lg++) {
    fill(xv, N, 3), fill(dy, N, 1);
    opnd X, Y, DY, DX, YIN;
    mk(&X, in, R, C, xv), mk(&DY, in, R, C, dy), mk(&Y, out, R, C, NULL), mk(&DX, out, R, C, NULL);
    assert_int_equal(ds_softmax_forward_tensor(ctx, &Y.t, &X.t, lg), DS_OK);
    for (int i = 0; i < R; i++) {
      double mx = xv[i * C], s = 0;
      for (int j = 0; j < C; j++) mx = fmax(mx, xv[i * C + j]);
      for (int j = 0; j < C; j++) s += exp(xv[i * C + j] - mx);
      for (int j = 0; j < C; j++) {
        double z = xv[i * C + j] - mx;
        ref[i * C + j] = lg ? z - log(s) : exp(z) / s;
        sc[i * C + j] = lg ? fabs(z) + fabs(log(s)) : fabs(ref[i * C + j]);
      }
    }
    close_to(&Y, ref, N, sc, 0, 1e-6, "softmax forward");
    /* backward from the forward output as the kernel stores it (yv in the in dtype) */
    for (int i = 0; i < N; i++) yv[i] = ref[i];
    mk(&YIN, in, R, C, yv);
    assert_int_equal(ds_softmax_backward_tensor(ctx, &DX.t, &DY.t, &YIN.t, lg), DS_OK);
    for (int i = 0; i < R; i++) {
      double s = 0, sa = 0;
      for (int j = 0; j < C; j++) {
        double t = lg ? dy[i * C + j] : dy[i * C + j] * yv[i * C + j];
        s += t, sa += fabs(t);
      }
      for (int j = 0; j < C; j++) {
        double yy = yv[i * C + j], g = dy[i * C + j];
        ref[i * C + j] = lg ? g - exp(yy) * s : yy * (g - s);
        sc[i * C + j] = lg ? fabs(g) + exp(yy) * sa : fabs(yy) * (fabs(g) + sa);
      }
    }
    close_to(&DX, ref, N, sc, 0, 2e-6, "softmax backward");
    drop(&X), drop(&Y), drop(&DY), drop(&DX), drop(&YIN);
  }
}

/* LayerNorm (rms = 0) or RMSNorm (rms = 1), forward then backward from the kernel's stats. */
static void check_norm(ds_dtype in, ds_dtype out, int rms) {
  fill(xv, N, 2), fill(dy, N, 1), fill(gam, C, 1), fill(bet, C, 0.5);
  for (int i = 0; i < N; i++) xv[i] += (double)(i / C % 5) - 2; /* rows off zero mean */
  opnd X, Y, DY, DX, G, BT, MU, RS, DG, DB;
  mk(&X, in, R, C, xv), mk(&DY, in, R, C, dy), mk(&Y, out, R, C, NULL), mk(&DX, out, R, C, NULL);
  mk(&G, DS_DTYPE_F32, 1, C, gam), mk(&BT, DS_DTYPE_F32, 1, C, bet);
  mk(&MU, DS_DTYPE_F32, 1, R, NULL), mk(&RS, DS_DTYPE_F32, 1, R, NULL);
  mk(&DG, DS_DTYPE_F32, 1, C, NULL), mk(&DB, DS_DTYPE_F32, 1, C, NULL);
  const float eps = 1e-5f;
  if (rms) {
    assert_int_equal(ds_rmsnorm_forward_tensor(ctx, &Y.t, &RS.t, &X.t, &G.t, eps), DS_OK);
    assert_int_equal(ds_rmsnorm_backward_tensor(ctx, &DX.t, &DG.t, &DY.t, &X.t, &RS.t, &G.t),
                     DS_OK);
  } else {
    assert_int_equal(ds_layernorm_forward_tensor(ctx, &Y.t, &MU.t, &RS.t, &X.t, &G.t, &BT.t, eps),
                     DS_OK);
    assert_int_equal(ds_layernorm_backward_tensor(ctx, &DX.t, &DG.t, &DB.t, &DY.t, &X.t, &MU.t,
                                                  &RS.t, &G.t), DS_OK);
  }
  double mu_r[R], r_r[R], rs[R];
  for (int j = 0; j < C; j++) vr[j] = vr2[j] = 0;
  for (int i = 0; i < R; i++) {
    const double *xr = xv + i * C;
    double s = 0, s2 = 0;
    for (int j = 0; j < C; j++) s += xr[j];
    double mu = rms ? 0 : s / C;
    for (int j = 0; j < C; j++) s2 += (xr[j] - mu) * (xr[j] - mu);
    mu_r[i] = mu, r_r[i] = 1 / sqrt(s2 / C + eps);
    double sd = 0, sdx = 0, sabs = 0;
    for (int j = 0; j < C; j++) {
      double xh = (xr[j] - mu) * r_r[i], d = dy[i * C + j] * gam[j];
      ref[i * C + j] = xh * gam[j] + (rms ? 0 : bet[j]);
      sd += d, sdx += d * xh, sabs += fabs(d) * (1 + fabs(xh));
      vr[j] += dy[i * C + j] * xh, vr2[j] += fabs(dy[i * C + j] * xh);
    }
    sd /= C, sdx /= C;
    rs[i] = r_r[i] * (sabs / C + 1);
    for (int j = 0; j < C; j++) {
      double xh = (xr[j] - mu) * r_r[i], d = dy[i * C + j] * gam[j];
      ref2[i * C + j] = r_r[i] * (d - (rms ? 0 : sd) - xh * sdx);
    }
  }
  row_scale(ref, sc);
  close_to(&Y, ref, N, sc, 1, 2e-6, rms ? "rmsnorm forward" : "layernorm forward");
  close_to(&DX, ref2, N, rs, 1, 4e-6, rms ? "rmsnorm backward" : "layernorm backward");
  close_to(&RS, r_r, R, NULL, 0, 1e-6, "norm rstd");
  close_to(&DG, vr, C, vr2, 0, 1e-5, "norm dgamma");
  if (!rms) {
    double sabs[R];
    for (int i = 0; i < R; i++) sabs[i] = fabs(mu_r[i]) + 1;
    close_to(&MU, mu_r, R, sabs, 0, 1e-6, "layernorm mean");
    for (int j = 0; j < C; j++) vr[j] = vr2[j] = 0;
    for (int i = 0; i < N; i++) vr[i % C] += dy[i], vr2[i % C] += fabs(dy[i]);
    close_to(&DB, vr, C, vr2, 0, 1e-5, "layernorm dbeta");
  }
  drop(&X), drop(&Y), drop(&DY), drop(&DX), drop(&G), drop(&BT), drop(&MU), drop(&RS);
  drop(&DG), drop(&DB);
}

static void check_cross_entropy(ds_dtype in, ds_dtype out) {
  fill(xv, N, 4);
  double lab[R];
  for (int i = 0; i < R; i++) lab[i] = (i * 37) % C;
  opnd L, DL, LB;
  mk(&L, in, R, C, xv), mk(&DL, out, R, C, NULL), mk(&LB, DS_DTYPE_I32, 1, R, lab);
  float loss = -1;
  assert_int_equal(ds_cross_entropy_tensor(ctx, &loss, &DL.t, &L.t, &LB.t), DS_OK);
  double total = 0, tabs = 0;
  for (int i = 0; i < R; i++) {
    double mx = xv[i * C], s = 0;
    for (int j = 0; j < C; j++) mx = fmax(mx, xv[i * C + j]);
    for (int j = 0; j < C; j++) s += exp(xv[i * C + j] - mx);
    double lse = mx + log(s);
    total += lse - xv[i * C + (int)lab[i]], tabs += fabs(lse) + fabs(xv[i * C + (int)lab[i]]);
    for (int j = 0; j < C; j++) {
      ref[i * C + j] = (exp(xv[i * C + j] - lse) - (j == (int)lab[i])) / R;
      sc[i * C + j] = 1.0 / R;
    }
  }
  if (!(fabs(loss - total / R) <= 1e-6 * tabs / R))
    fail_msg("cross_entropy loss %.9g, reference %.9g", loss, total / R);
  close_to(&DL, ref, N, sc, 0, 1e-6, "cross_entropy dlogits");
  float loss2 = -1; /* without the gradient */
  assert_int_equal(ds_cross_entropy_tensor(ctx, &loss2, NULL, &L.t, &LB.t), DS_OK);
  assert_true(fabsf(loss2 - loss) <= 1e-6f * fabsf(loss));
  drop(&L), drop(&DL), drop(&LB);
}

static void check_embedding(ds_dtype in, ds_dtype out) {
  double tab[VOCAB * C], ids[R];
  fill(tab, VOCAB * C, 1), fill(dy, N, 1);
  for (int i = 0; i < R; i++) ids[i] = (i * 7) % VOCAB;
  opnd T, Y, I, DY, DT;
  mk(&T, in, VOCAB, C, tab), mk(&Y, out, R, C, NULL), mk(&I, DS_DTYPE_I32, 1, R, ids);
  mk(&DY, in, R, C, dy), mk(&DT, DS_DTYPE_F32, VOCAB, C, NULL);
  assert_int_equal(ds_embedding_forward_tensor(ctx, &Y.t, &T.t, &I.t), DS_OK);
  assert_int_equal(ds_embedding_backward_tensor(ctx, &DT.t, &DY.t, &I.t), DS_OK);
  static double dref[VOCAB * C], dabs[VOCAB * C];
  memset(dref, 0, sizeof dref), memset(dabs, 0, sizeof dabs);
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) {
      ref[i * C + j] = tab[(int)ids[i] * C + j];
      dref[(int)ids[i] * C + j] += dy[i * C + j], dabs[(int)ids[i] * C + j] += fabs(dy[i * C + j]);
    }
  close_to(&Y, ref, N, NULL, 0, 0, "embedding forward");
  close_to(&DT, dref, VOCAB * C, dabs, 0, 1e-6, "embedding backward");
  drop(&T), drop(&Y), drop(&I), drop(&DY), drop(&DT);
}

static void check_elementwise_reduce(ds_dtype in, ds_dtype out) {
  fill(xv, N, 3), fill(dy, N, 3);
  opnd A, B, Y;
  mk(&A, in, R, C, xv), mk(&B, in, 1, N, dy), mk(&Y, out, N, 1, NULL); /* shapes differ, n equal */
  for (int op = DS_EW_ADD; op <= DS_EW_SCALE; op++) {
    assert_int_equal(ds_elementwise_tensor(ctx, (ds_elementwise_op)op, &Y.t, &A.t, &B.t, 0.75f),
                     DS_OK);
    for (int i = 0; i < N; i++)
      ref[i] = op == DS_EW_ADD ? xv[i] + dy[i] : op == DS_EW_MUL ? xv[i] * dy[i] : 0.75 * xv[i];
    for (int i = 0; i < N; i++)
      sc[i] = op == DS_EW_ADD ? fabs(xv[i]) + fabs(dy[i]) : fabs(ref[i]);
    close_to(&Y, ref, N, sc, 0, 1.2e-7, "elementwise");
  }
  double s = 0, sa = 0, amax = 0, got;
  for (int i = 0; i < N; i++) s += xv[i], sa += fabs(xv[i]), amax = fmax(amax, fabs(xv[i]));
  assert_int_equal(ds_reduce_tensor(ctx, &got, DS_REDUCE_SUM, &A.t), DS_OK);
  assert_true(fabs(got - s) <= 1e-12 * sa);
  assert_int_equal(ds_reduce_tensor(ctx, &got, DS_REDUCE_AMAX, &A.t), DS_OK);
  assert_true(got == amax);
  assert_int_equal(ds_reduce_tensor(ctx, &got, DS_REDUCE_ALL_FINITE, &A.t), DS_OK);
  assert_true(got == 1.0);
  drop(&A), drop(&B), drop(&Y);
  xv[N / 2] = INFINITY;
  mk(&A, in, R, C, xv);
  assert_int_equal(ds_reduce_tensor(ctx, &got, DS_REDUCE_ALL_FINITE, &A.t), DS_OK);
  assert_true(got == 0.0);
  drop(&A);
}

static void run_suite(void) {
  for (int i = 0; i < 3; i++)
    for (int o = 0; o < 3; o++) {
      check_bias_act(dts[i], dts[o]);
      check_softmax(dts[i], dts[o]);
      check_norm(dts[i], dts[o], 0);
      check_norm(dts[i], dts[o], 1);
      check_cross_entropy(dts[i], dts[o]);
      check_embedding(dts[i], dts[o]);
      check_elementwise_reduce(dts[i], dts[o]);
    }
}

static void test_cpu_kernels(void **state) {
  (void)state;
  ctx = ds_test_context(NULL, 0);
  run_suite();
  ds_context_destroy(ctx);
}

static void test_cuda_code_on_host(void **state) {
  (void)state;
#if DS_HAVE_CUDA
  ctx = ds_test_context(NULL, 0);
  ds__tk_host_emulation = 1;
  run_suite();
  ds__tk_host_emulation = 0;
  ds_context_destroy(ctx);
#else
  printf("precision: built without CUDA: the CUDA kernel code is not compiled, not run\n");
#endif
}

static int gpu_required(void) {
  const char *e = getenv("DS_REQUIRE_GPU");
  return e && !strcmp(e, "1");
}

static void test_cuda_kernels_on_gpu(void **state) {
  (void)state;
  ctx = ds_test_context(NULL, 0);
  if (!ds__cuda_present(ctx)) {
    printf("precision: no CUDA device: the GPU training-kernel tests are skipped (the same "
           "kernel code ran on the host above)\n");
    ds_context_destroy(ctx);
    if (gpu_required()) fail_msg("DS_REQUIRE_GPU=1 but no CUDA device is present");
    return;
  }
  on_gpu = 1;
  run_suite(); /* softmax through cuDNN where it loads */
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_PRECISION_CUDNN, 0), DS_OK);
  run_suite(); /* the library's own kernels for all */
  /* a bad label is found on the device */
  double lab[R] = {0}, v[N] = {0};
  lab[3] = C;
  opnd L, LB;
  mk(&L, DS_DTYPE_F32, R, C, v), mk(&LB, DS_DTYPE_I32, 1, R, lab);
  float loss;
  assert_int_equal(ds_cross_entropy_tensor(ctx, &loss, NULL, &L.t, &LB.t), DS_ERR_INVALID_ARG);
  drop(&L), drop(&LB);
  on_gpu = 0;
  ds_context_destroy(ctx);
}

static void test_errors(void **state) {
  (void)state;
  ctx = ds_test_context(NULL, 0);
  float xs[12] = {0}, ys[12], bs[4] = {0};
  int32_t lab[3] = {0, 1, 5}, ids[3] = {0, 1, 2};
  int64_t s34[2] = {3, 4}, s43[2] = {4, 3}, s3[1] = {3}, s4[1] = {4};
  ds_device cpu = {DS_DEVICE_CPU, 0}, gpu = {DS_DEVICE_CUDA, 0}, ocl = {DS_DEVICE_OPENCL, 0};
  ds_tensor x, y, yb, b, b3, l, i64, xg, xo, id;
  ds_tensor_init(&x, ctx, xs, DS_DTYPE_F32, 2, s34, NULL, cpu);
  ds_tensor_init(&y, ctx, ys, DS_DTYPE_F32, 2, s34, NULL, cpu);
  ds_tensor_init(&yb, ctx, ys, DS_DTYPE_F32, 2, s43, NULL, cpu);
  ds_tensor_init(&b, ctx, bs, DS_DTYPE_F32, 1, s4, NULL, cpu);
  ds_tensor_init(&b3, ctx, bs, DS_DTYPE_F32, 1, s3, NULL, cpu);
  ds_tensor_init(&l, ctx, lab, DS_DTYPE_I32, 1, s3, NULL, cpu);
  ds_tensor_init(&i64, ctx, xs, DS_DTYPE_I64, 1, s3, NULL, cpu);
  ds_tensor_init(&xg, ctx, xs, DS_DTYPE_F32, 2, s34, NULL, gpu);
  ds_tensor_init(&xo, ctx, xs, DS_DTYPE_F32, 2, s34, NULL, ocl);
  ds_tensor_init(&id, ctx, ids, DS_DTYPE_I32, 1, s3, NULL, cpu);
  assert_int_equal(ds_softmax_forward_tensor(NULL, &y, &x, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_softmax_forward_tensor(ctx, NULL, &x, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_softmax_forward_tensor(ctx, &yb, &x, 0), DS_ERR_SHAPE);
  assert_non_null(strstr(ds_context_last_error(ctx), "[4, 3]"));
  assert_int_equal(ds_bias_act_forward_tensor(ctx, &y, &x, &b3, DS_ACT_RELU), DS_ERR_SHAPE);
  assert_int_equal(ds_bias_act_forward_tensor(ctx, &y, &x, &b, (ds_activation)9),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cross_entropy_tensor(ctx, (float[1]){0}, NULL, &x, &l), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "label 5"));
  assert_int_equal(ds_cross_entropy_tensor(ctx, (float[1]){0}, NULL, &x, &i64), DS_ERR_DTYPE);
  assert_int_equal(ds_softmax_forward_tensor(ctx, &y, &i64, 0), DS_ERR_DTYPE);
  assert_int_equal(ds_softmax_forward_tensor(ctx, &y, &xo, 0), DS_ERR_UNSUPPORTED);
  /* mixed host and device */
  assert_int_equal(ds_softmax_forward_tensor(ctx, &y, &xg, 0), DS_ERR_UNSUPPORTED);
  ds_tensor yg = xg;
  if (!ds__cuda_present(ctx))
    assert_int_equal(ds_softmax_forward_tensor(ctx, &yg, &xg, 0),
                     DS_HAVE_CUDA ? DS_ERR_UNAVAILABLE : DS_ERR_UNSUPPORTED);
  ds_tensor tab3; /* embedding: ids out of a 3-row table */
  ds_tensor_init(&tab3, ctx, xs, DS_DTYPE_F32, 2, s34, NULL, cpu);
  ids[1] = 3;
  assert_int_equal(ds_embedding_forward_tensor(ctx, &y, &tab3, &id), DS_ERR_INVALID_ARG);
  ds_tensor t16; /* dtable must be f32 */
  ds_tensor_init(&t16, ctx, xs, DS_DTYPE_F16, 2, s34, NULL, cpu);
  ids[1] = 1;
  assert_int_equal(ds_embedding_backward_tensor(ctx, &t16, &y, &id), DS_ERR_DTYPE);
  ds_tensor ns = x; /* not contiguous */
  ns.strides[0] = 8;
  assert_int_equal(ds_softmax_forward_tensor(ctx, &y, &ns, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_elementwise_tensor(ctx, DS_EW_ADD, &y, &x, &b, 0), DS_ERR_SHAPE);
  assert_int_equal(ds_elementwise_tensor(ctx, DS_EW_ADD, &yb, &x, &y, 0), DS_OK); /* counts */
  double out;
  assert_int_equal(ds_reduce_tensor(ctx, NULL, DS_REDUCE_SUM, &x), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_reduce_tensor(ctx, &out, (ds_reduce_op)7, &x), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_kernels),
      cmocka_unit_test(test_cuda_code_on_host),
      cmocka_unit_test(test_cuda_kernels_on_gpu),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
