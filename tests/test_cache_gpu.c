/* Tests of the cache's GPU tier: a device-memory tier above L1 reached through the fabric's
 * backend table. A fake device (registered backend, its memory counted) checks puts landing
 * in device memory, the budget, eviction down to L1 and L2, promotion on hit, device
 * allocation failure (the entry stays below), owned values, pins, references, flush, stats
 * and options; then the same moves on a real OpenCL device (PoCL here) and on a CUDA GPU when
 * there is one (skipped without, failing with DS_REQUIRE_GPU=1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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

/* ---- a fake device: host memory behind the backend table, live bytes counted ---- */
struct fake {
  int64_t live_bytes, live_allocs;
  int fail_alloc, fail_copy_out;
  int copies_in, copies_out;
};

static ds_status fake_describe(void *user, int32_t dev, ds_device_info *info) {
  (void)user;
  info->kind = DS_FABRIC_DEVICE_OTHER;
  info->memory_bytes = 1 << 20;
  snprintf(info->name, sizeof info->name, "fakegpu:%d", (int)dev);
  return DS_OK;
}

static ds_status fake_alloc(void *user, int32_t dev, size_t size, void *host, void **mem,
                            int *aliased, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dev, (void)host;
  *aliased = 0;
  if (f->fail_alloc) {
    snprintf(msg, msg_size, "fake device full");
    return DS_ERR_NO_SPACE;
  }
  size_t *p = malloc(sizeof(size_t) * 2 + size);
  if (!p) return DS_ERR_NO_MEMORY;
  p[0] = size;
  f->live_bytes += (int64_t)size;
  f->live_allocs++;
  *mem = p + 2;
  return DS_OK;
}

static void fake_free(void *user, int32_t dev, void *mem) {
  struct fake *f = user;
  (void)dev;
  size_t *p = (size_t *)mem - 2;
  f->live_bytes -= (int64_t)p[0];
  f->live_allocs--;
  free(p);
}

static ds_status fake_in(void *user, int32_t dev, void *mem, size_t off, const void *host,
                         size_t n, void **event, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dev, (void)msg, (void)msg_size;
  f->copies_in++;
  memcpy((char *)mem + off, host, n);
  if (event) *event = NULL;
  return DS_OK;
}

static ds_status fake_out(void *user, int32_t dev, void *host, void *mem, size_t off, size_t n,
                          void **event, char *msg, size_t msg_size) {
  struct fake *f = user;
  (void)dev;
  if (f->fail_copy_out) {
    snprintf(msg, msg_size, "fake copy failed");
    return DS_ERR_DEVICE;
  }
  f->copies_out++;
  memcpy(host, (char *)mem + off, n);
  if (event) *event = NULL;
  return DS_OK;
}

static int32_t add_fake(ds_context *ctx, struct fake *f) {
  ds_fabric_backend b;
  memset(&b, 0, sizeof b);
  b.struct_size = sizeof b;
  b.name = "fakegpu";
  b.device_count = 1;
  b.describe = fake_describe;
  b.alloc = fake_alloc;
  b.free = fake_free;
  b.copy_in = fake_in;
  b.copy_out = fake_out;
  int32_t first = -1;
  assert_int_equal(ds_fabric_backend_register(&first, ctx, &b, f), DS_OK);
  return first;
}

static ds_cache *gpu_cache(ds_context *ctx, int32_t dev, uint64_t gpu, uint64_t l1, uint64_t l2,
                           const char *policy) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.gpu_bytes = gpu;
  o.gpu_device = dev;
  o.l1_bytes = l1;
  o.l2_bytes = l2;
  o.policy = policy;
  o.shards = 1;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  return c;
}

static double stat_value(ds_context *ctx, const char *name) {
  ds_stats *st = NULL;
  double v = -1;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, st, name), DS_OK);
  ds_stats_free(st);
  return v;
}

static void fill(char *v, size_t n, int k) {
  for (size_t i = 0; i < n; i++) v[i] = (char)(k * 31 + (int)i * 7);
}

static void put_key(ds_cache *c, int k, size_t n) {
  char key[16], v[4096];
  snprintf(key, sizeof key, "k%05d", k);
  fill(v, n, k);
  assert_int_equal(ds_cache_put(c, key, strlen(key), v, n), DS_OK);
}

static void check_key(ds_cache *c, int k, size_t n) {
  char key[16], v[4096], got[4096];
  size_t len = 0;
  snprintf(key, sizeof key, "k%05d", k);
  fill(v, n, k);
  assert_int_equal(ds_cache_get(c, key, strlen(key), got, sizeof got, &len), DS_OK);
  assert_int_equal(len, n);
  assert_memory_equal(got, v, n);
}

/* A put lands in device memory; a get copies it back; destroy frees the device memory. */
static void test_put_lands_on_device(void **state) {
  (void)state;
  struct fake f = {0};
  ds_context *ctx = test_ctx();
  int32_t dev = add_fake(ctx, &f);
  ds_cache *c = gpu_cache(ctx, dev, 64 << 10, 64 << 10, 0, NULL);
  put_key(c, 1, 1000);
  assert_int_equal(f.live_allocs, 1);
  assert_int_equal(f.live_bytes, 1000);
  ds_cache_tier_stats g = ds_test_tier_stats(c, DS_CACHE_GPU),
                      l1 = ds_test_tier_stats(c, DS_CACHE_L1);
  assert_int_equal(g.entries, 1);
  assert_int_equal(g.raw_bytes, 1000);
  assert_int_equal(l1.entries, 0);
  check_key(c, 1, 1000);
  g = ds_test_tier_stats(c, DS_CACHE_GPU);
  assert_int_equal(g.hits, 1);
  assert_true(f.copies_out >= 1);
  /* a reference holds a host copy */
  const void *data = NULL;
  size_t len = 0;
  ds_cache_ref *ref = NULL;
  assert_int_equal(ds_cache_get_ref(c, "k00001", 6, &data, &len, &ref), DS_OK);
  char want[1000];
  fill(want, sizeof want, 1);
  assert_int_equal(len, 1000);
  assert_memory_equal(data, want, 1000);
  ds_cache_release(c, ref);
  assert_int_equal(ds_cache_contains(c, "k00001", 6), 1);
  /* the fabric counts the cache's copies on the device */
  char name[64];
  snprintf(name, sizeof name, "fabric.dev%d.bytes_moved", (int)dev);
  assert_true(stat_value(ctx, name) >= 3000);
  /* a reference never released: destroy frees its host copy (the sanitizer builds check) */
  assert_int_equal(ds_cache_get_ref(c, "k00001", 6, &data, &len, &ref), DS_OK);
  ds_cache_destroy(c);
  assert_int_equal(f.live_allocs, 0);
  ds_context_destroy(ctx);
}

/* The budget holds; evicted entries move down to L1, then to L2; every value stays readable,
 * and a hit below moves the entry back up. */
static void test_budget_eviction_promotion(void **state) {
  (void)state;
  struct fake f = {0};
  ds_context *ctx = test_ctx();
  int32_t dev = add_fake(ctx, &f);
  ds_cache *c = gpu_cache(ctx, dev, 4096 + 64, 3 * 1030, 1 << 20, "lru");
  for (int k = 0; k < 12; k++) {
    put_key(c, k, 1000);
    assert_true(f.live_bytes <= 4096);
    assert_true(ds_test_tier_stats(c, DS_CACHE_GPU).bytes <= 4096 + 64);
  }
  ds_cache_tier_stats g = ds_test_tier_stats(c, DS_CACHE_GPU),
                      l1 = ds_test_tier_stats(c, DS_CACHE_L1),
                      l2 = ds_test_tier_stats(c, DS_CACHE_L2);
  assert_int_equal(g.entries, 4);
  assert_int_equal(g.evictions, 8);
  assert_int_equal(l1.entries, 3);
  assert_int_equal(l2.entries, 5);
  assert_int_equal(g.entries + l1.entries + l2.entries, 12);
  /* LRU order: k8..k11 on the device, k5..k7 in L1, k0..k4 in L2. An L1 hit moves k5 up
   * (k8 goes down to L1), and the next get of k5 is a device hit */
  check_key(c, 5, 1000);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).hits, 1);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).hits, 0);
  check_key(c, 5, 1000);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).hits, 1);
  /* an L2 hit moves k0 up as well */
  check_key(c, 0, 1000);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L2).hits, 1);
  check_key(c, 0, 1000);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).hits, 2);
  g = ds_test_tier_stats(c, DS_CACHE_GPU);
  l1 = ds_test_tier_stats(c, DS_CACHE_L1);
  l2 = ds_test_tier_stats(c, DS_CACHE_L2);
  assert_int_equal(g.entries, 4);
  assert_int_equal(l1.entries, 3);
  assert_int_equal(l2.entries, 5);
  for (int k = 0; k < 12; k++) check_key(c, k, 1000);
  assert_true(f.live_bytes <= 4096);
  ds_cache_destroy(c);
  assert_int_equal(f.live_allocs, 0);
  ds_context_destroy(ctx);
}

/* A failed device allocation keeps the entry in L1: the put succeeds and it is counted. */
static void test_alloc_failure_stays_below(void **state) {
  (void)state;
  struct fake f = {0};
  ds_context *ctx = test_ctx();
  int32_t dev = add_fake(ctx, &f);
  ds_cache *c = gpu_cache(ctx, dev, 64 << 10, 64 << 10, 0, NULL);
  f.fail_alloc = 1;
  put_key(c, 7, 500);
  ds_cache_tier_stats g = ds_test_tier_stats(c, DS_CACHE_GPU);
  assert_int_equal(g.entries, 0);
  assert_int_equal(g.io_errors, 1);
  assert_int_equal(g.rejected, 1);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).entries, 1);
  check_key(c, 7, 500); /* an L1 hit; the promotion fails again and it stays */
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).entries, 1);
  f.fail_alloc = 0;
  check_key(c, 7, 500); /* now it moves up */
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).entries, 1);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).entries, 0);
  /* a failed copy from the device drops the entry and says so */
  f.fail_copy_out = 1;
  char buf[600];
  size_t len = 0;
  assert_int_equal(ds_cache_get(c, "k00007", 6, buf, sizeof buf, &len), DS_ERR_DEVICE);
  assert_non_null(strstr(ds_context_last_error(ctx), "fakegpu"));
  assert_int_equal(ds_cache_contains(c, "k00007", 6), 0);
  f.fail_copy_out = 0;
  ds_cache_destroy(c);
  assert_int_equal(f.live_allocs, 0);
  ds_context_destroy(ctx);
}

static int owned_frees;
static void owned_free(void *user, void *val) {
  (void)user;
  owned_frees++;
  free(val);
}

/* An owned value goes back to its owner once on the device; pins, remove and flush. */
static void test_owned_pins_remove_flush(void **state) {
  (void)state;
  struct fake f = {0};
  ds_context *ctx = test_ctx();
  int32_t dev = add_fake(ctx, &f);
  ds_cache *c = gpu_cache(ctx, dev, 2100, 1 << 20, 0, "lru");
  owned_frees = 0;
  char *v = malloc(1000);
  fill(v, 1000, 3);
  assert_int_equal(ds_cache_put_owned(c, "k00003", 6, v, 1000, owned_free, NULL), DS_OK);
  assert_int_equal(owned_frees, 1);
  check_key(c, 3, 1000);
  /* pinned, it stays on the device while others pass through */
  assert_int_equal(ds_cache_pin(c, "k00003", 6), DS_OK);
  for (int k = 10; k < 16; k++) put_key(c, k, 1000);
  /* k3, held out of the policy, plus the two newest the budget holds beside it */
  assert_int_equal(f.live_allocs, 3);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).entries, 3);
  assert_int_equal(ds_cache_unpin(c, "k00003", 6), DS_OK);
  assert_int_equal(ds_cache_unpin(c, "k00003", 6), DS_ERR_STATE);
  check_key(c, 3, 1000);
  assert_int_equal(ds_cache_remove(c, "k00003", 6), DS_OK);
  assert_int_equal(ds_cache_remove(c, "k00003", 6), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_int_equal(f.live_allocs, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).entries, 0);
  assert_true(stat_value(ctx, "cache.gpu.hits") >= 2);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Options: a CPU device or a missing one is refused; -1 without CUDA means no tier; options of
 * the size before the GPU fields still work; the tunables configure it. */
static void test_options_and_tunables(void **state) {
  (void)state;
  struct fake f = {0};
  ds_context *ctx = test_ctx();
  int32_t dev = add_fake(ctx, &f);
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  ds_cache *c = NULL;
  o.gpu_bytes = 1 << 20;
  o.gpu_device = 0;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "CPU"));
  o.gpu_device = 63;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_NOT_FOUND);
  o.gpu_device = 64;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_INVALID_ARG);
  o.gpu_device = -1;
  int32_t cuda = -1;
  int has_cuda = ds_fabric_device_find(&cuda, ctx, DS_FABRIC_DEVICE_CUDA, 0) == DS_OK;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  ds_cache_tier_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  assert_int_equal(ds_cache_stats(c, DS_CACHE_GPU, &s), has_cuda ? DS_OK : DS_ERR_INVALID_ARG);
  ds_cache_destroy(c);
  /* the 1.x options size: no GPU fields, defaults */
  o.struct_size = (uint32_t)(offsetof(ds_cache_options, prefetch_depth) + sizeof(uint32_t));
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_OK);
  assert_int_equal(ds_cache_stats(c, DS_CACHE_GPU, &s), has_cuda ? DS_OK : DS_ERR_INVALID_ARG);
  ds_cache_destroy(c);
  o.struct_size = 12;
  assert_int_equal(ds_cache_create(&c, ctx, &o), DS_ERR_ABI);
  /* tunables */
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_GPU_BYTES, 1 << 20), DS_OK);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_GPU_DEVICE, dev), DS_OK);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_GPU_DEVICE, -2), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_create(&c, ctx, NULL), DS_OK);
  put_key(c, 1, 100);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).entries, 1);
  assert_int_equal(f.live_allocs, 1);
  ds_cache_destroy(c);
  assert_int_equal(f.live_allocs, 0);
  ds_context_destroy(ctx);
}

/* The same moves on a real device: the given kind's first device, with its own memory. */
static void real_device_moves(ds_context *ctx, int32_t dev) {
  ds_cache *c = gpu_cache(ctx, dev, 4096 + 64, 1 << 20, 0, "lru");
  for (int k = 0; k < 8; k++) put_key(c, k, 1000);
  ds_cache_tier_stats g = ds_test_tier_stats(c, DS_CACHE_GPU);
  assert_int_equal(g.entries, 4);
  assert_int_equal(g.evictions, 4);
  assert_int_equal(g.io_errors, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).entries, 4);
  for (int k = 7; k >= 0; k--) check_key(c, k, 1000); /* newest first: 4 device, 4 L1 hits */
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).hits, 4);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L1).hits, 4);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).entries, 4);
  for (int k = 0; k < 8; k++) check_key(c, k, 1000);
  ds_cache_destroy(c);
}

static void test_opencl_device(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  int32_t dev = -1;
  if (ds_fabric_device_find(&dev, ctx, DS_FABRIC_DEVICE_OPENCL, 0) != DS_OK) {
    printf("SKIPPED: no OpenCL device (the fake device above tested the tier)\n");
  } else {
    real_device_moves(ctx, dev);
  }
  ds_context_destroy(ctx);
}

static void test_cuda_device(void **state) {
  (void)state;
  ds_context *ctx = test_ctx();
  int32_t dev = ds_test_cuda_or_skip(ctx, "test_cache_gpu",
                                     "the fake and OpenCL devices tested the tier");
  if (dev >= 0) {
    real_device_moves(ctx, dev);
    ds_cache *c = gpu_cache(ctx, -1, 64 << 20, 0, 0, NULL); /* -1 finds it */
    static char big[3 << 20]; /* larger than the pinned staging buffer: chunked copies */
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 13);
    assert_int_equal(ds_cache_put(c, "big", 3, big, sizeof big), DS_OK);
    static char got[3 << 20];
    size_t len = 0;
    assert_int_equal(ds_cache_get(c, "big", 3, got, sizeof got, &len), DS_OK);
    assert_memory_equal(got, big, sizeof big);
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_GPU).hits, 1);
    ds_cache_destroy(c);
  }
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_lands_on_device),
      cmocka_unit_test(test_budget_eviction_promotion),
      cmocka_unit_test(test_alloc_failure_stays_below),
      cmocka_unit_test(test_owned_pins_remove_flush),
      cmocka_unit_test(test_options_and_tunables),
      cmocka_unit_test(test_opencl_device),
      cmocka_unit_test(test_cuda_device),
  };
  int failed = cmocka_run_group_tests_name("values on the heap", tests, NULL, NULL);
  huge_pages = 2;
  return failed + cmocka_run_group_tests_name("values in the L1 arena", tests, NULL, NULL);
}
