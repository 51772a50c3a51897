/* S3-FIFO (Yang et al., SOSP'23): a small FIFO S (10% of the capacity) for new keys, a main
 * FIFO M, and a ghost FIFO G of keys evicted from S. A key leaving S that was hit moves to M,
 * otherwise to G; a key found in G on a miss goes straight to M. M reinserts keys with a
 * non-zero 2-bit frequency (decrementing it) and evicts the others. O(1) amortised. */
#include "policy.h"

enum { S3_S = 1, S3_M, S3_G };
typedef struct {
  ds__plist s, m, g;
  uint64_t s_target;
} ds__s3;

static ds_status ds__s3_init(ds__policy *p) {
  ds__s3 *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  ds__plist_init(&s->s);
  ds__plist_init(&s->m);
  ds__plist_init(&s->g);
  s->s_target = p->capacity / 10 ? p->capacity / 10 : 1;
  p->state = s;
  return DS_OK;
}

static void ds__s3_fini(ds__policy *p) { (void)p; }

static void ds__s3_hit(ds__policy *p, uint32_t n, int64_t next) {
  (void)next;
  ds__pnode *x = ds__pn(p, n);
  if (x->freq < 3) x->freq++;
}

static void ds__s3_evict_m(ds__policy *p, ds__s3 *s) {
  for (;;) {
    uint32_t t = s->m.tail;
    ds__pnode *x = ds__pn(p, t);
    if (x->freq > 0) {
      x->freq--;
      ds__plist_to_head(p, &s->m, t);
      continue;
    }
    ds__plist_unlink(p, &s->m, t);
    ds__policy_evicted(p, t, NULL, 0);
    return;
  }
}

static void ds__s3_evict_one(ds__policy *p, ds__s3 *s) {
  if (s->s.count && (s->s.weight >= s->s_target || s->m.count == 0)) {
    while (s->s.count) {
      uint32_t t = s->s.tail;
      ds__pnode *x = ds__pn(p, t);
      ds__plist_unlink(p, &s->s, t);
      if (x->freq > 0) {
        x->freq = 0;
        x->q = S3_M;
        ds__plist_push_head(p, &s->m, t);
        continue;
      }
      ds__policy_evicted(p, t, &s->g, S3_G);
      ds__pghost_trim(p, &s->g, p->capacity - s->s_target);
      return;
    }
  }
  if (s->m.count) ds__s3_evict_m(p, s);
}

static void ds__s3_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)next;
  ds__s3 *s = p->state;
  ds__pnode_revive(p, was_ghost ? &s->g : NULL, n, w);
  ds__pnode *x = ds__pn(p, n);
  x->q = 0;
  x->freq = 0;
  while (p->used > p->capacity && (s->s.count || s->m.count)) ds__s3_evict_one(p, s);
  x->q = was_ghost ? S3_M : S3_S;
  ds__plist_push_head(p, was_ghost ? &s->m : &s->s, n);
}

static void ds__s3_unlink(ds__policy *p, uint32_t n) {
  ds__s3 *s = p->state;
  ds__plist_unlink(p, ds__pn(p, n)->q == S3_S ? &s->s : &s->m, n);
}

const ds__policy_ops ds__policy_s3fifo = {"s3fifo", 0, 0, ds__s3_init, ds__s3_fini, ds__s3_hit,
                                          ds__s3_insert, ds__s3_unlink, NULL};
