/* Stress test of the scheduler: 1,000,000 tasks (100,000 under ASan, 50,000 under TSan;
 * DS_SCHED_STRESS_TASKS overrides) on one pool, then a quarter as many on two pools, in the
 * three classes, each with up to 3 random predecessors
 * among the 256 before it, 0.1% failing, 0.1% cancelled while others run (a failure cancels
 * much of what follows it, so higher rates leave little that runs). Checks that no task
 * starts before a predecessor succeeded, that exactly the tasks whose predecessors all
 * succeeded and that were not cancelled ran, and that every completion callback ran once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#if defined(__SANITIZE_THREAD__)
#define DEFAULT_TASKS 50000
#elif defined(__SANITIZE_ADDRESS__)
#define DEFAULT_TASKS 100000
#else
#define DEFAULT_TASKS 1000000
#endif
#define WINDOW 256

typedef struct stress {
  int n;
  int (*deps)[3];
  unsigned char *ndeps, *fail, *cancelled;
  ds__atomic_int *outcome; /* 0 not run, 1 ran and succeeded, 2 ran and failed */
  ds__atomic_int violations, completions;
} stress;

static stress S;

static ds_status stress_fn(void *arg) {
  int i = (int)(intptr_t)arg;
  for (int k = 0; k < S.ndeps[i]; k++)
    if (ds__load(&S.outcome[S.deps[i][k]]) != 1) ds__fetch_add(&S.violations, 1);
  ds__store(&S.outcome[i], S.fail[i] ? 2 : 1);
  return S.fail[i] ? DS_ERR_IO : DS_OK;
}

static void stress_done(void *user, ds_task *task, ds_status st) {
  (void)user;
  (void)task;
  (void)st;
  ds__fetch_add_relaxed(&S.completions, 1);
}

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static void stress_alloc(int n) {
  memset(&S, 0, sizeof S);
  S.n = n;
  S.deps = calloc((size_t)n, sizeof *S.deps);
  S.ndeps = calloc((size_t)n, 1);
  S.fail = calloc((size_t)n, 1);
  S.cancelled = calloc((size_t)n, 1);
  S.outcome = calloc((size_t)n, sizeof *S.outcome);
  assert_true(S.deps && S.ndeps && S.fail && S.cancelled && S.outcome);
}

static void stress_free(void) {
  free(S.deps);
  free(S.ndeps);
  free(S.fail);
  free(S.cancelled);
  free(S.outcome);
}

static void submit_one(ds_context *ctx, ds_task_group *g, ds_task **ring, int i, uint64_t *rng) {
  ds_task *d[3];
  int nd = i > 0 ? (int)(rng_next(rng) % 4) : 0;
  for (int k = 0; k < nd; k++) {
    int span = i < WINDOW - 1 ? i : WINDOW - 1;
    int j = i - 1 - (int)(rng_next(rng) % (uint64_t)span);
    S.deps[i][k] = j;
    d[k] = ring[j % WINDOW];
  }
  S.ndeps[i] = (unsigned char)nd;
  S.fail[i] = rng_next(rng) % 1000 == 0;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  uint64_t r = rng_next(rng) % 10;
  o.prio = r == 0 ? DS_PRIO_URGENT : r == 1 ? DS_PRIO_LOW : DS_PRIO_NORMAL;
  o.deps = d;
  o.ndeps = (size_t)nd;
  o.group = g;
  o.on_done = stress_done;
  if (i >= WINDOW) ds_task_release(ring[i % WINDOW]);
  assert_int_equal(ds_task_submit(&ring[i % WINDOW], ctx, stress_fn, (void *)(intptr_t)i, &o), DS_OK);
  if (i > 0 && rng_next(rng) % 1000 == 0) { /* cancel a recent task, maybe already running */
    int j = i - (int)(rng_next(rng) % (uint64_t)(i < WINDOW ? i : WINDOW));
    ds_status st = ds_task_cancel(ring[j % WINDOW]);
    /* DS_ERR_BUSY: claimed by a worker; it may still be stopped before its function starts. */
    if (st == DS_OK || st == DS_ERR_BUSY) S.cancelled[j] = st == DS_OK ? 1 : 2;
  }
}

/* n tasks (at least WINDOW) on the given pools and workers (0: one per PU). */
static void run_stress(int n, int pools, int workers) {
  if (n < WINDOW) n = WINDOW;
  stress_alloc(n);
  ds_context_options co = DS_CONTEXT_OPTIONS_INIT;
  co.flags = DS_CONTEXT_NO_ENV;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_SCHED_POOLS, 0, pools},
                         {DS_PARAM_SCHED_WORKERS, 0, workers}};
  co.params = pv;
  co.nparams = 4;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &co), DS_OK);
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task **ring = calloc(WINDOW, sizeof *ring);
  uint64_t rng = 0x1234567887654321ull, t0 = ds__now_ns();
  for (int i = 0; i < n; i++) submit_one(ctx, g, ring, i, &rng);
  ds_status gst = ds_task_group_wait(g, -1);
  assert_true(gst == DS_ERR_IO || gst == DS_ERR_CANCELLED);
  double secs = (double)(ds__now_ns() - t0) / 1e9;
  for (int k = 0; k < WINDOW; k++) ds_task_release(ring[k]);
  free(ring);
  ds_task_group_destroy(g);

  int ran = 0;
  for (int i = 0; i < n; i++) {
    int expect = S.cancelled[i] != 1;
    for (int k = 0; k < S.ndeps[i]; k++) expect &= ds__load(&S.outcome[S.deps[i][k]]) == 1;
    int did = ds__load(&S.outcome[i]) != 0;
    if (did != expect && !(S.cancelled[i] == 2 && !did)) fail_msg("task %d: ran %d, expected %d", i, did, expect);
    ran += did;
  }
  printf("stress: %d tasks (%d ran) on %d pool(s) in %.2f s\n", n, ran, pools, secs);
  assert_int_equal(ds__load(&S.violations), 0);
  assert_int_equal(ds__load(&S.completions), n);
  assert_true(ran > n / 4);
  ds_context_destroy(ctx);
  stress_free();
}

static int stress_tasks(void) {
  const char *env = getenv("DS_SCHED_STRESS_TASKS");
  return env ? atoi(env) : DEFAULT_TASKS;
}

static void test_stress_random_dag(void **state) {
  (void)state;
  run_stress(stress_tasks(), 1, 0);
}

/* The same with two dual-active pools of two workers: outside submits alternate between the
 * pools' inject rings and workers take from both (a quarter of the tasks). */
static void test_stress_two_pools(void **state) {
  (void)state;
  run_stress(stress_tasks() / 4, 2, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stress_random_dag),
                                     cmocka_unit_test(test_stress_two_pools)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
