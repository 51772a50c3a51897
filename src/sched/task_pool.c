/* Task memory: tasks are carved from slabs of DS__SLAB_TASKS and recycled, never returned to
 * the allocator until the scheduler is destroyed. A worker keeps a private free list (no lock,
 * no shared counter on the fork-join path); when it grows past DS__CACHE_HIGH, half of it
 * moves to the scheduler's shared pool in one locked step, and a worker with an empty list
 * takes a batch from there. Threads outside the pool take and return single tasks under the
 * pool's mutex (cheaper than malloc plus a cross-thread free). The memory stays at the peak
 * number of live tasks.
 *
 * The sanitizer builds allocate and free every task instead, so that a use after free stays
 * detectable. */
#include <string.h>

#include "sched_internal.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DS__TASK_POOL 0
#else
#define DS__TASK_POOL 1
#endif

#define DS__SLAB_TASKS 64
#define DS__CACHE_HIGH 256
#define DS__CACHE_BATCH 32

struct ds__slab {
  struct ds__slab *next;
  struct ds_task tasks[DS__SLAB_TASKS];
};

void ds__pool_init(struct ds__sched *s) {
  pthread_mutex_init(&s->pool_mu, NULL);
  s->pool = NULL;
  s->slabs = NULL;
}

/* After the workers have exited: every task is free by then, whichever list holds it. */
void ds__pool_fini(struct ds__sched *s) {
  struct ds__slab *sl = s->slabs;
  while (sl) {
    struct ds__slab *next = sl->next;
    ds__free(s->ctx, sl);
    sl = next;
  }
  s->slabs = NULL;
  pthread_mutex_destroy(&s->pool_mu);
}

/* Under pool_mu: a new slab's tasks onto the pool; 0 if out of memory. */
static int ds__pool_grow(struct ds__sched *s) {
  struct ds__slab *sl = ds__alloc(s->ctx, sizeof *sl);
  if (!sl) return 0;
  sl->next = s->slabs;
  s->slabs = sl;
  for (int i = 0; i < DS__SLAB_TASKS; i++) {
    sl->tasks[i].qnext = s->pool;
    s->pool = &sl->tasks[i];
  }
  return 1;
}

/* Moves up to n tasks from the pool to *list; returns how many. */
static int ds__pool_take(struct ds__sched *s, struct ds_task **list, int n) {
  int got = 0;
  pthread_mutex_lock(&s->pool_mu);
  if (s->pool || ds__pool_grow(s)) {
    while (got < n && s->pool) {
      struct ds_task *t = s->pool;
      s->pool = t->qnext;
      t->qnext = *list;
      *list = t;
      got++;
    }
  }
  pthread_mutex_unlock(&s->pool_mu);
  return got;
}

struct ds_task *ds__task_alloc(struct ds__sched *s) {
  if (!DS__TASK_POOL) return ds__calloc(s->ctx, 1, sizeof(struct ds_task));
  ds__worker *w = ds__sched_self(s);
  struct ds_task *t = NULL;
  if (w) {
    if (!w->cache) w->ncached += ds__pool_take(s, &w->cache, DS__CACHE_BATCH);
    if ((t = w->cache)) {
      w->cache = t->qnext;
      w->ncached--;
    }
  } else {
    ds__pool_take(s, &t, 1);
  }
  if (t) memset(t, 0, DS__TASK_ZEROED); /* the rest is written before it is read */
  return t;
}

void ds__task_free(struct ds__sched *s, struct ds_task *t) {
  if (!DS__TASK_POOL) {
    ds__free(s->ctx, t);
    return;
  }
  ds__worker *w = ds__sched_self(s);
  if (w) {
    t->qnext = w->cache;
    w->cache = t;
    if (++w->ncached < DS__CACHE_HIGH) return;
    /* Hand half back in one step: the list's head half goes to the pool. */
    struct ds_task *head = w->cache, *tail = head;
    for (int i = 1; i < DS__CACHE_HIGH / 2; i++) tail = tail->qnext;
    w->cache = tail->qnext;
    w->ncached -= DS__CACHE_HIGH / 2;
    pthread_mutex_lock(&s->pool_mu);
    tail->qnext = s->pool;
    s->pool = head;
    pthread_mutex_unlock(&s->pool_mu);
    return;
  }
  pthread_mutex_lock(&s->pool_mu);
  t->qnext = s->pool;
  s->pool = t;
  pthread_mutex_unlock(&s->pool_mu);
}
