/* Tests of the training kernels: forward against fp64 references, backward against central
 * finite differences of those references (inputs and parameters), reductions on all three
 * dtypes with Inf/NaN, and argument errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "precision_internal.h"
#include "test_util.h"

#define R 3
#define C 7
#define N (R * C)

static uint64_t rng = 88172645463325252ull;
static double rnd(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1p-53 * 4.0 - 2.0;
}

enum { OP_ACT, OP_SOFTMAX, OP_LAYERNORM, OP_RMSNORM, OP_CE };

/* One problem, all in double (inputs are rounded to float so both sides see the same data). */
typedef struct prob {
  int op, act, log;
  double x[N], bias[C], gamma[C], beta[C], w[N];
  int32_t labels[R];
} prob;

static double act_ref(double v, int act) {
  switch (act) {
  case DS_ACT_RELU: return v > 0 ? v : 0;
  case DS_ACT_GELU: return 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
  case DS_ACT_SILU: return v / (1 + exp(-v));
  default: return v;
  }
}

/* y = op(x) in double; for OP_CE returns the loss. */
static double forward_ref(const prob *p, double *y) {
  double loss = 0;
  for (int i = 0; i < R; i++) {
    const double *x = p->x + i * C;
    double *yr = y + i * C, mx = x[0], s = 0, s2 = 0;
    for (int j = 1; j < C; j++) mx = fmax(mx, x[j]);
    for (int j = 0; j < C; j++) s += x[j], s2 += x[j] * x[j];
    double mu = s / C, var = 0, se = 0;
    for (int j = 0; j < C; j++) var += (x[j] - mu) * (x[j] - mu), se += exp(x[j] - mx);
    var /= C;
    for (int j = 0; j < C; j++) {
      switch (p->op) {
      case OP_ACT: yr[j] = act_ref(x[j] + p->bias[j], p->act); break;
      case OP_SOFTMAX: yr[j] = p->log ? x[j] - mx - log(se) : exp(x[j] - mx) / se; break;
      case OP_LAYERNORM: yr[j] = (x[j] - mu) / sqrt(var + 1e-5) * p->gamma[j] + p->beta[j]; break;
      case OP_RMSNORM: yr[j] = x[j] / sqrt(s2 / C + 1e-5) * p->gamma[j]; break;
      default: yr[j] = 0;
      }
    }
    if (p->op == OP_CE) loss += mx + log(se) - x[p->labels[i]];
  }
  return loss / R;
}

static double objective(const prob *p) {
  double y[N];
  double loss = forward_ref(p, y);
  if (p->op == OP_CE) return loss;
  double s = 0;
  for (int i = 0; i < N; i++) s += p->w[i] * y[i];
  return s;
}

/* Central differences of the objective w.r.t. arr[0..n) against the analytic gradient. */
static void fd_check(prob *p, double *arr, const float *grad, int n, const char *what) {
  for (int i = 0; i < n; i++) {
    double save = arr[i], h = 1e-5 * fmax(1.0, fabs(save));
    arr[i] = save + h;
    double lp = objective(p);
    arr[i] = save - h;
    double lm = objective(p);
    arr[i] = save;
    double fd = (lp - lm) / (2 * h);
    if (!(fabs(fd - grad[i]) <= 1e-4 + 1e-4 * fabs(fd))) {
      printf("%s op %d act %d log %d: gradient %d: analytic %.8g, finite difference %.8g\n", what,
             p->op, p->act, p->log, i, grad[i], fd);
      fail();
    }
  }
}

static void to_f(float *d, const double *s, int n) {
  for (int i = 0; i < n; i++) d[i] = (float)s[i];
}

static void check_close(const float *got, const double *want, int n, const char *what) {
  for (int i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= 1e-6 + 1e-5 * fabs(want[i]))) {
      printf("%s: element %d: %.9g, reference %.9g\n", what, i, got[i], want[i]);
      fail();
    }
}

static void new_prob(prob *p, int op) {
  memset(p, 0, sizeof *p);
  p->op = op;
  /* every input rounded to float: the kernels and the reference see the same numbers */
  for (int i = 0; i < N; i++) p->x[i] = (float)rnd(), p->w[i] = (float)rnd();
  for (int j = 0; j < C; j++)
    p->bias[j] = (float)rnd(), p->gamma[j] = (float)(1 + 0.5 * rnd()), p->beta[j] = (float)rnd();
  for (int i = 0; i < R; i++) p->labels[i] = (int32_t)((i * 5 + 2) % C);
}

static void test_bias_act(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int act = DS_ACT_NONE; act <= DS_ACT_SILU; act++) {
    prob p;
    new_prob(&p, OP_ACT);
    p.act = act;
    for (int i = 0; i < N; i++) /* keep ReLU away from its kink for the differences */
      if (act == DS_ACT_RELU && fabs(p.x[i] + p.bias[i % C]) < 1e-3) p.x[i] += 0.01;
    float x[N], b[C], y[N], dy[N], dx[N], db[C];
    double yr[N];
    to_f(x, p.x, N), to_f(b, p.bias, C), to_f(dy, p.w, N);
    assert_int_equal(ds_bias_act_forward(ctx, y, x, b, R, C, (ds_activation)act), DS_OK);
    forward_ref(&p, yr);
    check_close(y, yr, N, "bias_act forward");
    assert_int_equal(ds_bias_act_backward(ctx, dx, db, dy, x, b, R, C, (ds_activation)act), DS_OK);
    fd_check(&p, p.x, dx, N, "bias_act dx");
    fd_check(&p, p.bias, db, C, "bias_act dbias");
  }
  float v[4] = {1, 2, 3, 4};
  assert_int_equal(ds_bias_act_forward(ctx, v, v, NULL, 1, 4, (ds_activation)9), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_bias_act_forward(ctx, NULL, v, NULL, 1, 4, DS_ACT_RELU), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_bias_act_forward(ctx, v, v, NULL, -1, 4, DS_ACT_RELU), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

static void test_softmax(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int lg = 0; lg < 2; lg++) {
    prob p;
    new_prob(&p, OP_SOFTMAX);
    p.log = lg;
    float x[N], y[N], dy[N], dx[N];
    double yr[N];
    to_f(x, p.x, N), to_f(dy, p.w, N);
    assert_int_equal(ds_softmax_forward(ctx, y, x, R, C, lg), DS_OK);
    forward_ref(&p, yr);
    check_close(y, yr, N, "softmax forward");
    assert_int_equal(ds_softmax_backward(ctx, dx, dy, y, R, C, lg), DS_OK);
    fd_check(&p, p.x, dx, N, "softmax dx");
  }
  float big[3] = {1000.0f, 1000.0f, -1000.0f}, out[3]; /* no overflow: max subtracted */
  assert_int_equal(ds_softmax_forward(ctx, out, big, 1, 3, 0), DS_OK);
  assert_true(fabsf(out[0] - 0.5f) < 1e-6f && out[2] == 0.0f);
  ds_context_destroy(ctx);
}

static void test_norms(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (int rms = 0; rms < 2; rms++) {
    prob p;
    new_prob(&p, rms ? OP_RMSNORM : OP_LAYERNORM);
    float x[N], g[C], b[C], y[N], dy[N], dx[N], dg[C], dbeta[C], mean[R], rstd[R];
    double yr[N];
    to_f(x, p.x, N), to_f(g, p.gamma, C), to_f(b, p.beta, C), to_f(dy, p.w, N);
    if (rms) {
      assert_int_equal(ds_rmsnorm_forward(ctx, y, rstd, x, g, R, C, 1e-5f), DS_OK);
      assert_int_equal(ds_rmsnorm_backward(ctx, dx, dg, dy, x, rstd, g, R, C), DS_OK);
    } else {
      assert_int_equal(ds_layernorm_forward(ctx, y, mean, rstd, x, g, b, R, C, 1e-5f), DS_OK);
      assert_int_equal(ds_layernorm_backward(ctx, dx, dg, dbeta, dy, x, mean, rstd, g, R, C),
                       DS_OK);
      fd_check(&p, p.beta, dbeta, C, "layernorm dbeta");
    }
    forward_ref(&p, yr);
    check_close(y, yr, N, rms ? "rmsnorm forward" : "layernorm forward");
    fd_check(&p, p.x, dx, N, rms ? "rmsnorm dx" : "layernorm dx");
    fd_check(&p, p.gamma, dg, C, rms ? "rmsnorm dgamma" : "layernorm dgamma");
  }
  float x[N], y[N];
  assert_int_equal(ds_layernorm_backward(ctx, y, NULL, NULL, x, x, NULL, x, NULL, R, C),
                   DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

static void test_cross_entropy(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  prob p;
  new_prob(&p, OP_CE);
  float x[N], d[N], loss = 0;
  double yr[N];
  to_f(x, p.x, N);
  assert_int_equal(ds_cross_entropy(ctx, &loss, d, x, p.labels, R, C), DS_OK);
  double want = forward_ref(&p, yr);
  assert_true(fabs(loss - want) <= 1e-6 * fabs(want) + 1e-7);
  fd_check(&p, p.x, d, N, "cross_entropy dlogits");
  int32_t bad[R] = {0, C, 1};
  assert_int_equal(ds_cross_entropy(ctx, &loss, NULL, x, bad, R, C), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "label 7 of row 1"));
  /* in place: dlogits over the logits */
  assert_int_equal(ds_cross_entropy(ctx, &loss, x, x, p.labels, R, C), DS_OK);
  for (int i = 0; i < N; i++) assert_true(fabsf(x[i] - d[i]) <= 1e-7f);
  ds_context_destroy(ctx);
}

static void test_embedding_and_elementwise(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  float table[5 * 3], y[4 * 3], dt[5 * 3] = {0}, dy[4 * 3];
  int32_t ids[4] = {4, 0, 4, 2};
  for (int i = 0; i < 15; i++) table[i] = (float)i;
  for (int i = 0; i < 12; i++) dy[i] = (float)(i + 1);
  assert_int_equal(ds_embedding_forward(ctx, y, table, ids, 4, 5, 3), DS_OK);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) assert_true(y[i * 3 + j] == table[ids[i] * 3 + j]);
  assert_int_equal(ds_embedding_backward(ctx, dt, dy, ids, 4, 5, 3), DS_OK);
  assert_true(dt[4 * 3 + 1] == dy[0 * 3 + 1] + dy[2 * 3 + 1]); /* repeated id: summed */
  assert_true(dt[2 * 3 + 2] == dy[3 * 3 + 2] && dt[1 * 3] == 0.0f);
  ids[1] = 5;
  assert_int_equal(ds_embedding_forward(ctx, y, table, ids, 4, 5, 3), DS_ERR_INVALID_ARG);
  float a[5] = {1, 2, 3, 4, 5}, b[5] = {2, 2, 2, 2, -1}, o[5];
  assert_int_equal(ds_elementwise(ctx, DS_EW_ADD, o, a, b, 0, 5), DS_OK);
  assert_true(o[4] == 4.0f && o[0] == 3.0f);
  assert_int_equal(ds_elementwise(ctx, DS_EW_MUL, o, a, b, 0, 5), DS_OK);
  assert_true(o[4] == -5.0f && o[2] == 6.0f);
  assert_int_equal(ds_elementwise(ctx, DS_EW_SCALE, o, a, NULL, 0.5f, 5), DS_OK);
  assert_true(o[1] == 1.0f);
  assert_int_equal(ds_elementwise(ctx, DS_EW_ADD, o, a, NULL, 0, 5), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_elementwise(ctx, (ds_elementwise_op)7, o, a, b, 0, 5), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

static void test_reductions(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  enum { M = 5000 };
  float *f = malloc(M * sizeof *f);
  uint16_t *h = malloc(M * 2), *bf = malloc(M * 2);
  assert_true(f && h && bf);
  double sum = 0, amax = 0;
  for (int i = 0; i < M; i++) {
    f[i] = ds__f16_to_f32(ds__f32_to_f16((float)rnd())); /* exact in all three dtypes? f16 ok */
    f[i] = ds__bf16_to_f32(ds__f32_to_bf16(f[i]));
    sum += f[i], amax = fmax(amax, fabs(f[i]));
  }
  ds_precision_convert(ctx, h, DS_DTYPE_F16, f, DS_DTYPE_F32, M);
  ds_precision_convert(ctx, bf, DS_DTYPE_BF16, f, DS_DTYPE_F32, M);
  const void *bufs[3] = {f, h, bf};
  ds_dtype dts[3] = {DS_DTYPE_F32, DS_DTYPE_F16, DS_DTYPE_BF16};
  for (int d = 0; d < 3; d++) {
    double v = 0;
    assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_SUM, bufs[d], dts[d], M), DS_OK);
    assert_true(fabs(v - sum) <= 1e-9 * M);
    assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_AMAX, bufs[d], dts[d], M), DS_OK);
    assert_true(v == amax);
    assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_ALL_FINITE, bufs[d], dts[d], M), DS_OK);
    assert_true(v == 1.0);
  }
  h[4321] = 0x7c00;  /* +Inf in fp16 */
  bf[17] = 0xffc1;   /* NaN in bf16 */
  f[M - 1] = -INFINITY;
  double v = 0;
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_ALL_FINITE, h, DS_DTYPE_F16, M), DS_OK);
  assert_true(v == 0.0);
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_AMAX, h, DS_DTYPE_F16, M), DS_OK);
  assert_true(isinf(v));
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_ALL_FINITE, bf, DS_DTYPE_BF16, M), DS_OK);
  assert_true(v == 0.0);
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_AMAX, bf, DS_DTYPE_BF16, M), DS_OK);
  assert_true(isnan(v));
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_ALL_FINITE, f, DS_DTYPE_F32, M), DS_OK);
  assert_true(v == 0.0);
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_ALL_FINITE, f, DS_DTYPE_F32, 0), DS_OK);
  assert_true(v == 1.0);
  assert_int_equal(ds_reduce(ctx, &v, DS_REDUCE_SUM, f, DS_DTYPE_I32, 4), DS_ERR_DTYPE);
  assert_int_equal(ds_reduce(ctx, NULL, DS_REDUCE_SUM, f, DS_DTYPE_F32, 4), DS_ERR_INVALID_ARG);
  free(f), free(h), free(bf);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bias_act),      cmocka_unit_test(test_softmax),
      cmocka_unit_test(test_norms),         cmocka_unit_test(test_cross_entropy),
      cmocka_unit_test(test_embedding_and_elementwise), cmocka_unit_test(test_reductions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
