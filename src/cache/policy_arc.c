/* ARC (Megiddo & Modha, FAST'03): T1 (seen once recently), T2 (seen at least twice), ghosts B1
 * and B2 of keys evicted from each, and a target size p for T1 that a ghost hit moves towards
 * the list that would have kept the key. Written in weights so it also runs on byte budgets.
 * Every operation O(1). */
#include "policy.h"

enum { ARC_T1 = 1, ARC_T2, ARC_B1, ARC_B2 };
typedef struct {
  ds__plist t1, t2, b1, b2;
  double p;
} ds__arc;

static ds_status ds__arc_init(ds__policy *p) {
  ds__arc *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  ds__plist_init(&s->t1);
  ds__plist_init(&s->t2);
  ds__plist_init(&s->b1);
  ds__plist_init(&s->b2);
  p->state = s;
  return DS_OK;
}

static void ds__arc_fini(ds__policy *p) { (void)p; }

static void ds__arc_hit(ds__policy *p, uint32_t n, int64_t next) {
  (void)next;
  ds__arc *s = p->state;
  ds__pnode *x = ds__pn(p, n);
  ds__plist_unlink(p, x->q == ARC_T1 ? &s->t1 : &s->t2, n);
  x->q = ARC_T2;
  ds__plist_push_head(p, &s->t2, n);
}

/* ARC's REPLACE: evict from T1 when it is over its target, else from T2. */
static void ds__arc_replace(ds__policy *p, ds__arc *s, int in_b2) {
  int from_t1 = s->t1.count > 0 &&
                ((double)s->t1.weight > s->p || (in_b2 && (double)s->t1.weight == s->p) ||
                 s->t2.count == 0);
  ds__plist *src = from_t1 ? &s->t1 : &s->t2;
  uint32_t v = src->tail;
  ds__plist_unlink(p, src, v);
  ds__policy_evicted(p, v, from_t1 ? &s->b1 : &s->b2, from_t1 ? ARC_B1 : ARC_B2);
}

static void ds__arc_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)next;
  ds__arc *s = p->state;
  ds__pnode *x = ds__pn(p, n);
  double c = (double)p->capacity;
  if (was_ghost) {
    int in_b2 = x->q == ARC_B2;
    double b1 = (double)s->b1.weight, b2 = (double)s->b2.weight;
    if (in_b2) {
      double d = b1 > b2 ? b1 / b2 : 1;
      s->p = s->p - d * w < 0 ? 0 : s->p - d * w;
    } else {
      double d = b2 > b1 ? b2 / b1 : 1;
      s->p = s->p + d * w > c ? c : s->p + d * w;
    }
    ds__pnode_revive(p, in_b2 ? &s->b2 : &s->b1, n, w);
    x->q = 0;
    while (p->used > p->capacity && (s->t1.count || s->t2.count)) ds__arc_replace(p, s, in_b2);
    x->q = ARC_T2;
    ds__plist_push_head(p, &s->t2, n);
    return;
  }
  ds__pnode_revive(p, NULL, n, w);
  x->q = 0;
  /* L1 = T1 + B1 must stay within c: first shed B1, else drop from T1 without a ghost */
  while (s->t1.weight + s->b1.weight + w > p->capacity) {
    if (s->b1.count) {
      ds__pghost_trim(p, &s->b1, s->b1.weight - ds__pn(p, s->b1.tail)->weight);
    } else if (s->t1.count) {
      uint32_t v = s->t1.tail;
      ds__plist_unlink(p, &s->t1, v);
      ds__policy_evicted(p, v, NULL, 0);
    } else {
      break;
    }
  }
  while (p->used > p->capacity && (s->t1.count || s->t2.count)) ds__arc_replace(p, s, 0);
  /* L1 + L2 within 2c */
  uint64_t total = s->t1.weight + s->t2.weight + s->b1.weight + s->b2.weight + w;
  if (total > 2 * p->capacity)
    ds__pghost_trim(p, &s->b2, s->b2.weight > total - 2 * p->capacity
                                   ? s->b2.weight - (total - 2 * p->capacity) : 0);
  x->q = ARC_T1;
  ds__plist_push_head(p, &s->t1, n);
}

static void ds__arc_unlink(ds__policy *p, uint32_t n) {
  ds__arc *s = p->state;
  ds__plist_unlink(p, ds__pn(p, n)->q == ARC_T1 ? &s->t1 : &s->t2, n);
}

const ds__policy_ops ds__policy_arc = {"arc", 0, 0, ds__arc_init, ds__arc_fini, ds__arc_hit,
                                       ds__arc_insert, ds__arc_unlink, NULL};
