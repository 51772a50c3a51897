/* Tests of per-stream prefetch prediction: two access streams interleaved, each with its own
 * pattern (sequential, strided, a repeated order). With stream ids (ds_cache_get_stream) each
 * stream's detector sees its own pattern; as one sequence (ds_cache_get) the interleaving hides
 * it. Predictions are scored when made (cache.prefetch.* counters), so the checks do not depend
 * on the background moves' timing; those are checked loosely. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "test_util.h"

static double stat_value(ds_context *ctx, const char *name) {
  ds_stats *st = NULL;
  double v = -1;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, st, name), DS_OK);
  ds_stats_free(st);
  return v;
}

static ds_cache *stream_cache(ds_context *ctx) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 8 * 1100;
  o.l2_bytes = 1 << 20;
  o.policy = "lru";
  o.shards = 1;
  o.prefetch_depth = 2;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  return c;
}

static void put_str(ds_cache *c, const char *key) {
  char v[1024];
  memset(v, key[strlen(key) - 1], sizeof v);
  assert_int_equal(ds_cache_put(c, key, strlen(key), v, sizeof v), DS_OK);
}

/* One get, as stream (or through ds_cache_get when stream < 0); checks the value. */
static void get_str(ds_cache *c, int64_t stream, const char *key) {
  char v[1024], want[1024];
  size_t len = 0;
  memset(want, key[strlen(key) - 1], sizeof want);
  ds_status st = stream < 0 ? ds_cache_get(c, key, strlen(key), v, sizeof v, &len)
                            : ds_cache_get_stream(c, (uint64_t)stream, key, strlen(key), v,
                                                  sizeof v, &len);
  assert_int_equal(st, DS_OK);
  assert_int_equal(len, sizeof v);
  assert_memory_equal(v, want, sizeof v);
  struct timespec ts = {0, 300000}; /* the loader's work between reads */
  nanosleep(&ts, NULL);
}

/* Stream 1 reads a/000, a/001, ... (sequential), stream 2 b/000, b/005, ... (stride 5),
 * interleaved; returns the context's counters after one pass. */
static void run_strided(int with_streams, double *stride, double *correct, uint64_t *l1_hits) {
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_cache *c = stream_cache(ctx);
  char key[32];
  for (int i = 0; i < 60; i++) {
    snprintf(key, sizeof key, "a/%03d", i);
    put_str(c, key);
    snprintf(key, sizeof key, "b/%03d", i * 5);
    put_str(c, key);
  }
  for (int i = 0; i < 60; i++) {
    snprintf(key, sizeof key, "a/%03d", i);
    get_str(c, with_streams ? 1 : -1, key);
    snprintf(key, sizeof key, "b/%03d", i * 5);
    get_str(c, with_streams ? 2 : -1, key);
  }
  *stride = stat_value(ctx, "cache.prefetch.predicted_stride");
  *correct = stat_value(ctx, "cache.prefetch.correct");
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  *l1_hits = s.hits;
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

static void test_sequential_and_strided_streams(void **state) {
  (void)state;
  double stride = 0, correct = 0;
  uint64_t hits = 0;
  run_strided(1, &stride, &correct, &hits);
  /* each stream confirms its stride at its third get, then predicts 2 keys per get */
  assert_int_equal((int)stride, 2 * 2 * 58);
  assert_int_equal((int)correct, 2 * 57);
  assert_true(hits > 10); /* loose: the background moves may be starved on a loaded machine */
  run_strided(0, &stride, &correct, &hits);
  assert_int_equal((int)stride, 0); /* a/, b/, a/, ...: no stride ever repeats */
  assert_int_equal((int)correct, 0);
}

/* Key i of stream s: "A-k-" or "B-k-" + two letters: 6 bytes (not an integer key) and no
 * trailing number, so only the Markov predictor applies. */
static void letter_key(char *key, int s, int i) {
  snprintf(key, 8, "%c-k-%c%c", s ? 'B' : 'A', 'a' + i / 26, 'a' + i % 26);
}

/* Two streams, each replaying its own shuffled order every epoch; the interleaving shifts
 * between epochs (loaders at different speeds). Returns correct predictions in epoch 2. */
static double run_markov(int with_streams, uint64_t *l1_hits) {
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_cache *c = stream_cache(ctx);
  int order[2][30];
  char key[8];
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < 30; i++) {
      order[s][i] = (i * (s ? 7 : 11) + 3) % 30; /* a fixed permutation per stream */
      letter_key(key, s, i);
      put_str(c, key);
    }
  double before = 0;
  for (int epoch = 0; epoch < 2; epoch++) {
    if (epoch == 1) before = stat_value(ctx, "cache.prefetch.correct");
    for (int i = 0; i < 30; i++) {
      letter_key(key, 0, order[0][i]);
      get_str(c, with_streams ? 10 : -1, key);
      letter_key(key, 1, order[1][(i + epoch * 7) % 30]);
      get_str(c, with_streams ? 20 : -1, key);
    }
  }
  double correct = stat_value(ctx, "cache.prefetch.correct") - before;
  assert_int_equal((int)stat_value(ctx, "cache.prefetch.predicted_stride"), 0);
  ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L1);
  *l1_hits = s.hits;
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
  return correct;
}

static void test_repeated_order_streams(void **state) {
  (void)state;
  uint64_t hits_streams = 0, hits_one = 0;
  double with = run_markov(1, &hits_streams), without = run_markov(0, &hits_one);
  printf("repeated order, epoch 2: %.0f of 60 gets predicted per stream, %.0f as one sequence; "
         "L1 hits %llu vs %llu\n", with, without, (unsigned long long)hits_streams,
         (unsigned long long)hits_one);
  /* per stream, every get of epoch 2 but the point where B's shifted order wraps was predicted
   * (the successors were learned in epoch 1) */
  assert_true(with >= 56);
  assert_true(without <= 4); /* the successors learned across streams no longer hold */
  assert_true(hits_streams > 10);
}

static void test_stream_args(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_cache *c = stream_cache(ctx);
  size_t len = 0;
  char v[8];
  assert_int_equal(ds_cache_get_stream(NULL, 1, "k", 1, v, sizeof v, &len), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_get_stream(c, 1, NULL, 1, v, sizeof v, &len), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_get_stream(c, 1, "k", 1, v, sizeof v, &len), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_cache_put(c, "k", 1, "vv", 2), DS_OK);
  /* many streams: detectors are shared beyond 64, still correct gets */
  for (uint64_t s = 0; s < 200; s++) {
    assert_int_equal(ds_cache_get_stream(c, s * 977, "k", 1, v, sizeof v, &len), DS_OK);
    assert_int_equal(len, 2);
  }
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sequential_and_strided_streams),
      cmocka_unit_test(test_repeated_order_streams),
      cmocka_unit_test(test_stream_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
