/* Tests of the cache module's eviction policies and trace loader: exact LRU and Belady miss
 * counts against libCacheSim's reference on real traces (from $DS_SHARED_DATA, skipped when
 * absent), invariants of every policy under random weighted workloads, bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cachetrace.h"
#include "cache/policy.h"
#include "test_util.h"

static long replay(ds_context *ctx, const ds__cachetrace *t, const char *name, uint64_t size) {
  ds__policy *p = NULL;
  assert_int_equal(ds__policy_create(&p, ctx, name, size, 0, NULL, NULL), DS_OK);
  long misses = 0;
  for (size_t i = 0; i < t->n; i++) {
    int r = ds__policy_access(p, t->keys[i], 1, t->next[i]);
    assert_true(r >= 0);
    misses += r == 0;
    assert_true(p->used <= size);
  }
  ds__policy_destroy(p);
  return misses;
}

/* Reference miss ratios (libCacheSim, shared/data/cachetrace/reference_miss_ratios.csv) for
 * three fractions; LRU and Belady are deterministic, so counts must agree exactly. */
static int find_ref(const char *csv, const char *trace, const char *frac, const char *policy,
                    double *mr, long *requests) {
  FILE *f = fopen(csv, "r");
  if (!f) return 0;
  char line[512];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    char tr[64], fr[32], po[32];
    long req, uniq, size;
    double m;
    if (sscanf(line, "%63[^,],%ld,%ld,%31[^,],%ld,%31[^,],%lf", tr, &req, &uniq, fr, &size, po,
               &m) == 7 &&
        !strcmp(tr, trace) && !strcmp(fr, frac) && !strcmp(po, policy)) {
      *mr = m;
      *requests = req;
      found = 1;
    }
  }
  fclose(f);
  return found;
}

static void check_trace_against_reference(const char *rel, const char *trace) {
  const char *data = getenv("DS_SHARED_DATA");
  char path[4096], csv[4096];
  if (!data) {
    printf("skipped: DS_SHARED_DATA not set (real traces absent)\n");
    return;
  }
  snprintf(path, sizeof path, "%s/cachetrace/%s", data, rel);
  snprintf(csv, sizeof csv, "%s/cachetrace/reference_miss_ratios.csv", data);
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    printf("skipped: %s absent\n", path);
    return;
  }
  fclose(probe);
  ds_context *ctx = ds_test_context(NULL, 0);
  ds__cachetrace t;
  assert_int_equal(ds__cachetrace_load(&t, ctx, path), DS_OK);
  assert_string_equal(t.name, trace);
  static const char *const fracs[] = {"0.01", "0.1", "0.5"};
  static const char *const pols[] = {"lru", "belady"};
  int checked = 0;
  for (int f = 0; f < 3; f++)
    for (int k = 0; k < 2; k++) {
      double mr;
      long req;
      if (!find_ref(csv, trace, fracs[f], pols[k], &mr, &req)) continue;
      assert_int_equal((long)t.n, req);
      uint64_t size = (uint64_t)floor(atof(fracs[f]) * (double)t.unique + 1e-9);
      long misses = replay(ctx, &t, pols[k], size);
      assert_int_equal(misses, lround(mr * (double)req));
      checked++;
    }
  assert_int_equal(checked, 6);
  ds__cachetrace_free(&t, ctx);
  ds_context_destroy(ctx);
}

static void test_reference_cpp_gzip(void **state) {
  (void)state;
  check_trace_against_reference("lirs/cpp.trace.gz", "cpp");
}

static void test_reference_loop_crlf(void **state) {
  (void)state;
  check_trace_against_reference("lirs/loop.trace.gz", "loop");
}

static void test_reference_cloudphysics_bin(void **state) {
  (void)state;
  check_trace_against_reference("cloudPhysicsIO.oracleGeneral.bin", "cloudPhysicsIO");
}

typedef struct {
  uint64_t evicted;
} evict_count;

static void count_evict(void *user, uint64_t key) {
  (void)key;
  ((evict_count *)user)->evicted++;
}

/* Random weighted workload: the resident weight never exceeds the capacity, and inserted =
 * resident + evicted + removed for every policy. */
static void test_invariants_all_policies(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  for (const char *const *name = ds__policy_names(); *name; name++) {
    evict_count ec = {0};
    ds__policy *p = NULL;
    assert_int_equal(ds__policy_create(&p, ctx, *name, 1000, 40, count_evict, &ec), DS_OK);
    uint64_t seed = 42, admitted = 0, removed = 0, hits = 0;
    for (int i = 0; i < 50000; i++) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      uint64_t r = seed >> 33;
      uint64_t key = (r % 7) ? r % 300 : r % 5000; /* a hot set and a long tail */
      uint32_t w = 1 + (uint32_t)(key % 50);
      if (r % 97 == 0) {
        removed += (uint64_t)ds__policy_remove(p, key);
        continue;
      }
      if (ds__policy_touch(p, key, (int64_t)(i + (int)(r % 1000)))) {
        hits++;
        continue;
      }
      int a = ds__policy_insert(p, key, w, (int64_t)(i + (int)(r % 1000)));
      assert_true(a == 0 || a == 1);
      admitted += (uint64_t)a;
      assert_true(p->used <= p->capacity);
    }
    assert_true(hits > 1000);
    assert_int_equal(admitted, p->resident + ec.evicted + removed);
    assert_int_equal(ds__policy_insert(p, 999999, 1001, -1), 0); /* heavier than the cache */
    ds__policy_destroy(p);
  }
  ds_context_destroy(ctx);
}

static void test_bad_input(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds__policy *p = (ds__policy *)1;
  assert_int_equal(ds__policy_create(&p, ctx, "nope", 10, 0, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_null(p);
  assert_non_null(strstr(ds_context_last_error(ctx), "nope"));
  assert_int_equal(ds__policy_create(&p, ctx, NULL, 10, 0, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds__policy_create(&p, ctx, "lru", 0, 0, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_true(ds__policy_is_oracle("belady"));
  assert_false(ds__policy_is_oracle("lruk+"));
  ds__policy_destroy(NULL);
  ds__cachetrace t;
  assert_int_equal(ds__cachetrace_load(&t, ctx, "/nonexistent/x.trace.gz"), DS_ERR_IO);
  char path[4096];
  const char *tmp = getenv("DS_TEST_TMP");
  snprintf(path, sizeof path, "%s/bad.oracleGeneral.bin", tmp ? tmp : "/tmp");
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs("0123456789", f); /* not a multiple of 24 bytes */
  fclose(f);
  assert_int_equal(ds__cachetrace_load(&t, ctx, path), DS_ERR_FORMAT);
  snprintf(path, sizeof path, "%s/small.trace", tmp ? tmp : "/tmp");
  f = fopen(path, "wb");
  fputs("1\r\n*\r\n2\r\n1\r\nabc\r\n", f);
  fclose(f);
  assert_int_equal(ds__cachetrace_load(&t, ctx, path), DS_OK);
  assert_int_equal(t.n, 4);
  assert_int_equal(t.unique, 3);
  assert_int_equal(t.next[0], 2);
  assert_int_equal(t.next[1], -1);
  assert_string_equal(t.name, "small");
  ds__cachetrace_free(&t, ctx);
  ds_context_destroy(ctx);
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  fclose(f);
}

/* Regressions from fuzz_cachetrace: an empty file, and a gzip stream that decompresses to
 * nothing, reached the text parser with a NULL buffer (UBSan: offset on a null pointer). */
static void test_trace_empty_and_memory(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds__cachetrace t;
  char path[4096];
  const char *tmp = getenv("DS_TEST_TMP");
  static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                                     0x03, 0x0d, 0xca, 0xb9, 0x0d, 0xc0, 0x30, 0x00, 0xc3, 0xc0,
                                     0x5e, 0x00, 0x77, 0xb1, 0xe2, 0x2f, 0xd9, 0x7f, 0x00, 0x00};
  snprintf(path, sizeof path, "%s/empty.trace.gz", tmp ? tmp : "/tmp");
  write_bytes(path, gz, sizeof gz);
  ds_status st = ds__cachetrace_load(&t, ctx, path);
  assert_true(st == DS_ERR_FORMAT);
  assert_null(t.keys);
  write_bytes(path, "", 0);
  assert_int_equal(ds__cachetrace_load(&t, ctx, path), DS_ERR_FORMAT);
  remove(path);
  snprintf(path, sizeof path, "%s/empty.trace", tmp ? tmp : "/tmp");
  write_bytes(path, "", 0);
  assert_int_equal(ds__cachetrace_load(&t, ctx, path), DS_ERR_FORMAT);
  remove(path);
  /* from memory: no terminating NUL needed; the format follows the name's suffix */
  static const char text[3] = {'7', '\n', '7'};
  assert_int_equal(ds__cachetrace_parse(&t, ctx, "m.trace", text, sizeof text), DS_OK);
  assert_int_equal(t.n, 2);
  assert_int_equal(t.unique, 1);
  assert_int_equal(t.next[0], 1);
  assert_string_equal(t.name, "m");
  ds__cachetrace_free(&t, ctx);
  assert_int_equal(ds__cachetrace_parse(&t, ctx, "m.csv", "h\n1,2,3,4,99\n", 13), DS_OK);
  assert_int_equal(t.keys[0], 99);
  ds__cachetrace_free(&t, ctx);
  assert_int_equal(ds__cachetrace_parse(&t, ctx, "m.trace", NULL, 0), DS_ERR_FORMAT);
  assert_int_equal(ds__cachetrace_parse(&t, ctx, "m.oracleGeneral.bin", "x", 1), DS_ERR_FORMAT);
  assert_int_equal(ds__cachetrace_parse(&t, ctx, NULL, "x", 1), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_cpp_gzip),
      cmocka_unit_test(test_reference_loop_crlf),
      cmocka_unit_test(test_reference_cloudphysics_bin),
      cmocka_unit_test(test_invariants_all_policies),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_trace_empty_and_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
