/* Tiled Cholesky DAG (A = L L^T, lower, NT x NT tiles of TS x TS floats; per step k one POTRF,
 * TRSMs below it, then SYRK/GEMM updates of the trailing matrix) across the CPU and the first
 * OpenCL device, the companion of bench_fabric_dag's tiled GEMM: a DAG whose critical path is
 * long and whose kernels differ, so placement matters more. Makespan and bytes moved with our
 * HEFT plan, plain HEFT (no shared-core model, no guard), all-on-CPU and all-on-OpenCL, against
 * StarPU 1.3 dmda with the same four tile kernels (CPU codelets calling the same C functions,
 * OpenCL codelets running the same OpenCL C source) and StarPU on the CPU only. The result of
 * every run is checked against an unblocked double-precision factorisation. Our kernels are
 * small portable loops, not BLAS: both runtimes run the same ones, which is what is compared.
 * Options: --json, --tiles N, --tile-size N, --reps N. */
#define _GNU_SOURCE /* mkdtemp, setenv */
#include "bench_fabric_graph_common.h"

enum { NKERN = 4 };
enum { POTRF = 0, TRSM = 1, SYRK = 2, GEMM = 3 };

/* ---- the tile kernels both runtimes run (row-major n x n tiles) ---- */

static void k_potrf(float *a, int n) { /* a := L with a = L L^T; upper part zeroed */
  for (int j = 0; j < n; j++) {
    float s = a[j * n + j];
    for (int k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];
    float d = sqrtf(s);
    a[j * n + j] = d;
    for (int i = j + 1; i < n; i++) {
      float t = a[i * n + j];
      for (int k = 0; k < j; k++) t -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = t / d;
      a[j * n + i] = 0;
    }
  }
}

static void k_trsm(const float *l, float *b, int n) { /* b := b L^-T */
  for (int r = 0; r < n; r++)
    for (int j = 0; j < n; j++) {
      float t = b[r * n + j];
      for (int k = 0; k < j; k++) t -= b[r * n + k] * l[j * n + k];
      b[r * n + j] = t / l[j * n + j];
    }
}

static void k_gemm(const float *a, const float *b, float *c, int n) { /* c -= a b^T */
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      float t = 0;
      for (int k = 0; k < n; k++) t += a[i * n + k] * b[j * n + k];
      c[i * n + j] -= t;
    }
}

static void k_syrk(const float *a, float *c, int n) { k_gemm(a, a, c, n); } /* c -= a a^T */

static const char *chol_cl =
    "__kernel void potrf(__global float *a, int n) {\n" /* one work-item: sequential */
    "  for (int j = 0; j < n; j++) {\n"
    "    float s = a[j * n + j];\n"
    "    for (int k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];\n"
    "    float d = sqrt(s);\n"
    "    a[j * n + j] = d;\n"
    "    for (int i = j + 1; i < n; i++) {\n"
    "      float t = a[i * n + j];\n"
    "      for (int k = 0; k < j; k++) t -= a[i * n + k] * a[j * n + k];\n"
    "      a[i * n + j] = t / d;\n"
    "      a[j * n + i] = 0;\n"
    "    }\n"
    "  }\n"
    "}\n"
    "__kernel void trsm(__global const float *l, __global float *b, int n) {\n" /* a row each */
    "  int r = get_global_id(0);\n"
    "  for (int j = 0; j < n; j++) {\n"
    "    float t = b[r * n + j];\n"
    "    for (int k = 0; k < j; k++) t -= b[r * n + k] * l[j * n + k];\n"
    "    b[r * n + j] = t / l[j * n + j];\n"
    "  }\n"
    "}\n"
    "__kernel void syrk(__global const float *a, __global float *c, int n) {\n"
    "  int i = get_global_id(1), j = get_global_id(0);\n"
    "  float t = 0;\n"
    "  for (int k = 0; k < n; k++) t += a[i * n + k] * a[j * n + k];\n"
    "  c[i * n + j] -= t;\n"
    "}\n"
    "__kernel void gemm(__global const float *a, __global const float *b, __global float *c,\n"
    "                   int n) {\n"
    "  int i = get_global_id(1), j = get_global_id(0);\n"
    "  float t = 0;\n"
    "  for (int k = 0; k < n; k++) t += a[i * n + k] * b[j * n + k];\n"
    "  c[i * n + j] -= t;\n"
    "}\n";
static const char *const cl_names[NKERN] = {"potrf", "trsm", "syrk", "gemm"};

/* ---- the input and the reference factor ---- */

static float *mat_a;    /* (NT*TS)^2, row-major, symmetric positive definite */
static double *mat_ref; /* its Cholesky factor, computed unblocked in double */

static void tile_of(const float *m, int ti, int tj, float *out) {
  size_t N = (size_t)NT * (size_t)TS;
  for (int i = 0; i < TS; i++)
    memcpy(&out[i * TS], &m[((size_t)ti * (size_t)TS + (size_t)i) * N + (size_t)tj * (size_t)TS],
           (size_t)TS * sizeof(float));
}

static void make_inputs(void) {
  size_t N = (size_t)NT * (size_t)TS;
  float *m = malloc(N * N * sizeof *m);
  mat_a = malloc(N * N * sizeof *mat_a);
  mat_ref = malloc(N * N * sizeof *mat_ref);
  if (!m || !mat_a || !mat_ref) exit(1);
  unsigned s = 11;
  for (size_t i = 0; i < N * N; i++) {
    s = s * 1103515245u + 12345u;
    m[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
  for (size_t i = 0; i < N; i++) /* A = (M + M^T)/2 + N I: diagonally dominant, SPD */
    for (size_t j = 0; j < N; j++)
      mat_a[i * N + j] = 0.5f * (m[i * N + j] + m[j * N + i]) + (i == j ? (float)N : 0.0f);
  free(m);
  for (size_t i = 0; i < N * N; i++) mat_ref[i] = mat_a[i];
  for (size_t j = 0; j < N; j++) {
    double d = mat_ref[j * N + j];
    for (size_t k = 0; k < j; k++) d -= mat_ref[j * N + k] * mat_ref[j * N + k];
    d = sqrt(d);
    mat_ref[j * N + j] = d;
    for (size_t i = j + 1; i < N; i++) {
      double t = mat_ref[i * N + j];
      for (size_t k = 0; k < j; k++) t -= mat_ref[i * N + k] * mat_ref[j * N + k];
      mat_ref[i * N + j] = t / d;
    }
  }
}

/* Largest |L - ref| over the lower part of tile (ti, tj), relative to max |ref| there. */
static double tile_error(const float *t, int ti, int tj) {
  size_t N = (size_t)NT * (size_t)TS;
  double err = 0, mag = 1e-30;
  for (int i = 0; i < TS; i++)
    for (int j = 0; j < TS; j++) {
      size_t gi = (size_t)ti * (size_t)TS + (size_t)i, gj = (size_t)tj * (size_t)TS + (size_t)j;
      if (gj > gi) continue;
      err = fmax(err, fabs(t[i * TS + j] - mat_ref[gi * N + gj]));
      mag = fmax(mag, fabs(mat_ref[gi * N + gj]));
    }
  return err / mag;
}

/* The DAG in submission order: node kind and its tiles (a, b read; c written). */
struct task {
  int kind, a, b, c;
};
static struct task *tasks;
static int ntasks;

static int tix(int i, int j) { return i * NT + j; } /* lower tiles only are used */

static void make_dag(void) {
  tasks = calloc((size_t)NT * (size_t)NT * (size_t)NT, sizeof *tasks);
  if (!tasks) exit(1);
  for (int k = 0; k < NT; k++) {
    tasks[ntasks++] = (struct task){POTRF, -1, -1, tix(k, k)};
    for (int i = k + 1; i < NT; i++) tasks[ntasks++] = (struct task){TRSM, tix(k, k), -1, tix(i, k)};
    for (int i = k + 1; i < NT; i++) {
      tasks[ntasks++] = (struct task){SYRK, tix(i, k), -1, tix(i, i)};
      for (int j = k + 1; j < i; j++)
        tasks[ntasks++] = (struct task){GEMM, tix(i, k), tix(j, k), tix(i, j)};
    }
  }
}

/* ---- ours ---- */

static ds_status cpu_potrf(void *const *b, const size_t *s, size_t n, const void *a, size_t l) {
  (void)s, (void)n, (void)a, (void)l;
  k_potrf(b[0], TS);
  return DS_OK;
}
static ds_status cpu_trsm(void *const *b, const size_t *s, size_t n, const void *a, size_t l) {
  (void)s, (void)n, (void)a, (void)l;
  k_trsm(b[0], b[1], TS);
  return DS_OK;
}
static ds_status cpu_syrk(void *const *b, const size_t *s, size_t n, const void *a, size_t l) {
  (void)s, (void)n, (void)a, (void)l;
  k_syrk(b[0], b[1], TS);
  return DS_OK;
}
static ds_status cpu_gemm(void *const *b, const size_t *s, size_t n, const void *a, size_t l) {
  (void)s, (void)n, (void)a, (void)l;
  k_gemm(b[0], b[1], b[2], TS);
  return DS_OK;
}

struct ours {
  ds_context *ctx;
  ds_kernel *k[NKERN];
  ds_graph *g;
  ds_buffer **t; /* NT*NT tiles; the upper ones are never used */
  int32_t cl;
};

static struct fg_graph ours_setup(void *vo, uint32_t flags) {
  struct ours *o = vo;
  memset(o, 0, sizeof *o);
  o->ctx = bench_context("bench_fabric_cholesky", NULL, 0);
  o->cl = -1;
  (void)ds_fabric_device_find(&o->cl, o->ctx, DS_FABRIC_DEVICE_OPENCL, 0);
  static const uint32_t argsz[] = {sizeof(int32_t)};
  static const ds_kernel_cpu_fn cpu_fns[NKERN] = {cpu_potrf, cpu_trsm, cpu_syrk, cpu_gemm};
  static const char *const names[NKERN] = {"bench_chol_potrf", "bench_chol_trsm",
                                           "bench_chol_syrk", "bench_chol_gemm"};
  for (int i = 0; i < NKERN; i++) {
    ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
    ko.name = names[i];
    ko.cpu = cpu_fns[i];
    ko.opencl_source = chol_cl;
    ko.opencl_name = cl_names[i];
    ko.opencl_arg_sizes = argsz;
    ko.opencl_nargs = 1;
    check(ds_kernel_create(&o->k[i], o->ctx, &ko), o->ctx, "kernel");
  }
  check(ds_graph_create(&o->g, o->ctx), o->ctx, "graph");
  o->t = calloc((size_t)NT * (size_t)NT, sizeof *o->t);
  if (!o->t) exit(1);
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.flags = flags;
  for (int i = 0; i < NT; i++)
    for (int j = 0; j <= i; j++)
      check(ds_buffer_create(&o->t[tix(i, j)], o->ctx, (size_t)TS * (size_t)TS * sizeof(float),
                             &bo),
            o->ctx, "buffer");
  for (int v = 0; v < ntasks; v++) {
    const struct task *t = &tasks[v];
    ds_graph_access acc[3];
    size_t na = 0;
    if (t->a >= 0) acc[na++] = (ds_graph_access){o->t[t->a], DS_ACCESS_READ};
    if (t->b >= 0) acc[na++] = (ds_graph_access){o->t[t->b], DS_ACCESS_READ};
    acc[na++] = (ds_graph_access){o->t[t->c], DS_ACCESS_RW};
    int32_t ts = TS;
    ds_node_options no = DS_NODE_OPTIONS_INIT;
    no.args = &ts;
    no.args_len = sizeof ts;
    no.global[0] = t->kind == POTRF ? 1 : (uint64_t)TS;
    no.global[1] = t->kind >= SYRK ? (uint64_t)TS : 0;
    check(ds_graph_add(NULL, o->g, o->k[t->kind], acc, na, &no), o->ctx, "add");
  }
  return (struct fg_graph){o->ctx, o->g, o->cl};
}

/* One run: load A into the tiles on the host, run, bring L back to host memory (timed from the
 * run's start). Returns seconds; *bytes moved; *err the largest relative error. */
static double ours_run(void *vo, const ds_plan *p, uint64_t *bytes, double *err) {
  struct ours *o = vo;
  for (int i = 0; i < NT; i++)
    for (int j = 0; j <= i; j++) {
      float *h = NULL;
      check(ds_buffer_acquire((void **)&h, o->t[tix(i, j)], 0, DS_ACCESS_WRITE), o->ctx, "acq");
      tile_of(mat_a, i, j, h);
      check(ds_buffer_release(o->t[tix(i, j)], 0), o->ctx, "release");
    }
  ds_graph_run_info ri = {sizeof ri, 0, 0};
  double b0 = fg_bytes_moved(o->ctx);
  double t0 = bench_now_s();
  check(ds_graph_run(o->g, p, &ri), o->ctx, "run");
  *err = 0;
  for (int pass = 0; pass < 2; pass++) /* pass 0 brings L home (timed), pass 1 checks it */
    for (int i = 0; i < NT; i++)
      for (int j = 0; j <= i; j++) {
        float *h = NULL;
        check(ds_buffer_acquire((void **)&h, o->t[tix(i, j)], 0, DS_ACCESS_READ), o->ctx, "acq");
        if (pass) *err = fmax(*err, tile_error(h, i, j));
        check(ds_buffer_release(o->t[tix(i, j)], 0), o->ctx, "release");
      }
  double dt = bench_now_s() - t0; /* the check pass moves nothing and takes microseconds */
  *bytes = (uint64_t)(fg_bytes_moved(o->ctx) - b0);
  return dt;
}

static void ours_free(void *vo) {
  struct ours *o = vo;
  ds_graph_destroy(o->g);
  for (int i = 0; i < NKERN; i++) ds_kernel_destroy(o->k[i]);
  for (int t = 0; t < NT * NT; t++) ds_buffer_destroy(o->t[t]);
  free(o->t);
  ds_context_destroy(o->ctx);
}

/* ---- StarPU ---- */

#ifdef DS_BENCH_HAVE_STARPU
static void sp_cpu(void *descr[], void *arg) {
  int kind = (int)(intptr_t)arg, nb = kind == POTRF ? 1 : kind == GEMM ? 3 : 2;
  float *m[3] = {NULL, NULL, NULL};
  for (int i = 0; i < nb; i++) m[i] = (float *)STARPU_MATRIX_GET_PTR(descr[i]);
  switch (kind) {
  case POTRF: k_potrf(m[0], TS); break;
  case TRSM: k_trsm(m[0], m[1], TS); break;
  case SYRK: k_syrk(m[0], m[1], TS); break;
  default: k_gemm(m[0], m[1], m[2], TS); break;
  }
}

static void sp_opencl(void *descr[], void *arg) {
  int kind = (int)(intptr_t)arg, nb = kind == POTRF ? 1 : kind == GEMM ? 3 : 2;
  cl_mem m[3];
  for (int i = 0; i < nb; i++) m[i] = (cl_mem)STARPU_MATRIX_GET_DEV_HANDLE(descr[i]);
  int devid = starpu_worker_get_devid(starpu_worker_get_id());
  cl_kernel k;
  cl_command_queue q;
  if (starpu_opencl_load_kernel(&k, &q, &sp_prog, cl_names[kind], devid) != CL_SUCCESS) abort();
  cl_int n = TS, e = 0;
  for (cl_uint i = 0; i < (cl_uint)nb; i++) e |= clSetKernelArg(k, i, sizeof m[i], &m[i]);
  e |= clSetKernelArg(k, (cl_uint)nb, sizeof n, &n);
  size_t g[2] = {kind == POTRF ? 1 : (size_t)TS, (size_t)TS};
  e |= clEnqueueNDRangeKernel(q, k, kind >= SYRK ? 2 : 1, NULL, g, NULL, 0, NULL, NULL);
  e |= clFinish(q);
  if (e != CL_SUCCESS) abort();
  starpu_opencl_release_kernel(k);
}

/* One model and codelet per kernel and StarPU session (CPU+OpenCL, then CPU only). */
static struct starpu_perfmodel sp_model[2][NKERN];
static struct starpu_codelet sp_cl[2][NKERN];

static void sp_codelets(void) {
  static const char *const sym[2][NKERN] = {
      {"ds_chol_potrf_ocl", "ds_chol_trsm_ocl", "ds_chol_syrk_ocl", "ds_chol_gemm_ocl"},
      {"ds_chol_potrf_cpu", "ds_chol_trsm_cpu", "ds_chol_syrk_cpu", "ds_chol_gemm_cpu"}};
  for (int s = 0; s < 2; s++)
    for (int k = 0; k < NKERN; k++) {
      struct starpu_perfmodel *pm = &sp_model[s][k];
      struct starpu_codelet *c = &sp_cl[s][k];
      memset(pm, 0, sizeof *pm), memset(c, 0, sizeof *c);
      pm->type = STARPU_HISTORY_BASED;
      pm->symbol = sym[s][k];
      c->cpu_funcs[0] = sp_cpu;
      if (s == 0) c->opencl_funcs[0] = sp_opencl;
      c->nbuffers = k == POTRF ? 1 : k == GEMM ? 3 : 2;
      for (int b = 0; b < c->nbuffers; b++)
        c->modes[b] = b == c->nbuffers - 1 ? STARPU_RW : STARPU_R;
      c->model = pm;
    }
}

static void sp_submit(struct starpu_codelet *cl, starpu_data_handle_t *h) {
  for (int v = 0; v < ntasks; v++) {
    const struct task *t = &tasks[v];
    void *arg = (void *)(intptr_t)t->kind;
    int ret;
    if (t->kind == POTRF)
      ret = starpu_task_insert(&cl[POTRF], STARPU_RW, h[t->c], STARPU_CL_ARGS_NFREE, arg, 0, 0);
    else if (t->kind == GEMM)
      ret = starpu_task_insert(&cl[GEMM], STARPU_R, h[t->a], STARPU_R, h[t->b], STARPU_RW,
                               h[t->c], STARPU_CL_ARGS_NFREE, arg, 0, 0);
    else
      ret = starpu_task_insert(&cl[t->kind], STARPU_R, h[t->a], STARPU_RW, h[t->c],
                               STARPU_CL_ARGS_NFREE, arg, 0, 0);
    if (ret != 0) abort();
  }
}

static struct result starpu_measure(int with_opencl, int *nopencl) {
  struct result r = {0, 0, 0, 0, 0, 0, 0};
  char home[] = "/tmp/ds_bench_starpu_XXXXXX";
  if (!fg_starpu_start(with_opencl, chol_cl, home, nopencl)) return r;
  sp_codelets();
  int nt2 = NT * NT;
  size_t tb = (size_t)TS * (size_t)TS * sizeof(float);
  float **t = calloc((size_t)nt2, sizeof *t);
  starpu_data_handle_t *h = calloc((size_t)nt2, sizeof *h);
  if (!t || !h) exit(1);
  for (int i = 0; i < NT; i++)
    for (int j = 0; j <= i; j++) {
      starpu_malloc((void **)&t[tix(i, j)], tb);
      starpu_matrix_data_register(&h[tix(i, j)], STARPU_MAIN_RAM, (uintptr_t)t[tix(i, j)],
                                  (uint32_t)TS, (uint32_t)TS, (uint32_t)TS, sizeof(float));
    }
  double t_ms[64], mb[64];
  for (int rep = 0; rep < WARMUP + REPS; rep++) {
    for (int i = 0; i < NT; i++)
      for (int j = 0; j <= i; j++) {
        starpu_data_acquire(h[tix(i, j)], STARPU_W);
        tile_of(mat_a, i, j, t[tix(i, j)]);
        starpu_data_release(h[tix(i, j)]);
      }
    (void)sp_bus_bytes();
    double t0 = bench_now_s();
    sp_submit(sp_cl[with_opencl ? 0 : 1], h);
    starpu_task_wait_for_all();
    for (int i = 0; i < NT; i++) /* back to host memory */
      for (int j = 0; j <= i; j++) {
        starpu_data_acquire(h[tix(i, j)], STARPU_R);
        starpu_data_release(h[tix(i, j)]);
      }
    double dt = bench_now_s() - t0;
    uint64_t bytes = sp_bus_bytes();
    for (int i = 0; i < NT; i++)
      for (int j = 0; j <= i; j++) {
        starpu_data_acquire(h[tix(i, j)], STARPU_R);
        r.err = fmax(r.err, tile_error(t[tix(i, j)], i, j));
        starpu_data_release(h[tix(i, j)]);
      }
    if (rep >= WARMUP) t_ms[rep - WARMUP] = dt * 1e3, mb[rep - WARMUP] = (double)bytes / 1e6;
  }
  for (int i = 0; i < NT; i++)
    for (int j = 0; j <= i; j++) {
      starpu_data_unregister(h[tix(i, j)]);
      starpu_free(t[tix(i, j)]);
    }
  free(t), free(h);
  fg_starpu_stop(home, *nopencl);
  r.ms = bench_median(t_ms, REPS);
  r.mbytes = bench_median(mb, REPS);
  r.ok = 1;
  return r;
}
#endif

static struct ours ours_state;

int main(int argc, char **argv) {
  fg_name = "bench_fabric_cholesky";
  NT = 6, TS = 96;
  fg_args(argc, argv, 512);
  make_inputs();
  make_dag();
  struct fg_bench b = {"fabric_cholesky", ntasks, &ours_state, ours_setup, ours_free, ours_run,
                       NULL};
#ifdef DS_BENCH_HAVE_STARPU
  b.starpu = starpu_measure;
#endif
  double worst = fg_report(&b, bench_json_mode(argc, argv));
  free(mat_a), free(mat_ref), free(tasks);
  return worst < 1e-3 ? 0 : 1; /* a wrong factor fails the run */
}
