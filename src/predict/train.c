/* Training: normalisation from the training data, windows cut from each series, minibatch
 * BPTT (reference.c) with AdamW, global-norm gradient clipping and early stopping on the
 * validation loss. Single-threaded and seeded, so the same inputs give the same weights. */
#include <math.h>
#include <string.h>

#include "predict_internal.h"
#include "train_internal.h"

void ds__pred_data_free(ds_context *ctx, ds__pred_data *d) {
  ds__free(ctx, d->norm);
  ds__free(ctx, d->label);
  ds__free(ctx, d->win);
  memset(d, 0, sizeof *d);
}

ds_status ds__pred_data_build(ds_predictor *p, const ds_predictor_series *s, size_t ns,
                              const float *mean, const float *std, ds__pred_data *d) {
  size_t F = p->o.nfeatures, W = p->o.window, K = p->o.horizons, rows = 0, nwin = 0;
  memset(d, 0, sizeof *d);
  for (size_t i = 0; i < ns; i++) {
    if (!s[i].data && s[i].nsteps)
      return ds__error(p->ctx, DS_ERR_INVALID_ARG, "predict", "series %zu: NULL data", i);
    rows += s[i].nsteps;
    if (s[i].nsteps >= W + K) nwin += s[i].nsteps - W - K + 1;
  }
  d->norm = ds__alloc(p->ctx, (rows ? rows : 1) * F * sizeof(float));
  d->label = ds__alloc(p->ctx, rows ? rows : 1);
  d->win = ds__alloc(p->ctx, (nwin ? nwin : 1) * sizeof(size_t));
  if (!d->norm || !d->label || !d->win) {
    ds__pred_data_free(p->ctx, d);
    return ds__error(p->ctx, DS_ERR_NO_MEMORY, "predict", "cannot copy %zu training rows", rows);
  }
  size_t base = 0;
  for (size_t i = 0; i < ns; i++) {
    for (size_t r = 0; r < s[i].nsteps; r++) {
      const float *row = s[i].data + r * F;
      for (size_t f = 0; f < F; f++) {
        if (!isfinite(row[f])) {
          ds__pred_data_free(p->ctx, d);
          return ds__error(p->ctx, DS_ERR_INVALID_ARG, "predict",
                           "series %zu row %zu feature %zu is not finite", i, r, f);
        }
        d->norm[(base + r) * F + f] = (row[f] - mean[f]) / std[f];
      }
      d->label[base + r] = row[p->o.target] > p->o.overload_threshold;
    }
    for (size_t e = W - 1; e + K < s[i].nsteps; e++)
      if (!s[i].valid || s[i].valid[e + 1]) d->win[d->nwin++] = base + e;
    base += s[i].nsteps;
  }
  return DS_OK;
}

void ds__pred_normalisation(const ds_predictor_series *s, size_t ns, size_t F, float *mean,
                            float *std) {
  for (size_t f = 0; f < F; f++) {
    double sum = 0, sq = 0;
    size_t n = 0;
    for (size_t i = 0; i < ns; i++)
      for (size_t r = 0; r < s[i].nsteps; r++) {
        double v = s[i].data[r * F + f];
        if (!isfinite(v)) continue;
        sum += v;
        sq += v * v;
        n++;
      }
    double m = n ? sum / (double)n : 0, var = n ? sq / (double)n - m * m : 0;
    mean[f] = (float)m;
    /* A constant feature keeps unit scale rather than blowing up. */
    std[f] = var > 1e-12 ? (float)sqrt(var) : 1.0f;
  }
}

/* Targets and labels of the window ending at row e. */
static void ds__pred_targets(const ds_predictor_options *o, const ds__pred_data *d, size_t e,
                             float *t, float *lab) {
  for (size_t k = 0; k < o->horizons; k++) {
    t[k] = d->norm[(e + 1 + k) * o->nfeatures + o->target];
    lab[k] = d->label[e + 1 + k];
  }
}

double ds__pred_eval_loss(ds_predictor *p, const float *params, ds__pred_cache *c,
                          const ds__pred_data *d, size_t maxw, float w, int l1) {
  size_t n = d->nwin < maxw || maxw == 0 ? d->nwin : maxw, F = p->o.nfeatures, W = p->o.window;
  float y[DS__PRED_MAX_K], t[DS__PRED_MAX_K], lab[DS__PRED_MAX_K];
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    size_t e = d->win[(size_t)((double)i * (double)d->nwin / (double)n)];
    ds__pred_forward_ref(&p->o, &p->lay, params, c, d->norm + (e + 1 - W) * F, y, NULL);
    ds__pred_targets(&p->o, d, e, t, lab);
    sum += ds__pred_loss(&p->o, c, t, lab, w, l1);
  }
  return n ? sum / (double)n : NAN;
}

static int ds__pred_is_bias(const ds__pred_layout *lay, uint32_t layers, size_t i, size_t G) {
  for (uint32_t l = 0; l < layers; l++)
    if (i >= lay->b[l] && i < lay->b[l] + G) return 1;
  return (i >= lay->by && i < lay->wp) || (i >= lay->bp && i < lay->wl);
}

/* One AdamW step on the averaged, clipped gradient. */
static void ds__pred_adamw(ds__pred_opt *s, const ds_predictor_train_options *to, float *params,
                           const uint8_t *decay, size_t n) {
  double norm = 0;
  for (size_t i = 0; i < n; i++) norm += (double)s->g[i] * s->g[i];
  norm = sqrt(norm);
  float scale = to->clip_norm > 0 && norm > to->clip_norm ? (float)(to->clip_norm / norm) : 1.0f;
  s->step++;
  float b1 = 0.9f, b2 = 0.999f;
  float c1 = 1.0f - powf(b1, (float)s->step), c2 = 1.0f - powf(b2, (float)s->step);
  for (size_t i = 0; i < n; i++) {
    float g = s->g[i] * scale;
    s->m[i] = b1 * s->m[i] + (1.0f - b1) * g;
    s->v[i] = b2 * s->v[i] + (1.0f - b2) * g * g;
    float upd = (s->m[i] / c1) / (sqrtf(s->v[i] / c2) + 1e-8f);
    if (decay[i]) upd += to->weight_decay * params[i];
    params[i] -= to->lr * upd;
  }
}

ds_status ds__pred_opt_init(ds_predictor *p, ds__pred_opt *s) {
  size_t n = p->lay.total, G = 4 * (size_t)p->o.hidden;
  memset(s, 0, sizeof *s);
  s->g = ds__calloc(p->ctx, 4 * n, sizeof(float));
  s->decay = ds__alloc(p->ctx, n);
  s->cache = ds__pred_cache_create(p->ctx, &p->o);
  if (!s->g || !s->decay || !s->cache) {
    ds__pred_opt_free(p->ctx, s);
    return ds__error(p->ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate the optimizer state");
  }
  s->m = s->g + n;
  s->v = s->m + n;
  s->best = s->v + n;
  for (size_t i = 0; i < n; i++) s->decay[i] = !ds__pred_is_bias(&p->lay, p->o.layers, i, G);
  return DS_OK;
}

void ds__pred_opt_free(ds_context *ctx, ds__pred_opt *s) {
  ds__free(ctx, s->g);
  ds__free(ctx, s->decay);
  ds__pred_cache_destroy(ctx, s->cache);
  memset(s, 0, sizeof *s);
}

/* One epoch of minibatch steps on up to 'count' windows in a seeded random order. */
static double ds__pred_epoch(ds_predictor *p, float *params, ds__pred_opt *s,
                             const ds__pred_data *tr, size_t *order, size_t count,
                             const ds_predictor_train_options *to, uint64_t *rng) {
  size_t n = p->lay.total, F = p->o.nfeatures, W = p->o.window;
  for (size_t i = tr->nwin; i > 1; i--) { /* Fisher-Yates */
    size_t j = (size_t)(ds__pred_rng(rng) % i), tmp = order[i - 1];
    order[i - 1] = order[j];
    order[j] = tmp;
  }
  float y[DS__PRED_MAX_K], t[DS__PRED_MAX_K], lab[DS__PRED_MAX_K];
  double total = 0;
  for (size_t b0 = 0; b0 < count; b0 += to->batch) {
    size_t bn = count - b0 < to->batch ? count - b0 : to->batch;
    memset(s->g, 0, n * sizeof(float));
    for (size_t i = 0; i < bn; i++) {
      size_t e = tr->win[order[b0 + i]];
      ds__pred_forward_ref(&p->o, &p->lay, params, s->cache, tr->norm + (e + 1 - W) * F, y, NULL);
      ds__pred_targets(&p->o, tr, e, t, lab);
      total += ds__pred_loss(&p->o, s->cache, t, lab, to->overload_weight, (int)to->loss);
      ds__pred_backward(&p->o, &p->lay, params, s->cache, t, lab, to->overload_weight,
                        (int)to->loss, s->g);
    }
    for (size_t i = 0; i < n; i++) s->g[i] /= (float)bn;
    ds__pred_adamw(s, to, params, s->decay, n);
  }
  return count ? total / (double)count : 0;
}

ds_status ds__pred_fit(ds_predictor *p, float *params, ds__pred_opt *s, const ds__pred_data *tr,
                       const ds__pred_data *va, const ds_predictor_train_options *to,
                       ds_predictor_train_report *rep, double *val_before) {
  size_t n = p->lay.total;
  size_t *order = ds__alloc(p->ctx, tr->nwin * sizeof(size_t));
  if (!order) return ds__error(p->ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate windows");
  for (size_t i = 0; i < tr->nwin; i++) order[i] = i;
  uint64_t rng = to->seed;
  size_t count =
      to->windows_per_epoch && to->windows_per_epoch < tr->nwin ? to->windows_per_epoch : tr->nwin;
  int have_val = va && va->nwin > 0;
  double best = have_val ? ds__pred_eval_loss(p, params, s->cache, va, to->max_val_windows,
                                              to->overload_weight, (int)to->loss)
                         : INFINITY;
  if (val_before) *val_before = best;
  memcpy(s->best, params, n * sizeof(float));
  uint32_t best_epoch = 0, since = 0, e;
  double train_loss = 0;
  for (e = 1; e <= to->max_epochs; e++) {
    train_loss = ds__pred_epoch(p, params, s, tr, order, count, to, &rng);
    double vl = have_val ? ds__pred_eval_loss(p, params, s->cache, va, to->max_val_windows,
                                              to->overload_weight, (int)to->loss)
                         : -(double)e; /* no validation: the last epoch wins */
    if (vl < best) {
      best = vl;
      best_epoch = e;
      since = 0;
      memcpy(s->best, params, n * sizeof(float));
    } else if (++since >= to->patience) {
      e++;
      break;
    }
  }
  memcpy(params, s->best, n * sizeof(float));
  ds__free(p->ctx, order);
  if (rep) {
    rep->epochs = e - 1;
    rep->best_epoch = best_epoch;
    rep->best_val_loss = have_val ? best : NAN;
    rep->last_train_loss = train_loss;
    rep->steps = s->step;
  }
  return DS_OK;
}

static ds_status ds__pred_check_train_options(ds_context *ctx,
                                              const ds_predictor_train_options *to) {
  if (to->struct_size != sizeof *to)
    return ds__error(ctx, DS_ERR_ABI, "predict", "train options: struct_size %u", to->struct_size);
  if (to->batch < 1 || to->loss > DS_PREDICT_LOSS_ABSOLUTE || !(to->lr > 0) ||
      !(to->weight_decay >= 0) || !(to->clip_norm >= 0) || !(to->overload_weight >= 0))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "predict",
                     "train options: batch >= 1, loss 0 or 1, lr > 0, weight_decay, clip_norm and "
                     "overload_weight >= 0");
  return DS_OK;
}

ds_status ds_predictor_train(ds_predictor *p, const ds_predictor_series *train, size_t ntrain,
                             const ds_predictor_series *val, size_t nval,
                             const ds_predictor_train_options *opts,
                             ds_predictor_train_report *report) {
  ds_predictor_train_options def = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  const ds_predictor_train_options *to = opts ? opts : &def;
  if (!p || (!train && ntrain) || (!val && nval))
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  ds_status st = ds__pred_check_train_options(p->ctx, to);
  if (st != DS_OK) return st;
  if (report && report->struct_size != sizeof *report)
    return ds__error(p->ctx, DS_ERR_ABI, "predict", "report: struct_size %u", report->struct_size);
  ds_predictor_online_wait(p, NULL, NULL);
  size_t F = p->o.nfeatures, n = p->lay.total;
  float mean[DS__PRED_MAX_F], std[DS__PRED_MAX_F];
  memcpy(mean, p->mean, F * sizeof(float));
  memcpy(std, p->std, F * sizeof(float));
  if (to->normalize) ds__pred_normalisation(train, ntrain, F, mean, std);
  ds__pred_data tr, va = {0};
  ds__pred_opt s = {0};
  float *params = NULL;
  if ((st = ds__pred_data_build(p, train, ntrain, mean, std, &tr)) != DS_OK) return st;
  if (tr.nwin == 0)
    st = ds__error(p->ctx, DS_ERR_INVALID_ARG, "predict",
                   "no training window: every series is shorter than W + K = %u rows",
                   p->o.window + p->o.horizons);
  if (st == DS_OK) st = ds__pred_data_build(p, val, nval, mean, std, &va);
  if (st == DS_OK) st = ds__pred_opt_init(p, &s);
  if (st == DS_OK && !(params = ds__alloc(p->ctx, n * sizeof(float))))
    st = ds__error(p->ctx, DS_ERR_NO_MEMORY, "predict", "cannot copy the weights");
  if (st == DS_OK) {
    memcpy(params, p->params, n * sizeof(float));
    if (report) memset((char *)report + 4, 0, sizeof *report - 4);
    st = ds__pred_fit(p, params, &s, &tr, &va, to, report, NULL);
  }
  if (st == DS_OK) {
    pthread_mutex_lock(&p->mu);
    memcpy(p->params, params, n * sizeof(float));
    memcpy(p->mean, mean, F * sizeof(float));
    memcpy(p->std, std, F * sizeof(float));
    pthread_mutex_unlock(&p->mu);
  }
  ds__free(p->ctx, params);
  ds__pred_opt_free(p->ctx, &s);
  ds__pred_data_free(p->ctx, &tr);
  ds__pred_data_free(p->ctx, &va);
  return st;
}
