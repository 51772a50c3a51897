/* deepseek-predict-eval internals: load traces resampled to a fixed step, and the baseline
 * forecasters the predictor is judged against. */
#ifndef DS_PREDICT_EVAL_H
#define DS_PREDICT_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EV_NRAW 4 /* measured features per step; feature 0 (CPU %) is the target */
#ifndef EV_NDERIVED
/* derived from the target: EWMA a=0.1, EWMA a=0.02, max of 10 steps (-DEV_NDERIVED=0: none,
 * the comparison in docs/architecture.md) */
#define EV_NDERIVED 3
#endif
#define EV_F (EV_NRAW + EV_NDERIVED) /* features per step */
enum { EV_BITBRAINS = 0, EV_ALIBABA = 1, EV_NGROUPS = 2 };

typedef struct ev_series {
  char name[128];
  int group;     /* EV_BITBRAINS or EV_ALIBABA */
  size_t n;      /* steps */
  float *x;      /* [n][EV_F] */
  uint8_t *real; /* 1: the step holds at least one measurement; 0: filled (carried forward) */
} ev_series;

/* Reads one trace file (format detected from its first line), resamples every series in it to
 * step seconds (0: 300 s for Bitbrains, 60 s for Alibaba) and appends them to *list.
 * Returns 0, or -1 with a message on stderr. */
int ev_read_trace(const char *path, double step, ev_series **list, size_t *count);
/* Most resampled steps one trace file may yield, all its series together (the shared traces
 * need well under 1/100 of it; ~30 bytes per step are kept). */
#define EV_MAX_STEPS ((size_t)1 << 24)
/* The same from an open stream (name labels the series and the messages); at most max_steps
 * steps in all, else -1 (a timestamp far from the others). Bad lines are skipped, never fatal. */
int ev_read_trace_stream(FILE *f, const char *name, double step, size_t max_steps,
                         ev_series **list, size_t *count);
void ev_free_series(ev_series *s, size_t n);
const char *ev_group_name(int g);
const char *ev_feature_names(int g);

/* Exponentially weighted moving average: level[t] after seeing y[0..t]. */
void ev_ewma(const float *x, size_t n, double alpha, double *level);
/* Holt's linear trend: level and trend after y[0..t]; forecast level + h * trend. */
void ev_holt(const float *x, size_t n, double alpha, double beta, double *level, double *trend);
/* AR(p) with intercept fitted by least squares on target values x[0..n) (stride EV_F);
 * coef[0] is the intercept, coef[1..p] multiply y[t-1..t-p]. Returns 0, or -1 if singular. */
int ev_ar_fit(const float *x, size_t n, int p, double *coef);
/* Iterated forecast of y[e+h] from y[..e]. */
double ev_ar_forecast(const float *x, size_t e, int p, const double *coef, int h);

/* Solves the m x m system a x = b in place (x into b) by Gaussian elimination with partial
 * pivoting. Returns 0, or -1 if singular. */
int ev_solve(double *a, double *b, int m);

/* The stacked forecaster (predict_eval_ensemble.c). A row holds the base forecasts for one
 * step and horizon (last value, EWMA, AR, Holt, LSTM, fine-tuned LSTM), the actual value, the
 * current value and the model's overload probability. */
enum { EV_NBASE = 6, EV_Y = EV_NBASE, EV_CUR, EV_PROB, EV_ROW };
enum {
  EV_RULE_VALUE,
  EV_RULE_PROB,
  EV_RULE_CUR_OR_PROB,
  EV_RULE_CUR_AND_PROB,
  EV_RULE_CUR,
  EV_NRULES
};

typedef struct ev_rows {
  float *v; /* [n][EV_ROW] */
  size_t n, cap;
} ev_rows;

typedef struct ev_ensemble {
  double w[EV_NBASE + 1]; /* intercept, then one weight per base forecast */
  int rule;               /* EV_RULE_*: how overload is predicted */
  float cut;              /* the rule's cut: a value (EV_RULE_VALUE) or a probability */
  double val_f1;          /* the rule's F1 on the rows it was chosen on */
} ev_ensemble;

int ev_rows_push(ev_rows *r, const float *row);
/* Fits the weights (least absolute deviations) on the validation rows and picks the overload
 * rule on the training and validation rows. Returns 0, or -1 (too few rows, singular, out of
 * memory). */
int ev_ens_fit(ev_ensemble *m, const ev_rows *val, const ev_rows *train, double thr);
/* The stacked forecast clamped to [0, 100], and the overload decision, for one row. */
double ev_ens_value(const ev_ensemble *m, const float *row);
int ev_ens_over(const ev_ensemble *m, const float *row, double thr);

#endif /* DS_PREDICT_EVAL_H */
