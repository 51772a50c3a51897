/* bench_sched_dag: task graphs in the scheduler against oneTBB and StarPU 1.3 (wavefront only,
 * tag dependencies, "lws" policy), same thread count, median of 5 repetitions (StarPU: 3; wall
 * time of the whole graph).
 *   wavefront_512x512 — a 512x512 tile grid, tile (i,j) after (i-1,j) and (i,j-1), each tile a
 *       small stencil update (~0.3 us). Both sides use the same idiom: an atomic predecessor
 *       counter per tile, and the task that finishes a tile's last predecessor spawns it from
 *       inside the pool (ours: ds_task_submit with a group, which goes to the worker's own
 *       deque; oneTBB: task_group::run).
 *   wavefront_512x512_deps — the same grid declared up front from the main thread with the
 *       scheduler's dependency tracking (ds_task_submit with two deps per tile), against StarPU
 *       declaring the same graph with tag dependencies.
 *   fork_join_fib25 — recursive fib(25) without cutoff (242785 tasks): spawn one child, do the
 *       other inline, wait.
 * usage: bench_sched_dag [--json] [--workers N]
 *   --workers N: N scheduler workers and oneTBB limited to N (default: one worker per
 *   hardware thread); the thread count printed in the table is N.   */
#include <deepseek.h>

#include <atomic>
#include <cstdint>
#include <vector>

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
#define GRID 512
#define TILE 8
#define FIB_N 25

static double g_cells[GRID + 1][GRID + 1][TILE];

static void tile_work(int i, int j) {
  double *c = g_cells[i + 1][j + 1];
  const double *up = g_cells[i][j + 1], *left = g_cells[i + 1][j];
  for (int k = 0; k < TILE; k++) c[k] = 0.5 * (up[k] + left[k]) + 1e-3 * k;
}

struct tile_arg {
  int i, j;
};

static ds_status ours_tile(void *p) {
  tile_arg *a = static_cast<tile_arg *>(p);
  tile_work(a->i, a->j);
  return DS_OK;
}

static std::atomic<int> g_preds[GRID][GRID];

static void reset_preds(void) {
  for (int i = 0; i < GRID; i++)
    for (int j = 0; j < GRID; j++) g_preds[i][j].store((i > 0) + (j > 0), std::memory_order_relaxed);
}

struct spawn_ctx {
  ds_context *ctx;
  ds_task_group *group;
  tile_arg args[GRID][GRID];
};
static spawn_ctx g_spawn;

static ds_status ours_spawn_tile(void *p) {
  tile_arg *a = static_cast<tile_arg *>(p);
  int i = a->i, j = a->j;
  tile_work(i, j);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g_spawn.group;
  if (i + 1 < GRID && g_preds[i + 1][j].fetch_sub(1) == 1)
    ds_task_submit(NULL, g_spawn.ctx, ours_spawn_tile, &g_spawn.args[i + 1][j], &o);
  if (j + 1 < GRID && g_preds[i][j + 1].fetch_sub(1) == 1)
    ds_task_submit(NULL, g_spawn.ctx, ours_spawn_tile, &g_spawn.args[i][j + 1], &o);
  return DS_OK;
}

/* The oneTBB idiom with our API: seconds for the whole grid. */
static double ours_wavefront_spawn(ds_context *ctx) {
  reset_preds();
  for (int i = 0; i < GRID; i++)
    for (int j = 0; j < GRID; j++) g_spawn.args[i][j] = tile_arg{i, j};
  g_spawn.ctx = ctx;
  ds_task_group_create(&g_spawn.group, ctx);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g_spawn.group;
  double t0 = bench_now_s();
  ds_task_submit(NULL, ctx, ours_spawn_tile, &g_spawn.args[0][0], &o);
  ds_task_group_wait(g_spawn.group, -1);
  double dt = bench_now_s() - t0;
  ds_task_group_destroy(g_spawn.group);
  return dt;
}

static double ours_wavefront(ds_context *ctx) {
  std::vector<tile_arg> args(GRID * GRID);
  std::vector<ds_task *> prev(GRID, nullptr), cur(GRID, nullptr);
  double t0 = bench_now_s();
  for (int i = 0; i < GRID; i++) {
    for (int j = 0; j < GRID; j++) {
      tile_arg *a = &args[(size_t)i * GRID + j];
      a->i = i;
      a->j = j;
      ds_task *deps[2];
      size_t nd = 0;
      if (i > 0) deps[nd++] = prev[j];
      if (j > 0) deps[nd++] = cur[j - 1];
      ds_task_options o = DS_TASK_OPTIONS_INIT;
      o.deps = deps;
      o.ndeps = nd;
      ds_task_submit(&cur[j], ctx, ours_tile, a, &o);
      if (i > 0) ds_task_release(prev[j]); /* its last successor is submitted */
    }
    std::swap(prev, cur);
  }
  ds_task_wait(prev[GRID - 1], -1);
  double dt = bench_now_s() - t0;
  for (int j = 0; j < GRID; j++) ds_task_release(prev[j]);
  return dt;
}

struct fib_arg {
  ds_context *ctx;
  int n;
  long r;
};

static ds_status ours_fib(void *p) {
  fib_arg *f = static_cast<fib_arg *>(p);
  if (f->n < 2) {
    f->r = f->n;
    return DS_OK;
  }
  fib_arg a = {f->ctx, f->n - 1, 0}, b = {f->ctx, f->n - 2, 0};
  ds_task *t = NULL;
  ds_task_submit(&t, f->ctx, ours_fib, &a, NULL);
  ours_fib(&b);
  ds_task_wait(t, -1);
  ds_task_release(t);
  f->r = a.r + b.r;
  return DS_OK;
}

static double ours_fork_join(ds_context *ctx, long *result) {
  fib_arg root = {ctx, FIB_N, 0};
  ds_task *t = NULL;
  double t0 = bench_now_s();
  ds_task_submit(&t, ctx, ours_fib, &root, NULL);
  ds_task_wait(t, -1);
  double dt = bench_now_s() - t0;
  ds_task_release(t);
  *result = root.r;
  return dt;
}

#ifdef DS_HAVE_TBB
static void tbb_tile(tbb::task_group &g, int i, int j) {
  tile_work(i, j);
  if (i + 1 < GRID && g_preds[i + 1][j].fetch_sub(1) == 1) g.run([&g, i, j] { tbb_tile(g, i + 1, j); });
  if (j + 1 < GRID && g_preds[i][j + 1].fetch_sub(1) == 1) g.run([&g, i, j] { tbb_tile(g, i, j + 1); });
}

static double tbb_wavefront(void) {
  reset_preds();
  tbb::task_group g;
  double t0 = bench_now_s();
  g.run([&g] { tbb_tile(g, 0, 0); });
  g.wait();
  return bench_now_s() - t0;
}

static long tbb_fib(int n) {
  if (n < 2) return n;
  long a = 0;
  tbb::task_group g;
  g.run([&a, n] { a = tbb_fib(n - 1); });
  long b = tbb_fib(n - 2);
  g.wait();
  return a + b;
}

static double tbb_fork_join(long *result) {
  double t0 = bench_now_s();
  *result = tbb_fib(FIB_N);
  return bench_now_s() - t0;
}
#endif

#ifdef DS_HAVE_STARPU
static void sp_tile(void *buffers[], void *cl_arg) {
  (void)buffers;
  int ij = (int)(intptr_t)cl_arg;
  tile_work(ij / GRID, ij % GRID);
}

/* Median seconds of 3 wavefronts, tile (i,j) tagged i*GRID+j+1; 0 if StarPU cannot start. */
static double starpu_wavefront(int workers) {
  setenv("STARPU_SILENT", "1", 0);
  struct starpu_conf conf;
  starpu_conf_init(&conf);
  conf.sched_policy_name = "lws";
  conf.ncpus = workers;
  conf.ncuda = 0;
  conf.nopencl = 0;
  if (starpu_init(&conf) != 0) return 0;
  static struct starpu_codelet cl;
  memset(&cl, 0, sizeof cl);
  cl.cpu_funcs[0] = sp_tile;
  double v[3];
  for (int r = 0; r < 3; r++) {
    double t0 = bench_now_s();
    for (int i = 0; i < GRID; i++) {
      for (int j = 0; j < GRID; j++) {
        starpu_tag_t tag = (starpu_tag_t)(i * GRID + j + 1), deps[2];
        unsigned nd = 0;
        if (i > 0) deps[nd++] = tag - GRID;
        if (j > 0) deps[nd++] = tag - 1;
        if (nd) starpu_tag_declare_deps_array(tag, nd, deps);
        struct starpu_task *t = starpu_task_create();
        t->cl = &cl;
        t->cl_arg = (void *)(intptr_t)(i * GRID + j);
        t->use_tag = 1;
        t->tag_id = tag;
        if (starpu_task_submit(t) != 0) abort();
      }
    }
    if (starpu_tag_wait((starpu_tag_t)GRID * GRID) != 0) abort();
    v[r] = bench_now_s() - t0;
    starpu_task_wait_for_all();
    for (starpu_tag_t tag = 1; tag <= (starpu_tag_t)GRID * GRID; tag++) starpu_tag_remove(tag);
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
  ds_context *ctx = bench_context("bench_sched_dag", pv, 1);
  int32_t workers = 0;
  ds_sched_workers(ctx, &workers);
  double ow[REPS], od[REPS], of[REPS], aw[REPS] = {0}, af[REPS] = {0};
  long r_ours = 0, r_anchor = 0;
#ifdef DS_HAVE_TBB
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, (size_t)workers);
  const char *anchor = "oneTBB task_group";
#else
  const char *anchor = "none (oneTBB not built)";
#endif
  for (int r = 0; r < REPS; r++) {
    ow[r] = ours_wavefront_spawn(ctx);
    od[r] = ours_wavefront(ctx);
    of[r] = ours_fork_join(ctx, &r_ours);
#ifdef DS_HAVE_TBB
    aw[r] = tbb_wavefront();
    af[r] = tbb_fork_join(&r_anchor);
#endif
  }
  if (r_ours != 75025 || (r_anchor && r_anchor != 75025)) {
    fprintf(stderr, "bench_sched_dag: wrong fib result %ld / %ld\n", r_ours, r_anchor);
    return 1;
  }
  if (!json) printf("threads: %d (ours: workers; oneTBB: max_allowed_parallelism)\n", (int)workers);
  bench_row rows[] = {
      {"bench_sched_dag", "wavefront_512x512", "ms", 1e3 * bench_median(ow, REPS), anchor,
       1e3 * bench_median(aw, REPS), 1.0, "lower"},
      {"bench_sched_dag", "fork_join_fib25", "ms", 1e3 * bench_median(of, REPS), anchor,
       1e3 * bench_median(af, REPS), 1.0, "lower"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) bench_print(&rows[i], json, &header);
  double sp = 0;
  const char *sp_name = "none (StarPU not built)";
#ifdef DS_HAVE_STARPU
  sp = starpu_wavefront((int)workers);
  sp_name = "StarPU 1.3 lws";
  if (sp == 0) fprintf(stderr, "bench_sched_dag: StarPU did not start\n");
#endif
  bench_row row = {"bench_sched_dag", "wavefront_512x512_deps", "ms", 1e3 * bench_median(od, REPS),
                   sp_name, 1e3 * sp, 1.0, "lower"};
  bench_print(&row, json, &header);
  ds_context_destroy(ctx);
  return 0;
}
