/* SIEVE (Zhang et al., NSDI'24): one FIFO queue, a visited bit set on hits, and a hand that
 * walks from the oldest end towards the newest, clearing visited bits and evicting the first
 * unvisited key. Hits cost O(1) (no list move); eviction is O(1) amortised. */
#include "policy.h"

typedef struct {
  ds__plist q;
  uint32_t hand;
} ds__sieve;

static ds_status ds__sieve_init(ds__policy *p) {
  ds__sieve *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  ds__plist_init(&s->q);
  s->hand = DS__NIL;
  p->state = s;
  return DS_OK;
}

static void ds__sieve_fini(ds__policy *p) { (void)p; }

static void ds__sieve_hit(ds__policy *p, uint32_t n, int64_t next) {
  (void)next;
  ds__pn(p, n)->freq = 1;
}

static void ds__sieve_evict_one(ds__policy *p, ds__sieve *s) {
  uint32_t o = s->hand != DS__NIL ? s->hand : s->q.tail;
  while (ds__pn(p, o)->freq) {
    ds__pn(p, o)->freq = 0;
    o = ds__pn(p, o)->prev != DS__NIL ? ds__pn(p, o)->prev : s->q.tail;
  }
  s->hand = ds__pn(p, o)->prev;
  ds__plist_unlink(p, &s->q, o);
  ds__policy_evicted(p, o, NULL, 0);
}

static void ds__sieve_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)next;
  (void)was_ghost;
  ds__sieve *s = p->state;
  ds__pnode_revive(p, NULL, n, w);
  while (p->used > p->capacity && s->q.count) ds__sieve_evict_one(p, s);
  ds__pn(p, n)->freq = 0;
  ds__plist_push_head(p, &s->q, n);
}

static void ds__sieve_unlink(ds__policy *p, uint32_t n) {
  ds__sieve *s = p->state;
  if (s->hand == n) s->hand = ds__pn(p, n)->prev;
  ds__plist_unlink(p, &s->q, n);
}

const ds__policy_ops ds__policy_sieve = {"sieve", 0, 0, ds__sieve_init, ds__sieve_fini,
                                         ds__sieve_hit, ds__sieve_insert, ds__sieve_unlink, NULL};
