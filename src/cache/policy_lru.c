/* LRU and classic LRU-2 (O'Neil, O'Neil & Weikum 1993).
 * LRU: one list; every operation O(1).
 * LRU-2: evicts the resident key whose second-most-recent access is oldest; keys seen once have
 * an infinite backward 2-distance and go first (LRU among them). Keys referenced at least twice
 * sit in a min-heap on their penultimate access time, so hits and evictions cost O(log n). The
 * "retained information" of evicted keys (their last access time) is kept for as many keys as
 * the cache holds, so a key that comes back is ranked by its true history. */
#include "policy.h"

/* ---- LRU ---- */
typedef struct {
  ds__plist l;
} ds__lru;

static ds_status ds__lru_init(ds__policy *p) {
  ds__lru *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  ds__plist_init(&s->l);
  p->state = s;
  return DS_OK;
}

static void ds__lru_fini(ds__policy *p) { (void)p; }

static void ds__lru_hit(ds__policy *p, uint32_t n, int64_t next) {
  (void)next;
  ds__plist_to_head(p, &((ds__lru *)p->state)->l, n);
}

static void ds__lru_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)next;
  (void)was_ghost;
  ds__lru *s = p->state;
  ds__pnode_revive(p, NULL, n, w);
  while (p->used > p->capacity && s->l.tail != DS__NIL) {
    uint32_t t = s->l.tail;
    ds__plist_unlink(p, &s->l, t);
    ds__policy_evicted(p, t, NULL, 0);
  }
  ds__plist_push_head(p, &s->l, n);
}

static void ds__lru_unlink(ds__policy *p, uint32_t n) {
  ds__plist_unlink(p, &((ds__lru *)p->state)->l, n);
}

const ds__policy_ops ds__policy_lru = {"lru", 0, 0, ds__lru_init, ds__lru_fini, ds__lru_hit,
                                       ds__lru_insert, ds__lru_unlink, NULL};

/* ---- LRU-2 ---- */
enum { LRU2_ONCE = 1, LRU2_HEAP = 2, LRU2_HIST = 3 };
typedef struct {
  ds__plist once, hist;
  ds__pheap heap;
} ds__lru2;

static ds_status ds__lru2_init(ds__policy *p) {
  ds__lru2 *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  ds__plist_init(&s->once);
  ds__plist_init(&s->hist);
  p->state = s;
  return DS_OK;
}

static void ds__lru2_fini(ds__policy *p) { ds__pheap_free(p, &((ds__lru2 *)p->state)->heap); }

/* Moves n into the heap with penultimate access = its previous last access. */
static void ds__lru2_to_heap(ds__policy *p, ds__lru2 *s, uint32_t n) {
  ds__pnode *x = ds__pn(p, n);
  x->hk = x->t1;
  x->t1 = p->tick;
  x->q = LRU2_HEAP;
  if (x->heap != DS__NIL) {
    ds__pheap_fix(p, &s->heap, n);
  } else if (ds__pheap_push(p, &s->heap, n) != DS_OK) {
    p->oom = DS_ERR_NO_MEMORY; /* cannot rank it: keep it as a once-seen key */
    x->q = LRU2_ONCE;
    ds__plist_push_head(p, &s->once, n);
  }
}

static void ds__lru2_hit(ds__policy *p, uint32_t n, int64_t next) {
  (void)next;
  ds__lru2 *s = p->state;
  if (ds__pn(p, n)->q == LRU2_ONCE) ds__plist_unlink(p, &s->once, n);
  ds__lru2_to_heap(p, s, n);
}

static void ds__lru2_evict_one(ds__policy *p, ds__lru2 *s) {
  uint32_t v;
  if (s->once.tail != DS__NIL) {
    v = s->once.tail;
    ds__plist_unlink(p, &s->once, v);
  } else {
    v = s->heap.a[0];
    ds__pheap_remove(p, &s->heap, v);
  }
  ds__policy_evicted(p, v, &s->hist, LRU2_HIST);
  ds__pghost_trim(p, &s->hist, p->capacity);
}

static void ds__lru2_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)next;
  ds__lru2 *s = p->state;
  ds__pnode_revive(p, was_ghost ? &s->hist : NULL, n, w);
  ds__pnode *x = ds__pn(p, n);
  x->q = 0;
  while (p->used > p->capacity && (s->once.count || s->heap.n)) ds__lru2_evict_one(p, s);
  if (was_ghost) {
    ds__lru2_to_heap(p, s, n);
  } else {
    x->t1 = p->tick;
    x->q = LRU2_ONCE;
    ds__plist_push_head(p, &s->once, n);
  }
}

static void ds__lru2_unlink(ds__policy *p, uint32_t n) {
  ds__lru2 *s = p->state;
  if (ds__pn(p, n)->q == LRU2_ONCE) ds__plist_unlink(p, &s->once, n);
  else ds__pheap_remove(p, &s->heap, n);
}

const ds__policy_ops ds__policy_lru2 = {"lru2", 0, 0, ds__lru2_init, ds__lru2_fini, ds__lru2_hit,
                                        ds__lru2_insert, ds__lru2_unlink, NULL};
