/* Batch formation and running: the request queues (one pair per length bucket, URGENT and
 * NORMAL), the readiness rule (full, preferred size, delay passed, no delay, URGENT, drain),
 * the scheduler task that runs batches back to back, and the timer thread that wakes for
 * delays and request timeouts. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "batch_internal.h"

void ds__bcond_init(pthread_cond_t *cv) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
}

static struct ds__bqueue *queue_of(struct ds_batcher *b, int bucket, int prio) {
  return &b->q[bucket * 2 + (prio == DS_PRIO_URGENT ? 0 : 1)];
}

void ds__bq_push(struct ds_batcher *b, struct ds_batch_request *r) {
  struct ds__bqueue *q = queue_of(b, r->bucket, r->prio);
  r->next = NULL;
  r->prev = q->tail;
  if (q->tail)
    q->tail->next = r;
  else
    q->head = r;
  q->tail = r;
  q->n++;
  b->nqueued++;
}

void ds__bq_remove(struct ds_batcher *b, struct ds_batch_request *r) {
  struct ds__bqueue *q = queue_of(b, r->bucket, r->prio);
  if (r->prev)
    r->prev->next = r->next;
  else
    q->head = r->next;
  if (r->next)
    r->next->prev = r->prev;
  else
    q->tail = r->prev;
  r->prev = r->next = NULL;
  q->n--;
  b->nqueued--;
  if (b->space_waiters) pthread_cond_signal(&b->space_cv);
}

/* How many requests of NORMAL queue q form a batch now; 0: not ready. */
static int normal_ready(const struct ds_batcher *b, const struct ds__bqueue *q, uint64_t now) {
  int n = q->n, max = b->o.max_batch_size;
  if (n == 0) return 0;
  if (n >= max) return max;
  if (b->drain || b->o.max_queue_delay_us == 0) return n;
  if (now >= q->head->t_submit + (uint64_t)b->o.max_queue_delay_us * 1000u) return n;
  int best = 0;
  for (size_t i = 0; i < b->o.npreferred; i++)
    if (b->preferred[i] <= n && b->preferred[i] > best) best = b->preferred[i];
  return best;
}

static struct ds__brun *run_get_locked(struct ds_batcher *b) {
  struct ds__brun *run = b->free_runs;
  if (run) {
    b->free_runs = run->next_free;
    run->next_free = NULL;
    return run;
  }
  size_t max = (size_t)b->o.max_batch_size, nd = (size_t)(b->o.ndim ? b->o.ndim : 1);
  run = ds__calloc(b->ctx, 1, sizeof *run + max * sizeof(void *) + max * nd * sizeof(int64_t));
  if (!run) return NULL;
  run->b = b;
  run->reqs = (struct ds_batch_request **)(run + 1);
  run->shapes = (int64_t *)(run->reqs + max);
  return run;
}

void ds__brun_free(struct ds_batcher *b, struct ds__brun *run) {
  ds__free(b->ctx, run->in_buf);
  ds__free(b->ctx, run->out_buf);
  ds__free(b->ctx, run);
}

/* Picks the queue to take from (URGENT first, then the oldest ready NORMAL head). */
static struct ds__bqueue *pick_locked(struct ds_batcher *b, uint64_t now, int *count, int *prio) {
  struct ds__bqueue *best = NULL;
  if (b->inflight < b->o.max_inflight + 1) {
    for (int k = 0; k < b->nqueues; k++) {
      struct ds__bqueue *q = &b->q[k * 2];
      if (q->n && (!best || q->head->t_submit < best->head->t_submit)) best = q;
    }
    if (best) {
      *count = best->n < b->o.max_batch_size ? best->n : b->o.max_batch_size;
      *prio = DS_PRIO_URGENT;
      return best;
    }
  }
  if (b->inflight >= b->o.max_inflight) return NULL;
  for (int k = 0; k < b->nqueues; k++) {
    struct ds__bqueue *q = &b->q[k * 2 + 1];
    int c = normal_ready(b, q, now);
    if (c && (!best || q->head->t_submit < best->head->t_submit)) {
      best = q;
      *count = c;
    }
  }
  *prio = DS_PRIO_NORMAL;
  return best;
}

struct ds__brun *ds__batch_take_locked(struct ds_batcher *b, uint64_t now) {
  int count = 0, prio = DS_PRIO_NORMAL;
  struct ds__bqueue *q = pick_locked(b, now, &count, &prio);
  if (!q) return NULL;
  struct ds__brun *run = run_get_locked(b);
  if (!run) return NULL; /* out of memory: the requests stay queued for the next try */
  for (int i = 0; i < count; i++) {
    struct ds_batch_request *r = q->head;
    ds__bq_remove(b, r);
    ds__store_relaxed(&r->state, DS__BREQ_RUNNING);
    run->reqs[i] = r;
    ds__bhist_add(&b->queue_delay, now > r->t_submit ? now - r->t_submit : 0);
  }
  run->n = count;
  run->prio = prio;
  b->inflight++;
  return run;
}

/* Gathers, calls the handler, scatters, completes each request once. */
static void run_one(struct ds__brun *run) {
  struct ds_batcher *b = run->b;
  int rows = ds__batch_rows(b, run->n);
  ds_tensor in, out;
  ds_status st = ds__batch_gather(run, &in, &out, rows);
  if (st == DS_OK) {
    ds_batch batch = {&in, &out, run->n, run->prio, run->shapes};
    st = b->o.handler(b->o.handler_user, &batch);
    if (st == DS_OK) ds__batch_scatter(run, &out);
  }
  ds__fetch_add_relaxed(&b->batches, 1);
  ds__fetch_add_relaxed(&b->batched_reqs, (uint64_t)run->n);
  ds__fetch_add_relaxed(&b->size_hist[run->n], 1);
  for (int i = 0; i < run->n; i++) ds__breq_complete(run->reqs[i], st);
  ds__batch_stats_maybe_publish(b, ds__now_ns());
}

static uint64_t next_wake_locked(const struct ds_batcher *b, uint64_t now);

void ds__batch_kick_timer_locked(struct ds_batcher *b, uint64_t now) {
  if (next_wake_locked(b, now) < b->timer_target) pthread_cond_signal(&b->timer_cv);
}

/* Returns run's slot; takes the ready batches: the first of class prio into *same, the others
 * into the returned list. */
static struct ds__brun *finish_locked(struct ds_batcher *b, struct ds__brun *run, int prio,
                                      struct ds__brun **same) {
  b->inflight--;
  run->next_free = b->free_runs;
  b->free_runs = run;
  struct ds__brun *others = NULL, *next;
  uint64_t now = ds__now_ns();
  *same = NULL;
  while ((next = ds__batch_take_locked(b, now)) != NULL) {
    if (!*same && next->prio == prio) {
      *same = next;
    } else {
      next->next_free = others;
      others = next;
    }
  }
  if (b->inflight == 0) pthread_cond_broadcast(&b->idle_cv);
  /* The timer may sleep past the new head's delay: it skipped the old head, which was due
   * but had no free slot, and the take above left requests that are not due yet. */
  ds__batch_kick_timer_locked(b, now);
  return others;
}

/* The scheduler task: runs its batch, then the next ready batch of its class, until none. */
static ds_status run_task(void *arg) {
  struct ds__brun *run = arg;
  struct ds_batcher *b = run->b;
  int prio = run->prio;
  while (run) {
    run_one(run);
    struct ds__brun *next;
    pthread_mutex_lock(&b->mu);
    struct ds__brun *others = finish_locked(b, run, prio, &next);
    pthread_mutex_unlock(&b->mu);
    if (others) ds__batch_launch(b, others);
    run = next;
  }
  return DS_OK;
}

/* A batch the scheduler refused: its requests fail with the scheduler's status; the batches
 * its slot lets go are returned to be launched in turn. */
static struct ds__brun *fail_run(struct ds_batcher *b, struct ds__brun *run, ds_status st) {
  for (int i = 0; i < run->n; i++) ds__breq_complete(run->reqs[i], st);
  struct ds__brun *none;
  pthread_mutex_lock(&b->mu);
  struct ds__brun *others = finish_locked(b, run, -1, &none);
  pthread_mutex_unlock(&b->mu);
  return others;
}

void ds__batch_launch(struct ds_batcher *b, struct ds__brun *runs) {
  while (runs) {
    struct ds__brun *next = runs->next_free;
    runs->next_free = NULL;
    ds_task_options to = DS_TASK_OPTIONS_INIT;
    to.prio = runs->prio;
    to.name = "batch";
    ds_status st = ds_task_submit(NULL, b->ctx, run_task, runs, &to);
    if (st != DS_OK) {
      ds__log(b->ctx, DS_LOG_WARN, "batch", "%s: batch not scheduled: %s", b->name,
              ds_status_str(st));
      struct ds__brun *more = fail_run(b, runs, st);
      while (more) { /* they are tried in turn (and fail alike while the scheduler stops) */
        struct ds__brun *m = more;
        more = m->next_free;
        m->next_free = next;
        next = m;
      }
    }
    runs = next;
  }
}

/* Removes the queued requests whose deadline passed into a list (linked by next). */
static struct ds_batch_request *expire_locked(struct ds_batcher *b, uint64_t now) {
  if (now < b->min_deadline) return NULL;
  struct ds_batch_request *expired = NULL;
  uint64_t next_min = UINT64_MAX;
  for (int k = 0; k < 2 * b->nqueues; k++) {
    struct ds_batch_request *r = b->q[k].head;
    while (r) {
      struct ds_batch_request *nx = r->next;
      if (r->deadline && r->deadline <= now) {
        ds__bq_remove(b, r);
        ds__store_relaxed(&r->state, DS__BREQ_COMPLETING);
        r->next = expired;
        expired = r;
      } else if (r->deadline && r->deadline < next_min) {
        next_min = r->deadline;
      }
      r = nx;
    }
  }
  b->min_deadline = next_min;
  return expired;
}

/* When a queued request next needs the timer: a delay ending, or a deadline. */
static uint64_t next_wake_locked(const struct ds_batcher *b, uint64_t now) {
  uint64_t wake = b->min_deadline;
  if (b->o.max_queue_delay_us <= 0) return wake;
  for (int k = 0; k < b->nqueues; k++) {
    const struct ds__bqueue *q = &b->q[k * 2 + 1];
    if (!q->n) continue;
    uint64_t t = q->head->t_submit + (uint64_t)b->o.max_queue_delay_us * 1000u;
    /* A due head waits for a slot: the batch that frees one takes it. */
    if ((t > now || b->inflight < b->o.max_inflight) && t < wake) wake = t;
  }
  return wake;
}

void *ds__batch_timer_main(void *arg) {
  struct ds_batcher *b = arg;
  pthread_mutex_lock(&b->mu);
  while (!b->stopping) {
    uint64_t now = ds__now_ns();
    struct ds_batch_request *expired = expire_locked(b, now);
    struct ds__brun *runs = NULL, *run;
    while ((run = ds__batch_take_locked(b, now)) != NULL) {
      run->next_free = runs;
      runs = run;
    }
    if (expired || runs) {
      b->timer_target = 0; /* busy: submitters need not signal, the loop looks again */
      pthread_mutex_unlock(&b->mu);
      while (expired) {
        struct ds_batch_request *nx = expired->next;
        ds__breq_complete(expired, DS_ERR_TIMEOUT);
        expired = nx;
      }
      ds__batch_launch(b, runs);
      pthread_mutex_lock(&b->mu);
      continue;
    }
    uint64_t wake = next_wake_locked(b, now);
    b->timer_target = wake;
    if (wake == UINT64_MAX) {
      pthread_cond_wait(&b->timer_cv, &b->mu);
    } else {
      struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
      pthread_cond_timedwait(&b->timer_cv, &b->mu, &ts);
    }
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}
