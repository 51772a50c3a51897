/* deepseek-predict-eval: the baseline forecasters — EWMA, Holt's linear trend, and AR(p) fitted
 * by least squares (Dinda & O'Hallaron's recommendation for host load), iterated for h > 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "predict_eval.h"

void ev_ewma(const float *x, size_t n, double alpha, double *level) {
  double l = x[0];
  for (size_t t = 0; t < n; t++) level[t] = l = alpha * x[t * EV_F] + (1 - alpha) * l;
}

void ev_holt(const float *x, size_t n, double alpha, double beta, double *level, double *trend) {
  double l = x[0], b = 0;
  for (size_t t = 0; t < n; t++) {
    double nl = alpha * x[t * EV_F] + (1 - alpha) * (l + b);
    b = beta * (nl - l) + (1 - beta) * b;
    l = nl;
    level[t] = l;
    trend[t] = b;
  }
}

/* Normal equations (AR fit, ensemble) by Gaussian elimination with partial pivoting. */
int ev_solve(double *a, double *b, int m) {
  for (int c = 0; c < m; c++) {
    int piv = c;
    for (int r = c + 1; r < m; r++)
      if (fabs(a[r * m + c]) > fabs(a[piv * m + c])) piv = r;
    if (fabs(a[piv * m + c]) < 1e-12) return -1;
    for (int k = 0; k < m; k++) {
      double t = a[c * m + k];
      a[c * m + k] = a[piv * m + k];
      a[piv * m + k] = t;
    }
    double t = b[c];
    b[c] = b[piv];
    b[piv] = t;
    for (int r = c + 1; r < m; r++) {
      double f = a[r * m + c] / a[c * m + c];
      for (int k = c; k < m; k++) a[r * m + k] -= f * a[c * m + k];
      b[r] -= f * b[c];
    }
  }
  for (int c = m - 1; c >= 0; c--) {
    for (int k = c + 1; k < m; k++) b[c] -= a[c * m + k] * b[k];
    b[c] /= a[c * m + c];
  }
  return 0;
}

int ev_ar_fit(const float *x, size_t n, int p, double *coef) {
  int m = p + 1;
  double *a = calloc((size_t)m * m, sizeof(double)), v[64];
  if (!a || (size_t)p >= n) {
    free(a);
    return -1;
  }
  memset(coef, 0, (size_t)m * sizeof(double));
  for (size_t t = (size_t)p; t < n; t++) {
    v[0] = 1;
    for (int k = 1; k <= p; k++) v[k] = x[(t - (size_t)k) * EV_F];
    for (int i = 0; i < m; i++) {
      coef[i] += v[i] * x[t * EV_F];
      for (int j = 0; j < m; j++) a[i * m + j] += v[i] * v[j];
    }
  }
  for (int i = 1; i < m; i++) a[i * m + i] += 1e-6 * (double)n; /* tiny ridge: idle series */
  int rc = ev_solve(a, coef, m);
  free(a);
  return rc;
}

double ev_ar_forecast(const float *x, size_t e, int p, const double *coef, int h) {
  double hist[64 + 64];
  for (int k = 0; k < p; k++) hist[k] = e >= (size_t)k ? x[(e - (size_t)k) * EV_F] : x[0];
  /* hist[0] is y[e], hist[k] is y[e-k]; each step shifts the newest forecast in. */
  double y = hist[0];
  for (int s = 0; s < h; s++) {
    y = coef[0];
    for (int k = 1; k <= p; k++) y += coef[k] * hist[k - 1];
    memmove(hist + 1, hist, (size_t)(p - 1) * sizeof(double));
    hist[0] = y;
  }
  return y;
}
