/* The scheduler driven by a ds_predictor (ds_sched_set_predictor): the model sees the
 * scheduler's load each tick and its forecast throttles LOW work; NULL restores the EWMA; the
 * hook's state is freed when replaced and at destroy. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <time.h>

#include "internal.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static ds_context *new_ctx(void) {
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_PERIOD_MS, 0, 5},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_SCHED_WORKERS, 0, 2},
                         {DS_PARAM_SCHED_TICK_MS, 0, 2},
                         {DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 2},
                         {DS_PARAM_SCHED_LOW_DUTY_PCT, 0, 100}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = sizeof pv / sizeof pv[0];
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static ds_predictor *new_predictor(ds_context *ctx, uint32_t window) {
  ds_predictor_options po = DS_PREDICTOR_OPTIONS_INIT;
  po.nfeatures = 4;
  po.window = window;
  po.hidden = 8;
  po.horizons = 2;
  ds_predictor *p = NULL;
  assert_int_equal(ds_predictor_create(&p, ctx, &po), DS_OK);
  return p;
}

static ds_status spin_100us(void *arg) {
  (void)arg;
  uint64_t until = ds__now_ns() + 100000u;
  while (ds__now_ns() < until) {
  }
  return DS_OK;
}

/* A backlog of short NORMAL tasks makes the observed load far above 100 % (the tick runs
 * between tasks). An untrained predictor forecasts "no change", so once its window is full
 * the scheduler's prediction is that load, above the throttle threshold: the LOW cap is
 * halved. When the backlog is gone the forecast follows the load down and the cap recovers. */
static void test_predictor_drives_throttle(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_predictor *p = new_predictor(ctx, 8);
  assert_int_equal(ds_sched_set_predictor(ctx, p), DS_OK);
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  for (int i = 0; i < 20000; i++)
    assert_int_equal(ds_task_submit(NULL, ctx, spin_100us, NULL, &o), DS_OK);
  double pred = 0;
  int cap = 0, duty = 0;
  while (ds_task_group_wait(g, 0) == DS_ERR_TIMEOUT && cap != 1) {
    sleep_ms(1);
    assert_int_equal(ds_sched_load(ctx, &pred, &cap, &duty), DS_OK);
  }
  if (cap != 1) fail_msg("LOW cap %d, predicted load %.3f", cap, pred);
  assert_true(pred > 1.0);
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  ds_task_group_destroy(g);
  for (int i = 0; i < 3000 && cap != 2; i++) {
    sleep_ms(2);
    assert_int_equal(ds_sched_load(ctx, &pred, &cap, &duty), DS_OK);
  }
  assert_int_equal(cap, 2);
  assert_true(pred < 0.9);
  assert_int_equal(ds_sched_set_predictor(ctx, NULL), DS_OK); /* EWMA again */
  /* The scheduler fed the model: its window is full (a fresh model's is not). */
  float v[2];
  assert_int_equal(ds_predictor_predict(p, v, NULL), DS_OK);
  ds_predictor *fresh = new_predictor(ctx, 8);
  assert_int_equal(ds_predictor_predict(fresh, v, NULL), DS_ERR_UNAVAILABLE);
  ds_predictor_destroy(fresh);
  ds_predictor_destroy(p);
  ds_context_destroy(ctx);
}

/* Replacing one predictor by another frees the first hook (ASan checks); NULL uninstalls. A
 * predictor belongs to its context, so it is uninstalled and destroyed before the context. */
static void test_replace_and_destroy_with_hook(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_predictor *a = new_predictor(ctx, 4), *b = new_predictor(ctx, 4);
  assert_int_equal(ds_sched_set_predictor(ctx, a), DS_OK);
  sleep_ms(30);
  assert_int_equal(ds_sched_set_predictor(ctx, b), DS_OK);
  sleep_ms(30);
  assert_int_equal(ds_sched_set_predictor(NULL, b), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_sched_load(NULL, NULL, NULL, NULL), DS_ERR_INVALID_ARG);
  double pred = -1;
  assert_int_equal(ds_sched_load(ctx, &pred, NULL, NULL), DS_OK);
  assert_true(pred >= 0);
  assert_int_equal(ds_sched_set_predictor(ctx, NULL), DS_OK);
  ds_predictor_destroy(a);
  ds_predictor_destroy(b);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_predictor_drives_throttle),
      cmocka_unit_test(test_replace_and_destroy_with_hook),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
