/* Tasks: submission with dependencies, completion (callbacks, waking waiters, releasing or
 * cancelling successors), cancellation, waiting, groups, cooperative cancellation and the
 * yield points of LOW tasks, and the core executor's entry into the scheduler.
 *
 * A task leaves WAITING or READY only by a successful CAS, so exactly one thread (the worker
 * that pops it, the canceller, or the thread that releases its last predecessor) completes it.
 * Completion takes no lock: the successor list is closed by one atomic exchange (successors
 * are pushed onto it by CAS until then), and state becomes DONE with a seq_cst store; only if
 * a thread sleeps on the task (t->waiters, raised with a seq_cst RMW before it re-checks the
 * state under the task's stripe mutex) does the completer take that mutex to broadcast. One
 * side always sees the other, so no wake-up is lost. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sched_internal.h"

/* ds_task_options as first released, up to and including 'worker'. */
#define DS__TASK_OPTIONS_V1_SIZE (offsetof(ds_task_options, worker) + sizeof(int32_t))

char ds__succ_closed; /* its address marks a closed successor list */

/* ---------------------------------------------------------------- lifetime */

void ds__task_unref_n(struct ds_task *t, int n) {
  if (ds__load(&t->refs) == n || ds__fetch_sub(&t->refs, n) == n) ds__task_free(t->s, t);
}

/* Records on u the root cause of its cancellation: the first failed predecessor. */
static void ds__record_failed_pred(struct ds_task *u, const struct ds_task *pred) {
  int inherited = pred->status == DS_ERR_CANCELLED && pred->why == DS__WHY_PRED;
  uint64_t id = inherited ? ds__load(&pred->failed_pred_id) : pred->id;
  uint64_t zero = 0;
  if (!ds__cas(&u->failed_pred_id, &zero, id)) return;
  memcpy(u->failed_pred_name, inherited ? pred->failed_pred_name : pred->name, DS__SCHED_NAME_MAX);
  u->failed_pred_status = inherited ? pred->failed_pred_status : pred->status;
}

/* The last predecessor of u finished: queue it, or claim it for cancellation onto *todo. */
static void ds__task_release_ready(struct ds_task *u, struct ds_task **todo) {
  int expected = DS_TASK_WAITING;
  if (ds__load(&u->failed_pred_id) || ds__load(&u->cancel)) {
    if (ds__cas(&u->state, &expected, DS_TASK_RUNNING)) {
      u->why = ds__load(&u->failed_pred_id) ? DS__WHY_PRED : DS__WHY_USER;
      u->qnext = *todo;
      *todo = u;
    }
  } else if (ds__cas(&u->state, &expected, DS_TASK_READY)) {
    ds__sched_enqueue(u->s, u, u->worker_hint);
  }
}

/* Subtracts weight from g's pending; the thread that brings it to 0 wakes the waiters. */
static void ds__group_return(struct ds__sched *s, struct ds_task_group *g, int64_t weight) {
  if (ds__fetch_sub(&g->pending, weight) == weight) { /* g may be freed from here on: address only */
    struct ds__stripe *sp = ds__stripe_of(s, g);
    pthread_mutex_lock(&sp->mu);
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
  }
}

void ds__group_flush_slow(ds__worker *w) {
  int64_t owed = w->gowed;
  w->gowed = 0;
  ds__group_return(w->s, w->gcache, owed);
}

/* Gives t (new, of a group) its weight: half the running task's when that task is of the same
 * group and holds 2 or more, else a fresh loan (see struct ds_task_group). */
static void ds__group_take(struct ds_task *t) {
  struct ds_task *cur = ds__tl_task;
  if (cur && cur->group == t->group && cur->gweight > 1) {
    t->gweight = cur->gweight / 2;
    cur->gweight -= t->gweight;
    return;
  }
  t->gweight = DS__GROUP_LOAN;
  ds__fetch_add(&t->group->pending, DS__GROUP_LOAN);
}

static void ds__group_fail(struct ds_task_group *g, ds_status st) {
  int ok = DS_OK;
  ds__cas(&g->first_error, &ok, (int)st);
}

/* ds__group_done_one when the weight cannot be added to what w already holds back. */
static void ds__group_done_slow(struct ds__sched *s, ds__worker *w, struct ds_task_group *g,
                                int64_t weight) {
  if (!w || w->index >= s->nworkers) { /* the helper slot's thread leaves at any time */
    ds__group_return(s, g, weight);
    return;
  }
  ds__group_flush(w);
  w->gcache = g;
  w->gowed = weight;
}

/* t of group g is finished: its first error is recorded and its weight returned. ran: the
 * calling worker ran t, which may then hold the weight back (only there: its flush points,
 * in sched.c and ds__wait, are on the run path). Inline: once per group task; the common case
 * (a worker finishing one more task of the group it holds weight of) is a compare and an add. */
static inline void ds__group_done_one(struct ds_task *t, struct ds_task_group *g, ds_status st,
                                      int ran) {
  struct ds__sched *s = t->s;
  if (DS__UNLIKELY(st != DS_OK)) ds__group_fail(g, st);
  ds__worker *w = ran ? ds__sched_self(s) : NULL;
  if (w && w->gcache == g && w->gowed != 0) { /* gowed != 0: never the helper slot */
    w->gowed += t->gweight;
    return;
  }
  ds__group_done_slow(s, w, g, t->gweight);
}

/* A solo task finished by its worker: no successor list to close, no waiter to wake, and the
 * life ref stays with the caller. */
void ds__task_finish_solo(struct ds_task *t, ds_status st, int why) {
  struct ds__sched *s = t->s;
  t->status = st;
  t->why = st == DS_ERR_CANCELLED ? why : DS__WHY_NONE;
  if (t->on_done) t->on_done(t->on_done_user, t, st);
  ds__store_relaxed(&t->state, DS_TASK_DONE);
  if (t->group) ds__group_done_one(t, t->group, st, 1);
  ds__sched_count_complete(s);
}

/* Completes t; drops its life ref unless keep_life (the caller then drops it). */
static void ds__task_complete_one(struct ds_task *t, ds_status st, int why, struct ds_task **todo,
                                  int keep_life) {
  struct ds__sched *s = t->s;
  t->status = st;
  t->why = st == DS_ERR_CANCELLED ? why : DS__WHY_NONE;
  if (t->on_done) t->on_done(t->on_done_user, t, st);
  ds__edge *e = ds__exchange(&t->succ, DS__SUCC_CLOSED); /* publishes status to late linkers */
  ds__store_seq_cst(&t->state, DS_TASK_DONE);
  if (ds__load_seq_cst(&t->waiters) > 0) {
    struct ds__stripe *sp = ds__stripe_of(s, t);
    pthread_mutex_lock(&sp->mu);
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
  }
  while (e) {
    ds__edge *next = e->next;
    struct ds_task *u = e->task;
    if (st != DS_OK) ds__record_failed_pred(u, t);
    if (ds__fetch_sub(&u->npred, 1) == 1) ds__task_release_ready(u, todo);
    if (e->heap) ds__free(s->ctx, e);
    ds__task_unref(u); /* after: u holds e when e is inline */
    e = next;
  }
  if (t->group) ds__group_done_one(t, t->group, st, keep_life);
  if (!keep_life) ds__task_unref(t);
  ds__sched_count_complete(s);
}

/* Completes t, then successors it cancels, iteratively (a failed head of a long chain must
 * not recurse once per task). */
static void ds__task_finish_all(struct ds_task *t, ds_status st, int why, int keep_life) {
  struct ds_task *todo = NULL;
  ds__task_complete_one(t, st, why, &todo, keep_life);
  while (todo) {
    struct ds_task *u = todo;
    todo = u->qnext;
    u->qnext = NULL;
    ds__task_complete_one(u, DS_ERR_CANCELLED, u->why, &todo, 0);
  }
}

void ds__task_finish(struct ds_task *t, ds_status st, int why) { ds__task_finish_all(t, st, why, 0); }

void ds__task_finish_kept(struct ds_task *t, ds_status st, int why) {
  ds__task_finish_all(t, st, why, 1);
}

/* ---------------------------------------------------------------- submission */

/* A unique task id. Workers and outside threads take blocks of DS__ID_BLOCK from the shared
 * counter, so that a submit touches no shared line for it. */
static uint64_t ds__task_id(struct ds__sched *s) {
  ds__worker *w = ds__sched_self(s);
  if (!w) return ds__sched_outside_id(s);
  if (w->id_next == w->id_end) {
    w->id_next = ds__fetch_add_relaxed(&s->next_id, DS__ID_BLOCK) + 1;
    w->id_end = w->id_next + DS__ID_BLOCK;
  }
  return w->id_next++;
}

static struct ds_task *ds__task_new(struct ds__sched *s, const ds_task_options *o, int handle,
                                    int worker_hint) {
  struct ds_task *t = ds__task_alloc(s);
  if (!t) return NULL;
  t->s = s;
  t->id = ds__task_id(s);
  t->prio = o->prio;
  /* Two clock reads per task would be a third of an empty task's cost: NORMAL tasks are
   * sampled (one in DS__TIMED_EVERY) for the wait and completion-time stats. */
  t->timed = o->prio != DS_PRIO_NORMAL || o->deadline_ns || t->id % DS__TIMED_EVERY == 0;
  t->device = o->device;
  t->worker_hint = worker_hint;
  t->deadline_ns = o->deadline_ns;
  t->cost_ns = o->cost_ns;
  t->group = o->group;
  t->on_done = o->on_done;
  t->on_done_user = o->on_done_user;
  t->solo = !handle && o->ndeps == 0;
  if (o->name) {
    size_t n = strnlen(o->name, sizeof t->name - 1);
    memcpy(t->name, o->name, n);
    t->name[n] = '\0';
  } else {
    memcpy(t->name, "task", 5);
  }
  ds__store_relaxed(&t->state, DS_TASK_WAITING);
  ds__store_relaxed(&t->refs, 1 + handle);
  ds__store_relaxed(&t->npred, 1);
  return t;
}

/* Pushes edge e (t waits for d) onto d's successor list; 0 if d is already done (its
 * failure, if any, is then recorded on t). The counts are raised first: once linked, d's
 * completion may drop them at once. t's own submit hold keeps them above zero if undone. */
static int ds__task_link(struct ds_task *d, struct ds_task *t, ds__edge *e) {
  e->task = t;
  ds__fetch_add(&t->npred, 1);
  ds__fetch_add(&t->refs, 1);
  void *head = ds__load(&d->succ);
  while (head != DS__SUCC_CLOSED) {
    e->next = head;
    if (ds__cas(&d->succ, &head, e)) return 1;
  }
  ds__fetch_sub(&t->npred, 1);
  ds__fetch_sub(&t->refs, 1);
  if (d->status != DS_OK) ds__record_failed_pred(t, d); /* acquired with CLOSED */
  return 0;
}

/* Links t after its predecessors (edges preallocated, one per dep) and releases it if none is
 * pending. After this, t may already be running or done. */
static void ds__task_publish(struct ds_task *t, ds_task *const *deps, size_t ndeps, ds__edge **edges) {
  struct ds__sched *s = t->s;
  ds__sched_count_submit(s);
  if (t->group) ds__group_take(t);
  for (size_t i = 0; i < ndeps; i++)
    if (!ds__task_link(deps[i], t, edges[i]) && edges[i]->heap)
      ds__free(s->ctx, edges[i]); /* unused: dependency done */
  /* Without edges no other thread can see t yet (its handle is not returned): queue it without
   * the atomics. */
  if (ndeps == 0) {
    ds__store_relaxed(&t->state, DS_TASK_READY);
    ds__sched_enqueue_new(s, t, t->worker_hint);
  } else if (ds__fetch_sub(&t->npred, 1) == 1) {
    struct ds_task *todo = NULL;
    ds__task_release_ready(t, &todo);
    if (todo) ds__task_finish(todo, DS_ERR_CANCELLED, todo->why);
  }
}

static ds_status ds__check_submit(ds_context *ctx, ds_task_fn fn, const ds_task_options *o) {
  if (!fn) return ds__error(ctx, DS_ERR_INVALID_ARG, "sched", "ds_task_submit: fn is NULL");
  if (o->struct_size != sizeof *o)
    return ds__error(ctx, DS_ERR_ABI, "sched", "ds_task_submit: struct_size %u unknown (expected %zu)",
                     o->struct_size, sizeof *o);
  if (o->prio < DS_PRIO_URGENT || o->prio > DS_PRIO_LOW)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "sched", "ds_task_submit: prio %d is not a ds_prio",
                     (int)o->prio);
  if (o->ndeps && !o->deps)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "sched", "ds_task_submit: deps is NULL, ndeps %zu",
                     o->ndeps);
  return DS_OK;
}

static ds_status ds__check_deps(struct ds__sched *s, const ds_task_options *o) {
  for (size_t i = 0; i < o->ndeps; i++)
    if (!o->deps[i] || o->deps[i]->s != s)
      return ds__error(s->ctx, DS_ERR_INVALID_ARG, "sched",
                       "ds_task_submit: dependency %zu is NULL or belongs to another context", i);
  if (o->group && o->group->s != s)
    return ds__error(s->ctx, DS_ERR_INVALID_ARG, "sched",
                     "ds_task_submit: group belongs to another context");
  return DS_OK;
}

static ds_status ds__submit(ds_task **out, ds_context *ctx, const ds_task_options *o, ds_task_fn fn,
                            ds__work_fn work, void *arg) {
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return DS_ERR_NO_MEMORY;
  ds_status st = ds__check_deps(s, o);
  if (st != DS_OK) return st;
  if (ds__load(&s->draining))
    return ds__error(ctx, DS_ERR_SHUTDOWN, "sched", "task '%s' not accepted: the context is being "
                     "destroyed", o->name ? o->name : "task");
  /* Placement of a NORMAL task: the explicit worker, else the device's node, else the data's. */
  int hint = o->worker, dev_hint = -1;
  if (o->device != -1 && (st = ds__sched_worker_for_device(s, o->device, &dev_hint)) != DS_OK) return st;
  if (o->prio == DS_PRIO_NORMAL && hint < 0)
    hint = dev_hint >= 0 ? dev_hint : o->data ? ds__sched_worker_for_data(s, o->data) : -1;
  ds__edge *stack_edges[8], **edges = o->ndeps <= 8 ? stack_edges : ds__calloc(ctx, o->ndeps, sizeof *edges);
  struct ds_task *t = edges ? ds__task_new(s, o, out != NULL, hint) : NULL;
  size_t got = 0;
  for (; t && got < o->ndeps; got++) {
    edges[got] = got < DS__SCHED_INLINE_EDGES ? &t->inline_edges[got] : ds__alloc(ctx, sizeof **edges);
    if (!edges[got]) break;
    edges[got]->heap = got >= DS__SCHED_INLINE_EDGES;
  }
  if (!t || got < o->ndeps) {
    while (got) {
      got--;
      if (edges[got]->heap) ds__free(ctx, edges[got]);
    }
    if (edges != stack_edges) ds__free(ctx, edges);
    if (t) ds__task_free(s, t);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "cannot allocate a task");
  }
  t->fn = fn;
  t->work = work;
  t->arg = arg;
  if (out) *out = t;
  ds__task_publish(t, o->deps, o->ndeps, edges);
  if (edges != stack_edges) ds__free(ctx, edges);
  return DS_OK;
}

static const ds_task_options ds__task_defaults = DS_TASK_OPTIONS_INIT;

ds_status ds_task_submit(ds_task **out, ds_context *ctx, ds_task_fn fn, void *arg,
                         const ds_task_options *opts) {
  if (out) *out = NULL;
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_task_submit: ctx is NULL");
  /* The defaults are copied only for an old caller: filling a local copy on every call cost
   * as much as queueing the task. */
  ds_task_options v1;
  const ds_task_options *o = opts ? opts : &ds__task_defaults;
  if (opts && opts->struct_size == DS__TASK_OPTIONS_V1_SIZE) { /* built before 'data' */
    v1 = ds__task_defaults;
    memcpy(&v1, opts, DS__TASK_OPTIONS_V1_SIZE);
    v1.struct_size = sizeof v1;
    o = &v1;
  }
  ds_status st = ds__check_submit(ctx, fn, o);
  return st != DS_OK ? st : ds__submit(out, ctx, o, fn, NULL, arg);
}

/* ---------------------------------------------------------------- batches */

#define DS__BATCH_CHUNK 64 /* tasks published per wake-up */

/* Publishes k new tasks without dependencies: the live and group counts raised once, each
 * queued without a wake-up, then one wake-up (a woken worker that finds more wakes the next). */
static void ds__publish_chunk(struct ds__sched *s, struct ds_task **ts, size_t k, ds_task_group *g,
                              int prio) {
  ds__sched_count_submit_n(s, (uint64_t)k);
  if (g) ds__fetch_add(&g->pending, (int64_t)k * DS__GROUP_LOAN);
  for (size_t i = 0; i < k; i++) {
    ts[i]->gweight = DS__GROUP_LOAN;
    ds__store_relaxed(&ts[i]->state, DS_TASK_READY);
    ds__store_relaxed(&ts[i]->refs, ds__load_relaxed(&ts[i]->refs) + 1); /* the queue entry's */
    ds__sched_enqueue_owned(s, ts[i], ts[i]->worker_hint);
  }
  if (prio == DS_PRIO_URGENT) ds__sched_wake_urgent(s);
  else ds__sched_wake(s);
}

ds_status ds_task_submit_batch(size_t *submitted, ds_context *ctx, ds_task_fn fn, void *const *args,
                               size_t n, const ds_task_options *opts) {
  if (submitted) *submitted = 0;
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_task_submit_batch: ctx is NULL");
  ds_task_options defaults = DS_TASK_OPTIONS_INIT;
  const ds_task_options *o = opts ? opts : &defaults;
  if (opts && opts->struct_size == DS__TASK_OPTIONS_V1_SIZE) { /* built before 'data' */
    memcpy(&defaults, opts, DS__TASK_OPTIONS_V1_SIZE);
    defaults.struct_size = sizeof defaults;
    o = &defaults;
  }
  ds_status st = ds__check_submit(ctx, fn, o);
  if (st != DS_OK) return st;
  if (o->ndeps)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "sched", "ds_task_submit_batch: dependencies are not "
                     "supported in a batch (ndeps %zu); use ds_task_submit", o->ndeps);
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return DS_ERR_NO_MEMORY;
  if ((st = ds__check_deps(s, o)) != DS_OK) return st;
  if (ds__load(&s->draining))
    return ds__error(ctx, DS_ERR_SHUTDOWN, "sched", "batch of %zu tasks not accepted: the context is "
                     "being destroyed", n);
  int dev_hint = -1;
  if (o->device != -1 && (st = ds__sched_worker_for_device(s, o->device, &dev_hint)) != DS_OK) return st;
  struct ds_task *chunk[DS__BATCH_CHUNK];
  size_t done = 0;
  while (done < n) {
    size_t k = 0;
    for (; k < DS__BATCH_CHUNK && done + k < n; k++) {
      void *arg = args ? args[done + k] : NULL;
      int hint = o->worker;
      if (o->prio == DS_PRIO_NORMAL && hint < 0)
        hint = dev_hint >= 0 ? dev_hint : o->data ? ds__sched_worker_for_data(s, o->data) : -1;
      struct ds_task *t = ds__task_new(s, o, 0, hint);
      if (!t) break;
      t->fn = fn;
      t->arg = arg;
      chunk[k] = t;
    }
    if (k) ds__publish_chunk(s, chunk, k, o->group, o->prio);
    done += k;
    if (submitted) *submitted = done;
    if (done < n && k < DS__BATCH_CHUNK)
      return ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "ds_task_submit_batch: out of memory after "
                       "%zu of %zu tasks (those were submitted)", done, n);
  }
  return DS_OK;
}

ds_status ds__sched_executor_submit(ds_context *ctx, ds__work_fn fn, void *arg, int prio) {
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.prio = prio;
  o.name = "executor";
  return ds__submit(NULL, ctx, &o, NULL, fn, arg);
}

/* ---------------------------------------------------------------- waiting */

typedef int (*ds__done_fn)(const void *key);

static int ds__task_is_done(const void *key) {
  return ds__load_seq_cst(&((const struct ds_task *)key)->state) == DS_TASK_DONE;
}

static int ds__group_is_done(const void *key) {
  return ds__load(&((const struct ds_task_group *)key)->pending) == 0;
}

static void ds__abs_timespec(struct timespec *ts, uint64_t ns_from_now) {
  clock_gettime(CLOCK_REALTIME, ts);
  uint64_t ns = (uint64_t)ts->tv_nsec + ns_from_now;
  ts->tv_sec += (time_t)(ns / 1000000000u);
  ts->tv_nsec = (long)(ns % 1000000000u);
}

/* An outside thread that waits without a time limit runs queued tasks until the queues are
 * empty (as oneTBB's waiting thread does), in the helper slot: a worker record with a deque of
 * its own that the workers steal from, used by one outside thread at a time (helper_mu). */
static void ds__help(struct ds__sched *s, const void *key, ds__done_fn done) {
  if (ds__load(&s->draining) || pthread_mutex_trylock(&s->helper_mu) != 0) return;
  ds__worker *h = &s->workers[s->nworkers];
  ds__tl_worker = h;
  struct ds_task *t;
  while (!done(key) && (t = ds__sched_next(h))) ds__sched_run_entry(h, t);
  ds__tl_worker = NULL;
  pthread_mutex_unlock(&s->helper_mu);
}

/* Waits until done(key) or the deadline (CLOCK_MONOTONIC ns, UINT64_MAX: none); returns
 * done(key). A worker runs other tasks meanwhile, so nested waits cannot starve the pool. */
static int ds__wait(struct ds__sched *s, const void *key, ds__done_fn done, ds__atomic_int *waiters,
                    uint64_t deadline) {
  ds__worker *w = ds__sched_self(s);
  if (!w && !ds__tl_worker && deadline == UINT64_MAX) ds__help(s, key, done);
  struct ds__stripe *sp = ds__stripe_of(s, key);
  for (;;) {
    if (w && w->index < s->nworkers) ds__group_flush(w); /* it may hold back what key waits for */
    if (done(key)) return 1;
    /* No clock read without a deadline: a fork-join parent passes here once per child. */
    uint64_t now = deadline == UINT64_MAX ? 0 : ds__now_ns();
    if (now >= deadline) return done(key); /* a 0 timeout only tests, even on a worker */
    struct ds_task *t = w ? ds__sched_next(w) : NULL;
    if (t) {
      ds__sched_run_entry(w, t);
      continue;
    }
    uint64_t left = deadline - now;
    if (w && left > 1000000u) left = 1000000u; /* poll the queues again soon */
    pthread_mutex_lock(&sp->mu);
    if (waiters) ds__fetch_add_seq_cst(waiters, 1); /* before the check: see the file comment */
    if (!done(key)) {
      if (deadline == UINT64_MAX && !w) {
        pthread_cond_wait(&sp->cv, &sp->mu);
      } else {
        struct timespec ts;
        ds__abs_timespec(&ts, left);
        pthread_cond_timedwait(&sp->cv, &sp->mu, &ts);
      }
    }
    if (waiters) ds__fetch_sub(waiters, 1);
    pthread_mutex_unlock(&sp->mu);
  }
}

static uint64_t ds__deadline_of(int64_t timeout_ms) {
  return timeout_ms < 0 ? UINT64_MAX : ds__now_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* The task's final status, with its explanation recorded as the caller's last error. */
static ds_status ds__task_report(const struct ds_task *t) {
  ds_context *ctx = t->s->ctx;
  unsigned long long id = (unsigned long long)t->id;
  if (t->status == DS_OK) return DS_OK;
  if (t->status != DS_ERR_CANCELLED)
    return ds__error(ctx, t->status, "sched", "task '%s' (#%llu) failed: %s", t->name, id,
                     t->status == DS_ERR_TIMEOUT ? "timed out (deadline passed)" : ds_status_name(t->status));
  if (t->why == DS__WHY_PRED)
    return ds__error(ctx, DS_ERR_CANCELLED, "sched",
                     "task '%s' (#%llu) cancelled: predecessor '%s' (#%llu) failed with %s", t->name,
                     id, t->failed_pred_name, (unsigned long long)ds__load(&t->failed_pred_id),
                     ds_status_name(t->failed_pred_status));
  return ds__error(ctx, DS_ERR_CANCELLED, "sched", "task '%s' (#%llu) cancelled: %s", t->name, id,
                   t->why == DS__WHY_SHUTDOWN ? "the context is being destroyed" : "by request");
}

ds_status ds_task_wait(ds_task *task, int64_t timeout_ms) {
  if (!task) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_task_wait: task is NULL");
  if (!ds__wait(task->s, task, ds__task_is_done, &task->waiters, ds__deadline_of(timeout_ms)))
    return ds__error(task->s->ctx, DS_ERR_TIMEOUT, "sched", "task '%s' (#%llu) not done after %lld ms",
                     task->name, (unsigned long long)task->id, (long long)timeout_ms);
  return ds__task_report(task);
}

int ds_task_state(const ds_task *task) { return task ? ds__load(&task->state) : DS_TASK_DONE; }

ds_status ds_task_status(const ds_task *task) {
  if (!task) return DS_ERR_INVALID_ARG;
  return ds__load(&task->state) == DS_TASK_DONE ? task->status : DS_ERR_STATE;
}

void ds_task_release(ds_task *task) {
  if (task) ds__task_unref(task);
}

ds_status ds_task_cancel(ds_task *task) {
  if (!task) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_task_cancel: task is NULL");
  /* The state is read before the flag is raised: raised first, a worker that had just claimed
   * the task could see the flag and complete it cancelled before the state is read here, so
   * DONE would be read and DS_ERR_STATE returned for a task this very call stopped (a caller
   * would then expect it to have run). Claiming a WAITING or READY task needs no flag. */
  int st = ds__load(&task->state);
  for (;;) {
    if (st == DS_TASK_DONE) return DS_ERR_STATE;
    if (st == DS_TASK_RUNNING) {
      ds__store(&task->cancel, 1); /* seen before its function starts, or by ds_task_cancelled() */
      return DS_ERR_BUSY;
    }
    if (ds__cas(&task->state, &st, DS_TASK_RUNNING)) break; /* on failure st is reloaded */
  }
  /* A READY task's queue entry stays until a worker drops it. */
  ds__task_finish(task, DS_ERR_CANCELLED, DS__WHY_USER);
  return DS_OK;
}

/* ---------------------------------------------------------------- inside a task */

int ds_task_cancelled(void) {
  struct ds_task *t = ds__tl_task;
  return t && (ds__load(&t->cancel) || ds__load(&t->s->draining));
}

int ds_task_should_yield(void) {
  struct ds_task *t = ds__tl_task;
  if (!t || t->prio != DS_PRIO_LOW) return 0;
  struct ds__sched *s = t->s;
  return ds__load(&s->urgent.len) > 0 && ds__load(&s->sleepers) == 0 &&
         ds__load_relaxed(&s->spinning) == 0 && ds__load_relaxed(&s->urgent_sleepers) == 0;
}

int ds_task_yield(void) {
  if (!ds_task_should_yield()) return 0;
  ds__worker *w = ds__tl_worker;
  struct ds__sched *s = w->s;
  int n = 0;
  struct ds_task *u;
  while ((u = ds__queue_pop_head(&s->urgent))) {
    ds__sched_run_entry(w, u);
    n++;
  }
  if (n) ds__fetch_add_relaxed(&s->preemptions, 1);
  return n;
}

/* ---------------------------------------------------------------- groups */

ds_status ds_task_group_create(ds_task_group **out, ds_context *ctx) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "sched", "ds_task_group_create: NULL argument");
  *out = NULL;
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return DS_ERR_NO_MEMORY;
  ds_task_group *g = ds__calloc(ctx, 1, sizeof *g);
  if (!g) return ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "cannot allocate a task group");
  g->s = s;
  ds__store_relaxed(&g->first_error, DS_OK);
  *out = g;
  return DS_OK;
}

ds_status ds_task_group_wait(ds_task_group *group, int64_t timeout_ms) {
  if (!group) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_task_group_wait: group is NULL");
  if (!ds__wait(group->s, group, ds__group_is_done, NULL, ds__deadline_of(timeout_ms)))
    return ds__error(group->s->ctx, DS_ERR_TIMEOUT, "sched", "tasks of the group still pending "
                     "after %lld ms", (long long)timeout_ms);
  ds_status st = (ds_status)ds__load(&group->first_error);
  if (st != DS_OK)
    return ds__error(group->s->ctx, st, "sched", "a task of the group failed with %s",
                     ds_status_name(st));
  return DS_OK;
}

void ds_task_group_destroy(ds_task_group *group) {
  if (!group) return;
  ds__wait(group->s, group, ds__group_is_done, NULL, UINT64_MAX);
  ds__free(group->s->ctx, group);
}
