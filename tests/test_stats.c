/* Tests of the stats registry and the stats file: registration and lock-free updates,
 * snapshots, the file's mode, contents and removal, corrupt files, a reader racing a publishing
 * writer, and refusal of an insecure directory. DS_STATS_DIR points at a scratch directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Offsets in the file format (see src/core/stats_file.c), for corrupting files on purpose. */
enum { OFF_VERSION = 8, OFF_COUNT = 32, OFF_ENTRIES = 128, FILE_SIZE = 128 + 512 * 80 };

static char g_dir[1024]; /* this run's DS_STATS_DIR */

static int setup(void **state) {
  (void)state;
  const char *tmp = getenv("DS_TEST_TMP");
  snprintf(g_dir, sizeof g_dir, "%s/test_stats.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(g_dir)) return -1;
  return setenv("DS_STATS_DIR", g_dir, 1);
}

static int teardown(void **state) {
  (void)state;
  unsetenv("DS_STATS_DIR");
  return rmdir(g_dir); /* fails if a test left a file behind */
}

static ds_context *new_ctx(int stats_file) {
  /* No sampler thread: its publishes would interleave with the tests' own (e.g. between the two
   * halves of the pair in test_no_torn_reads, which is a legitimate state of the registry). */
  ds_param_value p[] = {{DS_PARAM_STATS_FILE, 0, stats_file}, {DS_PARAM_TELEMETRY_ENABLE, 0, 0}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.params = p;
  o.nparams = 2;
  o.name = "stats-test";
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static int files_in(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* ---- registry and snapshots ---- */

static void test_registry(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(0);
  int a = ds__stat_register(ctx, "test.requests", DS_STAT_COUNTER);
  int g = ds__stat_register(ctx, "test.queue_depth", DS_STAT_GAUGE);
  assert_true(a >= 0 && g >= 0 && a != g);
  assert_int_equal(ds__stat_register(ctx, "test.requests", DS_STAT_COUNTER), a);
  char longname[80];
  memset(longname, 'x', 64);
  longname[64] = '\0';
  assert_int_equal(ds__stat_register(ctx, longname, DS_STAT_GAUGE), -1);
  assert_int_equal(ds__stat_register(ctx, "", DS_STAT_GAUGE), -1);
  int unset = ds__stat_register(ctx, "test.never_set", DS_STAT_GAUGE);
  assert_true(unset >= 0);
  int added = ds__stat_register(ctx, "test.added_gauge", DS_STAT_GAUGE);
  ds__stat_add(ctx, added, 2.0); /* an unset gauge counts from 0 */
  ds__stat_add(ctx, a, 1.5);
  ds__stat_add(ctx, a, 2.0);
  ds__stat_set(ctx, g, 42.0);
  ds__stat_add(ctx, -1, 1.0); /* ignored */
  ds__stat_set(ctx, 9999, 1.0);

  ds_stats *s = NULL;
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  double v;
  assert_int_equal(ds_stats_find(&v, s, "test.requests"), DS_OK);
  assert_true(v == 3.5);
  assert_int_equal(ds_stats_find(&v, s, "test.queue_depth"), DS_OK);
  assert_true(v == 42.0);
  assert_int_equal(ds_stats_find(&v, s, "test.never_set"), DS_OK);
  assert_true(isnan(v)); /* a gauge never set is unknown, not 0 */
  assert_int_equal(ds_stats_find(&v, s, "test.added_gauge"), DS_OK);
  assert_true(v == 2.0);
  assert_int_equal(ds_stats_find(&v, s, "core.mem.live_bytes"), DS_OK);
  assert_true(v > 0);
  assert_int_equal(ds_stats_find(&v, s, "core.uptime_s"), DS_OK);
  assert_true(v >= 0);
  assert_int_equal(ds_stats_find(&v, s, "no.such.stat"), DS_ERR_NOT_FOUND);
  double live = 0, peak = 0, peak2 = 0;
  assert_int_equal(ds_stats_find(&live, s, "core.mem.live_bytes"), DS_OK);
  assert_int_equal(ds_stats_find(&peak, s, "core.mem.peak_bytes"), DS_OK);
  assert_true(peak >= live);
  ds_stats_free(s);
  void *big = ds__alloc(ctx, 1 << 20); /* a transient block raises the peak for good */
  assert_non_null(big);
  ds__free(ctx, big);
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&peak2, s, "core.mem.peak_bytes"), DS_OK);
  assert_true(peak2 >= live + (1 << 20));
  assert_int_equal(ds_stats_pid(s), (int64_t)getpid());
  assert_string_equal(ds_stats_label(s), "stats-test");
  ds_stat st;
  size_t n = ds_stats_count(s);
  assert_true(n >= 5);
  int seen = 0;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(ds_stats_at(&st, s, i), DS_OK);
    if (strcmp(st.name, "test.queue_depth") == 0) seen = st.kind == DS_STAT_GAUGE;
  }
  assert_true(seen);
  assert_int_equal(ds_stats_at(&st, s, n), DS_ERR_NOT_FOUND);
  ds_context_destroy(ctx);
  /* A snapshot outlives its context. */
  assert_int_equal(ds_stats_find(&v, s, "test.requests"), DS_OK);
  assert_true(v == 3.5);
  ds_stats_free(s);
  ds_stats_free(NULL);
  assert_int_equal(ds_stats_count(NULL), 0);
}

static void test_registry_full(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(0);
  int last = 0, count = 0;
  char name[32];
  for (int i = 0; i < 600 && last >= 0; i++) {
    snprintf(name, sizeof name, "fill.%d", i);
    last = ds__stat_register(ctx, name, DS_STAT_COUNTER);
    count += last >= 0;
  }
  assert_int_equal(last, -1);
  ds_stats *s = NULL;
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  assert_int_equal(ds_stats_count(s), 512); /* the core's own and count fills */
  assert_true(count > 500);
  ds_stats_free(s);
  ds_context_destroy(ctx);
}

/* ---- the file ---- */

static void test_file(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(1);
  const char *path = ds_stats_file_path(ctx);
  assert_non_null(path);
  assert_true(strncmp(path, g_dir, strlen(g_dir)) == 0);
  char saved[1024];
  snprintf(saved, sizeof saved, "%s", path);
  struct stat sb;
  assert_int_equal(stat(saved, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_mode & 0777, 0600);

  int id = ds__stat_register(ctx, "test.file_value", DS_STAT_GAUGE);
  ds__stat_set(ctx, id, -7.25);
  ds__stats_publish(ctx);
  ds_stats *s = NULL;
  assert_int_equal(ds_stats_file_read(&s, saved), DS_OK);
  double v;
  assert_int_equal(ds_stats_find(&v, s, "test.file_value"), DS_OK);
  assert_true(v == -7.25);
  assert_int_equal(ds_stats_find(&v, s, "core.mem.live_bytes"), DS_OK);
  assert_true(v > 0);
  assert_int_equal(ds_stats_pid(s), (int64_t)getpid());
  assert_string_equal(ds_stats_label(s), "stats-test");
  ds_stat st;
  assert_int_equal(ds_stats_at(&st, s, 0), DS_OK);
  assert_string_equal(st.name, "core.mem.live_bytes");
  ds_stats_free(s);

  ds_context_destroy(ctx);
  assert_int_equal(access(saved, F_OK), -1);
  assert_int_equal(errno, ENOENT);
}

static void test_file_disabled(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(0);
  assert_null(ds_stats_file_path(ctx));
  assert_int_equal(files_in(g_dir), 0);
  ds__stats_publish(ctx); /* no file: a no-op */
  ds_context_destroy(ctx);
  assert_null(ds_stats_file_path(NULL));
}

/* ---- corrupt files ---- */

static void write_file(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(bytes, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static ds_status read_bytes(const char *path, const void *bytes, size_t n) {
  write_file(path, bytes, n);
  ds_stats *s = (ds_stats *)1; /* must be reset to NULL on failure */
  ds_status st = ds_stats_file_read(&s, path);
  if (st != DS_OK) assert_null(s);
  ds_stats_free(s);
  return st;
}

static void test_corrupt(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(1);
  unsigned char *good = malloc(FILE_SIZE), *bad = malloc(FILE_SIZE);
  assert_true(good && bad);
  FILE *f = fopen(ds_stats_file_path(ctx), "rb");
  assert_non_null(f);
  assert_int_equal(fread(good, 1, FILE_SIZE, f), FILE_SIZE);
  fclose(f);
  ds_context_destroy(ctx);

  char path[1100];
  snprintf(path, sizeof path, "%s/corrupt.stats", g_dir);
  assert_int_equal(read_bytes(path, good, FILE_SIZE), DS_OK); /* the copy itself is fine */
  assert_int_equal(read_bytes(path, good, 0), DS_ERR_CORRUPT);
  assert_int_equal(read_bytes(path, good, 100), DS_ERR_CORRUPT);
  assert_int_equal(read_bytes(path, good, FILE_SIZE / 2), DS_ERR_CORRUPT);
  assert_non_null(strstr(ds_context_last_error(NULL), "truncated"));

  memcpy(bad, good, FILE_SIZE);
  bad[0] = 'X';
  assert_int_equal(read_bytes(path, bad, FILE_SIZE), DS_ERR_CORRUPT);
  assert_non_null(strstr(ds_context_last_error(NULL), "magic"));

  memcpy(bad, good, FILE_SIZE);
  uint32_t v = 99;
  memcpy(bad + OFF_VERSION, &v, 4);
  assert_int_equal(read_bytes(path, bad, FILE_SIZE), DS_ERR_CORRUPT);

  memcpy(bad, good, FILE_SIZE);
  v = 513;
  memcpy(bad + OFF_COUNT, &v, 4);
  assert_int_equal(read_bytes(path, bad, FILE_SIZE), DS_ERR_CORRUPT);
  assert_non_null(strstr(ds_context_last_error(NULL), "capacity"));

  memcpy(bad, good, FILE_SIZE);
  memset(bad + OFF_ENTRIES, 'A', 64); /* first name without its NUL */
  assert_int_equal(read_bytes(path, bad, FILE_SIZE), DS_ERR_CORRUPT);

  memcpy(bad, good, FILE_SIZE);
  v = 0xFFFFFFFFu;
  memcpy(bad + 20, &v, 4); /* capacity */
  assert_int_equal(read_bytes(path, bad, FILE_SIZE), DS_ERR_CORRUPT);

  memset(bad, 0xA5, FILE_SIZE);
  assert_int_equal(read_bytes(path, bad, FILE_SIZE), DS_ERR_CORRUPT);
  unlink(path);

  ds_stats *s = NULL;
  assert_int_equal(ds_stats_file_read(&s, path), DS_ERR_IO); /* gone */
  assert_int_equal(ds_stats_file_read(&s, g_dir), DS_ERR_CORRUPT); /* a directory */
  assert_int_equal(ds_stats_file_read(NULL, path), DS_ERR_INVALID_ARG);
  free(good);
  free(bad);
}

/* ---- a reader racing the writer ---- */

typedef struct pair_writer {
  ds_context *ctx;
  int a, b;
  ds__atomic_int stop;
  long publishes;
} pair_writer;

static void *publish_loop(void *p) {
  pair_writer *w = p;
  for (double v = 1; !ds__load(&w->stop); v++) {
    ds__stat_set(w->ctx, w->a, v);
    ds__stat_set(w->ctx, w->b, v);
    ds__stats_publish(w->ctx);
    w->publishes++;
  }
  return NULL;
}

static void test_no_torn_reads(void **state) {
  (void)state;
  pair_writer w = {.ctx = new_ctx(1)};
  char name[32];
  w.a = ds__stat_register(w.ctx, "pair.a", DS_STAT_GAUGE);
  for (int i = 0; i < 200; i++) { /* a long copy between the pair widens any race */
    snprintf(name, sizeof name, "filler.%d", i);
    ds__stat_register(w.ctx, name, DS_STAT_COUNTER);
  }
  w.b = ds__stat_register(w.ctx, "pair.b", DS_STAT_GAUGE);
  const char *path = ds_stats_file_path(w.ctx);
  assert_non_null(path);
  ds__stat_set(w.ctx, w.a, 0); /* gauges start as NaN, which never compares equal */
  ds__stat_set(w.ctx, w.b, 0);
  ds__stats_publish(w.ctx); /* the pair is in the file before the first read */
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, publish_loop, &w), 0);
  int ok = 0, busy = 0;
  double last = 0;
  for (int i = 0; i < 10000; i++) {
    ds_stats *s = NULL;
    ds_status st = ds_stats_file_read(&s, path);
    if (st == DS_ERR_BUSY) {
      busy++;
      continue;
    }
    assert_int_equal(st, DS_OK);
    double a, b;
    assert_int_equal(ds_stats_find(&a, s, "pair.a"), DS_OK);
    assert_int_equal(ds_stats_find(&b, s, "pair.b"), DS_OK);
    assert_true(a == b);
    assert_true(a >= last); /* never goes back in time either */
    last = a;
    ok++;
    ds_stats_free(s);
  }
  ds__store(&w.stop, 1);
  pthread_join(t, NULL);
  printf("# %d consistent reads, %d busy, %ld publishes, last value %.0f\n", ok, busy,
         w.publishes, last);
  /* The writer never pauses, far harsher than a telemetry tick, so some reads give up with
   * DS_ERR_BUSY; what matters is that none of the others saw a torn pair. */
  assert_true(ok > 100);
  ds_context_destroy(w.ctx);
}

/* ---- directories that must not be used ---- */

static void test_insecure_dir(void **state) {
  (void)state;
  char open_dir[1100], link[1100];
  snprintf(open_dir, sizeof open_dir, "%s/open", g_dir);
  snprintf(link, sizeof link, "%s/link", g_dir);
  assert_int_equal(mkdir(open_dir, 0700), 0);
  assert_int_equal(chmod(open_dir, 0777), 0);
  setenv("DS_STATS_DIR", open_dir, 1);
  ds_context *ctx = new_ctx(1);
  assert_null(ds_stats_file_path(ctx)); /* refused, and the context works without it */
  ds__stats_publish(ctx);
  ds_context_destroy(ctx);
  assert_int_equal(files_in(open_dir), 0);

  assert_int_equal(chmod(open_dir, 0700), 0);
  assert_int_equal(symlink(open_dir, link), 0);
  setenv("DS_STATS_DIR", link, 1);
  ctx = new_ctx(1);
  assert_null(ds_stats_file_path(ctx));
  ds_context_destroy(ctx);

  /* A directory that does not exist yet is created, private. */
  char fresh[1100];
  snprintf(fresh, sizeof fresh, "%s/fresh", g_dir);
  setenv("DS_STATS_DIR", fresh, 1);
  ctx = new_ctx(1);
  assert_non_null(ds_stats_file_path(ctx));
  struct stat sb;
  assert_int_equal(stat(fresh, &sb), 0);
  assert_int_equal(sb.st_mode & 0077, 0);
  ds_context_destroy(ctx);

  setenv("DS_STATS_DIR", g_dir, 1);
  unlink(link);
  rmdir(open_dir);
  rmdir(fresh);
}

/* ds_stats_dir() names the directory the files were created in, and reports a short buffer. */
static void test_stats_dir(void **state) {
  (void)state;
  char dir[1024];
  assert_int_equal(ds_stats_dir(dir, sizeof dir), DS_OK);
  assert_string_equal(dir, g_dir);
  ds_context *ctx = new_ctx(1);
  const char *path = ds_stats_file_path(ctx);
  assert_non_null(path);
  assert_true(strncmp(path, dir, strlen(dir)) == 0 && path[strlen(dir)] == '/');
  ds_context_destroy(ctx);
  char small[4] = "xyz";
  assert_int_equal(ds_stats_dir(small, sizeof small), DS_ERR_NO_SPACE);
  assert_string_equal(small, "");
  assert_int_equal(ds_stats_dir(NULL, 10), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_stats_dir(dir, 0), DS_ERR_INVALID_ARG);
  unsetenv("DS_STATS_DIR");
  assert_int_equal(ds_stats_dir(dir, sizeof dir), DS_OK);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "/tmp/deepseek-%u", (unsigned)geteuid());
  assert_true(strcmp(dir, tmp) == 0 || strstr(dir, "/deepseek") != NULL);
  setenv("DS_STATS_DIR", g_dir, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry),      cmocka_unit_test(test_registry_full),
      cmocka_unit_test(test_file),          cmocka_unit_test(test_file_disabled),
      cmocka_unit_test(test_corrupt),       cmocka_unit_test(test_no_torn_reads),
      cmocka_unit_test(test_insecure_dir),  cmocka_unit_test(test_stats_dir),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
