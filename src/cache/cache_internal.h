/* Internal structures of the tiered cache (cache.c, cache_api.c). */
#ifndef DS_CACHE_INTERNAL_H
#define DS_CACHE_INTERNAL_H

#include <pthread.h>
#include <string.h>

/* xxHash header-only, so the key hash is inlined on the hit path */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "arena.h"
#include "atomic.h"
#include "codec.h"
#include "gpu.h"
#include "policy.h"

/* An entry is one allocation: its cold fields (ds__centry_cold: read by moves, pins, owned
 * values), then the fields a hit reads and the key, so a lookup of a 16-byte key reads 64
 * bytes from the entry pointer (the inline value follows). ds__cold(e) reaches the cold part. */
typedef struct ds__centry_cold {
  size_t slen;              /* stored length (tier 2) */
  ds_cache_free_fn free_fn; /* owned value (ds_cache_put_owned); NULL: ds__free */
  void *free_user;
  void *keep;               /* tier 1: the L2 encoding it came up with (values never change), so
                               moving it down again costs no compression; counted in L1 */
  size_t keep_len;
  uint32_t keep_enc;
  uint32_t enc;             /* DS__ENC_* of tier-2 data */
  uint32_t pins;
  uint32_t holds;           /* pins + references to L2 values + prefetch; held entries are in no
                               policy */
  struct ds__centry *zprev; /* zombie list (ds__shard.zombies; next: the entry's next) */
} ds__centry_cold;         /* 64 bytes: the entry after it stays 16-byte aligned */

typedef struct ds__centry {
  struct ds__centry *next; /* hash chain */
  uint64_t hash;
  void *data;              /* tier 1: the value; tier 2: its encoding; tier 3: device memory */
  size_t vlen;             /* value length */
  uint16_t klen;
  uint8_t tier;            /* 1 L1, 2 L2, 3 GPU (0 while moving) */
  uint8_t dead;            /* removed while referenced: freed at the last release */
  ds__atomic_u8 pend;      /* L1 hits not yet seen by a lazy L1 policy (saturating at
                              DS__PEND_MAX; lock-free readers add to it, relaxed) */
  uint8_t mem;             /* where data lies and how it is freed: DS__MEM_* (an owned value:
                              DS__MEM_HEAP, freed by its free_fn) */
  uint8_t emem;            /* where this allocation lies: DS__MEM_HEAP or DS__MEM_ARENA */
  uint8_t shift;           /* 8-byte units the entry was moved up to start a cache line */
  ds__atomic_int refs;     /* zero-copy references (DS__REF_COUNT bits) + DS__REF_OWN while the
                              cache owns the entry; see ds__centry_put */
  uint32_t pnode;          /* node in its tier's policy (a hint, see ds__policy_touch_node) */
  char key[];
} ds__centry;

#define DS__MEM_HEAP 0   /* ds__alloc (or the owner's, with free_fn) */
#define DS__MEM_INLINE 1 /* in the entry's allocation, after the key (not freed alone) */
#define DS__MEM_ARENA 2  /* a slot of the cache's L1 value arena (arena.c) */
#define DS__MEM_DEVICE 3 /* device memory of the GPU tier (tier 3) */

_Static_assert(sizeof(ds__centry_cold) % 16 == 0, "entries must stay 16-byte aligned");
static inline ds__centry_cold *ds__cold(ds__centry *e) { return (ds__centry_cold *)e - 1; }

/* Zero-copy references to L1 values (ds_cache_get_ref) count in the entry, not in holds: the
 * entry stays in its policy and the reference is taken in the lock-free read section. A write
 * section that would free the entry's bytes or replace them (remove, replace, eviction, a move
 * down, destroy) takes the entry out of the table and the tier counters instead and leaves it
 * as a zombie, which the last release frees. Only L1 (tier 1) entries have references: every
 * move out of tier 1 checks ds__centry_referenced. */
#define DS__REF_OWN (1 << 30)            /* the cache still owns the entry */
#define DS__REF_COUNT (DS__REF_OWN - 1)  /* outstanding zero-copy references */
static inline int ds__centry_referenced(ds__centry *e) {
  return (ds__load(&e->refs) & DS__REF_COUNT) != 0;
}

typedef struct ds__tier_counters {
  uint64_t bytes, raw_bytes, key_bytes, entries;
  uint64_t keep_bytes; /* L1: kept L2 encodings (in bytes, not in the compression ratio) */
  uint64_t hits, misses, evictions, rejected, prefetched;
  uint64_t failed; /* GPU tier: device allocations or copies that failed */
  uint64_t lat[64];
} ds__tier_counters;

/* Lock-free L1 hits (ds__cache_get_fast). Every mutation of a shard's table or entries runs in
 * a write section (ds__shard_lock: the mutex, then the writer flag raised and the readers
 * drained); a reader announces itself in its thread's slot of the shard (own cache line),
 * checks the writer flag, and looks up and copies with no lock. An asymmetric reader-writer
 * lock: readers write only their own slot, so two threads hitting the same keys share no
 * written cache line; a writer pays a scan of the slots. Threads share a slot when there are
 * more than DS__RSLOTS (still correct: the slot counts readers). */
#define DS__RSLOTS 32
#define DS__RS_ACTIVE 0xffffu /* low 16 bits of a slot word: readers inside; the rest: hits */
#define DS__PEND_MAX 15       /* pend saturates here (the sketch's cells saturate at 15) */
typedef struct ds__rslot {
  ds__atomic_u64 word; /* readers inside (low 16 bits) + L1 hits served (<< 16) */
  char pad[56];
} ds__rslot;

typedef struct ds__rlat {
  ds__atomic_u64 lat[64]; /* latency histogram of sampled lock-free hits */
} ds__rlat;

/* Few pages on a lock-free hit: with values of 4 KiB and more, every hit misses the TLB on
 * the entry and the value, so the shard metadata a hit reads must stay on few pages or it is
 * evicted from the first-level TLB too. A shard starts a cache line (the cache is allocated
 * 64-byte aligned) and what a hit reads of it lies on that first line; the tier counters
 * (1.8 KB) are allocated apart, so all shards fit in a page or two; a thread's reader slots of
 * all shards are adjacent (c->rs_mem), one page for 16 shards. */
typedef struct ds__shard {
  _Alignas(64) ds__atomic_int writer; /* 1 inside a write section */
  uint32_t fast;         /* lock-free L1 hits: lazy L1 policy and no GPU tier */
  uint32_t rs_stride;    /* thread slot i's reader slot in this shard: rs[i * rs_stride] */
  ds__rslot *rs;         /* in c->rs_mem */
  ds__centry **buckets;
  size_t nb, count;
  pthread_mutex_t mu;
  struct ds_cache *cache;
  ds__policy *pol[3]; /* L1, L2, GPU (NULL when the tier is absent): index tier - 1 */
  ds__tier_counters *t; /* L1, L2, GPU: index tier - 1 (own allocation, see above) */
  uint32_t sample;    /* every 64th locked get is timed */
  uint32_t lazy_l1;   /* 1: L1's policy is lazy (ds__policy_ops.lazy): a hit only counts in
                         the entry (pend), which the policy reads back at its list tail */
  ds__centry *zombies; /* entries let go of while referenced (under mu), freed at release */
  uint64_t zombie_bytes, zombie_count; /* their weight (key + value; not in any tier's bytes) */
  char pad[64];
} ds__shard;

#define DS__PF_KEY 64 /* longest key the prefetcher learns */
typedef struct ds__prefetch ds__prefetch;

struct ds_cache {
  ds_context *ctx;
  ds__prefetch *pf;      /* memory caches: the prefetcher (hints always; learning if depth) */
  uint32_t pf_learn;     /* prefetch_depth > 0 */
  struct ds__disk *disk; /* persistent cache: the only tier */
  ds__codec_cfg codec;
  uint32_t nshards;
  uint32_t inline_max;   /* copying puts of values up to this size keep them in the entry */
  ds__cache_gpu *gpu;    /* the GPU tier's device, or NULL */
  uint64_t shard_cap[3]; /* per-shard budget of L1, L2, GPU (0: tier absent) */
  int stat_ids[3][8];
  int zombie_ids[2];     /* cache.l1.zombie_bytes, cache.l1.zombies */
  ds__rlat *rlat;        /* per reader slot: lock-free hits' latencies (DS__RSLOTS) */
  void *mem;             /* the allocation c lies in (c is 64-byte aligned in it) */
  void *rs_mem;          /* the shards' reader slots: [thread slot][shard], 64-byte aligned */
  pthread_mutex_t refs_mu;      /* guards refs */
  struct ds_cache_ref *refs;    /* allocated references not yet released (destroy frees them) */
  ds__arena *arena;             /* L1 values on huge pages (cache_l1_huge_pages), or NULL */
  int arena_id;                 /* cache.l1.arena_bytes */
  ds__shard shards[];
};

/* An allocated reference (not L1: see ds__ref_of), listed in its cache's refs. */
struct ds_cache_ref {
  ds__centry *e;
  ds__shard *sh;
  void *copy; /* GPU tier or persistent cache: the host copy of the value */
  struct ds_cache_ref *prev, *next;
};

static inline uint64_t ds__cache_hash(const void *key, size_t klen) {
  return XXH3_64bits(key, klen);
}

/* The lookup, inlined into the lock-free hit paths (cache_api.c). Key equality: keys of 8..16
 * bytes (the common ids) as two overlapping 8-byte words, without a call to memcmp. */
static inline int ds__key_eq(const char *a, const void *b, size_t n) {
  if (n < 8 || n > 16) return !memcmp(a, b, n);
  uint64_t x0, x1, y0, y1;
  memcpy(&x0, a, 8);
  memcpy(&y0, b, 8);
  memcpy(&x1, a + n - 8, 8);
  memcpy(&y1, (const char *)b + n - 8, 8);
  return ((x0 ^ y0) | (x1 ^ y1)) == 0;
}

static inline ds__centry *ds__shard_find(ds__shard *sh, uint64_t h, const void *key,
                                         size_t klen) {
  for (ds__centry *e = sh->buckets[h & (sh->nb - 1)]; e; e = e->next)
    if (e->hash == h && e->klen == klen && ds__key_eq(e->key, key, klen)) return e;
  return NULL;
}

static inline ds__shard *ds__cache_shard(struct ds_cache *c, uint64_t h) {
  return &c->shards[c->nshards > 1 ? (size_t)(h >> 56) & (c->nshards - 1) : 0];
}

void ds__shard_link(struct ds_cache *c, ds__shard *sh, ds__centry *e);
void ds__place_l1(struct ds_cache *c, ds__shard *sh, ds__centry *e, int force);
void ds__evict_l1(void *user, uint64_t key);
void ds__evict_l2(void *user, uint64_t key);
void ds__evict_gpu(void *user, uint64_t key);
void ds__place_top(struct ds_cache *c, ds__shard *sh, ds__centry *e, int force, int l1_force);
int ds__place_gpu(struct ds_cache *c, ds__shard *sh, ds__centry *e, const void *src, int force);
void ds__centry_unlink_free(struct ds_cache *c, ds__shard *sh, ds__centry *e);
void ds__promote_l1(struct ds_cache *c, ds__shard *sh, ds__centry *e);
uint32_t ds__pending_l1(void *user, uint64_t key);
void ds__centry_adopt_plain(ds__shard *sh, ds__centry *e, void *plain, uint8_t mem);
void *ds__value_alloc(struct ds_cache *c, size_t n, uint8_t *mem);
void ds__value_free(struct ds_cache *c, void *p, uint8_t mem);
ds_status ds__centry_decode(struct ds_cache *c, ds__shard *sh, ds__centry *e);
void ds__centry_hold(ds__shard *sh, ds__centry *e);
void ds__centry_unhold(struct ds_cache *c, ds__shard *sh, ds__centry *e);
void ds__centry_kill(struct ds_cache *c, ds__shard *sh, ds__centry *e);
ds_status ds__prefetch_create(struct ds_cache *c, uint32_t depth);
void ds__prefetch_destroy(struct ds_cache *c);
void ds__prefetch_observe(struct ds_cache *c, uint64_t stream, const void *key, size_t klen,
                          uint64_t h);
void ds__tier_add(ds__shard *sh, ds__centry *e);
void ds__centry_free(struct ds_cache *c, ds__centry *e);
void ds__centry_put(struct ds_cache *c, ds__shard *sh, ds__centry *e);
void ds__zombie_unlink(ds__shard *sh, ds__centry *e);
ds_cache_ref *ds__cache_ref_new(struct ds_cache *c);
void ds__cache_ref_free(struct ds_cache *c, ds_cache_ref *r);
void ds__lat_record(ds__tier_counters *t, uint64_t ns);
int ds__lat_bucket(uint64_t ns);
void ds__shard_lock(ds__shard *sh);
void ds__shard_unlock(ds__shard *sh);

#endif
