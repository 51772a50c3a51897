/* The trace reader and analysis of deepseek-monitor --trace on hand-written inputs: the JSON
 * subset (escapes, both top-level forms, skipped members), refusal of bad bytes with an offset,
 * bounded nesting, and span matching (B/E, X, unclosed, unmatched, nesting, I/O union). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trace_report.h"

static int parse(dst_trace *t, const char *s) { return dst_parse(t, s, strlen(s)); }

static void test_forms(void **state) {
  (void)state;
  dst_trace t;
  const char *obj = "{\"traceEvents\":[{\"ph\":\"X\",\"ts\":1.5,\"dur\":2,\"pid\":3,\"tid\":4,"
                    "\"cat\":\"c\\u00e9\",\"name\":\"a\\\"b\\n\",\"args\":{\"x\":[1,{\"y\":null}]}},"
                    "{\"ph\":\"M\",\"name\":\"thread_name\",\"args\":{\"name\":\"w\"}},"
                    "{\"no_ph\":true}],\"displayTimeUnit\":\"ns\",\"otherData\":{}}";
  assert_int_equal(parse(&t, obj), 0);
  assert_int_equal(t.nev, 2);
  assert_int_equal(t.ev[0].ph, 'X');
  assert_true(t.ev[0].ts == 1.5 && t.ev[0].dur == 2 && t.ev[0].pid == 3 && t.ev[0].tid == 4);
  assert_string_equal(t.ops[t.ev[0].op].cat, "c\xc3\xa9");
  assert_string_equal(t.ops[t.ev[0].op].name, "a\"b\n");
  dst_free(&t);
  assert_int_equal(parse(&t, " [ {\"ph\":\"i\",\"ts\":0,\"name\":\"\\ud83d\\ude00\"} ] "), 0);
  assert_int_equal(t.nev, 1);
  assert_string_equal(t.ops[0].name, "\xf0\x9f\x98\x80");
  dst_free(&t);
  /* a trace cut after its last complete event still reads (as Chrome does) */
  assert_int_equal(parse(&t, "[{\"ph\":\"B\",\"ts\":0,\"name\":\"a\"},"), 0);
  assert_int_equal(t.nev, 1);
  dst_free(&t);
}

static void test_bad_bytes(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",           "x",         "{}",        "{\"traceEvents\":5}",
      "[{\"ph\":}]", "[{\"ph\":\"X\",\"ts\":1e}]", "[\"\\q\"]", "[\"\\u12\"]",
      "[{\"ph\":\"X\"}] trailing", "[\"a\x01\"]", "[{\"ts\":--1}]", "[1,]x",
      "[{\"ph\":\"X\",\"ts\":1e400}]",
      "{\"traceEvents\":[{\"ph\":\"X\",\"ts\":1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    dst_trace t;
    assert_int_equal(parse(&t, bad[i]), -1);
    assert_non_null(strstr(t.err, "byte "));
    dst_free(&t);
  }
  /* deep nesting is refused, not recursed into */
  size_t n = 100000;
  char *deep = malloc(2 * n + 3);
  deep[0] = '[';
  memset(deep + 1, '[', n);
  memset(deep + 1 + n, ']', n);
  deep[2 * n + 1] = ']';
  deep[2 * n + 2] = '\0';
  dst_trace t;
  assert_int_equal(parse(&t, deep), -1);
  assert_non_null(strstr(t.err, "nested too deeply"));
  dst_free(&t);
  free(deep);
  /* a NUL inside the buffer is just a bad byte */
  assert_int_equal(dst_parse(&t, "[1\0]", 4), -1);
  dst_free(&t);
}

static void test_spans(void **state) {
  (void)state;
  /* thread 1: B outer [0,10] with X inner [2,5] (written after it ended) and an unmatched E;
   * thread 2: B open at the end (closed at 12), io/read [1,3] holding load/x [1,2] */
  const char *s = "[{\"ph\":\"B\",\"ts\":0,\"pid\":1,\"tid\":1,\"cat\":\"op\",\"name\":\"outer\"},"
                  "{\"ph\":\"E\",\"ts\":10,\"pid\":1,\"tid\":1},"
                  "{\"ph\":\"X\",\"ts\":2,\"dur\":3,\"pid\":1,\"tid\":1,\"cat\":\"op\",\"name\":\"inner\"},"
                  "{\"ph\":\"E\",\"ts\":11,\"pid\":1,\"tid\":1},"
                  "{\"ph\":\"B\",\"ts\":4,\"pid\":1,\"tid\":2,\"cat\":\"op\",\"name\":\"open\"},"
                  "{\"ph\":\"X\",\"ts\":1,\"dur\":2,\"pid\":1,\"tid\":2,\"cat\":\"io\",\"name\":\"read\"},"
                  "{\"ph\":\"X\",\"ts\":1,\"dur\":1,\"pid\":1,\"tid\":2,\"cat\":\"Data-Load\",\"name\":\"x\"},"
                  "{\"ph\":\"X\",\"ts\":12,\"dur\":0,\"pid\":1,\"tid\":2,\"cat\":\"op\",\"name\":\"tick\"}]";
  dst_trace t;
  dst_report r;
  assert_int_equal(parse(&t, s), 0);
  assert_int_equal(dst_analyse(&r, &t), 0);
  assert_int_equal(r.threads, 2);
  assert_int_equal(r.nspans, 6);
  assert_int_equal(r.unmatched_ends, 1);
  assert_int_equal(r.unclosed_begins, 1);
  assert_true(r.wall_us == 12);
  assert_true(r.io_us == 2 && r.io_spans == 2);
  assert_int_equal(r.path_len, 2);
  assert_string_equal(t.ops[r.spans[r.path[0]].op].name, "outer");
  assert_string_equal(t.ops[r.spans[r.path[1]].op].name, "inner");
  for (int i = 0; i < r.nops; i++)
    if (!strcmp(t.ops[i].name, "outer")) assert_true(r.ops[i].self_us == 7 && r.ops[i].total_us == 10);
  assert_true(dst_is_io_category("data") && dst_is_io_category("disk,IO") &&
              !dst_is_io_category("audio") && !dst_is_io_category("loader") &&
              !dst_is_io_category(""));
  dst_report_free(&r);
  dst_free(&t);
  /* an empty trace has no spans and no path */
  assert_int_equal(parse(&t, "{\"traceEvents\":[]}"), 0);
  assert_int_equal(dst_analyse(&r, &t), 0);
  assert_int_equal(r.nspans, 0);
  assert_int_equal(r.path_len, 0);
  dst_report_free(&r);
  dst_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forms),
      cmocka_unit_test(test_bad_bytes),
      cmocka_unit_test(test_spans),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
