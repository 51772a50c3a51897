/* Helpers shared by the fabric graph tests (test_fabric_graph.c, test_fabric_plan.c): a context
 * with two unbound scheduler workers, a do-nothing kernel with a CPU and an OpenCL
 * implementation, and a zero-filled buffer. Include after <cmocka.h> and test_util.h. */
#ifndef DS_TEST_FABRIC_UTIL_H
#define DS_TEST_FABRIC_UTIL_H

#include "deepseek.h"

static inline ds_context *new_ctx(void) {
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 2}, {DS_PARAM_SCHED_BIND, 0, 0}};
  return ds_test_context(pv, 2);
}

static inline ds_status noop_cpu(void *const *b, const size_t *s, size_t n, const void *a,
                                 size_t l) {
  (void)b, (void)s, (void)n, (void)a, (void)l;
  return DS_OK;
}

/* A kernel that does nothing, runnable on CPU and OpenCL devices. */
static inline ds_kernel *both_kernel(ds_context *ctx, const char *name) {
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = name;
  ko.cpu = noop_cpu;
  ko.opencl_source = "__kernel void f(void) {}";
  ko.opencl_name = "f";
  ds_kernel *k = NULL;
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_OK);
  return k;
}

static inline ds_buffer *new_buf(ds_context *ctx, size_t size) {
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, size, NULL), DS_OK);
  return b;
}

#endif /* DS_TEST_FABRIC_UTIL_H */
