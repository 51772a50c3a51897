/* Tests of the tiered cache API: put/get/contains/remove, L1 -> L2 moves and promotion, every
 * codec and the lossy bf16 mode, owned values, pins and references, flush, stats, bad input,
 * and concurrent use from several threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "test_util.h"

/* Every test runs twice (see main): values on the heap, then every cache's values and entries
 * in its L1 arena (cache_l1_huge_pages = always), small caches included. */
static int64_t huge_pages;
static ds_context *test_ctx(void) {
  ds_param_value pv[1] = {{DS_PARAM_CACHE_L1_HUGE_PAGES, 0, huge_pages}};
  return ds_test_context(pv, 1);
}

static ds_cache *new_cache(ds_context *ctx, uint64_t l1, uint64_t l2, const char *policy,
                           int codec, uint32_t flags) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = l1;
  o.l2_bytes = l2;
  o.policy = policy;
  o.codec = codec;
  o.flags = flags;
  o.shards = 1;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  return c;
}

/* Compressible value derived from its index. */
static void fill_value(uint8_t *v, size_t n, int i) {
  for (size_t k = 0; k < n; k++) v[k] = (uint8_t)((k / 16) * 3 + (unsigned)i);
}

static void test_basic(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 1 << 20, 0, "lru", DS_CACHE_CODEC_LZ4, 0);
  char buf[64];
  size_t len = 0;
  assert_int_equal(ds_cache_get(c, "a", 1, buf, sizeof buf, &len), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_cache_put(c, "a", 1, "hello", 5), DS_OK);
  assert_true(ds_cache_contains(c, "a", 1));
  assert_int_equal(ds_cache_get(c, "a", 1, buf, sizeof buf, &len), DS_OK);
  assert_int_equal(len, 5);
  assert_memory_equal(buf, "hello", 5);
  assert_int_equal(ds_cache_put(c, "a", 1, "world!", 6), DS_OK); /* replace */
  assert_int_equal(ds_cache_get(c, "a", 1, buf, 3, &len), DS_ERR_FULL);
  assert_int_equal(len, 6);
  assert_int_equal(ds_cache_get(c, "a", 1, buf, sizeof buf, &len), DS_OK);
  assert_memory_equal(buf, "world!", 6);
  assert_int_equal(ds_cache_put(c, "empty", 5, NULL, 0), DS_OK);
  assert_int_equal(ds_cache_get(c, "empty", 5, NULL, 0, &len), DS_OK);
  assert_int_equal(len, 0);
  assert_int_equal(ds_cache_remove(c, "a", 1), DS_OK);
  assert_false(ds_cache_contains(c, "a", 1));
  assert_int_equal(ds_cache_remove(c, "a", 1), DS_ERR_NOT_FOUND);
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.hits, 3);
  assert_int_equal(s.misses, 1);
  /* ds_cache_stats also published them to the context's stats registry */
  ds_stats *snap = NULL;
  double v = 0;
  assert_int_equal(ds_stats_snapshot(&snap, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, snap, "cache.l1.hits"), DS_OK);
  assert_true(v == 3.0);
  assert_int_equal(ds_stats_find(&v, snap, "cache.l1.entries"), DS_OK);
  assert_true(v == 1.0);
  ds_stats_free(snap);
  ds_cache_destroy(c);
  ds_cache_destroy(NULL);
  ds_context_destroy(ctx);
}

static void test_bad_input(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = NULL;
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  assert_int_equal(ds_cache_create(NULL, ctx, &o), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_create(&c, NULL, &o), DS_ERR_INVALID_ARG);
  o.struct_size = 8;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_ABI);
  o = (ds_cache_options)DS_CACHE_OPTIONS_INIT;
  o.codec = 7;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_cache_options)DS_CACHE_OPTIONS_INIT;
  o.zstd_level = 40;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_cache_options)DS_CACHE_OPTIONS_INIT;
  o.shards = 3;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_cache_options)DS_CACHE_OPTIONS_INIT;
  o.flags = 0x100;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_cache_options)DS_CACHE_OPTIONS_INIT;
  o.policy = "nope";
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "nope"));
  o.policy = "belady";
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  assert_null(c);
  assert_int_equal(ds_cache_create(&c, ctx, NULL), DS_OK);
  char big[70000];
  memset(big, 'k', sizeof big);
  size_t len;
  assert_int_equal(ds_cache_put(NULL, "a", 1, "x", 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_put(c, NULL, 1, "x", 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_put(c, "a", 0, "x", 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_put(c, big, sizeof big, "x", 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_put(c, "a", 1, NULL, 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_put_owned(c, "a", 1, big, 1, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_get(c, "a", 1, NULL, 0, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_get(c, "a", 1, NULL, 5, &len), DS_ERR_INVALID_ARG);
  const void *d;
  ds_cache_ref *r;
  assert_int_equal(ds_cache_get_ref(c, "a", 1, &d, &len, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_get_ref(c, "a", 1, &d, &len, &r), DS_ERR_NOT_FOUND);
  assert_false(ds_cache_contains(c, NULL, 1));
  assert_int_equal(ds_cache_pin(c, "a", 1), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_cache_put(c, "a", 1, "x", 1), DS_OK);
  assert_int_equal(ds_cache_unpin(c, "a", 1), DS_ERR_STATE);
  ds_cache_tier_stats s;
  s.struct_size = 4;
  assert_int_equal(ds_cache_stats(c, DS_CACHE_L1, &s), DS_ERR_ABI);
  s.struct_size = sizeof s;
  assert_int_equal(ds_cache_stats(c, 3, &s), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_flush(NULL), DS_ERR_INVALID_ARG);
  ds_cache_release(c, NULL);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* L1 holds ~10 values; the rest move down to L2 and come back up on a hit, intact. */
static void check_tiers(const char *policy, int codec, uint32_t flags) {
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 10 * 1100, 1 << 20, policy, codec, flags);
  uint8_t v[1024], out[1024];
  for (int i = 0; i < 100; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    fill_value(v, sizeof v, i);
    assert_int_equal(ds_cache_put(c, key, strlen(key), v, sizeof v), DS_OK);
    ds_cache_tier_stats s1 = ds_test_tier_stats(c, DS_CACHE_L1);
    assert_true(s1.bytes <= 10 * 1100);
  }
  ds_cache_tier_stats s2 = ds_test_tier_stats(c, DS_CACHE_L2);
  assert_true(s2.entries >= 80);
  assert_true(s2.compression_ratio > 2.0);
  for (int i = 0; i < 100; i++) {
    char key[16];
    size_t len = 0;
    snprintf(key, sizeof key, "k%d", i);
    fill_value(v, sizeof v, i);
    assert_int_equal(ds_cache_get(c, key, strlen(key), out, sizeof out, &len), DS_OK);
    assert_int_equal(len, sizeof v);
    assert_memory_equal(out, v, sizeof v);
  }
  ds_cache_tier_stats s1 = ds_test_tier_stats(c, DS_CACHE_L1);
  s2 = ds_test_tier_stats(c, DS_CACHE_L2);
  assert_true(s2.hits >= 80);
  assert_true(s1.evictions >= 90);
  assert_int_equal(s1.entries + s2.entries, 100);
  assert_true(s1.p99_ns >= s1.p50_ns);
  /* L1 now holds promoted entries with their L2 encoding kept: counted in its bytes (the
   * budget), not in its compression ratio (L1 stores values uncompressed) */
  assert_true(s1.bytes > s1.raw_bytes + 3 * s1.entries); /* keys are <= 3 bytes */
  assert_true(s1.compression_ratio == 1.0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

static void test_tiers_lz4(void **state) {
  (void)state;
  check_tiers("lru", DS_CACHE_CODEC_LZ4, 0);
}

static void test_tiers_zstd_shuffle(void **state) {
  (void)state;
  check_tiers("arc", DS_CACHE_CODEC_ZSTD, DS_CACHE_SHUFFLE);
}

static void test_tiers_every_policy(void **state) {
  (void)state;
  static const char *const pols[] = {"lru2", "s3fifo", "wtinylfu", "sieve", "lruk+"};
  for (int i = 0; i < 5; i++) {
    ds_context *ctx = test_ctx();
    ds_cache *c = new_cache(ctx, 20000, 1 << 20, pols[i], DS_CACHE_CODEC_LZ4, 0);
    uint8_t v[1000], out[1000];
    for (int k = 0; k < 3000; k++) {
      int key = (k * 7919) % 150;
      size_t len;
      fill_value(v, sizeof v, key);
      ds_status st = ds_cache_get(c, &key, sizeof key, out, sizeof out, &len);
      if (st == DS_OK) assert_memory_equal(out, v, sizeof v);
      else assert_int_equal(ds_cache_put(c, &key, sizeof key, v, sizeof v), DS_OK);
      assert_true(ds_test_tier_stats(c, DS_CACHE_L1).bytes <= 20000);
    }
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
}

static void test_lossy_bf16(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 0, 1 << 20, "lru", DS_CACHE_CODEC_ZSTD,
                          DS_CACHE_LOSSY_BF16 | DS_CACHE_SHUFFLE);
  float v[1024], out[1024];
  for (int i = 0; i < 1024; i++) v[i] = i % 3 ? 0.0f : sinf((float)i) * 10.0f; /* ReLU-like */
  assert_int_equal(ds_cache_put(c, "t", 1, v, sizeof v), DS_OK);
  size_t len;
  assert_int_equal(ds_cache_get(c, "t", 1, out, sizeof out, &len), DS_OK);
  for (int i = 0; i < 1024; i++) assert_true(fabsf(out[i] - v[i]) <= fabsf(v[i]) / 256.0f);
  assert_true(ds_test_tier_stats(c, DS_CACHE_L2).compression_ratio >= 2.0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

static int freed;
static void count_free(void *user, void *val) {
  (void)user;
  freed++;
  free(val);
}

static void test_owned_values(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 1 << 20, 0, "lru", DS_CACHE_CODEC_LZ4, 0);
  freed = 0;
  for (int i = 0; i < 3; i++) {
    char *v = malloc(100);
    memset(v, i, 100);
    assert_int_equal(ds_cache_put_owned(c, "o", 1, v, 100, count_free, NULL), DS_OK);
  }
  assert_int_equal(freed, 2); /* two replaced */
  assert_int_equal(ds_cache_remove(c, "o", 1), DS_OK);
  assert_int_equal(freed, 3);
  char *v = malloc(100);
  assert_int_equal(ds_cache_put_owned(c, "p", 1, v, 100, count_free, NULL), DS_OK);
  ds_cache_destroy(c);
  assert_int_equal(freed, 4);
  ds_context_destroy(ctx);
}

static void test_pins_and_refs(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 5000, 0, "lru", DS_CACHE_CODEC_LZ4, 0);
  uint8_t v[1000];
  fill_value(v, sizeof v, 1);
  assert_int_equal(ds_cache_put(c, "pinned", 6, v, sizeof v), DS_OK);
  assert_int_equal(ds_cache_put(c, "ref", 3, v, sizeof v), DS_OK);
  assert_int_equal(ds_cache_pin(c, "pinned", 6), DS_OK);
  const void *d;
  size_t len;
  ds_cache_ref *r;
  assert_int_equal(ds_cache_get_ref(c, "ref", 3, &d, &len, &r), DS_OK);
  assert_int_equal(ds_cache_put(c, "gone", 4, v, sizeof v), DS_OK);
  const void *d2;
  ds_cache_ref *r2;
  assert_int_equal(ds_cache_get_ref(c, "gone", 4, &d2, &len, &r2), DS_OK);
  assert_int_equal(ds_cache_remove(c, "gone", 4), DS_OK); /* hidden now, freed at release */
  assert_false(ds_cache_contains(c, "gone", 4));
  for (int i = 0; i < 100; i++) assert_int_equal(ds_cache_put(c, &i, sizeof i, v, sizeof v), DS_OK);
  assert_true(ds_cache_contains(c, "pinned", 6));
  /* evicted while referenced: out of the cache (no L2 here), its bytes kept until release */
  assert_false(ds_cache_contains(c, "ref", 3));
  assert_memory_equal(d, v, sizeof v);
  assert_memory_equal(d2, v, sizeof v);
  assert_true(ds_test_tier_stats(c, DS_CACHE_L1).bytes <=
              5000 + 1006); /* the pinned entry may overshoot */
  assert_int_equal(ds_cache_release(c, r), DS_OK);
  assert_int_equal(ds_cache_release(c, r2), DS_OK);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_true(ds_cache_contains(c, "pinned", 6));
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).entries, 1);
  assert_int_equal(ds_cache_unpin(c, "pinned", 6), DS_OK);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_false(ds_cache_contains(c, "pinned", 6));
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).bytes, 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* A reference into L2 (no L1) decodes the value and holds it until release. */
static void test_ref_from_l2_only(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 0, 1 << 20, "lruk+", DS_CACHE_CODEC_LZ4, 0);
  uint8_t v[4096];
  fill_value(v, sizeof v, 9);
  assert_int_equal(ds_cache_put(c, "x", 1, v, sizeof v), DS_OK);
  assert_int_equal(ds_cache_pin(c, "x", 1), DS_OK);
  const void *d;
  size_t len;
  ds_cache_ref *r;
  assert_int_equal(ds_cache_get_ref(c, "x", 1, &d, &len, &r), DS_OK);
  assert_int_equal(len, sizeof v);
  assert_memory_equal(d, v, sizeof v);
  ds_cache_release(c, r);
  assert_int_equal(ds_cache_unpin(c, "x", 1), DS_OK);
  uint8_t out[4096];
  assert_int_equal(ds_cache_get(c, "x", 1, out, sizeof out, &len), DS_OK);
  assert_memory_equal(out, v, sizeof v);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* An epoch-style replay: after one pass the successor table predicts the next keys, and the
 * background task moves them up to L1 before they are read. */
static void test_prefetch(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 10 * 4200;
  o.l2_bytes = 1 << 20;
  o.policy = "lru";
  o.shards = 1;
  o.prefetch_depth = 2;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  uint8_t v[4096], out[4096];
  for (int k = 0; k < 40; k++) {
    fill_value(v, sizeof v, k);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
  }
  for (int epoch = 0; epoch < 3; epoch++)
    for (int k = 0; k < 40; k++) {
      size_t len;
      fill_value(v, sizeof v, k);
      assert_int_equal(ds_cache_get(c, &k, sizeof k, out, sizeof out, &len), DS_OK);
      assert_memory_equal(out, v, sizeof v);
      struct timespec ts = {0, 2000000}; /* the loader's work between batches */
      nanosleep(&ts, NULL);
    }
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  /* plain LRU on this loop would hit nothing; loose bounds: the background thread may be
   * starved on a loaded machine */
  assert_true(s.prefetched > 5);
  assert_true(s.hits > 5);
  /* an explicit hint */
  int k0 = 0;
  assert_int_equal(ds_cache_prefetch(c, &k0, sizeof k0), DS_OK);
  assert_int_equal(ds_cache_prefetch(NULL, &k0, sizeof k0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_prefetch(c, NULL, 4), DS_ERR_INVALID_ARG);
  ds_cache_destroy(c); /* waits for queued prefetches */
  o.prefetch_depth = 17;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

/* A first pass over keys with a stride (no history yet): the stride detector prefetches. */
static void test_prefetch_strided(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 8 * 4200;
  o.l2_bytes = 1 << 20;
  o.policy = "lru";
  o.shards = 1;
  o.prefetch_depth = 2;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  uint8_t v[4096], out[4096];
  char key[32];
  for (int k = 0; k < 120; k += 3) { /* batch/000, batch/003, ... */
    snprintf(key, sizeof key, "batch/%03d", k);
    fill_value(v, sizeof v, k);
    assert_int_equal(ds_cache_put(c, key, strlen(key), v, sizeof v), DS_OK);
  }
  for (int k = 0; k < 120; k += 3) {
    size_t len;
    snprintf(key, sizeof key, "batch/%03d", k);
    fill_value(v, sizeof v, k);
    assert_int_equal(ds_cache_get(c, key, strlen(key), out, sizeof out, &len), DS_OK);
    assert_memory_equal(out, v, sizeof v);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_true(s.prefetched > 3);
  assert_true(s.hits > 3);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

typedef struct {
  ds_cache *c;
  int seed;
  int errors;
} worker_arg;

/* Values encode their key, so a reader can check it never sees another key's value. */
static void *worker(void *p) {
  worker_arg *a = p;
  uint32_t s = (uint32_t)a->seed;
  for (int i = 0; i < 20000; i++) {
    s = s * 1103515245u + 12345u;
    uint32_t key = (s >> 8) % 500;
    uint32_t val[64], out[64];
    for (int k = 0; k < 64; k++) val[k] = key * 131u + (uint32_t)k;
    size_t len;
    switch ((s >> 4) % 8) {
    case 0:
      ds_cache_remove(a->c, &key, sizeof key);
      break;
    case 1:
    case 2:
      if (ds_cache_put(a->c, &key, sizeof key, val, sizeof val) != DS_OK) a->errors++;
      break;
    case 3: {
      const void *d;
      ds_cache_ref *r;
      if (ds_cache_get_ref(a->c, &key, sizeof key, &d, &len, &r) == DS_OK) {
        if (len != sizeof val || memcmp(d, val, sizeof val)) a->errors++;
        ds_cache_release(a->c, r);
      }
      break;
    }
    default:
      if (ds_cache_get(a->c, &key, sizeof key, out, sizeof out, &len) == DS_OK &&
          (len != sizeof val || memcmp(out, val, sizeof val)))
        a->errors++;
    }
  }
  return NULL;
}

static void test_concurrency(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 8 * 8000;
  o.l2_bytes = 8 * 20000;
  o.shards = 8;
  o.prefetch_depth = 2; /* background moves race with the workers */
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  pthread_t th[4];
  worker_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (worker_arg){c, i + 1, 0};
    pthread_create(&th[i], NULL, worker, &args[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].errors, 0);
  }
  ds_cache_tier_stats s1 = ds_test_tier_stats(c, DS_CACHE_L1),
                      s2 = ds_test_tier_stats(c, DS_CACHE_L2);
  assert_true(s1.bytes <= o.l1_bytes);
  assert_true(s2.bytes <= o.l2_bytes);
  assert_true(s1.hits + s2.hits > 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* The lock-free L1 hit path (lruk+, no GPU tier) racing a writer that replaces, removes and
 * flushes the same keys: every value read is whole (one key, one version), and the L1 hit
 * count is exact (readers count their own successful gets; no L2, so every hit is an L1 one).
 * Values above 64 KiB take the locked path and count the same way. */
typedef struct {
  ds_cache *c;
  int seed;
  int writer;
  long ok;
  int errors;
} lf_arg;

#define LF_KEYS 64
#define LF_WORDS 32

static void lf_value(uint32_t *v, uint32_t key, uint32_t version) {
  for (int k = 0; k < LF_WORDS; k++) v[k] = key * 1000003u + version * 7u + (uint32_t)k;
}

static void *lf_worker(void *p) {
  lf_arg *a = p;
  uint32_t s = (uint32_t)a->seed, v[LF_WORDS];
  for (int i = 0; i < 30000; i++) {
    s = s * 1103515245u + 12345u;
    uint32_t key = (s >> 8) % LF_KEYS;
    size_t len = 0;
    if (a->writer) {
      if ((s >> 4) % 16 == 0) ds_cache_remove(a->c, &key, sizeof key);
      else if (i % 5000 == 4999) ds_cache_flush(a->c);
      else {
        lf_value(v, key, (uint32_t)i);
        if (ds_cache_put(a->c, &key, sizeof key, v, sizeof v) != DS_OK) a->errors++;
      }
      continue;
    }
    if (ds_cache_get(a->c, &key, sizeof key, v, sizeof v, &len) != DS_OK) continue;
    a->ok++;
    uint32_t version = (v[0] - key * 1000003u) / 7u;
    uint32_t want[LF_WORDS];
    lf_value(want, key, version);
    if (len != sizeof v || memcmp(v, want, sizeof v)) a->errors++;
  }
  return NULL;
}

static void test_lockfree_hits(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 1 << 20;
  o.shards = 4;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  uint32_t v[LF_WORDS];
  for (uint32_t k = 0; k < LF_KEYS; k++) {
    lf_value(v, k, 0);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
  }
  pthread_t th[3];
  lf_arg args[3];
  for (int i = 0; i < 3; i++) {
    args[i] = (lf_arg){c, 7 + i, i == 2, 0, 0};
    pthread_create(&th[i], NULL, lf_worker, &args[i]);
  }
  long ok = 0;
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].errors, 0);
    ok += args[i].ok;
  }
  assert_true(ok > 0);
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_int_equal(s.hits, (uint64_t)ok);
  assert_true(s.p50_ns > 0);
  /* a value above the lock-free limit is served by the locked path, counted the same */
  size_t big = (64u << 10) + 16;
  uint8_t *b = calloc(1, big), *out = malloc(big);
  assert_non_null(b);
  assert_non_null(out);
  b[big - 1] = 0x5a;
  assert_int_equal(ds_cache_put(c, "big", 3, b, big), DS_OK);
  size_t len = 0;
  assert_int_equal(ds_cache_get(c, "big", 3, out, big, &len), DS_OK);
  assert_int_equal(len, big);
  assert_memory_equal(out, b, big);
  /* a buffer too small: DS_ERR_FULL with the length, and no hit */
  uint32_t key = 1;
  lf_value(v, key, 1);
  assert_int_equal(ds_cache_put(c, &key, sizeof key, v, sizeof v), DS_OK);
  assert_int_equal(ds_cache_get(c, &key, sizeof key, out, 8, &len), DS_ERR_FULL);
  assert_int_equal(len, sizeof v);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).hits, (uint64_t)ok + 1);
  free(b);
  free(out);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* lruk+ counts L1 hits in the entry and applies them at the list tail: keys read often must
 * survive a scan of keys put once, and small values (stored inline) read back intact, also
 * through a reference (16-byte aligned). */
static void test_lazy_hits_and_inline_values(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 64 * (16 + 64), 0, NULL, DS_CACHE_CODEC_LZ4, 0);
  char key[16];
  uint8_t v[64], out[64];
  size_t len = 0;
  for (int i = 0; i < 16; i++) {
    memset(key, 0, sizeof key);
    snprintf(key, sizeof key, "hot-%d", i);
    fill_value(v, sizeof v, i);
    assert_int_equal(ds_cache_put(c, key, sizeof key, v, sizeof v), DS_OK);
  }
  for (int scan = 0; scan < 1000; scan++) {
    if (scan % 20 == 0)
      for (int i = 0; i < 16; i++) { /* the hot set is read again and again */
        memset(key, 0, sizeof key);
        snprintf(key, sizeof key, "hot-%d", i);
        if (ds_cache_get(c, key, sizeof key, out, sizeof out, &len) == DS_OK) {
          fill_value(v, sizeof v, i);
          assert_int_equal(len, sizeof v);
          assert_memory_equal(out, v, sizeof v);
        }
      }
    memset(key, 0, sizeof key);
    snprintf(key, sizeof key, "cold-%d", scan);
    fill_value(v, sizeof v, scan);
    assert_int_equal(ds_cache_put(c, key, sizeof key, v, sizeof v), DS_OK);
  }
  int kept = 0;
  for (int i = 0; i < 16; i++) {
    memset(key, 0, sizeof key);
    snprintf(key, sizeof key, "hot-%d", i);
    kept += ds_cache_contains(c, key, sizeof key);
  }
  assert_true(kept >= 14);
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_true(s.bytes <= 64 * (16 + 64));
  const void *data = NULL;
  ds_cache_ref *ref = NULL;
  memset(key, 0, sizeof key);
  snprintf(key, sizeof key, "hot-%d", 3);
  assert_int_equal(ds_cache_get_ref(c, key, sizeof key, &data, &len, &ref), DS_OK);
  assert_int_equal((uintptr_t)data % 16, 0);
  fill_value(v, sizeof v, 3);
  assert_memory_equal(data, v, sizeof v);
  ds_cache_release(c, ref);
  assert_int_equal(ds_cache_remove(c, key, sizeof key), DS_OK);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Admission: a put is kept even when lruk+'s filter would have declined it (a value heavier
 * than the window, rarer than the victim), and a value too large for every tier is refused. */
static void test_admission_keeps_puts(void **state) {
  (void)state;
  const char *policies[] = {"lruk+", "wtinylfu"};
  for (int p = 0; p < 2; p++) {
    ds_context *ctx = test_ctx();
    ds_cache *c = new_cache(ctx, 64 * 1024, 0, policies[p], DS_CACHE_CODEC_LZ4, 0);
    static uint8_t v[8000], out[8000];
    size_t len = 0;
    for (uint32_t k = 0; k < 7; k++) { /* fill, and make the residents frequent */
      fill_value(v, sizeof v, (int)k);
      assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
    }
    for (int r = 0; r < 5; r++)
      for (uint32_t k = 0; k < 7; k++)
        assert_int_equal(ds_cache_get(c, &k, sizeof k, out, sizeof out, &len), DS_OK);
    for (uint32_t k = 100; k < 140; k++) { /* each new one is heavier than the window */
      fill_value(v, sizeof v, (int)k);
      assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
      assert_int_equal(ds_cache_get(c, &k, sizeof k, out, sizeof out, &len), DS_OK);
      assert_memory_equal(out, v, sizeof v);
    }
    assert_true(ds_test_tier_stats(c, DS_CACHE_L1).bytes <= 64 * 1024);
    static uint8_t big[70000];
    uint32_t k = 7;
    assert_int_equal(ds_cache_put(c, &k, sizeof k, big, sizeof big), DS_ERR_FULL);
    assert_non_null(strstr(ds_context_last_error(ctx), "budget"));
    assert_false(ds_cache_contains(c, &k, sizeof k));
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
}

/* A cache created with NULL options takes the context's cache_* tunables. */
static void test_tunables(void **state) {
  (void)state;
  ds_context_options co = DS_CONTEXT_OPTIONS_INIT;
  co.flags = DS_CONTEXT_NO_ENV;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_CACHE_POLICY, 0, 1}, /* lru */
                         {DS_PARAM_CACHE_L1_BYTES, 0, 10 * 1100},
                         {DS_PARAM_CACHE_L2_BYTES, 0, 1 << 20},
                         {DS_PARAM_CACHE_SHARDS, 0, 1},
                         {DS_PARAM_CACHE_CODEC, 0, DS_CACHE_CODEC_ZSTD}};
  co.params = pv;
  co.nparams = 7;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &co), DS_OK);
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, NULL), DS_OK);
  uint8_t v[1000], out[1000];
  size_t len = 0;
  for (uint32_t k = 0; k < 30; k++) {
    fill_value(v, sizeof v, (int)k);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
  }
  /* LRU in L1 (10 values fit): the 20 oldest went down to L2 and were compressed */
  ds_cache_tier_stats s1 = ds_test_tier_stats(c, DS_CACHE_L1),
                      s2 = ds_test_tier_stats(c, DS_CACHE_L2);
  assert_true(s1.entries >= 9 && s1.entries <= 10);
  assert_int_equal(s1.entries + s2.entries, 30);
  assert_true(s2.compression_ratio > 2.0);
  for (uint32_t k = 0; k < 30; k++) {
    assert_int_equal(ds_cache_get(c, &k, sizeof k, out, sizeof out, &len), DS_OK);
    fill_value(v, sizeof v, (int)k);
    assert_memory_equal(out, v, sizeof v);
  }
  ds_cache_destroy(c);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_POLICY, 7), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_SHARDS, 3), DS_OK);
  assert_int_equal(ds_cache_create(&c, ctx, NULL), DS_ERR_INVALID_ARG); /* not a power of 2 */
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_tiers_lz4),
      cmocka_unit_test(test_tiers_zstd_shuffle),
      cmocka_unit_test(test_tiers_every_policy),
      cmocka_unit_test(test_lossy_bf16),
      cmocka_unit_test(test_owned_values),
      cmocka_unit_test(test_pins_and_refs),
      cmocka_unit_test(test_ref_from_l2_only),
      cmocka_unit_test(test_prefetch),
      cmocka_unit_test(test_prefetch_strided),
      cmocka_unit_test(test_concurrency),
      cmocka_unit_test(test_lockfree_hits),
      cmocka_unit_test(test_lazy_hits_and_inline_values),
      cmocka_unit_test(test_admission_keeps_puts),
      cmocka_unit_test(test_tunables),
  };
  int failed = cmocka_run_group_tests_name("values on the heap", tests, NULL, NULL);
  huge_pages = 2;
  return failed + cmocka_run_group_tests_name("values in the L1 arena", tests, NULL, NULL);
}
