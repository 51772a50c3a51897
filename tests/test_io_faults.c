/* I/O errors on the persistent cache's disk tier, through the ds__io_* fault hook (io.h):
 * a failing write (torn: half of it reaches the file), fsync/fdatasync, truncate, open,
 * rename, with EIO and ENOSPC. Each injected error must surface as DS_ERR_IO or
 * DS_ERR_NO_SPACE from the call that hit it (never a silent DS_OK that loses an acknowledged
 * put), the cache must stay usable, and what was stored before must read back after a reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "io.h"
#include "test_util.h"

static ds_context *new_ctx(void) {
  ds_param_value quiet[] = {{DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF}};
  return ds_test_context(quiet, 1);
}


static ds_status open_cache(ds_cache **c, ds_context *ctx, const char *dir, int durability,
                            uint64_t max_bytes, uint32_t sync_ms) {
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = max_bytes;
  o.durability = durability;
  o.sync_interval_ms = sync_ms;
  o.codec = DS_CACHE_CODEC_NONE; /* sizes on disk as written: segments fill predictably */
  return ds_cache_open_persistent_ex(c, ctx, dir, &o);
}

static size_t value_of(uint32_t key, uint8_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(key * 131u + (uint32_t)i);
  return n;
}

static ds_status put(ds_cache *c, uint32_t key, size_t n) {
  uint8_t v[16384];
  value_of(key, v, n);
  return ds_cache_put(c, &key, sizeof key, v, n);
}

/* 1 if key reads back with its value, 0 if absent; fails the test on a corrupt read. */
static int present(ds_cache *c, uint32_t key, size_t n) {
  uint8_t want[16384], got[16384];
  size_t len = 0;
  value_of(key, want, n);
  ds_status st = ds_cache_get(c, &key, sizeof key, got, sizeof got, &len);
  if (st == DS_ERR_NOT_FOUND) return 0;
  assert_int_equal(st, DS_OK);
  assert_int_equal(len, n);
  assert_memory_equal(want, got, n);
  return 1;
}

static ds_status expected_status(int err) { return err == ENOSPC ? DS_ERR_NO_SPACE : DS_ERR_IO; }

/* One failing write or sync during a put, with each errno, transient and sticky. */
static void test_put_errors(void **state) {
  (void)state;
  const unsigned classes[] = {DS__IO_WRITE, DS__IO_SYNC, DS__IO_WRITE | DS__IO_TRUNCATE};
  const int errs[] = {EIO, ENOSPC};
  ds_context *ctx = new_ctx();
  for (size_t ci = 0; ci < 3; ci++)
    for (size_t ei = 0; ei < 2; ei++) {
      const char *dir = ds_test_path("io_put");
      ds_cache *c = NULL;
      assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_EVERY_PUT, 8 << 20, 1000), DS_OK);
      for (uint32_t k = 0; k < 50; k++) assert_int_equal(put(c, k, 1000), DS_OK);
      int sticky = classes[ci] & DS__IO_TRUNCATE; /* the cut-off of the torn record fails too */
      ds__io_fault_set(classes[ci], 1, errs[ei], sticky);
      assert_int_equal(put(c, 1000, 3000), expected_status(errs[ei]));
      assert_int_equal(put(c, 1001, 3000), sticky ? expected_status(errs[ei]) : DS_OK);
      assert_true(ds__io_fault_hits() >= 1);
      ds__io_fault_set(0, 0, 0, 0);
      assert_false(present(c, 1000, 3000)); /* a failed put is not half there */
      assert_int_equal(put(c, 1002, 3000), DS_OK);
      for (uint32_t k = 0; k < 50; k++) assert_true(present(c, k, 1000));
      ds_cache_tier_stats s = ds_test_tier_stats(c, DS_CACHE_L3);
      assert_true(s.io_errors >= 1);
      ds_cache_destroy(c);
      assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_EVERY_PUT, 8 << 20, 1000), DS_OK);
      for (uint32_t k = 0; k < 50; k++) assert_true(present(c, k, 1000));
      assert_false(present(c, 1000, 3000));
      assert_int_equal(present(c, 1001, 3000), !sticky);
      assert_true(present(c, 1002, 3000));
      ds_cache_destroy(c);
    }
  ds_context_destroy(ctx);
}

/* Every I/O call of an open (over an existing directory) failing in turn: the open returns
 * DS_ERR_IO or DS_ERR_NO_SPACE, or succeeds; afterwards the data is all there. */
static void test_open_errors(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("io_open");
  ds_cache *c = NULL;
  assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_EVERY_PUT, 8 << 20, 1000), DS_OK);
  for (uint32_t k = 0; k < 30; k++) assert_int_equal(put(c, k, 2000), DS_OK);
  ds_cache_destroy(c);
  int failed_opens = 0;
  for (uint64_t n = 1; n < 100; n++) {
    for (int e = 0; e < 2; e++) {
      int err = e ? ENOSPC : EIO;
      ds__io_fault_set(DS__IO_ALL, n, err, 0);
      ds_status st = open_cache(&c, ctx, dir, DS_CACHE_SYNC_EVERY_PUT, 8 << 20, 1000);
      int hit = ds__io_fault_hits() > 0;
      ds__io_fault_set(0, 0, 0, 0);
      if (st != DS_OK) {
        assert_true(hit);
        assert_null(c);
        assert_true(st == DS_ERR_IO || st == DS_ERR_NO_SPACE);
        failed_opens++;
        continue;
      }
      for (uint32_t k = 0; k < 30; k++) assert_true(present(c, k, 2000));
      ds_cache_destroy(c);
      if (!hit) n = 1000; /* the open made fewer than n I/O calls: done */
    }
  }
  assert_true(failed_opens >= 2);
  /* a fresh directory: creating it, the MANIFEST (write, fsync, rename) and the first
   * segment */
  for (uint64_t n = 1; n < 20; n++) {
    const char *fresh = ds_test_path("io_open_new");
    ds__io_fault_set(DS__IO_ALL, n, ENOSPC, 0);
    ds_status st = open_cache(&c, ctx, fresh, DS_CACHE_SYNC_EVERY_PUT, 8 << 20, 1000);
    int hit = ds__io_fault_hits() > 0;
    ds__io_fault_set(0, 0, 0, 0);
    if (st != DS_OK) {
      assert_true(st == DS_ERR_IO || st == DS_ERR_NO_SPACE);
      continue;
    }
    assert_int_equal(put(c, 1, 100), DS_OK);
    assert_true(present(c, 1, 100));
    ds_cache_destroy(c);
    if (!hit) break;
  }
  ds_context_destroy(ctx);
}

/* Batched durability: a failed sync of a finished segment (at the roll to the next one) must
 * fail the put, or a later successful flush would report durable what was not synced. */
static void test_roll_sync_error(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("io_roll");
  ds_cache *c = NULL;
  /* max 2 MiB: 256 KiB segments; no timed syncs (60 s) */
  assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_BATCHED, 2 << 20, 60000), DS_OK);
  ds__io_fault_set(DS__IO_SYNC, 1, EIO, 0);
  uint32_t k = 0;
  ds_status st = DS_OK;
  for (; k < 100 && ds__io_fault_hits() == 0; k++) st = put(c, k, 10000);
  ds__io_fault_set(0, 0, 0, 0);
  assert_true(k < 100); /* a roll happened */
  assert_int_equal(st, DS_ERR_IO);
  assert_int_equal(put(c, k, 10000), DS_OK); /* usable afterwards */
  assert_int_equal(ds_cache_flush(c), DS_ERR_IO); /* the failed sync is reported once */
  assert_int_equal(ds_cache_flush(c), DS_OK);
  for (uint32_t i = 0; i + 1 < k; i++) assert_true(present(c, i, 10000));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Batched durability: a failed background sync is reported by the next ds_cache_flush (after
 * a failed fsync, Linux may report later ones as successful although the data was dropped). */
static void test_background_sync_error(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("io_flusher");
  ds_cache *c = NULL;
  assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_BATCHED, 8 << 20, 5), DS_OK);
  ds__io_fault_set(DS__IO_SYNC, 1, EIO, 0);
  assert_int_equal(put(c, 1, 500), DS_OK);
  for (int i = 0; i < 4000 && ds__io_fault_hits() == 0; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  ds__io_fault_set(0, 0, 0, 0);
  assert_int_equal(ds_cache_flush(c), DS_ERR_IO);
  assert_int_equal(put(c, 2, 500), DS_OK);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_true(present(c, 1, 500) && present(c, 2, 500));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Keys 0..n-1 present: a suffix (segments leave oldest first) holding at least the last
 * `min` keys but `gone`, every value intact. */
static void check_suffix(ds_cache *c, uint32_t n, uint32_t min, uint32_t gone, size_t len) {
  int seen = 0;
  for (uint32_t k = 0; k < n; k++) {
    if (k == gone) {
      assert_false(present(c, k, len));
      continue;
    }
    int p = present(c, k, len);
    assert_true(p || !seen);
    seen |= p;
    if (k + min >= n) assert_true(p);
  }
}

/* Segment recycling (a full cache, synced puts): a failed rename of the recycled segment falls
 * back to a new file and the put succeeds; a failed directory sync after the rename fails the
 * put (its record would land in a file whose new name may not be durable), the next put syncs
 * the directory and succeeds; nothing stale or lost after a reopen. */
static void test_recycle_errors(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  for (int round = 0; round < 2; round++) {
    const char *dir = ds_test_path("io_recycle");
    ds_cache *c = NULL;
    /* 1 MiB: 128 KiB segments of 12 records */
    assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_EVERY_PUT, 1 << 20, 1000), DS_OK);
    uint32_t k = 0;
    double r0 = ds_test_stat(ctx, "cache.l3.recycled_segments");
    while (ds_test_stat(ctx, "cache.l3.recycled_segments") == r0) {
      assert_true(k < 1000);
      assert_int_equal(put(c, k++, 10000), DS_OK);
    }
    uint64_t io0 = ds_test_tier_stats(c, DS_CACHE_L3).io_errors;
    /* round 0: the recycle's rename; round 1: the directory sync's open (the sealed segment's
     * index file is opened first) */
    if (round == 0) ds__io_fault_set(DS__IO_RENAME, 1, EIO, 0);
    else ds__io_fault_set(DS__IO_OPEN, 2, EIO, 0);
    uint32_t gone = UINT32_MAX;
    for (int i = 0; i < 30; i++, k++) {
      ds_status st = put(c, k, 10000);
      if (round == 1 && st != DS_OK) {
        assert_int_equal(st, DS_ERR_IO);
        assert_int_equal(gone, UINT32_MAX);
        gone = k;
      } else {
        assert_int_equal(st, DS_OK);
      }
    }
    assert_int_equal(ds__io_fault_hits(), 1);
    ds__io_fault_set(0, 0, 0, 0);
    assert_true(round == 0 || gone != UINT32_MAX);
    assert_true(ds_test_tier_stats(c, DS_CACHE_L3).io_errors > io0);
    check_suffix(c, k, 40, gone, 10000);
    ds_cache_destroy(c);
    assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_EVERY_PUT, 1 << 20, 1000), DS_OK);
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
    check_suffix(c, k, 40, gone, 10000);
    ds_cache_destroy(c);
  }
  ds_context_destroy(ctx);
}

/* A failing explicit flush returns the error and leaves the cache usable. */
static void test_flush_error(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("io_flush");
  ds_cache *c = NULL;
  assert_int_equal(open_cache(&c, ctx, dir, DS_CACHE_SYNC_BATCHED, 8 << 20, 60000), DS_OK);
  assert_int_equal(put(c, 1, 500), DS_OK);
  ds__io_fault_set(DS__IO_SYNC, 1, EIO, 0);
  assert_int_equal(ds_cache_flush(c), DS_ERR_IO);
  ds__io_fault_set(0, 0, 0, 0);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  assert_true(present(c, 1, 500));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_errors),          cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_roll_sync_error),     cmocka_unit_test(test_background_sync_error),
      cmocka_unit_test(test_flush_error),         cmocka_unit_test(test_recycle_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
