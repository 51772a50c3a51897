/* The tiered cache: shards (mutex + chained hash table of byte keys + one policy per tier),
 * the GPU (device memory), L1 (uncompressed) and L2 (compressed) tiers, moves between them,
 * pins and references, and per-tier counters. Policies track entries by their address (a u64
 * key). */
#include <sched.h>
#include <string.h>

#include "cache_internal.h"

/* ---- tier bookkeeping ---- */
static uint64_t ds__centry_weight(ds__centry *e) {
  ds__centry_cold *k = ds__cold(e);
  return (uint64_t)e->klen + (e->tier == 2 ? k->slen : e->vlen + k->keep_len);
}

void ds__tier_add(ds__shard *sh, ds__centry *e) {
  ds__tier_counters *t = &sh->t[e->tier - 1];
  t->bytes += ds__centry_weight(e);
  t->raw_bytes += e->vlen;
  t->key_bytes += e->klen;
  if (e->tier != 2) t->keep_bytes += ds__cold(e)->keep_len;
  t->entries++;
}

static void ds__tier_sub(ds__shard *sh, ds__centry *e) {
  ds__tier_counters *t = &sh->t[e->tier - 1];
  t->bytes -= ds__centry_weight(e);
  t->raw_bytes -= e->vlen;
  t->key_bytes -= e->klen;
  if (e->tier != 2) t->keep_bytes -= ds__cold(e)->keep_len;
  t->entries--;
}

/* ---- values ---- */
/* Host memory for a plain (L1) value of n bytes: a slot of the L1 arena when the cache has
 * one and it serves n, else the heap; *mem says which, for ds__value_free. */
void *ds__value_alloc(ds_cache *c, size_t n, uint8_t *mem) {
  if (!n) n = 1;
  void *p = ds__arena_alloc(c->arena, n);
  *mem = p ? DS__MEM_ARENA : DS__MEM_HEAP;
  return p ? p : ds__alloc(c->ctx, n);
}

void ds__value_free(ds_cache *c, void *p, uint8_t mem) {
  if (mem == DS__MEM_ARENA) ds__arena_free(c->arena, p);
  else ds__free(c->ctx, p);
}

/* ---- entries and the hash table ---- */
static void ds__centry_free_data(ds_cache *c, ds__centry *e) {
  ds__centry_cold *k = ds__cold(e);
  ds__free(c->ctx, k->keep);
  k->keep = NULL;
  k->keep_len = 0;
  if (!e->data) return;
  if (e->mem == DS__MEM_DEVICE) ds__gpu_free(c->gpu, e->data);
  else if (k->free_fn) k->free_fn(k->free_user, e->data);
  else if (e->mem != DS__MEM_INLINE) ds__value_free(c, e->data, e->mem);
  e->data = NULL;
  k->free_fn = NULL;
  e->mem = DS__MEM_HEAP;
}

void ds__centry_free(ds_cache *c, ds__centry *e) {
  ds__centry_free_data(c, e);
  char *mem = (char *)ds__cold(e) - 8u * e->shift;
  if (e->emem == DS__MEM_ARENA) ds__arena_free(c->arena, mem);
  else ds__free(c->ctx, mem);
}

static void ds__shard_unlink(ds__shard *sh, ds__centry *e) {
  ds__centry **pp = &sh->buckets[e->hash & (sh->nb - 1)];
  while (*pp != e) pp = &(*pp)->next;
  *pp = e->next;
  e->next = NULL;
  sh->count--;
}

void ds__shard_link(ds_cache *c, ds__shard *sh, ds__centry *e) {
  /* grow at load 1/2 (a hit then walks 1.25 entries on average, each a likely cache miss,
   * against 1.5 at load 1); a failed grow only lengthens chains */
  if (sh->count + 1 > sh->nb / 2) {
    size_t nb = sh->nb * 2;
    ds__centry **b = ds__calloc(c->ctx, nb, sizeof *b);
    if (b) {
      for (size_t i = 0; i < sh->nb; i++)
        for (ds__centry *x = sh->buckets[i], *nx; x; x = nx) {
          nx = x->next;
          x->next = b[x->hash & (nb - 1)];
          b[x->hash & (nb - 1)] = x;
        }
      ds__free(c->ctx, sh->buckets);
      sh->buckets = b;
      sh->nb = nb;
    }
  }
  e->next = sh->buckets[e->hash & (sh->nb - 1)];
  sh->buckets[e->hash & (sh->nb - 1)] = e;
  sh->count++;
}

/* ---- zombies: entries the cache let go of while zero-copy references remain ---- */
static void ds__zombie_link(ds__shard *sh, ds__centry *e) {
  e->next = sh->zombies;
  ds__cold(e)->zprev = NULL;
  if (sh->zombies) ds__cold(sh->zombies)->zprev = e;
  sh->zombies = e;
  sh->zombie_bytes += ds__centry_weight(e);
  sh->zombie_count++;
}

/* Called with sh->mu locked (a releaser takes only the mutex: readers never see zombies). */
void ds__zombie_unlink(ds__shard *sh, ds__centry *e) {
  ds__centry *p = ds__cold(e)->zprev;
  if (p) p->next = e->next;
  else sh->zombies = e->next;
  if (e->next) ds__cold(e->next)->zprev = p;
  e->next = NULL;
  sh->zombie_bytes -= ds__centry_weight(e);
  sh->zombie_count--;
}

/* The cache lets go of e (out of the table, every tier's counters and every policy): frees it
 * now, or, while zero-copy references remain, lists it as a zombie that the last release frees.
 * Called in a write section (or by destroy), so no reference is taken meanwhile; a release may
 * drop one, hence the zombie is listed before the cache's own bit is cleared. */
void ds__centry_put(ds_cache *c, ds__shard *sh, ds__centry *e) {
  ds__atomic_int *r = &e->refs;
  if (ds__load(r) == DS__REF_OWN) {
    ds__centry_free(c, e);
    return;
  }
  ds__zombie_link(sh, e);
  if (ds__fetch_sub(r, DS__REF_OWN) == DS__REF_OWN) { /* the last one was released meanwhile */
    ds__zombie_unlink(sh, e);
    ds__centry_free(c, e);
  }
}

/* Takes e out of the cache for good (it is in no policy). */
static void ds__centry_drop(ds_cache *c, ds__shard *sh, ds__centry *e) {
  ds__tier_sub(sh, e);
  ds__shard_unlink(sh, e);
  ds__centry_put(c, sh, e);
}

/* ---- moves between tiers ---- */
static void ds__place_l2(ds_cache *c, ds__shard *sh, ds__centry *e);

/* Puts e (uncompressed, in no tier) into L1, or L2 when L1 is absent or declines it. With
 * force (a put, a prefetch, a released pin), L1's admission filter admits e and evicts others
 * instead: only a value heavier than the shard's budget is declined. */
void ds__place_l1(ds_cache *c, ds__shard *sh, ds__centry *e, int force) {
  if (!sh->pol[0]) {
    ds__place_l2(c, sh, e);
    return;
  }
  e->tier = 1;
  uint64_t w = ds__centry_weight(e);
  ds__tier_add(sh, e);
  sh->pol[0]->force = force;
  int r = w <= UINT32_MAX ? ds__policy_insert(sh->pol[0], (uintptr_t)e, (uint32_t)w, -1) : 0;
  sh->pol[0]->force = 0;
  if (r == 1) {
    e->pnode = sh->pol[0]->last_node;
    ds__store_relaxed(&e->pend, 0);
    return;
  }
  ds__tier_sub(sh, e);
  sh->t[0].rejected++;
  ds__place_l2(c, sh, e);
}

/* Compresses e (uncompressed, in no tier) into L2 (or reuses the encoding it kept); drops it
 * when L2 is absent, declines it, or compression runs out of memory. */
static void ds__place_l2(ds_cache *c, ds__shard *sh, ds__centry *e) {
  if (ds__centry_referenced(e)) { /* references read its bytes: out of the cache, not down */
    ds__shard_unlink(sh, e);
    ds__centry_put(c, sh, e);
    return;
  }
  void *enc_data = ds__cold(e)->keep;
  size_t enc_len = ds__cold(e)->keep_len;
  uint32_t enc = ds__cold(e)->keep_enc;
  ds__cold(e)->keep = NULL;
  ds__cold(e)->keep_len = 0;
  e->tier = 2;
  ds__cold(e)->slen = e->vlen;
  ds__tier_add(sh, e); /* so drop can subtract */
  if (!sh->pol[1] ||
      (!enc_data &&
       ds__codec_encode(c->ctx, &c->codec, e->data, e->vlen, &enc_data, &enc_len, &enc) != DS_OK)) {
    ds__free(c->ctx, enc_data);
    ds__centry_drop(c, sh, e);
    return;
  }
  ds__tier_sub(sh, e);
  ds__centry_free_data(c, e);
  e->data = enc_data;
  ds__cold(e)->slen = enc_len;
  ds__cold(e)->enc = enc;
  ds__tier_add(sh, e);
  uint64_t w = ds__centry_weight(e);
  int r = w <= UINT32_MAX ? ds__policy_insert(sh->pol[1], (uintptr_t)e, (uint32_t)w, -1) : 0;
  if (r == 1) {
    e->pnode = sh->pol[1]->last_node;
    return;
  }
  sh->t[1].rejected++;
  ds__centry_drop(c, sh, e);
}

void ds__evict_l1(void *user, uint64_t key) {
  ds__shard *sh = user;
  ds__centry *e = (ds__centry *)(uintptr_t)key;
  sh->t[0].evictions++;
  ds__tier_sub(sh, e);
  ds__place_l2(sh->cache, sh, e);
}

void ds__evict_l2(void *user, uint64_t key) {
  ds__shard *sh = user;
  sh->t[1].evictions++;
  ds__centry_drop(sh->cache, sh, (ds__centry *)(uintptr_t)key);
}

/* Tries to put e (in no tier) into the GPU tier with its bytes copied from src (its host
 * value, or the caller's bytes of a put that has no host copy yet). The policy makes room
 * first, so the evicted entries' device memory is free before the allocation. Returns 1 when
 * placed (the host value, if any, is freed: an owned one goes back to its owner); 0 when the
 * policy declines e (admission, with force 0) or the device allocation or copy fails: e is
 * then in no tier, unchanged. */
int ds__place_gpu(ds_cache *c, ds__shard *sh, ds__centry *e, const void *src, int force) {
  ds__policy *p = sh->pol[2];
  ds__free(c->ctx, ds__cold(e)->keep); /* the GPU tier keeps no encoding */
  ds__cold(e)->keep = NULL;
  ds__cold(e)->keep_len = 0;
  e->tier = 3;
  uint64_t w = ds__centry_weight(e);
  ds__tier_add(sh, e);
  p->force = force;
  int r = w <= UINT32_MAX ? ds__policy_insert(p, (uintptr_t)e, (uint32_t)w, -1) : 0;
  p->force = 0;
  void *mem = NULL;
  if (r == 1 && ds__gpu_store(c->gpu, src, e->vlen, &mem) == DS_OK) {
    e->pnode = p->last_node;
    ds__centry_free_data(c, e);
    e->data = mem;
    e->mem = DS__MEM_DEVICE;
    return 1;
  }
  if (r == 1) {
    ds__policy_remove(p, (uintptr_t)e);
    sh->t[2].failed++;
  }
  ds__tier_sub(sh, e);
  e->tier = 0;
  sh->t[2].rejected++;
  return 0;
}

/* Puts e (plain bytes in host memory, in no tier) into the GPU tier; when there is none or it
 * does not take e (ds__place_gpu), into L1 (admitted there when l1_force) and below. */
void ds__place_top(ds_cache *c, ds__shard *sh, ds__centry *e, int force, int l1_force) {
  if (!sh->pol[2] || !ds__place_gpu(c, sh, e, e->data, force)) ds__place_l1(c, sh, e, l1_force);
}

/* Takes e (in no tier and no tier's counters) out of the table and frees it. */
void ds__centry_unlink_free(ds_cache *c, ds__shard *sh, ds__centry *e) {
  ds__shard_unlink(sh, e);
  ds__centry_put(c, sh, e);
}

/* Moves the GPU entry e down: its bytes are copied back to host memory and it enters L1
 * (admitted) and below; when the copy fails it is dropped. */
void ds__evict_gpu(void *user, uint64_t key) {
  ds__shard *sh = user;
  ds_cache *c = sh->cache;
  ds__centry *e = (ds__centry *)(uintptr_t)key;
  sh->t[2].evictions++;
  uint8_t mem;
  void *host = ds__value_alloc(c, e->vlen, &mem);
  if (!host || ds__gpu_load(c->gpu, e->data, host, e->vlen) != DS_OK) {
    if (host) ds__value_free(c, host, mem);
    sh->t[2].failed++;
    ds__centry_drop(c, sh, e);
    return;
  }
  ds__tier_sub(sh, e);
  ds__gpu_free(c->gpu, e->data);
  e->data = host;
  e->mem = mem;
  e->tier = 0;
  ds__place_l1(c, sh, e, 1);
}

/* An L1 hit with a GPU tier: e (in L1's policy, not held) moves up. */
void ds__promote_l1(ds_cache *c, ds__shard *sh, ds__centry *e) {
  ds__policy_remove(sh->pol[0], (uintptr_t)e);
  ds__tier_sub(sh, e);
  ds__store_relaxed(&e->pend, 0);
  ds__place_top(c, sh, e, 0, 1);
}

uint32_t ds__pending_l1(void *user, uint64_t key) {
  (void)user;
  ds__centry *e = (ds__centry *)(uintptr_t)key;
  uint32_t k = ds__load_relaxed(&e->pend);
  ds__store_relaxed(&e->pend, 0);
  return k;
}

/* Makes the L2 entry e hold the decoded value plain (from ds__value_alloc, which said mem),
 * keeping its encoding (e leaves L2's counters; tier 0 until placed). */
void ds__centry_adopt_plain(ds__shard *sh, ds__centry *e, void *plain, uint8_t mem) {
  ds__tier_sub(sh, e);
  ds__centry_cold *k = ds__cold(e);
  k->keep = e->data; /* encoded data is always ours (ds__alloc), never an owned value */
  k->keep_len = k->slen;
  k->keep_enc = k->enc;
  e->data = plain;
  e->mem = mem;
  k->slen = e->vlen;
  k->enc = 0;
  e->tier = 0;
}

/* Decodes an L2 entry (in no policy) back to plain bytes in place, keeping the encoding. */
ds_status ds__centry_decode(ds_cache *c, ds__shard *sh, ds__centry *e) {
  uint8_t mem;
  void *plain = ds__value_alloc(c, e->vlen, &mem);
  if (!plain) return DS_ERR_NO_MEMORY;
  ds__centry_cold *k = ds__cold(e);
  ds_status st = ds__codec_decode(c->ctx, k->enc, e->data, k->slen, plain, e->vlen);
  if (st != DS_OK) {
    ds__value_free(c, plain, mem);
    return st;
  }
  ds__centry_adopt_plain(sh, e, plain, mem);
  return DS_OK;
}

/* ---- holds (pins, references to L2 values and prefetch keep an entry out of its policy, so
 * it is not evicted; zero-copy references to L1 values count in refs instead) ---- */
void ds__centry_hold(ds__shard *sh, ds__centry *e) {
  if (ds__cold(e)->holds++ == 0 && sh->pol[e->tier - 1])
    ds__policy_remove(sh->pol[e->tier - 1], (uintptr_t)e);
}

void ds__centry_unhold(ds_cache *c, ds__shard *sh, ds__centry *e) {
  if (--ds__cold(e)->holds > 0) return;
  if (e->dead) {
    ds__zombie_unlink(sh, e);
    ds__centry_put(c, sh, e);
    return;
  }
  if (e->tier == 1) {
    ds__tier_sub(sh, e);
    ds__place_l1(c, sh, e, 1);
  } else if (e->tier == 3) {
    sh->pol[2]->force = 1;
    int r = ds__policy_insert(sh->pol[2], (uintptr_t)e, (uint32_t)ds__centry_weight(e), -1);
    sh->pol[2]->force = 0;
    if (r == 1) e->pnode = sh->pol[2]->last_node;
    else ds__evict_gpu(sh, (uintptr_t)e);
  } else if (ds__policy_insert(sh->pol[1], (uintptr_t)e, (uint32_t)ds__centry_weight(e), -1) != 1) {
    ds__centry_drop(c, sh, e);
  } else {
    e->pnode = sh->pol[1]->last_node;
  }
}

/* Hides e from lookups; frees it now, or at the last release when references remain. */
void ds__centry_kill(ds_cache *c, ds__shard *sh, ds__centry *e) {
  ds__cold(e)->holds -= ds__cold(e)->pins;
  ds__cold(e)->pins = 0;
  if (ds__cold(e)->holds == 0) {
    if (e->tier) ds__policy_remove(sh->pol[e->tier - 1], (uintptr_t)e);
    ds__centry_drop(c, sh, e);
    return;
  }
  /* still held (a reference to a value decoded from L2, or prefetch): out of the table and
   * the tier counters; a zombie (counted as one, and freed by destroy) until the last unhold */
  ds__tier_sub(sh, e);
  ds__shard_unlink(sh, e);
  e->dead = 1;
  ds__zombie_link(sh, e);
}

/* ---- write sections (see ds__rslot) ---- */
void ds__shard_lock(ds__shard *sh) {
  pthread_mutex_lock(&sh->mu);
  ds__store_seq_cst(&sh->writer, 1);
  /* seq_cst on both sides (Dekker): a reader either sees the flag or is seen here */
  for (uint32_t i = 0; i < DS__RSLOTS; i++)
    for (unsigned spin = 0; ds__load_seq_cst(&sh->rs[i * sh->rs_stride].word) & DS__RS_ACTIVE;
         spin++)
      if (spin > 64) sched_yield(); /* a reader preempted inside its section */
}

void ds__shard_unlock(ds__shard *sh) {
  ds__store_seq_cst(&sh->writer, 0);
  pthread_mutex_unlock(&sh->mu);
}

/* ---- latency histogram (log2 buckets of ns) ---- */
int ds__lat_bucket(uint64_t ns) {
  int b = 0;
  while (b < 63 && (ns >> (b + 1))) b++;
  return b;
}

void ds__lat_record(ds__tier_counters *t, uint64_t ns) { t->lat[ds__lat_bucket(ns)]++; }
