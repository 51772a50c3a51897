/* Fabric transfers to and from the first OpenCL device (PoCL's CPU device on the CI machine):
 *   h2d / d2h   bandwidth of a buffer made valid on the device (or back on the host) through
 *               ds_buffer_acquire, against raw clEnqueueWriteBuffer / clEnqueueReadBuffer of the
 *               same bytes on the same device (goal: ratio >= 0.95);
 *   roundtrip   host writes, a kernel scales the buffer on the device, the host reads it:
 *               zero-copy (CL_MEM_USE_HOST_PTR) against the copy path (goal: <= 1);
 *   acquire     an acquire/release pair with nothing to move, against two mutex pairs;
 *   d2d         with a second OpenCL device of the same platform (POCL_DEVICES="pthread
 *               pthread"), a replica copied directly between the two against staged through
 *               the host replica (goal: >= 1); and the direct copy through
 *               ds_buffer_acquire_async (the prefetch path: the copy is only queued) against
 *               the blocking acquire: the caller's time (goal <= 0.5) and the bandwidth once
 *               waited for (goal >= 0.95).
 * Medians of several repetitions. Skips (exit 0) without an OpenCL device. */
#include "bench_fabric_common.h"

#if DS_BENCH_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <pthread.h>

enum { REPS = 9 };

struct raw {
  cl_context context;
  cl_device_id device;
  cl_command_queue queue;
  cl_mem mem;
};

/* A raw queue and buffer on the fabric's OpenCL device (found through a fabric cl_mem). */
static int raw_open(struct raw *r, cl_mem fabric_mem, size_t size) {
  cl_int err = CL_SUCCESS;
  cl_device_id ids[16]; /* the fabric's first OpenCL device is its platform's first */
  if (clGetMemObjectInfo(fabric_mem, CL_MEM_CONTEXT, sizeof r->context, &r->context, NULL) ||
      clGetContextInfo(r->context, CL_CONTEXT_DEVICES, sizeof ids, ids, NULL))
    return 0;
  r->device = ids[0];
  r->queue = clCreateCommandQueue(r->context, r->device, 0, &err);
  if (err) return 0;
  r->mem = clCreateBuffer(r->context, CL_MEM_READ_WRITE, size, NULL, &err);
  return err == CL_SUCCESS;
}

static void raw_close(struct raw *r) {
  clReleaseMemObject(r->mem);
  clReleaseCommandQueue(r->queue);
}

static double raw_once(struct raw *r, void *host, size_t size, int to_device) {
  double t0 = bench_now_s();
  if (to_device)
    clEnqueueWriteBuffer(r->queue, r->mem, CL_TRUE, 0, size, host, 0, NULL, NULL);
  else
    clEnqueueReadBuffer(r->queue, r->mem, CL_TRUE, 0, size, host, 0, NULL, NULL);
  return bench_now_s() - t0;
}

static void bandwidth_case(ds_context *ctx, int32_t dev, size_t size, int to_device, int json,
                           int *hdr) {
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = DS_BUFFER_NO_ZERO_COPY;
  ds_buffer *b = NULL;
  check(ds_buffer_create(&b, ctx, size, &o), "create");
  void *mem = NULL, *host = NULL;
  check(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_READ), "warm-up"); /* allocates the replica */
  check(ds_buffer_release(b, dev), "release");
  check(ds_buffer_acquire(&host, b, 0, DS_ACCESS_READ), "host pointer");
  check(ds_buffer_release(b, 0), "release");
  struct raw r;
  if (!raw_open(&r, (cl_mem)mem, size)) {
    fprintf(stderr, "bench_fabric_transfer: raw OpenCL setup failed\n");
    exit(1);
  }
  /* Warm the raw buffer like the fabric's: written once (PoCL reads a never-written buffer
   * faster, which would flatter the anchor), then read. */
  raw_once(&r, host, size, 1);
  raw_once(&r, host, size, 0);
  double tf[REPS], tr[REPS];
  for (int i = 0; i < REPS; i++) { /* interleaved, alternating who goes first */
    if (i % 2) tr[i] = raw_once(&r, host, size, to_device);
    tf[i] = fabric_once(b, dev, to_device);
    if (!(i % 2)) tr[i] = raw_once(&r, host, size, to_device);
  }
  double gf = (double)size / bench_median(tf, REPS) / 1e9;
  double gr = (double)size / bench_median(tr, REPS) / 1e9;
  char cname[48];
  snprintf(cname, sizeof cname, "%s_%zuMiB", to_device ? "h2d" : "d2h", size >> 20);
  bench_row row = {"fabric_transfer", cname, "GB/s", gf,
                   to_device ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer", gr, 0.95, "higher"};
  bench_print(&row, json, hdr);
  raw_close(&r);
  check(ds_buffer_destroy(b), "destroy");
}

static const char *k_src =
    "__kernel void scale(__global float *x) { size_t i = get_global_id(0); x[i] *= 2.0f; }\n";

/* Host writes, the device scales, the host reads: seconds per round. */
static double roundtrip(ds_context *ctx, int32_t dev, size_t size, uint32_t flags,
                        double *copies) {
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = flags;
  ds_buffer *b = NULL;
  check(ds_buffer_create(&b, ctx, size, &o), "create");
  void *mem = NULL;
  check(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_READ), "warm-up");
  check(ds_buffer_release(b, dev), "release");
  cl_context cctx;
  cl_device_id ids[16], did; /* the first device of the context: the fabric's first */
  cl_int err = CL_SUCCESS;
  clGetMemObjectInfo((cl_mem)mem, CL_MEM_CONTEXT, sizeof cctx, &cctx, NULL);
  clGetContextInfo(cctx, CL_CONTEXT_DEVICES, sizeof ids, ids, NULL);
  did = ids[0];
  cl_command_queue q = clCreateCommandQueue(cctx, did, 0, &err);
  cl_program prog = clCreateProgramWithSource(cctx, 1, &k_src, NULL, &err);
  clBuildProgram(prog, 1, &did, "", NULL, NULL);
  cl_kernel k = clCreateKernel(prog, "scale", &err);
  if (err) {
    fprintf(stderr, "bench_fabric_transfer: kernel build failed (%d)\n", (int)err);
    exit(1);
  }
  ds_stats *s0 = NULL, *s1 = NULL;
  double c0 = 0, c1 = 0;
  double t[REPS];
  ds_stats_snapshot(&s0, ctx);
  ds_stats_find(&c0, s0, "fabric.copies");
  for (int i = 0; i < REPS; i++) {
    double t0 = bench_now_s();
    float *h = NULL;
    check(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), "host write");
    for (size_t j = 0; j < size / sizeof(float); j += 1024) h[j] = (float)j;
    check(ds_buffer_release(b, 0), "release");
    check(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_RW), "device rw");
    size_t global = size / sizeof(float);
    clSetKernelArg(k, 0, sizeof mem, &mem);
    clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    clFinish(q);
    check(ds_buffer_release(b, dev), "release");
    check(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), "host read");
    if (h[1024] != 2048.0f) {
      fprintf(stderr, "bench_fabric_transfer: wrong result %g\n", (double)h[1024]);
      exit(1);
    }
    check(ds_buffer_release(b, 0), "release");
    t[i] = bench_now_s() - t0;
  }
  ds_stats_snapshot(&s1, ctx);
  ds_stats_find(&c1, s1, "fabric.copies");
  *copies = (c1 - c0) / REPS;
  ds_stats_free(s0), ds_stats_free(s1);
  clReleaseKernel(k), clReleaseProgram(prog), clReleaseCommandQueue(q);
  check(ds_buffer_destroy(b), "destroy");
  return bench_median(t, REPS);
}

/* Cost of an acquire/release pair with nothing to move (valid replica), against the
 * uncontended mutex lock/unlock pair it is built on: ns per pair. */
static void acquire_overhead(ds_context *ctx, int32_t dev, int json, int *hdr) {
  ds_buffer *b = NULL;
  check(ds_buffer_create(&b, ctx, 4096, NULL), "create");
  void *p = NULL;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  enum { ITERS = 200000 };
  double ta[REPS], tm[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    for (int i = 0; i < ITERS; i++) {
      ds_buffer_acquire(&p, b, dev, DS_ACCESS_READ);
      ds_buffer_release(b, dev);
    }
    ta[r] = (bench_now_s() - t0) / ITERS * 1e9;
    t0 = bench_now_s();
    for (int i = 0; i < ITERS; i++) {
      pthread_mutex_lock(&mu);
      pthread_mutex_unlock(&mu);
      pthread_mutex_lock(&mu);
      pthread_mutex_unlock(&mu);
    }
    tm[r] = (bench_now_s() - t0) / ITERS * 1e9;
  }
  char cname[48];
  snprintf(cname, sizeof cname, "acquire_release_dev%d", (int)dev);
  bench_row row = {"fabric_transfer", cname, "ns", bench_median(ta, REPS),
                   "2x mutex lock+unlock", bench_median(tm, REPS), 3.0, "lower"};
  bench_print(&row, json, hdr);
  check(ds_buffer_destroy(b), "destroy");
}

/* Device a -> device b of one OpenCL context: the replica copied directly (clEnqueueCopyBuffer)
 * against staged through the host replica (fabric_peer_copy 0), alternating in one loop. */
static void d2d_case(ds_context *ctx, int32_t a, int32_t b, size_t size, int json, int *hdr) {
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = DS_BUFFER_NO_ZERO_COPY; /* device allocations on both */
  ds_buffer *buf = NULL;
  check(ds_buffer_create(&buf, ctx, size, &o), "create");
  double t[2][REPS];
  void *m = NULL;
  for (int r = -1; r < REPS; r++) /* round -1 allocates both replicas */
    for (int peer = 0; peer < 2; peer++) {
      check(ds_context_set_param(ctx, DS_PARAM_FABRIC_PEER_COPY, peer), "param");
      check(ds_buffer_acquire(&m, buf, a, DS_ACCESS_WRITE), "write on a");
      check(ds_buffer_release(buf, a), "release");
      double t0 = bench_now_s();
      check(ds_buffer_acquire(&m, buf, b, DS_ACCESS_READ), "read on b");
      if (r >= 0) t[peer][r] = bench_now_s() - t0;
      check(ds_buffer_release(buf, b), "release");
    }
  check(ds_context_set_param(ctx, DS_PARAM_FABRIC_PEER_COPY, 1), "param");
  char cname[48];
  snprintf(cname, sizeof cname, "d2d_direct_%zuMiB", size >> 20);
  bench_row row = {"fabric_transfer", cname, "GB/s", (double)size / bench_median(t[1], REPS) / 1e9,
                   "staged through host (fabric)", (double)size / bench_median(t[0], REPS) / 1e9,
                   1.0, "higher"};
  bench_print(&row, json, hdr);
  check(ds_buffer_destroy(buf), "destroy");
}

/* Device a -> device b directly, with ds_buffer_acquire_async (the prefetch path) against the
 * plain acquire, alternating: how long the asynchronous acquire holds its caller (the copy is
 * only queued) and the bandwidth once its event is waited for. */
static void d2d_async_case(ds_context *ctx, int32_t a, int32_t b, size_t size, int json,
                           int *hdr) {
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = DS_BUFFER_NO_ZERO_COPY;
  ds_buffer *buf = NULL;
  check(ds_buffer_create(&buf, ctx, size, &o), "create");
  double sync[REPS], submit[REPS], done[REPS];
  void *m = NULL;
  for (int r = -1; r < REPS; r++)
    for (int way = 0; way < 2; way++) {
      check(ds_buffer_acquire(&m, buf, a, DS_ACCESS_WRITE), "write on a");
      check(ds_buffer_release(buf, a), "release");
      ds_fabric_event *ev = NULL;
      double t0 = bench_now_s(), t1;
      if (way == 0) {
        check(ds_buffer_acquire(&m, buf, b, DS_ACCESS_READ), "read on b");
        t1 = bench_now_s();
        if (r >= 0) sync[r] = t1 - t0;
      } else {
        check(ds_buffer_acquire_async(&m, &ev, buf, b, DS_ACCESS_READ), "async read on b");
        t1 = bench_now_s();
        check(ds_fabric_event_wait(ev), "event");
        if (r >= 0) submit[r] = t1 - t0, done[r] = bench_now_s() - t0;
      }
      check(ds_buffer_release(buf, b), "release");
    }
  char cname[48];
  snprintf(cname, sizeof cname, "d2d_async_submit_%zuMiB", size >> 20);
  bench_row row = {"fabric_transfer", cname, "ms", bench_median(submit, REPS) * 1e3,
                   "blocking direct acquire (fabric)", bench_median(sync, REPS) * 1e3, 0.5,
                   "lower"};
  bench_print(&row, json, hdr);
  snprintf(cname, sizeof cname, "d2d_async_total_%zuMiB", size >> 20);
  bench_row row2 = {"fabric_transfer", cname, "GB/s", (double)size / bench_median(done, REPS) / 1e9,
                    "blocking direct acquire (fabric)",
                    (double)size / bench_median(sync, REPS) / 1e9, 0.95, "higher"};
  bench_print(&row2, json, hdr);
  check(ds_buffer_destroy(buf), "destroy");
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), hdr = 0;
  ds_context *ctx = bench_context("bench_fabric_transfer", NULL, 0);
  int32_t dev = -1;
  if (ds_fabric_device_find(&dev, ctx, DS_FABRIC_DEVICE_OPENCL, 0) != DS_OK) {
    printf("bench_fabric_transfer: no OpenCL device: skipped\n");
    ds_context_destroy(ctx);
    return 0;
  }
  ds_device_info info = DS_DEVICE_INFO_INIT;
  ds_fabric_device_info(&info, ctx, dev);
  if (!json) printf("OpenCL device: %s\n", info.name);
  const size_t sizes[] = {(size_t)4 << 20, (size_t)64 << 20};
  for (int s = 0; s < 2; s++)
    for (int dir = 1; dir >= 0; dir--) bandwidth_case(ctx, dev, sizes[s], dir, json, &hdr);
  double cz = 0, cc = 0;
  double tz = roundtrip(ctx, dev, (size_t)64 << 20, 0, &cz);
  double tc = roundtrip(ctx, dev, (size_t)64 << 20, DS_BUFFER_NO_ZERO_COPY, &cc);
  bench_row row = {"fabric_transfer", "roundtrip_64MiB", "s", tz, "copy path (fabric)", tc, 1.0,
                   "lower"};
  bench_print(&row, json, &hdr);
  bench_row row2 = {"fabric_transfer", "roundtrip_copies", "copies", cz, "copy path (fabric)",
                    cc, 0.0, "lower"};
  bench_print(&row2, json, &hdr);
  acquire_overhead(ctx, 0, json, &hdr);
  acquire_overhead(ctx, dev, json, &hdr);
  int32_t dev2 = -1; /* a second OpenCL device, e.g. with POCL_DEVICES="pthread pthread" */
  if (ds_fabric_device_find(&dev2, ctx, DS_FABRIC_DEVICE_OPENCL, 1) == DS_OK)
    for (int s = 0; s < 2; s++) {
      d2d_case(ctx, dev, dev2, sizes[s], json, &hdr);
      d2d_async_case(ctx, dev, dev2, sizes[s], json, &hdr);
    }
  else if (!json)
    printf("no second OpenCL device: device-to-device case skipped (POCL_DEVICES=\"pthread "
           "pthread\" gives PoCL two)\n");
  ds_context_destroy(ctx);
  return 0;
}
#else
int main(void) {
  printf("bench_fabric_transfer: built without OpenCL: skipped\n");
  return 0;
}
#endif
