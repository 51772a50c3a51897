/* The core's executor: background work with a priority (URGENT before NORMAL before LOW, FIFO
 * within a class) on one plain thread, created on first use. It is what lower modules (cache
 * prefetch, predictor training) submit to when DS_PARAM_SCHED_EXECUTOR is 0; by default the
 * work goes to the scheduler (src/sched) instead. */
#include <stdlib.h>

#include "internal.h"

typedef struct ds__work {
  ds__work_fn fn;
  void *arg;
  struct ds__work *next;
} ds__work;

struct ds__executor {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ds__work *head[3], *tail[3];
  int stopping;
};

static ds__work *ds__executor_pop(struct ds__executor *ex) {
  for (int p = 0; p < 3; p++) {
    ds__work *w = ex->head[p];
    if (w) {
      ex->head[p] = w->next;
      if (!ex->head[p]) ex->tail[p] = NULL;
      return w;
    }
  }
  return NULL;
}

static void *ds__executor_main(void *arg) {
  ds_context *ctx = arg;
  struct ds__executor *ex = ctx->executor;
  pthread_mutex_lock(&ex->mu);
  for (;;) {
    ds__work *w = ds__executor_pop(ex);
    if (!w) {
      if (ex->stopping) break;
      pthread_cond_wait(&ex->cv, &ex->mu);
      continue;
    }
    pthread_mutex_unlock(&ex->mu);
    w->fn(w->arg);
    ds__free(ctx, w);
    pthread_mutex_lock(&ex->mu);
  }
  pthread_mutex_unlock(&ex->mu);
  return NULL;
}

static ds_status ds__executor_start(ds_context *ctx) {
  struct ds__executor *ex = ds__calloc(ctx, 1, sizeof *ex);
  if (!ex) return ds__error(ctx, DS_ERR_NO_MEMORY, "core", "cannot allocate the executor");
  pthread_mutex_init(&ex->mu, NULL);
  pthread_cond_init(&ex->cv, NULL);
  ctx->executor = ex;
  if (pthread_create(&ex->thread, NULL, ds__executor_main, ctx) != 0) {
    ctx->executor = NULL;
    pthread_cond_destroy(&ex->cv);
    pthread_mutex_destroy(&ex->mu);
    ds__free(ctx, ex);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "core", "cannot start the executor thread");
  }
  return DS_OK;
}

ds_status ds__executor_submit(ds_context *ctx, ds__work_fn fn, void *arg, int prio) {
  if (!fn || prio < DS__PRIO_URGENT || prio > DS__PRIO_LOW)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "core", "executor: bad work item");
  if (ds__param(ctx, DS_PARAM_SCHED_EXECUTOR)) return ds__sched_executor_submit(ctx, fn, arg, prio);
  pthread_mutex_lock(&ctx->lazy_mu);
  ds_status st = ctx->executor ? DS_OK : ds__executor_start(ctx);
  pthread_mutex_unlock(&ctx->lazy_mu);
  if (st != DS_OK) return st;
  ds__work *w = ds__alloc(ctx, sizeof *w);
  if (!w) return ds__error(ctx, DS_ERR_NO_MEMORY, "core", "executor: cannot queue work");
  w->fn = fn;
  w->arg = arg;
  w->next = NULL;
  struct ds__executor *ex = ctx->executor;
  pthread_mutex_lock(&ex->mu);
  if (ex->stopping) {
    pthread_mutex_unlock(&ex->mu);
    ds__free(ctx, w);
    return ds__error(ctx, DS_ERR_STATE, "core", "executor: context is being destroyed");
  }
  if (ex->tail[prio])
    ex->tail[prio]->next = w;
  else
    ex->head[prio] = w;
  ex->tail[prio] = w;
  pthread_cond_signal(&ex->cv);
  pthread_mutex_unlock(&ex->mu);
  return DS_OK;
}

/* Work already queued still runs (its argument may own resources); then the thread exits. */
void ds__executor_destroy(ds_context *ctx) {
  struct ds__executor *ex = ctx->executor;
  if (!ex) return;
  pthread_mutex_lock(&ex->mu);
  ex->stopping = 1;
  pthread_cond_signal(&ex->cv);
  pthread_mutex_unlock(&ex->mu);
  pthread_join(ex->thread, NULL);
  pthread_cond_destroy(&ex->cv);
  pthread_mutex_destroy(&ex->mu);
  ds__free(ctx, ex);
  ctx->executor = NULL;
}
