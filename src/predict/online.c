/* Online adaptation: the predictor keeps the last DS_PARAM_PREDICT_ONLINE_HISTORY observed
 * samples, and every DS_PARAM_PREDICT_ONLINE_INTERVAL observations submits a LOW-priority task
 * to the context's executor that fine-tunes a copy of the weights on the oldest 75% of that
 * history and swaps it in only if it lowers the loss on the newest 25%. At most one fine-tune
 * per predictor is queued or running; observe() only copies a row and, at the interval,
 * snapshots the history. */
#include <string.h>

#include "predict_internal.h"
#include "train_internal.h"

struct ds__pred_online {
  uint32_t interval, history, epochs, loss;
  float *hist;   /* [history][F] ring of raw samples */
  float *rows;   /* [history][F] oldest-first snapshot the task trains on */
  float *shadow; /* weights being fine-tuned */
  uint64_t since;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int busy;
  uint64_t runs, accepted;
  int stat_runs, stat_accepted;
};

ds_status ds__pred_online_create(ds_predictor *p) {
  ds_context *ctx = p->ctx;
  uint32_t interval = (uint32_t)ds__param(ctx, DS_PARAM_PREDICT_ONLINE_INTERVAL);
  if (interval == 0) return DS_OK;
  size_t F = p->o.nfeatures, minh = 4 * ((size_t)p->o.window + p->o.horizons);
  size_t hist = (size_t)ds__param(ctx, DS_PARAM_PREDICT_ONLINE_HISTORY);
  struct ds__pred_online *on = ds__calloc(ctx, 1, sizeof *on);
  if (!on) return ds__error(ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate online state");
  /* Both parts of the history must hold at least one window with its targets. */
  on->history = (uint32_t)(hist < minh ? minh : hist);
  on->interval = interval;
  on->epochs = (uint32_t)ds__param(ctx, DS_PARAM_PREDICT_ONLINE_EPOCHS);
  on->loss = (uint32_t)ds__param(ctx, DS_PARAM_PREDICT_ONLINE_LOSS);
  on->hist = ds__calloc(ctx, (size_t)on->history * F, sizeof(float));
  on->rows = ds__alloc(ctx, (size_t)on->history * F * sizeof(float));
  on->shadow = ds__alloc(ctx, p->lay.total * sizeof(float));
  pthread_mutex_init(&on->mu, NULL);
  pthread_cond_init(&on->cv, NULL);
  on->stat_runs = ds__stat_register(ctx, "predict.online_runs", DS_STAT_COUNTER);
  on->stat_accepted = ds__stat_register(ctx, "predict.online_accepted", DS_STAT_COUNTER);
  p->online = on;
  if (!on->hist || !on->rows || !on->shadow)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate the online history");
  return DS_OK;
}

void ds_predictor_online_wait(ds_predictor *p, uint64_t *runs, uint64_t *accepted) {
  struct ds__pred_online *on = p ? p->online : NULL;
  uint64_t r = 0, a = 0;
  if (on) {
    pthread_mutex_lock(&on->mu);
    while (on->busy) pthread_cond_wait(&on->cv, &on->mu);
    r = on->runs;
    a = on->accepted;
    pthread_mutex_unlock(&on->mu);
  }
  if (runs) *runs = r;
  if (accepted) *accepted = a;
}

void ds__pred_online_destroy(ds_predictor *p) {
  struct ds__pred_online *on = p->online;
  if (!on) return;
  ds_predictor_online_wait(p, NULL, NULL);
  pthread_cond_destroy(&on->cv);
  pthread_mutex_destroy(&on->mu);
  ds__free(p->ctx, on->hist);
  ds__free(p->ctx, on->rows);
  ds__free(p->ctx, on->shadow);
  ds__free(p->ctx, on);
  p->online = NULL;
}

/* Fine-tunes on->shadow; returns 1 when it beat the current weights on the newest part. */
static int ds__pred_online_fit(ds_predictor *p, struct ds__pred_online *on) {
  size_t F = p->o.nfeatures, ntr = (size_t)on->history * 3 / 4;
  ds_predictor_series tr = {on->rows, ntr, NULL};
  ds_predictor_series va = {on->rows + ntr * F, on->history - ntr, NULL};
  ds_predictor_train_options to = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  to.max_epochs = on->epochs;
  to.patience = 1;
  to.batch = 16;
  to.lr = 1e-3f;
  to.windows_per_epoch = 0;
  to.seed = on->runs + 1;
  to.loss = on->loss;
  ds__pred_data dtr, dva;
  ds__pred_opt s;
  double before = 0;
  ds_predictor_train_report rep = {sizeof rep, 0, 0, 0, 0, 0, 0};
  int accepted = 0;
  /* mean/std change only in ds_predictor_train, which waits for this task first. */
  if (ds__pred_data_build(p, &tr, 1, p->mean, p->std, &dtr) != DS_OK) return 0;
  if (ds__pred_data_build(p, &va, 1, p->mean, p->std, &dva) == DS_OK) {
    if (ds__pred_opt_init(p, &s) == DS_OK) {
      pthread_mutex_lock(&p->mu);
      memcpy(on->shadow, p->params, p->lay.total * sizeof(float));
      pthread_mutex_unlock(&p->mu);
      if (ds__pred_fit(p, on->shadow, &s, &dtr, &dva, &to, &rep, &before) == DS_OK)
        accepted = rep.best_epoch > 0 && rep.best_val_loss < before;
      ds__pred_opt_free(p->ctx, &s);
    }
    ds__pred_data_free(p->ctx, &dva);
  }
  ds__pred_data_free(p->ctx, &dtr);
  return accepted;
}

static void ds__pred_online_task(void *arg) {
  ds_predictor *p = arg;
  struct ds__pred_online *on = p->online;
  int accepted = ds__pred_online_fit(p, on);
  if (accepted) {
    pthread_mutex_lock(&p->mu);
    memcpy(p->params, on->shadow, p->lay.total * sizeof(float));
    pthread_mutex_unlock(&p->mu);
  }
  ds__stat_add(p->ctx, on->stat_runs, 1);
  if (accepted) ds__stat_add(p->ctx, on->stat_accepted, 1);
  pthread_mutex_lock(&on->mu);
  on->runs++;
  on->accepted += (uint64_t)accepted;
  on->busy = 0;
  pthread_cond_broadcast(&on->cv);
  pthread_mutex_unlock(&on->mu);
}

void ds__pred_online_observe(ds_predictor *p, const float *sample) {
  struct ds__pred_online *on = p->online;
  size_t F = p->o.nfeatures, H = on->history;
  memcpy(on->hist + ((p->observed - 1) % H) * F, sample, F * sizeof(float));
  if (++on->since < on->interval || p->observed < H) return;
  pthread_mutex_lock(&on->mu);
  int busy = on->busy;
  on->busy = 1;
  pthread_mutex_unlock(&on->mu);
  if (busy) return; /* the previous fine-tune is still running: try again next sample */
  on->since = 0;
  size_t first = (size_t)(p->observed % H);
  for (size_t i = 0; i < H; i++)
    memcpy(on->rows + i * F, on->hist + ((first + i) % H) * F, F * sizeof(float));
  if (ds__executor_submit(p->ctx, ds__pred_online_task, p, DS__PRIO_LOW) != DS_OK) {
    pthread_mutex_lock(&on->mu);
    on->busy = 0;
    pthread_cond_broadcast(&on->cv);
    pthread_mutex_unlock(&on->mu);
  }
}
