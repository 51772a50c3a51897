/* The scheduler's runtime: the per-context worker pool (lazy start, hwloc binding, parking),
 * the choice of the next task (URGENT, own deque, steal, throttled LOW), the tick (load
 * prediction, LOW throttling, stats) and shutdown. Tasks themselves live in task.c. */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "sched_internal.h"
#include "topology_internal.h"

_Thread_local ds__worker *ds__tl_worker;
_Thread_local struct ds_task *ds__tl_task;

static const char *const ds__class_names[3] = {"urgent", "normal", "low"};

struct ds__stripe *ds__stripe_of(struct ds__sched *s, const void *p) {
  uintptr_t h = (uintptr_t)p;
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull;
  return &s->stripes[(h >> 32) % DS__SCHED_STRIPES];
}


/* ---------------------------------------------------------------- LOW throttling */

static int ds__low_duty_open(struct ds__sched *s) {
  int duty = ds__load_relaxed(&s->low_duty_pct);
  if (duty >= 100) return 1;
  uint64_t period = (uint64_t)ds__param(s->ctx, DS_PARAM_SCHED_TICK_MS) * 1000000u;
  return (ds__now_ns() % period) * 100 < period * (uint64_t)duty;
}

/* Reserves a LOW slot if the cap and the duty cycle allow one. */
static int ds__low_acquire(struct ds__sched *s) {
  if (!ds__low_duty_open(s)) return 0;
  int cap = ds__load_relaxed(&s->low_cap);
  int cur = ds__load_relaxed(&s->low_running);
  while (cur < cap)
    if (ds__cas(&s->low_running, &cur, cur + 1)) return 1;
  return 0;
}

/* NORMAL entries queued anywhere (a racy sum: a hint for parking, stealing and stats). */
int64_t ds__sched_normal_queued(struct ds__sched *s) {
  int64_t n = 0;
  for (int p = 0; p < s->npools; p++) n += ds__ring_size(&s->pools[p].inject);
  for (int i = 0; i < s->nslots; i++)
    n += ds__deque_size(&s->workers[i].deque) + ds__load_relaxed(&s->workers[i].mailbox.len);
  return n;
}

int ds__sched_runnable(struct ds__sched *s) {
  if (ds__load(&s->urgent.len) > 0 || ds__sched_normal_queued(s) > 0) return 1;
  return ds__load(&s->low.len) > 0 && ds__load_relaxed(&s->low_running) <
         ds__load_relaxed(&s->low_cap) && ds__low_duty_open(s);
}

/* ---------------------------------------------------------------- live tasks */

/* Live tasks are counted without a shared line on the task path: each worker counts what it
 * submits and completes in its own record (release stores), other threads in two shared
 * counters. ds__sched_live reads every completion count first, then every submission count:
 * a completion it sees happened after its submission, whose count it therefore sees too, so
 * the difference never reads 0 while a task is live. */
void ds__sched_drain_notify(struct ds__sched *s) {
  if (ds__sched_live(s) != 0) return;
  pthread_mutex_lock(&s->park_mu); /* destroy also polls, should this read miss the end */
  pthread_cond_broadcast(&s->drain_cv);
  pthread_mutex_unlock(&s->park_mu);
}

int64_t ds__sched_live(struct ds__sched *s) {
  uint64_t done = ds__load(&s->outside_completed), sub = 0;
  for (int i = 0; i < s->nslots; i++) done += ds__load(&s->workers[i].completed);
  for (int i = 0; i < s->nslots; i++) sub += ds__load(&s->workers[i].submitted);
  sub += ds__load(&s->outside_submitted);
  return (int64_t)(sub - done);
}

/* ---------------------------------------------------------------- queues and wakeups */

void ds__sched_wake(struct ds__sched *s) {
  /* Pairs with the fence in ds__worker_park: either the sleeper sees the new entry, or we see
   * the sleeper and signal under its mutex. */
  ds__fence_seq_cst();
  /* A spinning worker will find the work, and parks only after checking once more. A worker
   * already being woken will too: one futex wake per sleeper, not one per submit. */
  int sleepers = ds__load(&s->sleepers);
  if (sleepers == 0 || ds__load_relaxed(&s->spinning) > 0 || ds__load_relaxed(&s->waking) >= sleepers)
    return;
  pthread_mutex_lock(&s->park_mu);
  if (ds__load_relaxed(&s->waking) < ds__load_relaxed(&s->sleepers)) {
    ds__store_relaxed(&s->waking, ds__load_relaxed(&s->waking) + 1);
    pthread_cond_signal(&s->park_cv);
  }
  pthread_mutex_unlock(&s->park_mu);
}

/* URGENT work: a sleeping reserved worker (it takes nothing else), and any other sleeper too,
 * so that a burst is not left to the reserved workers alone. */
void ds__sched_wake_urgent(struct ds__sched *s) {
  ds__fence_seq_cst();
  if (ds__load(&s->urgent_sleepers) > 0) {
    pthread_mutex_lock(&s->park_mu);
    pthread_cond_signal(&s->urgent_cv);
    pthread_mutex_unlock(&s->park_mu);
  }
  ds__sched_wake(s);
}

static void ds__sched_enqueue_wake(struct ds__sched *s, struct ds_task *t, int worker_hint) {
  int urgent = t->prio == DS_PRIO_URGENT; /* once queued, t may run and be freed at once */
  ds__sched_enqueue_owned(s, t, worker_hint);
  if (urgent) ds__sched_wake_urgent(s);
  else ds__sched_wake(s);
}

void ds__sched_enqueue(struct ds__sched *s, struct ds_task *t, int worker_hint) {
  ds__fetch_add(&t->refs, 1); /* the queue entry's */
  ds__sched_enqueue_wake(s, t, worker_hint);
}

void ds__sched_enqueue_new(struct ds__sched *s, struct ds_task *t, int worker_hint) {
  ds__store_relaxed(&t->refs, ds__load_relaxed(&t->refs) + 1); /* no other thread sees t yet */
  ds__sched_enqueue_wake(s, t, worker_hint);
}

void ds__sched_enqueue_owned(struct ds__sched *s, struct ds_task *t, int worker_hint) {
  if (t->timed) t->ready_ns = ds__now_ns();
  if (t->prio == DS_PRIO_URGENT) {
    ds__queue_insert(&s->urgent, t);
  } else if (t->prio == DS_PRIO_LOW) {
    ds__queue_insert(&s->low, t);
  } else {
    /* A worker's own submits go to its lock-free deque; outside submits to a FIFO so they run
     * in order; a task for a given worker to that worker's mailbox. */
    ds__worker *self = ds__sched_self(s);
    int w = worker_hint >= 0 && worker_hint < s->nworkers ? worker_hint : self ? self->index : -1;
    if (w < 0)
      ds__ring_push(&ds__sched_route(s, t->id)->inject, t);
    else if (&s->workers[w] != self || !ds__deque_push(&self->deque, s->ctx, t))
      ds__queue_push_tail(&s->workers[w].mailbox, t);
  }
}

static uint64_t ds__xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

/* Takes the oldest entry of another worker's deque or mailbox, starting at a random victim. */
static struct ds_task *ds__steal(ds__worker *w) {
  struct ds__sched *s = w->s;
  int start = (int)(ds__xorshift(&w->rng) % (uint64_t)s->nslots);
  for (int i = 0; i < s->nslots; i++) { /* the helper slot too: its tasks must not strand */
    ds__worker *v = &s->workers[(start + i) % s->nslots];
    if (v == w) continue;
    struct ds_task *t = ds__deque_steal(&v->deque);
    if (!t) t = ds__queue_pop_head(&v->mailbox);
    if (t) {
      ds__own_add(&w->steals, 1);
      return t;
    }
  }
  return NULL;
}

struct ds_task *ds__sched_next(ds__worker *w) {
  struct ds__sched *s = w->s;
  /* The length is read here too: the call cost more than the rest of a local pop. */
  struct ds_task *t = ds__load_relaxed(&s->urgent.len) > 0 ? ds__queue_pop_head(&s->urgent) : NULL;
  if (t || w->reserved) return t;
  t = ds__deque_pop(&w->deque);
  if (!t) t = ds__queue_pop_head(&w->mailbox);
  for (int i = 0; !t && i < s->npools; i++) /* own pool's first: both pools serve */
    t = ds__ring_pop(&s->pools[(w->pool + i) % s->npools].inject);
  if (!t) t = ds__steal(w);
  if (t) return t;
  if (ds__load_relaxed(&s->low.len) > 0 && ds__low_acquire(s)) {
    t = ds__queue_pop_head(&s->low);
    if (!t) ds__fetch_sub(&s->low_running, 1);
  }
  return t;
}

/* ---------------------------------------------------------------- running */

/* Finishes t on its worker, keeping its life ref: returns 2, the refs the caller drops (the
 * life ref and the queue entry's). Never for a detached task (completed elsewhere). */
static int ds__run_finish(struct ds_task *t, ds_status st, int why) {
  if (t->solo) ds__task_finish_solo(t, st, why);
  else ds__task_finish_kept(t, st, why);
  return 2;
}

/* Runs a claimed task; returns the refs the caller drops (see ds__run_finish). */
static int ds__run_claimed(ds__worker *w, struct ds_task *t) {
  struct ds__sched *s = w->s;
  uint64_t now = t->timed ? ds__now_ns() : 0;
  if (t->timed) ds__hist_add(&w->wait_hist[t->prio], now - t->ready_ns);
  if (t->deadline_ns && now > t->deadline_ns)
    return ds__run_finish(t, DS_ERR_TIMEOUT, DS__WHY_NONE);
  if (!t->work && (ds__load(&t->cancel) || ds__load(&s->draining))) {
    int why = ds__load(&t->cancel) ? DS__WHY_USER : DS__WHY_SHUTDOWN;
    return ds__run_finish(t, DS_ERR_CANCELLED, why);
  }
  struct ds_task *outer = ds__tl_task;
  ds__tl_task = t;
  ds_status st = DS_OK;
  if (t->work)
    t->work(t->arg);
  else
    st = t->fn(t->arg);
  ds__tl_task = outer;
  ds__own_add(&w->run, 1);
  if (t->detached) { /* completed by ds__task_complete, maybe already (detach.c) */
    ds__task_detached_returned(t);
    return 1;
  }
  if (t->timed) {
    uint64_t us = (ds__now_ns() - t->ready_ns) / 1000u;
    ds__own_add(&w->done_n, 1);
    ds__own_add(&w->done_sum_us, us);
    ds__own_add(&w->done_sumsq_us2, us * us);
  }
  return ds__run_finish(t, st, st == DS_ERR_CANCELLED ? DS__WHY_USER : DS__WHY_NONE);
}

void ds__sched_run_entry(ds__worker *w, struct ds_task *t) {
  struct ds__sched *s = w->s;
  int prio = t->prio, drop = 1;
  int expected = DS_TASK_READY;
  /* Group weight held back must not belong to a group t's code could wait for (task.c). */
  if (w->gcache != t->group) ds__group_flush(w);
  if (prio != DS_PRIO_LOW) ds__own_add(&w->nonlow, 1);
  /* A task cancelled while queued was completed by the canceller; only our ref remains. A solo
   * task has no other claimer: the holder of its queue entry (this worker) takes it. */
  if (t->solo) {
    ds__store_relaxed(&t->state, DS_TASK_RUNNING);
    drop = ds__run_claimed(w, t);
  } else if (ds__cas(&t->state, &expected, DS_TASK_RUNNING)) {
    drop = ds__run_claimed(w, t);
  }
  if (prio == DS_PRIO_LOW) {
    ds__fetch_sub(&s->low_running, 1);
    if (ds__load_relaxed(&s->low.len) > 0) ds__sched_wake(s);
  } else {
    ds__own_add(&w->nonlow, -1);
  }
  ds__task_unref_n(t, drop);
  if (ds__tl_task) ds__group_flush(w); /* a nested run: the outer task's code goes on */
}

/* ---------------------------------------------------------------- worker threads */

static void ds__worker_bind(ds__worker *w) {
  ds_context *ctx = w->s->ctx;
  if (!ds__param(ctx, DS_PARAM_SCHED_BIND)) return;
  hwloc_topology_t topo = w->s->topo;
  if (!topo) {
    ds__log(ctx, DS_LOG_WARN, "sched", "worker %d: no topology, not bound", w->index);
    return;
  }
  int npu = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  hwloc_obj_t pu = npu > 0 ? hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)(w->index % npu)) : NULL;
  if (!pu || hwloc_set_cpubind(topo, pu->cpuset, HWLOC_CPUBIND_THREAD) != 0) {
    ds__log(ctx, DS_LOG_WARN, "sched", "worker %d: cannot bind to a processing unit (%s)", w->index,
            pu ? "hwloc_set_cpubind failed" : "none found");
    return;
  }
  w->pu = (int)pu->os_index;
}

/* A reserved worker sleeps on its own condition variable until URGENT work arrives. */
static void ds__worker_park_reserved(ds__worker *w) {
  struct ds__sched *s = w->s;
  pthread_mutex_lock(&s->park_mu);
  ds__fetch_add(&s->urgent_sleepers, 1);
  ds__fence_seq_cst();
  if (!ds__load(&s->stop) && ds__load(&s->urgent.len) == 0) pthread_cond_wait(&s->urgent_cv, &s->park_mu);
  ds__fetch_sub(&s->urgent_sleepers, 1);
  pthread_mutex_unlock(&s->park_mu);
}

static void ds__worker_park(ds__worker *w) {
  struct ds__sched *s = w->s;
  ds__pool_park(w); /* an idle worker's free tasks must not pin their slabs (task_pool.c) */
  if (w->reserved) {
    ds__worker_park_reserved(w);
    return;
  }
  pthread_mutex_lock(&s->park_mu);
  ds__fetch_add(&s->sleepers, 1);
  ds__fence_seq_cst();
  if (!ds__load(&s->stop) && !ds__sched_runnable(s)) {
    /* Sleep until woken, unless LOW work waits for its throttle to open. */
    if (ds__load_relaxed(&s->low.len) > 0) {
      /* Until the next tick boundary, where the LOW duty window opens (a whole period from
       * now would wake at the same, possibly closed, phase every time). */
      uint64_t period = (uint64_t)ds__param(s->ctx, DS_PARAM_SCHED_TICK_MS) * 1000000u;
      uint64_t wait = period - ds__now_ns() % period;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      uint64_t ns = (uint64_t)ts.tv_nsec + wait;
      ts.tv_sec += (time_t)(ns / 1000000000u);
      ts.tv_nsec = (long)(ns % 1000000000u);
      pthread_cond_timedwait(&s->park_cv, &s->park_mu, &ts);
    } else {
      pthread_cond_wait(&s->park_cv, &s->park_mu);
    }
  }
  int waking = ds__load_relaxed(&s->waking); /* under park_mu: whoever leaves takes one */
  if (waking > 0) ds__store_relaxed(&s->waking, waking - 1);
  ds__fetch_sub(&s->sleepers, 1);
  pthread_mutex_unlock(&s->park_mu);
}

static int ds__worker_spin(struct ds__sched *s) {
  uint64_t until = ds__now_ns() + (uint64_t)ds__param(s->ctx, DS_PARAM_SCHED_SPIN_US) * 1000u;
  int found = 0;
  ds__fetch_add(&s->spinning, 1);
  do {
    found = ds__sched_runnable(s) || ds__load(&s->stop);
    if (!found) sched_yield(); /* on a shared machine, let the thread that will submit run */
  } while (!found && ds__now_ns() < until);
  ds__fetch_sub(&s->spinning, 1);
  return found;
}

/* Busy time is counted per stretch of work (from the first task found to the first failed
 * search), not per task: two clock reads per stretch instead of two per task. */
static void ds__worker_busy(ds__worker *w, int busy) {
  uint64_t since = ds__load_relaxed(&w->busy_since);
  if (busy == (since != 0)) return;
  uint64_t now = ds__now_ns();
  if (busy) {
    ds__store_relaxed(&w->busy_since, now);
  } else {
    ds__own_add(&w->busy_ns, now - since);
    ds__store_relaxed(&w->busy_since, 0);
  }
}

static void *ds__worker_main(void *arg) {
  ds__worker *w = arg;
  struct ds__sched *s = w->s;
  ds__tl_worker = w;
  ds__worker_bind(w);
  ds__sched_place_record(w);
  /* After binding: the deque's buffer is first touched here, so it lies on the worker's NUMA
   * node. Without it the worker's own submits go to its mailbox. */
  if (!ds__deque_init(&w->deque, s->ctx))
    ds__log(s->ctx, DS_LOG_WARN, "sched", "worker %d: no memory for its deque", w->index);
  int after_task = 0;
  while (!ds__load(&s->stop)) {
    struct ds_task *t = ds__sched_next(w);
    if (t) {
      /* A sleeper not already being woken may help with what is left (a hint: every submit
       * wakes properly; this only spreads a burst). Checked before scanning the queues, which
       * otherwise ran once per task while one worker slept. */
      if (ds__load_relaxed(&s->sleepers) > ds__load_relaxed(&s->waking) && ds__sched_runnable(s))
        ds__sched_wake(s);
      ds__worker_busy(w, 1);
      ds__sched_run_entry(w, t);
      after_task = 1;
      continue;
    }
    ds__group_flush(w); /* out of work: the groups of the tasks it ran may be done */
    ds__worker_busy(w, 0);
    if (after_task && !w->reserved && ds__worker_spin(s)) continue;
    after_task = 0;
    ds__worker_park(w);
  }
  ds__group_flush(w);
  ds__tl_worker = NULL;
  return NULL;
}

/* ---------------------------------------------------------------- tick */

/* The ticker thread: ticks every DS_PARAM_SCHED_TICK_MS whatever the workers do, so that
 * prediction, throttling and stats go on while every worker is inside a long task. It sleeps
 * on a timed wait in between (about 20 wake-ups a second at the default 50 ms). */
static void *ds__ticker_main(void *arg) {
  struct ds__sched *s = arg;
  pthread_mutex_lock(&s->park_mu);
  while (!ds__load(&s->stop)) {
    uint64_t period = (uint64_t)ds__param(s->ctx, DS_PARAM_SCHED_TICK_MS) * 1000000u;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + period;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&s->ticker_cv, &s->park_mu, &ts);
    if (ds__load(&s->stop)) break;
    pthread_mutex_unlock(&s->park_mu);
    ds__sched_maybe_tick(s);
    /* LOW work held by the duty cycle may start now that a window opened. */
    if (ds__load_relaxed(&s->low.len) > 0) ds__sched_wake(s);
    pthread_mutex_lock(&s->park_mu);
  }
  pthread_mutex_unlock(&s->park_mu);
  return NULL;
}

/* Sums the per-worker counters; returns the completion-time standard deviation in us. */
static double ds__sched_sum_workers(struct ds__sched *s, uint64_t *run, uint64_t *steals) {
  double n = 0, sum = 0, sumsq = 0;
  *run = *steals = 0;
  for (int i = 0; i < s->nslots; i++) {
    ds__worker *w = &s->workers[i];
    *run += ds__load_relaxed(&w->run);
    *steals += ds__load_relaxed(&w->steals);
    n += (double)ds__load_relaxed(&w->done_n);
    sum += (double)ds__load_relaxed(&w->done_sum_us);
    sumsq += (double)ds__load_relaxed(&w->done_sumsq_us2);
  }
  double var = n > 1 ? (sumsq - sum * sum / n) / (n - 1) : 0;
  return var > 0 ? sqrt(var) : 0;
}

static void ds__sched_publish(struct ds__sched *s, double util) {
  ds_context *ctx = s->ctx;
  uint64_t run, steals;
  double stddev = ds__sched_sum_workers(s, &run, &steals);
  ds__stat_set(ctx, s->stat.run, (double)run);
  ds__stat_set(ctx, s->stat.steals, (double)steals);
  ds__stat_set(ctx, s->stat.done_stddev, stddev);
  ds__stat_set(ctx, s->stat.task_mem, (double)ds__pool_bytes(s));
  ds__stat_set(ctx, s->stat.preempt, (double)ds__load_relaxed(&s->preemptions));
  ds__stat_set(ctx, s->stat.migrated, (double)ds__load_relaxed(&s->migrated));
  ds__stat_set(ctx, s->stat.failovers, (double)ds__load_relaxed(&s->failovers));
  ds__stat_set(ctx, s->stat.failover_tasks, (double)ds__load_relaxed(&s->failover_tasks));
  ds__stat_set(ctx, s->stat.pools_stalled, (double)ds__sched_pools_stalled(s));
  ds__stat_set(ctx, s->stat.util, util);
  ds__stat_set(ctx, s->stat.depth,
               (double)(ds__load_relaxed(&s->urgent.len) + ds__sched_normal_queued(s) +
                        ds__load_relaxed(&s->low.len)));
  ds__stat_set(ctx, s->stat.predicted, s->predicted);
  ds__stat_set(ctx, s->stat.low_cap, (double)ds__load_relaxed(&s->low_cap));
  ds__stat_set(ctx, s->stat.low_duty, (double)ds__load_relaxed(&s->low_duty_pct));
  for (int c = 0; c < 3; c++) {
    const ds__hist *h = &s->workers[0].wait_hist[c];
    ds__stat_set(ctx, s->stat.wait_p50[c],
                 ds__hist_quantile_n(h, s->nslots, sizeof(ds__worker), 0.50) / 1000.0);
    ds__stat_set(ctx, s->stat.wait_p99[c],
                 ds__hist_quantile_n(h, s->nslots, sizeof(ds__worker), 0.99) / 1000.0);
    uint64_t cum[DS__SCHED_HIST_LE + 1], sum;
    ds__hist_cumulative_n(h, s->nslots, sizeof(ds__worker), cum, &sum);
    for (int i = 0; i <= DS__SCHED_HIST_LE; i++)
      ds__stat_set(ctx, s->stat.wait_le[c][i], (double)cum[i]);
    ds__stat_set(ctx, s->stat.wait_sum[c], (double)sum);
  }
}

/* Applies the configured LOW limits, halved while the predicted load is high. */
static void ds__sched_throttle(struct ds__sched *s) {
  ds_context *ctx = s->ctx;
  int cap = (int)ds__param(ctx, DS_PARAM_SCHED_LOW_MAX_WORKERS);
  if (cap <= 0 || cap > s->nworkers) cap = s->nworkers;
  int duty = (int)ds__param(ctx, DS_PARAM_SCHED_LOW_DUTY_PCT);
  if (s->predicted * 100.0 > (double)ds__param(ctx, DS_PARAM_SCHED_THROTTLE_LOAD_PCT)) {
    cap = cap > 1 ? cap / 2 : 1;
    duty = duty > 1 ? duty / 2 : 1;
    ds__fetch_add_relaxed(&s->throttled_ticks, 1);
  }
  ds__store_relaxed(&s->low_cap, cap);
  ds__store_relaxed(&s->low_duty_pct, duty);
}

static void ds__sched_tick(struct ds__sched *s, uint64_t now) {
  int64_t demand = ds__load_relaxed(&s->urgent.len) + ds__sched_normal_queued(s);
  for (int i = 0; i < s->nworkers; i++) demand += ds__load_relaxed(&s->workers[i].nonlow);
  double observed = (double)demand / s->nworkers;
  s->ewma.alpha = (double)ds__param(s->ctx, DS_PARAM_SCHED_EWMA_ALPHA_PCT) / 100.0;
  s->predicted = s->predict(s->predict_state, observed);
  ds__sched_throttle(s);
  ds__sched_migrate_tick(s);
  ds__sched_watchdog(s, now);
  ds__pool_trim(s);
  uint64_t busy = 0;
  for (int i = 0; i < s->nworkers; i++) { /* racy against a stretch ending: util is clamped */
    uint64_t since = ds__load_relaxed(&s->workers[i].busy_since);
    busy += ds__load_relaxed(&s->workers[i].busy_ns) + (since && since < now ? now - since : 0);
  }
  double wall = (double)(now - s->tick_wall_ns) * s->nworkers;
  double util = wall > 0 ? ((double)busy - (double)s->tick_busy_ns) / wall : 0;
  s->tick_busy_ns = busy;
  s->tick_wall_ns = now;
  ds__sched_publish(s, util > 1 ? 1 : util < 0 ? 0 : util);
}

void ds__sched_maybe_tick(struct ds__sched *s) {
  uint64_t now = ds__now_ns();
  uint64_t period = (uint64_t)ds__param(s->ctx, DS_PARAM_SCHED_TICK_MS) * 1000000u;
  period -= period / 8; /* the ticker's timed wait may end a little early */
  if (now - ds__load_relaxed(&s->last_tick_ns) < period) return;
  if (pthread_mutex_trylock(&s->tick_mu) != 0) return;
  if (now - ds__load_relaxed(&s->last_tick_ns) >= period) {
    ds__store_relaxed(&s->last_tick_ns, now);
    ds__sched_tick(s, now);
  }
  pthread_mutex_unlock(&s->tick_mu);
}

ds_status ds__sched_set_predictor_owned(ds_context *ctx, ds__sched_predict_fn fn, void *state,
                                        void (*free_fn)(ds_context *ctx, void *state)) {
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return ds__error(ctx, DS_ERR_SHUTDOWN, "sched", "no scheduler: the context is shutting down");
  pthread_mutex_lock(&s->tick_mu);
  void *old = s->predict_state;
  void (*old_free)(ds_context *, void *) = s->predict_free;
  s->predict = fn ? fn : ds__ewma_predict;
  s->predict_state = fn ? state : &s->ewma;
  s->predict_free = fn ? free_fn : NULL;
  s->ewma.primed = 0;
  pthread_mutex_unlock(&s->tick_mu);
  if (old_free) old_free(ctx, old); /* no tick can be using it: ticks hold tick_mu */
  return DS_OK;
}

void ds__sched_set_predictor(ds_context *ctx, ds__sched_predict_fn fn, void *state) {
  ds__sched_set_predictor_owned(ctx, fn, state, NULL);
}

void ds__sched_low_limits(ds_context *ctx, int *cap, int *duty_pct, double *predicted) {
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return;
  pthread_mutex_lock(&s->tick_mu);
  if (predicted) *predicted = s->predicted;
  pthread_mutex_unlock(&s->tick_mu);
  if (cap) *cap = ds__load_relaxed(&s->low_cap);
  if (duty_pct) *duty_pct = ds__load_relaxed(&s->low_duty_pct);
}

static double ds__sched_queue_depth(void *user) {
  struct ds__sched *s = user;
  return (double)(ds__load_relaxed(&s->urgent.len) + ds__sched_normal_queued(s) +
                  ds__load_relaxed(&s->low.len));
}

/* ---------------------------------------------------------------- lifecycle */

static void ds__sched_register_stats(struct ds__sched *s) {
  ds_context *ctx = s->ctx;
  s->stat.run = ds__stat_register(ctx, "sched.tasks_run", DS_STAT_COUNTER);
  s->stat.steals = ds__stat_register(ctx, "sched.steals", DS_STAT_COUNTER);
  s->stat.preempt = ds__stat_register(ctx, "sched.preemptions", DS_STAT_COUNTER);
  s->stat.migrated = ds__stat_register(ctx, "sched.migrated", DS_STAT_COUNTER);
  s->stat.util = ds__stat_register(ctx, "sched.utilisation", DS_STAT_GAUGE);
  s->stat.failovers = ds__stat_register(ctx, "sched.failovers", DS_STAT_COUNTER);
  s->stat.failover_tasks = ds__stat_register(ctx, "sched.failover_tasks", DS_STAT_COUNTER);
  s->stat.pools_stalled = ds__stat_register(ctx, "sched.pools_stalled", DS_STAT_GAUGE);
  s->stat.task_mem = ds__stat_register(ctx, "sched.task_mem_bytes", DS_STAT_GAUGE);
  s->stat.depth = ds__stat_register(ctx, "sched.queue_depth", DS_STAT_GAUGE);
  s->stat.predicted = ds__stat_register(ctx, "sched.predicted_load", DS_STAT_GAUGE);
  s->stat.low_cap = ds__stat_register(ctx, "sched.low_cap", DS_STAT_GAUGE);
  s->stat.low_duty = ds__stat_register(ctx, "sched.low_duty_pct", DS_STAT_GAUGE);
  s->stat.done_stddev = ds__stat_register(ctx, "sched.completion_stddev_us", DS_STAT_GAUGE);
  for (int c = 0; c < 3; c++) {
    char name[64];
    snprintf(name, sizeof name, "sched.wait_p50_us.%s", ds__class_names[c]);
    s->stat.wait_p50[c] = ds__stat_register(ctx, name, DS_STAT_GAUGE);
    snprintf(name, sizeof name, "sched.wait_p99_us.%s", ds__class_names[c]);
    s->stat.wait_p99[c] = ds__stat_register(ctx, name, DS_STAT_GAUGE);
    /* The queue-wait histogram as cumulative counters <base>.le_<bound>, .le_inf (the count)
     * and .sum, which deepseek-monitor serves as a Prometheus histogram. */
    for (int i = 0; i <= DS__SCHED_HIST_LE; i++) {
      if (i < DS__SCHED_HIST_LE)
        snprintf(name, sizeof name, "sched.wait_ns.%s.le_%llu", ds__class_names[c],
                 1ull << (DS__SCHED_HIST_LE0 + 3 * i));
      else
        snprintf(name, sizeof name, "sched.wait_ns.%s.le_inf", ds__class_names[c]);
      s->stat.wait_le[c][i] = ds__stat_register(ctx, name, DS_STAT_COUNTER);
    }
    snprintf(name, sizeof name, "sched.wait_ns.%s.sum", ds__class_names[c]);
    s->stat.wait_sum[c] = ds__stat_register(ctx, name, DS_STAT_COUNTER);
  }
}

static int ds__sched_worker_count(ds_context *ctx, hwloc_topology_t topo) {
  int n = (int)ds__param(ctx, DS_PARAM_SCHED_WORKERS);
  if (n > 0) return n;
  n = topo ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU) : 0;
  return n > 0 ? n : 1;
}

static void ds__sched_free(struct ds__sched *s) {
  ds_context *ctx = s->ctx;
  if (s->predict_free) s->predict_free(ctx, s->predict_state);
  for (int i = 0; i < s->nslots; i++) {
    ds__deque_fini(&s->workers[i].deque, ctx);
    ds__queue_fini(&s->workers[i].mailbox);
  }
  pthread_mutex_destroy(&s->helper_mu);
  for (int i = 0; i < DS__SCHED_STRIPES; i++) {
    pthread_mutex_destroy(&s->stripes[i].mu);
    pthread_cond_destroy(&s->stripes[i].cv);
  }
  ds__queue_fini(&s->urgent);
  for (int p = 0; p < DS__SCHED_MAX_POOLS; p++) ds__ring_fini(&s->pools[p].inject, ctx);
  ds__queue_fini(&s->low);
  pthread_mutex_destroy(&s->park_mu);
  pthread_cond_destroy(&s->park_cv);
  pthread_cond_destroy(&s->urgent_cv);
  pthread_cond_destroy(&s->drain_cv);
  pthread_cond_destroy(&s->ticker_cv);
  pthread_mutex_destroy(&s->tick_mu);
  ds__pool_fini(s);
  ds__free(ctx, s->worker_node);
  ds__free(ctx, s->workers_mem);
  ds__free(ctx, s);
}

static struct ds__sched *ds__sched_alloc(ds_context *ctx, hwloc_topology_t topo) {
  int n = ds__sched_worker_count(ctx, topo);
  struct ds__sched *s = ds__calloc(ctx, 1, sizeof *s);
  /* + the helper slot; aligned by hand (the allocator hook promises less) */
  void *wmem = s ? ds__calloc(ctx, (size_t)n + 2, sizeof(ds__worker)) : NULL;
  ds__worker *w = wmem ? (ds__worker *)(((uintptr_t)wmem + DS__WORKER_ALIGN - 1) &
                                        ~(uintptr_t)(DS__WORKER_ALIGN - 1)) : NULL;
  int *nodes = w ? ds__calloc(ctx, 2 * ((size_t)n + 1), sizeof *nodes) : NULL;
  if (w && !nodes) {
    ds__free(ctx, wmem);
    w = NULL;
  }
  int npools = (int)ds__param(ctx, DS_PARAM_SCHED_POOLS);
  if (npools > n) npools = n;
  int rings = 0;
  while (w && rings < npools && ds__ring_init(&s->pools[rings].inject, ctx)) rings++;
  if (!w || rings < npools) {
    for (int p = 0; p < rings; p++) ds__ring_fini(&s->pools[p].inject, ctx);
    if (w) ds__free(ctx, nodes);
    if (s) ds__free(ctx, w ? wmem : NULL);
    ds__free(ctx, s);
    return NULL;
  }
  s->npools = npools;
  for (int p = 0; p < npools; p++) { /* pool p: the p-th share of the workers (and their PUs) */
    s->pools[p].first = n * p / npools;
    s->pools[p].count = n * (p + 1) / npools - s->pools[p].first;
    s->pools[p].progress_ns = ds__now_ns();
  }
  s->ctx = ctx;
  s->topo = topo;
  s->nworkers = n;
  s->nslots = n + 1;
  s->workers = w;
  s->workers_mem = wmem;
  s->worker_node = nodes;
  s->worker_reserved = nodes + n + 1;
  pthread_mutex_init(&s->helper_mu, NULL);
  ds__queue_init(&s->urgent);

  ds__queue_init(&s->low);
  pthread_mutex_init(&s->park_mu, NULL);
  pthread_cond_init(&s->park_cv, NULL);
  pthread_cond_init(&s->urgent_cv, NULL);
  pthread_cond_init(&s->drain_cv, NULL);
  pthread_cond_init(&s->ticker_cv, NULL);
  pthread_mutex_init(&s->tick_mu, NULL);
  ds__pool_init(s);
  for (int i = 0; i < DS__SCHED_STRIPES; i++) {
    pthread_mutex_init(&s->stripes[i].mu, NULL);
    pthread_cond_init(&s->stripes[i].cv, NULL);
  }
  /* The last workers are reserved for URGENT work; at least one (worker 0) takes anything. */
  int reserve = (int)ds__param(ctx, DS_PARAM_SCHED_URGENT_RESERVE);
  if (reserve > n - 1) reserve = n - 1;
  for (int i = 0; i <= n; i++) {
    w[i].s = s;
    w[i].index = i;
    w[i].reserved = i < n && i >= n - reserve;
    w[i].pool = i < n ? npools * i / n : 0;
    w[i].pu = -1;
    w[i].record_node = -1;
    w[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    ds__queue_init(&w[i].mailbox);
  }
  ds__deque_init(&w[n].deque, ctx); /* the helper's; without it, its mailbox is used */
  ds__sched_numa_init(s);
  s->predict = ds__ewma_predict;
  s->predict_state = &s->ewma;
  s->tick_wall_ns = ds__now_ns();
  ds__store_relaxed(&s->last_tick_ns, s->tick_wall_ns);
  ds__sched_throttle(s);
  ds__sched_register_stats(s);
  return s;
}

/* Stops and joins the first n workers and, if started, the ticker. */
static void ds__sched_join(struct ds__sched *s, int n, int ticker) {
  pthread_mutex_lock(&s->park_mu);
  ds__store(&s->stop, 1);
  pthread_cond_broadcast(&s->park_cv);
  pthread_cond_broadcast(&s->urgent_cv);
  pthread_cond_broadcast(&s->ticker_cv);
  pthread_mutex_unlock(&s->park_mu);
  for (int i = 0; i < n; i++) pthread_join(s->workers[i].thread, NULL);
  if (ticker) pthread_join(s->ticker, NULL);
}

static struct ds__sched *ds__sched_start_locked(ds_context *ctx, hwloc_topology_t topo) {
  struct ds__sched *s = ds__sched_alloc(ctx, topo);
  if (!s) {
    ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "cannot allocate the scheduler");
    return NULL;
  }
  for (int i = 0; i < s->nworkers; i++) {
    if (pthread_create(&s->workers[i].thread, NULL, ds__worker_main, &s->workers[i]) != 0) {
      ds__sched_join(s, i, 0);
      ds__sched_free(s);
      ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "cannot start worker thread %d", i);
      return NULL;
    }
  }
  if (pthread_create(&s->ticker, NULL, ds__ticker_main, s) != 0) {
    ds__sched_join(s, s->nworkers, 0);
    ds__sched_free(s);
    ds__error(ctx, DS_ERR_NO_MEMORY, "sched", "cannot start the ticker thread");
    return NULL;
  }
  ds__telemetry_set_queue_depth_fn(ctx, ds__sched_queue_depth, s);
  ds__log(ctx, DS_LOG_INFO, "sched", "%d workers started", s->nworkers);
  return s;
}

struct ds__sched *ds__sched_start_lazy(ds_context *ctx) {
  struct ds__sched *s = ds__load(&ctx->sched);
  if (s) return s;
  /* Outside lazy_mu, which the topology reference takes too. NULL: unbound workers. */
  hwloc_topology_t topo = ds__topology_acquire(ctx);
  pthread_mutex_lock(&ctx->lazy_mu);
  s = ds__load(&ctx->sched);
  if (!s) {
    s = ds__sched_start_locked(ctx, topo);
    if (s) ds__store(&ctx->sched, s);
  }
  pthread_mutex_unlock(&ctx->lazy_mu);
  return s;
}

/* Queued user tasks are cancelled by the workers as they reach them (DS__WHY_SHUTDOWN); queued
 * executor work still runs; running tasks are waited for. Then the workers stop. */
void ds__sched_destroy(ds_context *ctx) {
  struct ds__sched *s = ds__load(&ctx->sched);
  if (!s) return;
  ds__telemetry_set_queue_depth_fn(ctx, NULL, NULL);
  ds__store(&s->draining, 1);
  pthread_mutex_lock(&s->park_mu);
  pthread_cond_broadcast(&s->park_cv);
  while (ds__sched_live(s) > 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&s->drain_cv, &s->park_mu, &ts);
  }
  pthread_mutex_unlock(&s->park_mu);
  ds__sched_join(s, s->nworkers, 1);
  /* Entries of tasks cancelled while queued may remain: drop their refs. */
  struct ds_task *t;
  while ((t = ds__queue_pop_head(&s->urgent)) || (t = ds__queue_pop_head(&s->low)))
    ds__task_unref(t);
  for (int p = 0; p < s->npools; p++)
    while ((t = ds__ring_pop(&s->pools[p].inject))) ds__task_unref(t);
  for (int i = 0; i < s->nslots; i++) {
    while ((t = ds__deque_steal(&s->workers[i].deque)) || (t = ds__queue_pop_head(&s->workers[i].mailbox)))
      ds__task_unref(t);
  }
  ds__store(&ctx->sched, NULL);
  ds__sched_free(s);
}

/* ---------------------------------------------------------------- public */

ds_status ds_sched_start(ds_context *ctx) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "sched", "ds_sched_start: ctx is NULL");
  return ds__sched_get(ctx) ? DS_OK : DS_ERR_NO_MEMORY;
}

ds_status ds_sched_workers(ds_context *ctx, int32_t *out) {
  if (!ctx || !out)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "sched", "ds_sched_workers: NULL argument");
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return DS_ERR_NO_MEMORY;
  *out = s->nworkers;
  return DS_OK;
}
