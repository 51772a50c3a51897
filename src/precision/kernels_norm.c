/* Training kernels: row-wise softmax / log-softmax, LayerNorm and RMSNorm, forward and
 * backward. Row statistics accumulate in fp64. */
#include <math.h>

#include "kernels_internal.h"

ds_status ds_softmax_forward(ds_context *ctx, float *y, const float *x, int64_t rows,
                             int64_t cols, int log_softmax) {
  const void *p[] = {y, x};
  ds_status st = ds__kcheck(ctx, "softmax_forward", rows, cols, p, 2);
  if (st) return st;
  for (int64_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    float *yr = y + i * cols;
    float mx = xr[0];
    for (int64_t j = 1; j < cols; j++) mx = xr[j] > mx ? xr[j] : mx;
    double sum = 0;
    for (int64_t j = 0; j < cols; j++) sum += exp((double)xr[j] - mx);
    double lse = log(sum);
    for (int64_t j = 0; j < cols; j++) {
      double z = (double)xr[j] - mx;
      yr[j] = (float)(log_softmax ? z - lse : exp(z) / sum);
    }
  }
  return DS_OK;
}

ds_status ds_softmax_backward(ds_context *ctx, float *dx, const float *dy, const float *y,
                              int64_t rows, int64_t cols, int log_softmax) {
  const void *p[] = {dx, dy, y};
  ds_status st = ds__kcheck(ctx, "softmax_backward", rows, cols, p, 3);
  if (st) return st;
  for (int64_t i = 0; i < rows; i++) {
    const float *g = dy + i * cols, *yr = y + i * cols;
    float *d = dx + i * cols;
    double s = 0;
    for (int64_t j = 0; j < cols; j++) s += log_softmax ? (double)g[j] : (double)g[j] * yr[j];
    for (int64_t j = 0; j < cols; j++)
      d[j] = (float)(log_softmax ? g[j] - exp((double)yr[j]) * s : yr[j] * ((double)g[j] - s));
  }
  return DS_OK;
}

ds_status ds_layernorm_forward(ds_context *ctx, float *y, float *mean, float *rstd,
                               const float *x, const float *gamma, const float *beta,
                               int64_t rows, int64_t cols, float eps) {
  const void *p[] = {y, x};
  ds_status st = ds__kcheck(ctx, "layernorm_forward", rows, cols, p, 2);
  if (st) return st;
  for (int64_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    double s = 0, s2 = 0;
    for (int64_t j = 0; j < cols; j++) s += xr[j];
    double mu = s / (double)cols;
    for (int64_t j = 0; j < cols; j++) s2 += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    double r = 1.0 / sqrt(s2 / (double)cols + eps);
    for (int64_t j = 0; j < cols; j++) {
      double v = ((double)xr[j] - mu) * r;
      y[i * cols + j] = (float)(v * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f));
    }
    if (mean) mean[i] = (float)mu;
    if (rstd) rstd[i] = (float)r;
  }
  return DS_OK;
}

ds_status ds_layernorm_backward(ds_context *ctx, float *dx, float *dgamma, float *dbeta,
                                const float *dy, const float *x, const float *mean,
                                const float *rstd, const float *gamma, int64_t rows,
                                int64_t cols) {
  const void *p[] = {dx, dy, x, mean, rstd};
  ds_status st = ds__kcheck(ctx, "layernorm_backward", rows, cols, p, 5);
  if (st) return st;
  for (int64_t j = 0; j < cols; j++) {
    if (dgamma) dgamma[j] = 0.0f;
    if (dbeta) dbeta[j] = 0.0f;
  }
  for (int64_t i = 0; i < rows; i++) {
    const float *g = dy + i * cols, *xr = x + i * cols;
    double mu = mean[i], r = rstd[i], sd = 0, sdx = 0;
    for (int64_t j = 0; j < cols; j++) {
      double xh = ((double)xr[j] - mu) * r, d = (double)g[j] * (gamma ? gamma[j] : 1.0f);
      sd += d, sdx += d * xh;
      if (dgamma) dgamma[j] += (float)(g[j] * xh);
      if (dbeta) dbeta[j] += g[j];
    }
    sd /= (double)cols, sdx /= (double)cols;
    for (int64_t j = 0; j < cols; j++) {
      double xh = ((double)xr[j] - mu) * r, d = (double)g[j] * (gamma ? gamma[j] : 1.0f);
      dx[i * cols + j] = (float)(r * (d - sd - xh * sdx));
    }
  }
  return DS_OK;
}

ds_status ds_rmsnorm_forward(ds_context *ctx, float *y, float *rstd, const float *x,
                             const float *gamma, int64_t rows, int64_t cols, float eps) {
  const void *p[] = {y, x};
  ds_status st = ds__kcheck(ctx, "rmsnorm_forward", rows, cols, p, 2);
  if (st) return st;
  for (int64_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    double s2 = 0;
    for (int64_t j = 0; j < cols; j++) s2 += (double)xr[j] * xr[j];
    double r = 1.0 / sqrt(s2 / (double)cols + eps);
    for (int64_t j = 0; j < cols; j++)
      y[i * cols + j] = (float)((double)xr[j] * r * (gamma ? gamma[j] : 1.0f));
    if (rstd) rstd[i] = (float)r;
  }
  return DS_OK;
}

ds_status ds_rmsnorm_backward(ds_context *ctx, float *dx, float *dgamma, const float *dy,
                              const float *x, const float *rstd, const float *gamma,
                              int64_t rows, int64_t cols) {
  const void *p[] = {dx, dy, x, rstd};
  ds_status st = ds__kcheck(ctx, "rmsnorm_backward", rows, cols, p, 4);
  if (st) return st;
  if (dgamma)
    for (int64_t j = 0; j < cols; j++) dgamma[j] = 0.0f;
  for (int64_t i = 0; i < rows; i++) {
    const float *g = dy + i * cols, *xr = x + i * cols;
    double r = rstd[i], sdx = 0;
    for (int64_t j = 0; j < cols; j++) {
      sdx += (double)g[j] * (gamma ? gamma[j] : 1.0f) * xr[j];
      if (dgamma) dgamma[j] += (float)((double)g[j] * xr[j] * r);
    }
    sdx /= (double)cols;
    for (int64_t j = 0; j < cols; j++) {
      double d = (double)g[j] * (gamma ? gamma[j] : 1.0f);
      dx[i * cols + j] = (float)(r * d - (double)xr[j] * r * r * r * sdx);
    }
  }
  return DS_OK;
}
