/* deepseek-predict-eval internals: load traces resampled to a fixed step, the baseline
 * forecasters the predictor is judged against, the stacked ensemble, and what the static and
 * walk-forward evaluations share. */
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
 * current value, the model's overload probability and the target's step (EV_T). */
enum { EV_NBASE = 6, EV_Y = EV_NBASE, EV_CUR, EV_PROB, EV_T, EV_ROW };
/* EV_T: the target's step relative to the first test step of its series (negative before the
 * test split), so that the walk-forward refits can select the rows whose targets are past. */
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

/* ---- the evaluation driver: predict_eval.c (static), predict_eval_walk.c (walk-forward) ---- */
#include <deepseek.h>

enum { M_LAST, M_EWMA, M_AR, M_HOLT, M_THRESH, M_LSTM, M_LSTM_FT, M_ENS, NM };
extern const char *const model_names[NM];
extern const int horizons[];
#define NH 3
#define KMAX 10
#define AR_P 16

typedef struct cfg {
  int json, epochs, windows, hidden, window, layers, max_series, l1, ft_epochs;
  double lr;
  double step, threshold;
  unsigned long long seed;
  int wf_every, wf_history, wf_epochs; /* walk-forward: refit interval and history (steps) */
} cfg;

typedef struct acc {
  double ae, se, ape;
  size_t n, nape, within, tp, fp, fn, tn;
} acc;

typedef struct split {
  size_t ntr, nva;
} split;

static inline double clamp100(double v) { return v < 0 ? 0 : (v > 100 ? 100 : v); }
static inline split split_of(const ev_series *s) {
  split p = {s->n * 70 / 100, s->n * 15 / 100};
  return p;
}

/* The baselines' per-series state: levels for every step (EWMA and Holt per horizon index,
 * with the parameters chosen for that horizon) and the AR coefficients. */
typedef struct base_fc {
  double *le[NH], *lh[NH], *bh[NH], coef[AR_P + 1];
  int ar_ok;
} base_fc;

void acc_add(acc *a, double pred, double y, int pred_over, double thr);
/* Grid search of EWMA alpha and Holt (alpha, beta) per horizon: the lowest MAE over the
 * forecasts of series ss[k] whose origin and target lie in [from[k], to[k]). */
void tune_range(const ev_series *ss, size_t ns, const size_t *from, const size_t *to,
                double ewma_a[NH], double holt_ab[NH][2]);
/* Fine-tunes q in place on s's steps [a, b) (training) and [b, c) (early stopping); q keeps
 * its weights when no epoch lowers the validation loss. online 1: the settings of the
 * library's online adaptation (every window once, batch 16, patience 1), else 1024 windows
 * per epoch, batch 32, patience 2. Exits on error. */
void fine_tune_range(ds_context *ctx, ds_predictor *q, const ev_series *s, size_t a, size_t b,
                     size_t c, const cfg *c_, int epochs, int online);
/* The clamped forecasts of every model for origin e of s at horizon index hi into f[M_*];
 * v and vq are the pooled and fine-tuned models' values at e (vq NULL: the pooled stands in). */
void forecasts(const ev_series *s, size_t e, int hi, const base_fc *b, const float *v,
               const float *vq, double f[NM]);
/* Model m's overload decision (m < M_ENS): the threshold method's rule, the LSTM's cut on its
 * probability (cut 0: its forecast above thr), or the point forecast above thr. */
int model_over(int m, float cut, const double f[NM], float prob, double cur, double thr);
/* Appends one stacking row (the base forecasts, actual, current, probability, target step). */
void push_row(ev_rows *r, const double f[NM], double y, double cur, float prob, double t);
/* The walk-forward evaluation of one trace family (predict_eval_walk.c): p is the pooled
 * model, qs[k] the fine-tuned model of series k (adapted in place), cut the LSTM overload
 * cuts, rows the static stacking rows (rows[0], rows[1]: training, validation). With out not
 * NULL, the walk-forward rows (every model's forecast per origin, EV_T the target's step
 * relative to the series' test split) are handed over in out[NH]; the caller frees .v. */
void walk_forward(ds_context *ctx, ds_predictor *p, ds_predictor **qs, const ev_series *ss,
                  size_t ns, const cfg *c, const float cut[NH], ev_rows rows[3][NH],
                  acc res[NM][NH], ev_rows out[NH]);

#endif /* DS_PREDICT_EVAL_H */
