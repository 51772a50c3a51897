/* 3D point cloud rendering as a task graph of the compute fabric.
 *
 * The cloud (default 8 M points) is cut into chunks (default 8), each its own fabric buffer.
 * One frame is one graph run:
 *   clear(zbuffer c) -> project(points c, camera, zbuffer c)   for every chunk c,
 *   then a tree of merges zbuffer a = min(zbuffer a, zbuffer b) down to zbuffer 0, the image.
 * Every kernel has a C implementation and an OpenCL C one (and, when built with CUDA, a CUDA
 * one: fabric_point_cloud_graph_cuda.cu), so the partitioner (HEFT, with cost models it learns
 * in the first runs) may put any node on any device present: CPU workers, CUDA GPUs, OpenCL
 * devices (PoCL on a machine without a GPU). The camera is a small buffer the host
 * rewrites before each frame, so the graph and its plan are built once and run every frame.
 *
 * The program times HEFT (planned again after a warm-up frame of every case, from the times
 * just measured) against every device alone (frames alternating between the cases, medians
 * reported), prints the speed-up over the best single device, and checks that every
 * placement gives the same image as a plain sequential projection: with --check it also runs
 * three random placements and an alternating one and exits 1 on any differing pixel. Built
 * with CUDA but run without a GPU, it says the CUDA kernels were skipped (and checks their
 * per-point code on the host); with DS_REQUIRE_GPU=1 in the environment it fails instead.
 *
 * Usage: fabric_point_cloud_graph [--points N] [--chunks N] [--frames N] [--check] [--json]
 * (--json: the result as one benchmark row on stdout, the text on stderr; the benchmark
 * bench_fabric_pointcloud_graph is this program built with 4 M points by default.) */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <deepseek.h>

#include "fabric_point_cloud_scene.h" /* make_point: the cloud */
#ifdef DS_EXAMPLE_CUDA
#include "fabric_point_cloud_graph_cuda.h" /* the CUDA launchers */
#define PC_CUDA(fn) fn
#else
#define PC_CUDA(fn) NULL
#endif

#define W 1024
#define H 768
#define EMPTY 0xFFFFFFFFu /* z-buffer value of a pixel no point reached */
#define MAX_CHUNKS 64
#define MAX_CASES 16
/* The frame whose image is checked: its camera has no zero term (frame 0's has several, where
 * a different order of additions or a fused multiply-add would go unseen). */
#define CHECK_FRAME 3

/* ---- the camera (the camera buffer: rows of [R | t], then f, cx, cy, znear) ---- */

static void make_camera(float cam[16], int frame) {
  float a = 0.35f * (float)frame, b = 0.3f;
  float ca = cosf(a), sa = sinf(a), cb = cosf(b), sb = sinf(b);
  const float c[16] = {ca, 0, sa, 0, sa * sb, cb, -ca * sb, 0, -sa * cb, sb, ca * cb, 4.0f,
                       900.0f, W / 2.0f, H / 2.0f, 0.1f};
  memcpy(cam, c, sizeof c);
}

/* ---- the kernels: C implementations and the same arithmetic in OpenCL C ---- */

/* One point into the z-buffer; written exactly as the OpenCL kernel so the images agree. */
static void project_point(const float *p, const float *c, uint32_t *zb) {
  float x = c[0] * p[0] + c[1] * p[1] + c[2] * p[2] + c[3];
  float y = c[4] * p[0] + c[5] * p[1] + c[6] * p[2] + c[7];
  float z = c[8] * p[0] + c[9] * p[1] + c[10] * p[2] + c[11];
  if (!(z > c[15])) return;
  float u = c[12] * x / z + c[13], v = c[14] - c[12] * y / z;
  if (!(u >= 0.0f && u < (float)W && v >= 0.0f && v < (float)H)) return;
  uint32_t d;
  memcpy(&d, &z, sizeof d); /* positive floats order like their bits */
  uint32_t *px = &zb[(int)v * W + (int)u];
  if (d < *px) *px = d;
}

/* bufs: points (READ), camera (READ), z-buffer (RW); args: the point count. */
static ds_status cpu_project(void *const *bufs, const size_t *sizes, size_t nbufs,
                             const void *args, size_t args_len) {
  (void)nbufs, (void)args, (void)args_len;
  const float *pts = bufs[0], *cam = bufs[1];
  for (size_t i = 0; i < sizes[0] / (3 * sizeof(float)); i++)
    project_point(pts + 3 * i, cam, bufs[2]);
  return DS_OK;
}

static ds_status cpu_clear(void *const *bufs, const size_t *sizes, size_t nbufs,
                           const void *args, size_t args_len) {
  (void)nbufs, (void)args, (void)args_len;
  memset(bufs[0], 0xFF, sizes[0]); /* every byte 0xFF: EMPTY */
  return DS_OK;
}

/* bufs: a (RW), b (READ): a = min(a, b) per pixel. */
static ds_status cpu_merge(void *const *bufs, const size_t *sizes, size_t nbufs,
                           const void *args, size_t args_len) {
  (void)nbufs, (void)args, (void)args_len;
  uint32_t *a = bufs[0];
  const uint32_t *b = bufs[1];
  for (size_t i = 0; i < sizes[0] / sizeof *a; i++) a[i] = b[i] < a[i] ? b[i] : a[i];
  return DS_OK;
}

/* FP_CONTRACT OFF: no fused multiply-adds, so the arithmetic is the C code's. */
static const char *cl_source =
    "#pragma OPENCL FP_CONTRACT OFF\n"
    "__kernel void pc_project(__global const float *p, __global const float *c,\n"
    "                         __global uint *zb, uint count) {\n"
    "  uint i = get_global_id(0);\n"
    "  if (i >= count) return;\n"
    "  __global const float *q = p + 3 * (size_t)i;\n"
    "  float x = c[0] * q[0] + c[1] * q[1] + c[2] * q[2] + c[3];\n"
    "  float y = c[4] * q[0] + c[5] * q[1] + c[6] * q[2] + c[7];\n"
    "  float z = c[8] * q[0] + c[9] * q[1] + c[10] * q[2] + c[11];\n"
    "  if (!(z > c[15])) return;\n"
    "  float u = c[12] * x / z + c[13], v = c[14] - c[12] * y / z;\n"
    "  if (!(u >= 0.0f && u < 1024.0f && v >= 0.0f && v < 768.0f)) return;\n"
    "  atomic_min(&zb[(int)v * 1024 + (int)u], as_uint(z));\n"
    "}\n"
    "__kernel void pc_clear(__global uint *zb) { zb[get_global_id(0)] = 0xFFFFFFFFu; }\n"
    "__kernel void pc_merge(__global uint *a, __global const uint *b) {\n"
    "  size_t i = get_global_id(0);\n"
    "  a[i] = min(a[i], b[i]);\n"
    "}\n";

/* ---- the scene's buffers and graph ---- */

struct scene {
  ds_context *ctx;
  ds_kernel *k_project, *k_clear, *k_merge;
  ds_buffer *camera;
  ds_buffer *pts[MAX_CHUNKS], *zb[MAX_CHUNKS];
  uint32_t counts[MAX_CHUNKS];
  int chunks;
  ds_graph *g;
};

static ds_status make_kernel(ds_kernel **out, ds_context *ctx, const char *name,
                             ds_kernel_cpu_fn fn, ds_kernel_cuda_fn cuda, int with_count) {
  static const uint32_t count_arg[] = {sizeof(uint32_t)};
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = name;
  ko.cpu = fn;
  ko.cuda = cuda;
  ko.opencl_source = cl_source;
  ko.opencl_name = name;
  ko.opencl_arg_sizes = with_count ? count_arg : NULL;
  ko.opencl_nargs = with_count ? 1 : 0;
  return ds_kernel_create(out, ctx, &ko);
}

/* Chunk c's points, generated on the host (device 0). */
static ds_status make_chunk(struct scene *s, int c, uint64_t first, uint32_t count) {
  ds_status st = ds_buffer_create(&s->pts[c], s->ctx, (size_t)count * 3 * sizeof(float), NULL);
  if (st == DS_OK) st = ds_buffer_create(&s->zb[c], s->ctx, sizeof(uint32_t) * W * H, NULL);
  float *p = NULL;
  if (st == DS_OK) st = ds_buffer_acquire((void **)&p, s->pts[c], 0, DS_ACCESS_WRITE);
  if (st != DS_OK) return st;
  for (uint32_t i = 0; i < count; i++) make_point(first + i, p + 3 * (size_t)i);
  s->counts[c] = count;
  return ds_buffer_release(s->pts[c], 0);
}

/* The graph of one frame; node order gives the dependencies (see the file comment). */
static ds_status build_graph(struct scene *s) {
  ds_status st = ds_graph_create(&s->g, s->ctx);
  ds_node_options no = DS_NODE_OPTIONS_INIT;
  for (int c = 0; c < s->chunks && st == DS_OK; c++) {
    ds_graph_access clear[1] = {{s->zb[c], DS_ACCESS_WRITE}};
    ds_graph_access proj[3] = {{s->pts[c], DS_ACCESS_READ}, {s->camera, DS_ACCESS_READ},
                               {s->zb[c], DS_ACCESS_RW}};
    no.args = NULL, no.args_len = 0, no.global[0] = (uint64_t)W * H;
    st = ds_graph_add(NULL, s->g, s->k_clear, clear, 1, &no);
    no.args = &s->counts[c], no.args_len = sizeof s->counts[c], no.global[0] = s->counts[c];
    if (st == DS_OK) st = ds_graph_add(NULL, s->g, s->k_project, proj, 3, &no);
  }
  no.args = NULL, no.args_len = 0, no.global[0] = (uint64_t)W * H;
  for (int step = 1; step < s->chunks && st == DS_OK; step *= 2)
    for (int c = 0; c + step < s->chunks && st == DS_OK; c += 2 * step) {
      ds_graph_access m[2] = {{s->zb[c], DS_ACCESS_RW}, {s->zb[c + step], DS_ACCESS_READ}};
      st = ds_graph_add(NULL, s->g, s->k_merge, m, 2, &no);
    }
  return st;
}

static ds_status scene_open(struct scene *s, uint64_t n, int chunks) {
  memset(s, 0, sizeof *s);
  s->chunks = chunks;
  ds_status st = ds_context_create(&s->ctx, NULL);
  if (st == DS_OK) st = make_kernel(&s->k_project, s->ctx, "pc_project", cpu_project,
                                     PC_CUDA(pc_cuda_project), 1);
  if (st == DS_OK) st = make_kernel(&s->k_clear, s->ctx, "pc_clear", cpu_clear,
                                     PC_CUDA(pc_cuda_clear), 0);
  if (st == DS_OK) st = make_kernel(&s->k_merge, s->ctx, "pc_merge", cpu_merge,
                                     PC_CUDA(pc_cuda_merge), 0);
  if (st == DS_OK) st = ds_buffer_create(&s->camera, s->ctx, 16 * sizeof(float), NULL);
  for (int c = 0; c < chunks && st == DS_OK; c++) {
    uint64_t a = n * (uint64_t)c / (uint64_t)chunks, b = n * (uint64_t)(c + 1) / (uint64_t)chunks;
    st = make_chunk(s, c, a, (uint32_t)(b - a));
  }
  return st == DS_OK ? build_graph(s) : st;
}

static void scene_close(struct scene *s) {
  ds_graph_destroy(s->g);
  for (int c = 0; c < s->chunks; c++) ds_buffer_destroy(s->pts[c]), ds_buffer_destroy(s->zb[c]);
  ds_buffer_destroy(s->camera);
  ds_kernel_destroy(s->k_project), ds_kernel_destroy(s->k_clear), ds_kernel_destroy(s->k_merge);
  ds_context_destroy(s->ctx);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Renders frame @p frame with plan @p p; the image is then zbuffer 0. Seconds into *secs. */
static ds_status render(struct scene *s, const ds_plan *p, int frame, double *secs) {
  float *cam = NULL;
  double t0 = now_s();
  ds_status st = ds_buffer_acquire((void **)&cam, s->camera, 0, DS_ACCESS_WRITE);
  if (st != DS_OK) return st;
  make_camera(cam, frame);
  ds_buffer_release(s->camera, 0);
  st = ds_graph_run(s->g, p, NULL);
  if (secs) *secs = now_s() - t0;
  return st;
}

/* Number of pixels of zbuffer 0 (read on the host) that differ from @p ref. */
static ds_status compare(struct scene *s, const uint32_t *ref, size_t *differ) {
  const uint32_t *img = NULL;
  ds_status st = ds_buffer_acquire((void **)&img, s->zb[0], 0, DS_ACCESS_READ);
  if (st != DS_OK) return st;
  *differ = 0;
  for (size_t i = 0; i < (size_t)W * H; i++) *differ += img[i] != ref[i];
  return ds_buffer_release(s->zb[0], 0);
}

/* The reference image: every point projected in order on this thread. */
static void reference_image(uint64_t n, int frame, uint32_t *ref) {
  float cam[16], p[3];
  make_camera(cam, frame);
  for (size_t i = 0; i < (size_t)W * H; i++) ref[i] = EMPTY;
  for (uint64_t i = 0; i < n; i++) make_point(i, p), project_point(p, cam, ref);
}

/* ---- the cases: HEFT, each device alone, and (--check) other placements ---- */

struct pc_case {
  char name[80];
  ds_plan *plan;
  double t[64];
};

/* HEFT, after calibration runs (a plan that still calibrates is run and planned again; a
 * kernel whose times vary gets more samples, see fabric_calibrate_max_runs). */
static ds_status plan_heft(struct scene *s, ds_plan **out) {
  for (int round = 0; round < 16; round++) {
    ds_plan_info pi = {sizeof pi, 0, 0, 0, 0};
    ds_status st = ds_graph_plan(out, s->g, NULL);
    if (st == DS_OK) st = ds_plan_get_info(*out, &pi);
    if (st != DS_OK || pi.calibrating == 0) return st;
    st = render(s, *out, 0, NULL);
    ds_plan_destroy(*out);
    *out = NULL;
    if (st != DS_OK) return st;
  }
  return ds_graph_plan(out, s->g, NULL);
}

static void add_case(struct pc_case *cs, int *n, const char *name, ds_plan *p) {
  snprintf(cs[*n].name, sizeof cs[*n].name, "%s", name);
  cs[(*n)++].plan = p;
}

/* Every device alone, then HEFT (last); with @p check also random and alternating plans. */
static ds_status make_cases(struct scene *s, struct pc_case *cs, int *n, int check) {
  int32_t ndev = 0, usable[MAX_CASES], nusable = 0;
  ds_status st = ds_fabric_device_count(&ndev, s->ctx);
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  for (int32_t d = 0; d < ndev && st == DS_OK && *n < MAX_CASES - 6; d++) {
    ds_device_info di = DS_DEVICE_INFO_INIT;
    ds_plan *p = NULL;
    po.policy = DS_PLAN_DEVICE, po.device = d;
    if (ds_fabric_device_info(&di, s->ctx, d) != DS_OK || ds_graph_plan(&p, s->g, &po) != DS_OK)
      continue; /* a device no kernel runs on (CUDA when built without it) */
    char name[80];
    snprintf(name, sizeof name, "device%d %s", (int)d, di.name);
    add_case(cs, n, name, p);
    usable[nusable++] = d;
  }
  uint32_t nodes = 0;
  ds_graph_size(s->g, &nodes, NULL);
  for (int r = 0; check && nusable > 0 && r < 4 && st == DS_OK; r++) {
    ds_plan *p = NULL;
    int32_t *place = calloc(nodes, sizeof *place);
    for (uint32_t v = 0; place && v < nodes; v++) place[v] = usable[v % (uint32_t)nusable];
    po.policy = r < 3 ? DS_PLAN_RANDOM : DS_PLAN_EXPLICIT, po.seed = 7 + (uint64_t)r;
    po.placement = place;
    st = place ? ds_graph_plan(&p, s->g, &po) : DS_ERR_NO_MEMORY;
    free(place);
    char name[32];
    snprintf(name, sizeof name, r < 3 ? "random seed %d" : "alternating", 7 + r);
    if (st == DS_OK) add_case(cs, n, name, p);
  }
  ds_plan *heft = NULL;
  if (st == DS_OK) st = plan_heft(s, &heft);
  if (st == DS_OK) add_case(cs, n, "heft", heft);
  return st;
}

static double median(double *v, int n) {
  for (int i = 1; i < n; i++) /* insertion sort: a handful of values */
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double x = v[j];
      v[j] = v[j - 1], v[j - 1] = x;
    }
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Runs every case on frames 0..frames-1, alternating, after one warm-up frame each; then
 * CHECK_FRAME once more per case, compared with the reference image. */
static ds_status run_cases(struct scene *s, struct pc_case *cs, int ncases, int frames,
                           uint64_t n, size_t *worst) {
  ds_status st = DS_OK;
  for (int c = 0; c < ncases && st == DS_OK; c++) st = render(s, cs[c].plan, 0, NULL);
  /* HEFT (the last case) planned again from the models as the warm-up frames left them:
   * every device's times measured under the same conditions, just now. */
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.calibrate = 0;
  ds_plan *p = NULL;
  if (st == DS_OK && (st = ds_graph_plan(&p, s->g, &po)) == DS_OK) {
    ds_plan_destroy(cs[ncases - 1].plan);
    cs[ncases - 1].plan = p;
  }
  for (int f = 0; f < frames && st == DS_OK; f++)
    for (int c = 0; c < ncases && st == DS_OK; c++) st = render(s, cs[c].plan, f, &cs[c].t[f]);
  uint32_t *ref = malloc(sizeof(uint32_t) * W * H);
  if (!ref) return DS_ERR_NO_MEMORY;
  reference_image(n, CHECK_FRAME, ref);
  *worst = 0;
  for (int c = 0; c < ncases && st == DS_OK; c++) {
    size_t differ = 0;
    st = render(s, cs[c].plan, CHECK_FRAME, NULL);
    if (st == DS_OK) st = compare(s, ref, &differ);
    if (differ) fprintf(stderr, "%s: %zu pixels differ from the reference\n", cs[c].name, differ);
    *worst = differ > *worst ? differ : *worst;
  }
  free(ref);
  return st;
}

static void report(struct scene *s, struct pc_case *cs, int ncases, int frames, uint64_t n,
                   int json) {
  FILE *out = json ? stderr : stdout;
  double best = 0, heft = 0;
  const char *best_name = "";
  for (int c = 0; c < ncases; c++) {
    double m = median(cs[c].t, frames);
    int single = !strncmp(cs[c].name, "device", 6);
    if (single && (best == 0 || m < best)) best = m, best_name = cs[c].name;
    if (!strcmp(cs[c].name, "heft")) heft = m;
    int used[64] = {0}; /* nodes per device (the fabric has at most 64) */
    uint32_t nodes = 0;
    ds_graph_size(s->g, &nodes, NULL);
    for (int32_t v = 0; v < (int32_t)nodes; v++) {
      int32_t d = 0;
      if (ds_plan_device(cs[c].plan, v, &d) == DS_OK && d >= 0 && d < 64) used[d]++;
    }
    fprintf(out, "  %-44s %8.1f ms/frame  nodes per device:", cs[c].name, m * 1e3);
    for (int d = 0; d < 64; d++)
      if (used[d]) fprintf(out, " %d:%d", d, used[d]);
    fprintf(out, "\n");
  }
  ds_plan_info pi = {sizeof pi, 0, 0, 0, 0};
  if (ds_plan_get_info(cs[ncases - 1].plan, &pi) == DS_OK)
    fprintf(out, "HEFT predicted %.1f ms; learnt ms per node (chunk size):", pi.makespan_s * 1e3);
  ds_kernel *ks[3] = {s->k_clear, s->k_project, s->k_merge};
  const char *kn[3] = {"clear", "project", "merge"};
  uint64_t size[3] = {sizeof(uint32_t) * W * H,
                      (uint64_t)s->counts[0] * 12 + 64 + sizeof(uint32_t) * W * H,
                      2 * sizeof(uint32_t) * W * H};
  for (int k = 0; k < 3; k++) {
    fprintf(out, " %s", kn[k]);
    for (int32_t d = 0; d < 64; d++) {
      double sec = 0;
      if (ds_kernel_model_predict(ks[k], d, size[k], &sec, NULL) == DS_OK)
        fprintf(out, " dev%d %.2f", (int)d, sec * 1e3);
    }
  }
  fprintf(out, "\n");
  fprintf(out, "HEFT vs the best single device (%s): %.2fx speed-up\n", best_name, best / heft);
  if (json)
    printf("{\"bench\":\"fabric_pointcloud_graph\",\"case\":\"%llu_points\",\"metric\":"
           "\"ms_per_frame\",\"ours\":%.4g,\"anchor\":\"best_single_device\",\"anchor_value\":"
           "%.4g,\"ratio\":%.4f,\"goal\":1,\"better\":\"lower\"}\n",
           (unsigned long long)n, heft * 1e3, best * 1e3, heft / best);
}

/* ---- the CUDA kernels: run on a GPU when one is present, checked on the host when not ---- */

#ifdef DS_EXAMPLE_CUDA
/* What of the CUDA launchers runs without a GPU: bad arguments are refused before any launch,
 * and (no GPU present) a launch reports DS_ERR_DEVICE instead of crashing. 0 when all hold. */
static int cuda_launchers_checked(int have_gpu, FILE *out) {
  void *bufs[3] = {NULL, NULL, NULL};
  size_t sizes[3] = {12, 64, sizeof(uint32_t) * W * H};
  uint32_t count = 1;
  int bad = pc_cuda_project(bufs, sizes, 2, &count, sizeof count, NULL) != DS_ERR_INVALID_ARG;
  count = 2; /* more points than the buffer holds */
  bad += pc_cuda_project(bufs, sizes, 3, &count, sizeof count, NULL) != DS_ERR_INVALID_ARG;
  bad += pc_cuda_merge(bufs, (size_t[]){8, 4}, 2, NULL, 0, NULL) != DS_ERR_INVALID_ARG;
  bad += pc_cuda_clear(bufs, (size_t[]){0}, 1, NULL, 0, NULL) != DS_OK; /* nothing to do */
  if (!have_gpu) bad += pc_cuda_clear(bufs, sizes + 2, 1, NULL, 0, NULL) != DS_ERR_DEVICE;
  fprintf(out, "CUDA launchers: %s%s\n", bad ? "WRONG status" : "bad arguments refused",
          have_gpu || bad ? "" : ", a launch without a GPU reports DS_ERR_DEVICE");
  return bad;
}
#endif

/* Whether a GPU ran the CUDA kernels (a CUDA device was one of the cases): without one the
 * CUDA path is skipped, or fails with DS_REQUIRE_GPU=1. With --check, the CUDA kernels'
 * per-point code run on the host must give the reference image. Returns 1 on a failure. */
static int cuda_path(struct scene *s, uint64_t n, int check, FILE *out) {
  const char *req = getenv("DS_REQUIRE_GPU");
  int32_t gpu = -1;
  int have = ds_fabric_device_find(&gpu, s->ctx, DS_FABRIC_DEVICE_CUDA, 0) == DS_OK;
#ifdef DS_EXAMPLE_CUDA
  if (check) {
    float cam[16], p[3];
    uint32_t *ref = malloc(sizeof(uint32_t) * W * H), *img = malloc(sizeof(uint32_t) * W * H);
    size_t differ = 0;
    if (!ref || !img) differ = 1; /* nothing compared is no pass */
    if (ref && img) {
      reference_image(n, CHECK_FRAME, ref);
      make_camera(cam, CHECK_FRAME);
      memset(img, 0xFF, sizeof(uint32_t) * W * H);
      for (uint64_t i = 0; i < n; i++) make_point(i, p), pc_cuda_project_host(p, 1, cam, img);
      for (size_t i = 0; i < (size_t)W * H; i++) differ += img[i] != ref[i];
    }
    free(ref), free(img);
    fprintf(out, "CUDA kernels' per-point code on the host: %s\n",
            differ ? "DIFFERS from the reference" : "identical to the reference");
    if (differ || cuda_launchers_checked(have, out) != 0) return 1;
  }
  const int built = 1;
#else
  (void)n, (void)check;
  const int built = 0;
#endif
  if (have && built) {
    fprintf(out, "CUDA kernels: run on device %d\n", (int)gpu);
    return 0;
  }
  fprintf(out, have ? "CUDA kernels: not built (no CUDA toolkit), the GPU is not used\n"
                    : "CUDA kernels: skipped (no CUDA device)\n");
  if (req && !strcmp(req, "1")) {
    fprintf(stderr, "fabric_point_cloud_graph: DS_REQUIRE_GPU=1 but the CUDA kernels did not "
            "run on a GPU\n");
    return 1;
  }
  return 0;
}

#ifndef POINT_CLOUD_POINTS
#define POINT_CLOUD_POINTS 8000000 /* the benchmark build uses fewer */
#endif

int main(int argc, char **argv) {
  uint64_t n = POINT_CLOUD_POINTS;
  int chunks = 8, frames = 5, check = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--points") && i + 1 < argc) n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--chunks") && i + 1 < argc) chunks = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--check")) check = 1;
    else if (!strcmp(argv[i], "--json")) json = 1;
  }
  if (n < 1000 || n > 0xFFFFFFFFull || chunks < 1 || chunks > MAX_CHUNKS || frames < 1 ||
      frames > 63) {
    fprintf(stderr, "usage: %s [--points 1000..4294967295] [--chunks 1..64] [--frames 1..63] "
            "[--check] [--json]\n", argv[0]);
    return 2;
  }
  struct scene s;
  struct pc_case cs[MAX_CASES];
  int ncases = 0;
  size_t worst = 0;
  int cuda_bad = 0;
  ds_status st = scene_open(&s, n, chunks);
  if (st == DS_OK) st = make_cases(&s, cs, &ncases, check);
  if (st == DS_OK) st = run_cases(&s, cs, ncases, frames, n, &worst);
  if (st == DS_OK) {
    fprintf(json ? stderr : stdout, "%llu points in %d chunks, %d frames per case:\n",
            (unsigned long long)n, chunks, frames);
    report(&s, cs, ncases, frames, n, json);
    fprintf(json ? stderr : stdout, "images: %s\n",
            worst ? "DIFFER between placements" : "identical to the reference in every case");
    cuda_bad = cuda_path(&s, n, check, json ? stderr : stdout);
  } else {
    fprintf(stderr, "fabric_point_cloud_graph: %s\n", ds_context_last_error(s.ctx));
  }
  for (int c = 0; c < ncases; c++) ds_plan_destroy(cs[c].plan);
  scene_close(&s);
  return st != DS_OK || worst != 0 || cuda_bad;
}
