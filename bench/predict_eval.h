/* deepseek-predict-eval internals: load traces resampled to a fixed step, and the baseline
 * forecasters the predictor is judged against. */
#ifndef DS_PREDICT_EVAL_H
#define DS_PREDICT_EVAL_H

#include <stddef.h>
#include <stdint.h>

#define EV_F 4 /* features per step; feature 0 (CPU %) is the target */
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

#endif /* DS_PREDICT_EVAL_H */
