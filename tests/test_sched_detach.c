/* The scheduler's "complete later" facility (ds__task_detach / ds__task_complete): a detached
 * task frees its worker when its function returns and completes only when completed, from any
 * thread, before or after the function returned. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "test_util.h"
#include "internal.h"
#include "sched_internal.h"

static ds_context *one_worker(void) {
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 1}};
  return ds_test_context(pv, 1);
}

static ds__atomic_ptr detached;

static ds_status detach_fn(void *arg) {
  (void)arg;
  ds__store(&detached, (void *)ds__task_detach());
  return DS_OK; /* ignored: the completion decides */
}

static ds_status mark_fn(void *arg) {
  *(int *)arg = 1;
  return DS_OK;
}

static void test_outside_a_task(void **state) {
  (void)state;
  assert_null(ds__task_detach());
  ds__task_complete(NULL, DS_OK); /* no-op */
}

/* One worker: the detached task does not hold it, its successor waits for the completion. */
static void test_worker_freed_successor_waits(void **state) {
  (void)state;
  ds_context *ctx = one_worker();
  ds_task *a = NULL, *b = NULL, *c = NULL;
  int b_ran = 0, c_ran = 0;
  ds__store(&detached, NULL);
  assert_int_equal(ds_task_submit(&a, ctx, detach_fn, NULL, NULL), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.deps = &a;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit(&c, ctx, mark_fn, &c_ran, &o), DS_OK);
  assert_int_equal(ds_task_submit(&b, ctx, mark_fn, &b_ran, NULL), DS_OK);
  assert_int_equal(ds_task_wait(b, 10000), DS_OK); /* the only worker ran b meanwhile */
  assert_int_equal(b_ran, 1);
  assert_non_null(ds__load(&detached));
  assert_int_equal(ds_task_wait(a, 50), DS_ERR_TIMEOUT);
  assert_int_equal(ds_task_state(a), DS_TASK_RUNNING);
  assert_int_equal(c_ran, 0);
  ds__task_complete(ds__load(&detached), DS_OK);
  assert_int_equal(ds_task_wait(a, 10000), DS_OK);
  assert_int_equal(ds_task_wait(c, 10000), DS_OK);
  assert_int_equal(c_ran, 1);
  ds_task_release(a);
  ds_task_release(b);
  ds_task_release(c);
  ds_context_destroy(ctx);
}

/* The completion's status is the task's; a failure cancels its successors. */
static void test_failure_status(void **state) {
  (void)state;
  ds_context *ctx = one_worker();
  ds_task *a = NULL, *c = NULL;
  int c_ran = 0;
  ds__store(&detached, NULL);
  assert_int_equal(ds_task_submit(&a, ctx, detach_fn, NULL, NULL), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.deps = &a;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit(&c, ctx, mark_fn, &c_ran, &o), DS_OK);
  while (!ds__load(&detached)) sched_yield();
  ds__task_complete(ds__load(&detached), DS_ERR_IO);
  assert_int_equal(ds_task_wait(a, 10000), DS_ERR_IO);
  assert_int_not_equal(ds_task_wait(c, 10000), DS_OK);
  assert_int_equal(c_ran, 0);
  ds_task_release(a);
  ds_task_release(c);
  ds_context_destroy(ctx);
}

/* Completed before its function returned: the task (and so its successor) waits for the
 * function's return. */
static ds__atomic_int returned;

static ds_status complete_early_fn(void *arg) {
  (void)arg;
  struct ds_task *t = ds__task_detach();
  ds__task_complete(t, DS_OK);
  struct timespec d = {0, 50000000L};
  nanosleep(&d, NULL);
  ds__store(&returned, 1);
  return DS_OK;
}

static ds_status check_returned(void *arg) {
  *(int *)arg = ds__load(&returned);
  return DS_OK;
}

static void test_completion_before_return_waits(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 2}};
  ds_context *ctx = ds_test_context(pv, 1);
  ds__store(&returned, 0);
  ds_task *a = NULL, *b = NULL;
  int seen = -1;
  assert_int_equal(ds_task_submit(&a, ctx, complete_early_fn, NULL, NULL), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.deps = &a;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit(&b, ctx, check_returned, &seen, &o), DS_OK);
  assert_int_equal(ds_task_wait(b, 10000), DS_OK);
  assert_int_equal(seen, 1); /* the other worker did not start it before the return */
  assert_int_equal(ds_task_wait(a, 10000), DS_OK);
  ds_task_release(a);
  ds_task_release(b);
  ds_context_destroy(ctx);
}

/* Completed by other threads while (or before) the function returns; on_done runs once. */
enum { N_RACE = 300 };
static ds__atomic_ptr race_slots[N_RACE];
static ds__atomic_int race_done;

static ds_status race_fn(void *arg) {
  int i = (int)(intptr_t)arg;
  struct ds_task *t = ds__task_detach();
  ds__store(&race_slots[i], (void *)t); /* a completer may take it at once */
  if (i % 3 == 0) ds__task_complete(ds__exchange(&race_slots[i], NULL), DS_OK);
  return DS_OK;
}

static void race_on_done(void *user, ds_task *t, ds_status st) {
  (void)user;
  (void)t;
  if (st == DS_OK) ds__fetch_add(&race_done, 1);
}

static void *completer(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < N_RACE; i++) {
      struct ds_task *t = ds__exchange(&race_slots[i], NULL);
      if (t) ds__task_complete(t, DS_OK);
    }
    if (ds__load(&race_done) == N_RACE) return NULL;
    sched_yield();
  }
}

static void test_concurrent_completion(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 2}};
  ds_context *ctx = ds_test_context(pv, 1);
  ds__store(&race_done, 0);
  pthread_t th[2];
  for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, completer, NULL), 0);
  ds_task_group *g = NULL;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  for (int i = 0; i < N_RACE; i++) {
    ds_task_options o = DS_TASK_OPTIONS_INIT;
    o.group = g;
    o.on_done = race_on_done;
    assert_int_equal(ds_task_submit(NULL, ctx, race_fn, (void *)(intptr_t)i, &o), DS_OK);
  }
  assert_int_equal(ds_task_group_wait(g, 60000), DS_OK);
  for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
  assert_int_equal(ds__load(&race_done), N_RACE);
  ds_task_group_destroy(g);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outside_a_task),
      cmocka_unit_test(test_worker_freed_successor_waits),
      cmocka_unit_test(test_failure_status),
      cmocka_unit_test(test_completion_before_return_waits),
      cmocka_unit_test(test_concurrent_completion),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
