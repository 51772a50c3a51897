/* bench_sched_overhead: per-task cost of empty tasks in the scheduler against oneTBB's
 * task_group (limited by global_control to the number of our workers) and StarPU 1.3
 * (starpu_task_insert, "lws" and "eager" policies, as many CPU workers as ours), same thread
 * count, median of 5 repetitions (StarPU: 3). Cases:
 *   flat   — the main thread submits N empty tasks, then waits for all (a task group; StarPU:
 *            starpu_task_wait_for_all)
 *   flat_batch — ours submits the same N tasks with one ds_task_submit_batch call (oneTBB's
 *            figure is its flat loop of task_group::run: it has no batch submit)
 *   nested — a binary tree of tasks spawned from inside tasks (each node spawns two children
 *            and waits for them), N nodes
 * C++ only for the anchor; the library is used through its C API.
 * usage: bench_sched_overhead [--json] [--workers N]
 *   --workers N: N scheduler workers and oneTBB limited to N (default: one worker per
 *   hardware thread); the thread count printed in the table is N.   */
#include <deepseek.h>

#include <atomic>
#include <cstdint>

#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#ifdef DS_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_group.h>
#endif
#ifdef DS_HAVE_STARPU
#include <starpu.h>
#include <stdlib.h>
#endif

#define REPS 5
#define FLAT_N 200000
#define TREE_DEPTH 16 /* 2^17 - 1 nodes */

static std::atomic<long> g_count{0};

static ds_status empty_task(void *) {
  g_count.fetch_add(1, std::memory_order_relaxed);
  return DS_OK;
}

static double ours_flat(ds_context *ctx) {
  ds_task_group *g = NULL;
  ds_task_group_create(&g, ctx);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  double t0 = bench_now_s();
  for (int i = 0; i < FLAT_N; i++) ds_task_submit(NULL, ctx, empty_task, NULL, &o);
  ds_task_group_wait(g, -1);
  double dt = bench_now_s() - t0;
  ds_task_group_destroy(g);
  return dt * 1e9 / FLAT_N;
}

/* The same N empty tasks through ds_task_submit_batch (the API for many independent tasks). */
static double ours_flat_batch(ds_context *ctx) {
  ds_task_group *g = NULL;
  ds_task_group_create(&g, ctx);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  double t0 = bench_now_s();
  ds_task_submit_batch(NULL, ctx, empty_task, NULL, FLAT_N, &o);
  ds_task_group_wait(g, -1);
  double dt = bench_now_s() - t0;
  ds_task_group_destroy(g);
  return dt * 1e9 / FLAT_N;
}

struct tree_arg {
  ds_context *ctx;
  int depth;
};

static ds_status tree_task(void *p) {
  tree_arg *a = static_cast<tree_arg *>(p);
  g_count.fetch_add(1, std::memory_order_relaxed);
  if (a->depth == 0) return DS_OK;
  tree_arg l = {a->ctx, a->depth - 1}, r = {a->ctx, a->depth - 1};
  ds_task *tl = NULL;
  ds_task_submit(&tl, a->ctx, tree_task, &l, NULL);
  tree_task(&r);
  ds_status st = ds_task_wait(tl, -1);
  ds_task_release(tl);
  return st;
}

static double ours_tree(ds_context *ctx) {
  tree_arg root = {ctx, TREE_DEPTH};
  ds_task *t = NULL;
  double t0 = bench_now_s();
  ds_task_submit(&t, ctx, tree_task, &root, NULL);
  ds_task_wait(t, -1);
  double dt = bench_now_s() - t0;
  ds_task_release(t);
  return dt * 1e9 / ((2 << TREE_DEPTH) - 1);
}

#ifdef DS_HAVE_TBB
static double tbb_flat(void) {
  tbb::task_group g;
  double t0 = bench_now_s();
  for (int i = 0; i < FLAT_N; i++) g.run([] { g_count.fetch_add(1, std::memory_order_relaxed); });
  g.wait();
  return (bench_now_s() - t0) * 1e9 / FLAT_N;
}

static void tbb_tree_node(int depth) {
  g_count.fetch_add(1, std::memory_order_relaxed);
  if (depth == 0) return;
  tbb::task_group g;
  g.run([depth] { tbb_tree_node(depth - 1); });
  tbb_tree_node(depth - 1);
  g.wait();
}

static double tbb_tree(void) {
  double t0 = bench_now_s();
  tbb::task_group g;
  g.run([] { tbb_tree_node(TREE_DEPTH); });
  g.wait();
  return (bench_now_s() - t0) * 1e9 / ((2 << TREE_DEPTH) - 1);
}
#endif

#ifdef DS_HAVE_STARPU
static void starpu_empty(void *buffers[], void *cl_arg) {
  (void)buffers;
  (void)cl_arg;
  g_count.fetch_add(1, std::memory_order_relaxed);
}

/* ns per empty task with the given policy, median of 3; 0 if StarPU cannot start. */
static double starpu_flat(const char *policy, int workers) {
  struct starpu_conf conf;
  starpu_conf_init(&conf);
  conf.sched_policy_name = policy;
  conf.ncpus = workers;
  conf.ncuda = 0;
  conf.nopencl = 0;
  if (starpu_init(&conf) != 0) return 0;
  static struct starpu_codelet cl;
  memset(&cl, 0, sizeof cl);
  cl.cpu_funcs[0] = starpu_empty;
  cl.nbuffers = 0;
  double v[3];
  for (int r = 0; r < 3; r++) {
    double t0 = bench_now_s();
    for (int i = 0; i < FLAT_N; i++) starpu_task_insert(&cl, 0);
    starpu_task_wait_for_all();
    v[r] = (bench_now_s() - t0) * 1e9 / FLAT_N;
  }
  starpu_shutdown();
  return bench_median(v, 3);
}
#endif

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_param_value pv[1] = {{DS_PARAM_SCHED_WORKERS, 0, 0}};
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--workers")) pv[0].value = atoi(argv[i + 1]);
  ds_context *ctx = bench_context("bench_sched_overhead", pv, 1);
  int32_t workers = 0;
  ds_sched_workers(ctx, &workers);
  double of[REPS], ob[REPS], ot[REPS], af[REPS] = {0}, at[REPS] = {0};
#ifdef DS_HAVE_TBB
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, (size_t)workers);
  const char *anchor = "oneTBB task_group";
#else
  const char *anchor = "none (oneTBB not built)";
#endif
  for (int r = 0; r < REPS; r++) {
    of[r] = ours_flat(ctx);
    ob[r] = ours_flat_batch(ctx);
    ot[r] = ours_tree(ctx);
#ifdef DS_HAVE_TBB
    af[r] = tbb_flat();
    at[r] = tbb_tree();
#endif
  }
  if (!json) printf("threads: %d (ours: workers; oneTBB: max_allowed_parallelism)\n", (int)workers);
  bench_row rows[] = {
      {"bench_sched_overhead", "flat_200k_empty", "ns_per_task", bench_median(of, REPS), anchor,
       bench_median(af, REPS), 1.0, "lower"},
      {"bench_sched_overhead", "flat_200k_batch", "ns_per_task", bench_median(ob, REPS), anchor,
       bench_median(af, REPS), 1.0, "lower"},
      {"bench_sched_overhead", "nested_tree_131k", "ns_per_task", bench_median(ot, REPS), anchor,
       bench_median(at, REPS), 1.0, "lower"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) bench_print(&rows[i], json, &header);
#ifdef DS_HAVE_STARPU
  setenv("STARPU_SILENT", "1", 0);
  const char *policies[] = {"lws", "eager"};
  const char *names[] = {"StarPU 1.3 lws", "StarPU 1.3 eager"};
  for (int p = 0; p < 2; p++) {
    double sp = starpu_flat(policies[p], (int)workers);
    bench_row row = {"bench_sched_overhead", "flat_200k_empty", "ns_per_task", rows[0].ours,
                     names[p], sp, 1.0, "lower"};
    if (sp > 0) bench_print(&row, json, &header);
    else fprintf(stderr, "bench_sched_overhead: StarPU (%s) did not start\n", policies[p]);
  }
#endif
  ds_context_destroy(ctx);
  return 0;
}
