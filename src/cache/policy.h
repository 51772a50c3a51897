/* Internal interface of the eviction policies: one table of function pointers per policy, over
 * shared building blocks (a node pool, a u64 -> node hash map, intrusive doubly linked lists,
 * an indexed binary heap and a count-min sketch). The cache tiers and the trace simulator both
 * drive policies through the ds__policy_* calls below; a policy never sees values, only keys
 * (u64 ids) and weights (1 per object in the simulator, bytes in a cache tier).
 *
 * Threading: a policy object is used by one thread at a time (the cache holds the shard lock). */
#ifndef DS_CACHE_POLICY_H
#define DS_CACHE_POLICY_H

#include <stdint.h>

#include "internal.h"

#define DS__NIL UINT32_MAX

/* One tracked key: resident, or a ghost (history of an evicted key) when the policy keeps one. */
typedef struct ds__pnode {
  uint64_t key;
  int64_t t1;      /* last access time (policy tick) */
  int64_t hk;      /* heap key (LRU-2: penultimate access; Belady: -next access) */
  uint32_t prev, next;
  uint32_t weight;
  uint32_t heap;   /* index in the heap, DS__NIL when not in it */
  uint8_t q;       /* which list the node is on (policy-specific, 0 = none) */
  uint8_t freq;    /* small saturating counter (S3-FIFO, SIEVE visited bit) */
  uint8_t ghost;   /* 1: not resident */
  uint8_t pad;
} ds__pnode;

typedef struct ds__plist {
  uint32_t head, tail; /* head = most recent */
  uint32_t count;
  uint64_t weight;
} ds__plist;

typedef struct ds__pheap {
  uint32_t *a;
  uint32_t n, cap;
} ds__pheap;

typedef struct ds__sketch {
  uint8_t *c;        /* blocks of 64 cells: 4 rows x 16, saturating at 15 */
  uint32_t mask;     /* blocks - 1 */
  uint64_t samples, reset_at;
} ds__sketch;

typedef struct ds__policy ds__policy;
typedef void (*ds__policy_evict_fn)(void *user, uint64_t key);

typedef struct ds__policy_ops {
  const char *name;
  int oracle; /* 1: needs next-access times */
  int lazy;   /* 1: hit only counts (pnode freq), the policy acts on the count when the key
                 reaches a list tail, CLOCK-style; the owner may then count hits itself and
                 answer pending_fn instead of calling touch */
  ds_status (*init)(ds__policy *p);
  void (*fini)(ds__policy *p);
  void (*hit)(ds__policy *p, uint32_t n, int64_t next);
  /* Places the new resident node n (already in the map; p->used already counts weight); a
   * ghost n is still on its ghost list, which the policy takes it off before setting
   * n->weight = weight. Evicts as needed, possibly n itself (declined). Returns nothing useful
   * (the core checks whether n is still resident). */
  void (*insert)(ds__policy *p, uint32_t n, uint32_t weight, int64_t next, int was_ghost);
  void (*unlink)(ds__policy *p, uint32_t n); /* take a resident node off its list (remove) */
  /* lazy policies: the part of a hit on key that needs no node (lruk+: the sketch), applied
   * once per hit the owner counted (pending_fn) when the policy reads the count back */
  void (*note)(ds__policy *p, uint64_t key);
} ds__policy_ops;

struct ds__policy {
  ds_context *ctx;
  const ds__policy_ops *ops;
  uint64_t capacity; /* in weight units */
  uint64_t entries;  /* expected resident keys (entries_hint) */
  uint64_t used;     /* resident weight */
  uint64_t resident; /* resident nodes */
  int64_t tick;      /* advanced once per hit or insert */
  ds__policy_evict_fn evict_fn;
  void *evict_user;
  /* node pool */
  ds__pnode *nodes;
  uint32_t nnodes, node_cap, free_head;
  /* key -> node map (open addressing, linear probing, backward-shift delete) */
  uint64_t *mkeys;
  uint32_t *mvals;
  uint32_t mcap, mcount;
  ds_status oom; /* sticky DS_ERR_NO_MEMORY seen while growing */
  uint32_t last_node; /* node of the last admitted insert (for ds__policy_touch_node) */
  int speculative;    /* 1 while the caller inserts a key nobody asked for yet (prefetch):
                         frequency-based policies do not count it as an access */
  int force;          /* 1 while the caller inserts a key it was asked to keep (a put, a
                         prefetch): admission filters admit it and evict others instead */
  void *state;   /* policy-specific */
  /* lazy policies: hits on key the owner counted since the last call (read and cleared) */
  uint32_t (*pending_fn)(void *user, uint64_t key);
};

/* ---- public-to-the-module calls ---- */
/* Creates the policy called name ("lru", "lru2", "arc", "s3fifo", "wtinylfu", "sieve",
 * "belady", "lruk+") with capacity in weight units; entries_hint is the number of keys the
 * capacity is expected to hold (sizes frequency sketches and ghost lists; 0: capacity). evict_fn is called for every resident key
 * the policy evicts (not for remove). DS_ERR_INVALID_ARG for an unknown name. */
ds_status ds__policy_create(ds__policy **out, ds_context *ctx, const char *name, uint64_t capacity,
                            uint64_t entries_hint, ds__policy_evict_fn evict_fn, void *user);
void ds__policy_destroy(ds__policy *p);
/* Records an access to key if resident: returns 1 (hit) or 0. next = next access time (oracle
 * policies), -1 for never or unknown. */
int ds__policy_touch(ds__policy *p, uint64_t key, int64_t next);
/* ds__policy_touch with a node hint from last_node: skips the map lookup when the node still
 * holds key (falls back to it otherwise). */
int ds__policy_touch_node(ds__policy *p, uint32_t node, uint64_t key, int64_t next);
/* Inserts a key that is not resident. Returns 1 admitted, 0 declined (too heavy, or the
 * admission filter said no: the key is then not resident), -1 out of memory. */
int ds__policy_insert(ds__policy *p, uint64_t key, uint32_t weight, int64_t next);
/* touch, then insert on a miss; returns 1 for a hit, 0 for a miss, -1 out of memory. */
int ds__policy_access(ds__policy *p, uint64_t key, uint32_t weight, int64_t next);
/* Forgets a resident key without calling evict_fn; returns 1 if it was resident. */
int ds__policy_remove(ds__policy *p, uint64_t key);
/* Names of the policies, NULL-terminated; ds__policy_is_oracle(name). */
const char *const *ds__policy_names(void);
int ds__policy_is_oracle(const char *name);

/* ---- building blocks for the policy files ---- */

static inline ds__pnode *ds__pn(ds__policy *p, uint32_t n) { return &p->nodes[n]; }
/* 1 when resident node n is the key being inserted with p->force set (no admission contest). */
static inline int ds__policy_forced(const ds__policy *p, uint32_t n) {
  return p->force && (p->nodes[n].pad & 1);
}
uint32_t ds__pmap_find(const ds__policy *p, uint64_t key);
void ds__pnode_drop(ds__policy *p, uint32_t n); /* remove from the map and free */
/* Evicts resident node n (already unlinked): calls evict_fn, then keeps it as a ghost on list
 * ghost_list (q = ghost_q) when ghost_list != NULL, else drops it. */
void ds__policy_evicted(ds__policy *p, uint32_t n, ds__plist *ghost_list, uint8_t ghost_q);

void ds__plist_init(ds__plist *l);
void ds__plist_push_head(ds__policy *p, ds__plist *l, uint32_t n);
void ds__plist_unlink(ds__policy *p, ds__plist *l, uint32_t n);
static inline void ds__plist_to_head(ds__policy *p, ds__plist *l, uint32_t n) {
  ds__plist_unlink(p, l, n);
  ds__plist_push_head(p, l, n);
}

/* Drops ghosts from the tail of l while its weight exceeds max_weight. */
void ds__pghost_trim(ds__policy *p, ds__plist *l, uint64_t max_weight);
/* Takes a ghost node off list l and gives it its new weight (start of every insert). */
static inline void ds__pnode_revive(ds__policy *p, ds__plist *l, uint32_t n, uint32_t weight) {
  if (l) ds__plist_unlink(p, l, n);
  p->nodes[n].ghost = 0;
  p->nodes[n].weight = weight;
}

/* Lazy policies: the hits on resident node n since the policy last looked (its freq count
 * plus the owner's pending_fn, whose hits are noted (ops->note) now), cleared. */
uint32_t ds__policy_pending(ds__policy *p, uint32_t n);

ds_status ds__pheap_push(ds__policy *p, ds__pheap *h, uint32_t n);
void ds__pheap_fix(ds__policy *p, ds__pheap *h, uint32_t n);
void ds__pheap_remove(ds__policy *p, ds__pheap *h, uint32_t n);
void ds__pheap_free(ds__policy *p, ds__pheap *h);

ds_status ds__sketch_init(ds__policy *p, ds__sketch *s, uint64_t entries);
void ds__sketch_free(ds__policy *p, ds__sketch *s);
void ds__sketch_add(ds__sketch *s, uint64_t key);
unsigned ds__sketch_estimate(const ds__sketch *s, uint64_t key);

/* the policy tables (one file each) */
extern const ds__policy_ops ds__policy_lru, ds__policy_lru2, ds__policy_arc, ds__policy_s3fifo,
    ds__policy_wtinylfu, ds__policy_sieve, ds__policy_belady, ds__policy_lruk_plus;

#endif /* DS_CACHE_POLICY_H */
