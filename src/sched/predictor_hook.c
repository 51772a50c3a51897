/* The scheduler driven by a ds_predictor (the LSTM + attention model of src/predict) instead of
 * its EWMA: each tick turns the scheduler's state and the latest telemetry into one sample for
 * the predictor and reads back the load one step ahead. The EWMA keeps running beside it and
 * answers whenever the predictor cannot (window not yet full, non-finite output). */
#include <math.h>
#include <string.h>

#include "sched_internal.h"

#define DS__HOOK_MAX_FEATURES 64
#define DS__HOOK_MAX_HORIZONS 64

typedef struct ds__lstm_hook {
  ds_context *ctx;
  ds_predictor *p;
  uint32_t nfeatures;
  ds__ewma fallback;
  float sample[DS__HOOK_MAX_FEATURES];
  float values[DS__HOOK_MAX_HORIZONS];
} ds__lstm_hook;

static float ds__pct_or_nan(float v, int valid) { return valid ? 100.0f * v : NAN; }

/* Feature order (documented on ds_sched_set_predictor): load %, CPU %, memory pressure %,
 * queue depth; later features, if the model has more, are NaN (repeat-previous). */
static void ds__lstm_hook_sample(ds__lstm_hook *h, double observed) {
  ds_telemetry_sample t = DS_TELEMETRY_SAMPLE_INIT;
  int have = ds_telemetry_latest(&t, h->ctx) == DS_OK;
  float feats[4] = {
      (float)(100.0 * observed),
      ds__pct_or_nan(t.cpu_util, have && (t.valid & DS_TELEMETRY_CPU)),
      ds__pct_or_nan(t.mem_pressure, have && (t.valid & (DS_TELEMETRY_PSI | DS_TELEMETRY_MEM))),
      have && (t.valid & DS_TELEMETRY_QUEUE) ? t.queue_depth : NAN,
  };
  for (uint32_t i = 0; i < h->nfeatures; i++) h->sample[i] = i < 4 ? feats[i] : NAN;
}

static double ds__lstm_hook_predict(void *state, double observed) {
  ds__lstm_hook *h = state;
  h->fallback.alpha = (double)ds__param(h->ctx, DS_PARAM_SCHED_EWMA_ALPHA_PCT) / 100.0;
  double ewma = ds__ewma_predict(&h->fallback, observed);
  ds__lstm_hook_sample(h, observed);
  if (ds_predictor_observe(h->p, h->sample) != DS_OK) return ewma;
  if (ds_predictor_predict(h->p, h->values, NULL) != DS_OK || !isfinite(h->values[0])) return ewma;
  double load = h->values[0] / 100.0;
  return load > 0 ? load : 0;
}

static void ds__lstm_hook_free(ds_context *ctx, void *state) { ds__free(ctx, state); }

ds_status ds_sched_set_predictor(ds_context *ctx, ds_predictor *p) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_sched_set_predictor: ctx is NULL");
  if (!p) return ds__sched_set_predictor_owned(ctx, NULL, NULL, NULL);
  ds_predictor_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  ds_status st = ds_predictor_get_options(&o, p);
  if (st != DS_OK) return st;
  if (o.nfeatures > DS__HOOK_MAX_FEATURES || o.horizons > DS__HOOK_MAX_HORIZONS || !o.nfeatures)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "sched",
                     "predictor with %u features and %u horizons (at most %d of each)",
                     o.nfeatures, o.horizons, DS__HOOK_MAX_FEATURES);
  ds__lstm_hook *h = ds__calloc(ctx, 1, sizeof *h);
  if (!h) return ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "cannot allocate the predictor hook");
  h->ctx = ctx;
  h->p = p;
  h->nfeatures = o.nfeatures;
  st = ds__sched_set_predictor_owned(ctx, ds__lstm_hook_predict, h, ds__lstm_hook_free);
  if (st != DS_OK) ds__free(ctx, h);
  return st;
}

ds_status ds_sched_load(ds_context *ctx, double *predicted, int *low_cap, int *low_duty_pct) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_sched_load: ctx is NULL");
  if (!ds__sched_get(ctx))
    return ds__error(ctx, DS_ERR_SHUTDOWN, "sched", "no scheduler: the context is shutting down");
  ds__sched_low_limits(ctx, low_cap, low_duty_pct, predicted);
  return DS_OK;
}
