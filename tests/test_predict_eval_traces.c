/* Tests for deepseek-predict-eval's load-trace readers (bench/predict_eval_traces.c) on small
 * in-memory traces: both formats, bad lines skipped, and the inputs that would have been
 * undefined behaviour or a huge allocation (NaN/inf timestamps, values beyond float, a
 * timestamp far from the others), kept as regressions for the fuzz target. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "predict_eval.h"

static int read_text(const char *text, double step, size_t max_steps, ev_series **list,
                     size_t *n) {
  FILE *f = fmemopen((void *)text, strlen(text), "r");
  assert_non_null(f);
  int rc = ev_read_trace_stream(f, "mem", step, max_steps, list, n);
  fclose(f);
  return rc;
}

static void test_alibaba_two_machines(void **state) {
  (void)state;
  ev_series *s = NULL;
  size_t n = 0;
  assert_int_equal(read_text("m_1,0,10,50,,,1,2,5\n"
                             "m_1,120,30,50,,,1,2,5\n"
                             "garbage\n"
                             "m_2,60,5,5,,,1,2,5\n"
                             "m_2,nan,99,99,,,1,2,5\n" /* NaN timestamp: skipped */
                             "m_2,180,7,5,,,1,2,5\n",
                             0, EV_MAX_STEPS, &s, &n),
                   0);
  assert_int_equal(n, 2);
  assert_string_equal(s[0].name, "mem:m_1");
  assert_int_equal(s[0].group, EV_ALIBABA);
  assert_int_equal(s[0].n, 3); /* 0, 60 (carried), 120 at 60 s */
  assert_int_equal(s[0].real[1], 0);
  assert_true(s[0].x[1 * EV_F] == 10.0f);
  assert_true(s[0].x[2 * EV_F] == 30.0f);
  assert_int_equal(s[1].n, 3);
  assert_true(s[1].x[2 * EV_F] == 7.0f);
  ev_free_series(s, n);
}

static void test_bitbrains_bad_values(void **state) {
  (void)state;
  ev_series *s = NULL;
  size_t n = 0;
  assert_int_equal(read_text("Timestamp [ms];\tCPU cores;\tx\n"
                             "1000;\t2;\t1;\t1;\t10;\t100;\t50;\t0;\t0;\t0;\t0\n"
                             "inf;\t2;\t1;\t1;\t10;\t100;\t50;\t0;\t0;\t0;\t0\n"
                             "1300;\t2;\t1;\t1;\t1e300;\t1e-300;\t1e300;\t1e300;\t0;\t-5;\t0\n",
                             0, EV_MAX_STEPS, &s, &n),
                   0);
  assert_int_equal(n, 1);
  assert_int_equal(s[0].group, EV_BITBRAINS);
  assert_int_equal(s[0].n, 2);
  /* 1e300 does not fit a float: missing, so the previous step's value is carried */
  assert_true(s[0].x[1 * EV_F] == 10.0f);
  assert_true(s[0].x[1 * EV_F + 1] == 50.0f);
  assert_true(isfinite(s[0].x[1 * EV_F + 2]));
  ev_free_series(s, n);
}

static void test_span_budget(void **state) {
  (void)state;
  ev_series *s = NULL;
  size_t n = 0;
  /* one far timestamp would ask for ~1e298 steps: refused, no allocation */
  assert_int_equal(read_text("m_1,0,1,1,,,1,1,1\nm_1,1e300,1,1,,,1,1,1\n", 0, EV_MAX_STEPS, &s,
                             &n),
                   -1);
  ev_free_series(s, n);
  s = NULL, n = 0;
  /* the budget counts all series of a file: 2 x 11 steps fit 22, not 21 */
  const char *two = "a,0,1,1,,,1,1,1\na,600,1,1,,,1,1,1\nb,0,1,1,,,1,1,1\nb,600,1,1,,,1,1,1\n";
  assert_int_equal(read_text(two, 0, 22, &s, &n), 0);
  assert_int_equal(n, 2);
  ev_free_series(s, n);
  s = NULL, n = 0;
  assert_int_equal(read_text(two, 0, 21, &s, &n), -1);
  ev_free_series(s, n);
  s = NULL, n = 0;
  assert_int_equal(read_text("", 0, EV_MAX_STEPS, &s, &n), 0); /* empty: no series */
  assert_int_equal(n, 0);
  ev_free_series(s, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alibaba_two_machines),
      cmocka_unit_test(test_bitbrains_bad_values),
      cmocka_unit_test(test_span_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
