/* Task memory: tasks are carved from slabs of DS__SLAB_TASKS and recycled, never returned to
 * the allocator until the scheduler is destroyed. A worker keeps a private free list (no lock,
 * no shared counter on the fork-join path); when it grows past DS__CACHE_HIGH, half of it
 * moves to the scheduler's shared pool as one batch, and a worker with an empty list takes a
 * batch from there. A thread outside the pool keeps a private list too (one per thread, for
 * the scheduler it last used), refilled a batch at a time: one locked step per task made a
 * burst of outside submits contend with the workers on the pool's mutex. That list goes back to its scheduler's pool when the thread turns to another
 * scheduler or exits; a process-wide list of live schedulers (each with a unique serial)
 * tells whether its scheduler still exists. The memory stays at the peak number of live tasks.
 *
 * The sanitizer builds allocate and free every task instead, so that a use after free stays
 * detectable. */
#include <pthread.h>
#include <string.h>

#include "sched_internal.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DS__TASK_POOL 0
#else
#define DS__TASK_POOL 1
#endif

#define DS__SLAB_TASKS 64
#define DS__CACHE_HIGH 256

/* Aligned to a cache line by hand (raw is what the allocator returned), so that each task
 * (a whole number of lines) starts a line: a submit then writes 4 lines of it, not 5. */
struct ds__slab {
  struct ds__slab *next;
  void *raw;
  char pad[64 - 2 * sizeof(void *)];
  struct ds_task tasks[DS__SLAB_TASKS];
};

/* The shared pool is a stack of batches, so that taking or giving back a batch is one step
 * under pool_mu (walking a list of tasks last written by other cores there would miss the
 * cache once per task while holding the lock). A batch is a list linked by qnext; its first
 * task links the next batch through qprev and holds the batch's length in prio. */
#define DS__BATCH_NEXT(t) ((t)->qprev)
#define DS__BATCH_LEN(t) ((t)->prio)

/* Pushes the list head (n tasks) onto the pool as one batch. */
static void ds__pool_put(struct ds__sched *s, struct ds_task *head, int n) {
  DS__BATCH_LEN(head) = n;
  pthread_mutex_lock(&s->pool_mu);
  DS__BATCH_NEXT(head) = s->pool;
  s->pool = head;
  pthread_mutex_unlock(&s->pool_mu);
}

/* Under pool_mu: a new slab's tasks onto the pool as one batch; 0 if out of memory. */
static int ds__pool_grow(struct ds__sched *s) {
  void *raw = ds__alloc(s->ctx, sizeof(struct ds__slab) + 63);
  if (!raw) return 0;
  struct ds__slab *sl = (struct ds__slab *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
  sl->raw = raw;
  sl->next = s->slabs;
  s->slabs = sl;
  for (int i = 0; i < DS__SLAB_TASKS; i++)
    sl->tasks[i].qnext = i + 1 < DS__SLAB_TASKS ? &sl->tasks[i + 1] : NULL;
  DS__BATCH_LEN(&sl->tasks[0]) = DS__SLAB_TASKS;
  DS__BATCH_NEXT(&sl->tasks[0]) = s->pool;
  s->pool = &sl->tasks[0];
  return 1;
}

/* Moves one batch from the pool to the empty *list; returns its length (0: out of memory). */
static int ds__pool_take(struct ds__sched *s, struct ds_task **list) {
  int got = 0;
  pthread_mutex_lock(&s->pool_mu);
  if (s->pool || ds__pool_grow(s)) {
    struct ds_task *b = s->pool;
    s->pool = DS__BATCH_NEXT(b);
    got = DS__BATCH_LEN(b);
    *list = b;
  }
  pthread_mutex_unlock(&s->pool_mu);
  return got;
}

#define DS__OUTSIDE_HIGH 256 /* an outside thread's list returns half of itself above this */

/* The free list of the calling thread outside any pool: tasks of the scheduler (s, serial). */
typedef struct ds__outside_cache {
  struct ds__sched *s;
  uint64_t serial;
  struct ds_task *list;
  int n;
  uint64_t id_next, id_end; /* its current block of task ids of s */
} ds__outside_cache;
static _Thread_local ds__outside_cache ds__tl_cache;

static pthread_mutex_t ds__live_mu = PTHREAD_MUTEX_INITIALIZER; /* guards the two below */
static struct ds__sched *ds__live_head;
static uint64_t ds__live_serial;
static pthread_once_t ds__cache_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t ds__cache_key;
static int ds__cache_key_ok;

/* Hands back the calling thread's list: to its scheduler's pool if that scheduler is alive
 * (under ds__live_mu, so that it cannot be destroyed meanwhile), else drops it (its memory
 * went with that scheduler's slabs). */
static void ds__outside_cache_return(ds__outside_cache *c) {
  if (c->list) {
    pthread_mutex_lock(&ds__live_mu);
    struct ds__sched *s = ds__live_head;
    while (s && !(s == c->s && s->serial == c->serial)) s = s->live_next;
    if (s) ds__pool_put(s, c->list, c->n);
    pthread_mutex_unlock(&ds__live_mu);
  }
  *c = (ds__outside_cache){0};
}

static void ds__cache_key_destroy(void *p) { ds__outside_cache_return(p); }

static void ds__cache_key_init(void) {
  ds__cache_key_ok = pthread_key_create(&ds__cache_key, ds__cache_key_destroy) == 0;
}

void ds__pool_init(struct ds__sched *s) {
  pthread_mutex_init(&s->pool_mu, NULL);
  s->pool = NULL;
  s->slabs = NULL;
  pthread_once(&ds__cache_key_once, ds__cache_key_init);
  pthread_mutex_lock(&ds__live_mu);
  s->serial = ++ds__live_serial;
  s->live_next = ds__live_head;
  ds__live_head = s;
  pthread_mutex_unlock(&ds__live_mu);
}

/* After the workers have exited: every task is free by then, whichever list holds it. */
void ds__pool_fini(struct ds__sched *s) {
  pthread_mutex_lock(&ds__live_mu); /* from here on, lists of outside threads are dropped */
  struct ds__sched **pp = &ds__live_head;
  while (*pp && *pp != s) pp = &(*pp)->live_next;
  if (*pp) *pp = s->live_next;
  pthread_mutex_unlock(&ds__live_mu);
  if (ds__tl_cache.s == s) ds__tl_cache = (ds__outside_cache){0};
  struct ds__slab *sl = s->slabs;
  while (sl) {
    struct ds__slab *next = sl->next;
    ds__free(s->ctx, sl->raw);
    sl = next;
  }
  s->slabs = NULL;
  pthread_mutex_destroy(&s->pool_mu);
}

/* The calling outside thread's list, made s's (the previous scheduler's list handed back). */
static ds__outside_cache *ds__outside_cache_for(struct ds__sched *s) {
  ds__outside_cache *c = &ds__tl_cache;
  if (DS__LIKELY(c->s == s && c->serial == s->serial)) return c;
  ds__outside_cache_return(c);
  c->s = s;
  c->serial = s->serial;
  if (ds__cache_key_ok) pthread_setspecific(ds__cache_key, c); /* returned at thread exit */
  return c;
}

uint64_t ds__sched_outside_id(struct ds__sched *s) {
  ds__outside_cache *c = ds__outside_cache_for(s);
  if (c->id_next == c->id_end) {
    c->id_next = ds__fetch_add_relaxed(&s->next_id, DS__ID_BLOCK) + 1;
    c->id_end = c->id_next + DS__ID_BLOCK;
  }
  return c->id_next++;
}

/* Pops the head of *list, prefetching the next task for writing (its lines were most likely
 * last written by another core: the fetch overlaps with filling this one). */
static struct ds_task *ds__list_pop(struct ds_task **list, int *n) {
  struct ds_task *t = *list;
  if (!t) return NULL;
  *list = t->qnext;
  (*n)--;
  if (*list) { /* every line the submit writes: the hot part and the name (tasks are not
                  aligned to lines, hence the one past the end) */
    for (size_t off = 0; off <= DS__TASK_ZEROED + DS__SCHED_NAME_MAX; off += 64)
      __builtin_prefetch((char *)*list + off, 1);
  }
  return t;
}

struct ds_task *ds__task_alloc(struct ds__sched *s) {
  if (!DS__TASK_POOL) return ds__calloc(s->ctx, 1, sizeof(struct ds_task));
  ds__worker *w = ds__sched_self(s);
  struct ds_task *t;
  if (w) {
    if (!w->cache) w->ncached = ds__pool_take(s, &w->cache);
    t = ds__list_pop(&w->cache, &w->ncached);
  } else {
    ds__outside_cache *c = ds__outside_cache_for(s);
    if (!c->list) c->n = ds__pool_take(s, &c->list);
    t = ds__list_pop(&c->list, &c->n);
  }
  if (t) memset(t, 0, DS__TASK_ZEROED); /* the rest is written before it is read */
  return t;
}

/* Pushes t on *list; above high, hands the list's head half to the pool in one locked step. */
static void ds__list_push(struct ds__sched *s, struct ds_task **list, int *n, struct ds_task *t,
                          int high) {
  t->qnext = *list;
  *list = t;
  if (++*n < high) return;
  struct ds_task *head = *list, *tail = head;
  for (int i = 1; i < high / 2; i++) tail = tail->qnext;
  *list = tail->qnext;
  *n -= high / 2;
  tail->qnext = NULL;
  ds__pool_put(s, head, high / 2);
}

void ds__task_free(struct ds__sched *s, struct ds_task *t) {
  if (!DS__TASK_POOL) {
    ds__free(s->ctx, t);
    return;
  }
  ds__worker *w = ds__sched_self(s);
  if (w) {
    ds__list_push(s, &w->cache, &w->ncached, t, DS__CACHE_HIGH);
  } else {
    ds__outside_cache *c = ds__outside_cache_for(s);
    ds__list_push(s, &c->list, &c->n, t, DS__OUTSIDE_HIGH);
  }
}
