/* Tests of the cache's L1 value arena (src/cache/arena.c, tunable cache_l1_huge_pages): size
 * classes, allocation and free patterns across classes, chunks going back to the system, the
 * cap and the heap fallback, the tunable's modes (off, on, with an allocator hook, always),
 * the arena_bytes stat, values read back intact through puts, gets, references, evictions,
 * replacements and moves to L2 and back, and threads putting, getting and releasing at once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/arena.h"
#include "internal.h"
#include "test_util.h"

#define MIB ((uint64_t)1 << 20)

/* ---- the arena alone ---- */

static void test_classes(void **state) {
  (void)state;
  assert_int_equal(ds__arena_class_size(0), 0);
  assert_int_equal(ds__arena_class_size(DS__ARENA_MAX + 1), 0);
  assert_int_equal(ds__arena_class_size(1), 16);
  assert_int_equal(ds__arena_class_size(64), 64);
  assert_int_equal(ds__arena_class_size(65), 80);
  assert_int_equal(ds__arena_class_size(4096), 4096); /* 4 KiB values waste nothing */
  assert_int_equal(ds__arena_class_size(4097), 5120);
  assert_int_equal(ds__arena_class_size(DS__ARENA_MAX), DS__ARENA_MAX);
  size_t prev = 0;
  for (size_t n = 1; n <= DS__ARENA_MAX; n++) {
    size_t k = ds__arena_class_size(n);
    assert_true(k >= n && k >= prev && k % 16 == 0);
    if (n > 64) assert_true((k - n) * 5 <= k); /* at most 20% of a slot is waste */
    prev = k;
  }
}

/* Byte i of a value tagged t is (t * 31 + i) mod 256: a copy from this ramp at offset
 * (t * 31) mod 256 (memcpy and memcmp keep the sanitizer builds fast). */
static uint8_t ramp[256 + 80000];

static const uint8_t *pattern(uint32_t tag) { return ramp + (tag * 31u) % 256; }

static void fill(uint8_t *p, size_t n, uint32_t tag) { memcpy(p, pattern(tag), n); }

static int filled(const uint8_t *p, size_t n, uint32_t tag) {
  return !n || !memcmp(p, pattern(tag), n);
}

/* Random allocations and frees of every class: slots never overlap (each keeps its pattern),
 * alignment holds, and once all is freed at most one chunk per class stays mapped. */
static void test_alloc_free_patterns(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds__arena *a = ds__arena_create(ctx, 256 * MIB, -1);
  assert_non_null(a);
  enum { N = 600 };
  uint8_t *p[N] = {0};
  size_t len[N] = {0};
  uint32_t seed = 7;
  for (int round = 0; round < 4000; round++) {
    seed = seed * 1664525u + 1013904223u;
    int i = (int)((seed >> 8) % N);
    if (p[i]) {
      assert_true(filled(p[i], len[i], (uint32_t)i));
      ds__arena_free(a, p[i]);
      p[i] = NULL;
      continue;
    }
    /* sizes over all classes, more of the small ones */
    len[i] = 1 + (seed >> 4) % ((seed & 1) ? 600 : DS__ARENA_MAX);
    p[i] = ds__arena_alloc(a, len[i]);
    assert_non_null(p[i]);
    assert_int_equal((uintptr_t)p[i] % 16, 0);
    if (len[i] % 64 == 0) assert_int_equal((uintptr_t)p[i] % 64, 0);
    if (len[i] == 4096) assert_int_equal((uintptr_t)p[i] % 4096, 64); /* not page-aligned */
    fill(p[i], len[i], (uint32_t)i);
  }
  assert_true(ds__arena_mapped(a) > 0);
  for (int i = 0; i < N; i++) {
    if (!p[i]) continue;
    assert_true(filled(p[i], len[i], (uint32_t)i));
    ds__arena_free(a, p[i]);
  }
  /* an empty chunk is kept per class that had one: at most 44 of them */
  assert_true(ds__arena_mapped(a) <= 44 * DS__ARENA_CHUNK);
  assert_int_equal(ds__arena_destroy(a), 0);
  ds__arena_destroy(NULL);
  ds_context_destroy(ctx);
}

/* A class that fills several chunks and is then freed keeps one chunk and unmaps the others;
 * filling again reuses the kept one first. The stat follows the mapped bytes. */
static void test_chunk_return(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  int id = ds__stat_register(ctx, "test.arena_bytes", DS_STAT_GAUGE);
  ds__arena *a = ds__arena_create(ctx, 64 * MIB, id);
  assert_non_null(a);
  enum { N = 2000 }; /* 4 KiB slots, 511 a chunk: 4 chunks */
  static void *p[N];
  for (int i = 0; i < N; i++) assert_non_null(p[i] = ds__arena_alloc(a, 4096));
  assert_int_equal(ds__arena_mapped(a), 4 * DS__ARENA_CHUNK);
  assert_true(ds_test_stat(ctx, "test.arena_bytes") == (double)(4 * DS__ARENA_CHUNK));
  for (int i = 0; i < N; i++) ds__arena_free(a, p[i]);
  assert_int_equal(ds__arena_mapped(a), DS__ARENA_CHUNK);
  assert_true(ds_test_stat(ctx, "test.arena_bytes") == (double)DS__ARENA_CHUNK);
  /* one slot in, one out, repeatedly: the kept chunk serves it, nothing is mapped again */
  for (int i = 0; i < 1000; i++) {
    void *q = ds__arena_alloc(a, 4000);
    assert_non_null(q);
    ds__arena_free(a, q);
  }
  assert_int_equal(ds__arena_mapped(a), DS__ARENA_CHUNK);
  assert_int_equal(ds__arena_destroy(a), 0);
  assert_true(ds_test_stat(ctx, "test.arena_bytes") == 0.0);
  ds_context_destroy(ctx);
}

/* At the cap the arena returns NULL (the cache then uses the heap); freeing makes room again.
 * Out-of-range sizes are NULL too. Destroy unmaps slots never freed. */
static void test_cap(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds__arena *a = ds__arena_create(ctx, 2 * DS__ARENA_CHUNK + 100, -1); /* 2 chunks */
  assert_non_null(a);
  assert_null(ds__arena_alloc(a, 0));
  assert_null(ds__arena_alloc(a, DS__ARENA_MAX + 1));
  static void *p[2000];
  int n = 0;
  while (n < 2000 && (p[n] = ds__arena_alloc(a, 4096)) != NULL) n++;
  assert_int_equal(n, 2 * (DS__ARENA_CHUNK / 4096 - 1)); /* the header takes one slot's room */
  assert_int_equal(ds__arena_mapped(a), 2 * DS__ARENA_CHUNK);
  assert_null(ds__arena_alloc(a, 100)); /* another class needs a chunk: none left */
  ds__arena_free(a, p[--n]);
  assert_non_null(p[n] = ds__arena_alloc(a, 4000)); /* the freed slot */
  n++;
  assert_int_equal(ds__arena_destroy(a), (uint64_t)n); /* unmapped all the same */
  ds_context_destroy(ctx);
}

/* ---- through the cache ---- */

/* Warnings that arena slots were left at a cache's destroy (a leak), over all contexts made
 * by ctx_mode; checked to stay 0. */
static int leak_warnings;
static void count_leaks(void *user, int level, const char *module, const char *message) {
  (void)user;
  (void)module;
  if (level == DS_LOG_WARN && strstr(message, "arena slots")) leak_warnings++;
}

static ds_context *ctx_mode(int64_t mode) {
  ds_param_value pv[1] = {{DS_PARAM_CACHE_L1_HUGE_PAGES, 0, mode}};
  ds_context *ctx = ds_test_context(pv, 1);
  assert_int_equal(ds_context_set_log(ctx, DS_LOG_WARN, count_leaks, NULL), DS_OK);
  return ctx;
}

static ds_cache *new_cache(ds_context *ctx, uint64_t l1, uint64_t l2) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = l1;
  o.l2_bytes = l2;
  o.shards = 2;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  return c;
}

static double arena_bytes(ds_context *ctx) { return ds_test_stat(ctx, "cache.l1.arena_bytes"); }

/* Which modes map chunks: on (default allocator, L1 >= 2 MiB), not off, not on with an
 * allocator hook or a small L1; always in both. Values bypass the context's allocator then. */
static size_t hook_bytes;
static void *hook_alloc(void *user, size_t n) {
  (void)user;
  __atomic_add_fetch(&hook_bytes, n, __ATOMIC_RELAXED);
  return malloc(n);
}
static void hook_free(void *user, void *p) {
  (void)user;
  free(p);
}

static void put_many(ds_cache *c, int n, size_t vlen) {
  uint8_t *v = malloc(vlen);
  for (int i = 0; i < n; i++) {
    char k[16] = {0};
    snprintf(k, sizeof k, "k%d", i);
    fill(v, vlen, (uint32_t)i);
    assert_int_equal(ds_cache_put(c, k, sizeof k, v, vlen), DS_OK);
  }
  free(v);
}

static ds_context *ctx_hook(int64_t mode) {
  ds_allocator al = {hook_alloc, hook_free, NULL};
  ds_param_value pv[3] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                          {DS_PARAM_STATS_FILE, 0, 0},
                          {DS_PARAM_CACHE_L1_HUGE_PAGES, 0, mode}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.allocator = &al;
  o.params = pv;
  o.nparams = 3;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static void test_modes(void **state) {
  (void)state;
  int64_t def = -1;
  ds_context *ctx = ds_test_context(NULL, 0);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_CACHE_L1_HUGE_PAGES, &def), DS_OK);
  assert_int_equal(def, 1);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_L1_HUGE_PAGES, 3),
                   DS_ERR_INVALID_ARG);
  struct {
    int hook;
    int64_t mode;
    uint64_t l1;
    int mapped;
  } cases[] = {{0, 1, 16 * MIB, 1}, {0, 0, 16 * MIB, 0}, {0, 1, 1 * MIB, 0}, {0, 2, 1 * MIB, 1},
               {1, 1, 16 * MIB, 0}, {1, 2, 16 * MIB, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ds_context *x = cases[i].hook ? ctx_hook(cases[i].mode) : ctx_mode(cases[i].mode);
    ds_cache *c = new_cache(x, cases[i].l1, 0);
    size_t before = __atomic_load_n(&hook_bytes, __ATOMIC_RELAXED);
    put_many(c, 100, 4096);
    size_t through_hook = __atomic_load_n(&hook_bytes, __ATOMIC_RELAXED) - before;
    double mapped = arena_bytes(x);
    if (cases[i].mapped) assert_true(mapped >= (double)DS__ARENA_CHUNK);
    else assert_true(mapped == 0.0);
    /* with a hook: 100 values of 4 KiB through it, or (arena) only the bucket growth */
    if (cases[i].hook) assert_true(cases[i].mapped ? through_hook < 100 * 4096 / 2
                                                   : through_hook >= 100 * 4096);
    ds_cache_destroy(c);
    assert_true(arena_bytes(x) == 0.0); /* destroy unmaps every chunk */
    ds_context_destroy(x);
  }
  ds_context_destroy(ctx);
}

/* The footprint of 8192 values of 4 KiB with 16-byte keys: 17 chunks of 511 values, one of
 * 128-byte entries (36 MiB), and none of it through the context's allocator. */
static void test_footprint(void **state) {
  (void)state;
  ds_context *ctx = ctx_mode(1);
  ds_cache *c = new_cache(ctx, 64 * MIB, 0);
  ds_stats *before = NULL;
  assert_int_equal(ds_stats_snapshot(&before, ctx), DS_OK);
  double live0 = 0;
  assert_int_equal(ds_stats_find(&live0, before, "core.mem.live_bytes"), DS_OK);
  ds_stats_free(before);
  put_many(c, 8192, 4096);
  assert_true(arena_bytes(ctx) == (double)(18 * DS__ARENA_CHUNK));
  double live = ds_test_stat(ctx, "core.mem.live_bytes");
  assert_true(live - live0 < 4.0 * MIB); /* tables and policy nodes, not 32 MiB of values */
  ds_cache_destroy(c);
  assert_int_equal(leak_warnings, 0);
  ds_context_destroy(ctx);
}

/* Reads key i back (copying get and reference) and checks its pattern. */
static void check_key(ds_cache *c, int i, size_t vlen) {
  char k[16] = {0};
  snprintf(k, sizeof k, "k%d", i);
  uint8_t *buf = malloc(vlen ? vlen : 1);
  size_t len = 0;
  assert_int_equal(ds_cache_get(c, k, sizeof k, buf, vlen, &len), DS_OK);
  assert_int_equal(len, vlen);
  assert_true(filled(buf, vlen, (uint32_t)i));
  const void *d;
  ds_cache_ref *r;
  assert_int_equal(ds_cache_get_ref(c, k, sizeof k, &d, &len, &r), DS_OK);
  assert_int_equal(len, vlen);
  assert_true(filled(d, vlen, (uint32_t)i));
  assert_int_equal(ds_cache_release(c, r), DS_OK);
  free(buf);
}

/* Values of many sizes (inline, every class, beyond the arena) through puts, replacements,
 * evictions to L2 and back up, references held across a replacement, removal: intact with
 * the arena on, off and forced. */
static void cycle(int64_t mode, uint64_t l1, uint64_t l2) {
  ds_context *ctx = ctx_mode(mode);
  ds_cache *c = new_cache(ctx, l1, l2);
  static const size_t sizes[] = {0, 1, 17, 64, 65, 200, 257, 1000, 4096, 4097, 20000, 65536, 70000};
  enum { NS = sizeof sizes / sizeof sizes[0], ROUNDS = 2, NK = 3000 }; /* 38 MB a round */
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < NK; i++) { /* L1 overflows into L2 */
      size_t vlen = sizes[(i + round) % NS];
      uint8_t *v = malloc(vlen ? vlen : 1);
      fill(v, vlen, (uint32_t)i);
      char k[16] = {0};
      snprintf(k, sizeof k, "k%d", i);
      /* hold a reference to the old value across its replacement */
      const void *d = NULL;
      size_t len = 0;
      ds_cache_ref *r = NULL;
      if (ds_cache_get_ref(c, k, sizeof k, &d, &len, &r) != DS_OK) r = NULL;
      assert_int_equal(ds_cache_put(c, k, sizeof k, v, vlen), DS_OK);
      if (r) {
        assert_true(filled(d, len, (uint32_t)i)); /* the old bytes, unchanged */
        assert_int_equal(ds_cache_release(c, r), DS_OK);
      }
      free(v);
    }
    for (int i = 0; i < NK; i++) {
      char k[16] = {0};
      snprintf(k, sizeof k, "k%d", i);
      if (ds_cache_contains(c, k, sizeof k)) check_key(c, i, sizes[(i + round) % NS]);
    }
  }
  ds_cache_tier_stats s1 = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_true(s1.evictions > 0);
  if (l2) assert_true(ds_test_tier_stats(c, DS_CACHE_L2).hits > 0);
  for (int i = 0; i < NK; i += 2) {
    char k[16] = {0};
    snprintf(k, sizeof k, "k%d", i);
    ds_cache_remove(c, k, sizeof k);
  }
  if (mode) assert_true(arena_bytes(ctx) > 0);
  else assert_true(arena_bytes(ctx) == 0.0);
  ds_cache_destroy(c);
  assert_int_equal(leak_warnings, 0);
  ds_context_destroy(ctx); /* no leak: the context checks its allocator's live bytes */
}

static void test_values_intact_off(void **state) {
  (void)state;
  cycle(0, 32 * MIB, 0);
  cycle(0, 32 * MIB, 8 * MIB);
}

static void test_values_intact_on(void **state) {
  (void)state;
  cycle(1, 32 * MIB, 0);
  cycle(1, 32 * MIB, 8 * MIB);
}

static void test_values_intact_forced_small(void **state) {
  (void)state;
  /* "always" with the cache's 8 MiB floor: four chunks for 13 sizes, so some classes get
   * none and fall back to the heap, mixed in one cache */
  cycle(2, 1 * MIB, 8 * MIB);
}

/* Destroy with references outstanding (one a zombie) frees their arena slots too. */
static void test_destroy_with_refs(void **state) {
  (void)state;
  ds_context *ctx = ctx_mode(1);
  ds_cache *c = new_cache(ctx, 4 * MIB, 0);
  put_many(c, 10, 4096);
  const void *d;
  size_t len;
  ds_cache_ref *r1, *r2;
  assert_int_equal(ds_cache_get_ref(c, "k1\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, &d, &len, &r1), DS_OK);
  assert_int_equal(ds_cache_get_ref(c, "k2\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, &d, &len, &r2), DS_OK);
  assert_int_equal(ds_cache_remove(c, "k2\0\0\0\0\0\0\0\0\0\0\0\0\0", 16), DS_OK); /* zombie */
  ds_cache_destroy(c);
  assert_true(arena_bytes(ctx) == 0.0);
  assert_int_equal(leak_warnings, 0); /* both references' slots were freed by destroy */
  ds_context_destroy(ctx);
}

/* ---- threads: puts (replacing, evicting), copying gets and references at once ---- */

typedef struct {
  ds_cache *c;
  uint32_t seed;
  int writer;
  long bad, hits;
} thr_arg;

#define TKEYS 64
#define TITERS 10000

static size_t tlen(int key, uint32_t version) { return 100 + (size_t)((key * 37 + version) % 9000); }

/* A version header, then the pattern of tag key + version. */
static void tvalue(uint8_t *v, int key, uint32_t version) {
  memcpy(v, &version, 4);
  memcpy(v + 4, pattern((uint32_t)key + version), tlen(key, version) - 4);
}

static int tvalue_ok(const uint8_t *v, size_t n, int key) {
  uint32_t version;
  memcpy(&version, v, 4);
  return n == tlen(key, version) && filled(v + 4, n - 4, (uint32_t)key + version);
}

static void *worker(void *p) {
  thr_arg *a = p;
  uint8_t *buf = malloc(10000);
  for (int it = 0; it < TITERS; it++) {
    a->seed = a->seed * 1664525u + 1013904223u;
    int key = (int)((a->seed >> 8) % TKEYS);
    char k[16] = {0};
    snprintf(k, sizeof k, "t%d", key);
    if (a->writer && (a->seed >> 20) % 4 == 0) {
      tvalue(buf, key, a->seed >> 12);
      if (ds_cache_put(a->c, k, sizeof k, buf, tlen(key, a->seed >> 12)) != DS_OK) a->bad++;
      continue;
    }
    size_t len = 0;
    if ((a->seed >> 16) & 1) {
      if (ds_cache_get(a->c, k, sizeof k, buf, 10000, &len) != DS_OK) continue;
      a->bad += !tvalue_ok(buf, len, key);
    } else {
      const void *d;
      ds_cache_ref *r;
      if (ds_cache_get_ref(a->c, k, sizeof k, &d, &len, &r) != DS_OK) continue;
      a->bad += !tvalue_ok(d, len, key);
      a->bad += ds_cache_release(a->c, r) != DS_OK;
    }
    a->hits++;
  }
  free(buf);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  ds_context *ctx = ctx_mode(2);
  ds_cache *c = new_cache(ctx, 256 << 10, 0); /* about 50 values fit: evictions all along */
  thr_arg args[3];
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    args[i] = (thr_arg){c, 99u + (uint32_t)i * 1000u, i < 2, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
  }
  long hits = 0;
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].bad, 0);
    hits += args[i].hits;
  }
  assert_true(hits > 0);
  assert_true(arena_bytes(ctx) > 0);
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_true(s.evictions > 0);
  ds_cache_destroy(c);
  assert_int_equal(leak_warnings, 0);
  ds_context_destroy(ctx);
}

int main(void) {
  for (size_t i = 0; i < sizeof ramp; i++) ramp[i] = (uint8_t)i;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classes),          cmocka_unit_test(test_alloc_free_patterns),
      cmocka_unit_test(test_chunk_return),     cmocka_unit_test(test_cap),
      cmocka_unit_test(test_modes),            cmocka_unit_test(test_footprint),
      cmocka_unit_test(test_values_intact_off),
      cmocka_unit_test(test_values_intact_on), cmocka_unit_test(test_values_intact_forced_small),
      cmocka_unit_test(test_destroy_with_refs), cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
