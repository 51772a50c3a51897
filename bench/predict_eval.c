/* deepseek-predict-eval: honest evaluation of the load predictor on real traces. Each series is
 * resampled to a fixed step and split chronologically into train (70%), validation (15%) and
 * test (15%). Baselines (last value, EWMA, AR(16), Holt, the threshold method) and the
 * LSTM+attention predictor (one model per trace family, trained on the training parts of all
 * its series, early-stopped on the validation parts; then fine-tuned per series) and the
 * ensemble stacked on all of them (weights fitted on the validation parts) are scored on the
 * test parts only, at horizons 1, 5 and 10 steps, on steps that hold a real measurement:
 * once with every model fitted before the test split (static), once walk-forward, refitted
 * as the test split goes by (predict_eval_walk.c). This file owns the static evaluation, the
 * options and the printing.
 * usage: deepseek-predict-eval [options] TRACE...   (see --help) */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "predict_eval.h"

static void print_definitions(double thr, const cfg *c) {
  printf(
      "Metrics (test split only; every target step that holds a real measurement; values in "
      "CPU percentage points):\n"
      "  mae      mean |prediction - actual|\n"
      "  rmse     sqrt(mean (prediction - actual)^2)\n"
      "  mape     mean |prediction - actual| / actual over actual > 1%%, in %%\n"
      "  within5  share of predictions within +-5 points of the actual, in %%\n"
      "  overload actual > %.0f%%; predicted overload: forecast > %.0f%% (point models), "
      "current value > %.0f%% (threshold method);\n"
      "           lstm_attention: probability > cut or forecast > %.0f%%, the rule and cut with "
      "the best F1 on the validation split\n"
      "  precision tp/(tp+fp), recall tp/(tp+fn), f1 2PR/(P+R) of overload (nan: no positive)\n"
      "  acc      overload classification accuracy (tp+tn)/n, in %%\n"
      "lstm_attention is one model per trace family; lstm_attn_ft is that model fine-tuned on "
      "each series' own training part (early-stopped on its validation part).\n"
      "ensemble: per horizon, intercept + weights on the forecasts of last_value, ewma, ar16, "
      "holt, lstm_attention and lstm_attn_ft,\n"
      "           fitted on the validation split by least absolute deviations; its overload "
      "rule (forecast > cut, probability > cut,\n"
      "           the threshold method's rule or/and probability > cut, or the threshold "
      "method's rule alone) is the one with the best F1\n"
      "           on the training and validation splits together (validation alone holds too "
      "few overloaded steps).\n"
      "Predictions are clamped to [0, 100] for every model. The threshold method predicts no "
      "value (only overload).\n"
      "static: every model is fitted once, before the test split (train and validation "
      "splits only), and kept for the whole test split.\n"
      "walk_forward (rolling origin): the test split is cut into blocks of %d steps; before "
      "each block, on data strictly before it,\n"
      "           lstm_attn_ft is fine-tuned again on the last %d steps (newest 25%% for early "
      "stopping, kept only if better, as the\n"
      "           library's online adaptation does) and its overload cut re-chosen, ar16 is "
      "refitted on the whole past, ewma alpha and\n"
      "           holt (alpha, beta) are re-chosen per series on the last %d steps, the "
      "ensemble's weights are refitted on the rows\n"
      "           with targets in the last %d steps and its rule on all past rows. "
      "lstm_attention (pooled) is not refitted.\n\n",
      thr, thr, thr, thr, c->wf_every, c->wf_history, c->wf_history, c->wf_history);
}

/* Grid search of EWMA alpha and Holt (alpha, beta) per horizon on the validation parts. */
static void tune(ev_series *ss, size_t ns, double ewma_a[NH], double holt_ab[NH][2]) {
  size_t *from = malloc(ns * sizeof(size_t)), *to = malloc(ns * sizeof(size_t));
  for (size_t k = 0; k < ns; k++) {
    split sp = split_of(&ss[k]);
    from[k] = sp.ntr, to[k] = sp.ntr + sp.nva;
  }
  tune_range(ss, ns, from, to, ewma_a, holt_ab);
  free(from);
  free(to);
}

static ds_predictor *train_lstm(ds_context *ctx, ev_series *ss, size_t ns, const cfg *c) {
  ds_predictor_options o = DS_PREDICTOR_OPTIONS_INIT;
  o.nfeatures = EV_F;
  o.window = (uint32_t)c->window;
  o.hidden = (uint32_t)c->hidden;
  o.layers = (uint32_t)c->layers;
  o.horizons = KMAX;
  o.overload_threshold = (float)c->threshold;
  o.seed = c->seed;
  ds_predictor *p = NULL;
  ds_predictor_series *tr = calloc(ns, sizeof *tr), *va = calloc(ns, sizeof *va);
  if (ds_predictor_create(&p, ctx, &o) != DS_OK || !tr || !va) {
    fprintf(stderr, "deepseek-predict-eval: %s\n", ds_context_last_error(ctx));
    exit(1);
  }
  for (size_t k = 0; k < ns; k++) {
    split sp = split_of(&ss[k]);
    tr[k] = (ds_predictor_series){ss[k].x, sp.ntr, ss[k].real};
    va[k] = (ds_predictor_series){ss[k].x + sp.ntr * EV_F, sp.nva, ss[k].real + sp.ntr};
  }
  ds_predictor_train_options to = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  to.max_epochs = (uint32_t)c->epochs;
  to.windows_per_epoch = (uint32_t)c->windows;
  to.seed = c->seed;
  to.lr = (float)c->lr;
  to.loss = c->l1 ? DS_PREDICT_LOSS_ABSOLUTE : DS_PREDICT_LOSS_SQUARED;
  ds_predictor_train_report rep = {sizeof rep, 0, 0, 0, 0, 0, 0};
  double t0 = bench_now_s();
  if (ds_predictor_train(p, tr, ns, va, ns, &to, &rep) != DS_OK) {
    fprintf(stderr, "deepseek-predict-eval: training: %s\n", ds_context_last_error(ctx));
    exit(1);
  }
  fprintf(stderr,
          "  lstm_attention: H=%d W=%d layers=%d, %u epochs (best %u), %llu steps, "
          "val loss %.4f, %.1f s\n",
          c->hidden, c->window, c->layers, rep.epochs, rep.best_epoch,
          (unsigned long long)rep.steps, rep.best_val_loss, bench_now_s() - t0);
  free(tr);
  free(va);
  return p;
}

/* The overload rule per horizon that maximises F1 on the validation parts: the probability
 * head above a cut (it is trained on rare positives, so 0.5 is not the right cut), or, as
 * cut 0, the value head's forecast above the threshold. */
static void tune_cut(ds_predictor *p, ev_series *ss, size_t ns, const cfg *c, float cut[NH]) {
  static const float cuts[] = {0.0f, 0.005f, 0.01f, 0.02f, 0.03f, 0.05f, 0.1f, 0.2f,
                               0.3f, 0.4f,   0.5f,  0.6f,  0.7f,  0.8f,  0.9f};
  enum { NC = sizeof cuts / sizeof cuts[0] };
  size_t tp[NH][NC] = {{0}}, fp[NH][NC] = {{0}}, fn[NH][NC] = {{0}};
  for (size_t k = 0; k < ns; k++) {
    ev_series *s = &ss[k];
    split sp = split_of(s);
    for (size_t e = sp.ntr; e + KMAX < sp.ntr + sp.nva; e++) {
      if (!s->real[e] || e + 1 < (size_t)c->window) continue;
      float v[KMAX], pr[KMAX];
      ds_predictor_forward(p, s->x + (e + 1 - (size_t)c->window) * EV_F, v, pr);
      for (int hi = 0; hi < NH; hi++) {
        int h = horizons[hi];
        if (!s->real[e + h]) continue;
        int over = s->x[(e + h) * EV_F] > c->threshold;
        for (int ci = 0; ci < NC; ci++) {
          int po = ci == 0 ? v[h - 1] > c->threshold : pr[h - 1] > cuts[ci];
          tp[hi][ci] += po && over, fp[hi][ci] += po && !over, fn[hi][ci] += !po && over;
        }
      }
    }
  }
  for (int hi = 0; hi < NH; hi++) {
    double best = -1;
    cut[hi] = 0.5f;
    for (int ci = 0; ci < NC; ci++) {
      double f1 = tp[hi][ci] ? 2.0 * tp[hi][ci] / (2.0 * tp[hi][ci] + fp[hi][ci] + fn[hi][ci]) : 0;
      if (f1 > best) best = f1, cut[hi] = cuts[ci];
    }
  }
  fprintf(stderr,
          "  overload rule tuned on validation (0 = value > threshold, else probability "
          "> cut): %.3f/%.3f/%.3f for h=1/5/10\n",
          cut[0], cut[1], cut[2]);
}

/* The pooled model fine-tuned on one series' own training part (early-stopped on its own
 * validation part, normalisation kept): what online adaptation does per machine, here
 * offline so that it is scored on the same test split. */
static ds_predictor *fine_tune(ds_context *ctx, const ds_predictor *p, const ev_series *s,
                               const cfg *c) {
  size_t n;
  ds_predictor *q = NULL;
  ds_predictor_save_buffer(p, NULL, 0, &n);
  void *buf = malloc(n);
  if (!buf || ds_predictor_save_buffer(p, buf, n, &n) != DS_OK ||
      ds_predictor_load_buffer(&q, ctx, buf, n) != DS_OK) {
    fprintf(stderr, "deepseek-predict-eval: cannot copy the model\n");
    exit(1);
  }
  free(buf);
  split sp = split_of(s);
  fine_tune_range(ctx, q, s, 0, sp.ntr, sp.ntr + sp.nva, c, c->ft_epochs, 0);
  return q;
}

/* Scores every model on the test part of s into res, and collects the stacking rows of its
 * training, validation and test parts (rows[0..2]; a row's target lies in its step's part).
 * Returns the series' fine-tuned model (NULL with --ft-epochs 0); the caller destroys it. */
static ds_predictor *evaluate_series(ds_context *ctx, ds_predictor *p, const ev_series *s,
                                     const cfg *c, const double ewma_a[NH], double holt_ab[NH][2],
                                     const float cut[NH], acc res[NM][NH], ev_rows rows[3][NH]) {
  split sp = split_of(s);
  size_t vend = sp.ntr + sp.nva;
  base_fc b;
  b.ar_ok = ev_ar_fit(s->x, sp.ntr, AR_P, b.coef) == 0;
  for (int hi = 0; hi < NH; hi++) {
    b.le[hi] = malloc(s->n * sizeof(double));
    b.lh[hi] = malloc(s->n * sizeof(double));
    b.bh[hi] = malloc(s->n * sizeof(double));
    ev_ewma(s->x, s->n, ewma_a[hi], b.le[hi]);
    ev_holt(s->x, s->n, holt_ab[hi][0], holt_ab[hi][1], b.lh[hi], b.bh[hi]);
  }
  ds_predictor *q = c->ft_epochs > 0 ? fine_tune(ctx, p, s, c) : NULL;
  for (size_t e = (size_t)c->window - 1; e + KMAX < s->n; e++) {
    if (!s->real[e]) continue;
    int part = e < sp.ntr ? 0 : (e < vend ? 1 : 2);
    size_t pend = part == 0 ? sp.ntr : (part == 1 ? vend : s->n);
    float v[KMAX], pr[KMAX], vq[KMAX], prq[KMAX];
    const float *win = s->x + (e + 1 - (size_t)c->window) * EV_F;
    ds_predictor_forward(p, win, v, pr);
    if (q) ds_predictor_forward(q, win, vq, prq);
    double cur = s->x[e * EV_F], thr = c->threshold;
    const float *prob = q ? prq : pr, *vft = q ? vq : NULL;
    for (int hi = 0; hi < NH; hi++) {
      int h = horizons[hi];
      if (!s->real[e + h] || e + (size_t)h >= pend) continue;
      double y = s->x[(e + h) * EV_F], f[NM];
      forecasts(s, e, hi, &b, v, vft, f);
      push_row(&rows[part][hi], f, y, cur, prob[h - 1], (double)(e + h) - (double)vend);
      if (part < 2) continue;
      for (int m = 0; m < M_ENS; m++) {
        if (m == M_LSTM_FT && !q) continue;
        float prm = m == M_LSTM ? pr[h - 1] : prq[h - 1];
        acc_add(&res[m][hi], f[m], y, model_over(m, cut[hi], f, prm, cur, thr), thr);
      }
    }
  }
  for (int hi = 0; hi < NH; hi++) free(b.le[hi]), free(b.lh[hi]), free(b.bh[hi]);
  return q;
}

/* Fits the ensemble per horizon (weights on the validation rows, overload rule on the
 * training and validation rows) and scores it on the test rows. */
static void evaluate_ensemble(ev_rows rows[3][NH], const cfg *c, acc res[NM][NH]) {
  static const char *rules[EV_NRULES] = {"value > cut", "probability > cut",
                                         "current > threshold or probability > cut",
                                         "current > threshold and probability > cut",
                                         "current > threshold (the threshold method)"};
  for (int hi = 0; hi < NH; hi++) {
    ev_ensemble m;
    const ev_rows *test = &rows[2][hi];
    if (ev_ens_fit(&m, &rows[1][hi], &rows[0][hi], c->threshold) != 0) {
      fprintf(stderr, "  ensemble h=%d: cannot fit on %zu validation rows\n", horizons[hi],
              rows[1][hi].n);
      continue;
    }
    double mae[EV_NBASE + 1] = {0};
    for (size_t i = 0; i < rows[1][hi].n; i++) {
      const float *row = rows[1][hi].v + i * EV_ROW;
      for (int k = 0; k < EV_NBASE; k++) mae[k] += fabs(row[k] - row[EV_Y]);
      mae[EV_NBASE] += fabs(ev_ens_value(&m, row) - row[EV_Y]);
    }
    for (int k = 0; k <= EV_NBASE; k++) mae[k] /= (double)rows[1][hi].n;
    fprintf(stderr,
            "  validation MAE h=%d: last %.3f ewma %.3f ar %.3f holt %.3f lstm %.3f lstm_ft %.3f "
            "ensemble %.3f\n",
            horizons[hi], mae[0], mae[1], mae[2], mae[3], mae[4], mae[5], mae[6]);
    fprintf(stderr,
            "  ensemble h=%d (validation): %.2f + %.2f last + %.2f ewma + %.2f ar + %.2f holt + "
            "%.2f lstm + %.2f lstm_ft; overload: %s, cut %.3g (train+validation F1 %.3f)\n",
            horizons[hi], m.w[0], m.w[1], m.w[2], m.w[3], m.w[4], m.w[5], m.w[6], rules[m.rule],
            m.cut, m.val_f1);
    for (size_t i = 0; i < test->n; i++) {
      const float *row = test->v + i * EV_ROW;
      acc_add(&res[M_ENS][hi], ev_ens_value(&m, row), row[EV_Y],
              ev_ens_over(&m, row, c->threshold), c->threshold);
    }
  }
}

/* Static evaluation into res and, when enabled, the walk-forward one into wres. */
static void evaluate_group(ds_context *ctx, ev_series *ss, size_t ns, const cfg *c,
                           acc res[NM][NH], acc wres[NM][NH]) {
  double ewma_a[NH], holt_ab[NH][2];
  tune(ss, ns, ewma_a, holt_ab);
  fprintf(stderr,
          "  tuned on validation: ewma alpha %.2f/%.2f/%.2f, holt (alpha,beta) "
          "(%.2f,%.2f)/(%.2f,%.2f)/(%.2f,%.2f) for h=1/5/10\n",
          ewma_a[0], ewma_a[1], ewma_a[2], holt_ab[0][0], holt_ab[0][1], holt_ab[1][0],
          holt_ab[1][1], holt_ab[2][0], holt_ab[2][1]);
  ds_predictor *p = train_lstm(ctx, ss, ns, c);
  float cut[NH];
  tune_cut(p, ss, ns, c, cut);
  ev_rows rows[3][NH];
  memset(rows, 0, sizeof rows);
  ds_predictor **qs = calloc(ns, sizeof *qs);
  if (!qs) exit(1);
  for (size_t k = 0; k < ns; k++)
    qs[k] = evaluate_series(ctx, p, &ss[k], c, ewma_a, holt_ab, cut, res, rows);
  evaluate_ensemble(rows, c, res);
  if (c->wf_every > 0 && c->ft_epochs > 0)
    walk_forward(ctx, p, qs, ss, ns, c, cut, rows, wres, NULL);
  for (size_t k = 0; k < ns; k++) ds_predictor_destroy(qs[k]);
  free(qs);
  for (int k = 0; k < 3; k++)
    for (int hi = 0; hi < NH; hi++) free(rows[k][hi].v);
  ds_predictor_destroy(p);
}

static void prf(const acc *a, double *P, double *R, double *F) {
  *P = a->tp + a->fp ? (double)a->tp / (double)(a->tp + a->fp) : NAN;
  *R = a->tp + a->fn ? (double)a->tp / (double)(a->tp + a->fn) : NAN;
  *F = a->tp ? 2 * *P * *R / (*P + *R) : (a->tp + a->fn ? 0 : NAN);
}

static void jnum(const char *k, double v, int last) {
  if (isfinite(v))
    printf("\"%s\":%.6g%s", k, v, last ? "" : ",");
  else
    printf("\"%s\":null%s", k, last ? "" : ",");
}

static void print_rows(const char *trace, const char *eval, acc res[NM][NH], const cfg *c,
                       size_t nseries) {
  if (!c->json) printf("%s evaluation:\n", eval);
  if (!c->json)
    printf("%-10s %-15s %3s %8s %8s %8s %8s %9s %7s %7s %7s %8s\n", "trace", "model", "h", "mae",
           "rmse", "mape%", "within5%", "precision", "recall", "f1", "acc%", "n");
  for (int m = 0; m < NM; m++)
    for (int hi = 0; hi < NH; hi++) {
      const acc *a = &res[m][hi];
      if (!a->n) continue; /* lstm_attn_ft with --ft-epochs 0 */
      double n = (double)a->n, P, R, F;
      prf(a, &P, &R, &F);
      int val = m != M_THRESH;
      double mae = val ? a->ae / n : NAN, rmse = val ? sqrt(a->se / n) : NAN;
      double mape = val && a->nape ? 100 * a->ape / (double)a->nape : NAN;
      double w5 = val ? 100.0 * (double)a->within / n : NAN;
      double accu = 100.0 * (double)(a->tp + a->tn) / n;
      if (c->json) {
        printf("{\"trace\":\"%s\",\"eval\":\"%s\",\"series\":%zu,\"model\":\"%s\",\"horizon\":%d,",
               trace, eval, nseries, model_names[m], horizons[hi]);
        jnum("mae", mae, 0), jnum("rmse", rmse, 0), jnum("mape", mape, 0);
        jnum("within5", w5, 0), jnum("precision", P, 0), jnum("recall", R, 0);
        jnum("f1", F, 0), jnum("accuracy", accu, 0), jnum("n", n, 1);
        printf("}\n");
      } else {
        printf("%-10s %-15s %3d %8.3f %8.3f %8.2f %8.2f %9.3f %7.3f %7.3f %7.2f %8.0f\n", trace,
               model_names[m], horizons[hi], mae, rmse, mape, w5, P, R, F, accu, n);
      }
    }
}

/* One model's reading of the seed's claim at horizon index hi. */
static void claim_line(acc res[NM][NH], int m, int hi) {
  const acc *o = &res[m][hi], *t = &res[M_THRESH][hi], *l = &res[M_LAST][hi];
  double ao = (double)(o->tp + o->tn) / (double)o->n, at = (double)(t->tp + t->tn) / (double)t->n;
  double Po, Ro, Fo, Pt, Rt, Ft;
  prf(o, &Po, &Ro, &Fo);
  prf(t, &Pt, &Rt, &Ft);
  int best = M_LAST; /* the best value baseline on this horizon's test MAE */
  for (int k = M_EWMA; k <= M_HOLT; k++)
    if (res[k][hi].ae / (double)res[k][hi].n < res[best][hi].ae / (double)res[best][hi].n) best = k;
  const acc *b = &res[best][hi];
  printf(
      "  %-14s h=%-2d overload accuracy %.1f%% vs threshold %.1f%% -> error-rate reduction "
      "%.1f%%; overload F1 %.3f vs %.3f;\n       within+-5 %.1f%% (last value %.1f%%); MAE vs "
      "last value %+.1f%%, vs the best baseline (%s) %+.1f%%\n",
      model_names[m], horizons[hi], 100 * ao, 100 * at,
      at < 1 ? 100 * (1 - (1 - ao) / (1 - at)) : NAN, Fo, Ft,
      100.0 * (double)o->within / (double)o->n, 100.0 * (double)l->within / (double)l->n,
      100 * (o->ae / l->ae - 1), model_names[best],
      100 * ((o->ae / (double)o->n) / (b->ae / (double)b->n) - 1));
}

/* The seed's "92.3% accuracy, 37% better than the threshold method": the honest readings. */
static void print_claim(const char *trace, const char *eval, acc res[NM][NH], const cfg *c) {
  if (c->json) return;
  printf(
      "\nSeed claim \"92.3%% accuracy, 37%% better than the threshold method\" on %s, "
      "our figures (test split, %s evaluation):\n",
      trace, eval);
  static const int ours[] = {M_LSTM, M_ENS};
  for (int k = 0; k < 2; k++)
    for (int hi = 0; hi < NH; hi++)
      if (res[ours[k]][hi].n) claim_line(res, ours[k], hi);
  printf(
      "  An honest \"accuracy\" must name its definition: overload classification accuracy "
      "(dominated by the majority 'not overloaded' class) or share within +-5 points (trivial "
      "on idle series); \"x%% better\" is best read as the relative reduction of the error "
      "rate or of MAE against the named baseline, on a test split the model never saw.\n\n");
}

static void usage(void) {
  fprintf(stderr,
          "usage: deepseek-predict-eval [--json] [--epochs N] [--windows N] [--hidden H] "
          "[--window W] [--layers L] [--lr LR] [--loss sq|abs] [--step SECONDS] [--max-series N] "
          "[--threshold PCT] [--ft-epochs N] [--seed S] [--wf-every N] [--wf-history N] "
          "[--wf-epochs N] [--quick] TRACE...\n"
          "  TRACE: Bitbrains VM CSV files and/or Alibaba machine_usage.csv (format detected)\n"
          "  defaults: at most 20 epochs of 4096 windows (early stopping, patience 3), H=32, W=32, "
          "1 layer, step 300 s (Bitbrains) / "
          "60 s (Alibaba), all series, threshold 80, lr 3e-3, loss abs (the goal metric is MAE),\n"
          "  per-series fine-tune (lstm_attn_ft) at most 5 epochs of 1024 windows (0: none)\n"
          "  walk-forward: refit every 240 steps (0: no walk-forward table) on the last 2048 "
          "steps, fine-tune at most 2 epochs\n"
          "  --quick: at most 4 series per family and 8 epochs (for iteration, not for figures)\n");
}

int main(int argc, char **argv) {
  cfg c = {0, 20, 4096, 32, 32, 1, 0, 1, 5, 3e-3, 0, 80, 1, 240, 2048, 2};
  ev_series *ss = NULL;
  size_t ns = 0;
  int ntraces = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(a, "--json"))
      c.json = 1;
    else if (!strcmp(a, "--epochs") && more)
      c.epochs = atoi(argv[++i]);
    else if (!strcmp(a, "--windows") && more)
      c.windows = atoi(argv[++i]);
    else if (!strcmp(a, "--hidden") && more)
      c.hidden = atoi(argv[++i]);
    else if (!strcmp(a, "--window") && more)
      c.window = atoi(argv[++i]);
    else if (!strcmp(a, "--layers") && more)
      c.layers = atoi(argv[++i]);
    else if (!strcmp(a, "--ft-epochs") && more) c.ft_epochs = atoi(argv[++i]);
    else if (!strcmp(a, "--lr") && more)
      c.lr = atof(argv[++i]);
    else if (!strcmp(a, "--loss") && more)
      c.l1 = !strcmp(argv[++i], "abs");
    else if (!strcmp(a, "--step") && more)
      c.step = atof(argv[++i]);
    else if (!strcmp(a, "--max-series") && more)
      c.max_series = atoi(argv[++i]);
    else if (!strcmp(a, "--threshold") && more)
      c.threshold = atof(argv[++i]);
    else if (!strcmp(a, "--wf-every") && more)
      c.wf_every = atoi(argv[++i]);
    else if (!strcmp(a, "--wf-history") && more)
      c.wf_history = atoi(argv[++i]);
    else if (!strcmp(a, "--wf-epochs") && more)
      c.wf_epochs = atoi(argv[++i]);
    else if (!strcmp(a, "--quick"))
      c.max_series = 4, c.epochs = 8;
    else if (!strcmp(a, "--seed") && more)
      c.seed = strtoull(argv[++i], NULL, 10);
    else if (a[0] == '-') {
      usage();
      return 2;
    } else if (ev_read_trace(a, c.step, &ss, &ns) != 0)
      return 1;
    else
      ntraces++;
  }
  if (!ntraces || c.wf_every < 0 || c.wf_history < 1 || c.wf_epochs < 1) {
    usage();
    return 2;
  }
  ds_context *ctx = bench_context("deepseek-predict-eval", NULL, 0);
  if (!c.json) print_definitions(c.threshold, &c);
  for (int g = 0; g < EV_NGROUPS; g++) {
    ev_series *gs = malloc((ns ? ns : 1) * sizeof *gs);
    size_t n = 0, steps = 0;
    for (size_t k = 0; k < ns; k++)
      if (ss[k].group == g && (!c.max_series || n < (size_t)c.max_series) &&
          ss[k].n * 15 / 100 > (size_t)(c.window + KMAX))
        gs[n++] = ss[k], steps += ss[k].n;
    if (n) {
      fprintf(stderr, "%s: %zu series, %zu steps; features: %s%s\n", ev_group_name(g), n, steps,
              ev_feature_names(g),
              EV_NDERIVED ? "; derived from cpu: EWMA a=0.1, EWMA a=0.02, max of 10 steps" : "");
      acc res[NM][NH], wres[NM][NH];
      memset(res, 0, sizeof res);
      memset(wres, 0, sizeof wres);
      evaluate_group(ctx, gs, n, &c, res, wres);
      print_rows(ev_group_name(g), "static", res, &c, n);
      print_claim(ev_group_name(g), "static", res, &c);
      if (wres[M_LAST][0].n) {
        print_rows(ev_group_name(g), "walk_forward", wres, &c, n);
        print_claim(ev_group_name(g), "walk_forward", wres, &c);
      }
    }
    free(gs);
  }
  ds_context_destroy(ctx);
  ev_free_series(ss, ns);
  return 0;
}
