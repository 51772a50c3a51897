/* Tests of the trace recorder: recording from several threads (one still recording while stop
 * runs), the JSON it writes (checked by Python's json.tool and by counting in C), escaping,
 * state errors, the per-thread event limit, and DS_TRACE at context creation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h" /* atomic.h, for the racer's stop flag */

/* ---- helpers ---- */

static void tmp_path(char *buf, size_t cap, const char *name) {
  const char *dir = getenv("DS_TEST_TMP");
  snprintf(buf, cap, "%s/test_trace_%s", dir && *dir ? dir : "/tmp", name);
}

static ds_context *new_ctx(void) {
  ds_param_value p[] = {{DS_PARAM_STATS_FILE, 0, 0}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = p;
  o.nparams = 1;
  o.name = "trace-test";
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  assert_non_null(s);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  fclose(f);
  return s;
}

static size_t count_of(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

/* The file must parse as JSON; the check is skipped where there is no Python. */
static void assert_json(const char *path) {
  if (access("/usr/bin/python3", X_OK) != 0) {
    printf("# /usr/bin/python3 not found: JSON validity of %s not checked\n", path);
    return;
  }
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 -m json.tool '%s' > /dev/null", path);
  assert_int_equal(system(cmd), 0);
}

static void assert_balanced(const char *json) {
  assert_int_equal(count_of(json, "\"ph\":\"B\""), count_of(json, "\"ph\":\"E\""));
}

/* ---- several threads ---- */

enum { WORKERS = 3, SPANS = 500 };

static void *worker(void *arg) {
  ds_context *ctx = arg;
  pthread_setname_np(pthread_self(), "ds-worker");
  for (int i = 0; i < SPANS; i++) {
    ds_trace_begin(ctx, "test", "worker_span");
    ds_trace_instant(ctx, "test", "worker_tick");
    ds_trace_counter(ctx, "worker_counter", i * 0.5);
    ds_trace_end(ctx);
  }
  uint64_t t0 = ds_trace_now_ns();
  ds_trace_complete(ctx, "test", "worker_complete", t0, 1500);
  return NULL; /* exits before stop: its events must still be written */
}

typedef struct racer_arg {
  ds_context *ctx;
  ds__atomic_int stop;
  long spans;
} racer_arg;

static void *racer(void *p) {
  racer_arg *a = p;
  while (!ds__load(&a->stop)) {
    ds_trace_begin(a->ctx, "test", "racer_span");
    ds_trace_counter(a->ctx, "racer_counter", 1.0);
    ds_trace_end(a->ctx);
    a->spans++;
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  char path[1024];
  tmp_path(path, sizeof path, "threads.json");
  ds_context *ctx = new_ctx();
  /* Room for every worker event; the racer fills its buffer and then keeps entering and
   * leaving it (its events dropped) while stop runs. */
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_TRACE_MAX_EVENTS, 16384), DS_OK);
  assert_int_equal(ds_trace_start(ctx, path), DS_OK);
  assert_int_equal(ds_trace_enabled(ctx), 1);

  racer_arg ra = {ctx, 0, 0};
  pthread_t r, w[WORKERS];
  assert_int_equal(pthread_create(&r, NULL, racer, &ra), 0);
  for (int i = 0; i < WORKERS; i++) assert_int_equal(pthread_create(&w[i], NULL, worker, ctx), 0);
  for (int i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
  ds_trace_begin(ctx, "test", "main_span");
  ds_trace_end(ctx);
  ds_trace_begin(ctx, "test", "main_open_span"); /* still open at stop: closed by the writer */

  assert_int_equal(ds_trace_stop(ctx), DS_OK); /* the racer keeps recording meanwhile */
  assert_int_equal(ds_trace_enabled(ctx), 0);
  ds__store(&ra.stop, 1);
  pthread_join(r, NULL);
  ds_trace_end(ctx); /* after stop: ignored */

  assert_json(path);
  char *json = read_file(path);
  assert_int_equal(count_of(json, "\"name\":\"worker_span\""), WORKERS * SPANS);
  assert_int_equal(count_of(json, "\"name\":\"worker_tick\""), WORKERS * SPANS);
  assert_int_equal(count_of(json, "\"name\":\"worker_counter\""), WORKERS * SPANS);
  assert_int_equal(count_of(json, "\"name\":\"worker_complete\""), WORKERS);
  assert_int_equal(count_of(json, "\"dur\":1.500"), WORKERS);
  assert_int_equal(count_of(json, "\"name\":\"main_span\""), 1);
  assert_int_equal(count_of(json, "\"name\":\"main_open_span\""), 1);
  assert_true(count_of(json, "\"name\":\"racer_span\"") <= (size_t)ra.spans + 1);
  assert_balanced(json);
  assert_true(count_of(json, "\"name\":\"ds-worker\"") >= 1); /* thread_name metadata */
  assert_non_null(strstr(json, "\"displayTimeUnit\":\"ns\""));
  assert_non_null(strstr(json, "\"dropped_events\":"));
  assert_non_null(strstr(json, "\"process_name\""));
  free(json);
  ds_context_destroy(ctx);
}

/* ---- strings ---- */

static void test_escaping(void **state) {
  (void)state;
  char path[1024];
  tmp_path(path, sizeof path, "escape.json");
  ds_context *ctx = new_ctx();
  assert_int_equal(ds_trace_start(ctx, path), DS_OK);
  ds_trace_instant(ctx, "q\"c", "say \"hi\"");
  ds_trace_instant(ctx, "test", "back\\slash");
  ds_trace_instant(ctx, "test", "line\nbreak\ttab\x01");
  ds_trace_instant(ctx, "test", "bad utf8 \xff\xfe \xc3( \xed\xa0\x80 end");
  ds_trace_instant(ctx, "test", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  /* 46 ASCII bytes then a 2-byte sequence cut by the 47-byte limit. */
  ds_trace_instant(ctx, "a-very-long-category-name", "0123456789012345678901234567890123456789012345\xc3\xa9");
  ds_trace_instant(ctx, NULL, NULL);
  ds_trace_counter(ctx, "nan", NAN);
  ds_trace_end(ctx); /* no open span: ignored */
  assert_int_equal(ds_trace_stop(ctx), DS_OK);
  assert_json(path);
  char *json = read_file(path);
  assert_non_null(strstr(json, "\"name\":\"say \\\"hi\\\"\""));
  assert_non_null(strstr(json, "\"cat\":\"q\\\"c\""));
  assert_non_null(strstr(json, "\"name\":\"back\\\\slash\""));
  assert_non_null(strstr(json, "\"name\":\"line\\u000abreak\\u0009tab\\u0001\""));
  assert_non_null(strstr(json, "bad utf8 \\ufffd\\ufffd \\ufffd( \\ufffd\\ufffd\\ufffd end"));
  assert_non_null(strstr(json, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  assert_non_null(strstr(json, "\"cat\":\"a-very-long-cat\""));
  assert_non_null(strstr(json, "\"name\":\"0123456789012345678901234567890123456789012345\\ufffd\""));
  assert_non_null(strstr(json, "\"value\":null"));
  assert_int_equal(count_of(json, "\"ph\":\"E\""), 0);
  free(json);
  ds_context_destroy(ctx);
}

/* ---- states and errors ---- */

static void test_states(void **state) {
  (void)state;
  char path[1024], bad[1024];
  tmp_path(path, sizeof path, "states.json");
  tmp_path(bad, sizeof bad, "no-such-dir/x.json");
  ds_context *ctx = new_ctx();
  assert_int_equal(ds_trace_stop(ctx), DS_ERR_STATE);
  assert_int_equal(ds_trace_start(ctx, bad), DS_ERR_IO);
  assert_non_null(strstr(ds_context_last_error(ctx), "no-such-dir"));
  assert_int_equal(ds_trace_enabled(ctx), 0);
  assert_int_equal(ds_trace_start(ctx, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_trace_start(NULL, path), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_trace_start(ctx, path), DS_OK);
  assert_int_equal(ds_trace_start(ctx, path), DS_ERR_STATE);
  assert_int_equal(ds_trace_stop(ctx), DS_OK);
  assert_int_equal(ds_trace_stop(ctx), DS_ERR_STATE);
  assert_int_equal(ds_trace_enabled(NULL), 0);
  ds_trace_begin(NULL, "x", "y"); /* harmless */
  ds_trace_end(NULL);
  ds_context_destroy(ctx);
}

/* Nothing is recorded while no trace runs, and a second trace holds only its own events. */
static void test_disabled_and_restart(void **state) {
  (void)state;
  char path[1024];
  tmp_path(path, sizeof path, "restart.json");
  ds_context *ctx = new_ctx();
  ds_trace_begin(ctx, "test", "before_any");
  ds_trace_instant(ctx, "test", "before_any");
  ds_trace_counter(ctx, "before_any", 1);
  ds_trace_complete(ctx, "test", "before_any", 1, 1);
  assert_int_equal(ds_trace_dropped(ctx), 0);

  assert_int_equal(ds_trace_start(ctx, path), DS_OK);
  ds_trace_instant(ctx, "test", "first_trace");
  ds_trace_begin(ctx, "test", "open_across"); /* closed in the first file, absent in the second */
  assert_int_equal(ds_trace_stop(ctx), DS_OK);
  ds_trace_instant(ctx, "test", "between");
  assert_int_equal(ds_trace_start(ctx, path), DS_OK);
  ds_trace_instant(ctx, "test", "second_trace");
  ds_trace_end(ctx); /* its span belonged to the first trace: ignored */
  assert_int_equal(ds_trace_stop(ctx), DS_OK);

  assert_json(path);
  char *json = read_file(path);
  assert_null(strstr(json, "before_any"));
  assert_null(strstr(json, "first_trace"));
  assert_null(strstr(json, "between"));
  assert_non_null(strstr(json, "second_trace"));
  assert_int_equal(count_of(json, "\"ph\":\"E\""), 0);
  free(json);
  ds_context_destroy(ctx);
}

/* ---- the per-thread limit ---- */

static void test_max_events(void **state) {
  (void)state;
  char path[1024];
  tmp_path(path, sizeof path, "max.json");
  ds_context *ctx = new_ctx();
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_TRACE_MAX_EVENTS, 1024), DS_OK);
  assert_int_equal(ds_trace_start(ctx, path), DS_OK);
  ds_trace_begin(ctx, "test", "outer");
  for (int i = 0; i < 2000; i++) ds_trace_instant(ctx, "test", "tick");
  ds_trace_begin(ctx, "test", "inner"); /* no room left: dropped, and so is its end */
  ds_trace_end(ctx);
  ds_trace_end(ctx); /* outer's end had room reserved */
  /* 1024 slots: outer B + E, 1022 ticks; 978 ticks, inner B and inner E dropped. */
  assert_int_equal(ds_trace_dropped(ctx), 978 + 2);
  assert_int_equal(ds_trace_stop(ctx), DS_OK);
  assert_int_equal(ds_trace_dropped(ctx), 980); /* still readable after stop */

  assert_json(path);
  char *json = read_file(path);
  assert_int_equal(count_of(json, "\"name\":\"tick\""), 1022);
  assert_int_equal(count_of(json, "\"name\":\"outer\""), 1);
  assert_null(strstr(json, "\"name\":\"inner\""));
  assert_balanced(json);
  assert_non_null(strstr(json, "\"dropped_events\":980"));
  free(json);

  assert_int_equal(ds_trace_start(ctx, path), DS_OK); /* a new trace starts from zero */
  assert_int_equal(ds_trace_dropped(ctx), 0);
  assert_int_equal(ds_trace_stop(ctx), DS_OK);
  ds_context_destroy(ctx);
}

/* ---- DS_TRACE ---- */

static void test_env(void **state) {
  (void)state;
  char path[1024];
  tmp_path(path, sizeof path, "env.json");
  unlink(path);
  ds_param_value p[] = {{DS_PARAM_STATS_FILE, 0, 0}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.params = p;
  o.nparams = 1;
  ds_context *ctx = NULL;
  setenv("DS_TRACE", path, 1);
  ds_status st = ds_context_create(&ctx, &o);
  unsetenv("DS_TRACE");
  assert_int_equal(st, DS_OK);
  assert_int_equal(ds_trace_enabled(ctx), 1);
  ds_trace_begin(ctx, "test", "from_env");
  ds_trace_end(ctx);
  ds_context_destroy(ctx); /* writes the file */
  assert_json(path);
  char *json = read_file(path);
  assert_non_null(strstr(json, "\"name\":\"from_env\""));
  free(json);

  /* DS_CONTEXT_NO_ENV ignores it. */
  o.flags = DS_CONTEXT_NO_ENV;
  setenv("DS_TRACE", path, 1);
  st = ds_context_create(&ctx, &o);
  unsetenv("DS_TRACE");
  assert_int_equal(st, DS_OK);
  assert_int_equal(ds_trace_enabled(ctx), 0);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads),         cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_states),          cmocka_unit_test(test_disabled_and_restart),
      cmocka_unit_test(test_max_events),      cmocka_unit_test(test_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
