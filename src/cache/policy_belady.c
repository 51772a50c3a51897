/* Belady's MIN (offline optimum for unit sizes): evicts the resident key whose next access is
 * farthest in the future (never = infinitely far). Needs next-access times from the trace;
 * like libCacheSim's, it always admits (never bypasses). O(log n) per operation (max-heap). */
#include "policy.h"

typedef struct {
  ds__pheap heap;
} ds__belady;

static int64_t ds__belady_key(int64_t next) { return next < 0 ? -INT64_MAX : -next; }

static ds_status ds__belady_init(ds__policy *p) {
  ds__belady *s = ds__calloc(p->ctx, 1, sizeof *s);
  if (!s) return DS_ERR_NO_MEMORY;
  p->state = s;
  return DS_OK;
}

static void ds__belady_fini(ds__policy *p) { ds__pheap_free(p, &((ds__belady *)p->state)->heap); }

static void ds__belady_hit(ds__policy *p, uint32_t n, int64_t next) {
  ds__pn(p, n)->hk = ds__belady_key(next);
  ds__pheap_fix(p, &((ds__belady *)p->state)->heap, n);
}

static void ds__belady_insert(ds__policy *p, uint32_t n, uint32_t w, int64_t next, int was_ghost) {
  (void)was_ghost;
  ds__belady *s = p->state;
  ds__pnode_revive(p, NULL, n, w);
  while (p->used > p->capacity && s->heap.n) {
    uint32_t v = s->heap.a[0];
    ds__pheap_remove(p, &s->heap, v);
    ds__policy_evicted(p, v, NULL, 0);
  }
  ds__pn(p, n)->hk = ds__belady_key(next);
  if (ds__pheap_push(p, &s->heap, n) != DS_OK) {
    p->oom = DS_ERR_NO_MEMORY;
    ds__policy_evicted(p, n, NULL, 0);
  }
}

static void ds__belady_unlink(ds__policy *p, uint32_t n) {
  ds__pheap_remove(p, &((ds__belady *)p->state)->heap, n);
}

const ds__policy_ops ds__policy_belady = {"belady", 1, 0, ds__belady_init, ds__belady_fini,
                                          ds__belady_hit, ds__belady_insert, ds__belady_unlink, NULL};
