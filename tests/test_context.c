/* Tests of the context: status strings, versions, options ABI, tunables and their bounds,
 * config files, environment overrides, allocator hook, logging, per-thread last error. */
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

static ds_context *new_ctx(const ds_param_value *params, size_t n) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value quiet[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
  o.params = params ? params : quiet;
  o.nparams = params ? n : 2;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  assert_non_null(ctx);
  return ctx;
}

static const char *tmp_path(const char *name) {
  static char buf[4096];
  const char *dir = getenv("DS_TEST_TMP");
  snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "/tmp", name);
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_status_strings_cover_every_code(void **state) {
  (void)state;
  int n = 0;
#define CHECK_STATUS(name, num, desc)                                    \
  assert_string_equal(ds_status_str(name), desc);                        \
  assert_string_equal(ds_status_name(name), #name);                      \
  assert_int_equal((int)name, num);                                      \
  n++;
  DS_STATUS_MAP(CHECK_STATUS)
#undef CHECK_STATUS
  assert_true(n >= 23);
  assert_string_equal(ds_status_str((ds_status)9999), "unknown status");
  assert_string_equal(ds_status_name((ds_status)-1), "DS_UNKNOWN");
}

static void test_version(void **state) {
  (void)state;
  assert_int_equal(ds_version_number(), DS_VERSION_NUMBER);
  assert_string_equal(ds_version_string(), DS_VERSION_STRING);
  assert_true(strstr(ds_build_summary(), "cuda=") != NULL);
  assert_true(ds_build_features() & DS_FEATURE_HWLOC);
}

static void test_wrong_struct_size_is_abi_error(void **state) {
  (void)state;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  ds_context *ctx = (ds_context *)&o;
  o.struct_size = sizeof o - 8;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_ABI);
  assert_null(ctx);
  assert_non_null(strstr(ds_context_last_error(NULL), "struct_size"));
  o.struct_size = 0;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_ABI);
  o.struct_size = sizeof o + 64;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_ABI);
}

static void test_header_version_mismatch(void **state) {
  (void)state;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  ds_context *ctx = NULL;
  o.header_version = (DS_VERSION_MAJOR + 1) * 10000;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_VERSION);
  o.header_version = DS_VERSION_MAJOR * 10000 + (DS_VERSION_MINOR + 1) * 100;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_VERSION);
  assert_non_null(strstr(ds_context_last_error(NULL), "headers"));
}

static void test_bad_options(void **state) {
  (void)state;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(NULL, NULL), DS_ERR_INVALID_ARG);
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.log_level = 7;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_context_options)DS_CONTEXT_OPTIONS_INIT;
  o.nparams = 3;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_context_options)DS_CONTEXT_OPTIONS_INIT;
  o.flags = 0x80;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_INVALID_ARG);
  ds_allocator half = {NULL, NULL, NULL};
  o = (ds_context_options)DS_CONTEXT_OPTIONS_INIT;
  o.allocator = &half;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_INVALID_ARG);
  ds_param_value bad[] = {{DS_PARAM_TELEMETRY_PERIOD_MS, 0, 0}};
  o = (ds_context_options)DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = bad;
  o.nparams = 1;
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(NULL), "telemetry_period_ms"));
  assert_null(ctx);
  ds_context_destroy(NULL); /* harmless */
}

static void test_create_destroy_many(void **state) {
  (void)state;
  for (int i = 0; i < 1000; i++) {
    ds_context *ctx = NULL;
    ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
    o.flags = DS_CONTEXT_NO_ENV;
    assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
    /* Exercise the per-thread state so its cleanup is covered too. */
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_LOG_LEVEL, 99), DS_ERR_INVALID_ARG);
    ds_context_destroy(ctx);
  }
}

static void test_every_tunable_bounds_enforced(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(NULL, 0);
  for (int i = 0; i < ds__param_count(); i++) {
    const ds__param_def *d = ds__param_at(i);
    int64_t lo = 0, hi = 0, def = 0, v = 0;
    assert_int_equal(ds_param_bounds(d->id, &lo, &hi), DS_OK);
    assert_int_equal(ds_param_default(d->id, &def), DS_OK);
    assert_true(lo <= def && def <= hi);
    assert_string_equal(ds_param_name(d->id), d->name);
    ds_param found;
    assert_int_equal(ds_param_from_name(&found, d->name), DS_OK);
    assert_int_equal(found, d->id);
    int expect_ok = (d->flags & DS__PARAM_CREATE_ONLY) ? DS_ERR_STATE : DS_OK;
    assert_int_equal(ds_context_set_param(ctx, d->id, lo - 1), DS_ERR_INVALID_ARG);
    const char *msg = ds_context_last_error(ctx);
    assert_non_null(strstr(msg, d->name));
    char range[96];
    snprintf(range, sizeof range, "[%lld, %lld]", (long long)lo, (long long)hi);
    assert_non_null(strstr(msg, range));
    assert_int_equal(ds_context_set_param(ctx, d->id, hi + 1), DS_ERR_INVALID_ARG);
    assert_int_equal(ds_context_set_param(ctx, d->id, hi), expect_ok);
    assert_int_equal(ds_context_get_param(ctx, d->id, &v), DS_OK);
    if (expect_ok == DS_OK) {
      assert_int_equal(v, hi);
      assert_int_equal(ds_context_set_param(ctx, d->id, lo), DS_OK);
      assert_int_equal(ds_context_get_param(ctx, d->id, &v), DS_OK);
      assert_int_equal(v, lo);
    }
  }
  int64_t v;
  assert_int_equal(ds_context_set_param(ctx, (ds_param)12345, 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_context_get_param(ctx, (ds_param)12345, &v), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_param_bounds((ds_param)12345, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_null(ds_param_name((ds_param)12345));
  ds_param p;
  assert_int_equal(ds_param_from_name(&p, "DS_TELEMETRY_PERIOD_MS"), DS_OK);
  assert_int_equal(p, DS_PARAM_TELEMETRY_PERIOD_MS);
  assert_int_equal(ds_param_from_name(&p, "no_such_thing"), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_context_set_param(NULL, DS_PARAM_LOG_LEVEL, 1), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

static void test_params_from_options(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_TRACE_MAX_EVENTS, 0, 5000}};
  ds_context *ctx = new_ctx(pv, 3);
  int64_t v = 0;
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TRACE_MAX_EVENTS, &v), DS_OK);
  assert_int_equal(v, 5000);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &v), DS_OK);
  assert_int_equal(v, 100);
  ds_context_destroy(ctx);
}

static ds_status create_with_config(const char *path, ds_context **ctx) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.config_path = path;
  *ctx = NULL;
  return ds_context_create(ctx, &o);
}

static void test_config_file_ok(void **state) {
  (void)state;
  const char *p = tmp_path("ok.conf");
  write_file(p, "# comment\n\n  telemetry_period_ms = 250  # trailing\nLOG_LEVEL=error\n"
                "telemetry_enable = off\nstats_file=0\ntrace_max_events = 0x1000\n"
                "telemetry_period_ms = 300\n");
  ds_context *ctx = NULL;
  assert_int_equal(create_with_config(p, &ctx), DS_OK);
  int64_t v;
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &v), DS_OK);
  assert_int_equal(v, 300); /* the last of a repeated key wins */
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_LOG_LEVEL, &v), DS_OK);
  assert_int_equal(v, DS_LOG_ERROR);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TRACE_MAX_EVENTS, &v), DS_OK);
  assert_int_equal(v, 4096);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_ENABLE, &v), DS_OK);
  assert_int_equal(v, 0);

  /* Loading into a live context: valid keys apply, creation-only keys are refused. */
  const char *p2 = tmp_path("live.conf");
  write_file(p2, "telemetry_period_ms = 50\n");
  assert_int_equal(ds_context_load_config(ctx, p2), DS_OK);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &v), DS_OK);
  assert_int_equal(v, 50);
  write_file(p2, "telemetry_period_ms = 70\nstats_file = 1\n");
  assert_int_equal(ds_context_load_config(ctx, p2), DS_ERR_CONFIG);
  assert_non_null(strstr(ds_context_last_error(ctx), ":2:"));
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &v), DS_OK);
  assert_int_equal(v, 50); /* nothing applied from a file with an error */
  ds_context_destroy(ctx);
}

static void expect_config_error(const char *text, const char *fragment, int line) {
  const char *p = tmp_path("bad.conf");
  write_file(p, text);
  ds_context *ctx = NULL;
  assert_int_equal(create_with_config(p, &ctx), DS_ERR_CONFIG);
  assert_null(ctx);
  const char *msg = ds_context_last_error(NULL);
  char where[4200];
  snprintf(where, sizeof where, "%s:%d:", p, line);
  if (!strstr(msg, where) || !strstr(msg, fragment)) fail_msg("message was: %s", msg);
}

static void test_config_file_errors(void **state) {
  (void)state;
  expect_config_error("telemetry_period_ms = 10\nbogus_key = 1\n", "unknown key 'bogus_key'", 2);
  expect_config_error("\n\ntelemetry_period_ms = 12abc\n", "bad number '12abc'", 3);
  expect_config_error("telemetry_period_ms 10\n", "missing '='", 1);
  expect_config_error("telemetry_period_ms =\n", "bad number", 1);
  expect_config_error("= 5\n", "empty key", 1);
  expect_config_error("telemetry_period_ms = 0\n", "out of range [1, 60000]", 1);
  expect_config_error("log_level = loud\n", "bad number 'loud'", 1);
  expect_config_error("telemetry_period_ms = 99999999999999999999999\n", "bad number", 1);
  expect_config_error("telemetry_period_ms = 5\r\nfoo\r\n", "missing '='", 2); /* CRLF ok */

  /* Bytes no text editor writes: NUL inside a line, a line over 4 KiB. */
  ds_context *c2 = new_ctx(NULL, 0);
  static const char nul[] = "telemetry_period_ms = 5\nlog_level\0 = 1\n";
  assert_int_equal(ds__config_parse(c2, "mem", nul, sizeof nul - 1, 1), DS_ERR_CONFIG);
  assert_non_null(strstr(ds_context_last_error(c2), "mem:2: NUL byte"));
  char *longline = malloc(5000);
  memset(longline, 'a', 5000);
  assert_int_equal(ds__config_parse(c2, "mem", longline, 5000, 1), DS_ERR_CONFIG);
  assert_non_null(strstr(ds_context_last_error(c2), "mem:1: line longer"));
  free(longline);
  int64_t period = 0;
  ds_context_get_param(c2, DS_PARAM_TELEMETRY_PERIOD_MS, &period);
  assert_int_equal(period, 100); /* nothing from the bad inputs was applied */
  ds_context_destroy(c2);

  ds_context *ctx = NULL;
  const char *missing = tmp_path("does-not-exist.conf");
  assert_int_equal(create_with_config(missing, &ctx), DS_ERR_CONFIG);
  assert_non_null(strstr(ds_context_last_error(NULL), "does-not-exist.conf"));
  assert_non_null(strstr(ds_context_last_error(NULL), "cannot open"));
}

static void test_env_overrides_file(void **state) {
  (void)state;
  const char *p = tmp_path("env.conf");
  write_file(p, "telemetry_period_ms = 250\ntrace_max_events = 2048\n");
  setenv("DS_CONFIG", p, 1);
  setenv("DS_TELEMETRY_PERIOD_MS", "777", 1);
  setenv("DS_LOG", "info", 1);
  setenv("DS_TELEMETRY_ENABLE", "0", 1);
  setenv("DS_STATS_FILE", "no", 1);
  ds_context *ctx = NULL;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_PERIOD_MS, 0, 11}};
  o.params = pv;
  o.nparams = 1;
  o.log_fn = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  int64_t v;
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &v), DS_OK);
  assert_int_equal(v, 777); /* env beats file beats options */
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TRACE_MAX_EVENTS, &v), DS_OK);
  assert_int_equal(v, 2048);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_LOG_LEVEL, &v), DS_OK);
  assert_int_equal(v, DS_LOG_INFO);
  ds_context_set_log(ctx, DS_LOG_OFF, NULL, NULL);
  ds_context_destroy(ctx);

  /* A bad environment value is a config error naming the variable. */
  setenv("DS_TELEMETRY_PERIOD_MS", "fast", 1);
  assert_int_equal(ds_context_create(&ctx, &o), DS_ERR_CONFIG);
  assert_non_null(strstr(ds_context_last_error(NULL), "DS_TELEMETRY_PERIOD_MS"));
  /* DS_CONTEXT_NO_ENV ignores all of it. */
  o.flags = DS_CONTEXT_NO_ENV;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  assert_int_equal(ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &v), DS_OK);
  assert_int_equal(v, 11);
  ds_context_destroy(ctx);
  unsetenv("DS_CONFIG");
  unsetenv("DS_TELEMETRY_PERIOD_MS");
  unsetenv("DS_LOG");
  unsetenv("DS_TELEMETRY_ENABLE");
  unsetenv("DS_STATS_FILE");
}

typedef struct counting_alloc {
  long allocs, frees;
  long fail_after; /* fail the Nth allocation; -1 never */
} counting_alloc;

static void *count_alloc(void *user, size_t size) {
  counting_alloc *c = user;
  if (c->fail_after >= 0 && c->allocs >= c->fail_after) return NULL;
  c->allocs++;
  return malloc(size);
}

static void count_free(void *user, void *p) {
  counting_alloc *c = user;
  if (p) c->frees++;
  free(p);
}

static void test_allocator_hook(void **state) {
  (void)state;
  counting_alloc c = {0, 0, -1};
  ds_allocator a = {count_alloc, count_free, &c};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.allocator = &a;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  assert_true(c.allocs >= 1);
  ds_context_set_param(ctx, DS_PARAM_LOG_LEVEL, -5); /* allocates per-thread error state */
  ds_context_destroy(ctx);
  assert_int_equal(c.allocs, c.frees);

  /* Failing each allocation in turn: create fails cleanly with DS_ERR_NO_MEMORY or succeeds,
   * and never leaks. */
  long total = c.allocs;
  for (long n = 0; n < total + 2; n++) {
    counting_alloc f = {0, 0, n};
    a.user = &f;
    ctx = NULL;
    ds_status st = ds_context_create(&ctx, &o);
    if (st == DS_OK)
      ds_context_destroy(ctx);
    else
      assert_int_equal(st, DS_ERR_NO_MEMORY);
    assert_int_equal(f.allocs, f.frees);
  }
}

typedef struct log_capture {
  pthread_mutex_t mu;
  int lines;
  int last_level;
  char last[512];
} log_capture;

static void capture_log(void *user, int level, const char *module, const char *msg) {
  log_capture *c = user;
  pthread_mutex_lock(&c->mu);
  c->lines++;
  c->last_level = level;
  snprintf(c->last, sizeof c->last, "%s|%s", module, msg);
  pthread_mutex_unlock(&c->mu);
}

static void test_log_callback_and_level(void **state) {
  (void)state;
  log_capture c = {PTHREAD_MUTEX_INITIALIZER, 0, -1, ""};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.log_level = DS_LOG_DEBUG;
  o.log_fn = capture_log;
  o.log_user = &c;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  int before = c.lines;
  assert_true(before >= 1); /* "context created" at info */
  ds_context_set_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, 0); /* error logged at debug */
  assert_true(c.lines > before);
  assert_int_equal(c.last_level, DS_LOG_DEBUG);
  assert_non_null(strstr(c.last, "telemetry_period_ms"));
  assert_int_equal(ds_context_set_log(ctx, DS_LOG_ERROR, capture_log, &c), DS_OK);
  before = c.lines;
  ds_context_set_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, 0);
  assert_int_equal(c.lines, before); /* below threshold now */
  assert_int_equal(ds_context_set_log(ctx, 9, NULL, NULL), DS_ERR_INVALID_ARG);
  ds_context_set_log(ctx, DS_LOG_OFF, NULL, NULL);
  ds_context_destroy(ctx);
}

typedef struct thread_err {
  ds_context *ctx;
  char seen[DS__ERRMSG_MAX];
} thread_err;

static void *fail_in_thread(void *arg) {
  thread_err *t = arg;
  ds_context_set_param(t->ctx, DS_PARAM_TRACE_MAX_EVENTS, 1);
  snprintf(t->seen, sizeof t->seen, "%s", ds_context_last_error(t->ctx));
  return NULL;
}

static void test_last_error_is_per_thread(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(NULL, 0);
  assert_string_equal(ds_context_last_error(ctx), "");
  ds_context_set_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, -1);
  thread_err t = {ctx, ""};
  pthread_t th;
  pthread_create(&th, NULL, fail_in_thread, &t);
  pthread_join(th, NULL);
  assert_non_null(strstr(t.seen, "trace_max_events"));
  /* This thread still sees its own error, not the other thread's. */
  assert_non_null(strstr(ds_context_last_error(ctx), "telemetry_period_ms"));
  ds_context_destroy(ctx);
}

typedef struct exec_log {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int order[8];
  int n;
  int started;
  int release;
} exec_log;

typedef struct exec_item {
  exec_log *log;
  int id;
} exec_item;

static void exec_record(void *arg) {
  exec_item *it = arg;
  pthread_mutex_lock(&it->log->mu);
  if (it->id == 0) {
    it->log->started = 1;
    pthread_cond_broadcast(&it->log->cv);
  }
  if (it->id == 0)
    while (!it->log->release) pthread_cond_wait(&it->log->cv, &it->log->mu);
  it->log->order[it->log->n++] = it->id;
  pthread_mutex_unlock(&it->log->mu);
}

static void test_executor_priorities_and_drain(void **state) {
  (void)state;
  /* The core's own executor thread; by default the scheduler takes the work (test_sched). */
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_SCHED_EXECUTOR, 0, 0}};
  ds_context *ctx = new_ctx(pv, 3);
  exec_log log = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};
  exec_item items[5];
  for (int i = 0; i < 5; i++) items[i] = (exec_item){&log, i};
  /* Item 0 blocks the thread while the others queue; then URGENT runs before NORMAL before LOW. */
  assert_int_equal(ds__executor_submit(ctx, exec_record, &items[0], DS__PRIO_NORMAL), DS_OK);
  pthread_mutex_lock(&log.mu);
  while (!log.started) pthread_cond_wait(&log.cv, &log.mu);
  pthread_mutex_unlock(&log.mu);
  assert_int_equal(ds__executor_submit(ctx, exec_record, &items[1], DS__PRIO_LOW), DS_OK);
  assert_int_equal(ds__executor_submit(ctx, exec_record, &items[2], DS__PRIO_NORMAL), DS_OK);
  assert_int_equal(ds__executor_submit(ctx, exec_record, &items[3], DS__PRIO_URGENT), DS_OK);
  assert_int_equal(ds__executor_submit(ctx, exec_record, &items[4], DS__PRIO_LOW), DS_OK);
  assert_int_equal(ds__executor_submit(ctx, NULL, NULL, DS__PRIO_LOW), DS_ERR_INVALID_ARG);
  pthread_mutex_lock(&log.mu);
  log.release = 1;
  pthread_cond_broadcast(&log.cv);
  pthread_mutex_unlock(&log.mu);
  ds_context_destroy(ctx); /* drains what was queued */
  assert_int_equal(log.n, 5);
  int expect[5] = {0, 3, 2, 1, 4};
  for (int i = 0; i < 5; i++) assert_int_equal(log.order[i], expect[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_status_strings_cover_every_code),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_wrong_struct_size_is_abi_error),
      cmocka_unit_test(test_header_version_mismatch),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_create_destroy_many),
      cmocka_unit_test(test_every_tunable_bounds_enforced),
      cmocka_unit_test(test_params_from_options),
      cmocka_unit_test(test_config_file_ok),
      cmocka_unit_test(test_config_file_errors),
      cmocka_unit_test(test_env_overrides_file),
      cmocka_unit_test(test_allocator_hook),
      cmocka_unit_test(test_log_callback_and_level),
      cmocka_unit_test(test_last_error_is_per_thread),
      cmocka_unit_test(test_executor_priorities_and_drain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
