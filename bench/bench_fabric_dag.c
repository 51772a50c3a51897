/* Tiled GEMM DAG (C += A*B, NT x NT tiles of TS x TS floats, one node per (i, j, k)) across
 * the CPU and the first OpenCL device: makespan and bytes moved with our HEFT partitioner,
 * all-on-CPU and all-on-OpenCL, against StarPU 1.3's dmda scheduler on the same DAG with the
 * same tile kernels (a StarPU CPU codelet calling the same C function, an OpenCL codelet
 * running the same OpenCL C source), and StarPU dmda on the CPU cores only. Ours runs twice:
 * with zero-copy buffers (PoCL uses host bytes in place) and with DS_BUFFER_NO_ZERO_COPY
 * ("_copy" cases, which move bytes as StarPU does). "heft_plain" is HEFT without the
 * shared-core model and the single-device guard (fabric_plan_shared_cores=0,
 * fabric_plan_guard=0), as it was before them. A run is: reset C on the host, run the DAG, bring C back
 * to host memory. Medians of REPS runs after warm-up runs that calibrate both runtimes' models
 * (StarPU's in a temporary STARPU_HOME). Options: --json, --tiles N, --tile-size N, --reps N. */
#define _GNU_SOURCE /* mkdtemp, setenv */
#include "bench_common.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

#ifdef DS_BENCH_HAVE_STARPU
#define CL_TARGET_OPENCL_VERSION 120
#include <starpu.h>
#endif

static int NT = 4, TS = 128, REPS = 5;
enum { WARMUP = 4 };

/* ---- the tile kernel both runtimes run ---- */

static void tile_gemm(const float *restrict A, const float *restrict B, float *restrict C, int n) {
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++) {
      float a = A[i * n + k];
      for (int j = 0; j < n; j++) C[i * n + j] += a * B[k * n + j];
    }
}

static const char *tile_gemm_cl =
    "__kernel void tile_gemm(__global const float *a, __global const float *b,\n"
    "                        __global float *c, int n) {\n"
    "  int i = get_global_id(1), j = get_global_id(0);\n"
    "  float acc = c[i * n + j];\n"
    "  for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];\n"
    "  c[i * n + j] = acc;\n"
    "}\n";

/* ---- inputs and the reference result ---- */

static float *mat_a, *mat_b, *mat_ref; /* (NT*TS)^2, row-major */

static float *tile_of(const float *m, int ti, int tj, float *out) {
  int N = NT * TS;
  for (int i = 0; i < TS; i++)
    memcpy(&out[i * TS], &m[(size_t)(ti * TS + i) * (size_t)N + (size_t)(tj * TS)],
           (size_t)TS * sizeof(float));
  return out;
}

static void make_inputs(void) {
  size_t N = (size_t)NT * (size_t)TS;
  mat_a = malloc(N * N * sizeof(float));
  mat_b = malloc(N * N * sizeof(float));
  mat_ref = calloc(N * N, sizeof(float));
  if (!mat_a || !mat_b || !mat_ref) exit(1);
  unsigned s = 7;
  for (size_t i = 0; i < N * N; i++) {
    s = s * 1103515245u + 12345u;
    mat_a[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
    s = s * 1103515245u + 12345u;
    mat_b[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
  for (size_t i = 0; i < N; i++)
    for (size_t k = 0; k < N; k++)
      for (size_t j = 0; j < N; j++) mat_ref[i * N + j] += mat_a[i * N + k] * mat_b[k * N + j];
}

/* Largest |C - ref| relative to max |ref| over a tile. */
static double tile_error(const float *c, int ti, int tj) {
  int N = NT * TS;
  double err = 0, mag = 1e-30;
  for (int i = 0; i < TS; i++)
    for (int j = 0; j < TS; j++) {
      double r = mat_ref[(size_t)(ti * TS + i) * (size_t)N + (size_t)(tj * TS + j)];
      err = fmax(err, fabs(c[i * TS + j] - r));
      mag = fmax(mag, fabs(r));
    }
  return err / mag;
}

/* ---- ours ---- */

struct ours {
  ds_context *ctx;
  ds_kernel *k;
  ds_graph *g;
  ds_buffer **a, **b, **c;
  int32_t cl;
};

static ds_status ours_cpu(void *const *bufs, const size_t *sizes, size_t n, const void *args,
                          size_t len) {
  (void)sizes, (void)n, (void)args, (void)len;
  tile_gemm(bufs[0], bufs[1], bufs[2], TS);
  return DS_OK;
}

static void check(ds_status st, ds_context *ctx, const char *what) {
  if (st == DS_OK) return;
  fprintf(stderr, "bench_fabric_dag: %s: %s\n", what, ds_context_last_error(ctx));
  exit(1);
}

static ds_buffer *ours_tile(struct ours *o, const float *m, int ti, int tj, uint32_t flags) {
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.flags = flags;
  ds_buffer *b = NULL;
  check(ds_buffer_create(&b, o->ctx, (size_t)TS * (size_t)TS * sizeof(float), &bo), o->ctx,
        "buffer");
  float *p = NULL;
  check(ds_buffer_acquire((void **)&p, b, 0, DS_ACCESS_WRITE), o->ctx, "acquire");
  if (m)
    tile_of(m, ti, tj, p);
  else
    memset(p, 0, (size_t)TS * (size_t)TS * sizeof(float));
  check(ds_buffer_release(b, 0), o->ctx, "release");
  return b;
}

static void ours_setup(struct ours *o, uint32_t flags) {
  memset(o, 0, sizeof *o);
  o->ctx = bench_context("bench_fabric_dag", NULL, 0);
  o->cl = -1;
  (void)ds_fabric_device_find(&o->cl, o->ctx, DS_FABRIC_DEVICE_OPENCL, 0);
  static const uint32_t argsz[] = {sizeof(int32_t)};
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "bench_tile_gemm";
  ko.cpu = ours_cpu;
  ko.opencl_source = tile_gemm_cl;
  ko.opencl_name = "tile_gemm";
  ko.opencl_arg_sizes = argsz;
  ko.opencl_nargs = 1;
  check(ds_kernel_create(&o->k, o->ctx, &ko), o->ctx, "kernel");
  check(ds_graph_create(&o->g, o->ctx), o->ctx, "graph");
  size_t nt2 = (size_t)NT * (size_t)NT;
  o->a = calloc(nt2, sizeof *o->a), o->b = calloc(nt2, sizeof *o->b);
  o->c = calloc(nt2, sizeof *o->c);
  if (!o->a || !o->b || !o->c) exit(1);
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++) {
      o->a[i * NT + j] = ours_tile(o, mat_a, i, j, flags);
      o->b[i * NT + j] = ours_tile(o, mat_b, i, j, flags);
      o->c[i * NT + j] = ours_tile(o, NULL, i, j, flags);
    }
  int32_t ts = TS;
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++)
      for (int k = 0; k < NT; k++) {
        ds_graph_access acc[3] = {{o->a[i * NT + k], DS_ACCESS_READ},
                                  {o->b[k * NT + j], DS_ACCESS_READ},
                                  {o->c[i * NT + j], DS_ACCESS_RW}};
        ds_node_options no = DS_NODE_OPTIONS_INIT;
        no.args = &ts;
        no.args_len = sizeof ts;
        no.global[0] = (uint64_t)TS;
        no.global[1] = (uint64_t)TS;
        check(ds_graph_add(NULL, o->g, o->k, acc, 3, &no), o->ctx, "add");
      }
}

/* One run: zero C on the host, run, read C back on the host. Returns seconds; *bytes moved;
 * *err the largest relative error. */
static double ours_run(struct ours *o, const ds_plan *p, uint64_t *bytes, double *err) {
  size_t nt2 = (size_t)NT * (size_t)NT, tb = (size_t)TS * (size_t)TS * sizeof(float);
  for (size_t t = 0; t < nt2; t++) {
    void *h = NULL;
    check(ds_buffer_acquire(&h, o->c[t], 0, DS_ACCESS_WRITE), o->ctx, "acquire");
    memset(h, 0, tb);
    check(ds_buffer_release(o->c[t], 0), o->ctx, "release");
  }
  ds_graph_run_info ri = {sizeof ri, 0, 0};
  double t0 = bench_now_s();
  check(ds_graph_run(o->g, p, &ri), o->ctx, "run");
  *err = 0;
  uint64_t before_back = ri.bytes_moved;
  ds_stats *s0 = NULL;
  double b0 = 0, b1 = 0;
  check(ds_stats_snapshot(&s0, o->ctx), o->ctx, "stats");
  (void)ds_stats_find(&b0, s0, "fabric.bytes_moved");
  ds_stats_free(s0);
  for (size_t t = 0; t < nt2; t++) {
    float *h = NULL;
    check(ds_buffer_acquire((void **)&h, o->c[t], 0, DS_ACCESS_READ), o->ctx, "acquire");
    check(ds_buffer_release(o->c[t], 0), o->ctx, "release");
  }
  double dt = bench_now_s() - t0;
  check(ds_stats_snapshot(&s0, o->ctx), o->ctx, "stats");
  (void)ds_stats_find(&b1, s0, "fabric.bytes_moved");
  ds_stats_free(s0);
  *bytes = before_back + (uint64_t)(b1 - b0);
  for (size_t t = 0; t < nt2; t++) {
    float *h = NULL;
    check(ds_buffer_acquire((void **)&h, o->c[t], 0, DS_ACCESS_READ), o->ctx, "acquire");
    *err = fmax(*err, tile_error(h, (int)(t / (size_t)NT), (int)(t % (size_t)NT)));
    check(ds_buffer_release(o->c[t], 0), o->ctx, "release");
  }
  return dt;
}

static void ours_free(struct ours *o) {
  ds_graph_destroy(o->g);
  ds_kernel_destroy(o->k);
  for (int t = 0; t < NT * NT; t++) {
    ds_buffer_destroy(o->a[t]);
    ds_buffer_destroy(o->b[t]);
    ds_buffer_destroy(o->c[t]);
  }
  free(o->a), free(o->b), free(o->c);
  ds_context_destroy(o->ctx);
}

struct result {
  double ms, mbytes, err, pred_ms, plan_ms;
  int ok, on_cl; /* on_cl: nodes the last plan put on the OpenCL device */
};

static struct result ours_measure(struct ours *o, int policy, int32_t device, int plain) {
  struct result r = {0, 0, 0, 0, 0, 1, 0};
  check(ds_context_set_param(o->ctx, DS_PARAM_FABRIC_PLAN_SHARED_CORES, !plain), o->ctx, "param");
  check(ds_context_set_param(o->ctx, DS_PARAM_FABRIC_PLAN_GUARD, !plain), o->ctx, "param");
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.policy = policy;
  po.device = device;
  double t[64], mb[64];
  ds_plan *p = NULL;
  for (int i = 0; i < WARMUP + REPS; i++) {
    if (!p || (policy == DS_PLAN_HEFT && i < WARMUP)) { /* HEFT replans while calibrating */
      ds_plan_destroy(p);
      check(ds_graph_plan(&p, o->g, &po), o->ctx, "plan");
    }
    uint64_t bytes = 0;
    double err = 0, dt = ours_run(o, p, &bytes, &err);
    r.err = fmax(r.err, err);
    if (i >= WARMUP) t[i - WARMUP] = dt * 1e3, mb[i - WARMUP] = (double)bytes / 1e6;
  }
  double tp[5]; /* planning time: median of 5 re-plans of the calibrated graph */
  for (int i = 0; i < 5; i++) {
    ds_plan *q = NULL;
    double t0 = bench_now_s();
    check(ds_graph_plan(&q, o->g, &po), o->ctx, "plan");
    tp[i] = (bench_now_s() - t0) * 1e3;
    ds_plan_destroy(q);
  }
  r.plan_ms = bench_median(tp, 5);
  ds_plan_info pi = {sizeof pi, 0, 0, 0, 0};
  check(ds_plan_get_info(p, &pi), o->ctx, "plan info");
  r.pred_ms = pi.makespan_s * 1e3;
  for (int32_t v = 0; v < (int32_t)pi.nodes; v++) {
    int32_t d = -1;
    (void)ds_plan_device(p, v, &d);
    r.on_cl += d == o->cl;
  }
  ds_plan_destroy(p);
  r.ms = bench_median(t, REPS);
  r.mbytes = bench_median(mb, REPS);
  return r;
}

/* ---- StarPU ---- */

#ifdef DS_BENCH_HAVE_STARPU
static struct starpu_opencl_program sp_prog;

static void sp_cpu(void *descr[], void *arg) {
  (void)arg;
  tile_gemm((const float *)STARPU_MATRIX_GET_PTR(descr[0]),
            (const float *)STARPU_MATRIX_GET_PTR(descr[1]), (float *)STARPU_MATRIX_GET_PTR(descr[2]),
            TS);
}

static void sp_opencl(void *descr[], void *arg) {
  (void)arg;
  cl_mem m[3];
  for (int i = 0; i < 3; i++) m[i] = (cl_mem)STARPU_MATRIX_GET_DEV_HANDLE(descr[i]);
  int devid = starpu_worker_get_devid(starpu_worker_get_id());
  cl_kernel k;
  cl_command_queue q;
  if (starpu_opencl_load_kernel(&k, &q, &sp_prog, "tile_gemm", devid) != CL_SUCCESS) abort();
  cl_int n = TS, e = 0;
  for (cl_uint i = 0; i < 3; i++) e |= clSetKernelArg(k, i, sizeof m[i], &m[i]);
  e |= clSetKernelArg(k, 3, sizeof n, &n);
  size_t g[2] = {(size_t)TS, (size_t)TS};
  e |= clEnqueueNDRangeKernel(q, k, 2, NULL, g, NULL, 0, NULL, NULL);
  e |= clFinish(q);
  if (e != CL_SUCCESS) abort();
  starpu_opencl_release_kernel(k);
}

/* One model and codelet per StarPU session (CPU+OpenCL, then CPU only). */
static struct starpu_perfmodel sp_model[2] = {
    {.type = STARPU_HISTORY_BASED, .symbol = "ds_bench_tile_gemm_ocl"},
    {.type = STARPU_HISTORY_BASED, .symbol = "ds_bench_tile_gemm_cpu"}};
static struct starpu_codelet sp_cl[2] = {{.cpu_funcs = {sp_cpu},
                                          .opencl_funcs = {sp_opencl},
                                          .nbuffers = 3,
                                          .modes = {STARPU_R, STARPU_R, STARPU_RW},
                                          .model = &sp_model[0]},
                                         {.cpu_funcs = {sp_cpu},
                                          .nbuffers = 3,
                                          .modes = {STARPU_R, STARPU_R, STARPU_RW},
                                          .model = &sp_model[1]}};

static uint64_t sp_bus_bytes(void) { /* reading resets the counters */
  uint64_t sum = 0;
  for (int b = 0; b < starpu_bus_get_count(); b++) {
    struct starpu_profiling_bus_info info;
    if (starpu_bus_get_profiling_info(b, &info) == 0) sum += (uint64_t)info.transferred_bytes;
  }
  return sum;
}

/* with_opencl 0: StarPU on the CPU cores only (its workers take every core). */
static struct result starpu_measure(int with_opencl, int *nopencl) {
  struct result r = {0, 0, 0, 0, 0, 0, 0};
  char home[] = "/tmp/ds_bench_starpu_XXXXXX";
  if (!mkdtemp(home)) return r;
  setenv("STARPU_HOME", home, 1);
  setenv("STARPU_OPENCL_ON_CPUS", "1", 0); /* PoCL is a CPU-type OpenCL device */
  setenv("STARPU_SILENT", "1", 0);
  struct starpu_conf conf;
  starpu_conf_init(&conf);
  conf.sched_policy_name = "dmda";
  if (!with_opencl) conf.nopencl = 0;
  if (starpu_init(&conf) != 0) return r;
  starpu_profiling_status_set(STARPU_PROFILING_ENABLE);
  *nopencl = (int)starpu_opencl_worker_get_count();
  if (*nopencl && starpu_opencl_load_opencl_from_string(tile_gemm_cl, &sp_prog, NULL) != 0)
    *nopencl = 0;
  struct starpu_codelet *cl = &sp_cl[with_opencl ? 0 : 1];
  int nt2 = NT * NT;
  size_t tb = (size_t)TS * (size_t)TS * sizeof(float);
  float **a = calloc((size_t)nt2, sizeof *a), **b = calloc((size_t)nt2, sizeof *b),
        **c = calloc((size_t)nt2, sizeof *c);
  starpu_data_handle_t *ha = calloc((size_t)nt2, sizeof *ha), *hb = calloc((size_t)nt2, sizeof *hb),
                       *hc = calloc((size_t)nt2, sizeof *hc);
  for (int t = 0; t < nt2; t++) {
    starpu_malloc((void **)&a[t], tb), starpu_malloc((void **)&b[t], tb);
    starpu_malloc((void **)&c[t], tb);
    tile_of(mat_a, t / NT, t % NT, a[t]);
    tile_of(mat_b, t / NT, t % NT, b[t]);
    starpu_matrix_data_register(&ha[t], STARPU_MAIN_RAM, (uintptr_t)a[t], (uint32_t)TS,
                                (uint32_t)TS, (uint32_t)TS, sizeof(float));
    starpu_matrix_data_register(&hb[t], STARPU_MAIN_RAM, (uintptr_t)b[t], (uint32_t)TS,
                                (uint32_t)TS, (uint32_t)TS, sizeof(float));
    starpu_matrix_data_register(&hc[t], STARPU_MAIN_RAM, (uintptr_t)c[t], (uint32_t)TS,
                                (uint32_t)TS, (uint32_t)TS, sizeof(float));
  }
  double t_ms[64], mb[64];
  for (int rep = 0; rep < WARMUP + REPS; rep++) {
    for (int t = 0; t < nt2; t++) {
      starpu_data_acquire(hc[t], STARPU_W);
      memset(c[t], 0, tb);
      starpu_data_release(hc[t]);
    }
    (void)sp_bus_bytes();
    double t0 = bench_now_s();
    for (int i = 0; i < NT; i++)
      for (int j = 0; j < NT; j++)
        for (int k = 0; k < NT; k++)
          starpu_task_insert(cl, STARPU_R, ha[i * NT + k], STARPU_R, hb[k * NT + j],
                             STARPU_RW, hc[i * NT + j], 0);
    starpu_task_wait_for_all();
    for (int t = 0; t < nt2; t++) { /* back to host memory */
      starpu_data_acquire(hc[t], STARPU_R);
      starpu_data_release(hc[t]);
    }
    double dt = bench_now_s() - t0;
    uint64_t bytes = sp_bus_bytes();
    for (int t = 0; t < nt2; t++) {
      starpu_data_acquire(hc[t], STARPU_R);
      r.err = fmax(r.err, tile_error(c[t], t / NT, t % NT));
      starpu_data_release(hc[t]);
    }
    if (rep >= WARMUP) t_ms[rep - WARMUP] = dt * 1e3, mb[rep - WARMUP] = (double)bytes / 1e6;
  }
  for (int t = 0; t < nt2; t++) {
    starpu_data_unregister(ha[t]), starpu_data_unregister(hb[t]), starpu_data_unregister(hc[t]);
    starpu_free(a[t]), starpu_free(b[t]), starpu_free(c[t]);
  }
  free(a), free(b), free(c), free(ha), free(hb), free(hc);
  if (*nopencl) starpu_opencl_unload_opencl(&sp_prog);
  r.on_cl = -1; /* StarPU decides per task at run time */
  starpu_shutdown();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
  if (system(cmd) != 0) fprintf(stderr, "bench_fabric_dag: could not remove %s\n", home);
  r.ms = bench_median(t_ms, REPS);
  r.mbytes = bench_median(mb, REPS);
  r.ok = 1;
  return r;
}
#endif

static void args(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--tiles")) NT = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tile-size")) TS = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps")) REPS = atoi(argv[++i]);
  }
  if (NT < 1 || NT > 16 || TS < 8 || TS > 1024 || REPS < 1 || REPS > 60) {
    fprintf(stderr, "bench_fabric_dag: --tiles 1..16, --tile-size 8..1024, --reps 1..60\n");
    exit(2);
  }
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), hdr = 0;
  args(argc, argv);
  make_inputs();
  struct result sp = {0, 0, 0, 0, 0, 0, 0}, sp_cpu_only = {0, 0, 0, 0, 0, 0, 0};
  int sp_opencl_workers = 0, unused = 0;
  const char *anchor = "none (StarPU not built)";
#ifdef DS_BENCH_HAVE_STARPU
  sp = starpu_measure(1, &sp_opencl_workers);
  sp_cpu_only = starpu_measure(0, &unused);
  anchor = sp_opencl_workers ? "starpu-1.3 dmda cpu+ocl" : "starpu-1.3 dmda cpu-only";
  if (!sp.ok) anchor = "none (starpu_init failed)";
#endif
  (void)unused;
  struct ours o;
  char case_name[64];
  for (int zc = 1; zc >= 0; zc--) {
    ours_setup(&o, zc ? 0 : DS_BUFFER_NO_ZERO_COPY);
    struct {
      const char *name;
      int policy;
      int32_t dev;
      int plain;
    } pol[4] = {{"heft", DS_PLAN_HEFT, 0, 0}, {"heft_plain", DS_PLAN_HEFT, 0, 1},
                {"all_cpu", DS_PLAN_DEVICE, 0, 0}, {"all_opencl", DS_PLAN_DEVICE, o.cl, 0}};
    double heft_ms = 0, single_ms = INFINITY;
    for (int i = 0; i < 4; i++) {
      if (pol[i].dev < 0) continue; /* no OpenCL device */
      if (!zc && i == 2) continue; /* all on the CPU moves nothing either way */
      struct result r = ours_measure(&o, pol[i].policy, pol[i].dev, pol[i].plain);
      if (i == 0) heft_ms = r.ms;
      if (i >= 2) single_ms = fmin(single_ms, r.ms);
      snprintf(case_name, sizeof case_name, "%s%s", pol[i].name, zc ? "" : "_copy");
      bench_row row = {"fabric_dag", case_name, "makespan_ms", r.ms, anchor, sp.ms, 1.0, "lower"};
      bench_print(&row, json, &hdr);
      bench_row rb = {"fabric_dag", case_name, "MB_moved", r.mbytes, anchor, sp.mbytes, 1.0,
                      "lower"};
      bench_print(&rb, json, &hdr);
      if (i == 0 && zc && sp_cpu_only.ok) {
        bench_row rc = {"fabric_dag", "heft_vs_starpu_cpu", "makespan_ms", r.ms,
                        "starpu-1.3 dmda cpu-only", sp_cpu_only.ms, 1.0, "lower"};
        bench_print(&rc, json, &hdr);
      }
      if (!json)
        printf("  %s: planned in %.3f ms, predicted makespan %.2f ms, %d of %d nodes on "
               "OpenCL, max rel. error %.2g (StarPU %.2g)\n",
               case_name, r.plan_ms, r.pred_ms, r.on_cl, NT * NT * NT, r.err, sp.err);
    }
    if (zc && isfinite(single_ms)) {
      bench_row rs = {"fabric_dag", "heft_vs_best_single", "makespan_ms", heft_ms,
                      "ours best single device", single_ms, 1.0, "lower"};
      bench_print(&rs, json, &hdr);
    }
    ours_free(&o);
  }
  if (!json)
    printf("DAG: %d nodes (%dx%d tiles of %dx%d floats), medians of %d runs after %d warm-up "
           "runs; StarPU OpenCL workers: %d\n",
           NT * NT * NT, NT, NT, TS, TS, REPS, WARMUP, sp_opencl_workers);
  free(mat_a), free(mat_b), free(mat_ref);
  return 0;
}
