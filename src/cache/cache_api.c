/* The public calls of the tiered cache: argument checks, shard locking, and the get paths
 * (GPU hit, L1 hit, L2 hit with promotion, references). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "disk.h"

#define DS__CACHE_MAX_KEY 65535u

static ds_status ds__cache_check(ds_cache *c, const void *key, size_t klen) {
  if (!c) return ds__error(NULL, DS_ERR_INVALID_ARG, "cache", "cache is NULL");
  if (!key || klen == 0 || klen > DS__CACHE_MAX_KEY)
    return ds__error(c->ctx, DS_ERR_INVALID_ARG, "cache",
                     "key must be 1..65535 bytes (got %s, %zu bytes)", key ? "key" : "NULL",
                     klen);
  return DS_OK;
}

/* ds_cache_options up to prefetch_depth: the size before the GPU tier's fields */
#define DS__CACHE_OPTIONS_V1 (offsetof(ds_cache_options, prefetch_depth) + sizeof(uint32_t))

static ds_status ds__cache_check_opts(ds_context *ctx, const ds_cache_options *o) {
  if (o->gpu_device < -1 || o->gpu_device > 63)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "gpu_device %d is not in -1..63",
                     (int)o->gpu_device);
  if (o->codec < DS_CACHE_CODEC_LZ4 || o->codec > DS_CACHE_CODEC_NONE)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "unknown codec %d", (int)o->codec);
  if (o->zstd_level < 1 || o->zstd_level > 19)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "zstd_level %d is not in 1..19",
                     (int)o->zstd_level);
  if (o->shards > 256 || (o->shards & (o->shards - 1)))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "shards %u is not a power of two <= 256",
                     o->shards);
  if (o->prefetch_depth > 16)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "prefetch_depth %u is not in 0..16",
                     o->prefetch_depth);
  if (o->flags & ~(DS_CACHE_SHUFFLE | DS_CACHE_LOSSY_BF16))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "unknown flags 0x%x", o->flags);
  const char *pol = o->policy ? o->policy : "lruk+";
  if (ds__policy_is_oracle(pol))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache",
                     "policy '%s' needs the future and only runs in cache_sim", pol);
  return DS_OK;
}

static const char *const ds__stat_names[8] = {"bytes",     "entries",  "hits",     "misses",
                                              "evictions", "rejected", "ratio_x1000", "raw_bytes"};

static void ds__cache_register_stats(ds_cache *c) {
  for (int t = 0; t < (c->disk ? 1 : c->gpu ? 3 : 2); t++)
    for (int k = 0; k < 8; k++) {
      char name[64];
      if (t == 2) snprintf(name, sizeof name, "cache.gpu.%s", ds__stat_names[k]);
      else snprintf(name, sizeof name, "cache.l%d.%s", c->disk ? 3 : t + 1, ds__stat_names[k]);
      c->stat_ids[t][k] = ds__stat_register(c->ctx, name, k >= 2 && k <= 5 ? DS_STAT_COUNTER
                                                                           : DS_STAT_GAUGE);
    }
  if (c->disk) return;
  c->zombie_ids[0] = ds__stat_register(c->ctx, "cache.l1.zombie_bytes", DS_STAT_GAUGE);
  c->zombie_ids[1] = ds__stat_register(c->ctx, "cache.l1.zombies", DS_STAT_GAUGE);
  c->arena_id = ds__stat_register(c->ctx, "cache.l1.arena_bytes", DS_STAT_GAUGE);
}

/* A zeroed cache struct of size bytes, 64-byte aligned (its shards start cache lines). */
static ds_cache *ds__cache_alloc(ds_context *ctx, size_t size) {
  char *mem = ds__calloc(ctx, 1, size + 64);
  if (!mem) return NULL;
  ds_cache *c = (ds_cache *)(mem + (64 - (uintptr_t)mem % 64) % 64);
  c->mem = mem;
  return c;
}

static ds_status ds__shard_init(ds_cache *c, ds__shard *sh, const ds_cache_options *o) {
  sh->cache = c;
  sh->nb = 64;
  sh->buckets = ds__calloc(c->ctx, sh->nb, sizeof *sh->buckets);
  if (!sh->buckets) return DS_ERR_NO_MEMORY;
  pthread_mutex_init(&sh->mu, NULL);
  sh->t = ds__calloc(c->ctx, 3, sizeof *sh->t);
  if (!sh->t) return DS_ERR_NO_MEMORY;
  /* reader slots on whole cache lines of their own */
  sh->rs = (ds__rslot *)(((uintptr_t)c->rs_mem + 63) & ~(uintptr_t)63) + (sh - c->shards);
  sh->rs_stride = c->nshards;
  const char *pol = o->policy ? o->policy : "lruk+";
  uint64_t budget[3] = {o->l1_bytes / c->nshards, o->l2_bytes / c->nshards, c->shard_cap[2]};
  ds__policy_evict_fn fn[3] = {ds__evict_l1, ds__evict_l2, ds__evict_gpu};
  for (int t = 0; t < 3; t++) {
    if (!budget[t]) continue;
    /* sketches and ghosts are sized for 4 KiB entries on average */
    ds_status st = ds__policy_create(&sh->pol[t], c->ctx, pol, budget[t], budget[t] / 4096 + 64,
                                     fn[t], sh);
    if (st != DS_OK) return st;
  }
  if (sh->pol[0] && sh->pol[0]->ops->lazy) {
    sh->pol[0]->pending_fn = ds__pending_l1;
    sh->lazy_l1 = 1;
  }
  sh->fast = sh->lazy_l1 && !sh->pol[2];
  return DS_OK;
}

/* The name of an enumerated cache tunable's current value ("lruk+", "zstd", ...). */
static const char *ds__cache_param_name(ds_context *ctx, ds_param p) {
  const ds__param_def *d = ds__param_find(p, NULL);
  return d->value_names[ds__param(ctx, p) - d->min];
}

/* The L1 value arena (cache_l1_huge_pages): mapped up to 1.25x the L1 budget, so that slot
 * rounding (at most 20%) and partly used chunks fit; none for an L1 under 2 MiB, except with
 * "always" (up to 8 MiB then: tests run small caches through the arena). */
static ds_status ds__cache_arena_init(ds_cache *c, uint64_t l1_bytes) {
  int64_t mode = ds__param(c->ctx, DS_PARAM_CACHE_L1_HUGE_PAGES);
  ds__stat_add(c->ctx, c->arena_id, 0); /* known from now on (0 unless some cache maps) */
  uint64_t cap = l1_bytes + l1_bytes / 4;
  if (mode == 2 && cap < 4 * DS__ARENA_CHUNK) cap = 4 * DS__ARENA_CHUNK;
  if (!l1_bytes || !mode || (mode == 1 && !ds__alloc_is_default(c->ctx)) ||
      cap < DS__ARENA_CHUNK)
    return DS_OK;
  c->arena = ds__arena_create(c->ctx, cap, c->arena_id);
  return c->arena ? DS_OK : DS_ERR_NO_MEMORY;
}

/* Options of a cache created with NULL options: the context's cache_* tunables. */
static void ds__cache_opts_from_ctx(ds_context *ctx, ds_cache_options *o) {
  o->l1_bytes = (uint64_t)ds__param(ctx, DS_PARAM_CACHE_L1_BYTES);
  o->l2_bytes = (uint64_t)ds__param(ctx, DS_PARAM_CACHE_L2_BYTES);
  o->shards = (uint32_t)ds__param(ctx, DS_PARAM_CACHE_SHARDS);
  o->codec = (int32_t)ds__param(ctx, DS_PARAM_CACHE_CODEC);
  o->zstd_level = (int32_t)ds__param(ctx, DS_PARAM_CACHE_ZSTD_LEVEL);
  o->prefetch_depth = (uint32_t)ds__param(ctx, DS_PARAM_CACHE_PREFETCH_DEPTH);
  o->gpu_bytes = (uint64_t)ds__param(ctx, DS_PARAM_CACHE_GPU_BYTES);
  o->gpu_device = (int32_t)ds__param(ctx, DS_PARAM_CACHE_GPU_DEVICE);
}

/* Copies the caller's options: the current struct, or one from before the GPU tier's fields
 * (which then keep their defaults). */
static ds_status ds__cache_copy_opts(ds_context *ctx, const ds_cache_options *opts,
                                    ds_cache_options *o) {
  if (opts->struct_size != sizeof *o && opts->struct_size != DS__CACHE_OPTIONS_V1)
    return ds__error(ctx, DS_ERR_ABI, "cache", "ds_cache_options.struct_size %u is unknown",
                     opts->struct_size);
  memcpy(o, opts, opts->struct_size);
  o->struct_size = sizeof *o;
  return DS_OK;
}

ds_status ds_cache_create(ds_cache **out, ds_context *ctx, const ds_cache_options *opts) {
  if (!out) return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "out is NULL");
  *out = NULL;
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "cache", "context is NULL");
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  ds_status st = opts ? ds__cache_copy_opts(ctx, opts, &o) : DS_OK;
  if (st != DS_OK) return st;
  if (!opts) ds__cache_opts_from_ctx(ctx, &o);
  if (!o.policy) o.policy = ds__cache_param_name(ctx, DS_PARAM_CACHE_POLICY);
  st = ds__cache_check_opts(ctx, &o);
  if (st != DS_OK) return st;
  ds__cache_gpu *gpu = NULL;
  if (o.gpu_bytes && (st = ds__gpu_open(&gpu, ctx, o.gpu_device)) != DS_OK) return st;
  uint32_t n = o.shards;
  if (!n) { /* up to 16 shards, each with at least 4 MiB of the larger tier's budget */
    uint64_t big = o.l1_bytes > o.l2_bytes ? o.l1_bytes : o.l2_bytes;
    for (n = 16; n > 1 && big / n < (4u << 20); n /= 2) {
    }
  }
  ds_cache *c = ds__cache_alloc(ctx, sizeof *c + n * sizeof(ds__shard));
  if (!c) {
    ds__gpu_close(gpu);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory creating a cache");
  }
  c->ctx = ctx;
  pthread_mutex_init(&c->refs_mu, NULL);
  c->nshards = n;
  c->gpu = gpu;
  c->shard_cap[2] = gpu ? o.gpu_bytes / n : 0;
  /* inline values only without L2: an entry moved down would keep the raw bytes besides its
   * encoding, uncounted */
  c->inline_max = o.l2_bytes ? 0 : 256;
  c->shard_cap[0] = o.l1_bytes / n;
  c->shard_cap[1] = o.l2_bytes / n;
  c->codec.zstd = o.codec == DS_CACHE_CODEC_ZSTD;
  c->codec.none = o.codec == DS_CACHE_CODEC_NONE;
  c->codec.level = o.zstd_level;
  c->codec.shuffle = (o.flags & DS_CACHE_SHUFFLE) != 0;
  c->codec.bf16 = (o.flags & DS_CACHE_LOSSY_BF16) != 0;
  c->rlat = ds__calloc(ctx, DS__RSLOTS, sizeof *c->rlat);
  c->rs_mem = ds__calloc(ctx, (size_t)DS__RSLOTS * n + 1, sizeof(ds__rslot));
  if (!c->rlat || !c->rs_mem) {
    c->nshards = 0;
    ds_cache_destroy(c);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory creating a cache");
  }
  for (uint32_t i = 0; i < n; i++) {
    st = ds__shard_init(c, &c->shards[i], &o);
    if (st != DS_OK) {
      c->nshards = i + 1;
      ds_cache_destroy(c);
      if (st == DS_ERR_NO_MEMORY)
        return ds__error(ctx, st, "cache", "out of memory creating a cache");
      return st; /* the policy reported it */
    }
  }
  if (ds__prefetch_create(c, o.prefetch_depth) != DS_OK) {
    ds_cache_destroy(c);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory creating a cache");
  }
  c->pf_learn = o.prefetch_depth > 0;
  ds__cache_register_stats(c);
  if (ds__cache_arena_init(c, o.l1_bytes) != DS_OK) {
    ds_cache_destroy(c);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory creating a cache");
  }
  *out = c;
  return DS_OK;
}

/* Frees the chain from e on; returns the zero-copy references still outstanding on it. */
static uint64_t ds__cache_free_chain(ds_cache *c, ds__centry *e) {
  uint64_t refs = 0;
  for (ds__centry *nx; e; e = nx) {
    nx = e->next;
    refs += (uint64_t)(ds__load(&e->refs) & DS__REF_COUNT);
    ds__centry_free(c, e);
  }
  return refs;
}

/* Frees the allocated references never released (their host copies; the entries they hold are
 * zombies, freed with the shards); returns how many there were. */
static uint64_t ds__cache_free_refs(ds_cache *c) {
  uint64_t n = 0;
  for (ds_cache_ref *r = c->refs, *nx; r; r = nx, n++) {
    nx = r->next;
    ds__free(c->ctx, r->copy);
    ds__free(c->ctx, r);
  }
  c->refs = NULL;
  pthread_mutex_destroy(&c->refs_mu);
  return n;
}

void ds_cache_destroy(ds_cache *c) {
  if (!c) return;
  ds__prefetch_destroy(c);
  ds__disk_close(c->disk);
  uint64_t refs = ds__cache_free_refs(c);
  for (uint32_t i = 0; i < c->nshards; i++) {
    ds__shard *sh = &c->shards[i];
    if (!sh->buckets) continue;
    for (size_t b = 0; b < sh->nb; b++) refs += ds__cache_free_chain(c, sh->buckets[b]);
    refs += ds__cache_free_chain(c, sh->zombies);
    for (int t = 0; t < 3; t++) ds__policy_destroy(sh->pol[t]);
    ds__free(c->ctx, sh->buckets);
    ds__free(c->ctx, sh->t);
    pthread_mutex_destroy(&sh->mu);
  }
  if (refs) /* their values are freed with the cache: a later release is undefined */
    ds__log(c->ctx, DS_LOG_WARN, "cache",
            "cache destroyed with %llu references outstanding (their values are freed, the "
            "references invalid)",
            (unsigned long long)refs);
  uint64_t live = ds__arena_destroy(c->arena); /* after the entries and values in it */
  if (live) /* every entry and zombie was freed above: a slot left is a leak */
    ds__log(c->ctx, DS_LOG_WARN, "cache", "%llu L1 arena slots still allocated at destroy",
            (unsigned long long)live);
  ds__gpu_close(c->gpu);
  ds__free(c->ctx, c->rlat);
  ds__free(c->ctx, c->rs_mem);
  ds__free(c->ctx, c->mem);
}

/* A put the GPU tier did not take (e linked, in no tier, no value yet): copies src into a
 * host value and places e in L1 and below. Called with sh->mu locked; unlocks it. */
static ds_status ds__cache_insert_host(ds_cache *c, ds__shard *sh, ds__centry *e,
                                       const void *src) {
  e->data = ds__value_alloc(c, e->vlen, &e->mem);
  if (!e->data) {
    ds__centry_unlink_free(c, sh, e);
    ds__shard_unlock(sh);
    return ds__error(c->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory for a value");
  }
  if (e->vlen) memcpy(e->data, src, e->vlen);
  ds__place_l1(c, sh, e, 1);
  ds__shard_unlock(sh);
  return DS_OK;
}

/* A zeroed entry of size bytes (from its hot fields on) after its cold part, owned by the
 * cache. It starts a cache line, so a hit on a key of up to 16 bytes reads one line for the
 * lookup and the next for an inline value of up to 64 bytes: in the L1 arena (whose slots of
 * 64-byte multiples start lines; the entries then share huge pages too), or on the heap with
 * up to 56 bytes more. NULL when out of memory. */
_Static_assert(sizeof(ds__centry_cold) % 64 == 0,
               "an arena slot (64-byte aligned, a multiple of 64) holds an entry unshifted");

static ds__centry *ds__centry_new(ds_cache *c, size_t size) {
  size_t n = sizeof(ds__centry_cold) + size;
  uint8_t emem = DS__MEM_ARENA;
  char *mem = ds__arena_alloc(c->arena, (n + 63) & ~(size_t)63);
  if (!mem) {
    emem = DS__MEM_HEAP;
    mem = ds__alloc(c->ctx, n + 56);
    if (!mem) return NULL;
  }
  size_t shift = (64 - ((uintptr_t)mem + sizeof(ds__centry_cold)) % 64) % 64;
  ds__centry_cold *cold = (ds__centry_cold *)(mem + shift);
  memset(cold, 0, sizeof *cold + sizeof(ds__centry));
  ds__centry *e = (ds__centry *)(cold + 1);
  e->shift = (uint8_t)(shift / 8);
  e->emem = emem;
  ds__store_relaxed(&e->refs, DS__REF_OWN);
  return e;
}

/* Links a new entry (replacing any old one) and places it in L1 (or below). A copying put
 * (src != NULL) of a small value stores it in the entry's own allocation, after the key: one
 * allocation per put and one cache-line run per hit. */
static ds_status ds__cache_insert(ds_cache *c, const void *key, size_t klen, const void *src,
                                  void *data, size_t vlen, ds_cache_free_fn fn, void *user) {
  uint64_t w = (uint64_t)klen + vlen, cap = 0;
  for (int t = 0; t < 3; t++) cap = c->shard_cap[t] > cap ? c->shard_cap[t] : cap;
  if (w > cap)
    return ds__error(c->ctx, DS_ERR_FULL, "cache",
                     "value of %zu bytes exceeds the per-shard budget of every tier "
                     "(%llu bytes; budgets are split over %u shards)",
                     vlen, (unsigned long long)cap, c->nshards);
  int inl = src && vlen <= c->inline_max;
  /* with a GPU tier, a copying put goes from the caller's bytes straight to the device; a host
   * copy is made only when the device does not take the value */
  int direct = src && !inl && c->gpu;
  /* an inline value starts 16-byte aligned from the (16-byte aligned) allocation */
  size_t voff = (offsetof(ds__centry, key) + klen + 15) & ~(size_t)15;
  size_t size = inl ? voff + vlen : offsetof(ds__centry, key) + klen;
  if (size < sizeof(ds__centry)) size = sizeof(ds__centry);
  ds__centry *e = ds__centry_new(c, size);
  if (!e) return ds__error(c->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory for an entry");
  memcpy(e->key, key, klen);
  uint8_t where = inl ? DS__MEM_INLINE : DS__MEM_HEAP;
  if (src && !inl && !direct) {
    data = ds__value_alloc(c, vlen, &where);
    if (!data) {
      ds__centry_free(c, e);
      return ds__error(c->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory for a value");
    }
  }
  if (inl) data = (char *)e + voff;
  if (src && vlen && !direct) memcpy(data, src, vlen);
  e->mem = where;
  e->klen = (uint16_t)klen;
  e->hash = ds__cache_hash(key, klen);
  e->data = data;
  e->vlen = ds__cold(e)->slen = vlen;
  ds__cold(e)->free_fn = fn;
  ds__cold(e)->free_user = user;
  ds__shard *sh = ds__cache_shard(c, e->hash);
  ds__shard_lock(sh);
  ds__centry *old = ds__shard_find(sh, e->hash, key, klen);
  if (old) ds__centry_kill(c, sh, old);
  ds__shard_link(c, sh, e);
  if (direct && !ds__place_gpu(c, sh, e, src, 1))
    return ds__cache_insert_host(c, sh, e, src);
  if (!direct) ds__place_top(c, sh, e, 1, 1);
  ds__shard_unlock(sh);
  return DS_OK;
}

ds_status ds_cache_put(ds_cache *c, const void *key, size_t klen, const void *val, size_t vlen) {
  ds_status st = ds__cache_check(c, key, klen);
  if (st != DS_OK) return st;
  if ((!val && vlen) || vlen >= UINT32_MAX - DS__CACHE_MAX_KEY)
    return ds__error(c->ctx, DS_ERR_INVALID_ARG, "cache", "value is NULL or too large (%zu)",
                     vlen);
  if (c->disk) return ds__disk_put(c->disk, key, klen, val, vlen);
  return ds__cache_insert(c, key, klen, val ? val : "", NULL, vlen, NULL, NULL);
}

ds_status ds_cache_put_owned(ds_cache *c, const void *key, size_t klen, void *val, size_t vlen,
                             ds_cache_free_fn free_fn, void *user) {
  ds_status st = ds__cache_check(c, key, klen);
  if (st != DS_OK) return st;
  if (!val || !free_fn || vlen >= UINT32_MAX - DS__CACHE_MAX_KEY)
    return ds__error(c->ctx, DS_ERR_INVALID_ARG, "cache",
                     "owned value needs a buffer, a free function and < 4 GiB");
  if (c->disk) { /* written through: the buffer is not needed afterwards */
    st = ds__disk_put(c->disk, key, klen, val, vlen);
    if (st == DS_OK) free_fn(user, val);
    return st;
  }
  return ds__cache_insert(c, key, klen, NULL, val, vlen, free_fn, user);
}

/* An L2 entry found by a get: decoded in place and moved up to L1 (when it is not held). */
static ds_status ds__cache_get_l2(ds_cache *c, ds__shard *sh, ds__centry *e, void *buf) {
  if (e->vlen == 0) return DS_OK;
  if (ds__cold(e)->holds || !sh->pol[0]) {
    ds__centry_cold *k = ds__cold(e);
    ds_status st = ds__codec_decode(c->ctx, k->enc, e->data, k->slen, buf, e->vlen);
    if (st == DS_OK && !ds__cold(e)->holds)
      ds__policy_touch_node(sh->pol[1], e->pnode, (uintptr_t)e, -1);
    return st;
  }
  ds__policy_remove(sh->pol[1], (uintptr_t)e);
  ds_status st = ds__centry_decode(c, sh, e);
  if (st != DS_OK) {
    ds__centry_kill(c, sh, e); /* undecodable: drop it (it is in no policy now) */
    return st;
  }
  if (e->vlen) memcpy(buf, e->data, e->vlen);
  ds__place_top(c, sh, e, 0, 0); /* a promotion competes for admission; declined, it goes back */
  return DS_OK;
}

/* A GPU entry found by a get: copied from the device. A failed copy drops the entry (its
 * device memory is not trusted any more). */
static ds_status ds__cache_get_gpu(ds_cache *c, ds__shard *sh, ds__centry *e, void *buf) {
  ds_status st = ds__gpu_load(c->gpu, e->data, buf, e->vlen);
  if (st != DS_OK) {
    sh->t[2].failed++;
    ds__centry_kill(c, sh, e);
    return st;
  }
  if (!ds__cold(e)->holds) ds__policy_touch_node(sh->pol[2], e->pnode, (uintptr_t)e, -1);
  return DS_OK;
}

/* Counts a hit on the L1 entry e for a lazy L1 policy (lruk+): only in the entry, whose cache
 * lines the lookup has just read, and only while the count changes (it saturates at
 * DS__PEND_MAX), so a hot key's line is not rewritten on every hit. The policy reads the
 * count back (and feeds its sketch) when the entry reaches a list tail, once per pass. */
static inline void ds__cache_count_hit(ds__centry *e) {
  uint8_t p = ds__load_relaxed(&e->pend);
  if (p < DS__PEND_MAX) ds__store_relaxed(&e->pend, (uint8_t)(p + 1));
}

/* A hit on the L1 entry e (in L1's policy), under the shard lock. */
static inline void ds__cache_touch_l1(ds__shard *sh, ds__centry *e) {
  if (sh->lazy_l1) ds__cache_count_hit(e);
  else ds__policy_touch_node(sh->pol[0], e->pnode, (uintptr_t)e, -1);
}

/* The calling thread's reader slot (threads numbered in order of their first get). */
static ds__atomic_int ds__cache_threads;
static _Thread_local uint32_t ds__tl_slot = UINT32_MAX;
static _Thread_local uint32_t ds__tl_sample;

static inline uint32_t ds__cache_slot(void) {
  if (ds__tl_slot == UINT32_MAX)
    ds__tl_slot = (uint32_t)ds__fetch_add_relaxed(&ds__cache_threads, 1) % DS__RSLOTS;
  return ds__tl_slot;
}

/* Values up to this size are copied out inside a read section (a writer waits for it). */
#define DS__FAST_MAX (64u << 10)

/* The lock-free L1 hit (see ds__rslot): with a lazy L1 policy and no GPU tier (whose hits
 * move entries), a hit on an L1 value of up to DS__FAST_MAX bytes is looked up, copied and
 * counted without the shard lock. Returns 0 when the locked path must run instead (a miss, a
 * lower tier, a writer inside, a value too large); else 1 with *st set. */
static int ds__cache_get_fast(ds_cache *c, ds__shard *sh, uint64_t h, const void *key,
                              size_t klen, void *buf, size_t cap, size_t *len, ds_status *st) {
  if (!sh->fast) return 0;
  uint32_t slot = ds__cache_slot();
  ds__rslot *rs = &sh->rs[slot * sh->rs_stride];
  ds__fetch_add_seq_cst(&rs->word, 1);
  if (ds__load_seq_cst(&sh->writer)) {
    ds__fetch_sub(&rs->word, 1);
    return 0;
  }
  int timed = (ds__tl_sample++ & 63) == 0;
  uint64_t t0 = timed ? ds__now_ns() : 0;
  ds__centry *e = ds__shard_find(sh, h, key, klen);
  if (!e || e->tier != 1 || e->vlen > DS__FAST_MAX) {
    ds__fetch_sub(&rs->word, 1);
    return 0;
  }
  *len = e->vlen;
  *st = cap < e->vlen ? DS_ERR_FULL : DS_OK;
  if (*st == DS_OK) {
    if (e->vlen) memcpy(buf, e->data, e->vlen);
    ds__cache_count_hit(e); /* a held entry's count is reset when it is placed again */
  }
  /* leaves the section and counts the hit in one step (a full buffer is no hit, as locked) */
  ds__fetch_add(&rs->word, (*st == DS_OK ? 1ull << 16 : 0) - 1);
  if (timed && *st == DS_OK)
    ds__fetch_add_relaxed(&c->rlat[slot].lat[ds__lat_bucket(ds__now_ns() - t0)], 1);
  return 1;
}

static ds_status ds__cache_get(ds_cache *c, uint64_t stream, const void *key, size_t klen,
                               void *buf, size_t cap, size_t *len) {
  ds_status st = ds__cache_check(c, key, klen);
  if (st != DS_OK) return st;
  if (!len || (!buf && cap))
    return ds__error(c->ctx, DS_ERR_INVALID_ARG, "cache", "len is NULL or buf NULL with cap");
  if (c->disk) return ds__disk_get(c->disk, key, klen, buf, cap, len, NULL);
  uint64_t h = ds__cache_hash(key, klen);
  ds__shard *sh = ds__cache_shard(c, h);
  if (ds__cache_get_fast(c, sh, h, key, klen, buf, cap, len, &st)) {
    if (c->pf_learn) ds__prefetch_observe(c, stream, key, klen, h);
    return st;
  }
  ds__shard_lock(sh);
  int timed = (sh->sample++ & 63) == 0;
  uint64_t t0 = timed ? ds__now_ns() : 0;
  ds__centry *e = ds__shard_find(sh, h, key, klen);
  if (!e) {
    sh->t[0].misses++;
    sh->t[1].misses++;
    sh->t[2].misses++;
    ds__shard_unlock(sh);
    if (c->pf_learn) ds__prefetch_observe(c, stream, key, klen, h);
    return DS_ERR_NOT_FOUND;
  }
  *len = e->vlen;
  if (cap < e->vlen) {
    ds__shard_unlock(sh);
    return DS_ERR_FULL;
  }
  int tier = e->tier;
  if (tier == 1) {
    if (e->vlen) memcpy(buf, e->data, e->vlen);
    sh->t[0].hits++;
    if (sh->pol[2]) {
      sh->t[2].misses++;
      if (!ds__cold(e)->holds && !ds__centry_referenced(e)) ds__promote_l1(c, sh, e);
    } else if (!ds__cold(e)->holds) {
      ds__cache_touch_l1(sh, e);
    }
  } else if (tier == 3) {
    sh->t[2].hits++;
    st = ds__cache_get_gpu(c, sh, e, buf);
  } else {
    sh->t[0].misses++;
    sh->t[1].hits++;
    sh->t[2].misses++;
    st = ds__cache_get_l2(c, sh, e, buf);
  }
  if (timed) ds__lat_record(&sh->t[tier - 1], ds__now_ns() - t0);
  ds__shard_unlock(sh);
  if (c->pf_learn) ds__prefetch_observe(c, stream, key, klen, h);
  if (st == DS_ERR_CORRUPT)
    return ds__error(c->ctx, st, "cache", "L2 value failed to decompress (dropped)");
  if (tier == 3 && st != DS_OK) return st; /* reported by the GPU glue */
  if (st != DS_OK) return ds__error(c->ctx, st, "cache", "out of memory decoding an L2 value");
  return DS_OK;
}

ds_status ds_cache_get(ds_cache *c, const void *key, size_t klen, void *buf, size_t cap,
                       size_t *len) {
  return ds__cache_get(c, 0, key, klen, buf, cap, len);
}

ds_status ds_cache_get_stream(ds_cache *c, uint64_t stream, const void *key, size_t klen,
                              void *buf, size_t cap, size_t *len) {
  return ds__cache_get(c, stream, key, klen, buf, cap, len);
}

/* An allocated reference, listed in c->refs so that destroy frees one never released. */
ds_cache_ref *ds__cache_ref_new(ds_cache *c) {
  ds_cache_ref *r = ds__calloc(c->ctx, 1, sizeof *r);
  if (!r) return NULL;
  pthread_mutex_lock(&c->refs_mu);
  r->next = c->refs;
  if (c->refs) c->refs->prev = r;
  c->refs = r;
  pthread_mutex_unlock(&c->refs_mu);
  return r;
}

void ds__cache_ref_free(ds_cache *c, ds_cache_ref *r) {
  pthread_mutex_lock(&c->refs_mu);
  if (r->prev) r->prev->next = r->next;
  else c->refs = r->next;
  if (r->next) r->next->prev = r->prev;
  pthread_mutex_unlock(&c->refs_mu);
  ds__free(c->ctx, r->copy);
  ds__free(c->ctx, r);
}

/* A reference to an L1 value is the entry's address with bit 0 set (entries start a cache
 * line): no allocation. Other references (an L2 value decoded and held, a GPU value's host
 * copy, a persistent value read from disk) are an allocated ds_cache_ref. */
static inline ds_cache_ref *ds__ref_of(ds__centry *e) {
  return (ds_cache_ref *)((uintptr_t)e | 1u);
}

/* The lock-free zero-copy hit (see ds__cache_get_fast): the reference is counted in the entry
 * inside the read section, so a writer (which drains the section) sees it before it could let
 * go of the entry. Returns 0 when the locked path must run instead. */
static int ds__cache_ref_fast(ds__shard *sh, uint64_t h, const void *key, size_t klen,
                              const void **data, size_t *len, ds_cache_ref **ref) {
  if (!sh->fast) return 0;
  ds__rslot *rs = &sh->rs[ds__cache_slot() * sh->rs_stride];
  ds__fetch_add_seq_cst(&rs->word, 1);
  if (ds__load_seq_cst(&sh->writer)) {
    ds__fetch_sub(&rs->word, 1);
    return 0;
  }
  ds__centry *e = ds__shard_find(sh, h, key, klen);
  if (!e || e->tier != 1) {
    ds__fetch_sub(&rs->word, 1);
    return 0;
  }
  ds__fetch_add_relaxed(&e->refs, 1);
  *data = e->data;
  *len = e->vlen;
  ds__cache_count_hit(e); /* a held entry's count is reset when it is placed again */
  ds__fetch_add(&rs->word, (1ull << 16) - 1); /* leaves and counts the hit */
  *ref = ds__ref_of(e);
  return 1;
}

/* A reference to the L2 value e (in a write section): decoded in place and held as an L1
 * entry until release, when it enters L1's policy. */
static ds_status ds__cache_ref_l2(ds_cache *c, ds__shard *sh, ds__centry *e, ds_cache_ref *r) {
  sh->t[0].misses++;
  sh->t[1].hits++;
  if (!ds__cold(e)->holds) ds__policy_remove(sh->pol[1], (uintptr_t)e);
  ds_status st = ds__centry_decode(c, sh, e);
  if (st != DS_OK) {
    if (!ds__cold(e)->holds) ds__centry_kill(c, sh, e); /* undecodable and not pinned: drop it */
    return st;
  }
  e->tier = 1;
  ds__cold(e)->holds++;
  ds__tier_add(sh, e);
  r->e = e;
  r->sh = sh;
  return DS_OK;
}

/* The locked zero-copy get (any policy, GPU-tier caches, a writer inside, lower tiers). */
static ds_status ds__cache_ref_locked(ds_cache *c, ds__shard *sh, uint64_t h, const void *key,
                                      size_t klen, const void **data, size_t *len,
                                      ds_cache_ref **ref) {
  ds__shard_lock(sh);
  ds__centry *e = ds__shard_find(sh, h, key, klen);
  ds_status st = DS_OK;
  ds_cache_ref *r = NULL;
  if (!e) {
    sh->t[0].misses++;
    sh->t[1].misses++;
    sh->t[2].misses++;
    st = DS_ERR_NOT_FOUND;
  } else if (e->tier == 1) { /* stays in its policy (with a GPU tier: not promoted meanwhile) */
    sh->t[0].hits++;
    ds__fetch_add_relaxed(&e->refs, 1);
    if (!ds__cold(e)->holds) ds__cache_touch_l1(sh, e);
    *data = e->data;
    *len = e->vlen;
    *ref = ds__ref_of(e);
  } else if (!(r = ds__cache_ref_new(c))) {
    st = DS_ERR_NO_MEMORY;
  } else if (e->tier == 3) { /* device memory: the reference holds a host copy */
    sh->t[2].hits++;
    r->copy = ds__alloc(c->ctx, e->vlen ? e->vlen : 1);
    *len = e->vlen;
    st = r->copy ? ds__cache_get_gpu(c, sh, e, r->copy) : DS_ERR_NO_MEMORY;
    *data = r->copy;
  } else {
    st = ds__cache_ref_l2(c, sh, e, r);
    if (st == DS_OK) {
      *data = e->data;
      *len = e->vlen;
    }
  }
  ds__shard_unlock(sh);
  if (r && st == DS_OK) *ref = r;
  if (r && st != DS_OK) ds__cache_ref_free(c, r);
  if (st == DS_OK || st == DS_ERR_NOT_FOUND || st == DS_ERR_DEVICE || st == DS_ERR_NO_SPACE)
    return st;
  if (st == DS_ERR_NO_MEMORY)
    return ds__error(c->ctx, st, "cache", "out of memory for a reference");
  return ds__error(c->ctx, st, "cache", "could not decode an L2 value");
}

ds_status ds_cache_get_ref(ds_cache *c, const void *key, size_t klen, const void **data,
                           size_t *len, ds_cache_ref **ref) {
  ds_status st = ds__cache_check(c, key, klen);
  if (st != DS_OK) return st;
  if (!data || !len || !ref)
    return ds__error(c->ctx, DS_ERR_INVALID_ARG, "cache", "data, len and ref must be non-NULL");
  *ref = NULL;
  if (c->disk) {
    ds_cache_ref *r = ds__cache_ref_new(c);
    if (!r) return ds__error(c->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory for a reference");
    st = ds__disk_get(c->disk, key, klen, NULL, 0, len, &r->copy);
    if (st != DS_OK) {
      ds__cache_ref_free(c, r);
      return st;
    }
    *data = r->copy;
    *ref = r;
    return DS_OK;
  }
  uint64_t h = ds__cache_hash(key, klen);
  ds__shard *sh = ds__cache_shard(c, h);
  if (ds__cache_ref_fast(sh, h, key, klen, data, len, ref)) return DS_OK;
  return ds__cache_ref_locked(c, sh, h, key, klen, data, len, ref);
}

/* Drops one zero-copy reference to e; the last one of a zombie frees it. A count already at 0
 * (the entry still cached) is a release too many: refused, the count untouched. */
static ds_status ds__cache_release_l1(ds_cache *c, ds__centry *e) {
  ds__atomic_int *r = &e->refs;
  int old = ds__load_relaxed(r);
  do {
    if (!(old & DS__REF_COUNT))
      return ds__error(c->ctx, DS_ERR_STATE, "cache",
                       "release of a reference that was already released");
  } while (!ds__cas(r, &old, old - 1));
  if (old != 1) return DS_OK; /* others remain, or the cache still owns it */
  ds__shard *sh = ds__cache_shard(c, e->hash);
  pthread_mutex_lock(&sh->mu);
  ds__zombie_unlink(sh, e);
  pthread_mutex_unlock(&sh->mu);
  ds__centry_free(c, e);
  return DS_OK;
}

ds_status ds_cache_release(ds_cache *c, ds_cache_ref *ref) {
  if (!ref) return DS_OK;
  if (!c) return ds__error(NULL, DS_ERR_INVALID_ARG, "cache", "cache is NULL");
  if ((uintptr_t)ref & 1u) return ds__cache_release_l1(c, (ds__centry *)((uintptr_t)ref - 1u));
  if (!ref->copy) { /* a held L2 value */
    ds__shard_lock(ref->sh);
    ds__centry_unhold(c, ref->sh, ref->e);
    ds__shard_unlock(ref->sh);
  }
  ds__cache_ref_free(c, ref);
  return DS_OK;
}

int ds_cache_contains(ds_cache *c, const void *key, size_t klen) {
  if (!c || !key || klen == 0 || klen > DS__CACHE_MAX_KEY) return 0;
  if (c->disk) return ds__disk_contains(c->disk, key, klen);
  uint64_t h = ds__cache_hash(key, klen);
  ds__shard *sh = ds__cache_shard(c, h);
  pthread_mutex_lock(&sh->mu);
  int found = ds__shard_find(sh, h, key, klen) != NULL;
  pthread_mutex_unlock(&sh->mu);
  return found;
}

/* Runs op on the entry of key under its shard lock. */
static ds_status ds__cache_with_entry(ds_cache *c, const void *key, size_t klen, int op) {
  ds_status st = ds__cache_check(c, key, klen);
  if (st != DS_OK) return st;
  if (c->disk && op == 0) return ds__disk_remove(c->disk, key, klen);
  if (c->disk)
    return ds__error(c->ctx, DS_ERR_UNSUPPORTED, "cache", "a persistent cache has no pins");
  uint64_t h = ds__cache_hash(key, klen);
  ds__shard *sh = ds__cache_shard(c, h);
  ds__shard_lock(sh);
  ds__centry *e = ds__shard_find(sh, h, key, klen);
  if (!e) st = DS_ERR_NOT_FOUND;
  else if (op == 0) ds__centry_kill(c, sh, e);
  else if (op == 1) {
    ds__cold(e)->pins++;
    ds__centry_hold(sh, e);
  } else if (ds__cold(e)->pins == 0) {
    st = DS_ERR_STATE;
  } else {
    ds__cold(e)->pins--;
    ds__centry_unhold(c, sh, e);
  }
  ds__shard_unlock(sh);
  if (st == DS_ERR_STATE) return ds__error(c->ctx, st, "cache", "unpin of a key that is not pinned");
  return st;
}

ds_status ds_cache_remove(ds_cache *c, const void *key, size_t klen) {
  return ds__cache_with_entry(c, key, klen, 0);
}

ds_status ds_cache_pin(ds_cache *c, const void *key, size_t klen) {
  return ds__cache_with_entry(c, key, klen, 1);
}

ds_status ds_cache_unpin(ds_cache *c, const void *key, size_t klen) {
  return ds__cache_with_entry(c, key, klen, 2);
}

static void ds__cache_sum(ds_cache *c, int tier, ds__tier_counters *sum) {
  memset(sum, 0, sizeof *sum);
  for (uint32_t i = 0; i < c->nshards; i++) {
    ds__shard *sh = &c->shards[i];
    pthread_mutex_lock(&sh->mu);
    const ds__tier_counters *t = &sh->t[tier - 1];
    sum->bytes += t->bytes;
    sum->raw_bytes += t->raw_bytes;
    sum->key_bytes += t->key_bytes;
    sum->keep_bytes += t->keep_bytes;
    sum->entries += t->entries;
    sum->hits += t->hits;
    sum->misses += t->misses;
    sum->evictions += t->evictions;
    sum->rejected += t->rejected;
    sum->prefetched += t->prefetched;
    sum->failed += t->failed;
    for (int b = 0; b < 64; b++) sum->lat[b] += t->lat[b];
    pthread_mutex_unlock(&sh->mu);
    for (uint32_t r = 0; tier == 1 && r < DS__RSLOTS; r++) /* lock-free hits */
      sum->hits += ds__load_relaxed(&sh->rs[r * sh->rs_stride].word) >> 16;
  }
  for (uint32_t r = 0; tier == 1 && c->rlat && r < DS__RSLOTS; r++)
    for (int b = 0; b < 64; b++) sum->lat[b] += ds__load_relaxed(&c->rlat[r].lat[b]);
}

static double ds__lat_quantile(const ds__tier_counters *t, double q) {
  uint64_t n = 0, acc = 0;
  for (int b = 0; b < 64; b++) n += t->lat[b];
  if (!n) return 0;
  for (int b = 0; b < 64; b++) {
    acc += t->lat[b];
    if ((double)acc >= q * (double)n) return (double)(2ULL << (b < 62 ? b : 62));
  }
  return 0;
}

static void ds__cache_publish(ds_cache *c, int tier, const ds__tier_counters *s, double ratio) {
  const int *id = c->stat_ids[c->disk ? 0 : tier == DS_CACHE_GPU ? 2 : tier - 1];
  double v[8] = {(double)s->bytes,     (double)s->entries,  (double)s->hits,
                 (double)s->misses,    (double)s->evictions, (double)s->rejected,
                 ratio * 1000.0,       (double)s->raw_bytes};
  for (int k = 0; k < 8; k++) ds__stat_set(c->ctx, id[k], v[k]);
}

/* Zombies (values let go of while referenced, see ds__centry_put) are in no tier's bytes: they
 * do not count against L1's budget and are published apart. */
static void ds__cache_publish_zombies(ds_cache *c) {
  uint64_t bytes = 0, n = 0;
  for (uint32_t i = 0; i < c->nshards; i++) {
    ds__shard *sh = &c->shards[i];
    pthread_mutex_lock(&sh->mu);
    bytes += sh->zombie_bytes;
    n += sh->zombie_count;
    pthread_mutex_unlock(&sh->mu);
  }
  ds__stat_set(c->ctx, c->zombie_ids[0], (double)bytes);
  ds__stat_set(c->ctx, c->zombie_ids[1], (double)n);
}

ds_status ds_cache_stats(ds_cache *c, int tier, ds_cache_tier_stats *out) {
  if (!c || !out ||
      (c->disk ? tier != DS_CACHE_L3
               : tier != DS_CACHE_L1 && tier != DS_CACHE_L2 && (tier != DS_CACHE_GPU || !c->gpu)))
    return ds__error(c ? c->ctx : NULL, DS_ERR_INVALID_ARG, "cache",
                     "stats need a cache, an output and a tier it has (1 or 2; 4 with a GPU "
                     "tier; 3 if persistent)");
  if (out->struct_size != sizeof *out)
    return ds__error(c->ctx, DS_ERR_ABI, "cache", "ds_cache_tier_stats.struct_size %u is unknown",
                     out->struct_size);
  ds__tier_counters s;
  out->corrupt = out->io_errors = 0;
  if (c->disk) ds__disk_stats(c->disk, &s, &out->corrupt, &out->io_errors);
  else ds__cache_sum(c, tier == DS_CACHE_GPU ? 3 : tier, &s);
  if (tier == DS_CACHE_GPU) out->io_errors = s.failed;
  out->tier = (uint32_t)tier;
  out->bytes = s.bytes;
  out->raw_bytes = s.raw_bytes;
  out->entries = s.entries;
  out->hits = s.hits;
  out->misses = s.misses;
  out->evictions = s.evictions;
  out->rejected = s.rejected;
  out->prefetched = s.prefetched;
  uint64_t stored = s.bytes - s.key_bytes - s.keep_bytes;
  out->compression_ratio = stored ? (double)s.raw_bytes / (double)stored : 1.0;
  out->p50_ns = ds__lat_quantile(&s, 0.5);
  out->p99_ns = ds__lat_quantile(&s, 0.99);
  ds__cache_publish(c, tier, &s, out->compression_ratio);
  if (tier == DS_CACHE_L1 && !c->disk) ds__cache_publish_zombies(c);
  return DS_OK;
}

ds_status ds_cache_flush(ds_cache *c) {
  if (!c) return ds__error(NULL, DS_ERR_INVALID_ARG, "cache", "cache is NULL");
  if (c->disk) {
    ds_cache_tier_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    ds_status st = ds__disk_flush(c->disk);
    ds_cache_stats(c, DS_CACHE_L3, &s);
    return st;
  }
  for (uint32_t i = 0; i < c->nshards; i++) {
    ds__shard *sh = &c->shards[i];
    ds__shard_lock(sh);
    for (size_t b = 0; b < sh->nb; b++)
      for (ds__centry *e = sh->buckets[b], *nx; e; e = nx) {
        nx = e->next;
        if (!ds__cold(e)->holds && !ds__centry_referenced(e)) ds__centry_kill(c, sh, e);
      }
    ds__shard_unlock(sh);
  }
  for (int t = DS_CACHE_L1; t <= DS_CACHE_GPU; t++) {
    if (t == DS_CACHE_L3 || (t == DS_CACHE_GPU && !c->gpu)) continue;
    ds_cache_tier_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    ds_cache_stats(c, t, &s);
  }
  return DS_OK;
}

ds_status ds_cache_open_persistent_ex(ds_cache **out, ds_context *ctx, const char *path,
                                      const ds_cache_persist_options *opts) {
  if (!out) return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "out is NULL");
  *out = NULL;
  if (!ctx || !path || !opts)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "context, path and options are required");
  if (opts->struct_size != sizeof *opts)
    return ds__error(ctx, DS_ERR_ABI, "cache", "ds_cache_persist_options.struct_size %u is unknown",
                     opts->struct_size);
  if (opts->codec < DS_CACHE_CODEC_LZ4 || opts->codec > DS_CACHE_CODEC_NONE ||
      opts->zstd_level < 1 || opts->zstd_level > 19 ||
      (opts->durability != DS_CACHE_SYNC_EVERY_PUT && opts->durability != DS_CACHE_SYNC_BATCHED) ||
      opts->sync_interval_ms < 1 || opts->sync_interval_ms > 60000 || opts->max_bytes < (1u << 20))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache",
                     "persistent cache options out of range (codec %d, level %d, durability %d, "
                     "sync %u ms, max_bytes %llu: needs >= 1 MiB)",
                     (int)opts->codec, (int)opts->zstd_level, (int)opts->durability,
                     opts->sync_interval_ms, (unsigned long long)opts->max_bytes);
  ds_cache *c = ds__cache_alloc(ctx, sizeof *c);
  if (!c) return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory");
  c->ctx = ctx;
  pthread_mutex_init(&c->refs_mu, NULL);
  ds_status st = ds__disk_open(&c->disk, ctx, path, opts);
  if (st != DS_OK) {
    pthread_mutex_destroy(&c->refs_mu);
    ds__free(ctx, c->mem);
    return st;
  }
  ds__cache_register_stats(c);
  *out = c;
  return DS_OK;
}

ds_status ds_cache_open_persistent(ds_cache **out, ds_context *ctx, const char *path,
                                   uint64_t max_bytes, int compression) {
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = max_bytes;
  o.codec = compression;
  if (ctx) { /* the rest from the context's tunables */
    if (compression == -1) o.codec = (int32_t)ds__param(ctx, DS_PARAM_CACHE_CODEC);
    o.zstd_level = (int32_t)ds__param(ctx, DS_PARAM_CACHE_ZSTD_LEVEL);
    o.durability = (int32_t)ds__param(ctx, DS_PARAM_CACHE_DURABILITY);
    o.sync_interval_ms = (uint32_t)ds__param(ctx, DS_PARAM_CACHE_SYNC_INTERVAL_MS);
  }
  return ds_cache_open_persistent_ex(out, ctx, path, &o);
}
