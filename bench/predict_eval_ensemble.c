/* deepseek-predict-eval: the stacked forecaster ("ensemble"). Per horizon, an intercept plus
 * one weight per base forecast (the baselines and the LSTM+attention models), fitted on the
 * validation split by least absolute deviations, since the goal metric is MAE; and the
 * overload rule that maximises F1 on the training and validation splits (the validation split
 * alone holds too few overloaded steps to choose a rule). Nothing here sees the test split. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "predict_eval.h"

int ev_rows_push(ev_rows *r, const float *row) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 4096;
    float *v = realloc(r->v, cap * EV_ROW * sizeof(float));
    if (!v) return -1;
    r->v = v;
    r->cap = cap;
  }
  memcpy(r->v + r->n++ * EV_ROW, row, EV_ROW * sizeof(float));
  return 0;
}

double ev_ens_value(const ev_ensemble *m, const float *row) {
  double f = m->w[0];
  for (int i = 0; i < EV_NBASE; i++) f += m->w[i + 1] * row[i];
  return f < 0 ? 0 : (f > 100 ? 100 : f);
}

int ev_ens_over(const ev_ensemble *m, const float *row, double thr) {
  int cur = row[EV_CUR] > thr, pr = row[EV_PROB] > m->cut;
  switch (m->rule) {
  case EV_RULE_VALUE: return ev_ens_value(m, row) > m->cut;
  case EV_RULE_PROB: return pr;
  case EV_RULE_CUR_OR_PROB: return cur || pr;
  case EV_RULE_CUR_AND_PROB: return cur && pr;
  default: return cur;
  }
}

/* Weighted least squares step of the IRLS: minimises sum wt * (y - w.x)^2. */
static int wls(const ev_rows *r, const double *wt, double *w) {
  enum { M = EV_NBASE + 1 };
  double a[M * M] = {0}, x[M];
  memset(w, 0, M * sizeof(double));
  for (size_t i = 0; i < r->n; i++) {
    const float *row = r->v + i * EV_ROW;
    x[0] = 1;
    for (int k = 0; k < EV_NBASE; k++) x[k + 1] = row[k];
    for (int p = 0; p < M; p++) {
      w[p] += wt[i] * x[p] * row[EV_Y];
      for (int q = 0; q < M; q++) a[p * M + q] += wt[i] * x[p] * x[q];
    }
  }
  double tr = 0;
  for (int p = 1; p < M; p++) tr += a[p * M + p];
  for (int p = 1; p < M; p++) a[p * M + p] += 1e-6 * tr / EV_NBASE; /* collinear forecasts */
  return ev_solve(a, w, M);
}

/* Least absolute deviations by iteratively reweighted least squares (weights 1/|residual|,
 * floored so that exact fits do not blow up). */
static int lad_fit(const ev_rows *r, double *w) {
  double *wt = malloc((r->n ? r->n : 1) * sizeof(double));
  if (!wt) return -1;
  for (size_t i = 0; i < r->n; i++) wt[i] = 1;
  int rc = 0;
  for (int it = 0; it < 40 && rc == 0; it++) {
    rc = wls(r, wt, w);
    for (size_t i = 0; i < r->n; i++) {
      const float *row = r->v + i * EV_ROW;
      double f = w[0];
      for (int k = 0; k < EV_NBASE; k++) f += w[k + 1] * row[k];
      wt[i] = 1.0 / fmax(fabs(row[EV_Y] - f), 0.05);
    }
  }
  free(wt);
  return rc;
}

static double f1_of(const ev_ensemble *m, const ev_rows *const r[2], double thr) {
  size_t tp = 0, fp = 0, fn = 0;
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < r[k]->n; i++) {
      const float *row = r[k]->v + i * EV_ROW;
      int po = ev_ens_over(m, row, thr), over = row[EV_Y] > thr;
      tp += po && over, fp += po && !over, fn += !po && over;
    }
  return tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0;
}

/* The rule (value above a cut, probability above a cut, either or both of the threshold
 * method's "current above the threshold" and the probability, or that rule alone) with the
 * best F1 over the rows of r[0] and r[1]. */
static void pick_rule(ev_ensemble *m, const ev_rows *const r[2], double thr) {
  static const float pcuts[] = {0.005f, 0.01f, 0.02f, 0.03f, 0.05f, 0.1f, 0.2f,
                                0.3f,   0.4f,  0.5f,  0.6f,  0.7f,  0.8f, 0.9f};
  double best = -1;
  ev_ensemble t = *m;
  for (int rule = 0; rule < EV_NRULES; rule++) {
    int nc = rule == EV_RULE_VALUE ? 13
             : rule == EV_RULE_CUR ? 1
                                   : (int)(sizeof pcuts / sizeof pcuts[0]);
    for (int ci = 0; ci < nc; ci++) {
      t.rule = rule;
      t.cut = rule == EV_RULE_VALUE ? (float)(thr - 30 + 5 * ci) : pcuts[ci];
      double f = f1_of(&t, r, thr);
      if (f > best) best = f, *m = t;
    }
  }
  m->val_f1 = best;
}

int ev_ens_fit(ev_ensemble *m, const ev_rows *val, const ev_rows *train, double thr) {
  const ev_rows *both[2] = {train, val};
  memset(m, 0, sizeof *m);
  if (val->n < 4 * (EV_NBASE + 1) || lad_fit(val, m->w) != 0) return -1;
  pick_rule(m, both, thr);
  return 0;
}
