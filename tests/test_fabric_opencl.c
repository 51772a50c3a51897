/* Tests of the fabric's OpenCL backend against a real OpenCL device (PoCL's CPU device on the
 * CI machine): MSI transitions between the CPU and the device with correct data, zero-copy that
 * really uses the host bytes, copies when zero-copy is off, stats, asynchronous acquire, and a
 * kernel built from source and launched on an acquired buffer. Skipped with a message where no
 * OpenCL device exists (failing instead with DS_REQUIRE_OPENCL=1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "fabric_internal.h"
#include "test_util.h"

#if DS_HAVE_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif

static ds_context *new_ctx(int zero_copy) {
  ds_param_value pv[] = {{DS_PARAM_FABRIC_ZERO_COPY, 0, zero_copy}};
  return ds_test_context(pv, 1);
}

/* The first OpenCL device, or -1 (the test is then skipped). */
static int32_t cl_device(ds_context *ctx, ds_device_info *info) {
  int32_t dev = -1;
  if (ds_fabric_device_find(&dev, ctx, DS_FABRIC_DEVICE_OPENCL, 0) != DS_OK) return -1;
  assert_int_equal(ds_fabric_device_info(info, ctx, dev), DS_OK);
  return dev;
}

static int skip_without_device(int32_t dev) {
  if (dev >= 0) return 0;
  const char *req = getenv("DS_REQUIRE_OPENCL");
  if (req && *req == '1') fail_msg("DS_REQUIRE_OPENCL=1 but no OpenCL device was found");
  printf("test_fabric_opencl: no OpenCL device (built with OpenCL: %d): skipped\n",
         DS_HAVE_OPENCL);
  return 1;
}

#if DS_HAVE_OPENCL
/* Reads a cl_mem's bytes with the raw API, independently of the fabric. */
static void raw_read(ds_context *ctx, int32_t dev, void *mem, void *out, size_t n) {
  const struct ds__fabric_device *d = ds__fabric_device(ctx, dev);
  char msg[128];
  assert_int_equal(d->be->ops.copy_out(d->be->user, d->local, out, mem, 0, n, NULL, msg, sizeof msg),
                   DS_OK);
}
#endif

static void fill(float *p, size_t n, float base) {
  for (size_t i = 0; i < n; i++) p[i] = base + (float)i;
}

/* A buffer of @p n floats written on the host: base, base + 1, ... */
static ds_buffer *host_filled(ds_context *ctx, size_t n, float base, const ds_buffer_options *o) {
  ds_buffer *b = NULL;
  float *h = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, n * sizeof(float), o), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), DS_OK);
  fill(h, n, base);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  return b;
}

/* Copy path: write on the CPU, read on OpenCL (device bytes checked with a raw read), write on
 * OpenCL, read on the CPU; replicas move through Modified/Shared/Invalid. */
static void test_msi_cpu_opencl_copy(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(0);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int32_t dev = cl_device(ctx, &info);
  if (skip_without_device(dev)) goto done;
#if DS_HAVE_OPENCL
  enum { N = 4096 };
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.name = "x";
  ds_buffer *b = host_filled(ctx, N, 1.0f, &o);
  float *h = NULL, back[N];
  void *mem = NULL;
  ds_replica_state st;
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_state(&st, b, dev), DS_OK);
  assert_int_equal(st, DS_REPLICA_INVALID);
  assert_int_equal(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_READ), DS_OK);
  assert_ptr_not_equal(mem, h);
  raw_read(ctx, dev, mem, back, sizeof back);
  assert_true(back[0] == 1.0f && back[N - 1] == (float)N);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_state(&st, b, dev), DS_OK);
  assert_int_equal(st, DS_REPLICA_SHARED);
  assert_int_equal(ds_buffer_state(&st, b, 0), DS_OK);
  assert_int_equal(st, DS_REPLICA_SHARED);
  /* Write on the device with the raw API, then the host sees it after a READ acquire. */
  assert_int_equal(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_WRITE), DS_OK);
  const struct ds__fabric_device *d = ds__fabric_device(ctx, dev);
  char msg[128];
  fill(back, N, 100.0f);
  assert_int_equal(d->be->ops.copy_in(d->be->user, d->local, mem, 0, back, sizeof back, NULL, msg,
                                      sizeof msg), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_state(&st, b, 0), DS_OK);
  assert_int_equal(st, DS_REPLICA_INVALID);
  assert_int_equal(ds_buffer_state(&st, b, dev), DS_OK);
  assert_int_equal(st, DS_REPLICA_MODIFIED);
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_true(h[0] == 100.0f && h[N - 1] == 100.0f + (float)(N - 1));
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  /* Counted: one copy in, one copy out, the raw write is not the fabric's. */
  char name[64];
  snprintf(name, sizeof name, "fabric.dev%d.copies", (int)dev);
  assert_true(ds_test_stat(ctx, name) == 2);
  assert_true(ds_test_stat(ctx, "fabric.bytes_moved") == 2.0 * sizeof back);
  assert_true(ds_test_stat(ctx, "fabric.copies_avoided") == 0);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
#endif
done:
  ds_context_destroy(ctx);
}

/* Zero-copy: on a CPU OpenCL device the cl_mem maps to the very host bytes. */
static void test_zero_copy_is_in_place(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(1);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int32_t dev = cl_device(ctx, &info);
  if (skip_without_device(dev)) goto done;
#if DS_HAVE_OPENCL
  if (!(info.caps & DS_DEVICE_CAP_MAP_HOST)) {
    printf("test_fabric_opencl: %s cannot map host memory: zero-copy case skipped\n", info.name);
    goto done;
  }
  enum { N = 1024 };
  ds_buffer *b = host_filled(ctx, N, 5.0f, NULL);
  float *h = NULL;
  void *mem = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK); /* its bytes */
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_RW), DS_OK);
  /* The device's mapping of the cl_mem is the host replica itself. */
  cl_command_queue q = NULL;
  cl_context cctx = NULL;
  cl_device_id did = NULL;
  assert_int_equal(clGetMemObjectInfo((cl_mem)mem, CL_MEM_CONTEXT, sizeof cctx, &cctx, NULL),
                   CL_SUCCESS);
  void *host_ptr = NULL;
  assert_int_equal(clGetMemObjectInfo((cl_mem)mem, CL_MEM_HOST_PTR, sizeof host_ptr, &host_ptr,
                                      NULL), CL_SUCCESS);
  cl_device_id ids[16]; /* one context per platform: the first OpenCL device is its first */
  assert_int_equal(clGetContextInfo(cctx, CL_CONTEXT_DEVICES, sizeof ids, ids, NULL), CL_SUCCESS);
  did = ids[0];
  cl_device_type type = 0;
  clGetDeviceInfo(did, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  if (host_ptr != (void *)h && !(type & CL_DEVICE_TYPE_CPU)) { /* e.g. an iGPU that copies */
    printf("test_fabric_opencl: %s does not use host memory in place: skipped\n", info.name);
    assert_int_equal(ds_buffer_release(b, dev), DS_OK);
    assert_int_equal(ds_buffer_destroy(b), DS_OK);
    goto done;
  }
  assert_ptr_equal(host_ptr, h); /* a CPU device (PoCL) must: that is the zero-copy claim */
  cl_int err = CL_SUCCESS;
  q = clCreateCommandQueue(cctx, did, 0, &err);
  assert_int_equal(err, CL_SUCCESS);
  float *mapped = clEnqueueMapBuffer(q, (cl_mem)mem, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0,
                                     N * sizeof(float), 0, NULL, NULL, &err);
  assert_int_equal(err, CL_SUCCESS);
  assert_ptr_equal(mapped, h);
  mapped[3] = -1.0f; /* a device-side write lands in the host bytes */
  clEnqueueUnmapMemObject(q, (cl_mem)mem, mapped, 0, NULL, NULL);
  clFinish(q);
  clReleaseCommandQueue(q);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_true(h[3] == -1.0f && h[4] == 9.0f);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_true(ds_test_stat(ctx, "fabric.copies") == 0);
  assert_true(ds_test_stat(ctx, "fabric.bytes_moved") == 0);
  assert_true(ds_test_stat(ctx, "fabric.copies_avoided") == 2); /* to the device and back */
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
#endif
done:
  ds_context_destroy(ctx);
}

static const char *k_scale =
    "__kernel void scale(__global float *x, float a) {\n"
    "  size_t i = get_global_id(0);\n"
    "  x[i] = x[i] * a;\n"
    "}\n";

/* A kernel on the OpenCL device between two CPU accesses, both with and without zero-copy. */
static void run_kernel_case(int zero_copy) {
  ds_context *ctx = new_ctx(zero_copy);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int32_t dev = cl_device(ctx, &info);
  if (skip_without_device(dev)) goto done;
  enum { N = 2048 };
  ds_buffer *b = host_filled(ctx, N, 0.0f, NULL);
  float *h = NULL;
  void *mem = NULL, *k = NULL, *k2 = NULL;
  assert_int_equal(ds__fabric_cl_kernel(ctx, dev, k_scale, "scale", &k), DS_OK);
  assert_int_equal(ds__fabric_cl_kernel(ctx, dev, k_scale, "scale", &k2), DS_OK);
  assert_ptr_equal(k, k2); /* built once, cached */
  ds_fabric_event *ev = NULL;
  assert_int_equal(ds_buffer_acquire_async(&mem, &ev, b, dev, DS_ACCESS_RW), DS_OK);
  assert_int_equal(ds_fabric_event_wait(ev), DS_OK);
  float a = 3.0f;
  void *args[2] = {&mem, &a};
  size_t sizes[2] = {sizeof mem, sizeof a};
  size_t global = N;
  void *done_ev = NULL, *marker = NULL;
  assert_int_equal(ds__fabric_launch(ctx, dev, k, args, sizes, 2, &global, 1, &done_ev), DS_OK);
  assert_non_null(done_ev); /* asynchronous: queued on the device */
  assert_int_equal(ds__fabric_event_record(ctx, dev, &marker), DS_OK);
  assert_non_null(marker);
  assert_int_equal(ds__fabric_event_wait(ctx, dev, marker), DS_OK);
  ds__fabric_event_release(ctx, dev, marker);
  assert_int_equal(ds__fabric_event_wait(ctx, dev, done_ev), DS_OK);
  ds__fabric_event_release(ctx, dev, done_ev);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  for (int i = 0; i < N; i++) assert_true(h[i] == 3.0f * (float)i);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
  /* Bad kernels: a clear status naming the kernel. */
  assert_int_equal(ds__fabric_cl_kernel(ctx, dev, "__kernel void f( {", "f", &k), DS_ERR_DEVICE);
  assert_non_null(strstr(ds_context_last_error(ctx), "f"));
  assert_int_equal(ds__fabric_cl_kernel(ctx, dev, k_scale, "nope", &k), DS_ERR_NOT_FOUND);
  assert_non_null(strstr(ds_context_last_error(ctx), "nope"));
  assert_int_equal(ds__fabric_cl_kernel(ctx, 0, k_scale, "scale", &k), DS_ERR_UNSUPPORTED);
done:
  ds_context_destroy(ctx);
}

/* A prefetch starts an asynchronous copy; a reader that does not wait for its event still
 * sees the finished bytes (the fabric waits for copies in flight), and nothing is copied twice. */
static void test_prefetch_then_read(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(0);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int32_t dev = cl_device(ctx, &info);
  if (skip_without_device(dev)) goto done;
#if DS_HAVE_OPENCL
  enum { N = 1 << 20 };
  ds_buffer *b = host_filled(ctx, N, 7.0f, NULL);
  static float back[N];
  void *ev = NULL, *mem = NULL;
  assert_int_equal(ds__buffer_prefetch(b, dev, &ev), DS_OK);
  assert_int_equal(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_READ), DS_OK);
  raw_read(ctx, dev, mem, back, sizeof back);
  assert_true(back[0] == 7.0f && back[N - 1] == 7.0f + (float)(N - 1));
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_int_equal(ds__fabric_event_wait(ctx, dev, ev), DS_OK);
  ds__fabric_event_release(ctx, dev, ev);
  assert_true(ds_test_stat(ctx, "fabric.copies") == 1);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
#endif
done:
  ds_context_destroy(ctx);
}

/* Two threads increment every element K times each, alternating between the CPU and the
 * OpenCL device, retrying on DS_ERR_BUSY: the final values prove that writers were exclusive
 * and that every hand-over moved (or synced) the latest bytes. */
static const char *k_inc =
    "__kernel void inc(__global int *x) { x[get_global_id(0)] += 1; }\n";

struct stress {
  ds_context *ctx;
  ds_buffer *b;
  int32_t dev;
  void *kernel;
  int n, k, seed, errors;
};

static void *stress_thread(void *arg) {
  struct stress *s = arg;
  for (int i = 0; i < s->k; i++) {
    int32_t where = ((i + s->seed) % 2) ? s->dev : 0;
    void *p = NULL;
    ds_status st;
    while ((st = ds_buffer_acquire(&p, s->b, where, DS_ACCESS_RW)) == DS_ERR_BUSY) sched_yield();
    if (st != DS_OK) {
      s->errors++;
      continue;
    }
    if (where == 0) {
      for (int j = 0; j < s->n; j++) ((int *)p)[j] += 1;
    } else {
      void *args[1] = {&p};
      size_t sizes[1] = {sizeof p}, global = (size_t)s->n;
      if (ds__fabric_launch(s->ctx, s->dev, s->kernel, args, sizes, 1, &global, 1, NULL) != DS_OK)
        s->errors++;
    }
    if (ds_buffer_release(s->b, where) != DS_OK) s->errors++;
  }
  return NULL;
}

static void run_stress(int zero_copy) {
  ds_context *ctx = new_ctx(zero_copy);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int32_t dev = cl_device(ctx, &info);
  if (skip_without_device(dev)) goto done;
  enum { N = 4096, K = 40 };
  struct stress s[2];
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, N * sizeof(int), NULL), DS_OK);
  void *kernel = NULL;
  assert_int_equal(ds__fabric_cl_kernel(ctx, dev, k_inc, "inc", &kernel), DS_OK);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    s[i] = (struct stress){ctx, b, dev, kernel, N, K, i, 0};
    assert_int_equal(pthread_create(&t[i], NULL, stress_thread, &s[i]), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(s[i].errors, 0);
  }
  int *h = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  for (int j = 0; j < N; j++) assert_int_equal(h[j], 2 * K);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
done:
  ds_context_destroy(ctx);
}

/* A kernel launched asynchronously on an aliasing replica still uses the host bytes after the
 * release: a WRITE acquire elsewhere first waits for it (else the CPU would see it unfinished). */
static const char *k_set = "__kernel void set1(__global int *x) { x[get_global_id(0)] = 1; }\n";

static void test_write_waits_for_aliased_kernel(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(1);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int32_t dev = cl_device(ctx, &info);
  if (skip_without_device(dev)) goto done;
#if DS_HAVE_OPENCL
  if (!(info.caps & DS_DEVICE_CAP_MAP_HOST)) { /* a discrete device: nothing aliases */
    printf("test_fabric_opencl: %s cannot map host memory: aliasing case skipped\n", info.name);
    goto done;
  }
  enum { N = 1 << 22 };
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, N * sizeof(int), NULL), DS_OK);
  void *kernel = NULL, *mem = NULL, *ev = NULL;
  assert_int_equal(ds__fabric_cl_kernel(ctx, dev, k_set, "set1", &kernel), DS_OK);
  void *hostp = NULL, *mem_host = NULL;
  assert_int_equal(ds_buffer_acquire(&hostp, b, 0, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_WRITE), DS_OK);
  clGetMemObjectInfo((cl_mem)mem, CL_MEM_HOST_PTR, sizeof mem_host, &mem_host, NULL);
  if (mem_host != hostp) { /* the implementation would copy: the fabric did not alias */
    printf("test_fabric_opencl: %s does not use host memory in place: skipped\n", info.name);
    assert_int_equal(ds_buffer_release(b, dev), DS_OK);
    assert_int_equal(ds_buffer_destroy(b), DS_OK);
    goto done;
  }
  void *args[1] = {&mem};
  size_t sizes[1] = {sizeof mem}, global = N;
  assert_int_equal(ds__fabric_launch(ctx, dev, kernel, args, sizes, 1, &global, 1, &ev), DS_OK);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  int *h = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), DS_OK);
  long ones = 0;
  for (int i = 0; i < N; i++) ones += h[i] == 1;
  assert_int_equal(ones, N);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_int_equal(ds__fabric_event_wait(ctx, dev, ev), DS_OK);
  ds__fabric_event_release(ctx, dev, ev);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
#endif
done:
  ds_context_destroy(ctx);
}

static void test_stress_copies(void **state) {
  (void)state;
  run_stress(0);
}

static void test_stress_zero_copy(void **state) {
  (void)state;
  run_stress(1);
}

static void test_kernel_zero_copy(void **state) {
  (void)state;
  run_kernel_case(1);
}

static void test_kernel_with_copies(void **state) {
  (void)state;
  run_kernel_case(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_msi_cpu_opencl_copy),
      cmocka_unit_test(test_zero_copy_is_in_place),
      cmocka_unit_test(test_prefetch_then_read),
      cmocka_unit_test(test_kernel_zero_copy),
      cmocka_unit_test(test_kernel_with_copies),
      cmocka_unit_test(test_write_waits_for_aliased_kernel),
      cmocka_unit_test(test_stress_copies),
      cmocka_unit_test(test_stress_zero_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
