/* 3D point cloud rendering split across the devices of the compute fabric.
 *
 * A synthetic cloud of N points (default 20 M) is projected through a pinhole camera and
 * z-buffered (nearest point per pixel) for a few frames with a turning camera. Each frame runs
 *   - on the CPU alone (all cores, one private z-buffer per thread),
 *   - on the OpenCL device alone (a kernel with atomic_min on a z-buffer), when there is one,
 *   - split: the CPU takes the first share of the points and OpenCL the rest, at the same
 *     time; the split is static and proportional to each device's measured single-device speed
 *     (the fabric's graph partitioner is not used here).
 * The parts meet at a timestamp barrier (every CPU thread and the OpenCL queue publish 1 when
 * their part is done), then their z-buffers are merged with a min per pixel. The program prints
 * the time per frame of each way, the speedup of the split over the best single device, and
 * checks that the split image is identical to the CPU-only one. CUDA GPUs are listed but not
 * used: this C example has no CUDA kernel.
 *
 * The fabric gives each device its view of the point buffer (on PoCL's CPU device: the same
 * host bytes, no copy; on a discrete device: one copy, made once) and brings the OpenCL
 * z-buffer back to the host.
 *
 * Usage: fabric_point_cloud [--points N] [--frames N] [--pgm out.pgm] [--json]
 * (--json: the result as one benchmark row on stdout, the text on stderr; the benchmark
 * bench_fabric_pointcloud is this program built with 4 M points and 3 frames by default.)
 * Build: link with -ldeepseek and -lOpenCL (the OpenCL part is compiled when CL/cl.h exists). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <deepseek.h>

#include "fabric_point_cloud_scene.h" /* make_point: the cloud */

#if defined(DS_EXAMPLE_OPENCL)
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif

#define W 1024
#define H 768
#define EMPTY 0xFFFFFFFFu /* z-buffer value of a pixel no point reached */
#define MAX_THREADS 64

/* Camera: rows of [R | t], then focal length, centre and near plane. */
typedef struct camera {
  float r[3][4];
  float f, cx, cy, znear;
} camera;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct gen_job {
  float *xyz;
  uint64_t first, count;
};

static void *gen_thread(void *arg) {
  struct gen_job *j = arg;
  for (uint64_t i = j->first; i < j->first + j->count; i++) make_point(i, j->xyz + 3 * i);
  return NULL;
}

static camera make_camera(int frame) {
  float a = 0.35f * (float)frame, b = 0.3f;
  float ca = cosf(a), sa = sinf(a), cb = cosf(b), sb = sinf(b);
  camera c = {{{ca, 0, sa, 0}, {sa * sb, cb, -ca * sb, 0}, {-sa * cb, sb, ca * cb, 4.0f}},
              900.0f, W / 2.0f, H / 2.0f, 0.1f};
  return c;
}

/* ---- the CPU part: the same arithmetic as the OpenCL kernel, so the images are identical ---- */

static void project(const float *p, const camera *c, uint32_t *zb) {
  float x = c->r[0][0] * p[0] + c->r[0][1] * p[1] + c->r[0][2] * p[2] + c->r[0][3];
  float y = c->r[1][0] * p[0] + c->r[1][1] * p[1] + c->r[1][2] * p[2] + c->r[1][3];
  float z = c->r[2][0] * p[0] + c->r[2][1] * p[1] + c->r[2][2] * p[2] + c->r[2][3];
  if (!(z > c->znear)) return;
  float u = c->f * x / z + c->cx, v = c->cy - c->f * y / z; /* image rows go down */
  if (!(u >= 0.0f && u < (float)W && v >= 0.0f && v < (float)H)) return;
  uint32_t d;
  memcpy(&d, &z, sizeof d); /* positive floats order like their bits */
  uint32_t *px = &zb[(int)v * W + (int)u];
  if (d < *px) *px = d;
}

struct cpu_job {
  const float *xyz;
  uint64_t first, count;
  camera cam;
  uint32_t *zb; /* this thread's private z-buffer */
  ds_fabric_barrier *done;
  uint32_t participant;
};

static void *cpu_thread(void *arg) {
  struct cpu_job *j = arg;
  for (size_t i = 0; i < (size_t)W * H; i++) j->zb[i] = EMPTY;
  for (uint64_t i = j->first; i < j->first + j->count; i++) project(j->xyz + 3 * i, &j->cam, j->zb);
  ds_fabric_barrier_publish(j->done, j->participant, 1); /* my part is done */
  return NULL;
}

/* ---- the OpenCL part: the fabric's cl_mem handles, our own queue and kernel ---- */

#if defined(DS_EXAMPLE_OPENCL)
static const char *kernel_src =
    "#pragma OPENCL FP_CONTRACT OFF\n"
    "__kernel void project(__global const float *p, uint first, uint count,\n"
    "                      __global uint *zb, float4 r0, float4 r1, float4 r2, float4 k) {\n"
    "  uint i = get_global_id(0);\n"
    "  if (i >= count) return;\n"
    "  __global const float *q = p + 3 * (size_t)(first + i);\n"
    "  float x = r0.x * q[0] + r0.y * q[1] + r0.z * q[2] + r0.w;\n"
    "  float y = r1.x * q[0] + r1.y * q[1] + r1.z * q[2] + r1.w;\n"
    "  float z = r2.x * q[0] + r2.y * q[1] + r2.z * q[2] + r2.w;\n"
    "  if (!(z > k.w)) return;\n"
    "  float u = k.x * x / z + k.y, v = k.z - k.x * y / z;\n"
    "  if (!(u >= 0.0f && u < 1024.0f && v >= 0.0f && v < 768.0f)) return;\n"
    "  atomic_min(&zb[(int)v * 1024 + (int)u], as_uint(z));\n"
    "}\n";

struct ocl {
  int32_t dev; /* fabric device index, -1 when none */
  cl_command_queue queue;
  cl_kernel kernel;
};

/* Our queue and kernel in the context of the fabric's buffer on that device. */
static int ocl_setup(struct ocl *o, cl_mem any_buffer) {
  cl_context clctx;
  cl_device_id devs[16]; /* the fabric keeps one context per platform: its first device is the
                            platform's first, the one this example uses */
  cl_int err = clGetMemObjectInfo(any_buffer, CL_MEM_CONTEXT, sizeof clctx, &clctx, NULL);
  err |= clGetContextInfo(clctx, CL_CONTEXT_DEVICES, sizeof devs, devs, NULL);
  if (err != CL_SUCCESS) return 0;
  cl_device_id dev = devs[0];
  o->queue = clCreateCommandQueue(clctx, dev, 0, &err);
  if (err != CL_SUCCESS) return 0;
  cl_program prog = clCreateProgramWithSource(clctx, 1, &kernel_src, NULL, &err);
  if (err != CL_SUCCESS ||
      clBuildProgram(prog, 1, &dev, "-cl-fp32-correctly-rounded-divide-sqrt", NULL, NULL) != CL_SUCCESS)
    return 0;
  o->kernel = clCreateKernel(prog, "project", &err);
  clReleaseProgram(prog);
  return err == CL_SUCCESS;
}

/* Enqueues: clear the z-buffer, project points [first, first+count), then a marker that
 * publishes participant p = 1 on the barrier. Returns 0 on an OpenCL error. */
static int ocl_enqueue(struct ocl *o, cl_mem pts, cl_mem zb, uint64_t first, uint64_t count,
                       const camera *c, ds_fabric_barrier *done, uint32_t p) {
  cl_uint empty = EMPTY, f32 = (cl_uint)first, n32 = (cl_uint)count;
  cl_float4 r[3], k = {{c->f, c->cx, c->cy, c->znear}};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++) r[i].s[j] = c->r[i][j];
  cl_int err = clEnqueueFillBuffer(o->queue, zb, &empty, sizeof empty, 0,
                                   sizeof(cl_uint) * W * H, 0, NULL, NULL);
  err |= clSetKernelArg(o->kernel, 0, sizeof pts, &pts);
  err |= clSetKernelArg(o->kernel, 1, sizeof f32, &f32);
  err |= clSetKernelArg(o->kernel, 2, sizeof n32, &n32);
  err |= clSetKernelArg(o->kernel, 3, sizeof zb, &zb);
  for (int i = 0; i < 3; i++) err |= clSetKernelArg(o->kernel, 4 + (cl_uint)i, sizeof r[i], &r[i]);
  err |= clSetKernelArg(o->kernel, 7, sizeof k, &k);
  size_t global = ((size_t)count + 255) / 256 * 256;
  if (count > 0) err |= clEnqueueNDRangeKernel(o->queue, o->kernel, 1, NULL, &global, NULL, 0, NULL, NULL);
  if (err != CL_SUCCESS) return 0;
  return ds_fabric_barrier_publish_opencl(done, p, o->queue, 1) == DS_OK;
}
#endif

/* ---- one frame ---- */

struct scene {
  ds_context *ctx;
  ds_buffer *points, *zcl; /* the cloud; the OpenCL part's z-buffer */
  const float *xyz;        /* the cloud's host bytes (CPU device 0) */
  uint64_t n;
  int nthreads;
  uint32_t *zpart[MAX_THREADS]; /* private z-buffers of the CPU threads */
  uint32_t *image;              /* the merged z-buffer */
#if defined(DS_EXAMPLE_OPENCL)
  struct ocl ocl;
  cl_mem cl_points;
#endif
};

/* Renders one frame with the first cpu_count points on the CPU and the rest on OpenCL.
 * Returns 0 on success. */
static int render(struct scene *s, int frame, uint64_t cpu_count) {
  camera cam = make_camera(frame);
  uint64_t ocl_count = s->n - cpu_count;
  int nt = cpu_count > 0 ? s->nthreads : 0;
  ds_fabric_barrier_options bo = DS_FABRIC_BARRIER_OPTIONS_INIT;
  bo.participants = (uint32_t)nt + (ocl_count > 0 ? 1u : 0u);
  bo.name = "frame";
  ds_fabric_barrier *done = NULL;
  if (ds_fabric_barrier_create(&done, s->ctx, &bo) != DS_OK) return 1;
#if defined(DS_EXAMPLE_OPENCL)
  void *zcl_mem = NULL;
  if (ocl_count > 0) {
    if (ds_buffer_acquire(&zcl_mem, s->zcl, s->ocl.dev, DS_ACCESS_WRITE) != DS_OK ||
        !ocl_enqueue(&s->ocl, s->cl_points, (cl_mem)zcl_mem, cpu_count, ocl_count, &cam, done,
                     (uint32_t)nt)) {
      ds_fabric_barrier_destroy(done);
      return 1;
    }
    clFlush(s->ocl.queue);
  }
#endif
  pthread_t th[MAX_THREADS];
  struct cpu_job jobs[MAX_THREADS];
  for (int t = 0; t < nt; t++) {
    uint64_t a = cpu_count * (uint64_t)t / (uint64_t)nt, b = cpu_count * (uint64_t)(t + 1) / (uint64_t)nt;
    jobs[t] = (struct cpu_job){s->xyz, a, b - a, cam, s->zpart[t], done, (uint32_t)t};
    pthread_create(&th[t], NULL, cpu_thread, &jobs[t]);
  }
  /* Every participant (CPU threads and the OpenCL queue) has passed 1: all parts are done. */
  ds_status st = ds_fabric_barrier_wait(done, 1, DS_FABRIC_BARRIER_FOREVER);
  for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
  ds_fabric_barrier_destroy(done);
  if (st != DS_OK) return 1;
  /* Merge: min per pixel over the CPU parts and the OpenCL part (brought to the host). */
  const uint32_t *zo = NULL;
#if defined(DS_EXAMPLE_OPENCL)
  void *host = NULL;
  if (ocl_count > 0) {
    ds_buffer_release(s->zcl, s->ocl.dev);
    if (ds_buffer_acquire(&host, s->zcl, 0, DS_ACCESS_READ) != DS_OK) return 1;
    zo = host;
  }
#endif
  for (size_t i = 0; i < (size_t)W * H; i++) {
    uint32_t m = zo ? zo[i] : EMPTY;
    for (int t = 0; t < nt; t++) m = s->zpart[t][i] < m ? s->zpart[t][i] : m;
    s->image[i] = m;
  }
#if defined(DS_EXAMPLE_OPENCL)
  if (zo) ds_buffer_release(s->zcl, 0);
#endif
  return 0;
}

/* Median seconds per frame over 'frames' frames (one warm-up frame first). */
static double time_frames(struct scene *s, int frames, uint64_t cpu_count, int *err) {
  double v[64];
  *err |= render(s, 0, cpu_count);
  for (int f = 0; f < frames; f++) {
    double t0 = now_s();
    *err |= render(s, f, cpu_count);
    v[f] = now_s() - t0;
  }
  for (int i = 1; i < frames; i++) /* insertion sort: a handful of values */
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double x = v[j];
      v[j] = v[j - 1], v[j - 1] = x;
    }
  return frames % 2 ? v[frames / 2] : 0.5 * (v[frames / 2 - 1] + v[frames / 2]);
}

static void write_pgm(const char *path, const uint32_t *zb) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    return;
  }
  fprintf(f, "P5\n%d %d\n255\n", W, H);
  for (size_t i = 0; i < (size_t)W * H; i++) {
    float z;
    memcpy(&z, &zb[i], sizeof z);
    float shade = zb[i] == EMPTY ? 0.0f : 255.0f - 50.0f * (z - 2.0f);
    fputc(shade < 0 ? 0 : shade > 255 ? 255 : (int)shade, f);
  }
  fclose(f);
}

#ifndef POINT_CLOUD_POINTS
#define POINT_CLOUD_POINTS 20000000 /* the benchmark build uses fewer */
#endif
#ifndef POINT_CLOUD_FRAMES
#define POINT_CLOUD_FRAMES 5
#endif

int main(int argc, char **argv) {
  uint64_t n = POINT_CLOUD_POINTS;
  int frames = POINT_CLOUD_FRAMES, json = 0;
  const char *pgm = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--points") && i + 1 < argc) n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc) frames = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--pgm") && i + 1 < argc) pgm = argv[++i];
    else if (!strcmp(argv[i], "--json")) json = 1;
  }
  if (n < 1000 || n > 0xFFFFFFFFull || frames < 1 || frames > 63) {
    fprintf(stderr, "usage: %s [--points 1000..4294967295] [--frames 1..63] [--pgm out.pgm]\n", argv[0]);
    return 2;
  }
  struct scene s;
  memset(&s, 0, sizeof s);
  s.n = n;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  s.nthreads = ncpu < 1 ? 1 : ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu;
  FILE *out = json ? stderr : stdout; /* with --json, stdout has only the JSON row */
  if (ds_context_create(&s.ctx, NULL) != DS_OK) {
    fprintf(stderr, "context: %s\n", ds_context_last_error(NULL));
    return 1;
  }

  /* 1. The cloud, generated in parallel into a fabric buffer on CPU device 0. */
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.name = "points";
  if (ds_buffer_create(&s.points, s.ctx, (size_t)n * 3 * sizeof(float), &bo) != DS_OK) goto fail;
  void *h = NULL;
  if (ds_buffer_acquire(&h, s.points, 0, DS_ACCESS_WRITE) != DS_OK) goto fail;
  s.xyz = h;
  pthread_t th[MAX_THREADS];
  struct gen_job gj[MAX_THREADS];
  for (int t = 0; t < s.nthreads; t++) {
    gj[t] = (struct gen_job){h, n * (uint64_t)t / (uint64_t)s.nthreads, 0};
    gj[t].count = n * (uint64_t)(t + 1) / (uint64_t)s.nthreads - gj[t].first;
    pthread_create(&th[t], NULL, gen_thread, &gj[t]);
  }
  for (int t = 0; t < s.nthreads; t++) pthread_join(th[t], NULL);
  ds_buffer_release(s.points, 0);
  if (ds_buffer_acquire(&h, s.points, 0, DS_ACCESS_READ) != DS_OK) goto fail; /* held to the end */
  for (int t = 0; t < s.nthreads; t++) s.zpart[t] = malloc(sizeof(uint32_t) * W * H);
  s.image = malloc(sizeof(uint32_t) * W * H);
  uint32_t *reference = malloc(sizeof(uint32_t) * W * H);

  /* 2. The devices: the first OpenCL device, if any, gets the cloud through the fabric. */
  int32_t ndev = 0;
  ds_fabric_device_count(&ndev, s.ctx);
  fprintf(out, "%llu points, %d CPU threads, %d fabric devices:\n", (unsigned long long)n, s.nthreads,
         (int)ndev);
  for (int32_t i = 0; i < ndev; i++) {
    ds_device_info d = DS_DEVICE_INFO_INIT;
    ds_fabric_device_info(&d, s.ctx, i);
    fprintf(out, "  device %d: %s%s\n", (int)i, d.name,
           d.kind == DS_FABRIC_DEVICE_CUDA ? " (not used: no CUDA kernel in this example)" : "");
  }
  int have_ocl = 0;
#if defined(DS_EXAMPLE_OPENCL)
  s.ocl.dev = -1;
  if (ds_fabric_device_find(&s.ocl.dev, s.ctx, DS_FABRIC_DEVICE_OPENCL, 0) == DS_OK) {
    void *m = NULL;
    bo.name = "zbuffer-opencl";
    if (ds_buffer_acquire(&m, s.points, s.ocl.dev, DS_ACCESS_READ) == DS_OK &&
        ds_buffer_create(&s.zcl, s.ctx, sizeof(uint32_t) * W * H, &bo) == DS_OK &&
        ocl_setup(&s.ocl, (cl_mem)m)) {
      s.cl_points = (cl_mem)m;
      have_ocl = 1;
    } else {
      fprintf(out, "OpenCL device %d unusable (%s): CPU only\n", (int)s.ocl.dev,
             ds_context_last_error(s.ctx));
    }
  }
#endif

  /* 3. Each device alone, then the proportional split, checked against the CPU image. */
  int err = 0;
  double t_cpu = time_frames(&s, frames, n, &err);
  double t_ocl = have_ocl ? time_frames(&s, frames, 0, &err) : 0;
  double share = have_ocl ? (1.0 / t_cpu) / (1.0 / t_cpu + 1.0 / t_ocl) : 1.0;
  uint64_t cpu_count = (uint64_t)(share * (double)n);
  double t_split = have_ocl ? time_frames(&s, frames, cpu_count, &err) : t_cpu;
  if (err) goto fail;
  size_t differ = 0;
  err |= render(&s, 0, n); /* frame 0 on the CPU alone, then split */
  memcpy(reference, s.image, sizeof(uint32_t) * W * H);
  err |= render(&s, 0, cpu_count);
  if (err) goto fail;
  for (size_t i = 0; i < (size_t)W * H; i++) differ += s.image[i] != reference[i];
  size_t lit = 0;
  for (size_t i = 0; i < (size_t)W * H; i++) lit += s.image[i] != EMPTY;

  double best = have_ocl && t_ocl < t_cpu ? t_ocl : t_cpu;
  fprintf(out, "per frame (median of %d): CPU %.1f ms", frames, t_cpu * 1e3);
  if (have_ocl) fprintf(out, ", OpenCL %.1f ms", t_ocl * 1e3);
  fprintf(out, ", split %.1f ms (%.0f%% of the points on the CPU)\n", t_split * 1e3, share * 100);
  fprintf(out, "speedup of the split over the best single device: %.2fx\n", best / t_split);
  fprintf(out, "split image vs CPU-only image: %zu of %d pixels differ; %zu pixels lit\n", differ,
         W * H, lit);
  if (json)
    printf("{\"bench\":\"fabric_pointcloud\",\"case\":\"%llu_points\",\"metric\":\"ms_per_frame\","
           "\"ours\":%.4g,\"anchor\":\"best_single_device\",\"anchor_value\":%.4g,"
           "\"ratio\":%.4f,\"goal\":1,\"better\":\"lower\"}\n",
           (unsigned long long)n, t_split * 1e3, best * 1e3, t_split / best);
  if (pgm) write_pgm(pgm, s.image);

#if defined(DS_EXAMPLE_OPENCL)
  if (have_ocl) {
    ds_buffer_release(s.points, s.ocl.dev);
    clReleaseKernel(s.ocl.kernel);
    clReleaseCommandQueue(s.ocl.queue);
  }
#endif
  ds_buffer_release(s.points, 0);
  ds_buffer_destroy(s.zcl);
  ds_buffer_destroy(s.points);
  for (int t = 0; t < s.nthreads; t++) free(s.zpart[t]);
  free(s.image);
  free(reference);
  ds_context_destroy(s.ctx);
  return differ != 0;
fail:
  fprintf(stderr, "fabric_point_cloud: %s\n", ds_context_last_error(s.ctx));
  ds_context_destroy(s.ctx);
  return 1;
}
