/* Tests of the fabric's CUDA backend: device enumeration agrees with the driver, MSI
 * transitions CPU <-> GPU with correct data (copies), and mapped pinned host memory
 * (DS_BUFFER_MAP_HOST) with no copy. Without a GPU it prints that it is skipped and checks
 * that no CUDA device is listed; with DS_REQUIRE_GPU=1 a missing GPU fails. */
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

static ds_context *new_ctx(void) {
  ds_param_value pv[] = {{DS_PARAM_FABRIC_OPENCL, 0, 0}};
  return ds_test_context(pv, 1);
}

/* The first CUDA device, or -1 after the skip message (or a failure with DS_REQUIRE_GPU=1). */
static int32_t gpu_or_skip(ds_context *ctx) {
  int32_t dev = ds_test_cuda_or_skip(ctx, "test_fabric_cuda", "CPU path tested in test_fabric");
  if (dev >= 0) return dev;
  ds_topology_info topo = DS_TOPOLOGY_INFO_INIT;
  assert_int_equal(ds_topology_get(&topo, ctx), DS_OK);
  assert_int_equal(topo.cuda_devices, 0); /* the driver sees none either */
  return -1;
}

static void device_read(ds_context *ctx, int32_t dev, void *mem, void *out, size_t n) {
  const struct ds__fabric_device *d = ds__fabric_device(ctx, dev);
  char msg[128] = "";
  assert_int_equal(d->be->ops.copy_out(d->be->user, d->local, out, mem, 0, n, NULL, msg,
                                       sizeof msg), DS_OK);
}

/* A graph node's CUDA launcher gets the fabric's stream of its device: a stream only for a
 * built-in CUDA device (NULL for a CPU device), and the same one each time. */
static void test_launcher_stream(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  assert_null(ds__fabric_cuda_stream(ctx, 0)); /* device 0 is a CPU */
  int32_t dev = gpu_or_skip(ctx);
  if (dev >= 0) {
    void *s = ds__fabric_cuda_stream(ctx, dev);
    assert_non_null(s);
    assert_ptr_equal(ds__fabric_cuda_stream(ctx, dev), s);
  }
  ds_context_destroy(ctx);
}

static void test_cuda_msi_copies(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  int32_t dev = gpu_or_skip(ctx);
  if (dev < 0) goto done;
  ds_device_info info = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&info, ctx, dev), DS_OK);
  assert_true(info.memory_bytes > 0 && info.compute_units > 0);
  enum { N = 1 << 16 };
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, N * sizeof(float), NULL), DS_OK);
  float *h = NULL;
  static float back[N];
  void *mem = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_WRITE), DS_OK);
  for (int i = 0; i < N; i++) h[i] = (float)i;
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  ds_fabric_event *ev = NULL;
  assert_int_equal(ds_buffer_acquire_async(&mem, &ev, b, dev, DS_ACCESS_RW), DS_OK);
  assert_int_equal(ds_fabric_event_wait(ev), DS_OK);
  assert_ptr_not_equal(mem, h);
  device_read(ctx, dev, mem, back, sizeof back);
  assert_true(back[N - 1] == (float)(N - 1));
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  ds_replica_state st;
  assert_int_equal(ds_buffer_state(&st, b, 0), DS_OK);
  assert_int_equal(st, DS_REPLICA_INVALID);
  memset(h, 0, N * sizeof(float)); /* stale host bytes get replaced by the device's */
  assert_int_equal(ds_buffer_acquire((void **)&h, b, 0, DS_ACCESS_READ), DS_OK);
  assert_true(h[123] == 123.0f);
  assert_int_equal(ds_buffer_release(b, 0), DS_OK);
  assert_true(ds_test_stat(ctx, "fabric.bytes_moved") == 2.0 * N * sizeof(float));
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
done:
  ds_context_destroy(ctx);
}

static void test_cuda_mapped_host(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  int32_t dev = gpu_or_skip(ctx);
  if (dev < 0) goto done;
  ds_device_info info = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&info, ctx, dev), DS_OK);
  if (!(info.caps & DS_DEVICE_CAP_MAP_HOST)) {
    printf("test_fabric_cuda: %s cannot map host memory: skipped\n", info.name);
    goto done;
  }
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.flags = DS_BUFFER_MAP_HOST;
  ds_buffer *b = NULL;
  assert_int_equal(ds_buffer_create(&b, ctx, 1 << 20, &o), DS_OK);
  void *mem = NULL;
  unsigned char back[64];
  assert_int_equal(ds_buffer_acquire(&mem, b, dev, DS_ACCESS_READ), DS_OK);
  device_read(ctx, dev, mem, back, sizeof back);
  assert_int_equal(back[10], 0);
  assert_int_equal(ds_buffer_release(b, dev), DS_OK);
  assert_true(ds_test_stat(ctx, "fabric.copies") == 0);
  assert_true(ds_test_stat(ctx, "fabric.copies_avoided") == 1);
  assert_int_equal(ds_buffer_destroy(b), DS_OK);
done:
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_launcher_stream),
      cmocka_unit_test(test_cuda_msi_copies),
      cmocka_unit_test(test_cuda_mapped_host),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
