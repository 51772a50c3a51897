/* Requests of the dynamic batcher: validation at submit, queueing (with the full-queue
 * policy), waiting, cancellation, completion exactly once, and release. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "batch_internal.h"

#define M "batch"

static ds_status check_host(const ds_batcher *b, const ds_tensor *t, const char *what) {
  if (t->device.type != DS_DEVICE_CPU && t->device.type != DS_DEVICE_CUDA_HOST)
    return ds__error(b->ctx, DS_ERR_INVALID_ARG, M, "%s: %s tensor not in host memory",
                     b->name, what);
  if (!ds_tensor_is_contiguous(t))
    return ds__error(b->ctx, DS_ERR_INVALID_ARG, M, "%s: %s tensor not contiguous", b->name,
                     what);
  if (!t->data && ds_tensor_numel(t) > 0)
    return ds__error(b->ctx, DS_ERR_INVALID_ARG, M, "%s: %s tensor has NULL data", b->name,
                     what);
  return DS_OK;
}

static ds_status check_input(const ds_batcher *b, const ds_tensor *in) {
  const ds_batcher_options *o = &b->o;
  if (in->dtype != o->dtype)
    return ds__error(b->ctx, DS_ERR_DTYPE, M, "%s: input dtype %s, expected %s", b->name,
                     ds_dtype_name((ds_dtype)in->dtype), ds_dtype_name((ds_dtype)o->dtype));
  if (in->ndim != o->ndim)
    return ds__error(b->ctx, DS_ERR_SHAPE, M, "%s: input has %d dims, expected %d", b->name,
                     (int)in->ndim, (int)o->ndim);
  for (int d = 0; d < o->ndim; d++) {
    int64_t v = in->shape[d];
    if (o->shape[d] >= 0 && v != o->shape[d])
      return ds__error(b->ctx, DS_ERR_SHAPE, M, "%s: input dim %d is %lld, expected %lld",
                       b->name, d, (long long)v, (long long)o->shape[d]);
    if (o->shape[d] < 0 && (v < 1 || (o->max_shape[d] > 0 && v > o->max_shape[d])))
      return ds__error(b->ctx, DS_ERR_SHAPE, M, "%s: input dim %d is %lld, allowed 1..%lld",
                       b->name, d, (long long)v, (long long)o->max_shape[d]);
  }
  return check_host(b, in, "input");
}

static ds_status check_output(const ds_batcher *b, const ds_tensor *in, const ds_tensor *out) {
  const ds_batcher_options *o = &b->o;
  if (out->dtype != o->output_dtype)
    return ds__error(b->ctx, DS_ERR_DTYPE, M, "%s: output dtype %s, expected %s", b->name,
                     ds_dtype_name((ds_dtype)out->dtype),
                     ds_dtype_name((ds_dtype)o->output_dtype));
  if (out->ndim != o->output_ndim)
    return ds__error(b->ctx, DS_ERR_SHAPE, M, "%s: output has %d dims, expected %d", b->name,
                     (int)out->ndim, (int)o->output_ndim);
  for (int d = 0; d < o->output_ndim; d++) {
    int64_t want = o->output_shape[d] < 0 ? in->shape[d] : o->output_shape[d];
    if (out->shape[d] != want)
      return ds__error(b->ctx, DS_ERR_SHAPE, M, "%s: output dim %d is %lld, expected %lld",
                       b->name, d, (long long)out->shape[d], (long long)want);
  }
  return check_host(b, out, "output");
}

static int bucket_of(const ds_batcher *b, const ds_tensor *in) {
  if (b->nqueues == 1) return 0;
  int64_t len = in->shape[b->var_dim];
  for (int i = 0; i < b->nqueues - 1; i++)
    if (len <= b->bounds[i]) return i;
  return b->nqueues - 1;
}

static ds_status check_submit(ds_batcher *b, const ds_tensor *in, const ds_tensor *out,
                              const ds_batch_submit_options *so) {
  if (so->struct_size != sizeof(ds_batch_submit_options))
    return ds__error(b->ctx, DS_ERR_ABI, M, "%s: submit options struct_size %u, expected %zu",
                     b->name, so->struct_size, sizeof(ds_batch_submit_options));
  if (so->prio != DS_PRIO_URGENT && so->prio != DS_PRIO_NORMAL)
    return ds__error(b->ctx, DS_ERR_INVALID_ARG, M, "%s: prio %d (URGENT or NORMAL)", b->name,
                     (int)so->prio);
  if (so->timeout_us < 0)
    return ds__error(b->ctx, DS_ERR_INVALID_ARG, M, "%s: negative timeout", b->name);
  if (!in || !out)
    return ds__error(b->ctx, DS_ERR_INVALID_ARG, M, "%s: NULL tensor", b->name);
  ds_status st = check_input(b, in);
  return st != DS_OK ? st : check_output(b, in, out);
}

static struct ds_batch_request *new_request(ds_batcher *b, const ds_tensor *in, ds_tensor *out,
                                            const ds_batch_submit_options *so, int handle) {
  struct ds_batch_request *r = ds__calloc(b->ctx, 1, sizeof *r);
  if (!r) return NULL;
  r->ctx = b->ctx;
  r->b = b;
  pthread_mutex_init(&r->mu, NULL);
  ds__bcond_init(&r->cv);
  ds__store_relaxed(&r->refs, handle ? 2 : 1);
  r->prio = so->prio;
  r->bucket = bucket_of(b, in);
  r->input = *in;
  r->output = *out;
  r->t_submit = ds__now_ns();
  r->deadline = so->timeout_us ? r->t_submit + (uint64_t)so->timeout_us * 1000u : 0;
  r->on_done = so->on_done;
  r->user = so->user;
  return r;
}

static void free_request(struct ds_batch_request *r) {
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  ds__free(r->ctx, r);
}

/* DELAY policy: waits (b->mu held) for room, shutdown or the request's deadline. */
static ds_status wait_for_room_locked(ds_batcher *b, uint64_t deadline) {
  while (!b->closed && b->o.max_queue_size > 0 && b->nqueued >= b->o.max_queue_size) {
    if (b->o.full_policy != DS_BATCH_DELAY) return DS_ERR_NO_SPACE;
    b->space_waiters++;
    if (deadline) {
      struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
      int rc = pthread_cond_timedwait(&b->space_cv, &b->mu, &ts);
      b->space_waiters--;
      if (rc == ETIMEDOUT && b->nqueued >= b->o.max_queue_size) return DS_ERR_TIMEOUT;
    } else {
      pthread_cond_wait(&b->space_cv, &b->mu);
      b->space_waiters--;
    }
  }
  return b->closed ? DS_ERR_SHUTDOWN : DS_OK;
}

static ds_status refuse(ds_batcher *b, ds_status st) {
  if (st == DS_ERR_NO_SPACE || st == DS_ERR_TIMEOUT) {
    ds__fetch_add_relaxed(&b->rejected, 1);
    if (st == DS_ERR_NO_SPACE)
      return ds__error(b->ctx, st, M, "%s: queue full (%d requests)", b->name,
                       (int)b->o.max_queue_size);
    return ds__error(b->ctx, st, M, "%s: timed out waiting for room in the queue", b->name);
  }
  ds__fetch_add_relaxed(&b->invalid, 1);
  if (st == DS_ERR_SHUTDOWN)
    return ds__error(b->ctx, st, M, "%s: submit after shutdown", b->name);
  return st;
}

/* Queues r (b->mu held) and takes the batches that are ready now; tells the timer thread
 * when its next wakeup comes forward. */
static struct ds__brun *enqueue_locked(ds_batcher *b, struct ds_batch_request *r) {
  ds__bq_push(b, r);
  if (r->deadline && r->deadline < b->min_deadline) b->min_deadline = r->deadline;
  uint64_t now = r->t_submit;
  struct ds__brun *runs = NULL, **tail = &runs, *run;
  while ((run = ds__batch_take_locked(b, now)) != NULL) {
    *tail = run;
    tail = &run->next_free;
  }
  ds__batch_kick_timer_locked(b, now);
  return runs;
}

ds_status ds_batcher_submit(ds_batch_request **out, ds_batcher *b, const ds_tensor *input,
                            ds_tensor *output, const ds_batch_submit_options *opts) {
  if (out) *out = NULL;
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, M, "ds_batcher_submit: NULL batcher");
  ds_batch_submit_options defaults = DS_BATCH_SUBMIT_OPTIONS_INIT;
  const ds_batch_submit_options *so = opts ? opts : &defaults;
  ds_status st = check_submit(b, input, output, so);
  if (st != DS_OK) return refuse(b, st);
  struct ds_batch_request *r = new_request(b, input, output, so, out != NULL);
  if (!r) return refuse(b, ds__error(b->ctx, DS_ERR_NO_MEMORY, M, "%s: request", b->name));
  pthread_mutex_lock(&b->mu);
  st = b->closed ? DS_ERR_SHUTDOWN : wait_for_room_locked(b, r->deadline);
  if (st != DS_OK) {
    pthread_mutex_unlock(&b->mu);
    free_request(r);
    return refuse(b, st);
  }
  ds__fetch_add_relaxed(&b->submitted, 1);
  struct ds__brun *runs = enqueue_locked(b, r);
  pthread_mutex_unlock(&b->mu);
  if (runs) ds__batch_launch(b, runs);
  if (out) *out = r;
  return DS_OK;
}

void ds__breq_unref(struct ds_batch_request *r) {
  if (ds__fetch_sub(&r->refs, 1) == 1) free_request(r);
}

/* The one completion of r: its status, metrics, callback, then waiters. */
void ds__breq_complete(struct ds_batch_request *r, ds_status st) {
  ds_batcher *b = r->b;
  uint64_t now = ds__now_ns();
  r->status = st;
  if (st == DS_OK) {
    ds__fetch_add_relaxed(&b->completed, 1);
    ds__bhist_add(&b->latency, now - r->t_submit);
  } else if (st == DS_ERR_TIMEOUT) {
    ds__fetch_add_relaxed(&b->timed_out, 1);
  } else if (st == DS_ERR_CANCELLED || st == DS_ERR_SHUTDOWN) {
    ds__fetch_add_relaxed(&b->cancelled, 1);
  } else {
    ds__fetch_add_relaxed(&b->failed, 1);
  }
  if (r->on_done) r->on_done(r->user, r, st);
  pthread_mutex_lock(&r->mu);
  r->done = 1;
  ds__store(&r->state, DS__BREQ_DONE);
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  ds__breq_unref(r);
}

ds_status ds_batch_request_wait(ds_batch_request *r, int64_t timeout_us) {
  if (!r) return ds__error(NULL, DS_ERR_INVALID_ARG, M, "ds_batch_request_wait: NULL request");
  if (ds__load(&r->state) == DS__BREQ_DONE) {
    pthread_mutex_lock(&r->mu); /* pairs with the completer's unlock: status is visible */
    pthread_mutex_unlock(&r->mu);
    return r->status;
  }
  uint64_t end = timeout_us > 0 ? ds__now_ns() + (uint64_t)timeout_us * 1000u : 0;
  pthread_mutex_lock(&r->mu);
  while (!r->done && timeout_us != 0) {
    if (timeout_us < 0) {
      pthread_cond_wait(&r->cv, &r->mu);
      continue;
    }
    struct timespec ts = {(time_t)(end / 1000000000u), (long)(end % 1000000000u)};
    if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) break;
  }
  int done = r->done;
  pthread_mutex_unlock(&r->mu);
  if (!done) return ds__error(r->ctx, DS_ERR_BUSY, M, "request not done in time");
  return r->status;
}

ds_status ds_batch_request_cancel(ds_batch_request *r) {
  if (!r) return ds__error(NULL, DS_ERR_INVALID_ARG, M, "ds_batch_request_cancel: NULL request");
  int s = ds__load(&r->state);
  if (s == DS__BREQ_DONE || s == DS__BREQ_COMPLETING)
    return ds__error(r->ctx, DS_ERR_STATE, M, "request already done");
  ds_batcher *b = r->b;
  pthread_mutex_lock(&b->mu);
  s = ds__load_relaxed(&r->state);
  if (s == DS__BREQ_QUEUED) {
    ds__bq_remove(b, r);
    ds__store_relaxed(&r->state, DS__BREQ_COMPLETING);
  }
  pthread_mutex_unlock(&b->mu);
  if (s == DS__BREQ_QUEUED) {
    ds__breq_complete(r, DS_ERR_CANCELLED);
    return DS_OK;
  }
  if (s == DS__BREQ_RUNNING)
    return ds__error(r->ctx, DS_ERR_BUSY, M, "request's batch already running");
  return ds__error(r->ctx, DS_ERR_STATE, M, "request already done");
}

void ds_batch_request_release(ds_batch_request *r) {
  if (r) ds__breq_unref(r);
}
