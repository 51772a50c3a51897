/* The batcher's lifecycle: option validation, creation (queues, timer thread, stats),
 * shutdown (drain or fail what is queued, then wait for running batches) and destruction. */
#include <string.h>

#include "batch_internal.h"

#define M "batch"

static ds_status check_sizes(ds_context *ctx, const char *what, const void *list, size_t n,
                             int wide, int64_t lo, int64_t hi, int ascending) {
  if (n > DS_BATCH_MAX_SIZES || (n && !list))
    return ds__error(ctx, DS_ERR_INVALID_ARG, M, "%s: at most %d entries and not NULL", what,
                     DS_BATCH_MAX_SIZES);
  for (size_t i = 0; i < n; i++) {
    int64_t v = wide ? ((const int64_t *)list)[i] : ((const int32_t *)list)[i];
    int64_t prev = i == 0 ? 0 : (wide ? ((const int64_t *)list)[i - 1]
                                      : ((const int32_t *)list)[i - 1]);
    if (v < lo || v > hi || (ascending && i > 0 && v <= prev))
      return ds__error(ctx, DS_ERR_INVALID_ARG, M, "%s[%zu] = %lld: out of %lld..%lld%s", what,
                       i, (long long)v, (long long)lo, (long long)hi,
                       ascending ? " or not ascending" : "");
  }
  return DS_OK;
}

static ds_status check_shapes(ds_context *ctx, const ds_batcher_options *o) {
  if (o->ndim < 0 || o->ndim >= DS_TENSOR_MAX_DIMS || o->output_ndim < 0 ||
      o->output_ndim >= DS_TENSOR_MAX_DIMS)
    return ds__error(ctx, DS_ERR_INVALID_ARG, M, "ndim %d / output_ndim %d: 0..%d",
                     (int)o->ndim, (int)o->output_ndim, DS_TENSOR_MAX_DIMS - 1);
  if (!ds_dtype_size((ds_dtype)o->dtype) || !ds_dtype_size((ds_dtype)o->output_dtype))
    return ds__error(ctx, DS_ERR_INVALID_ARG, M, "bad dtype %d / output_dtype %d",
                     (int)o->dtype, (int)o->output_dtype);
  for (int d = 0; d < o->ndim; d++)
    if ((o->shape[d] != -1 && o->shape[d] < 1) || o->max_shape[d] < 0)
      return ds__error(ctx, DS_ERR_INVALID_ARG, M, "shape[%d] = %lld (>= 1 or -1)", d,
                       (long long)o->shape[d]);
  for (int d = 0; d < o->output_ndim; d++)
    if ((o->output_shape[d] == -1 && d >= o->ndim) ||
        (o->output_shape[d] != -1 && o->output_shape[d] < 1))
      return ds__error(ctx, DS_ERR_INVALID_ARG, M,
                       "output_shape[%d] = %lld (>= 1, or -1 for an input dim)", d,
                       (long long)o->output_shape[d]);
  return DS_OK;
}

static ds_status check_options(ds_context *ctx, const ds_batcher_options *o) {
  if (!o->handler) return ds__error(ctx, DS_ERR_INVALID_ARG, M, "no handler");
  if (o->max_batch_size < 1 || o->max_batch_size > 65536 || o->max_queue_delay_us < 0 ||
      o->max_queue_delay_us > 3600000000LL || o->max_inflight < 0 || o->max_queue_size < 0 ||
      (o->full_policy != DS_BATCH_REJECT && o->full_policy != DS_BATCH_DELAY))
    return ds__error(ctx, DS_ERR_INVALID_ARG, M,
                     "max_batch_size 1..65536, delay 0..1 h, max_inflight and max_queue_size "
                     ">= 0, full_policy REJECT or DELAY");
  ds_status st = check_shapes(ctx, o);
  if (st == DS_OK)
    st = check_sizes(ctx, "preferred_batch_sizes", o->preferred_batch_sizes, o->npreferred, 0,
                     1, o->max_batch_size, 0);
  if (st == DS_OK)
    st = check_sizes(ctx, "allowed_batch_sizes", o->allowed_batch_sizes, o->nallowed, 0, 1,
                     o->max_batch_size, 1);
  if (st == DS_OK && o->nallowed && o->allowed_batch_sizes[o->nallowed - 1] != o->max_batch_size)
    st = ds__error(ctx, DS_ERR_INVALID_ARG, M, "the last allowed batch size must be "
                   "max_batch_size");
  if (st == DS_OK)
    st = check_sizes(ctx, "bucket_bounds", o->bucket_bounds, o->nbuckets, 1, 1, INT64_MAX, 1);
  return st;
}

/* The fields left to the context (max_batch_size 0, max_queue_delay_us -1, max_inflight 0)
 * take the batch_* tunables, so that a program can be tuned through DS_* variables or a config
 * file without code for it. */
static void resolve_tunables(ds_context *ctx, ds_batcher_options *o) {
  if (o->max_batch_size == 0)
    o->max_batch_size = (int32_t)ds__param(ctx, DS_PARAM_BATCH_MAX_SIZE);
  if (o->max_queue_delay_us == -1)
    o->max_queue_delay_us = ds__param(ctx, DS_PARAM_BATCH_MAX_DELAY_US);
  if (o->max_inflight == 0)
    o->max_inflight = (int32_t)ds__param(ctx, DS_PARAM_BATCH_MAX_INFLIGHT);
}

static void copy_options(ds_batcher *b, const ds_batcher_options *o) {
  b->o = *o;
  memcpy(b->preferred, o->preferred_batch_sizes ? o->preferred_batch_sizes : b->preferred,
         o->npreferred * sizeof(int32_t));
  memcpy(b->allowed, o->allowed_batch_sizes ? o->allowed_batch_sizes : b->allowed,
         o->nallowed * sizeof(int32_t));
  memcpy(b->bounds, o->bucket_bounds ? o->bucket_bounds : b->bounds,
         o->nbuckets * sizeof(int64_t));
  b->o.preferred_batch_sizes = b->preferred;
  b->o.allowed_batch_sizes = b->allowed;
  b->o.bucket_bounds = b->bounds;
  b->o.name = NULL;
  b->var_dim = -1;
  for (int d = o->ndim - 1; d >= 0; d--)
    if (o->shape[d] < 0) b->var_dim = d;
  b->nqueues = b->var_dim >= 0 ? (int)o->nbuckets + 1 : 1;
  b->in_esize = ds_dtype_size((ds_dtype)o->dtype);
  b->out_esize = ds_dtype_size((ds_dtype)o->output_dtype);
  const char *name = o->name ? o->name : "batcher";
  size_t len = strlen(name) < sizeof b->name - 1 ? strlen(name) : sizeof b->name - 1;
  memcpy(b->name, name, len);
  b->name[len] = '\0';
}

static void free_batcher(ds_batcher *b) {
  while (b->free_runs) {
    struct ds__brun *r = b->free_runs;
    b->free_runs = r->next_free;
    ds__brun_free(b, r);
  }
  pthread_cond_destroy(&b->idle_cv);
  pthread_cond_destroy(&b->space_cv);
  pthread_cond_destroy(&b->timer_cv);
  pthread_mutex_destroy(&b->mu);
  pthread_mutex_destroy(&b->pub_mu);
  ds__free(b->ctx, b->size_hist);
  ds__free(b->ctx, b->q);
  ds__free(b->ctx, b);
}

ds_status ds_batcher_create(ds_batcher **out, ds_context *ctx, const ds_batcher_options *opts) {
  if (out) *out = NULL;
  if (!out || !ctx || !opts)
    return ds__error(ctx, DS_ERR_INVALID_ARG, M, "ds_batcher_create: NULL argument");
  ds_batcher_options o;
  if (opts->struct_size != sizeof o)
    return ds__error(ctx, DS_ERR_ABI, M, "options struct_size %u, expected %zu",
                     opts->struct_size, sizeof o);
  o = *opts;
  resolve_tunables(ctx, &o);
  ds_status st = check_options(ctx, &o);
  if (st != DS_OK) return st;
  int32_t workers = o.max_inflight;
  if (!workers && (st = ds_sched_workers(ctx, &workers)) != DS_OK) return st;
  ds_batcher *b = ds__calloc(ctx, 1, sizeof *b);
  if (!b) return ds__error(ctx, DS_ERR_NO_MEMORY, M, "batcher");
  b->ctx = ctx;
  copy_options(b, &o);
  b->o.max_inflight = workers;
  pthread_mutex_init(&b->mu, NULL);
  pthread_mutex_init(&b->pub_mu, NULL);
  ds__bcond_init(&b->timer_cv);
  ds__bcond_init(&b->space_cv);
  ds__bcond_init(&b->idle_cv);
  b->timer_target = UINT64_MAX;
  b->min_deadline = UINT64_MAX;
  b->q = ds__calloc(ctx, (size_t)b->nqueues * 2, sizeof *b->q);
  b->size_hist = ds__calloc(ctx, (size_t)b->o.max_batch_size + 1, sizeof *b->size_hist);
  if (!b->q || !b->size_hist ||
      pthread_create(&b->timer, NULL, ds__batch_timer_main, b) != 0) {
    free_batcher(b);
    return ds__error(ctx, DS_ERR_NO_MEMORY, M, "batcher: memory or timer thread");
  }
  b->timer_started = 1;
  ds__batch_stats_register(b);
  *out = b;
  return DS_OK;
}

/* Removes every queued request into a list (linked by next). */
static struct ds_batch_request *take_all_locked(ds_batcher *b) {
  struct ds_batch_request *list = NULL;
  for (int k = 0; k < 2 * b->nqueues; k++)
    while (b->q[k].head) {
      struct ds_batch_request *r = b->q[k].head;
      ds__bq_remove(b, r);
      ds__store_relaxed(&r->state, DS__BREQ_COMPLETING);
      r->next = list;
      list = r;
    }
  return list;
}

ds_status ds_batcher_shutdown(ds_batcher *b, int drain) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, M, "ds_batcher_shutdown: NULL batcher");
  struct ds_batch_request *failed = NULL;
  struct ds__brun *runs = NULL, *run;
  pthread_mutex_lock(&b->mu);
  b->closed = 1;
  pthread_cond_broadcast(&b->space_cv);
  if (drain) {
    b->drain = 1;
    uint64_t now = ds__now_ns();
    while ((run = ds__batch_take_locked(b, now)) != NULL) {
      run->next_free = runs;
      runs = run;
    }
  } else {
    failed = take_all_locked(b);
  }
  pthread_mutex_unlock(&b->mu);
  while (failed) {
    struct ds_batch_request *nx = failed->next;
    ds__breq_complete(failed, DS_ERR_SHUTDOWN);
    failed = nx;
  }
  ds__batch_launch(b, runs);
  pthread_mutex_lock(&b->mu);
  while (b->inflight > 0 || b->nqueued > 0) pthread_cond_wait(&b->idle_cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  return DS_OK;
}

void ds_batcher_destroy(ds_batcher *b) {
  if (!b) return;
  ds_batcher_shutdown(b, 1);
  pthread_mutex_lock(&b->mu);
  b->stopping = 1;
  pthread_cond_signal(&b->timer_cv);
  pthread_mutex_unlock(&b->mu);
  if (b->timer_started) pthread_join(b->timer, NULL);
  ds__batch_stats_publish(b);
  free_batcher(b);
}
