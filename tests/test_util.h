/* Helpers shared by the cmocka tests: a context without environment, and fresh scratch paths
 * under DS_TEST_TMP (ctest sets it to the build's tests folder). Include after <cmocka.h>. */
#ifndef DS_TEST_UTIL_H
#define DS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deepseek.h"

/* A context with DS_CONTEXT_NO_ENV, no telemetry thread and no stats file, plus @p extra
 * tunables (applied after those two, so they may override them). */
static inline ds_context *ds_test_context(const ds_param_value *extra, uint32_t nextra) {
  ds_param_value pv[16] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
  uint32_t n = 2;
  assert_true(nextra <= 14);
  for (uint32_t i = 0; i < nextra; i++) pv[n++] = extra[i];
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = n;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

/* The stats of cache @p c's tier @p tier (DS_CACHE_L1 ...), asserting that the
 * call succeeds. */
static inline ds_cache_tier_stats ds_test_tier_stats(ds_cache *c, int tier) {
  ds_cache_tier_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  assert_int_equal(ds_cache_stats(c, tier, &s), DS_OK);
  return s;
}

/* The current value of stat @p name, or -1 when the context has no such stat. */
static inline double ds_test_stat(ds_context *ctx, const char *name) {
  ds_stats *s = NULL;
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  double v = -1;
  if (ds_stats_find(&v, s, name) != DS_OK) v = -1;
  ds_stats_free(s);
  return v;
}

/* The first CUDA device of the context's fabric, or -1 after printing that @p test skips its
 * GPU part (what the CPU path covers instead: @p covered); with DS_REQUIRE_GPU=1 in the
 * environment a missing GPU fails the test instead. */
static inline int32_t ds_test_cuda_or_skip(ds_context *ctx, const char *test, const char *covered) {
  int32_t dev = -1;
  if (ds_fabric_device_find(&dev, ctx, DS_FABRIC_DEVICE_CUDA, 0) == DS_OK) return dev;
  const char *req = getenv("DS_REQUIRE_GPU");
  if (req && req[0] == '1' && !req[1]) fail_msg("%s: DS_REQUIRE_GPU=1 but no CUDA device", test);
  printf("%s: no CUDA device: skipped (%s)\n", test, covered);
  return -1;
}

/* Removes @p path and everything under it. */
static inline void ds_test_remove(const char *path) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

/* DS_TEST_TMP/NAME.PID, removed if it exists. Four rotating buffers: a test may hold up to
 * four of these paths at once. */
static inline const char *ds_test_path(const char *name) {
  static char buf[4][1024];
  static int k;
  char *b = buf[k++ & 3];
  const char *dir = getenv("DS_TEST_TMP");
  snprintf(b, sizeof buf[0], "%s/%s.%d", dir ? dir : "/tmp", name, (int)getpid());
  ds_test_remove(b);
  return b;
}

#endif /* DS_TEST_UTIL_H */
