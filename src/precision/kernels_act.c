/* Training kernels: bias + activation (ReLU, GELU tanh form, SiLU) forward and backward,
 * elementwise add/mul/scale, and reductions (sum, amax, all-finite) over f32/f16/bf16. */
#include <math.h>

#include "kernels_internal.h"

#define DS__GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define DS__GELU_A 0.044715f

static float act_f(float v, ds_activation act) {
  switch (act) {
  case DS_ACT_RELU: return v > 0.0f ? v : 0.0f;
  case DS_ACT_GELU: return 0.5f * v * (1.0f + tanhf(DS__GELU_C * (v + DS__GELU_A * v * v * v)));
  case DS_ACT_SILU: return v / (1.0f + expf(-v));
  default: return v;
  }
}

static float act_grad(float v, ds_activation act) {
  switch (act) {
  case DS_ACT_RELU: return v > 0.0f ? 1.0f : 0.0f;
  case DS_ACT_GELU: {
    float t = tanhf(DS__GELU_C * (v + DS__GELU_A * v * v * v));
    return 0.5f * (1.0f + t) +
           0.5f * v * (1.0f - t * t) * DS__GELU_C * (1.0f + 3.0f * DS__GELU_A * v * v);
  }
  case DS_ACT_SILU: {
    float s = 1.0f / (1.0f + expf(-v));
    return s * (1.0f + v * (1.0f - s));
  }
  default: return 1.0f;
  }
}

static ds_status check_act(ds_context *ctx, ds_activation act) {
  if ((unsigned)act > DS_ACT_SILU)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "bias_act: unknown activation %d",
                     (int)act);
  return DS_OK;
}

ds_status ds_bias_act_forward(ds_context *ctx, float *y, const float *x, const float *bias,
                              int64_t rows, int64_t cols, ds_activation act) {
  const void *p[] = {y, x};
  ds_status st = ds__kcheck(ctx, "bias_act_forward", rows, cols, p, 2);
  if (st || (st = check_act(ctx, act))) return st;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float v = x[i * cols + j] + (bias ? bias[j] : 0.0f);
      y[i * cols + j] = act_f(v, act);
    }
  return DS_OK;
}

ds_status ds_bias_act_backward(ds_context *ctx, float *dx, float *dbias, const float *dy,
                               const float *x, const float *bias, int64_t rows, int64_t cols,
                               ds_activation act) {
  const void *p[] = {dx, dy, x};
  ds_status st = ds__kcheck(ctx, "bias_act_backward", rows, cols, p, 3);
  if (st || (st = check_act(ctx, act))) return st;
  if (dbias)
    for (int64_t j = 0; j < cols; j++) dbias[j] = 0.0f;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      float v = x[i * cols + j] + (bias ? bias[j] : 0.0f);
      float g = dy[i * cols + j] * act_grad(v, act);
      dx[i * cols + j] = g;
      if (dbias) dbias[j] += g;
    }
  return DS_OK;
}

ds_status ds_elementwise(ds_context *ctx, ds_elementwise_op op, float *y, const float *a,
                         const float *b, float s, int64_t n) {
  const void *p[] = {y, a, b};
  ds_status st = ds__kcheck(ctx, "elementwise", 1, n, p, op == DS_EW_SCALE ? 2 : 3);
  if (st) return st;
  switch (op) {
  case DS_EW_ADD:
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    return DS_OK;
  case DS_EW_MUL:
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
    return DS_OK;
  case DS_EW_SCALE:
    for (int64_t i = 0; i < n; i++) y[i] = s * a[i];
    return DS_OK;
  }
  return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "elementwise: unknown op %d", (int)op);
}

/* Reduction over a chunk of fp32 values; state carried in r. */
typedef struct reduce_state {
  double sum, amax;
  int finite, nan;
} reduce_state;

static void reduce_chunk(reduce_state *r, const float *v, size_t n) {
  double s = 0;
  float amax = 0.0f;
  int bad = 0, nan = 0;
  for (size_t i = 0; i < n; i++) {
    float a = fabsf(v[i]);
    s += v[i];
    amax = a > amax ? a : amax;
    bad |= !(a <= 3.40282347e38f); /* Inf or NaN */
    nan |= v[i] != v[i];
  }
  r->sum += s;
  if (amax > r->amax) r->amax = amax;
  if (bad) r->finite = 0;
  if (nan) r->nan = 1;
}

ds_status ds_reduce(ds_context *ctx, double *out, ds_reduce_op op, const void *x, ds_dtype dtype,
                    int64_t n) {
  const void *p[] = {out, x};
  ds_status st = ds__kcheck(ctx, "reduce", 1, n, p, 2);
  if (st) return st;
  if (!out) return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "reduce: out is NULL");
  if (!ds__prec_dtype_ok(dtype))
    return ds__error(ctx, DS_ERR_DTYPE, "precision", "reduce: dtype %s (f32, f16 or bf16)",
                     ds_dtype_name(dtype));
  if ((unsigned)op > DS_REDUCE_ALL_FINITE)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "reduce: unknown op %d", (int)op);
  reduce_state r = {0, 0, 1, 0};
  if (dtype == DS_DTYPE_F32) {
    reduce_chunk(&r, x, (size_t)n);
  } else { /* widen in L1-sized chunks with the vector converters */
    const ds__prec_kernels *k = ds__prec_kernels_ctx(ctx);
    float tmp[2048];
    for (int64_t i = 0; i < n; i += 2048) {
      size_t c = (size_t)(n - i < 2048 ? n - i : 2048);
      (dtype == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(tmp, (const uint16_t *)x + i, c);
      reduce_chunk(&r, tmp, c);
    }
  }
  *out = op == DS_REDUCE_SUM ? r.sum : op == DS_REDUCE_AMAX ? (r.nan ? NAN : r.amax) : r.finite;
  return DS_OK;
}
