/* Shared by the fabric DAG benchmarks (bench_fabric_dag's tiled GEMM, bench_fabric_cholesky):
 * the command line, the measurement of one placement policy of ours (calibration, warm-up,
 * medians), StarPU's start and stop around each benchmark's own DAG submission, and the report
 * loop over the policies with and without zero-copy. Each benchmark supplies its graph and its
 * StarPU measurement through struct fg_bench. Include after defining _GNU_SOURCE. */
#ifndef BENCH_FABRIC_GRAPH_COMMON_H
#define BENCH_FABRIC_GRAPH_COMMON_H

#include "bench_common.h" /* first: it sets the feature-test macros */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DS_BENCH_HAVE_STARPU
#define CL_TARGET_OPENCL_VERSION 120
#include <starpu.h>
#endif

enum { WARMUP = 4 };
static int NT, TS, REPS = 5; /* tiles per side, tile size, timed runs; NT and TS set by main */
static const char *fg_name;  /* "bench_fabric_dag", for messages */

struct result {
  double ms, mbytes, err, pred_ms, plan_ms;
  int ok, on_cl; /* on_cl: nodes the last plan put on the OpenCL device */
};

static void check(ds_status st, ds_context *ctx, const char *what) {
  if (st == DS_OK) return;
  fprintf(stderr, "%s: %s: %s\n", fg_name, what, ds_context_last_error(ctx));
  exit(1);
}

/* --tiles, --tile-size (8..max_ts), --reps; exits 2 on a bad value. */
static void fg_args(int argc, char **argv, int max_ts) {
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--tiles")) NT = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tile-size")) TS = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps")) REPS = atoi(argv[++i]);
  }
  if (NT < 1 || NT > 16 || TS < 8 || TS > max_ts || REPS < 1 || REPS > 60) {
    fprintf(stderr, "%s: --tiles 1..16, --tile-size 8..%d, --reps 1..60\n", fg_name, max_ts);
    exit(2);
  }
}

/* Current value of the context's fabric.bytes_moved. */
static double fg_bytes_moved(ds_context *ctx) {
  ds_stats *s = NULL;
  double v = 0;
  check(ds_stats_snapshot(&s, ctx), ctx, "stats");
  (void)ds_stats_find(&v, s, "fabric.bytes_moved");
  ds_stats_free(s);
  return v;
}

/* A benchmark's graph as setup built it. */
struct fg_graph {
  ds_context *ctx;
  ds_graph *g;
  int32_t cl; /* the OpenCL device, -1 when none */
};

/* What a benchmark supplies: its graph (setup builds it in a fresh context with the buffer
 * flags given; run is one timed run returning seconds, bytes moved and the largest relative
 * error), and its StarPU measurement (NULL without StarPU). */
struct fg_bench {
  const char *name; /* the JSON rows' "bench" */
  int nodes;
  void *ours;
  struct fg_graph (*setup)(void *ours, uint32_t flags);
  void (*teardown)(void *ours);
  double (*run)(void *ours, const ds_plan *p, uint64_t *bytes, double *err);
  struct result (*starpu)(int with_opencl, int *nopencl);
};

/* One policy of ours: HEFT first runs until its models are calibrated, then replans from the
 * times measured in each warm-up run; REPS timed runs of the last plan follow. */
static struct result fg_measure(const struct fg_bench *b, const struct fg_graph *fg, int policy,
                                int32_t device, int plain) {
  struct result r = {0, 0, 0, 0, 0, 1, 0};
  ds_context *ctx = fg->ctx;
  ds_graph *g = fg->g;
  check(ds_context_set_param(ctx, DS_PARAM_FABRIC_PLAN_SHARED_CORES, !plain), ctx, "param");
  check(ds_context_set_param(ctx, DS_PARAM_FABRIC_PLAN_GUARD, !plain), ctx, "param");
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.policy = policy;
  po.device = device;
  double t[64], mb[64], tp[5];
  uint64_t bytes = 0;
  double err = 0;
  ds_plan *p = NULL;
  for (int c = 0; policy == DS_PLAN_HEFT && c < 4 * WARMUP; c++) { /* until calibrated */
    ds_plan_info ci = {sizeof ci, 0, 0, 0, 0};
    check(ds_graph_plan(&p, g, &po), ctx, "plan");
    check(ds_plan_get_info(p, &ci), ctx, "plan info");
    if (!ci.calibrating) break;
    (void)b->run(b->ours, p, &bytes, &err);
    r.err = fmax(r.err, err);
    ds_plan_destroy(p);
    p = NULL;
  }
  for (int i = 0; i < WARMUP + REPS; i++) {
    if (!p || (policy == DS_PLAN_HEFT && i < WARMUP)) { /* HEFT replans from the last run */
      ds_plan_destroy(p);
      check(ds_graph_plan(&p, g, &po), ctx, "plan");
    }
    double dt = b->run(b->ours, p, &bytes, &err);
    r.err = fmax(r.err, err);
    if (i >= WARMUP) t[i - WARMUP] = dt * 1e3, mb[i - WARMUP] = (double)bytes / 1e6;
  }
  for (int i = 0; i < 5; i++) { /* planning time: median of 5 re-plans of the calibrated graph */
    ds_plan *q = NULL;
    double t0 = bench_now_s();
    check(ds_graph_plan(&q, g, &po), ctx, "plan");
    tp[i] = (bench_now_s() - t0) * 1e3;
    ds_plan_destroy(q);
  }
  r.plan_ms = bench_median(tp, 5);
  ds_plan_info pi = {sizeof pi, 0, 0, 0, 0};
  check(ds_plan_get_info(p, &pi), ctx, "plan info");
  r.pred_ms = pi.makespan_s * 1e3;
  for (int32_t v = 0; v < (int32_t)pi.nodes; v++) {
    int32_t d = -1;
    (void)ds_plan_device(p, v, &d);
    r.on_cl += d == fg->cl;
  }
  ds_plan_destroy(p);
  r.ms = bench_median(t, REPS);
  r.mbytes = bench_median(mb, REPS);
  return r;
}

/* ---- StarPU ---- */

#ifdef DS_BENCH_HAVE_STARPU
static struct starpu_opencl_program sp_prog;

/* Starts StarPU with dmda (CPU only when with_opencl is 0: its workers then take every core)
 * in a fresh STARPU_HOME @p home, so its models calibrate in the warm-up runs as ours do, and
 * loads @p cl_source for the OpenCL codelets. Returns 0 when StarPU does not start. */
static int fg_starpu_start(int with_opencl, const char *cl_source, char *home, int *nopencl) {
  if (!mkdtemp(home)) return 0;
  setenv("STARPU_HOME", home, 1);
  setenv("STARPU_OPENCL_ON_CPUS", "1", 0); /* PoCL is a CPU-type OpenCL device */
  setenv("STARPU_SILENT", "1", 0);
  struct starpu_conf conf;
  starpu_conf_init(&conf);
  conf.sched_policy_name = "dmda";
  if (!with_opencl) conf.nopencl = 0;
  if (starpu_init(&conf) != 0) return 0;
  starpu_profiling_status_set(STARPU_PROFILING_ENABLE);
  *nopencl = (int)starpu_opencl_worker_get_count();
  if (*nopencl && starpu_opencl_load_opencl_from_string(cl_source, &sp_prog, NULL) != 0)
    *nopencl = 0;
  return 1;
}

static void fg_starpu_stop(const char *home, int nopencl) {
  if (nopencl) starpu_opencl_unload_opencl(&sp_prog);
  starpu_shutdown();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
  if (system(cmd) != 0) fprintf(stderr, "%s: could not remove %s\n", fg_name, home);
}

static uint64_t sp_bus_bytes(void) { /* reading resets the counters */
  uint64_t sum = 0;
  for (int b = 0; b < starpu_bus_get_count(); b++) {
    struct starpu_profiling_bus_info info;
    if (starpu_bus_get_profiling_info(b, &info) == 0) sum += (uint64_t)info.transferred_bytes;
  }
  return sum;
}
#endif

/* ---- the report ---- */

/* Every policy of ours with zero-copy buffers, then with copies forced ("_copy"), one row per
 * case and metric against StarPU dmda (CPU+OpenCL), plus HEFT vs StarPU on the CPU only and
 * HEFT vs our best single device. Returns the largest relative error seen (StarPU's too). */
static double fg_report(const struct fg_bench *b, int json) {
  struct result sp = {0, 0, 0, 0, 0, 0, 0}, sp_cpu_only = sp;
  int sp_opencl_workers = 0, unused = 0, hdr = 0;
  const char *anchor = "none (StarPU not built)";
  if (b->starpu) {
    sp = b->starpu(1, &sp_opencl_workers);
    sp_cpu_only = b->starpu(0, &unused);
    anchor = sp_opencl_workers ? "starpu-1.3 dmda cpu+ocl" : "starpu-1.3 dmda cpu-only";
    if (!sp.ok) anchor = "none (starpu_init failed)";
  }
  double worst = fmax(sp.err, sp_cpu_only.err);
  char case_name[64];
  for (int zc = 1; zc >= 0; zc--) {
    struct fg_graph fg = b->setup(b->ours, zc ? 0 : DS_BUFFER_NO_ZERO_COPY);
    struct {
      const char *name;
      int policy;
      int32_t dev;
      int plain;
    } pol[4] = {{"heft", DS_PLAN_HEFT, 0, 0}, {"heft_plain", DS_PLAN_HEFT, 0, 1},
                {"all_cpu", DS_PLAN_DEVICE, 0, 0},
                {"all_opencl", DS_PLAN_DEVICE, fg.cl, 0}};
    double heft_ms = 0, single_ms = INFINITY;
    for (int i = 0; i < 4; i++) {
      if (pol[i].dev < 0) continue; /* no OpenCL device */
      if (!zc && i == 2) continue;  /* all on the CPU moves nothing either way */
      struct result r = fg_measure(b, &fg, pol[i].policy, pol[i].dev, pol[i].plain);
      worst = fmax(worst, r.err);
      if (i == 0) heft_ms = r.ms;
      if (i >= 2) single_ms = fmin(single_ms, r.ms);
      snprintf(case_name, sizeof case_name, "%s%s", pol[i].name, zc ? "" : "_copy");
      bench_row row = {b->name, case_name, "makespan_ms", r.ms, anchor, sp.ms, 1.0, "lower"};
      bench_print(&row, json, &hdr);
      bench_row rb = {b->name, case_name, "MB_moved", r.mbytes, anchor, sp.mbytes, 1.0, "lower"};
      bench_print(&rb, json, &hdr);
      if (i == 0 && zc && sp_cpu_only.ok) {
        bench_row rc = {b->name, "heft_vs_starpu_cpu", "makespan_ms", r.ms,
                        "starpu-1.3 dmda cpu-only", sp_cpu_only.ms, 1.0, "lower"};
        bench_print(&rc, json, &hdr);
      }
      if (!json)
        printf("  %s: planned in %.3f ms, predicted makespan %.2f ms, %d of %d nodes on "
               "OpenCL, max rel. error %.2g\n",
               case_name, r.plan_ms, r.pred_ms, r.on_cl, b->nodes, r.err);
    }
    if (zc && isfinite(single_ms)) {
      bench_row rs = {b->name, "heft_vs_best_single", "makespan_ms", heft_ms,
                      "ours best single device", single_ms, 1.0, "lower"};
      bench_print(&rs, json, &hdr);
    }
    b->teardown(b->ours);
  }
  if (!json)
    printf("DAG: %d nodes (%dx%d tiles of %dx%d floats), medians of %d runs after %d warm-up "
           "runs; StarPU OpenCL workers: %d; max rel. error %.2g (StarPU %.2g)\n",
           b->nodes, NT, NT, TS, TS, REPS, WARMUP, sp_opencl_workers, worst,
           fmax(sp.err, sp_cpu_only.err));
  return worst;
}

#endif /* BENCH_FABRIC_GRAPH_COMMON_H */
