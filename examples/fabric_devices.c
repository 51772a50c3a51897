/* The compute fabric in a few lines: list the devices this machine offers, wrap an array of
 * your own as a fabric buffer, make it available on every device, and see what it cost
 * (bytes moved, copies, copies avoided by zero-copy). Build: link with -ldeepseek. */
#include <stdio.h>
#include <string.h>

#include <deepseek.h>

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, ds_context_last_error(NULL));
  return 1;
}

int main(void) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return fail("context");

  /* 1. The devices: CPU NUMA nodes first, then GPUs and OpenCL devices. */
  int32_t n = 0;
  ds_fabric_device_count(&n, ctx);
  for (int32_t i = 0; i < n; i++) {
    ds_device_info d = DS_DEVICE_INFO_INIT;
    ds_fabric_device_info(&d, ctx, i);
    printf("device %d: %-40s %6.1f GiB, %3d units%s\n", (int)i, d.name,
           (double)d.memory_bytes / (1 << 30), (int)d.compute_units,
           (d.caps & DS_DEVICE_CAP_MAP_HOST) ? ", zero-copy capable" : "");
  }

  /* 2. Your own memory becomes a buffer without a copy; the fabric tracks where it is valid. */
  static float data[1 << 20];
  for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) data[i] = (float)i;
  ds_buffer_options o = DS_BUFFER_OPTIONS_INIT;
  o.name = "data";
  ds_buffer *buf = NULL;
  if (ds_buffer_register(&buf, ctx, data, sizeof data, &o) != DS_OK) return fail("register");

  /* 3. Reading it on each device gives that device's handle (a host pointer on CPUs, a cl_mem
   *    on OpenCL, a device address on CUDA): the bytes are copied only where they must be. */
  for (int32_t i = 0; i < n; i++) {
    void *handle = NULL;
    if (ds_buffer_acquire(&handle, buf, i, DS_ACCESS_READ) != DS_OK) return fail("acquire");
    /* ... launch work on device i with 'handle' here ... */
    ds_buffer_release(buf, i);
  }

  /* 4. What it cost. */
  ds_stats *s = NULL;
  double moved = 0, copies = 0, avoided = 0;
  ds_stats_snapshot(&s, ctx);
  ds_stats_find(&moved, s, "fabric.bytes_moved");
  ds_stats_find(&copies, s, "fabric.copies");
  ds_stats_find(&avoided, s, "fabric.copies_avoided");
  printf("%.0f bytes moved in %.0f copies, %.0f copies avoided\n", moved, copies, avoided);
  ds_stats_free(s);

  ds_buffer_destroy(buf); /* before the context, and never while acquired */
  ds_context_destroy(ctx);
  return 0;
}
