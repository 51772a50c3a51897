/* Task memory: tasks are carved from slabs of DS__SLAB_TASKS and recycled, never returned to
 * the allocator until the scheduler is destroyed. A worker keeps a private free list (no lock,
 * no shared counter on the fork-join path); when it grows past DS__CACHE_HIGH, half of it
 * moves to the scheduler's shared pool as one batch, and a worker with an empty list takes a
 * batch from there. A thread outside the pool keeps a private list too (one per thread, for
 * the scheduler it last used), refilled a batch at a time: one locked step per task made a
 * burst of outside submits contend with the workers on the pool's mutex. That list goes back to its scheduler's pool when the thread turns to another
 * scheduler or exits; a process-wide list of live schedulers (each with a unique serial)
 * tells whether its scheduler still exists.
 *
 * Memory goes back after a peak: a worker about to park hands its list to the pool, and the
 * tick (ds__pool_trim) frees every slab whose DS__SLAB_TASKS tasks are all in the pool, beyond
 * DS__POOL_KEEP free tasks. It detaches the pool under the lock and sorts it outside, so
 * workers are never held up by it (one that needs tasks meanwhile carves a new slab). What
 * stays is DS__POOL_KEEP tasks plus the slabs pinned by the lists of running workers, the
 * helper slot and outside threads (at most DS__CACHE_HIGH / DS__OUTSIDE_HIGH tasks each).
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
  struct ds__slab *trim_next; /* ds__pool_trim's list of the slabs it saw */
  int trim_count;             /* ds__pool_trim: its tasks in the pool; DS__SLAB_DOOMED: freed */
  char pad[64 - 3 * sizeof(void *) - sizeof(int)];
  struct ds_task tasks[DS__SLAB_TASKS];
};
#define DS__SLAB_DOOMED (DS__SLAB_TASKS + 1)

/* The shared pool is a stack of batches, so that taking or giving back a batch is one step
 * under pool_mu (walking a list of tasks last written by other cores there would miss the
 * cache once per task while holding the lock). A batch is a list linked by qnext; its first
 * task links the next batch through qprev and holds the batch's length in prio. */
#define DS__BATCH_NEXT(t) ((t)->qprev)
#define DS__BATCH_LEN(t) ((t)->prio)

/* Under pool_mu: n tasks more (or fewer) in the pool. */
static void ds__pool_count(struct ds__sched *s, int64_t n) {
  int64_t v = ds__load_relaxed(&s->pool_free) + n;
  ds__store_relaxed(&s->pool_free, v);
  if (v < s->pool_low) s->pool_low = v;
}

/* Pushes the list head (n tasks) onto the pool as one batch. */
static void ds__pool_put(struct ds__sched *s, struct ds_task *head, int n) {
  DS__BATCH_LEN(head) = n;
  pthread_mutex_lock(&s->pool_mu);
  DS__BATCH_NEXT(head) = s->pool;
  s->pool = head;
  ds__pool_count(s, n);
  pthread_mutex_unlock(&s->pool_mu);
}

/* Under pool_mu: a new slab's tasks onto the pool as one batch; 0 if out of memory. */
static int ds__pool_grow(struct ds__sched *s) {
  void *raw = ds__alloc(s->ctx, sizeof(struct ds__slab) + 63);
  if (!raw) return 0;
  struct ds__slab *sl = (struct ds__slab *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
  sl->raw = raw;
  sl->next = s->slabs;
  sl->trim_count = 0;
  s->slabs = sl;
  ds__store_relaxed(&s->nslabs, ds__load_relaxed(&s->nslabs) + 1);
  for (int i = 0; i < DS__SLAB_TASKS; i++) {
    sl->tasks[i].qnext = i + 1 < DS__SLAB_TASKS ? &sl->tasks[i + 1] : NULL;
    sl->tasks[i].slab = sl;
  }
  DS__BATCH_LEN(&sl->tasks[0]) = DS__SLAB_TASKS;
  DS__BATCH_NEXT(&sl->tasks[0]) = s->pool;
  s->pool = &sl->tasks[0];
  ds__pool_count(s, DS__SLAB_TASKS);
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
    ds__pool_count(s, -got);
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
  ds__store_relaxed(&s->nslabs, 0);
  ds__store_relaxed(&s->pool_free, 0);
  s->pool_low = 0;
  s->trim_wait = 0;
  s->trim_backoff = 1;
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

/* Zeroes the hot part with plain 8-byte stores. memset (and any loop the compiler recognises
 * as one) becomes "rep stos" here, whose start-up cost was a tenth of an empty task's cost; the
 * volatile stores cannot be turned back into it. */
static void ds__zero_hot(struct ds_task *t) {
  _Static_assert(DS__TASK_ZEROED % 8 == 0, "the hot part is a whole number of words");
  volatile uint64_t *p = (volatile uint64_t *)(void *)t;
#pragma GCC unroll 32
  for (size_t i = 0; i < DS__TASK_ZEROED / 8; i++) p[i] = 0;
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
  if (t) ds__zero_hot(t); /* the rest is written before it is read */
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

/* ---------------------------------------------------------------- giving memory back */

void ds__pool_park(ds__worker *w) {
  if (!DS__TASK_POOL || !w->cache) return;
  ds__pool_put(w->s, w->cache, w->ncached);
  w->cache = NULL;
  w->ncached = 0;
}

uint64_t ds__pool_bytes(struct ds__sched *s) {
  return ds__load_relaxed(&s->nslabs) * sizeof(struct ds__slab);
}

/* Counts the detached pool's tasks per slab; returns the total and the list of slabs seen. */
static size_t ds__trim_count(struct ds_task *list, struct ds__slab **seen) {
  size_t n = 0;
  for (struct ds_task *b = list; b; b = DS__BATCH_NEXT(b)) {
    for (struct ds_task *t = b; t; t = t->qnext, n++) {
      struct ds__slab *sl = t->slab;
      if (sl->trim_count++ == 0) {
        sl->trim_next = *seen;
        *seen = sl;
      }
    }
  }
  return n;
}

/* Appends t to the batch stack being rebuilt (*head: its top batch, filled up to
 * DS__SLAB_TASKS; *last: its bottom batch, where the pool is spliced back on). */
static void ds__trim_keep(struct ds_task *t, struct ds_task **head, struct ds_task **last) {
  struct ds_task *b = *head;
  if (b && DS__BATCH_LEN(b) < DS__SLAB_TASKS) {
    t->qnext = b->qnext; /* after the batch's first task, which carries the batch fields */
    b->qnext = t;
    DS__BATCH_LEN(b)++;
    return;
  }
  t->qnext = NULL;
  DS__BATCH_LEN(t) = 1;
  DS__BATCH_NEXT(t) = b;
  *head = t;
  if (!*last) *last = t;
}

/* Frees the doomed slabs of the seen list (unlinked from s->slabs under pool_mu first) and
 * clears the counts of the others. */
static void ds__trim_release(struct ds__sched *s, struct ds__slab *seen, uint64_t ndoomed) {
  if (ndoomed) {
    pthread_mutex_lock(&s->pool_mu);
    struct ds__slab **pp = &s->slabs;
    while (*pp) {
      if ((*pp)->trim_count == DS__SLAB_DOOMED) *pp = (*pp)->next;
      else pp = &(*pp)->next;
    }
    ds__store_relaxed(&s->nslabs, ds__load_relaxed(&s->nslabs) - ndoomed);
    pthread_mutex_unlock(&s->pool_mu);
  }
  while (seen) {
    struct ds__slab *next = seen->trim_next;
    if (seen->trim_count == DS__SLAB_DOOMED) ds__free(s->ctx, seen->raw);
    else seen->trim_count = 0;
    seen = next;
  }
}

/* Every DS__TRIM_EVERY ticks, only what the pool held unused for the whole period (its
 * low-water mark since the last check) beyond DS__POOL_KEEP is freed, so a program that
 * bursts more often than that keeps its memory instead of faulting it in again each time.
 * The walk reads every free task of the pool once: a trim that freed nothing doubles the
 * period (up to 64 times: free tasks scattered over slabs still in use). */
#define DS__TRIM_EVERY 20
#define DS__TRIM_BACKOFF_MAX 64
void ds__pool_trim(struct ds__sched *s) {
  if (!DS__TASK_POOL) return;
  if (s->trim_wait > 0) {
    s->trim_wait--;
    return;
  }
  s->trim_wait = DS__TRIM_EVERY * s->trim_backoff - 1;
  pthread_mutex_lock(&s->pool_mu);
  int64_t low = s->pool_low;
  s->pool_low = ds__load_relaxed(&s->pool_free); /* a new period */
  if (low <= DS__POOL_KEEP + DS__SLAB_TASKS) {
    pthread_mutex_unlock(&s->pool_mu);
    return;
  }
  struct ds_task *list = s->pool;
  s->pool = NULL;
  ds__store_relaxed(&s->pool_free, 0); /* not a low-water mark: the tasks come back below */
  pthread_mutex_unlock(&s->pool_mu);
  struct ds__slab *seen = NULL;
  size_t n = ds__trim_count(list, &seen);
  size_t unused = (size_t)low < n ? (size_t)low : n;
  size_t excess = unused > DS__POOL_KEEP ? unused - DS__POOL_KEEP : 0;
  uint64_t ndoomed = 0;
  struct ds_task *head = NULL, *last = NULL;
  int64_t kept = 0;
  for (struct ds_task *b = list, *nb; b; b = nb) {
    nb = DS__BATCH_NEXT(b);
    for (struct ds_task *t = b, *nt; t; t = nt) {
      nt = t->qnext;
      struct ds__slab *sl = t->slab;
      if (sl->trim_count == DS__SLAB_TASKS && excess >= DS__SLAB_TASKS) {
        sl->trim_count = DS__SLAB_DOOMED; /* every task of it is here: none is in use */
        excess -= DS__SLAB_TASKS;
        ndoomed++;
      }
      if (sl->trim_count != DS__SLAB_DOOMED) {
        ds__trim_keep(t, &head, &last);
        kept++;
      }
    }
  }
  if (head) {
    pthread_mutex_lock(&s->pool_mu);
    DS__BATCH_NEXT(last) = s->pool;
    s->pool = head;
    ds__store_relaxed(&s->pool_free, ds__load_relaxed(&s->pool_free) + kept);
    s->pool_low = ds__load_relaxed(&s->pool_free);
    pthread_mutex_unlock(&s->pool_mu);
  }
  ds__trim_release(s, seen, ndoomed);
  if (ndoomed) s->trim_backoff = 1;
  else if (s->trim_backoff < DS__TRIM_BACKOFF_MAX) s->trim_backoff *= 2;
  s->trim_wait = DS__TRIM_EVERY * s->trim_backoff - 1;
}
