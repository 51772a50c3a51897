/* Tests of OpenCL participants of the timestamp barrier, on whatever OpenCL device is present
 * (PoCL's CPU device on the build machine): a marker publishes only when its queue reaches it,
 * a queue waits for T without blocking the host, timestamps never go backwards, destroy
 * releases a queue still waiting. Skipped with a message when the build or the machine has no
 * OpenCL; the OpenCL entry points then answer DS_ERR_UNSUPPORTED. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "barrier_internal.h"
#include "build_config.h"
#include "test_util.h"

#if DS_HAVE_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif

#define SEC 1000000000LL

static ds_context *new_ctx(void) { return ds_test_context(NULL, 0); }

static ds_fabric_barrier *new_barrier(ds_context *ctx, uint32_t n) {
  ds_fabric_barrier_options o = DS_FABRIC_BARRIER_OPTIONS_INIT;
  o.participants = n;
  o.name = "cl-test";
  ds_fabric_barrier *b = NULL;
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, &o), DS_OK);
  return b;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#if DS_HAVE_OPENCL
struct cl {
  cl_context ctx;
  cl_command_queue q[2];
};

/* The first device of the first platform that has one; 0 when none. */
static int cl_open(struct cl *c) {
  cl_platform_id plats[8];
  cl_uint np = 0;
  if (clGetPlatformIDs(8, plats, &np) != CL_SUCCESS || np == 0) return 0;
  for (cl_uint i = 0; i < np && i < 8; i++) {
    cl_device_id dev;
    cl_uint nd = 0;
    if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 1, &dev, &nd) != CL_SUCCESS || nd == 0)
      continue;
    cl_int err;
    c->ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (err != CL_SUCCESS) continue;
    c->q[0] = clCreateCommandQueue(c->ctx, dev, 0, &err);
    c->q[1] = clCreateCommandQueue(c->ctx, dev, 0, &err);
    return err == CL_SUCCESS;
  }
  return 0;
}

static void cl_close(struct cl *c) {
  for (int i = 0; i < 2; i++) clReleaseCommandQueue(c->q[i]);
  clReleaseContext(c->ctx);
}

static int have_cl(struct cl *c, const char *test) {
  if (cl_open(c)) return 1;
  printf("%s: skipped, no OpenCL device on this machine\n", test);
  return 0;
}

static cl_int event_status(cl_event ev) {
  cl_int s = 0;
  clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof s, &s, NULL);
  return s;
}

/* A marker publishes only once the queue reaches it: here a gate (user event) holds it. */
static void test_cl_marker_publishes_in_queue_order(void **state) {
  (void)state;
  struct cl c;
  if (!have_cl(&c, "test_cl_marker_publishes_in_queue_order")) return;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2);
  cl_int err;
  cl_event gate = clCreateUserEvent(c.ctx, &err);
  assert_int_equal(err, CL_SUCCESS);
  assert_int_equal(clEnqueueBarrierWithWaitList(c.q[0], 1, &gate, NULL), CL_SUCCESS);
  assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, c.q[0], 1), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 1), DS_OK);
  sleep_ms(30);
  assert_int_equal(ds_fabric_barrier_wait(b, 1, 0), DS_ERR_TIMEOUT); /* held by the gate */
  uint64_t v = 9;
  assert_int_equal(ds_fabric_barrier_progress(b, 0, &v), DS_OK);
  assert_int_equal(v, 0);
  assert_int_equal(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS);
  assert_int_equal(ds_fabric_barrier_wait(b, 1, 30 * SEC), DS_OK);
  /* Several markers in a row: the last one's timestamp wins. */
  for (uint64_t t = 2; t <= 20; t++)
    assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, c.q[0], t), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 20), DS_OK);
  assert_int_equal(ds_fabric_barrier_wait(b, 20, 30 * SEC), DS_OK);
  clReleaseEvent(gate);
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
  cl_close(&c);
}

static void test_cl_bad_input(void **state) {
  (void)state;
  struct cl c;
  if (!have_cl(&c, "test_cl_bad_input")) return;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2);
  assert_int_equal(ds_fabric_barrier_publish_opencl(b, 2, c.q[0], 1), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, NULL, 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_barrier_publish_opencl(NULL, 0, c.q[0], 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, c.q[0], 5), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, c.q[0], 3), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "timestamp 3 goes backwards"));
  assert_int_equal(ds_fabric_barrier_publish(b, 0, 4), DS_ERR_INVALID_ARG); /* behind enqueued */
  assert_int_equal(ds_fabric_barrier_wait_opencl(b, NULL, 1, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(clFinish(c.q[0]), CL_SUCCESS);
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
  cl_close(&c);
}

/* The queue waits for T: a write enqueued behind the wait runs only after the host publishes. */
static void test_cl_queue_waits_for_t(void **state) {
  (void)state;
  struct cl c;
  if (!have_cl(&c, "test_cl_queue_waits_for_t")) return;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2);
  void *ev = NULL;
  assert_int_equal(ds_fabric_barrier_wait_opencl(b, c.q[1], 0, &ev), DS_OK);
  assert_null(ev); /* 0 is passed: nothing enqueued */
  assert_int_equal(ds_fabric_barrier_wait_opencl(b, c.q[1], 3, &ev), DS_OK);
  assert_non_null(ev);
  cl_int err;
  int host = 0, value = 42;
  cl_mem buf = clCreateBuffer(c.ctx, CL_MEM_READ_WRITE, sizeof(int), NULL, &err);
  assert_int_equal(err, CL_SUCCESS);
  cl_event wrote, read;
  assert_int_equal(clEnqueueWriteBuffer(c.q[1], buf, CL_FALSE, 0, sizeof value, &value, 0, NULL,
                                        &wrote), CL_SUCCESS);
  assert_int_equal(clEnqueueReadBuffer(c.q[1], buf, CL_FALSE, 0, sizeof host, &host, 0, NULL,
                                       &read), CL_SUCCESS);
  clFlush(c.q[1]);
  sleep_ms(30);
  assert_int_not_equal(event_status(wrote), CL_COMPLETE);
  assert_int_equal(ds_fabric_barrier_publish(b, 0, 3), DS_OK);
  sleep_ms(5);
  assert_int_not_equal(event_status(wrote), CL_COMPLETE); /* participant 1 still at 0 */
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 7), DS_OK); /* passes 3: releases the queue */
  assert_int_equal(clWaitForEvents(1, &read), CL_SUCCESS);
  assert_int_equal(host, 42);
  assert_int_equal(event_status((cl_event)ev), CL_COMPLETE);
  clReleaseEvent((cl_event)ev);
  clReleaseEvent(wrote);
  clReleaseEvent(read);
  clReleaseMemObject(buf);
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
  cl_close(&c);
}

/* An OpenCL queue and a CPU thread as two participants of one phase: the queue's marker for
 * phase k follows a device write; once the host sees phase k passed, the data is there. */
static void test_cl_and_cpu_phases(void **state) {
  (void)state;
  struct cl c;
  if (!have_cl(&c, "test_cl_and_cpu_phases")) return;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2);
  cl_int err;
  enum { PHASES = 50 };
  int out[PHASES];
  memset(out, 0, sizeof out);
  cl_mem buf = clCreateBuffer(c.ctx, CL_MEM_READ_WRITE, sizeof(int) * PHASES, NULL, &err);
  assert_int_equal(err, CL_SUCCESS);
  int vals[PHASES];
  for (int k = 0; k < PHASES; k++) {
    vals[k] = 1000 + k;
    assert_int_equal(clEnqueueWriteBuffer(c.q[0], buf, CL_FALSE, sizeof(int) * (size_t)k,
                                          sizeof(int), &vals[k], 0, NULL, NULL), CL_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(c.q[0], buf, CL_FALSE, sizeof(int) * (size_t)k,
                                         sizeof(int), &out[k], 0, NULL, NULL), CL_SUCCESS);
    assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, c.q[0], (uint64_t)k + 1), DS_OK);
  }
  for (int k = 0; k < PHASES; k++) {
    uint64_t t = 0;
    assert_int_equal(ds_fabric_barrier_arrive_and_wait(b, 1, 30 * SEC, &t), DS_OK);
    assert_int_equal(t, (uint64_t)k + 1);
    assert_int_equal(out[k], 1000 + k); /* the read before the marker has landed */
  }
  clReleaseMemObject(buf);
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
  cl_close(&c);
}

/* Destroy completes a pending device wait: the queue does not hang. */
static void test_cl_destroy_releases_queue(void **state) {
  (void)state;
  struct cl c;
  if (!have_cl(&c, "test_cl_destroy_releases_queue")) return;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2);
  void *ev = NULL;
  assert_int_equal(ds_fabric_barrier_wait_opencl(b, c.q[1], 100, &ev), DS_OK);
  assert_non_null(ev);
  ds_fabric_barrier_destroy(b);
  assert_int_equal(event_status((cl_event)ev), CL_COMPLETE);
  clReleaseEvent((cl_event)ev);
  assert_int_equal(clFinish(c.q[1]), CL_SUCCESS);
  ds_context_destroy(ctx);
  cl_close(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cl_marker_publishes_in_queue_order),
      cmocka_unit_test(test_cl_bad_input),
      cmocka_unit_test(test_cl_queue_waits_for_t),
      cmocka_unit_test(test_cl_and_cpu_phases),
      cmocka_unit_test(test_cl_destroy_releases_queue),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
static void test_cl_unsupported(void **state) {
  (void)state;
  printf("test_fabric_barrier_cl: skipped, built without OpenCL\n");
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2);
  void *ev = (void *)1;
  assert_int_equal(ds_fabric_barrier_publish_opencl(b, 0, NULL, 1), DS_ERR_UNSUPPORTED);
  assert_int_equal(ds_fabric_barrier_wait_opencl(b, NULL, 1, &ev), DS_ERR_UNSUPPORTED);
  assert_null(ev);
  (void)sleep_ms;
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_cl_unsupported)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
