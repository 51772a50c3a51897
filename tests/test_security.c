/* Security properties of what the library leaves on disk: the persistent cache's directory is
 * created 0700 and its files 0600 whatever the umask, and a writer refuses a directory that
 * others can write into; the stats file is 0600 in a 0700 per-user directory, and a stats
 * directory others can write into, or a symbolic link, is refused (the context then runs
 * without a stats file). deepseek-monitor's same-user rule and its 127.0.0.1 default are
 * tested in tools/tests/test_tools.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test_util.h"


static unsigned mode_of(const char *path) {
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  return (unsigned)(st.st_mode & 07777);
}

static ds_context *ctx_with_stats(int stats_file) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT; /* environment on: DS_STATS_DIR */
  ds_param_value p[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                        {DS_PARAM_STATS_FILE, 0, stats_file},
                        {DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF}};
  o.params = p;
  o.nparams = 3;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static void test_cache_files_private(void **state) {
  (void)state;
  mode_t old = umask(0); /* the most permissive umask a caller could have */
  ds_context *ctx = ctx_with_stats(0);
  const char *dir = ds_test_path("sec_cache");
  ds_cache *c = NULL;
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 8 << 20, 0), DS_OK);
  assert_int_equal(ds_cache_put(c, "k", 1, "v", 1), DS_OK);
  assert_int_equal(mode_of(dir), 0700);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int files = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (mode_of(p) != 0600) fail_msg("%s has mode %03o", p, mode_of(p));
    files++;
  }
  closedir(d);
  assert_true(files >= 3); /* MANIFEST, LOCK, a segment */
  ds_cache_destroy(c);
  /* a directory others can write into is refused for writing */
  assert_int_equal(chmod(dir, 0777), 0);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 8 << 20, 0), DS_ERR_IO);
  assert_non_null(strstr(ds_context_last_error(ctx), "not a private directory"));
  assert_int_equal(chmod(dir, 0700), 0);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 8 << 20, 0), DS_OK);
  ds_cache_destroy(c);
  ds_context_destroy(ctx);
  umask(old);
  ds_test_path("sec_cache");
}

static void test_stats_file_private(void **state) {
  (void)state;
  mode_t old = umask(0);
  const char *dir = ds_test_path("sec_stats");
  setenv("DS_STATS_DIR", dir, 1);
  ds_context *ctx = ctx_with_stats(1);
  const char *path = ds_stats_file_path(ctx);
  assert_non_null(path);
  assert_int_equal(mode_of(dir), 0700);
  assert_int_equal(mode_of(path), 0600);
  ds_context_destroy(ctx);
  /* group- or world-writable: refused, the context works without a stats file */
  assert_int_equal(chmod(dir, 0777), 0);
  ctx = ctx_with_stats(1);
  assert_null(ds_stats_file_path(ctx));
  ds_context_destroy(ctx);
  /* a symbolic link in place of the directory: refused too */
  assert_int_equal(chmod(dir, 0700), 0);
  const char *link = ds_test_path("sec_stats_link");
  assert_int_equal(symlink(dir, link), 0);
  setenv("DS_STATS_DIR", link, 1);
  ctx = ctx_with_stats(1);
  assert_null(ds_stats_file_path(ctx));
  ds_context_destroy(ctx);
  unsetenv("DS_STATS_DIR");
  umask(old);
  ds_test_path("sec_stats");
  ds_test_path("sec_stats_link");
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int file_is(const char *path, const char *text) {
  char buf[64] = {0};
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  return n == strlen(text) && memcmp(buf, text, n) == 0;
}

/* DS_TRACE comes from the environment: a symbolic link or a hard-linked file in its place is
 * refused (the context still starts, without a trace), so a planted link cannot make the
 * process truncate another file; a plain path is created 0600 and written. */
static void test_trace_env_path_checked(void **state) {
  (void)state;
  mode_t old = umask(0);
  const char *victim = ds_test_path("sec_trace_victim");
  const char *sym = ds_test_path("sec_trace_link");
  const char *hard = ds_test_path("sec_trace_hard");
  const char *plain = ds_test_path("sec_trace_plain");
  write_text(victim, "keep");
  assert_int_equal(symlink(victim, sym), 0);
  assert_int_equal(link(victim, hard), 0);
  const char *refused[] = {sym, hard};
  for (int i = 0; i < 2; i++) {
    setenv("DS_TRACE", refused[i], 1);
    ds_context *ctx = ctx_with_stats(0);
    assert_int_equal(ds_trace_enabled(ctx), 0);
    ds_context_destroy(ctx);
    assert_true(file_is(victim, "keep"));
  }
  setenv("DS_TRACE", plain, 1);
  ds_context *ctx = ctx_with_stats(0);
  assert_int_equal(ds_trace_enabled(ctx), 1);
  assert_int_equal(mode_of(plain), 0600);
  ds_context_destroy(ctx);
  unsetenv("DS_TRACE");
  struct stat st;
  assert_int_equal(stat(plain, &st), 0);
  assert_true(st.st_size > 0);
  umask(old);
  ds_test_path("sec_trace_victim");
  ds_test_path("sec_trace_link");
  ds_test_path("sec_trace_hard");
  ds_test_path("sec_trace_plain");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cache_files_private),
      cmocka_unit_test(test_stats_file_private),
      cmocka_unit_test(test_trace_env_path_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
