/* deepseek-predict-eval: the pieces the static and the walk-forward evaluations share (and
 * tests/test_predict_eval_walk.c links): the model list, the score accumulator, the baselines'
 * parameter search, the fine-tune, the per-model forecasts and overload decisions, and the
 * stacking rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "predict_eval.h"

const char *const model_names[NM] = {"last_value", "ewma",           "ar16",
                                     "holt",       "threshold",      "lstm_attention",
                                     "lstm_attn_ft", "ensemble"};
const int horizons[NH] = {1, 5, 10};

void acc_add(acc *a, double pred, double y, int pred_over, double thr) {
  double e = pred - y;
  a->ae += fabs(e);
  a->se += e * e;
  a->n++;
  if (y > 1.0) a->ape += fabs(e) / y, a->nape++;
  a->within += fabs(e) <= 5.0;
  int over = y > thr;
  a->tp += pred_over && over;
  a->fp += pred_over && !over;
  a->fn += !pred_over && over;
  a->tn += !pred_over && !over;
}

/* Mean absolute error of forecasts fc (one per step) at horizon h over the validation parts. */
typedef double (*fc_fn)(const ev_series *s, size_t e, int h, const double *a, const double *b);

static double fc_level(const ev_series *s, size_t e, int h, const double *a, const double *b) {
  (void)s, (void)h, (void)b;
  return a[e];
}
static double fc_holt(const ev_series *s, size_t e, int h, const double *a, const double *b) {
  (void)s;
  return a[e] + h * b[e];
}

void tune_range(const ev_series *ss, size_t ns, const size_t *from, const size_t *to,
                double ewma_a[NH], double holt_ab[NH][2]) {
  double best_e[NH], best_h[NH];
  for (int i = 0; i < NH; i++) best_e[i] = best_h[i] = INFINITY;
  static const double betas[] = {0.01, 0.05, 0.1, 0.2, 0.3};
  for (int ai = 1; ai <= 9; ai++)
    for (int bi = -1; bi < 5; bi++) {
      double alpha = ai / 10.0, err[NH] = {0}, cnt[NH] = {0};
      for (size_t k = 0; k < ns; k++) {
        const ev_series *s = &ss[k];
        double *l = malloc(to[k] * sizeof(double)), *b = malloc(to[k] * sizeof(double));
        if (bi < 0)
          ev_ewma(s->x, to[k], alpha, l);
        else
          ev_holt(s->x, to[k], alpha, betas[bi], l, b);
        for (int hi = 0; hi < NH; hi++) {
          int h = horizons[hi];
          for (size_t e = from[k]; e + h < to[k]; e++) {
            if (!s->real[e] || !s->real[e + h]) continue;
            double f = bi < 0 ? fc_level(s, e, h, l, b) : fc_holt(s, e, h, l, b);
            err[hi] += fabs(clamp100(f) - s->x[(e + h) * EV_F]);
            cnt[hi]++;
          }
        }
        free(l);
        free(b);
      }
      for (int hi = 0; hi < NH; hi++) {
        double m = cnt[hi] ? err[hi] / cnt[hi] : INFINITY;
        if (bi < 0 && m < best_e[hi]) best_e[hi] = m, ewma_a[hi] = alpha;
        if (bi >= 0 && m < best_h[hi])
          best_h[hi] = m, holt_ab[hi][0] = alpha, holt_ab[hi][1] = betas[bi];
      }
    }
}

void fine_tune_range(ds_context *ctx, ds_predictor *q, const ev_series *s, size_t a, size_t b,
                     size_t c, const cfg *c_, int epochs, int online) {
  ds_predictor_series tr = {s->x + a * EV_F, b - a, s->real + a};
  ds_predictor_series va = {s->x + b * EV_F, c - b, s->real + b};
  ds_predictor_train_options to = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  to.max_epochs = (uint32_t)epochs;
  to.patience = online ? 1 : 2;
  to.batch = online ? 16 : 32;
  to.windows_per_epoch = online ? 0 : 1024;
  to.lr = 1e-3f;
  to.normalize = 0;
  to.seed = c_->seed;
  to.loss = c_->l1 ? DS_PREDICT_LOSS_ABSOLUTE : DS_PREDICT_LOSS_SQUARED;
  if (ds_predictor_train(q, &tr, 1, &va, 1, &to, NULL) != DS_OK) {
    fprintf(stderr, "deepseek-predict-eval: fine-tune: %s\n", ds_context_last_error(ctx));
    exit(1);
  }
}

void forecasts(const ev_series *s, size_t e, int hi, const base_fc *b, const float *v,
               const float *vq, double f[NM]) {
  int h = horizons[hi];
  double cur = s->x[e * EV_F];
  f[M_LAST] = cur;
  f[M_EWMA] = b->le[hi][e];
  f[M_AR] = b->ar_ok ? ev_ar_forecast(s->x, e, AR_P, b->coef, h) : cur;
  f[M_HOLT] = b->lh[hi][e] + h * b->bh[hi][e];
  f[M_THRESH] = cur;
  f[M_LSTM] = v[h - 1];
  f[M_LSTM_FT] = vq ? vq[h - 1] : v[h - 1];
  f[M_ENS] = NAN; /* fitted after every series is seen */
  for (int m = 0; m < M_ENS; m++) f[m] = clamp100(f[m]);
}

int model_over(int m, float cut, const double f[NM], float prob, double cur, double thr) {
  if (m == M_THRESH) return cur > thr;
  if (m == M_LSTM || m == M_LSTM_FT) return cut > 0 ? prob > cut : f[m] > thr;
  return f[m] > thr;
}

void push_row(ev_rows *r, const double f[NM], double y, double cur, float prob, double t) {
  static const int base[EV_NBASE] = {M_LAST, M_EWMA, M_AR, M_HOLT, M_LSTM, M_LSTM_FT};
  float row[EV_ROW];
  for (int i = 0; i < EV_NBASE; i++) row[i] = (float)f[base[i]];
  row[EV_Y] = (float)y, row[EV_CUR] = (float)cur, row[EV_PROB] = prob, row[EV_T] = (float)t;
  if (ev_rows_push(r, row) != 0) {
    fprintf(stderr, "deepseek-predict-eval: out of memory\n");
    exit(1);
  }
}
