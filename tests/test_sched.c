/* Tests of the scheduler: submit/wait, options ABI, DAG ordering, error propagation,
 * cancellation (before start, cooperative), timeouts and deadlines, groups, nested waits,
 * URGENT latency over LOW load (preemption at yield points), LOW throttling and the predictor
 * hook, the core executor routed to the scheduler, stats, idle CPU, shutdown.
 * Timing bounds are loose: the machine may have 2 loaded cores and the build be sanitized. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sched_internal.h"
#include "topology_internal.h"

static ds_context *new_ctx_workers(int workers, const ds_param_value *extra, size_t nextra) {
  ds_param_value pv[16] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                           {DS_PARAM_STATS_FILE, 0, 0},
                           {DS_PARAM_SCHED_WORKERS, 0, workers}};
  size_t n = 3;
  for (size_t i = 0; i < nextra && n < 16; i++) pv[n++] = extra[i];
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = n;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- basics */

static ds_status add_one(void *arg) {
  ds__fetch_add((ds__atomic_int *)arg, 1);
  return DS_OK;
}

static void test_submit_wait_and_bad_args(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  ds__atomic_int n = 0;
  ds_task *t = NULL;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, NULL), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  assert_int_equal(ds_task_state(t), DS_TASK_DONE);
  assert_int_equal(ds_task_status(t), DS_OK);
  assert_int_equal(ds__load(&n), 1);
  ds_task_release(t);
  for (int i = 0; i < 100; i++) assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, NULL), DS_OK);

  ds_task_options o = DS_TASK_OPTIONS_INIT;
  assert_int_equal(ds_task_submit(&t, ctx, NULL, NULL, &o), DS_ERR_INVALID_ARG);
  assert_null(t);
  assert_int_equal(ds_task_submit(&t, NULL, add_one, &n, &o), DS_ERR_INVALID_ARG);
  o.prio = 7;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "prio"));
  o.prio = DS_PRIO_NORMAL;
  o.struct_size = 8;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_ERR_ABI);
  o.struct_size = sizeof o;
  ds_task *nul = NULL;
  o.deps = &nul;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_task_wait(NULL, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_task_cancel(NULL), DS_ERR_INVALID_ARG);
  ds_task_release(NULL);
  ds_task_group_destroy(NULL);
  int32_t nw = 0;
  assert_int_equal(ds_sched_workers(ctx, &nw), DS_OK);
  assert_int_equal(nw, 2);
  assert_int_equal(ds_sched_start(NULL), DS_ERR_INVALID_ARG);

  /* A dependency from another context is refused. */
  ds_context *other = new_ctx_workers(1, NULL, 0);
  ds_task *foreign = NULL;
  assert_int_equal(ds_task_submit(&foreign, other, add_one, &n, NULL), DS_OK);
  o.deps = &foreign;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_ERR_INVALID_ARG);
  ds_task_wait(foreign, -1);
  ds_task_release(foreign);
  ds_context_destroy(other);
  ds_context_destroy(ctx); /* the 100 fire-and-forget tasks are run or cancelled, none leaked */
}

/* ---------------------------------------------------------------- DAG */

typedef struct order_log {
  ds__atomic_int next;
  int at[64];
} order_log;

typedef struct order_item {
  order_log *log;
  int id;
} order_item;

static ds_status record_order(void *arg) {
  order_item *it = arg;
  it->log->at[it->id] = ds__fetch_add(&it->log->next, 1);
  return DS_OK;
}

/* A layered DAG: 8 layers of 8 tasks, each task depends on 3 tasks of the layer before; every
 * task must start after each of its predecessors finished, over many repetitions. */
static void test_dag_ordering(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(4, NULL, 0);
  for (int rep = 0; rep < 50; rep++) {
    order_log log;
    memset(&log, 0, sizeof log);
    order_item items[64];
    ds_task *tasks[64];
    int deps[64][3];
    for (int i = 0; i < 64; i++) {
      items[i] = (order_item){&log, i};
      ds_task_options o = DS_TASK_OPTIONS_INIT;
      ds_task *d[3];
      if (i >= 8) {
        int layer = i / 8 - 1;
        for (int k = 0; k < 3; k++) {
          deps[i][k] = layer * 8 + (i * 5 + k * 3 + rep) % 8;
          d[k] = tasks[deps[i][k]];
        }
        o.deps = d;
        o.ndeps = 3;
      }
      o.prio = (i % 3 == 0) ? DS_PRIO_URGENT : DS_PRIO_NORMAL;
      assert_int_equal(ds_task_submit(&tasks[i], ctx, record_order, &items[i], &o), DS_OK);
    }
    for (int i = 63; i >= 0; i--) assert_int_equal(ds_task_wait(tasks[i], -1), DS_OK);
    for (int i = 8; i < 64; i++)
      for (int k = 0; k < 3; k++) assert_true(log.at[deps[i][k]] < log.at[i]);
    for (int i = 0; i < 64; i++) ds_task_release(tasks[i]);
  }
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- errors and cancellation */

static ds_status fail_io(void *arg) {
  (void)arg;
  return DS_ERR_IO;
}

typedef struct done_log {
  ds__atomic_int calls;
  ds_status last;
} done_log;

static void on_done(void *user, ds_task *task, ds_status st) {
  (void)task;
  done_log *d = user;
  d->last = st;
  ds__fetch_add(&d->calls, 1);
}

static void test_error_propagation(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  ds__atomic_int ran = 0;
  done_log dl = {0, DS_OK};
  ds_task *a, *b, *c, *late;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.name = "load-weights";
  assert_int_equal(ds_task_submit(&a, ctx, fail_io, NULL, &o), DS_OK);
  o.name = "dequantize";
  o.deps = &a;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit(&b, ctx, add_one, &ran, &o), DS_OK);
  o.name = "matmul";
  o.deps = &b;
  o.on_done = on_done;
  o.on_done_user = &dl;
  assert_int_equal(ds_task_submit(&c, ctx, add_one, &ran, &o), DS_OK);
  assert_int_equal(ds_task_wait(c, -1), DS_ERR_CANCELLED);
  const char *msg = ds_context_last_error(ctx);
  assert_non_null(strstr(msg, "matmul"));
  assert_non_null(strstr(msg, "predecessor 'load-weights'"));
  assert_non_null(strstr(msg, "DS_ERR_IO"));
  assert_int_equal(ds_task_wait(a, -1), DS_ERR_IO);
  assert_int_equal(ds_task_wait(b, -1), DS_ERR_CANCELLED);
  assert_int_equal(ds__load(&ran), 0);
  assert_int_equal(ds__load(&dl.calls), 1);
  assert_int_equal(dl.last, DS_ERR_CANCELLED);
  /* Submitting after a dependency that already failed: cancelled at once. */
  o.name = "late";
  o.deps = &a;
  o.on_done = NULL;
  assert_int_equal(ds_task_submit(&late, ctx, add_one, &ran, &o), DS_OK);
  assert_int_equal(ds_task_wait(late, 0), DS_ERR_CANCELLED);
  assert_non_null(strstr(ds_context_last_error(ctx), "load-weights"));
  ds_task *all[] = {a, b, c, late};
  for (int i = 0; i < 4; i++) ds_task_release(all[i]);
  ds_context_destroy(ctx);
}

static ds_status wait_flag(void *arg) {
  ds__atomic_int *flag = arg;
  while (!ds__load(flag)) sleep_ms(1);
  return DS_OK;
}

static ds_status spin_until_cancelled(void *arg) {
  ds__atomic_int *started = arg;
  ds__store(started, 1);
  while (!ds_task_cancelled()) sleep_ms(1);
  return DS_ERR_CANCELLED;
}

static void test_cancellation(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(1, NULL, 0);
  ds__atomic_int gate = 0, ran = 0, started = 0;
  done_log dl = {0, DS_OK};
  ds_task *blocker, *queued, *waiting, *running;
  assert_int_equal(ds_task_submit(&blocker, ctx, wait_flag, &gate, NULL), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.on_done = on_done;
  o.on_done_user = &dl;
  assert_int_equal(ds_task_submit(&queued, ctx, add_one, &ran, &o), DS_OK); /* behind blocker */
  o.deps = &blocker;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit(&waiting, ctx, add_one, &ran, &o), DS_OK);
  assert_int_equal(ds_task_state(waiting), DS_TASK_WAITING);
  assert_int_equal(ds_task_cancel(waiting), DS_OK);
  assert_int_equal(ds_task_cancel(queued), DS_OK);
  assert_int_equal(ds_task_cancel(queued), DS_ERR_STATE);
  assert_int_equal(ds_task_wait(queued, 0), DS_ERR_CANCELLED);
  assert_non_null(strstr(ds_context_last_error(ctx), "by request"));
  assert_int_equal(ds__load(&dl.calls), 2);
  ds__store(&gate, 1);
  assert_int_equal(ds_task_wait(blocker, -1), DS_OK);
  assert_int_equal(ds_task_wait(waiting, -1), DS_ERR_CANCELLED);
  /* Cooperative: the running task sees ds_task_cancelled(). */
  assert_int_equal(ds_task_submit(&running, ctx, spin_until_cancelled, &started, NULL), DS_OK);
  while (!ds__load(&started)) sleep_ms(1);
  assert_int_equal(ds_task_cancel(running), DS_ERR_BUSY);
  assert_int_equal(ds_task_wait(running, -1), DS_ERR_CANCELLED);
  assert_int_equal(ds__load(&ran), 0);
  assert_int_equal(ds_task_cancelled(), 0); /* outside a task */
  ds_task *all[] = {blocker, queued, waiting, running};
  for (int i = 0; i < 4; i++) ds_task_release(all[i]);
  ds_context_destroy(ctx);
}

static void test_timeouts_and_deadlines(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(1, NULL, 0);
  ds__atomic_int gate = 0, ran = 0;
  ds_task *blocker, *late;
  assert_int_equal(ds_task_submit(&blocker, ctx, wait_flag, &gate, NULL), DS_OK);
  uint64_t t0 = ds__now_ns();
  assert_int_equal(ds_task_wait(blocker, 50), DS_ERR_TIMEOUT);
  uint64_t waited = ds__now_ns() - t0;
  assert_true(waited >= 45000000u);
  assert_true(waited < 5000000000u);
  assert_int_equal(ds_task_state(blocker), DS_TASK_RUNNING);
  assert_int_equal(ds_task_status(blocker), DS_ERR_STATE);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.deadline_ns = ds__now_ns() + 20000000u; /* 20 ms, but the only worker is blocked longer */
  o.name = "deadline";
  assert_int_equal(ds_task_submit(&late, ctx, add_one, &ran, &o), DS_OK);
  sleep_ms(40);
  ds__store(&gate, 1);
  assert_int_equal(ds_task_wait(late, -1), DS_ERR_TIMEOUT);
  assert_non_null(strstr(ds_context_last_error(ctx), "deadline"));
  assert_int_equal(ds_task_state(late), DS_TASK_DONE);
  assert_int_equal(ds__load(&ran), 0);
  ds_task_release(blocker);
  ds_task_release(late);
  ds_context_destroy(ctx);
}

static void test_groups(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds__atomic_int n = 0;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  for (int i = 0; i < 2000; i++) {
    o.prio = i % 3;
    assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &o), DS_OK);
  }
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  assert_int_equal(ds__load(&n), 2000);
  assert_int_equal(ds_task_submit(NULL, ctx, fail_io, NULL, &o), DS_OK);
  assert_int_equal(ds_task_group_wait(g, -1), DS_ERR_IO);
  ds__atomic_int gate = 0;
  assert_int_equal(ds_task_submit(NULL, ctx, wait_flag, &gate, &o), DS_OK);
  assert_int_equal(ds_task_group_wait(g, 20), DS_ERR_TIMEOUT);
  ds__store(&gate, 1);
  ds_task_group_destroy(g); /* waits for the gated task */
  ds_context_destroy(ctx);
}

/* Group weights (struct ds_task_group): tasks spawn into their own group, giving away halves of
 * their weight (a chain deeper than the loan's 24 halvings borrows again), keep running after
 * their children may have finished, and count themselves out as their very last action. A
 * group wait must not return before every function has returned and every on_done has run. */
static struct {
  ds_context *ctx;
  ds_task_group *g;
  ds__atomic_int exited, done_calls;
} g_spawn;

#define SPAWN_TREE_DEPTH 11 /* a binary tree of 2047 tasks */
#define SPAWN_CHAIN 100     /* plus one chain of 100 tasks under the root */

static void spawn_done(void *user, ds_task *t, ds_status st) {
  (void)user;
  (void)t;
  (void)st;
  ds__fetch_add(&g_spawn.done_calls, 1);
}

static ds_status spawn_into_group(void *arg) {
  intptr_t code = (intptr_t)arg; /* >= 0: tree depth; < 0: -(chain position) */
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g_spawn.g;
  o.on_done = spawn_done;
  if (code == 0) assert_int_equal(ds_task_submit(NULL, g_spawn.ctx, spawn_into_group, (void *)(intptr_t)-1, &o), DS_OK);
  if (code >= 0 && code + 1 < SPAWN_TREE_DEPTH)
    for (int k = 0; k < 2; k++)
      assert_int_equal(ds_task_submit(NULL, g_spawn.ctx, spawn_into_group, (void *)(code + 1), &o), DS_OK);
  if (code < 0 && -code < SPAWN_CHAIN)
    assert_int_equal(ds_task_submit(NULL, g_spawn.ctx, spawn_into_group, (void *)(code - 1), &o), DS_OK);
  if (code % 5 == 0) { /* outlive the children: they may finish on the other worker meanwhile */
    volatile unsigned x = 0;
    for (int i = 0; i < 20000; i++) x += (unsigned)i;
  }
  ds__fetch_add(&g_spawn.exited, 1);
  return DS_OK;
}

static void test_group_spawn_weights(void **state) {
  (void)state;
  const int total = (1 << SPAWN_TREE_DEPTH) - 1 + SPAWN_CHAIN;
  for (int workers = 1; workers <= 2; workers++) {
    g_spawn.ctx = new_ctx_workers(workers, NULL, 0);
    for (int round = 0; round < 20; round++) {
      assert_int_equal(ds_task_group_create(&g_spawn.g, g_spawn.ctx), DS_OK);
      ds__store(&g_spawn.exited, 0);
      ds__store(&g_spawn.done_calls, 0);
      ds_task_options o = DS_TASK_OPTIONS_INIT;
      o.group = g_spawn.g;
      o.on_done = spawn_done;
      assert_int_equal(ds_task_submit(NULL, g_spawn.ctx, spawn_into_group, (void *)0, &o), DS_OK);
      /* Odd rounds wait with a limit (the caller does not help), even ones help. */
      assert_int_equal(ds_task_group_wait(g_spawn.g, round % 2 ? 20000 : -1), DS_OK);
      assert_int_equal(ds__load(&g_spawn.exited), total);
      assert_int_equal(ds__load(&g_spawn.done_calls), total);
      assert_int_equal(ds__load(&g_spawn.g->pending), 0);
      ds_task_group_destroy(g_spawn.g);
    }
    ds_context_destroy(g_spawn.ctx);
  }
}

/* A worker holds back the weight of the group tasks it ran (struct ds_task_group); it must give
 * it back before it runs a task of another group, whose code might wait for the first group by
 * other means than a scheduler wait. One worker: A (group g) runs, then B spins until the main
 * thread has seen g done. */
typedef struct seen_arg {
  ds__atomic_int seen, saw;
} seen_arg;

static ds_status spin_until_seen(void *arg) {
  seen_arg *a = arg;
  for (int i = 0; i < 10000 && !ds__load(&a->seen); i++) sleep_ms(1);
  ds__store(&a->saw, ds__load(&a->seen));
  return DS_OK;
}

static void test_group_weight_flushed_before_other_work(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(1, NULL, 0);
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds__atomic_int n = 0;
  seen_arg a = {0, 0};
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  ds_task *b = NULL;
  assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &o), DS_OK);
  assert_int_equal(ds_task_submit(&b, ctx, spin_until_seen, &a, NULL), DS_OK);
  for (int i = 0; i < 10000 && ds_task_group_wait(g, 0) != DS_OK; i++) sleep_ms(1);
  assert_int_equal(ds_task_group_wait(g, 0), DS_OK);
  ds__store(&a.seen, 1);
  assert_int_equal(ds_task_wait(b, 20000), DS_OK);
  assert_int_equal(ds__load(&a.saw), 1);
  assert_int_equal(ds__load(&n), 1);
  ds_task_release(b);
  ds_task_group_destroy(g);
  ds_context_destroy(ctx);
}

/* Recursive fork-join: tasks wait on their children from inside workers (which then run other
 * tasks), so a 2-worker pool cannot deadlock. */
typedef struct fib_arg {
  ds_context *ctx;
  int n;
  long result;
} fib_arg;

static ds_status fib_task(void *arg) {
  fib_arg *f = arg;
  if (f->n < 2) {
    f->result = f->n;
    return DS_OK;
  }
  fib_arg a = {f->ctx, f->n - 1, 0}, b = {f->ctx, f->n - 2, 0};
  ds_task *ta;
  ds_status st = ds_task_submit(&ta, f->ctx, fib_task, &a, NULL);
  if (st != DS_OK) return st;
  fib_task(&b);
  st = ds_task_wait(ta, -1);
  ds_task_release(ta);
  f->result = a.result + b.result;
  return st;
}

static void test_nested_wait_fork_join(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  fib_arg f = {ctx, 18, 0};
  ds_task *t;
  assert_int_equal(ds_task_submit(&t, ctx, fib_task, &f, NULL), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  assert_int_equal(f.result, 2584);
  ds_task_release(t);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- three tiers */

typedef struct low_load {
  ds__atomic_int stop, running, max_running, done, yields;
} low_load;

static ds_status low_worker(void *arg) {
  low_load *l = arg;
  int now = ds__fetch_add(&l->running, 1) + 1;
  int max = ds__load(&l->max_running);
  while (now > max && !ds__cas(&l->max_running, &max, now)) {
  }
  while (!ds__load(&l->stop)) {
    /* ~100 us of work between yield points */
    uint64_t until = ds__now_ns() + 100000u;
    while (ds__now_ns() < until) {
    }
    ds__fetch_add(&l->yields, ds_task_yield());
  }
  ds__fetch_sub(&l->running, 1);
  ds__fetch_add(&l->done, 1);
  return DS_OK;
}

typedef struct urgent_probe {
  uint64_t submit_ns;
  ds__atomic_u64 start_ns;
} urgent_probe;

static ds_status urgent_fn(void *arg) {
  urgent_probe *p = arg;
  ds__store(&p->start_ns, ds__now_ns());
  return DS_OK;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Both workers run LOW tasks that never finish on their own; URGENT tasks must still start,
 * through the LOW tasks' yield points. Bound: every start within 200 ms and the median within
 * 20 ms (nominally ~0.1 ms: the yield-point spacing; the margin is for a loaded, sanitized
 * 2-core machine). Without preemption they would wait until the LOW tasks stop. */
static void test_urgent_preempts_low(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  low_load l;
  memset(&l, 0, sizeof l);
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  ds_task *lows[2];
  for (int i = 0; i < 2; i++) assert_int_equal(ds_task_submit(&lows[i], ctx, low_worker, &l, &lo), DS_OK);
  while (ds__load(&l.running) < 2) sleep_ms(1);
  enum { N = 20 };
  urgent_probe probes[N];
  uint64_t lat[N];
  ds_task_options uo = DS_TASK_OPTIONS_INIT;
  uo.prio = DS_PRIO_URGENT;
  for (int i = 0; i < N; i++) {
    probes[i].submit_ns = ds__now_ns();
    ds__store(&probes[i].start_ns, 0);
    ds_task *u;
    assert_int_equal(ds_task_submit(&u, ctx, urgent_fn, &probes[i], &uo), DS_OK);
    assert_int_equal(ds_task_wait(u, 5000), DS_OK);
    ds_task_release(u);
    lat[i] = ds__load(&probes[i].start_ns) - probes[i].submit_ns;
    assert_int_equal(ds__load(&l.done), 0); /* the LOW tasks are still there, preempted */
    sleep_ms(2);
  }
  ds__store(&l.stop, 1);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(ds_task_wait(lows[i], -1), DS_OK);
    ds_task_release(lows[i]);
  }
  qsort(lat, N, sizeof lat[0], cmp_u64);
  printf("urgent start latency over LOW load: p50 %.1f us, max %.1f us\n", lat[N / 2] / 1e3,
         lat[N - 1] / 1e3);
  assert_true(lat[N - 1] < 200000000u);
  assert_true(lat[N / 2] < 20000000u);
  /* Every URGENT task ran inside a LOW task's yield point (yields counts them); the
   * preemption counter counts yield calls that ran any, and is only checked to move. */
  assert_true(ds__load(&l.yields) >= N);
  assert_true(ds__load_relaxed(&((struct ds__sched *)ds__load(&ctx->sched))->preemptions) >= 1);
  ds_context_destroy(ctx);
}

/* With a reserved worker, an URGENT task starts while every other worker is stuck in a NORMAL
 * task that has no yield points. Bound: within 2 s (nominally a wakeup, ~0.1 ms). */
static void test_urgent_reserve(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_URGENT_RESERVE, 0, 1}};
  ds_context *ctx = new_ctx_workers(3, pv, 1);
  ds__atomic_int gate = 0, n = 0;
  ds_task *blockers[2];
  for (int i = 0; i < 2; i++) assert_int_equal(ds_task_submit(&blockers[i], ctx, wait_flag, &gate, NULL), DS_OK);
  while (ds_task_state(blockers[0]) != DS_TASK_RUNNING || ds_task_state(blockers[1]) != DS_TASK_RUNNING)
    sleep_ms(1);
  /* A third NORMAL task stays queued: the reserved worker does not take it. */
  ds_task *normal, *urgent;
  assert_int_equal(ds_task_submit(&normal, ctx, add_one, &n, NULL), DS_OK);
  ds_task_options uo = DS_TASK_OPTIONS_INIT;
  uo.prio = DS_PRIO_URGENT;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(ds_task_submit(&urgent, ctx, add_one, &n, &uo), DS_OK);
    assert_int_equal(ds_task_wait(urgent, 2000), DS_OK);
    ds_task_release(urgent);
  }
  assert_int_equal(ds_task_state(normal), DS_TASK_READY);
  ds__store(&gate, 1);
  assert_int_equal(ds_task_wait(normal, -1), DS_OK);
  assert_int_equal(ds__load(&n), 6);
  ds_task_release(normal);
  for (int i = 0; i < 2; i++) ds_task_release(blockers[i]);
  ds_context_destroy(ctx);
}

static void test_low_cap_observable(void **state) {
  (void)state;
  ds_param_value cap[] = {{DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 1}};
  ds_context *ctx = new_ctx_workers(3, cap, 1);
  low_load l;
  memset(&l, 0, sizeof l);
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  ds__store(&l.stop, 1); /* each task runs once through its loop check, then ends */
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  lo.group = g;
  for (int i = 0; i < 200; i++) assert_int_equal(ds_task_submit(NULL, ctx, low_worker, &l, &lo), DS_OK);
  /* NORMAL work still uses all workers meanwhile. */
  ds__atomic_int n = 0;
  ds_task_options no = DS_TASK_OPTIONS_INIT;
  no.group = g;
  for (int i = 0; i < 200; i++) assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &no), DS_OK);
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  ds_task_group_destroy(g);
  assert_int_equal(ds__load(&l.done), 200);
  assert_int_equal(ds__load(&l.max_running), 1);
  ds_context_destroy(ctx);
}

/* The migration hook takes LOW tasks the cap holds back and runs them on its own threads. */
typedef struct migrator {
  pthread_mutex_t mu;
  pthread_t th[64];
  int n;
} migrator;

static void *migrated_run(void *p) {
  struct ds_task *t = p;
  ds__sched_migrated_done(t, t->fn(t->arg));
  return NULL;
}

static int migrate_hook(void *user, struct ds_task *t) {
  migrator *m = user;
  pthread_mutex_lock(&m->mu);
  int ok = m->n < 64 && pthread_create(&m->th[m->n], NULL, migrated_run, t) == 0;
  if (ok) m->n++;
  pthread_mutex_unlock(&m->mu);
  return ok;
}

static ds_status sleep_task(void *arg) {
  sleep_ms(5);
  ds__fetch_add((ds__atomic_int *)arg, 1);
  return DS_OK;
}

static void test_low_migration_hook(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 1}, {DS_PARAM_SCHED_TICK_MS, 0, 2}};
  ds_context *ctx = new_ctx_workers(2, pv, 2);
  migrator m = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};
  ds__sched_set_migrate_hook(ctx, migrate_hook, &m);
  ds__atomic_int n = 0;
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  lo.group = g;
  for (int i = 0; i < 40; i++) assert_int_equal(ds_task_submit(NULL, ctx, sleep_task, &n, &lo), DS_OK);
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  ds_task_group_destroy(g);
  ds__sched_set_migrate_hook(ctx, NULL, NULL);
  assert_int_equal(ds__load(&n), 40);
  pthread_mutex_lock(&m.mu);
  int migrated = m.n;
  pthread_mutex_unlock(&m.mu);
  for (int i = 0; i < migrated; i++) pthread_join(m.th[i], NULL);
  printf("migration: %d of 40 LOW tasks ran through the hook\n", migrated);
  assert_true(migrated > 0);
  assert_true(migrated < 40);
  ds_context_destroy(ctx);
}

typedef struct duty_log {
  ds__atomic_int n, in_window;
} duty_log;

static ds_status record_phase(void *arg) {
  duty_log *d = arg;
  uint64_t period = 20000000u; /* sched_tick_ms below */
  if ((ds__now_ns() % period) * 100 < period * 40) ds__fetch_add(&d->in_window, 1);
  ds__fetch_add(&d->n, 1);
  return DS_OK;
}

/* Duty cycle 30%: LOW tasks start only in the first 30% of each 20 ms tick; with one worker and
 * nothing else to run, they still all complete (the worker sleeps until the window opens).
 * Most starts fall in the window (allowing 10% of the period for a late start). */
static void test_low_duty_cycle(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_LOW_DUTY_PCT, 0, 30}, {DS_PARAM_SCHED_TICK_MS, 0, 20}};
  ds_context *ctx = new_ctx_workers(1, pv, 2);
  duty_log d;
  memset(&d, 0, sizeof d);
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  lo.group = g;
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < 5; i++) assert_int_equal(ds_task_submit(NULL, ctx, record_phase, &d, &lo), DS_OK);
    sleep_ms(7 + round % 3 * 5); /* submit at varied phases */
  }
  assert_int_equal(ds_task_group_wait(g, 10000), DS_OK);
  ds_task_group_destroy(g);
  assert_int_equal(ds__load(&d.n), 50);
  assert_true(ds__load(&d.in_window) >= 40);
  ds_context_destroy(ctx);
}

static double fixed_load(void *state, double observed) {
  (void)observed;
  return ds__load((ds__atomic_int *)state) / 100.0;
}

/* The predictor hook drives throttling: a predicted load above sched_throttle_load_pct halves
 * the LOW cap and duty cycle at the next tick, and a low one restores them. */
static void test_predictor_throttles_low(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 4},
                         {DS_PARAM_SCHED_LOW_DUTY_PCT, 0, 80},
                         {DS_PARAM_SCHED_TICK_MS, 0, 5}};
  ds_context *ctx = new_ctx_workers(4, pv, 3);
  int cap = 0, duty = 0;
  double pred = 0;
  ds__sched_low_limits(ctx, &cap, &duty, &pred);
  assert_int_equal(cap, 4);
  assert_int_equal(duty, 80);
  static ds__atomic_int load;
  ds__store(&load, 300);
  ds__sched_set_predictor(ctx, fixed_load, &load);
  for (int i = 0; i < 2000 && cap != 2; i++) {
    sleep_ms(2);
    ds__sched_low_limits(ctx, &cap, &duty, &pred);
  }
  assert_int_equal(cap, 2);
  assert_int_equal(duty, 40);
  assert_true(pred > 2.9);
  ds_stats *st;
  double v = 0;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, st, "sched.predicted_load"), DS_OK);
  ds_stats_free(st);
  ds__store(&load, 10);
  for (int i = 0; i < 2000 && cap != 4; i++) {
    sleep_ms(2);
    ds__sched_low_limits(ctx, &cap, &duty, &pred);
  }
  assert_int_equal(cap, 4);
  assert_int_equal(duty, 80);
  ds__sched_set_predictor(ctx, NULL, NULL); /* back to the EWMA */
  ds_context_destroy(ctx);
}

static ds_status spin_50us(void *arg) {
  (void)arg;
  uint64_t until = ds__now_ns() + 50000u;
  while (ds__now_ns() < until) {
  }
  return DS_OK;
}

/* The tick also runs while every worker is busy with short tasks, so throttling reacts under
 * load, not only once the pool idles. */
static void test_tick_runs_under_load(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 2}, {DS_PARAM_SCHED_TICK_MS, 0, 2}};
  ds_context *ctx = new_ctx_workers(2, pv, 2);
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  for (int i = 0; i < 20000; i++) assert_int_equal(ds_task_submit(NULL, ctx, spin_50us, NULL, &o), DS_OK);
  static ds__atomic_int load;
  ds__store(&load, 500);
  ds__sched_set_predictor(ctx, fixed_load, &load);
  int cap = 2;
  while (cap != 1 && ds_task_group_wait(g, 0) == DS_ERR_TIMEOUT) ds__sched_low_limits(ctx, &cap, NULL, NULL);
  int still_busy = ds_task_group_wait(g, 0) == DS_ERR_TIMEOUT;
  assert_int_equal(cap, 1);
  assert_true(still_busy);
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  ds_task_group_destroy(g);
  ds_context_destroy(ctx);
}

/* Blocks until *arg becomes nonzero (at most 20 s, so a failing test cannot hang). */
static ds_status block_until(void *arg) {
  for (int i = 0; i < 20000 && !ds__load((ds__atomic_int *)arg); i++) sleep_ms(1);
  return DS_OK;
}

static ds__atomic_int g_tick_calls;

static double counting_load(void *state, double observed) {
  (void)observed;
  ds__fetch_add(&g_tick_calls, 1);
  return ds__load((ds__atomic_int *)state) / 100.0;
}

/* The ticker thread ticks while every worker is stuck inside a long task (no task boundary
 * at all): the predictor is asked and the LOW cap follows it. */
static void test_tick_while_all_workers_blocked(void **state) {
  (void)state;
  /* Throttle above 300 %: the two blocked tasks alone (100 %) must not trigger it. */
  ds_param_value pv[] = {{DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 2}, {DS_PARAM_SCHED_TICK_MS, 0, 5},
                         {DS_PARAM_SCHED_THROTTLE_LOAD_PCT, 0, 300}};
  ds_context *ctx = new_ctx_workers(2, pv, 3);
  ds__atomic_int release = 0, load = 10;
  ds_task *b[2];
  for (int i = 0; i < 2; i++) assert_int_equal(ds_task_submit(&b[i], ctx, block_until, &release, NULL), DS_OK);
  for (int i = 0; i < 5000 && !(ds_task_state(b[0]) == DS_TASK_RUNNING &&
                                 ds_task_state(b[1]) == DS_TASK_RUNNING); i++)
    sleep_ms(1);
  assert_int_equal(ds_task_state(b[0]), DS_TASK_RUNNING);
  assert_int_equal(ds_task_state(b[1]), DS_TASK_RUNNING);
  ds__sched_set_predictor(ctx, counting_load, &load);
  int before = ds__load(&g_tick_calls), cap = 0;
  for (int i = 0; i < 5000 && ds__load(&g_tick_calls) < before + 2; i++) sleep_ms(1);
  ds__sched_low_limits(ctx, &cap, NULL, NULL);
  assert_int_equal(cap, 2); /* predicted 10 %: not throttled */
  before = ds__load(&g_tick_calls);
  ds__store(&load, 500); /* predicted 5x the pool: the cap must halve */
  for (int i = 0; i < 5000 && cap != 1; i++) {
    sleep_ms(1);
    ds__sched_low_limits(ctx, &cap, NULL, NULL);
  }
  assert_int_equal(cap, 1);
  assert_true(ds__load(&g_tick_calls) > before);
  assert_int_equal(ds_task_state(b[0]), DS_TASK_RUNNING); /* still blocked: no boundary passed */
  ds__store(&release, 1);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(ds_task_wait(b[i], -1), DS_OK);
    ds_task_release(b[i]);
  }
  ds__sched_set_predictor(ctx, NULL, NULL);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- ordering within a class */

static ds__atomic_int g_order_n;
static int g_order[16];

static ds_status record_class_order(void *arg) {
  int i = ds__fetch_add(&g_order_n, 1);
  if (i < 16) g_order[i] = (int)(intptr_t)arg;
  return DS_OK;
}

/* With the only worker busy, queued URGENT tasks start earliest deadline first, and LOW tasks
 * by deadline, then the longest cost hint first, then in submission order. */
static void test_deadline_and_cost_order(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(1, NULL, 0);
  ds__atomic_int release = 0;
  ds_task *b;
  assert_int_equal(ds_task_submit(&b, ctx, block_until, &release, NULL), DS_OK);
  for (int i = 0; i < 5000 && ds_task_state(b) != DS_TASK_RUNNING; i++) sleep_ms(1);
  assert_int_equal(ds_task_state(b), DS_TASK_RUNNING);
  ds__store(&g_order_n, 0);
  uint64_t now = ds__now_ns(), s = 1000000000ull;
  /* label, class, deadline (0 none), cost */
  struct { int label, prio; uint64_t deadline, cost; } sub[] = {
      {10, DS_PRIO_LOW, 0, 1000}, {11, DS_PRIO_LOW, 0, 5000}, {12, DS_PRIO_LOW, now + 60 * s, 0},
      {13, DS_PRIO_LOW, 0, 3000}, {14, DS_PRIO_LOW, now + 30 * s, 0}, {15, DS_PRIO_LOW, 0, 3000},
      {1, DS_PRIO_URGENT, now + 60 * s, 0}, {2, DS_PRIO_URGENT, 0, 0}, {3, DS_PRIO_URGENT, now + 30 * s, 0}};
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
    ds_task_options o = DS_TASK_OPTIONS_INIT;
    o.group = g;
    o.prio = sub[i].prio;
    o.deadline_ns = sub[i].deadline;
    o.cost_ns = sub[i].cost;
    assert_int_equal(ds_task_submit(NULL, ctx, record_class_order, (void *)(intptr_t)sub[i].label, &o), DS_OK);
  }
  ds__store(&release, 1);
  /* Waits with a time limit: a wait without one runs queued tasks on this thread, which would
   * race the worker for the queue and break the order being tested. */
  assert_int_equal(ds_task_group_wait(g, 60000), DS_OK);
  ds_task_group_destroy(g);
  assert_int_equal(ds_task_wait(b, 60000), DS_OK);
  ds_task_release(b);
  int want[] = {3, 1, 2, 14, 12, 11, 13, 15, 10};
  assert_int_equal(ds__load(&g_order_n), 9);
  for (int i = 0; i < 9; i++)
    if (g_order[i] != want[i]) fail_msg("position %d: task %d, expected %d", i, g_order[i], want[i]);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- NUMA placement */

/* The placement choice on made-up maps (this machine may have one node): a task whose data
 * is on node k goes to the submitting worker if it is on k, else spreads over k's workers,
 * never to a reserved worker; unknown or workerless nodes give no preference. */
static void test_numa_placement(void **state) {
  (void)state;
  int node[] = {0, 0, 1, 1, 1}, reserved[] = {0, 0, 0, 0, 1};
  assert_int_equal(ds__sched_place(node, reserved, 5, 1, 0, 3), 3);  /* self on node 1 */
  assert_int_equal(ds__sched_place(node, reserved, 5, 1, 0, 4), 2);  /* self reserved */
  assert_int_equal(ds__sched_place(node, reserved, 5, 1, 0, -1), 2); /* outside: rotor */
  assert_int_equal(ds__sched_place(node, reserved, 5, 1, 1, -1), 3);
  assert_int_equal(ds__sched_place(node, reserved, 5, 1, 2, -1), 2);
  assert_int_equal(ds__sched_place(node, reserved, 5, 0, 1, 3), 1);
  assert_int_equal(ds__sched_place(node, reserved, 5, 2, 0, 0), -1); /* no worker there */
  assert_int_equal(ds__sched_place(node, reserved, 5, -1, 0, 0), -1);
  /* Through the API: a data hint and the first released options size are accepted; on one
   * node the hint changes nothing. */
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  struct ds__sched *s = ds__sched_get(ctx);
  for (int i = 0; i < s->nworkers; i++) assert_true(s->worker_node[i] >= -1);
  ds__atomic_int n = 0;
  ds_task *t;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.data = &n;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  ds_task_release(t);
  o.struct_size = (uint32_t)(offsetof(ds_task_options, worker) + sizeof(int32_t));
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  ds_task_release(t);
  assert_int_equal(ds__load(&n), 2);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- batches */

static ds_status add_to(void *arg) {
  ds__fetch_add((ds__atomic_int *)arg, 1);
  return DS_OK;
}

static ds_status fail_if_odd(void *arg) {
  return ((uintptr_t)arg & 1) ? DS_ERR_IO : DS_OK;
}

/* Fans out a batch from inside a task (it goes to the worker's deque). */
static ds_status batch_from_task(void *arg) {
  ds_task_group *g = arg;
  static ds__atomic_int inner;
  void *args[300];
  for (int i = 0; i < 300; i++) args[i] = &inner;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  size_t n = 0;
  ds_status st = ds_task_submit_batch(&n, ds__tl_task->s->ctx, add_to, args, 300, &o);
  return st == DS_OK && n == 300 ? DS_OK : DS_ERR_INTERNAL;
}

/* ds_task_submit_batch: every task runs once with its own argument (more than one chunk,
 * from outside and from inside a task, each class), failures reach the group, bad input is
 * refused with a message. */
static void test_submit_batch(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  enum { N = 1000 };
  static ds__atomic_int hits[N];
  void *args[N];
  for (int i = 0; i < N; i++) {
    ds__store(&hits[i], 0);
    args[i] = &hits[i];
  }
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  size_t n = 7;
  for (int prio = DS_PRIO_URGENT; prio <= DS_PRIO_LOW; prio++) {
    o.prio = prio;
    assert_int_equal(ds_task_submit_batch(&n, ctx, add_to, args, N, &o), DS_OK);
    assert_int_equal(n, N);
  }
  o.prio = DS_PRIO_NORMAL;
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  for (int i = 0; i < N; i++) assert_int_equal(ds__load(&hits[i]), 3);

  /* From inside a task, and args NULL. */
  ds_task *t;
  assert_int_equal(ds_task_submit(&t, ctx, batch_from_task, g, &o), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  ds_task_release(t);
  assert_int_equal(ds_task_submit_batch(&n, ctx, fail_if_odd, NULL, 10, &o), DS_OK);
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  void *odd[4] = {(void *)(uintptr_t)0, (void *)(uintptr_t)1, (void *)(uintptr_t)2, (void *)(uintptr_t)4};
  assert_int_equal(ds_task_submit_batch(NULL, ctx, fail_if_odd, odd, 4, &o), DS_OK);
  assert_int_equal(ds_task_group_wait(g, -1), DS_ERR_IO);
  ds_task_group_destroy(g);

  /* Bad input. */
  assert_int_equal(ds_task_submit_batch(&n, ctx, NULL, args, 1, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(n, 0);
  assert_int_equal(ds_task_submit_batch(&n, NULL, add_to, args, 1, NULL), DS_ERR_INVALID_ARG);
  ds_task *dep = NULL;
  assert_int_equal(ds_task_submit(&dep, ctx, add_to, &hits[0], NULL), DS_OK);
  o.deps = &dep;
  o.ndeps = 1;
  assert_int_equal(ds_task_submit_batch(&n, ctx, add_to, args, 1, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "ndeps 1"));
  o.ndeps = 0;
  o.deps = NULL;
  o.group = NULL;
  o.struct_size = 8;
  assert_int_equal(ds_task_submit_batch(&n, ctx, add_to, args, 1, &o), DS_ERR_ABI);
  o.struct_size = sizeof o;
  o.device = 100000;
  assert_int_equal(ds_task_submit_batch(&n, ctx, add_to, args, 1, &o), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_task_submit_batch(&n, ctx, add_to, args, 0, NULL), DS_OK); /* empty */
  assert_int_equal(n, 0);
  assert_int_equal(ds_task_wait(dep, -1), DS_OK);
  ds_task_release(dep);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- device hint, worker records */

static ds__atomic_int g_meet;

/* Waits (at most 10 s) until two tasks run at once: afterwards both workers have started. */
static ds_status meet_two(void *arg) {
  (void)arg;
  ds__fetch_add(&g_meet, 1);
  for (int i = 0; i < 10000 && ds__load(&g_meet) < 2; i++) sleep_ms(1);
  return ds__load(&g_meet) >= 2 ? DS_OK : DS_ERR_TIMEOUT;
}

/* Submits fn with the given device hint, worker and class from outside the pool; returns the
 * worker the submit chose (the task's hint) after it ran. */
static int hint_for(ds_context *ctx, int32_t device, int32_t worker, int32_t prio) {
  ds__atomic_int n = 0;
  ds_task *t = NULL;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.device = device;
  o.worker = worker;
  o.prio = prio;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  int hint = t->worker_hint;
  ds_task_release(t);
  assert_int_equal(ds__load(&n), 1);
  return hint;
}

/* The device hint: bad values are refused with a message; a real device is accepted (on this
 * one-node machine it changes nothing); and, with a made-up two-node map and device nodes put
 * in the scheduler's cache, a NORMAL task goes to a worker on its device's node, an explicit
 * worker wins, a device of unknown node and other classes get no preference. */
static void test_device_hint(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  ds_task *t = NULL;
  ds__atomic_int n = 0;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.device = -2;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_ERR_INVALID_ARG);
  assert_null(t);
  o.device = 100000;
  assert_int_equal(ds_task_submit(&t, ctx, add_one, &n, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "device hint 100000"));
  struct ds__sched *s = ds__sched_get(ctx);
  int expect0 = s->numa_nodes > 1 ? -2 : -1; /* several nodes: some worker of device 0's node */
  int h = hint_for(ctx, 0, -1, DS_PRIO_NORMAL); /* device 0: the CPU of node 0 */
  if (expect0 == -1) assert_int_equal(h, -1);
  else assert_true(h >= 0 && s->worker_node[h] == s->worker_node[0]);

  /* Both workers past their start (they read the node map there) before it is replaced. */
  ds__store(&g_meet, 0);
  ds_task *m[2];
  for (int i = 0; i < 2; i++) assert_int_equal(ds_task_submit(&m[i], ctx, meet_two, NULL, NULL), DS_OK);
  for (int i = 0; i < 2; i++) { /* with a time limit this thread runs no task itself */
    assert_int_equal(ds_task_wait(m[i], 60000), DS_OK);
    ds_task_release(m[i]);
  }
  int saved_nodes = s->numa_nodes, saved_map[2] = {s->worker_node[0], s->worker_node[1]};
  s->numa_nodes = 2;
  s->worker_node[0] = 0;
  s->worker_node[1] = 1;
  ds__store(&s->device_node[0], 1 + 2); /* device 0 on node 1 */
  ds__store(&s->device_node[1], 0 + 2); /* device 1 on node 0 */
  ds__store(&s->device_node[2], 1);     /* device 2: node unknown */
  for (int i = 0; i < 4; i++) {
    assert_int_equal(hint_for(ctx, 0, -1, DS_PRIO_NORMAL), 1);
    assert_int_equal(hint_for(ctx, 1, -1, DS_PRIO_NORMAL), 0);
  }
  assert_int_equal(hint_for(ctx, 2, -1, DS_PRIO_NORMAL), -1);
  assert_int_equal(hint_for(ctx, 0, 0, DS_PRIO_NORMAL), 0);  /* the explicit worker wins */
  assert_int_equal(hint_for(ctx, 0, -1, DS_PRIO_LOW), -1);   /* NORMAL only */
  assert_int_equal(hint_for(ctx, 0, -1, DS_PRIO_URGENT), -1);
  s->numa_nodes = saved_nodes;
  s->worker_node[0] = saved_map[0];
  s->worker_node[1] = saved_map[1];
  ds_context_destroy(ctx);
}

/* Worker records: each on its own aligned pages (so it can be bound to its worker's node),
 * and, where hwloc can tell where memory lies, on the node of the worker's processing unit
 * once the worker has started. */
static void test_worker_records_on_node(void **state) {
  (void)state;
  assert_int_equal(sizeof(ds__worker) % DS__WORKER_ALIGN, 0);
  ds_context *ctx = new_ctx_workers(2, NULL, 0);
  struct ds__sched *s = ds__sched_get(ctx);
  ds__store(&g_meet, 0);
  ds_task *m[2];
  for (int i = 0; i < 2; i++) assert_int_equal(ds_task_submit(&m[i], ctx, meet_two, NULL, NULL), DS_OK);
  for (int i = 0; i < 2; i++) { /* with a time limit this thread runs no task itself */
    assert_int_equal(ds_task_wait(m[i], 60000), DS_OK);
    ds_task_release(m[i]);
  }
  int located = 0, placed = 0;
  for (int i = 0; i < s->nslots; i++) {
    assert_int_equal((uintptr_t)&s->workers[i] % DS__WORKER_ALIGN, 0);
    if (i == s->nworkers) continue; /* the helper slot belongs to no node */
    placed += s->worker_node[i] >= 0;
    if (s->worker_node[i] >= 0 && s->workers[i].record_node >= 0) {
      assert_int_equal(s->workers[i].record_node, s->worker_node[i]);
      located++;
    }
  }
  printf("worker records located on their node: %d of %d (nodes: %d)\n", located, s->nworkers,
         s->numa_nodes);
  const struct hwloc_topology_support *sup = s->topo ? hwloc_topology_get_support(s->topo) : NULL;
  if (sup && sup->membind->get_area_memlocation) assert_int_equal(located, placed);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- dual-active pools */

static ds__atomic_int g_pool1_blocked, g_pool1_release;

/* Blocks (until released, at most 20 s) if it runs on a worker of pool 1 and fewer than two
 * tasks block there yet; otherwise returns at once. */
static ds_status block_on_pool1(void *arg) {
  (void)arg;
  ds__worker *w = ds__tl_worker;
  if (!w || w->pool != 1) return DS_OK;
  int n = ds__load(&g_pool1_blocked);
  while (n < 2)
    if (ds__cas(&g_pool1_blocked, &n, n + 1)) {
      for (int i = 0; i < 20000 && !ds__load(&g_pool1_release); i++) sleep_ms(1);
      return DS_OK;
    }
  return DS_OK;
}

static double stat_value(ds_context *ctx, const char *name) {
  ds_stats *st;
  double v = -1;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, st, name), DS_OK);
  ds_stats_free(st);
  return v;
}

/* Two pools; every worker of pool 1 blocks forever (until the test releases it). The
 * watchdog marks pool 1 stalled within its bound, new work goes to pool 0 and completes, the
 * stats count the failover, and pool 1 returns to service once its tasks finish. */
static void test_pool_failover(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_POOLS, 0, 2}, {DS_PARAM_SCHED_STALL_MS, 0, 100},
                         {DS_PARAM_SCHED_TICK_MS, 0, 5}};
  ds_context *ctx = new_ctx_workers(4, pv, 3);
  struct ds__sched *s = ds__sched_get(ctx);
  assert_int_equal(s->npools, 2);
  assert_int_equal(s->pools[1].first, 2);
  ds__store(&g_pool1_blocked, 0);
  ds__store(&g_pool1_release, 0);
  for (int i = 0; i < 5000 && ds__load(&g_pool1_blocked) < 2; i++) {
    for (int k = 0; k < 4; k++) assert_int_equal(ds_task_submit(NULL, ctx, block_on_pool1, NULL, NULL), DS_OK);
    sleep_ms(1);
  }
  assert_int_equal(ds__load(&g_pool1_blocked), 2);
  uint64_t t0 = ds__now_ns();
  while (!ds__load(&s->pools[1].stalled) && ds__now_ns() - t0 < 5000000000ull) sleep_ms(1);
  assert_true(ds__load(&s->pools[1].stalled));
  assert_false(ds__load(&s->pools[0].stalled));
  /* Work submitted now runs on pool 0 only, within a loose bound. */
  ds__atomic_int n = 0;
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  for (int i = 0; i < 200; i++) assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &o), DS_OK);
  assert_int_equal(ds__ring_size(&s->pools[1].inject), 0); /* none routed to the stalled pool */
  assert_int_equal(ds_task_group_wait(g, 10000), DS_OK);
  ds_task_group_destroy(g);
  assert_int_equal(ds__load(&n), 200);
  sleep_ms(30); /* a few ticks publish the stats */
  assert_true(stat_value(ctx, "sched.failovers") >= 1);
  assert_true(stat_value(ctx, "sched.pools_stalled") >= 1);
  ds__store(&g_pool1_release, 1);
  t0 = ds__now_ns();
  while (ds__load(&s->pools[1].stalled) && ds__now_ns() - t0 < 5000000000ull) sleep_ms(1);
  assert_false(ds__load(&s->pools[1].stalled));
  ds_context_destroy(ctx);
}

static void test_ewma_and_histogram(void **state) {
  (void)state;
  ds__ewma e = {0.5, 0, 0};
  assert_true(ds__ewma_predict(&e, 1.0) == 1.0);
  assert_true(ds__ewma_predict(&e, 0.0) == 0.5);  /* falls gradually */
  assert_true(ds__ewma_predict(&e, 0.0) == 0.25);
  assert_true(ds__ewma_predict(&e, 2.0) == 2.0);  /* a rise is followed at once */
  static ds__hist h;
  memset(&h, 0, sizeof h);
  assert_true(ds__hist_quantile(&h, 0.5) == 0);
  for (int i = 0; i < 99; i++) ds__hist_add(&h, 1000);
  ds__hist_add(&h, 1000000);
  double p50 = ds__hist_quantile(&h, 0.5), p99 = ds__hist_quantile(&h, 0.99);
  assert_true(p50 >= 512 && p50 <= 2048);
  assert_true(p99 <= 2048);
  assert_true(ds__hist_quantile(&h, 1.0) >= 524288);
}

/* ---------------------------------------------------------------- integration */

static void work_item(void *arg) { ds__fetch_add((ds__atomic_int *)arg, 1); }

static void test_executor_routed_and_stats(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_TICK_MS, 0, 5}};
  ds_context *ctx = new_ctx_workers(2, pv, 1);
  ds__atomic_int n = 0;
  for (int i = 0; i < 30; i++)
    assert_int_equal(ds__executor_submit(ctx, work_item, &n, i % 3), DS_OK);
  assert_non_null(ds__load(&ctx->sched));
  assert_null(ctx->executor); /* the core's own thread never started */
  ds_task_group *g;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  for (int i = 0; i < 300; i++) {
    o.prio = i % 3;
    assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &o), DS_OK);
  }
  assert_int_equal(ds_task_group_wait(g, -1), DS_OK);
  ds_task_group_destroy(g);
  sleep_ms(50); /* a few ticks publish the stats */
  ds_stats *st;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  const char *names[] = {"sched.tasks_run", "sched.steals", "sched.preemptions", "sched.utilisation",
                         "sched.wait_p50_us.urgent", "sched.wait_p99_us.normal",
                         "sched.wait_p99_us.low", "sched.queue_depth", "sched.low_cap",
                         "sched.completion_stddev_us"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    double v = -1;
    assert_int_equal(ds_stats_find(&v, st, names[i]), DS_OK);
    assert_true(v >= 0);
  }
  /* Waits are times, not garbage: this test's tasks are trivial, so well under 10 s. */
  const char *waits[] = {"sched.wait_p50_us.normal", "sched.wait_p99_us.normal",
                         "sched.completion_stddev_us"};
  for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
    double v = -1;
    assert_int_equal(ds_stats_find(&v, st, waits[i]), DS_OK);
    if (!(v > 0 && v < 1e7)) fail_msg("%s = %g us", waits[i], v);
  }
  double run = 0;
  ds_stats_find(&run, st, "sched.tasks_run");
  ds_stats_free(st);
  ds_context_destroy(ctx); /* executor work already done or drained */
  assert_int_equal(ds__load(&n), 330);
  assert_true(run >= 300);
}

/* An idle pool parks: over 2 s its process uses < 1% of a core (worker 0 wakes once a tick). */
/* ---------------------------------------------------------------- task memory */

static ds_status wait_open(void *arg) {
  while (!ds__load((ds__atomic_int *)arg)) sleep_ms(1);
  return DS_OK;
}

static double task_mem_bytes(ds_context *ctx) {
  ds_stats *st = NULL;
  double v = -1;
  assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, st, "sched.task_mem_bytes"), DS_OK);
  ds_stats_free(st);
  return v;
}

/* Polls the gauge (published every tick) until it is at least (above) or at most bound, for
 * about 5 s at most. */
static double task_mem_until(ds_context *ctx, int above, double bound) {
  double v = task_mem_bytes(ctx);
  for (int i = 0; i < 1000 && (above ? v < bound : v > bound); i++) {
    sleep_ms(5);
    v = task_mem_bytes(ctx);
  }
  return v;
}

/* A peak of 40000 live tasks (all waiting for a gate) grows the task memory; once they are
 * done and the workers idle, the tick gives most of it back, and tasks still run after. */
static void test_task_memory_trimmed(void **state) {
  (void)state;
  enum { N = 40000 };
  ds_param_value pv[] = {{DS_PARAM_SCHED_TICK_MS, 0, 5}};
  ds_context *ctx = new_ctx_workers(2, pv, 1);
  ds__atomic_int open = 0, n = 0;
  ds_task *gate = NULL;
  assert_int_equal(ds_task_submit(&gate, ctx, wait_open, &open, NULL), DS_OK);
  ds_task_group *g = NULL;
  assert_int_equal(ds_task_group_create(&g, ctx), DS_OK);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  o.deps = &gate;
  o.ndeps = 1;
  for (int i = 0; i < N; i++) assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &o), DS_OK);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  /* Sanitizer builds allocate every task on its own (task_pool.c): no slabs to give back. */
  assert_true(task_mem_bytes(ctx) == 0);
  double peak = 0;
#else
  double peak = task_mem_until(ctx, 1, (double)N * sizeof(struct ds_task));
  if (peak < (double)N * sizeof(struct ds_task))
    fail_msg("task memory at the peak: %g bytes", peak);
#endif
  ds__store(&open, 1);
  assert_int_equal(ds_task_group_wait(g, 20000), DS_OK);
  assert_int_equal(ds_task_wait(gate, 20000), DS_OK);
  ds_task_release(gate);
  assert_int_equal(ds__load(&n), N);
  double after = task_mem_until(ctx, 0, peak / 4);
  if (after > peak / 4)
    fail_msg("task memory %g bytes after the peak of %g: not given back", after, peak);
  print_message("task memory: %.0f bytes at the peak, %.0f after\n", peak, after);
  /* The memory left is reused and grows again on demand. */
  ds_task_options o2 = DS_TASK_OPTIONS_INIT;
  o2.group = g;
  for (int i = 0; i < 5000; i++)
    assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, &o2), DS_OK);
  assert_int_equal(ds_task_group_wait(g, 20000), DS_OK);
  assert_int_equal(ds__load(&n), N + 5000);
  ds_task_group_destroy(g);
  ds_context_destroy(ctx);
}

static void test_idle_cpu_below_one_percent(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(0, NULL, 0); /* one per hardware thread */
  ds__atomic_int n = 0;
  for (int i = 0; i < 100; i++) assert_int_equal(ds_task_submit(NULL, ctx, add_one, &n, NULL), DS_OK);
  while (ds__load(&n) < 100) sleep_ms(1);
  sleep_ms(100);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  uint64_t t0 = ds__now_ns();
  sleep_ms(2000);
  getrusage(RUSAGE_SELF, &r1);
  double wall = (double)(ds__now_ns() - t0) / 1e9;
  double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
               (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
               1e-6 * (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
               1e-6 * (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
  int32_t nw = 0;
  ds_sched_workers(ctx, &nw);
  printf("idle: %d workers used %.3f%% of a core over %.2f s\n", nw, 100 * cpu / wall, wall);
  assert_true(cpu / wall < 0.01);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- shutdown */

typedef struct shutdown_probe {
  ds_context *ctx;
  ds__atomic_int started;
  ds_status resubmit;
} shutdown_probe;

static ds_status submit_during_destroy(void *arg) {
  shutdown_probe *p = arg;
  ds__store(&p->started, 1);
  while (!ds_task_cancelled()) sleep_ms(1); /* set once destroy begins */
  p->resubmit = ds_task_submit(NULL, p->ctx, add_one, NULL, NULL);
  return DS_OK;
}

static void test_shutdown_cancels_pending(void **state) {
  (void)state;
  ds_context *ctx = new_ctx_workers(1, NULL, 0);
  shutdown_probe p = {ctx, 0, DS_OK};
  done_log dl = {0, DS_OK};
  ds__atomic_int ran = 0;
  assert_int_equal(ds_task_submit(NULL, ctx, submit_during_destroy, &p, NULL), DS_OK);
  while (!ds__load(&p.started)) sleep_ms(1);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.on_done = on_done;
  o.on_done_user = &dl;
  for (int i = 0; i < 50; i++) {
    o.prio = i % 3;
    assert_int_equal(ds_task_submit(NULL, ctx, add_one, &ran, &o), DS_OK);
  }
  ds_context_destroy(ctx);
  assert_int_equal(p.resubmit, DS_ERR_SHUTDOWN);
  assert_int_equal(ds__load(&dl.calls), 50); /* every callback ran */
  assert_int_equal(ds__load(&ran), 0);       /* none of the queued tasks ran */
  assert_int_equal(dl.last, DS_ERR_CANCELLED);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_submit_wait_and_bad_args),
      cmocka_unit_test(test_dag_ordering),
      cmocka_unit_test(test_error_propagation),
      cmocka_unit_test(test_cancellation),
      cmocka_unit_test(test_timeouts_and_deadlines),
      cmocka_unit_test(test_groups),
      cmocka_unit_test(test_group_spawn_weights),
      cmocka_unit_test(test_group_weight_flushed_before_other_work),
      cmocka_unit_test(test_nested_wait_fork_join),
      cmocka_unit_test(test_urgent_preempts_low),
      cmocka_unit_test(test_urgent_reserve),
      cmocka_unit_test(test_low_cap_observable),
      cmocka_unit_test(test_predictor_throttles_low),
      cmocka_unit_test(test_low_migration_hook),
      cmocka_unit_test(test_low_duty_cycle),
      cmocka_unit_test(test_tick_runs_under_load),
      cmocka_unit_test(test_tick_while_all_workers_blocked),
      cmocka_unit_test(test_pool_failover),
      cmocka_unit_test(test_deadline_and_cost_order),
      cmocka_unit_test(test_numa_placement),
      cmocka_unit_test(test_device_hint),
      cmocka_unit_test(test_submit_batch),
      cmocka_unit_test(test_worker_records_on_node),
      cmocka_unit_test(test_ewma_and_histogram),
      cmocka_unit_test(test_executor_routed_and_stats),
      cmocka_unit_test(test_task_memory_trimmed),
      cmocka_unit_test(test_idle_cpu_below_one_percent),
      cmocka_unit_test(test_shutdown_cancels_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
