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
#include "bench_fabric_graph_common.h"

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

static struct fg_graph ours_setup(void *vo, uint32_t flags) {
  struct ours *o = vo;
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
  return (struct fg_graph){o->ctx, o->g, o->cl};
}

/* One run: zero C on the host, run, read C back on the host. Returns seconds; *bytes moved;
 * *err the largest relative error. */
static double ours_run(void *vo, const ds_plan *p, uint64_t *bytes, double *err) {
  struct ours *o = vo;
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
  double b0 = fg_bytes_moved(o->ctx);
  for (size_t t = 0; t < nt2; t++) {
    float *h = NULL;
    check(ds_buffer_acquire((void **)&h, o->c[t], 0, DS_ACCESS_READ), o->ctx, "acquire");
    check(ds_buffer_release(o->c[t], 0), o->ctx, "release");
  }
  double dt = bench_now_s() - t0;
  *bytes = before_back + (uint64_t)(fg_bytes_moved(o->ctx) - b0);
  for (size_t t = 0; t < nt2; t++) {
    float *h = NULL;
    check(ds_buffer_acquire((void **)&h, o->c[t], 0, DS_ACCESS_READ), o->ctx, "acquire");
    *err = fmax(*err, tile_error(h, (int)(t / (size_t)NT), (int)(t % (size_t)NT)));
    check(ds_buffer_release(o->c[t], 0), o->ctx, "release");
  }
  return dt;
}

static void ours_free(void *vo) {
  struct ours *o = vo;
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

/* ---- StarPU ---- */

#ifdef DS_BENCH_HAVE_STARPU
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

/* with_opencl 0: StarPU on the CPU cores only (its workers take every core). */
static struct result starpu_measure(int with_opencl, int *nopencl) {
  struct result r = {0, 0, 0, 0, 0, 0, 0};
  char home[] = "/tmp/ds_bench_starpu_XXXXXX";
  if (!fg_starpu_start(with_opencl, tile_gemm_cl, home, nopencl)) return r;
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
  r.on_cl = -1; /* StarPU decides per task at run time */
  fg_starpu_stop(home, *nopencl);
  r.ms = bench_median(t_ms, REPS);
  r.mbytes = bench_median(mb, REPS);
  r.ok = 1;
  return r;
}
#endif

static struct ours ours_state;

int main(int argc, char **argv) {
  fg_name = "bench_fabric_dag";
  NT = 4, TS = 128;
  fg_args(argc, argv, 1024);
  make_inputs();
  struct fg_bench b = {"fabric_dag", NT * NT * NT, &ours_state, ours_setup, ours_free, ours_run,
                       NULL};
#ifdef DS_BENCH_HAVE_STARPU
  b.starpu = starpu_measure;
#endif
  (void)fg_report(&b, bench_json_mode(argc, argv));
  free(mat_a), free(mat_b), free(mat_ref);
  return 0;
}
