/* Direct copies between two OpenCL devices of one context. PoCL exposes two CPU devices when
 * POCL_DEVICES="pthread pthread", which main sets when the environment has not chosen: the
 * backend then puts both in one OpenCL context and a replica moves between them with
 * clEnqueueCopyBuffer, never through the host replica; with the tunable off it is staged
 * through the host; a prefetch only queues the copy (the consumer waits for it). Skipped
 * with a message where no two OpenCL devices share a platform (failing instead with
 * DS_REQUIRE_OPENCL=1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fabric_internal.h"
#include "test_util.h"

/* The OpenCL platform of fabric device @p dev (its name is "opencl:<platform>.<index> ..."). */
static int cl_platform(ds_context *ctx, int32_t dev) {
  ds_device_info info = DS_DEVICE_INFO_INIT;
  int platform = -1;
  assert_int_equal(ds_fabric_device_info(&info, ctx, dev), DS_OK);
  assert_int_equal(sscanf(info.name, "opencl:%d.", &platform), 1);
  return platform;
}

/* The first two OpenCL devices of one platform (so of one OpenCL context), or 0 when there are
 * none (the test is then skipped). */
static int two_cl_devices(ds_context *ctx, int32_t *a, int32_t *b) {
  for (int32_t i = 0; ds_fabric_device_find(a, ctx, DS_FABRIC_DEVICE_OPENCL, i) == DS_OK; i++)
    for (int32_t j = i + 1; ds_fabric_device_find(b, ctx, DS_FABRIC_DEVICE_OPENCL, j) == DS_OK; j++)
      if (cl_platform(ctx, *a) == cl_platform(ctx, *b)) return 1;
  const char *req = getenv("DS_REQUIRE_OPENCL");
  if (req && *req == '1')
    fail_msg("DS_REQUIRE_OPENCL=1 but no two OpenCL devices share a platform");
  printf("test_fabric_peer_cl: no two OpenCL devices of one platform: skipped\n");
  return 0;
}

/* Host writes a pattern; device a makes it its own (RW: the host copy becomes invalid); b
 * reads it; b then makes it its own and the host reads it back from b. Returns 1 when the
 * host sees the pattern at the end. */
static int round_trip(ds_buffer *buf, int32_t a, int32_t b) {
  uint32_t *p = NULL;
  void *m = NULL;
  size_t n = ds_buffer_size(buf) / sizeof *p;
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, 0, DS_ACCESS_WRITE), DS_OK);
  for (size_t i = 0; i < n; i++) p[i] = (uint32_t)(i * 2654435761u);
  assert_int_equal(ds_buffer_release(buf, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire(&m, buf, a, DS_ACCESS_RW), DS_OK);
  assert_int_equal(ds_buffer_release(buf, a), DS_OK);
  assert_int_equal(ds_buffer_acquire(&m, buf, b, DS_ACCESS_READ), DS_OK);
  assert_int_equal(ds_buffer_release(buf, b), DS_OK);
  assert_int_equal(ds_buffer_acquire(&m, buf, b, DS_ACCESS_RW), DS_OK); /* a is now invalid */
  assert_int_equal(ds_buffer_release(buf, b), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, 0, DS_ACCESS_READ), DS_OK);
  int same = 1;
  for (size_t i = 0; i < n; i++) same &= p[i] == (uint32_t)(i * 2654435761u);
  assert_int_equal(ds_buffer_release(buf, 0), DS_OK);
  return same;
}

static void check_way(int peer) {
  ds_param_value pv[] = {{DS_PARAM_FABRIC_PEER_COPY, 0, peer}};
  ds_context *ctx = ds_test_context(pv, 1);
  int32_t a = -1, b = -1;
  if (!two_cl_devices(ctx, &a, &b)) {
    ds_context_destroy(ctx);
    return;
  }
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.flags = DS_BUFFER_NO_ZERO_COPY; /* real device allocations on both */
  bo.name = "peer";
  ds_buffer *buf = NULL;
  assert_int_equal(ds_buffer_create(&buf, ctx, 1 << 20, &bo), DS_OK);
  double before = ds_test_stat(ctx, "fabric.copies");
  assert_true(round_trip(buf, a, b));
  double copies = ds_test_stat(ctx, "fabric.copies") - before;
  /* host->a, then a->b directly (1) or a->host->b (2), then b->host. */
  assert_true(ds_test_stat(ctx, "fabric.peer_copies") == (peer ? 1 : 0));
  assert_true(copies == (peer ? 3 : 4));
  assert_int_equal(ds_buffer_destroy(buf), DS_OK);
  ds_context_destroy(ctx);
}

static void test_direct_between_cl_devices(void **state) {
  (void)state;
  check_way(1);
}

static void test_staged_when_off(void **state) {
  (void)state;
  check_way(0);
}

/* A prefetch (what the graph executor does for a node's inputs) of a replica held by the other
 * device returns before the bytes arrive: the copy is queued with an event and the replica is
 * pending; the consumer's acquire waits for it, and reads the right bytes on its device. */
static void test_prefetch_does_not_wait(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  int32_t a = -1, b = -1;
  if (!two_cl_devices(ctx, &a, &b)) {
    ds_context_destroy(ctx);
    return;
  }
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  bo.flags = DS_BUFFER_NO_ZERO_COPY;
  ds_buffer *buf = NULL;
  size_t n = (size_t)4 << 20;
  assert_int_equal(ds_buffer_create(&buf, ctx, n, &bo), DS_OK);
  uint8_t *p = NULL;
  void *m = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, 0, DS_ACCESS_WRITE), DS_OK);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131 + 7);
  assert_int_equal(ds_buffer_release(buf, 0), DS_OK);
  assert_int_equal(ds_buffer_acquire(&m, buf, a, DS_ACCESS_RW), DS_OK); /* only a is valid */
  assert_int_equal(ds_buffer_release(buf, a), DS_OK);
  void *ev = NULL;
  assert_int_equal(ds__buffer_prefetch(buf, b, &ev), DS_OK);
  assert_non_null(ev); /* queued, not waited */
  assert_int_equal(buf->rep[ctx->fabric->dev[b].info.memory_space].pending, 1);
  assert_true(ds_test_stat(ctx, "fabric.peer_copies") == 1);
  ds__fabric_event_release(ctx, b, ev); /* the replica stays pending: the consumer waits */
  /* The consumer: b reads (the copy is waited for), then makes it its own; the host reads
   * b's bytes back (b -> host), so what b got is checked byte for byte. */
  assert_int_equal(ds_buffer_acquire(&m, buf, b, DS_ACCESS_RW), DS_OK);
  assert_int_equal(buf->rep[ctx->fabric->dev[b].info.memory_space].pending, 0);
  assert_int_equal(ds_buffer_release(buf, b), DS_OK);
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, 0, DS_ACCESS_READ), DS_OK);
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += p[i] != (uint8_t)(i * 131 + 7);
  assert_int_equal(bad, 0);
  assert_int_equal(ds_buffer_release(buf, 0), DS_OK);
  assert_true(ds_test_stat(ctx, "fabric.peer_copies") == 1);
  assert_int_equal(ds_buffer_destroy(buf), DS_OK);
  ds_context_destroy(ctx);
}

int main(void) {
  setenv("POCL_DEVICES", "pthread pthread", 0); /* before the first OpenCL call */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_direct_between_cl_devices),
      cmocka_unit_test(test_staged_when_off),
      cmocka_unit_test(test_prefetch_does_not_wait),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
