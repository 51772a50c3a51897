/* Tests of the cache's zero-copy references (ds_cache_get_ref / ds_cache_release): a
 * reference stays valid and unchanged while other threads replace, remove, evict and flush its
 * key; values let go of while referenced (zombies) are reported apart and freed at the last
 * release; exact hit counts; destroy with references outstanding; double and NULL releases. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test_util.h"

/* Every test runs twice (see main): values on the heap, then every cache's values and entries
 * in its L1 arena (cache_l1_huge_pages = always), small caches included. */
static int64_t huge_pages;
static ds_context *test_ctx(void) {
  ds_param_value pv[1] = {{DS_PARAM_CACHE_L1_HUGE_PAGES, 0, huge_pages}};
  return ds_test_context(pv, 1);
}

static ds_cache *new_cache(ds_context *ctx, uint64_t l1, uint64_t l2, const char *policy) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = l1;
  o.l2_bytes = l2;
  o.policy = policy;
  o.shards = 1;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  return c;
}

/* A context stat after ds_cache_stats has published L1's. */
static double ctx_stat(ds_context *ctx, ds_cache *c, const char *name) {
  ds_test_tier_stats(c, DS_CACHE_L1);
  return ds_test_stat(ctx, name);
}

/* A value that says which key and version it is: 8 header bytes, then bytes derived from them,
 * so a reader can check that it is whole and never changes under it. */
static size_t make_value(uint8_t *v, uint32_t key, uint32_t version) {
  size_t n = 64 + (key % 4) * 300; /* inline (<= 256) and separately allocated values */
  memcpy(v, &key, 4);
  memcpy(v + 4, &version, 4);
  for (size_t k = 8; k < n; k++) v[k] = (uint8_t)(key * 7u + version * 13u + k);
  return n;
}

static int value_ok(const uint8_t *v, size_t n, uint32_t key) {
  uint32_t k, ver;
  memcpy(&k, v, 4);
  memcpy(&ver, v + 4, 4);
  if (k != key || n != 64 + (key % 4) * 300) return 0;
  for (size_t i = 8; i < n; i++)
    if (v[i] != (uint8_t)(key * 7u + ver * 13u + i)) return 0;
  return 1;
}

#define NKEYS 48
#define HELD 4

typedef struct {
  ds_cache *c;
  ds_context *ctx;
  uint32_t seed;
  int iters;
  long hits, errors;
  ds__atomic_int *stop;
  ds__atomic_int *wops; /* the changer's operations so far */
  ds__atomic_int *seen; /* the changer saw a zombie (a reference outliving its entry) */
} ref_arg;

typedef struct {
  const uint8_t *d;
  size_t len;
  uint32_t key;
  ds_cache_ref *r;
} held_ref;

/* Keeps up to HELD references alive across the writer's changes, checks each value when taken
 * and again just before its release. */
static void *referrer(void *p) {
  ref_arg *a = p;
  held_ref held[HELD];
  memset(held, 0, sizeof held);
  /* its iterations, 2000 of the changer's operations and a zombie seen (bounded) */
  for (int i = 0; i < 100 * a->iters &&
                  (i < a->iters || ds__load(a->wops) < 2000 || !ds__load(a->seen));
       i++) {
    a->seed = a->seed * 1664525u + 1013904223u;
    held_ref *h = &held[i % HELD];
    if (h->r) {
      if (!value_ok(h->d, h->len, h->key)) a->errors++;
      if (ds_cache_release(a->c, h->r) != DS_OK) a->errors++;
      h->r = NULL;
    }
    h->key = (a->seed >> 8) % NKEYS;
    const void *d;
    if (ds_cache_get_ref(a->c, &h->key, sizeof h->key, &d, &h->len, &h->r) != DS_OK) {
      h->r = NULL;
      continue;
    }
    h->d = d;
    a->hits++;
    if (!value_ok(h->d, h->len, h->key)) a->errors++;
  }
  for (int k = 0; k < HELD; k++)
    if (held[k].r) {
      if (!value_ok(held[k].d, held[k].len, held[k].key)) a->errors++;
      ds_cache_release(a->c, held[k].r);
    }
  return NULL;
}

/* Replaces, removes, flushes, and puts other keys into a tiny budget (evictions). */
static void *changer(void *p) {
  ref_arg *a = p;
  uint8_t v[1024];
  uint32_t version = 1;
  for (int i = 0; !ds__load(a->stop); i++) {
    ds__store(a->wops, i);
    if (!ds__load(a->seen)) { /* until zombies are seen to happen */
      ds_cache_tier_stats s;
      memset(&s, 0, sizeof s);
      s.struct_size = sizeof s;
      ds_stats *snap = NULL;
      double z = 0;
      if (ds_cache_stats(a->c, DS_CACHE_L1, &s) == DS_OK &&
          ds_stats_snapshot(&snap, a->ctx) == DS_OK &&
          ds_stats_find(&z, snap, "cache.l1.zombies") == DS_OK && z > 0)
        ds__store(a->seen, 1);
      ds_stats_free(snap);
    }
    a->seed = a->seed * 1664525u + 1013904223u;
    uint32_t key = (a->seed >> 8) % NKEYS, op = (a->seed >> 20) % 16;
    if (op == 0) {
      ds_cache_remove(a->c, &key, sizeof key);
    } else if (op == 1 && i % 64 == 1) {
      ds_cache_flush(a->c);
    } else if (op < 6) { /* another key: pushes the referenced ones out */
      key += NKEYS + (a->seed % 512);
      if (ds_cache_put(a->c, &key, sizeof key, v, make_value(v, key, version++)) != DS_OK)
        a->errors++;
    } else if (ds_cache_put(a->c, &key, sizeof key, v, make_value(v, key, version++)) != DS_OK) {
      a->errors++;
    }
  }
  return NULL;
}

static void run_stress(const char *policy) {
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 16 << 10, 0, policy); /* ~25 values: constant evictions */
  uint8_t v[1024];
  for (uint32_t k = 0; k < NKEYS; k++)
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, make_value(v, k, 0)), DS_OK);
  ds__atomic_int stop = 0, wops = 0, seen = 0;
  ref_arg r[2] = {{c, ctx, 1, 20000, 0, 0, &stop, &wops, &seen},
                  {c, ctx, 2, 20000, 0, 0, &stop, &wops, &seen}};
  ref_arg w = {c, ctx, 3, 0, 0, 0, &stop, &wops, &seen};
  pthread_t th[3];
  pthread_create(&th[2], NULL, changer, &w);
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, referrer, &r[i]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  ds__store(&stop, 1);
  pthread_join(th[2], NULL);
  assert_int_equal(r[0].errors + r[1].errors + w.errors, 0);
  assert_true(r[0].hits + r[1].hits > 0);
  assert_true(ds__load(&seen)); /* references outlived their entries */
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_int_equal(s.hits, (uint64_t)(r[0].hits + r[1].hits)); /* every reference, once */
  assert_true(s.bytes <= 16 << 10);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 0); /* all released, all freed */
  assert_true(ctx_stat(ctx, c, "cache.l1.zombie_bytes") == 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* lruk+: the lock-free path; lru: the locked one (both count the reference in the entry). */
static void test_stress_lockfree(void **state) {
  (void)state;
  run_stress("lruk+");
}

static void test_stress_locked(void **state) {
  (void)state;
  run_stress("lru");
}

/* Values let go of while referenced leave the tier's bytes and entries at once, are reported
 * apart (zombie stats), and are freed at the last of several releases. */
static void test_zombie_accounting(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 1 << 20, 0, "lruk+");
  uint8_t v[1024], w[1024];
  uint32_t key = 5;
  size_t n = make_value(v, key, 1);
  assert_int_equal(ds_cache_put(c, &key, sizeof key, v, n), DS_OK);
  const void *d1, *d2;
  size_t l1, l2;
  ds_cache_ref *r1, *r2;
  assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d1, &l1, &r1), DS_OK);
  assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d2, &l2, &r2), DS_OK);
  assert_ptr_equal(d1, d2); /* zero-copy: both point at the cached bytes */
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).hits, 2);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 0);
  /* replaced: the new value is cached, the old one is a zombie */
  assert_int_equal(ds_cache_put(c, &key, sizeof key, w, make_value(w, key, 2)), DS_OK);
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.bytes, sizeof key + n); /* only the new value counts in L1's budget */
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 1);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombie_bytes") == (double)(sizeof key + n));
  assert_memory_equal(d1, v, n);
  assert_int_equal(ds_cache_release(c, r1), DS_OK);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 1); /* one reference left */
  assert_memory_equal(d2, v, n);
  assert_int_equal(ds_cache_release(c, r2), DS_OK);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 0);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombie_bytes") == 0);
  /* flush keeps a referenced entry (documented), drops it once released */
  assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d1, &l1, &r1), DS_OK);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_true(ds_cache_contains(c, &key, sizeof key));
  assert_int_equal(ds_cache_release(c, r1), DS_OK);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_false(ds_cache_contains(c, &key, sizeof key));
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).bytes, 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* An L1 entry moved down to L2 while referenced leaves the cache instead (its bytes are read);
 * a reference to an L2 value (decoded and held) mixes with zero-copy ones on the same entry. */
static void test_ref_with_l2(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 8 << 10, 1 << 20, "lruk+");
  uint8_t v[1024];
  uint32_t key = 1;
  size_t n = make_value(v, key, 1);
  assert_int_equal(ds_cache_put(c, &key, sizeof key, v, n), DS_OK);
  for (uint32_t k = 100; k < 140; k++) /* pushes key 1 down to L2 */
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, make_value(v, k, 0)), DS_OK);
  make_value(v, key, 1);
  const void *d1, *d2;
  size_t len;
  ds_cache_ref *r1, *r2;
  assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d1, &len, &r1), DS_OK); /* from L2 */
  assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d2, &len, &r2), DS_OK); /* now L1 */
  assert_ptr_equal(d1, d2);
  assert_int_equal(ds_cache_release(c, r1), DS_OK); /* back into L1's policy */
  for (uint32_t k = 200; k < 260; k++) {
    uint8_t x[1024];
    assert_int_equal(ds_cache_put(c, &k, sizeof k, x, make_value(x, k, 0)), DS_OK);
  }
  assert_memory_equal(d2, v, n);
  assert_true(value_ok(d2, len, key));
  assert_int_equal(ds_cache_release(c, r2), DS_OK);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

typedef struct {
  const char *want; /* the warning's text */
  int n;            /* warnings with it */
} warn_count;

static void count_warn(void *user, int level, const char *module, const char *message) {
  (void)module;
  warn_count *w = user;
  if (level == DS_LOG_WARN && strstr(message, w->want)) w->n++;
}

/* Destroy with references outstanding: every value is freed (the sanitizer builds check for
 * leaks), and the number is logged. L1 references (one to a zombie), and references to L2
 * values decoded and held: one to an entry still cached, one to an entry removed meanwhile
 * (a zombie too, counted as one), and a released one whose entry stays. */
static void test_destroy_outstanding(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  warn_count w = {"with 4 references outstanding", 0};
  assert_int_equal(ds_context_set_log(ctx, DS_LOG_WARN, count_warn, &w), DS_OK);
  ds_cache *c = new_cache(ctx, 8 << 10, 1 << 20, "lruk+");
  uint8_t v[1024];
  for (uint32_t k = 0; k < 40; k++) /* keys 0..2 end up in L2 */
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, make_value(v, k, 0)), DS_OK);
  const void *d;
  size_t len;
  ds_cache_ref *r[5];
  uint32_t k0 = 0, k1 = 1, k2 = 2, k38 = 38, k39 = 39;
  assert_true(ds_test_tier_stats(c, DS_CACHE_L2).entries >= 3);
  assert_int_equal(ds_cache_get_ref(c, &k0, sizeof k0, &d, &len, &r[0]), DS_OK); /* L2, held */
  assert_int_equal(ds_cache_get_ref(c, &k1, sizeof k1, &d, &len, &r[1]), DS_OK); /* L2, held */
  assert_int_equal(ds_cache_get_ref(c, &k2, sizeof k2, &d, &len, &r[2]), DS_OK); /* released */
  assert_int_equal(ds_cache_get_ref(c, &k38, sizeof k38, &d, &len, &r[3]), DS_OK); /* L1 */
  assert_int_equal(ds_cache_get_ref(c, &k39, sizeof k39, &d, &len, &r[4]), DS_OK); /* L1 */
  assert_int_equal((uintptr_t)r[0] & 1u, 0); /* the allocated kind */
  assert_int_equal(ds_cache_release(c, r[2]), DS_OK);
  assert_int_equal(ds_cache_remove(c, &k1, sizeof k1), DS_OK);   /* held: a zombie */
  assert_int_equal(ds_cache_remove(c, &k39, sizeof k39), DS_OK); /* referenced: a zombie */
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 2);
  assert_true(value_ok(d, len, k39));
  ds_cache_destroy(c);
  assert_int_equal(w.n, 1);
  ds_context_destroy(ctx);
}

/* A held L2 value removed while referenced is a zombie until its release, which frees it. */
static void test_held_l2_zombie(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  ds_cache *c = new_cache(ctx, 8 << 10, 1 << 20, "lru");
  uint8_t v[1024];
  for (uint32_t k = 0; k < 40; k++)
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, make_value(v, k, 0)), DS_OK);
  uint32_t k0 = 0;
  const void *d;
  size_t len;
  ds_cache_ref *r;
  assert_int_equal(ds_cache_get_ref(c, &k0, sizeof k0, &d, &len, &r), DS_OK);
  uint64_t l1_entries = ds_test_tier_stats(c, DS_CACHE_L1).entries;
  assert_int_equal(ds_cache_remove(c, &k0, sizeof k0), DS_OK);
  assert_false(ds_cache_contains(c, &k0, sizeof k0));
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).entries, l1_entries - 1);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 1);
  assert_true(value_ok(d, len, k0));
  assert_int_equal(ds_cache_release(c, r), DS_OK);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 0);
  assert_true(ctx_stat(ctx, c, "cache.l1.zombie_bytes") == 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* A persistent cache's references (host copies) never released are freed by destroy too. */
static void test_destroy_persistent_refs(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  warn_count w = {"with 2 references outstanding", 0};
  assert_int_equal(ds_context_set_log(ctx, DS_LOG_WARN, count_warn, &w), DS_OK);
  const char *dir = ds_test_path("cache_ref_persist");
  ds_test_remove(dir);
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 8 << 20, DS_CACHE_CODEC_LZ4), DS_OK);
  uint8_t v[1024];
  const void *d;
  size_t len;
  ds_cache_ref *r[3];
  for (uint32_t k = 0; k < 3; k++) {
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, make_value(v, k, 0)), DS_OK);
    assert_int_equal(ds_cache_get_ref(c, &k, sizeof k, &d, &len, &r[k]), DS_OK);
    assert_true(value_ok(d, len, k));
  }
  assert_int_equal(ds_cache_release(c, r[1]), DS_OK);
  ds_cache_destroy(c);
  assert_int_equal(w.n, 1);
  ds_test_remove(dir);
  ds_context_destroy(ctx);
}

/* A release too many is refused while the entry is cached; NULL arguments are clear. */
static void test_double_release(void **state) {
  (void)state;
  static const char *const pols[2] = {"lruk+", "lru"};
  for (int p = 0; p < 2; p++) {
    ds_context *ctx = test_ctx();
    ds_cache *c = new_cache(ctx, 1 << 20, 0, pols[p]);
    uint8_t v[1024];
    uint32_t key = 3;
    size_t n = make_value(v, key, 0);
    assert_int_equal(ds_cache_put(c, &key, sizeof key, v, n), DS_OK);
    const void *d;
    size_t len;
    ds_cache_ref *r;
    assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d, &len, &r), DS_OK);
    assert_int_equal(ds_cache_release(c, NULL), DS_OK);
    assert_int_equal(ds_cache_release(NULL, r), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_cache_release(c, r), DS_OK);
    assert_int_equal(ds_cache_release(c, r), DS_ERR_STATE);
    assert_non_null(strstr(ds_context_last_error(ctx), "already released"));
    /* the entry is unharmed: a later reference and its release work, a remove frees it */
    assert_int_equal(ds_cache_get_ref(c, &key, sizeof key, &d, &len, &r), DS_OK);
    assert_memory_equal(d, v, n);
    assert_int_equal(ds_cache_release(c, r), DS_OK);
    assert_int_equal(ds_cache_remove(c, &key, sizeof key), DS_OK);
    assert_true(ctx_stat(ctx, c, "cache.l1.zombies") == 0);
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zombie_accounting), cmocka_unit_test(test_ref_with_l2),
      cmocka_unit_test(test_destroy_outstanding), cmocka_unit_test(test_held_l2_zombie),
      cmocka_unit_test(test_destroy_persistent_refs), cmocka_unit_test(test_double_release),
      cmocka_unit_test(test_stress_lockfree),   cmocka_unit_test(test_stress_locked),
  };
  int failed = cmocka_run_group_tests_name("values on the heap", tests, NULL, NULL);
  huge_pages = 2;
  return failed + cmocka_run_group_tests_name("values in the L1 arena", tests, NULL, NULL);
}
