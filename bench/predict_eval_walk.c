/* deepseek-predict-eval: the walk-forward (rolling-origin) evaluation. The test part of each
 * series is cut into blocks of --wf-every steps. Before each block every model is refitted on
 * what a deployed predictor would have seen by then, strictly before the block's first step:
 * the fine-tuned LSTM is fine-tuned again on the last --wf-history steps (oldest 75% training,
 * newest 25% early stopping, kept only when it lowers that loss: what the library's online
 * adaptation does), AR(16) is refitted by least squares on the whole past, EWMA alpha and
 * Holt (alpha, beta) are re-chosen per series on the last --wf-history steps, and the
 * ensemble's weights (on the rows whose targets lie in the last --wf-history steps) and its
 * overload rule (on every row whose target is past) are refitted, and so is the fine-tuned
 * LSTM's overload cut (on the same rows as the weights). The pooled LSTM, the last
 * value and the threshold method are not refitted. No model sees a value at or after the
 * block's first step before it forecasts from it. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "predict_eval.h"

static void die_oom(void) {
  fprintf(stderr, "deepseek-predict-eval: out of memory\n");
  exit(1);
}

/* The baselines of s refitted on its steps before t (levels are recursions over the past, so
 * they are computed over the whole series once their parameters are chosen). */
static void refit_baselines(const ev_series *s, size_t t, const cfg *c, base_fc *b) {
  size_t from = t > (size_t)c->wf_history ? t - (size_t)c->wf_history : 0, to = t;
  double ea[NH], hab[NH][2];
  tune_range(s, 1, &from, &to, ea, hab);
  b->ar_ok = ev_ar_fit(s->x, t, AR_P, b->coef) == 0;
  for (int hi = 0; hi < NH; hi++) {
    ev_ewma(s->x, s->n, ea[hi], b->le[hi]);
    ev_holt(s->x, s->n, hab[hi][0], hab[hi][1], b->lh[hi], b->bh[hi]);
  }
}

/* Appends the rows of r whose target step lies in [lo, hi) to out. */
static void select_rows(ev_rows *out, const ev_rows *r, double lo, double hi) {
  for (size_t i = 0; i < r->n; i++) {
    const float *row = r->v + i * EV_ROW;
    if (row[EV_T] >= lo && row[EV_T] < hi && ev_rows_push(out, row) != 0) die_oom();
  }
}

/* The ensemble for the block starting at relative step r: weights on the validation and
 * walk-forward rows with targets in [r - history, r), the rule on every row with a past
 * target (static training rows included, as in the static evaluation). */
static int fit_block(ev_ensemble *m, const ev_rows *train, const ev_rows *val,
                     const ev_rows *pool, double r, const cfg *c) {
  ev_rows fit = {0}, older = {0};
  double lo = r - c->wf_history;
  select_rows(&fit, val, lo, r);
  select_rows(&fit, pool, lo, r);
  select_rows(&older, train, -INFINITY, r);
  select_rows(&older, val, -INFINITY, lo);
  select_rows(&older, pool, -INFINITY, lo);
  int rc = ev_ens_fit(m, &fit, &older, c->threshold);
  free(fit.v);
  free(older.v);
  return rc;
}

/* The fine-tuned LSTM's overload cut re-chosen for F1 on the rows with targets in [lo, r) (its
 * probabilities shift as it adapts): 0 (forecast above the threshold) or a probability cut.
 * With no overloaded step there, the forecast rule. */
static float refit_cut(const ev_rows *val, const ev_rows *pool, double lo, double r, double thr) {
  static const float cuts[] = {0.0f, 0.005f, 0.01f, 0.02f, 0.03f, 0.05f, 0.1f, 0.2f,
                               0.3f, 0.4f,   0.5f,  0.6f,  0.7f,  0.8f,  0.9f};
  enum { NC = sizeof cuts / sizeof cuts[0] };
  size_t tp[NC] = {0}, fp[NC] = {0}, fn[NC] = {0};
  const ev_rows *src[2] = {val, pool};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < src[k]->n; i++) {
      const float *row = src[k]->v + i * EV_ROW;
      if (row[EV_T] < lo || row[EV_T] >= r) continue;
      int over = row[EV_Y] > thr;
      for (int ci = 0; ci < NC; ci++) {
        int po = ci == 0 ? row[EV_NBASE - 1] > thr : row[EV_PROB] > cuts[ci]; /* base 5: ft */
        tp[ci] += po && over, fp[ci] += po && !over, fn[ci] += !po && over;
      }
    }
  float best_cut = 0;
  double best = 0;
  for (int ci = 0; ci < NC; ci++) {
    double f1 = tp[ci] ? 2.0 * tp[ci] / (2.0 * tp[ci] + fp[ci] + fn[ci]) : 0;
    if (f1 > best) best = f1, best_cut = cuts[ci];
  }
  return best_cut;
}

/* Forecasts of series s from the origins [t, end), scored into res and pushed to pool. */
static void score_block(ds_predictor *p, ds_predictor *q, const ev_series *s, size_t t,
                        size_t end, size_t t0, const base_fc *b, const cfg *c,
                        const float cut[NH], const float ftcut[NH], ev_rows pool[NH],
                        acc res[NM][NH]) {
  for (size_t e = t; e < end; e++) {
    if (!s->real[e] || e + 1 < (size_t)c->window) continue;
    float v[KMAX], pr[KMAX], vq[KMAX], prq[KMAX];
    const float *win = s->x + (e + 1 - (size_t)c->window) * EV_F;
    ds_predictor_forward(p, win, v, pr);
    ds_predictor_forward(q, win, vq, prq);
    double cur = s->x[e * EV_F];
    for (int hi = 0; hi < NH; hi++) {
      int h = horizons[hi];
      if (e + (size_t)h >= s->n || !s->real[e + h]) continue;
      double y = s->x[(e + h) * EV_F], f[NM];
      forecasts(s, e, hi, b, v, vq, f);
      push_row(&pool[hi], f, y, cur, prq[h - 1], (double)(e + h) - (double)t0);
      for (int m = 0; m < M_ENS; m++) {
        float prob = m == M_LSTM ? pr[h - 1] : prq[h - 1];
        float mc = m == M_LSTM_FT ? ftcut[hi] : cut[hi];
        acc_add(&res[m][hi], f[m], y, model_over(m, mc, f, prob, cur, c->threshold),
                c->threshold);
      }
    }
  }
}

static void alloc_base(base_fc *b, size_t n) {
  for (int hi = 0; hi < NH; hi++) {
    b->le[hi] = malloc(n * sizeof(double));
    b->lh[hi] = malloc(n * sizeof(double));
    b->bh[hi] = malloc(n * sizeof(double));
    if (!b->le[hi] || !b->lh[hi] || !b->bh[hi]) die_oom();
  }
}

static void free_base(base_fc *b) {
  for (int hi = 0; hi < NH; hi++) free(b->le[hi]), free(b->lh[hi]), free(b->bh[hi]);
}

void walk_forward(ds_context *ctx, ds_predictor *p, ds_predictor **qs, const ev_series *ss,
                  size_t ns, const cfg *c, const float cut[NH], ev_rows rows[3][NH],
                  acc res[NM][NH], ev_rows out[NH]) {
  size_t B = (size_t)c->wf_every, L = (size_t)c->wf_history, longest = 0, refits = 0;
  size_t minl = 4 * ((size_t)c->window + KMAX); /* both parts hold a window, as in the library */
  if (L < minl) L = minl;
  base_fc b;
  ev_rows pool[NH];
  memset(pool, 0, sizeof pool);
  for (size_t k = 0; k < ns; k++) {
    split sp = split_of(&ss[k]);
    size_t t0 = sp.ntr + sp.nva;
    if (ss[k].n - t0 > longest) longest = ss[k].n - t0;
  }
  double t_start = bench_now_s();
  for (size_t r = 0; r < longest; r += B) {
    ev_ensemble ens[NH];
    int ok[NH];
    size_t first[NH];
    float ftcut[NH];
    for (int hi = 0; hi < NH; hi++) {
      ok[hi] = fit_block(&ens[hi], &rows[0][hi], &rows[1][hi], &pool[hi], (double)r, c);
      ftcut[hi] = r == 0 ? cut[hi]
                         : refit_cut(&rows[1][hi], &pool[hi], (double)r - c->wf_history,
                                     (double)r, c->threshold);
      first[hi] = pool[hi].n;
    }
    for (size_t k = 0; k < ns; k++) {
      const ev_series *s = &ss[k];
      split sp = split_of(s);
      size_t t0 = sp.ntr + sp.nva, t = t0 + r;
      if (t >= s->n) continue;
      if (r > 0) {
        size_t a = t > L ? t - L : 0;
        fine_tune_range(ctx, qs[k], s, a, a + (t - a) * 3 / 4, t, c, c->wf_epochs, 1);
        refits++;
      }
      alloc_base(&b, s->n);
      refit_baselines(s, t, c, &b);
      score_block(p, qs[k], s, t, t + B < s->n ? t + B : s->n, t0, &b, c, cut, ftcut, pool,
                  res);
      free_base(&b);
    }
    for (int hi = 0; hi < NH; hi++)
      for (size_t i = first[hi]; ok[hi] == 0 && i < pool[hi].n; i++) {
        const float *row = pool[hi].v + i * EV_ROW;
        acc_add(&res[M_ENS][hi], ev_ens_value(&ens[hi], row), row[EV_Y],
                ev_ens_over(&ens[hi], row, c->threshold), c->threshold);
      }
  }
  fprintf(stderr, "  walk-forward: blocks of %zu steps, %zu LSTM refits, %.1f s\n", B, refits,
          bench_now_s() - t_start);
  for (int hi = 0; hi < NH; hi++)
    if (out)
      out[hi] = pool[hi];
    else
      free(pool[hi].v);
}
