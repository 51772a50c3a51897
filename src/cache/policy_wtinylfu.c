/* W-TinyLFU (Einziger, Friedman & Manes, 2017): a window LRU (1% of the capacity, at least one
 * object) in front of a segmented LRU main area (20% probation, 80% protected). A key leaving
 * the window enters the main area only if a count-min sketch of recent access frequencies rates
 * it above the probation victim it would replace. O(1) per operation (4 sketch cells). */
#include "policy.h"

enum { TL_WIN = 1, TL_PROB, TL_PROT };
typedef struct {
  ds__plist win, prob, prot;
  uint64_t win_cap, main_cap, prot_cap;
  ds__sketch sk;
} ds__tlfu;

static ds_status ds__tlfu_init(ds__policy *p) {
  ds__tlfu *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  p->state = s;
  ds__plist_init(&s->win);
  ds__plist_init(&s->prob);
  ds__plist_init(&s->prot);
  s->win_cap = p->capacity / 100 ? p->capacity / 100 : 1;
  s->main_cap = p->capacity > s->win_cap ? p->capacity - s->win_cap : 0;
  s->prot_cap = s->main_cap * 8 / 10;
  return ds__sketch_init(p, &s->sk, p->entries);
}

static void ds__tlfu_fini(ds__policy *p) { ds__sketch_free(p, &((ds__tlfu *)p->state)->sk); }

static void ds__tlfu_hit(ds__policy *p, uint32_t n, int64_t next) {
  (void)next;
  ds__tlfu *s = p->state;
  ds__pnode *x = ds__pn(p, n);
  ds__sketch_add(&s->sk, x->key);
  if (x->q == TL_WIN) {
    ds__plist_to_head(p, &s->win, n);
  } else if (x->q == TL_PROT) {
    ds__plist_to_head(p, &s->prot, n);
  } else {
    ds__plist_unlink(p, &s->prob, n);
    x->q = TL_PROT;
    ds__plist_push_head(p, &s->prot, n);
    while (s->prot.weight > s->prot_cap && s->prot.count > 1) {
      uint32_t t = s->prot.tail;
      ds__plist_unlink(p, &s->prot, t);
      ds__pn(p, t)->q = TL_PROB;
      ds__plist_push_head(p, &s->prob, t);
    }
  }
}

static void ds__tlfu_evict(ds__policy *p, ds__plist *l, uint32_t v) {
  ds__plist_unlink(p, l, v);
  ds__policy_evicted(p, v, NULL, 0);
}

/* The window's oldest key competes with the main area's victim for a place. */
static void ds__tlfu_admit(ds__policy *p, ds__tlfu *s) {
  uint32_t c = s->win.tail;
  ds__plist_unlink(p, &s->win, c);
  ds__pnode *x = ds__pn(p, c);
  while (s->prob.weight + s->prot.weight + x->weight > s->main_cap) {
    ds__plist *vl = s->prob.count ? &s->prob : &s->prot;
    if (!vl->count) break;
    uint32_t v = vl->tail;
    if (!ds__policy_forced(p, c) &&
        ds__sketch_estimate(&s->sk, x->key) <= ds__sketch_estimate(&s->sk, ds__pn(p, v)->key)) {
      ds__policy_evicted(p, c, NULL, 0);
      return;
    }
    ds__tlfu_evict(p, vl, v);
  }
  x->q = TL_PROB;
  ds__plist_push_head(p, &s->prob, c);
}

static void ds__tlfu_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)next;
  (void)was_ghost;
  ds__tlfu *s = p->state;
  ds__pnode_revive(p, NULL, n, w);
  if (!p->speculative) ds__sketch_add(&s->sk, ds__pn(p, n)->key);
  ds__pn(p, n)->q = TL_WIN;
  ds__plist_push_head(p, &s->win, n);
  while (s->win.weight > s->win_cap && s->win.count) ds__tlfu_admit(p, s);
  /* weights larger than the window can still leave the total over budget */
  while (p->used > p->capacity) {
    ds__plist *vl = s->prob.count ? &s->prob : s->prot.count ? &s->prot : &s->win;
    ds__tlfu_evict(p, vl, vl->tail);
  }
}

static void ds__tlfu_unlink(ds__policy *p, uint32_t n) {
  ds__tlfu *s = p->state;
  uint8_t q = ds__pn(p, n)->q;
  ds__plist_unlink(p, q == TL_WIN ? &s->win : q == TL_PROB ? &s->prob : &s->prot, n);
}

const ds__policy_ops ds__policy_wtinylfu = {"wtinylfu", 0, 0, ds__tlfu_init, ds__tlfu_fini,
                                            ds__tlfu_hit, ds__tlfu_insert, ds__tlfu_unlink, NULL};
