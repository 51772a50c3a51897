/* Tests of the persistent cache (disk tier): reopen, file modes, writer lock and read-only
 * opens, the exact max_bytes budget, corrupt and torn records, disk full (RLIMIT_FSIZE in a
 * child), kill -9 during synced puts, and bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "internal.h"
#include "test_util.h"

static char warn_seen[512];
static void capture_log(void *user, int level, const char *module, const char *msg) {
  (void)user;
  (void)module;
  if (level == DS_LOG_WARN && strstr(msg, "segment")) snprintf(warn_seen, sizeof warn_seen, "%s", msg);
}

static ds_context *new_ctx(void) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.log_fn = capture_log;
  ds_param_value quiet[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
  o.params = quiet;
  o.nparams = 2;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}


/* Group teardown: the directories ds_test_path() named for this process. */
static int remove_tmp_dirs(void **state) {
  (void)state;
  const char *dir = getenv("DS_TEST_TMP");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'/persist_*.%d", dir ? dir : "/tmp", (int)getpid());
  return system(cmd) == 0 ? 0 : -1;
}

static ds_cache *open_cache(ds_context *ctx, const char *dir, uint64_t max, int durability,
                            uint32_t read_only) {
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = max;
  o.durability = durability;
  o.read_only = read_only;
  ds_cache *c = NULL;
  ds_status st = ds_cache_open_persistent_ex(&c, ctx, dir, &o);
  if (st != DS_OK) fprintf(stderr, "open: %s\n", ds_context_last_error(ctx));
  assert_int_equal(st, DS_OK);
  return c;
}

/* open_cache without compression: records of known size */
static ds_cache *open_raw(ds_context *ctx, const char *dir, uint64_t max, int durability,
                          uint32_t read_only) {
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = max;
  o.durability = durability;
  o.read_only = read_only;
  o.codec = DS_CACHE_CODEC_NONE;
  ds_cache *c = NULL;
  ds_status st = ds_cache_open_persistent_ex(&c, ctx, dir, &o);
  if (st != DS_OK) fprintf(stderr, "open: %s\n", ds_context_last_error(ctx));
  assert_int_equal(st, DS_OK);
  return c;
}

static void value_of(uint8_t *v, size_t n, uint32_t key) {
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(key * 7u + (uint32_t)(i / 8));
}

static int has_value(ds_cache *c, uint32_t key, size_t n) {
  uint8_t v[8192], out[8192];
  size_t len = 0;
  value_of(v, n, key);
  if (ds_cache_get(c, &key, sizeof key, out, sizeof out, &len) != DS_OK) return 0;
  return len == n && !memcmp(v, out, n);
}

/* Puts keys 0..n-1 with their value_of values of vlen bytes (at most 8192). */
static void put_keys(ds_cache *c, uint32_t n, size_t vlen) {
  uint8_t v[8192];
  for (uint32_t k = 0; k < n; k++) {
    value_of(v, vlen, k);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, vlen), DS_OK);
  }
}

/* Bytes of every file of the cache directory (segments, MANIFEST, LOCK), all 0600. */
static uint64_t dir_bytes(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  uint64_t total = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    total += (uint64_t)st.st_size;
  }
  closedir(d);
  return total;
}

static void test_reopen_modes_lock(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_reopen");
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 8 << 20, DS_CACHE_CODEC_ZSTD), DS_OK);
  uint8_t v[3000];
  put_keys(c, 200, sizeof v);
  uint32_t gone = 7;
  assert_int_equal(ds_cache_remove(c, &gone, sizeof gone), DS_OK);
  assert_int_equal(ds_cache_remove(c, &gone, sizeof gone), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_cache_pin(c, "x", 1), DS_ERR_UNSUPPORTED);
  ds_cache *second = NULL;
  assert_int_equal(ds_cache_open_persistent(&second, ctx, dir, 8 << 20, 0), DS_ERR_BUSY);
  pid_t pid = fork(); /* another process: busy for writing, fine read-only */
  assert_true(pid >= 0);
  if (pid == 0) {
    ds_context *cctx = new_ctx();
    ds_cache *w = NULL, *r = NULL;
    ds_cache_persist_options po = DS_CACHE_PERSIST_OPTIONS_INIT;
    po.max_bytes = 8 << 20;
    po.read_only = 1;
    int ok = ds_cache_open_persistent(&w, cctx, dir, 8 << 20, 0) == DS_ERR_BUSY &&
             ds_cache_open_persistent_ex(&r, cctx, dir, &po) == DS_OK && has_value(r, 3, 3000);
    ds_cache_destroy(r);
    ds_context_destroy(cctx);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ds_cache *ro = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 1);
  assert_int_equal(ds_cache_put(ro, "a", 1, "b", 1), DS_ERR_STATE);
  ds_cache_destroy(ro);
  assert_true(ds_test_tier_stats(c, DS_CACHE_L3).compression_ratio > 2.0);
  const void *d;
  size_t len;
  ds_cache_ref *r;
  uint32_t k5 = 5;
  assert_int_equal(ds_cache_get_ref(c, &k5, sizeof k5, &d, &len, &r), DS_OK);
  value_of(v, sizeof v, 5);
  assert_memory_equal(d, v, sizeof v);
  ds_cache_release(c, r);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  ds_cache_destroy(c);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  char p[2048];
  snprintf(p, sizeof p, "%s/MANIFEST", dir);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_EVERY_PUT, 0);
  for (uint32_t k = 0; k < 200; k++) assert_int_equal(has_value(c, k, sizeof v), k != gone);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).entries, 199);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

static void test_max_bytes_exact(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_max");
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = 1 << 20;
  o.codec = DS_CACHE_CODEC_NONE;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_open_persistent_ex(&c, ctx, dir, &o), DS_OK);
  uint8_t v[4000];
  for (uint32_t k = 0; k < 1000; k++) {
    value_of(v, sizeof v, k);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
    if (k % 25 == 0) assert_true(dir_bytes(dir) <= o.max_bytes);
    assert_true(ds_test_tier_stats(c, DS_CACHE_L3).bytes <= o.max_bytes);
  }
  assert_true(ds_test_tier_stats(c, DS_CACHE_L3).evictions > 500);
  assert_true(has_value(c, 999, sizeof v));
  assert_false(has_value(c, 0, sizeof v));
  static uint8_t huge[2 << 20];
  assert_int_equal(ds_cache_put(c, "h", 1, huge, sizeof huge), DS_ERR_FULL);
  assert_true(has_value(c, 998, sizeof v));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* The first segment file of dir, opened for writing by hand. */
static int open_seg1(const char *dir) {
  char seg[2048];
  snprintf(seg, sizeof seg, "%s/seg-00000001.log", dir);
  int fd = open(seg, O_RDWR);
  assert_true(fd >= 0);
  return fd;
}

/* The offset after n records from off, by walking their headers (32 bytes, then key and stored
 * bytes; stored sizes vary with the codec). */
static off_t skip_records(int fd, off_t off, int n) {
  for (int i = 0; i < n; i++) {
    uint32_t hdr[8];
    assert_int_equal(pread(fd, hdr, 32, off), 32);
    off += 32 + hdr[2] + hdr[3];
  }
  return off;
}

/* Flips bits of the byte at off of the open file fd. */
static void flip_at(int fd, off_t off) {
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0x5a;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
}

/* Flips bits of the byte at off of the file name in dir. */
static void flip_byte(const char *dir, const char *name, off_t off) {
  char p[2048];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_RDWR);
  assert_true(fd >= 0);
  flip_at(fd, off);
  close(fd);
}

static void test_corrupt_and_torn(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_corrupt");
  ds_cache *c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 0);
  uint8_t v[1000];
  put_keys(c, 50, sizeof v);
  ds_cache_destroy(c);
  int fd = open_seg1(dir);
  struct stat st;
  fstat(fd, &st);
  /* flip a byte inside record 10's value (lz4 output size varies: the headers are walked) */
  off_t off = skip_records(fd, 0, 10);
  flip_at(fd, off + 40);
  /* the end of the 50 records (the file is longer: preallocated, zeros) */
  off_t end = skip_records(fd, off, 40);
  assert_true(end <= st.st_size);
  assert_int_equal(pwrite(fd, "DSR1torn", 8, end), 8); /* a torn tail */
  close(fd);
  warn_seen[0] = 0;
  c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 2);
  assert_non_null(strstr(warn_seen, "offset"));
  for (uint32_t k = 0; k < 50; k++) assert_int_equal(has_value(c, k, sizeof v), k != 10);
  uint32_t k = 77;
  value_of(v, sizeof v, k);
  assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK); /* after the cut tail */
  ds_cache_destroy(c);
  c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 0);
  assert_true(has_value(c, 77, sizeof v));
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt,
                   1); /* the flipped byte; the tail was cut */
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* A last record whose bytes fail the checksum (an append torn inside its value) is reported
 * at the open that finds it and cut off there: the next open counts nothing, and the next
 * appends follow the good records. */
static void test_torn_last_record(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_torn_last");
  ds_cache *c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 0);
  uint8_t v[1000];
  put_keys(c, 5, sizeof v);
  ds_cache_destroy(c);
  int fd = open_seg1(dir);
  flip_at(fd, skip_records(fd, 0, 4) + 40); /* inside the 5th (last) record's value */
  close(fd);
  c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 1);
  for (uint32_t k = 0; k < 5; k++) assert_int_equal(has_value(c, k, sizeof v), k != 4);
  uint32_t k = 9;
  value_of(v, sizeof v, k);
  assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
  ds_cache_destroy(c);
  c = open_cache(ctx, dir, 8 << 20, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0); /* cut at the last open */
  for (uint32_t i = 0; i < 4; i++) assert_true(has_value(c, i, sizeof v));
  assert_false(has_value(c, 4, sizeof v));
  assert_true(has_value(c, 9, sizeof v));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Disk full: a child limits its file size; the put fails with DS_ERR_NO_SPACE, the cache
 * stays usable, and the segment stays valid for the next open. */
static void test_disk_full(void **state) {
  (void)state;
  const char *dir = ds_test_path("persist_full");
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    ds_context *ctx = new_ctx();
    ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
    o.max_bytes = 64 << 20;
    o.codec = DS_CACHE_CODEC_NONE;
    ds_cache *c = NULL;
    if (ds_cache_open_persistent_ex(&c, ctx, dir, &o) != DS_OK) _exit(2);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {200000, 200000};
    setrlimit(RLIMIT_FSIZE, &rl);
    uint8_t v[5000];
    ds_status st = DS_OK;
    uint32_t k = 0;
    for (; k < 100 && st == DS_OK; k++) {
      value_of(v, sizeof v, k);
      st = ds_cache_put(c, &k, sizeof k, v, sizeof v);
    }
    int ok = st == DS_ERR_NO_SPACE && has_value(c, 0, sizeof v) &&
             ds_test_tier_stats(c, DS_CACHE_L3).io_errors == 1 &&
             ds_cache_put(c, "s", 1, v, sizeof v) == DS_ERR_NO_SPACE &&
             ds_cache_remove(c, "s", 1) == DS_ERR_NOT_FOUND &&
             has_value(c, 1, sizeof v);
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  ds_context *ctx = new_ctx();
  ds_cache *c = open_cache(ctx, dir, 64 << 20, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  assert_true(ds_test_tier_stats(c, DS_CACHE_L3).entries >= 30);
  assert_true(has_value(c, 0, 5000));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* kill -9 at random times during synced puts: every acknowledged put must be readable. In
 * the last two rounds the cache is small (1 MiB, 8 KB values: 16 to a segment) so that segments are
 * recycled under the puts: the keys present after reopen must then be a suffix of the puts
 * (nothing stale resurrected), hold at least the last 12 acknowledged, and be intact. */
static void test_kill9(void **state) {
  (void)state;
  srand((unsigned)time(NULL));
  for (int round = 0; round < 5; round++) {
    const char *dir = ds_test_path("persist_kill");
    int small = round >= 3;
    uint64_t max = small ? 1 << 20 : 64 << 20;
    size_t vn = small ? 8000 : 2000;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      ds_context *ctx = new_ctx();
      ds_cache *c = open_raw(ctx, dir, max, DS_CACHE_SYNC_EVERY_PUT, 0);
      uint8_t v[8000];
      for (uint32_t k = 0;; k++) {
        value_of(v, vn, k);
        if (ds_cache_put(c, &k, sizeof k, v, vn) != DS_OK) _exit(1);
        if (write(fds[1], &k, sizeof k) != sizeof k) _exit(1);
      }
    }
    close(fds[1]);
    struct timespec ts = {0, (long)((small ? 300 : 20) + rand() % (small ? 200 : 80)) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    uint32_t k, acked = 0;
    int n = 0;
    while (read(fds[0], &k, sizeof k) == sizeof k) {
      acked = k;
      n++;
    }
    close(fds[0]);
    ds_context *ctx = new_ctx();
    ds_cache *c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
    if (!small) {
      for (uint32_t i = 0; n > 0 && i <= acked; i++) assert_true(has_value(c, i, 2000));
    } else if (n > 0) {
      uint32_t first = acked + 2;
      for (uint32_t i = 0; i <= acked + 1; i++) {
        uint8_t out[8000];
        size_t len = 0;
        ds_status st = ds_cache_get(c, &i, sizeof i, out, sizeof out, &len);
        if (st == DS_OK) {
          assert_true(has_value(c, i, vn));
          if (first > acked + 1) first = i;
        } else {
          assert_int_equal(st, DS_ERR_NOT_FOUND);
          assert_true(first > acked + 1 || i == acked + 1); /* a suffix */
        }
      }
      assert_true(first <= (acked >= 11 ? acked - 11 : 0));
    }
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
}

/* Garbage segments (random bytes salted with record magics and plausible headers, and valid
 * records cut at random points) must open without crashing or reading out of bounds (ASan),
 * and leave a usable cache. A poor man's fuzzer of the segment parser. */
static void test_garbage_segments(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  uint64_t s = 0x1234567;
  for (int round = 0; round < 30; round++) {
    const char *dir = ds_test_path("persist_garbage");
    ds_cache *c = open_cache(ctx, dir, 4 << 20, DS_CACHE_SYNC_BATCHED, 0);
    uint8_t v[300];
    put_keys(c, 20, sizeof v);
    ds_cache_destroy(c);
    int fd = open_seg1(dir);
    struct stat st;
    /* cut the preallocated zeros: the noise below should land in records */
    assert_int_equal(ftruncate(fd, skip_records(fd, 0, 20)), 0);
    fstat(fd, &st);
    for (int m = 0; m < 20; m++) { /* overwrite random spans with noise or fake headers */
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      off_t off = (off_t)(s % (uint64_t)st.st_size);
      uint32_t junk[8];
      for (int i = 0; i < 8; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        junk[i] = (uint32_t)s;
      }
      if (m % 3 == 0) junk[0] = 0x31525344u; /* magic */
      if (m % 3 == 1) junk[0] = 0x31525344u, junk[1] = 1, junk[2] = 4, junk[3] = (uint32_t)(s % 5000);
      assert_true(pwrite(fd, junk, sizeof junk, off) == (ssize_t)sizeof junk);
    }
    if (round % 2) assert_int_equal(ftruncate(fd, (off_t)(s % (uint64_t)st.st_size)), 0);
    close(fd);
    c = open_cache(ctx, dir, 4 << 20, DS_CACHE_SYNC_BATCHED, 0);
    assert_true(ds_test_tier_stats(c, DS_CACHE_L3).entries <= 20);
    for (uint32_t k = 0; k < 20; k++) (void)has_value(c, k, sizeof v); /* any answer, no crash */
    uint32_t k = 99;
    value_of(v, sizeof v, k);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
    assert_true(has_value(c, 99, sizeof v));
    ds_cache_destroy(c);
  }
  ds_context_destroy(ctx);
}

static void test_bad_input(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_cache *c = NULL;
  const char *dir = ds_test_path("persist_bad");
  assert_int_equal(ds_cache_open_persistent(NULL, ctx, dir, 1 << 20, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, NULL, 1 << 20, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 1000, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 1 << 20, 9), DS_ERR_INVALID_ARG);
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.struct_size = 3;
  assert_int_equal(ds_cache_open_persistent_ex(&c, ctx, dir, &o), DS_ERR_ABI);
  /* a directory that is not a cache */
  assert_int_equal(mkdir(dir, 0700), 0);
  char p[2048];
  snprintf(p, sizeof p, "%s/MANIFEST", dir);
  FILE *f = fopen(p, "w");
  fputs("something else\n", f);
  fclose(f);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 1 << 20, 0), DS_ERR_FORMAT);
  /* a path that is a file */
  assert_int_equal(ds_cache_open_persistent(&c, ctx, p, 1 << 20, 0), DS_ERR_IO);
  assert_null(c);
  ds_context_destroy(ctx);
}

/* Bytes flipped under an open cache (the records were checksummed when written), in key 1's
 * value after a first get of it and in key 2's, never read: cache_verify_reads "always" (2)
 * reports both as DS_ERR_CORRUPT (counted, logged, dropped), "first" (1, the default) only
 * key 2, "header" (0) neither: the changed values come back. */
static void test_verify_reads(void **state) {
  (void)state;
  for (int mode = 2; mode >= 0; mode--) {
    ds_context *ctx = new_ctx();
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_VERIFY_READS, mode), DS_OK);
    const char *dir = ds_test_path("persist_verify");
    ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
    o.max_bytes = 8 << 20;
    o.codec = DS_CACHE_CODEC_NONE;
    ds_cache *c = NULL;
    assert_int_equal(ds_cache_open_persistent_ex(&c, ctx, dir, &o), DS_OK);
    uint8_t v[1000];
    put_keys(c, 3, sizeof v);
    assert_int_equal(ds_cache_flush(c), DS_OK);
    assert_true(has_value(c, 1, sizeof v));
    int fd = open_seg1(dir);
    for (int k = 1; k <= 2; k++) /* inside key k's value */
      flip_at(fd, (off_t)k * (32 + 4 + 1000) + 32 + 4 + 500);
    close(fd);
    warn_seen[0] = 0;
    for (uint32_t k = 1; k <= 2; k++) {
      uint8_t out[1000];
      size_t len = 0;
      ds_status st = ds_cache_get(c, &k, sizeof k, out, sizeof out, &len);
      int detect = mode == 2 || (mode == 1 && k == 2);
      if (detect) {
        assert_int_equal(st, DS_ERR_CORRUPT);
        assert_false(ds_cache_contains(c, &k, sizeof k));
      } else {
        assert_int_equal(st, DS_OK);
        value_of(v, sizeof v, k);
        assert_true(memcmp(out, v, sizeof v) != 0);
      }
    }
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt,
                     (uint64_t)mode);
    if (mode) assert_non_null(strstr(warn_seen, "offset"));
    assert_true(has_value(c, 0, sizeof v));
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
}

/* ds_cache_open_persistent takes durability and codec (-1) from the context's tunables. */
static void test_persist_tunables(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_DURABILITY, DS_CACHE_SYNC_EVERY_PUT),
                   DS_OK);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_CODEC, DS_CACHE_CODEC_ZSTD), DS_OK);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_DURABILITY, 2), DS_ERR_INVALID_ARG);
  const char *dir = ds_test_path("persist_tunables");
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 4 << 20, -1), DS_OK);
  uint8_t v[4000];
  uint32_t k = 5;
  value_of(v, sizeof v, k);
  assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
  assert_true(has_value(c, k, sizeof v));
  assert_true(ds_test_tier_stats(c, DS_CACHE_L3).raw_bytes == sizeof v);
  ds_cache_tier_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  assert_int_equal(ds_cache_stats(c, DS_CACHE_L3, &s), DS_OK);
  assert_true(s.compression_ratio > 2.0); /* zstd on this repetitive value */
  ds_cache_destroy(c);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 4 << 20, -2), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

/* Sealed segments get an index file (seg-N.idx) that a reopen reads instead of the segment.
 * A damaged or missing index file falls back to scanning the segment (and is written again),
 * deletes stay deleted, a corrupt record behind a good index is caught by its first get, and
 * the index files count in max_bytes. */
static ds_cache *open_plain(ds_context *ctx, const char *dir) {
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = 4 << 20; /* segments of 512 KiB */
  o.codec = DS_CACHE_CODEC_NONE;
  o.durability = DS_CACHE_SYNC_BATCHED;
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_open_persistent_ex(&c, ctx, dir, &o), DS_OK);
  return c;
}

static int file_exists(const char *dir, const char *name) {
  char p[2048];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &st) == 0;
}

/* Reopens dir and checks every key but `gone` reads back (N keys of 1000 bytes). */
static void reopen_check(ds_context *ctx, const char *dir, uint32_t n, uint32_t gone,
                         int expect_warn) {
  warn_seen[0] = 0;
  ds_cache *c = open_plain(ctx, dir);
  if (expect_warn) assert_non_null(strstr(warn_seen, "index file"));
  else assert_int_equal(warn_seen[0], 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).entries, n - 1);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  for (uint32_t k = 0; k < n; k++) assert_int_equal(has_value(c, k, 1000), k != gone);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  assert_true(dir_bytes(dir) <= (4u << 20));
  ds_cache_destroy(c);
}

static void test_index_files(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_index");
  ds_cache *c = open_plain(ctx, dir);
  uint8_t v[1000];
  const uint32_t n = 2500;
  for (uint32_t k = 0; k < n; k++) {
    value_of(v, sizeof v, k);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v, sizeof v), DS_OK);
    if (k == 600) assert_int_equal(ds_cache_remove(c, &(uint32_t){5}, sizeof(uint32_t)), DS_OK);
  }
  assert_true(dir_bytes(dir) <= (4u << 20));
  ds_cache_destroy(c);
  /* 2.5 MB in 512 KiB segments: 1..4 sealed (indexed), 5 or 6 the tail (no index) */
  for (int id = 1; id <= 4; id++) {
    char name[64];
    snprintf(name, sizeof name, "seg-%08d.idx", id);
    assert_true(file_exists(dir, name));
  }
  assert_false(file_exists(dir, "seg-00000006.idx"));
  reopen_check(ctx, dir, n, 5, 0);
  /* a damaged index file: that segment is scanned, and its index written again */
  flip_byte(dir, "seg-00000002.idx", 100);
  reopen_check(ctx, dir, n, 5, 1);
  reopen_check(ctx, dir, n, 5, 0);
  /* a missing one: scanned, written again; an unrenamed one left by a crash is removed */
  char p[2048];
  snprintf(p, sizeof p, "%s/seg-00000003.idx", dir);
  char tmp[2048];
  snprintf(tmp, sizeof tmp, "%s/seg-00000003.idx.tmp", dir);
  assert_int_equal(rename(p, tmp), 0);
  reopen_check(ctx, dir, n, 5, 0);
  assert_true(file_exists(dir, "seg-00000003.idx"));
  assert_false(file_exists(dir, "seg-00000003.idx.tmp"));
  /* a stale one (its segment grew): scanned; the garbage at its end is a torn record */
  snprintf(p, sizeof p, "%s/seg-00000004.log", dir);
  int fd = open(p, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "DSR1junk", 8), 8);
  close(fd);
  warn_seen[0] = 0;
  c = open_plain(ctx, dir);
  assert_non_null(strstr(warn_seen, "segment 4"));
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 1);
  for (uint32_t k = 0; k < n; k++) assert_int_equal(has_value(c, k, 1000), k != 5);
  ds_cache_destroy(c);
  /* a corrupt value behind a good index: found by its first get, reported, dropped */
  flip_byte(dir, "seg-00000001.log", 32 + 4 + 500); /* key 0, the first record */
  warn_seen[0] = 0;
  c = open_plain(ctx, dir);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  uint8_t out[1000];
  size_t len = 0;
  uint32_t k0 = 0;
  assert_int_equal(ds_cache_get(c, &k0, sizeof k0, out, sizeof out, &len), DS_ERR_CORRUPT);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 1);
  assert_non_null(strstr(warn_seen, "offset 0"));
  assert_false(ds_cache_contains(c, &k0, sizeof k0));
  for (uint32_t k = 1; k < n; k++) assert_int_equal(has_value(c, k, 1000), k != 5);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Values of 64 KiB and more are checksummed while they are copied out: an intact one reads
 * back whole, a corrupt one is DS_ERR_CORRUPT, counted and dropped (first get, default mode). */
static void test_verify_large(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_large");
  ds_cache *c = open_plain(ctx, dir);
  size_t n = 200000;
  uint8_t *v = malloc(n), *out = malloc(n);
  assert_non_null(v);
  assert_non_null(out);
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 31u + i / 977u);
  assert_int_equal(ds_cache_put(c, "big", 3, v, n), DS_OK); /* offset 0 of segment 1 */
  assert_int_equal(ds_cache_put(c, "ok!", 3, v, n), DS_OK);
  assert_int_equal(ds_cache_flush(c), DS_OK);
  flip_byte(dir, "seg-00000001.log", 32 + 3 + 150000);
  size_t len = 0;
  assert_int_equal(ds_cache_get(c, "big", 3, out, n, &len), DS_ERR_CORRUPT);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 1);
  assert_false(ds_cache_contains(c, "big", 3));
  memset(out, 0, n);
  assert_int_equal(ds_cache_get(c, "ok!", 3, out, n, &len), DS_OK);
  assert_int_equal(len, n);
  assert_memory_equal(out, v, n);
  free(v);
  free(out);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* A 1 MiB value (plus a tail shorter than XXH3's stripe) is verified by the single-pass copy
 * and hash: one flipped byte in its first, second, middle, last whole stripe, the tail the
 * last stripe alone covers, or its last byte is DS_ERR_CORRUPT, with either table; the record
 * written next stays readable. */
static void test_verify_1mib_fused(void **state) {
  (void)state;
  const size_t n = (1u << 20) + 37;
  static const size_t at[] = {0, 70, (1u << 19) + 5, (1u << 20) - 1, (1u << 20) + 20,
                              (1u << 20) + 36};
  uint8_t *v = malloc(n), *out = malloc(n);
  assert_non_null(v);
  assert_non_null(out);
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 131u + i / 1021u);
  for (size_t k = 0; k < 2 * sizeof at / sizeof at[0]; k++) {
    ds_context *ctx = new_ctx();
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_CHECKSUM_ISA, (int64_t)(k & 1)),
                     DS_OK);
    char name[32], dir[1024];
    snprintf(name, sizeof name, "persist_1mib%zu", k);
    snprintf(dir, sizeof dir, "%s", ds_test_path(name));
    ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
    o.max_bytes = 16u << 20; /* segments of 2 MiB: both records mapped in segment 1 (a
                                record larger than a segment is read with pread instead) */
    o.codec = DS_CACHE_CODEC_NONE;
    ds_cache *c = NULL;
    assert_int_equal(ds_cache_open_persistent_ex(&c, ctx, dir, &o), DS_OK);
    assert_int_equal(ds_cache_put(c, "big", 3, v, n), DS_OK); /* offset 0 of segment 1 */
    assert_int_equal(ds_cache_put(c, "ok!", 3, v, n), DS_OK);
    assert_int_equal(ds_cache_flush(c), DS_OK);
    flip_byte(dir, "seg-00000001.log", (off_t)(32 + 3 + at[k / 2]));
    size_t len = 0;
    assert_int_equal(ds_cache_get(c, "big", 3, out, n, &len), DS_ERR_CORRUPT);
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 1);
    memset(out, 0, n);
    assert_int_equal(ds_cache_get(c, "ok!", 3, out, n, &len), DS_OK);
    assert_int_equal(len, n);
    assert_memory_equal(out, v, n);
    ds_cache_destroy(c);
    ds_test_remove(dir);
    ds_context_destroy(ctx);
  }
  free(v);
  free(out);
}

/* Records longer than a segment (segments are max_bytes / 8 = 512 KiB here) each fill a
 * segment of their own, which is mapped again to cover them: they read back intact before and
 * after a reopen, and a flipped byte in one is DS_ERR_CORRUPT after the reopen. */
static void test_record_larger_than_segment(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_bigrec");
  const size_t n[3] = {(1u << 20) + 37, 600000, (1u << 20) + 5};
  uint8_t *v[3], *out = malloc(n[0]);
  assert_non_null(out);
  ds_cache *c = open_plain(ctx, dir);
  for (int k = 0; k < 3; k++) {
    assert_non_null(v[k] = malloc(n[k]));
    for (size_t i = 0; i < n[k]; i++) v[k][i] = (uint8_t)(i * 29u + (size_t)k * 101u + i / 4099u);
    assert_int_equal(ds_cache_put(c, &k, sizeof k, v[k], n[k]), DS_OK); /* segment k + 1 */
  }
  for (int pass = 0; pass < 2; pass++) {
    for (int k = 0; k < 3; k++) {
      size_t len = 0;
      memset(out, 0, n[0]);
      assert_int_equal(ds_cache_get(c, &k, sizeof k, out, n[0], &len), DS_OK);
      assert_int_equal(len, n[k]);
      assert_memory_equal(out, v[k], n[k]);
    }
    ds_cache_destroy(c);
    if (pass == 0) {
      warn_seen[0] = 0;
      c = open_plain(ctx, dir);
      assert_string_equal(warn_seen, "");
    }
  }
  flip_byte(dir, "seg-00000001.log", 32 + 4 + 700000);
  c = open_plain(ctx, dir);
  size_t len = 0;
  int k = 0;
  assert_int_equal(ds_cache_get(c, &k, sizeof k, out, n[0], &len), DS_ERR_CORRUPT);
  k = 2;
  assert_int_equal(ds_cache_get(c, &k, sizeof k, out, n[0], &len), DS_OK);
  assert_memory_equal(out, v[2], n[2]);
  ds_cache_destroy(c);
  for (k = 0; k < 3; k++) free(v[k]);
  free(out);
  ds_context_destroy(ctx);
}

/* Records and index files written with one XXH3 table read back with the other, every get
 * verified: both tables compute the same checksums (the AVX2 one where the CPU has it, else
 * both runs use the baseline). */
static void test_checksum_tables(void **state) {
  (void)state;
  size_t n = 100000;
  uint8_t *v = malloc(n), *out = malloc(n);
  assert_non_null(v);
  assert_non_null(out);
  for (int w = 0; w < 2; w++) {
    ds_context *ctx = new_ctx();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", ds_test_path(w ? "persist_sum1" : "persist_sum0"));
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_CHECKSUM_ISA, w), DS_OK);
    ds_cache *c = open_plain(ctx, dir);
    for (uint32_t i = 0; i < 16; i++) { /* 1.6 MB: sealed segments with index files */
      for (size_t j = 0; j < n; j++) v[j] = (uint8_t)(j * 7u + i * 13u + j / 251u);
      assert_int_equal(ds_cache_put(c, &i, sizeof i, v, 1000 + (size_t)i * 6000), DS_OK);
    }
    ds_cache_destroy(c);
    assert_true(file_exists(dir, "seg-00000001.idx"));
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_CHECKSUM_ISA, !w), DS_OK);
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_CACHE_VERIFY_READS, 2), DS_OK);
    warn_seen[0] = 0;
    c = open_plain(ctx, dir); /* index files checked, the last segment scanned */
    assert_string_equal(warn_seen, "");
    for (uint32_t i = 0; i < 16; i++) {
      for (size_t j = 0; j < n; j++) v[j] = (uint8_t)(j * 7u + i * 13u + j / 251u);
      size_t len = 0;
      assert_int_equal(ds_cache_get(c, &i, sizeof i, out, n, &len), DS_OK);
      assert_int_equal(len, 1000 + (size_t)i * 6000);
      assert_memory_equal(out, v, len);
    }
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
  free(v);
  free(out);
}

/* ---- segment recycling ---- */
#define RV 3000 /* value bytes of the recycling tests: 3036-byte records */

static double recycled(ds_context *ctx) { return ds_test_stat(ctx, "cache.l3.recycled_segments"); }

/* Bytes of the newest segment file of dir (the active segment). */
static uint64_t newest_seg_bytes(const char *dir, char *name, size_t cap) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  name[0] = 0;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, "seg-", 4) && strstr(e->d_name, ".log") &&
        strcmp(e->d_name, name) > 0)
      snprintf(name, cap, "%s", e->d_name);
  closedir(d);
  char p[2048];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  assert_int_equal(stat(p, &st), 0);
  return (uint64_t)st.st_size;
}

/* Puts keys from *next on (RV-byte values, synced as `durability` says) until a segment has
 * been recycled and `after` more puts went into it (after the one that recycled it); checks the directory against max after
 * every put. */
static void put_until_recycled(ds_context *ctx, ds_cache *c, const char *dir, uint64_t max,
                               uint32_t *next, int after) {
  uint8_t v[RV];
  double r0 = recycled(ctx);
  int left = -1;
  for (int i = 0; i < 2000 && left != 0; i++, (*next)++) {
    value_of(v, RV, *next);
    assert_int_equal(ds_cache_put(c, next, sizeof *next, v, RV), DS_OK);
    assert_true(dir_bytes(dir) <= max);
    assert_true(ds_test_tier_stats(c, DS_CACHE_L3).bytes <= max);
    if (left > 0) left--;
    else if (left < 0 && recycled(ctx) > r0) left = after;
  }
  assert_int_equal(left, 0);
}

/* Keys 0..n-1 present now: a suffix (segments leave oldest first), every value intact, and
 * every other key NOT_FOUND. Returns the first present key. */
static uint32_t check_suffix(ds_cache *c, uint32_t n) {
  uint32_t first = n;
  for (uint32_t k = 0; k < n; k++) {
    uint8_t out[RV];
    size_t len = 0;
    ds_status st = ds_cache_get(c, &k, sizeof k, out, sizeof out, &len);
    if (st == DS_OK) {
      assert_true(has_value(c, k, RV));
      if (first == n) first = k;
    } else {
      assert_int_equal(st, DS_ERR_NOT_FOUND);
      assert_true(first == n); /* nothing missing after the first present key */
    }
  }
  return first;
}

/* A full cache recycles its oldest segment; every key written after the recycle reads back
 * before and after reopen (read-only and writer), the recycled file's old life never comes
 * back, a clean reopen counts no corruption, and the directory stays within max_bytes after
 * every put. */
static void test_recycle(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_recycle");
  const uint64_t max = 1 << 20; /* segments of 128 KiB: 43 records */
  ds_cache *c = open_raw(ctx, dir, max, DS_CACHE_SYNC_EVERY_PUT, 0);
  uint32_t next = 0;
  put_until_recycled(ctx, c, dir, max, &next, 0);
  put_until_recycled(ctx, c, dir, max, &next, 0);
  put_until_recycled(ctx, c, dir, max, &next, 2); /* the active file: 3 records, then stale */
  assert_true(recycled(ctx) >= 3);
  uint32_t first = check_suffix(c, next);
  assert_true(next - first >= 100);
  ds_cache_destroy(c);
  char name[256];
  assert_true(newest_seg_bytes(dir, name, sizeof name) > 4 * 3036); /* the stale tail */
  for (int ro = 1; ro >= 0; ro--) {
    warn_seen[0] = 0;
    c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, (uint32_t)ro);
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
    assert_int_equal(warn_seen[0], 0);
    assert_int_equal(check_suffix(c, next), first);
    assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).entries, next - first);
    ds_cache_destroy(c);
  }
  assert_int_equal(newest_seg_bytes(dir, name, sizeof name), 3 * 3036); /* cut at the data */
  /* segments loaded at open are dropped, not recycled; the new ones recycle again */
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  double r0 = recycled(ctx);
  for (int i = 0; i < 3; i++) put_until_recycled(ctx, c, dir, max, &next, 1);
  assert_true(recycled(ctx) >= r0 + 3);
  first = check_suffix(c, next);
  ds_cache_destroy(c);
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  assert_int_equal(check_suffix(c, next), first);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* A torn append inside a recycled file (the record's second half and its end marker replaced
 * by junk, as a crash mid-write leaves the old life's bytes): reported and skipped; the keys
 * before it survive, the stale records after it are not served. */
static void test_recycle_torn(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_recycle_torn");
  const uint64_t max = 1 << 20;
  ds_cache *c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  uint32_t next = 0;
  put_until_recycled(ctx, c, dir, max, &next, 3);
  uint32_t first = check_suffix(c, next);
  ds_cache_destroy(c);
  char name[256], p[2048];
  uint64_t size = newest_seg_bytes(dir, name, sizeof name);
  assert_true(size > 5 * 3036); /* 4 records, then the old life's */
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_RDWR);
  assert_true(fd >= 0);
  uint8_t junk[3036];
  memset(junk, 0xa5, sizeof junk);
  assert_int_equal(pwrite(fd, junk, sizeof junk, 3 * 3036 + 1500), (ssize_t)sizeof junk);
  close(fd);
  warn_seen[0] = 0;
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  /* the torn record's checksum, then the junk's header; the stale record after it ends the scan */
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 2);
  assert_non_null(strstr(warn_seen, "offset"));
  uint32_t torn = next - 1;
  assert_false(has_value(c, torn, RV));
  for (uint32_t k = 0; k < first; k++) assert_false(has_value(c, k, RV));
  for (uint32_t k = first; k < torn; k++) assert_true(has_value(c, k, RV));
  uint8_t v[RV];
  value_of(v, RV, torn);
  assert_int_equal(ds_cache_put(c, &torn, sizeof torn, v, RV), DS_OK);
  ds_cache_destroy(c);
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  /* the torn record, the junk and the stale tail after it were cut at the last open (the
   * last segment is cut after its last good record): nothing to report again */
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  assert_int_equal(check_suffix(c, next), first);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* A new segment is allocated at its full size up front (counted in max_bytes) and cut to its
 * records when the cache is reopened: nothing of the zeros is read as a record or corruption. */
static void test_prealloc(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_prealloc");
  const uint64_t max = 1 << 20;
  ds_cache *c = open_raw(ctx, dir, max, DS_CACHE_SYNC_EVERY_PUT, 0);
  put_keys(c, 2, RV);
  char name[256];
  assert_int_equal(newest_seg_bytes(dir, name, sizeof name), max / 8);
  assert_true(dir_bytes(dir) <= max);
  assert_true(ds_test_tier_stats(c, DS_CACHE_L3).bytes >= max / 8);
  ds_cache_destroy(c);
  warn_seen[0] = 0;
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  assert_int_equal(warn_seen[0], 0);
  assert_true(has_value(c, 0, RV) && has_value(c, 1, RV));
  assert_int_equal(newest_seg_bytes(dir, name, sizeof name), 2 * 3036);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Two writers and a reader on a small cache that recycles under them (batched durability):
 * every get is either NOT_FOUND or the key's own value, never stale or torn bytes; afterwards
 * a reopen counts no corruption. (Under TSan: the recycle, the mapping reuse and the gets.) */
typedef struct {
  ds_cache *c;
  uint32_t first, step, n;
  int bad; /* this thread's failures */
} rt_arg;

static void *rt_writer(void *p) {
  rt_arg *a = p;
  uint8_t v[RV];
  for (uint32_t i = 0; i < a->n; i++) {
    uint32_t k = a->first + i * a->step;
    value_of(v, RV, k);
    if (ds_cache_put(a->c, &k, sizeof k, v, RV) != DS_OK) a->bad++;
  }
  return NULL;
}

static void *rt_reader(void *p) {
  rt_arg *a = p;
  uint8_t v[RV], out[RV];
  uint32_t x = 12345;
  for (uint32_t i = 0; i < a->n; i++) {
    x = x * 1103515245u + 12345u;
    uint32_t k = (x >> 8) % (2 * 400);
    size_t len = 0;
    ds_status st = ds_cache_get(a->c, &k, sizeof k, out, sizeof out, &len);
    value_of(v, RV, k);
    if (st == DS_OK ? (len != RV || memcmp(v, out, RV)) : st != DS_ERR_NOT_FOUND) a->bad++;
  }
  return NULL;
}

static void test_recycle_threads(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_recycle_mt");
  ds_cache *c = open_raw(ctx, dir, 1 << 20, DS_CACHE_SYNC_BATCHED, 0);
  double r0 = recycled(ctx);
  rt_arg a[3] = {{c, 0, 2, 400, 0}, {c, 1, 2, 400, 0}, {c, 0, 0, 20000, 0}};
  pthread_t t[3];
  assert_int_equal(pthread_create(&t[0], NULL, rt_writer, &a[0]), 0);
  assert_int_equal(pthread_create(&t[1], NULL, rt_writer, &a[1]), 0);
  assert_int_equal(pthread_create(&t[2], NULL, rt_reader, &a[2]), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(a[i].bad, 0);
  assert_true(recycled(ctx) >= r0 + 3);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  /* the last put of all (798 or 799: the writers need not finish together) is there, and a
   * clean reopen shows exactly the keys that were there before it */
  assert_true(has_value(c, 798, RV) || has_value(c, 799, RV));
  static uint8_t present[800];
  for (uint32_t k = 0; k < 800; k++) present[k] = (uint8_t)has_value(c, k, RV);
  ds_cache_destroy(c);
  c = open_raw(ctx, dir, 1 << 20, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  for (uint32_t k = 0; k < 800; k++) assert_int_equal(has_value(c, k, RV), present[k]);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

/* Writes one record of the earlier format ("DSR1", generation 0, checksum seeded from 0). */
static size_t dsr1_record(uint8_t *p, uint32_t key, const uint8_t *v, uint32_t n) {
  uint32_t magic = 0x31525344u, klen = 4;
  uint64_t vlen = n, sum = 0;
  memset(p, 0, 32);
  memcpy(p, &magic, 4);
  p[4] = 1; /* put */
  p[5] = 1; /* stored raw */
  memcpy(p + 8, &klen, 4);
  memcpy(p + 12, &n, 4);
  memcpy(p + 16, &vlen, 8);
  memcpy(p + 32, &key, 4);
  memcpy(p + 36, v, n);
  uint64_t seed = XXH3_64bits(p, 36); /* header with checksum 0, then the key */
  sum = XXH3_64bits_withSeed(v, n, seed);
  memcpy(p + 24, &sum, 8);
  return 36 + n;
}

/* A segment of an earlier version (DSR1 records) still reads, takes new records after its
 * old ones, and is dropped (never recycled) once the cache is full. */
static void test_dsr1_segment(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  const char *dir = ds_test_path("persist_dsr1");
  mkdir(dir, 0700);
  static uint8_t seg[3 * (36 + RV)];
  uint8_t v[RV];
  size_t n = 0;
  for (uint32_t k = 0; k < 3; k++) {
    value_of(v, RV, 1000 + k);
    n += dsr1_record(seg + n, 1000 + k, v, RV);
  }
  char p[2048];
  snprintf(p, sizeof p, "%s/MANIFEST", dir);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs("dscache 1\n", f);
  fclose(f);
  snprintf(p, sizeof p, "%s/seg-00000001.log", dir);
  f = fopen(p, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(seg, 1, n, f), n);
  fclose(f);
  chmod(p, 0600);
  snprintf(p, sizeof p, "%s/MANIFEST", dir);
  chmod(p, 0600);
  const uint64_t max = 1 << 20;
  ds_cache *c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  for (uint32_t k = 1000; k < 1003; k++) assert_true(has_value(c, k, RV));
  /* a writer upgrades the MANIFEST before it adds DSR2 records, so that an older library
   * refuses the directory instead of cutting it */
  f = fopen(p, "r");
  assert_non_null(f);
  char line[32] = {0};
  assert_non_null(fgets(line, sizeof line, f));
  fclose(f);
  assert_string_equal(line, "dscache 2\n");
  uint32_t k = 5;
  value_of(v, RV, k);
  assert_int_equal(ds_cache_put(c, &k, sizeof k, v, RV), DS_OK); /* after the DSR1 records */
  ds_cache_destroy(c);
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  for (k = 1000; k < 1003; k++) assert_true(has_value(c, k, RV));
  assert_true(has_value(c, 5, RV));
  uint32_t next = 10;
  for (int i = 0; i < 3; i++) put_until_recycled(ctx, c, dir, max, &next, 0);
  for (k = 1000; k < 1003; k++) assert_false(has_value(c, k, RV));
  ds_cache_destroy(c);
  c = open_raw(ctx, dir, max, DS_CACHE_SYNC_BATCHED, 0);
  assert_int_equal(ds_test_tier_stats(c, DS_CACHE_L3).corrupt, 0);
  for (k = 1000; k < 1003; k++) assert_false(has_value(c, k, RV));
  assert_false(has_value(c, 5, RV));
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reopen_modes_lock), cmocka_unit_test(test_torn_last_record), cmocka_unit_test(test_max_bytes_exact),
      cmocka_unit_test(test_verify_reads), cmocka_unit_test(test_persist_tunables),
      cmocka_unit_test(test_corrupt_and_torn),  cmocka_unit_test(test_disk_full),
      cmocka_unit_test(test_kill9),             cmocka_unit_test(test_garbage_segments),
      cmocka_unit_test(test_bad_input),         cmocka_unit_test(test_index_files),
      cmocka_unit_test(test_verify_large),
      cmocka_unit_test(test_verify_1mib_fused),
      cmocka_unit_test(test_record_larger_than_segment),      cmocka_unit_test(test_checksum_tables),
      cmocka_unit_test(test_recycle),           cmocka_unit_test(test_recycle_torn),
      cmocka_unit_test(test_dsr1_segment),      cmocka_unit_test(test_prealloc),
      cmocka_unit_test(test_recycle_threads),
  };
  return cmocka_run_group_tests(tests, NULL, remove_tmp_dirs);
}
