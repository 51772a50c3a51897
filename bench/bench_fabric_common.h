/* Shared by the fabric transfer benchmarks (OpenCL and CUDA): a status check that exits, and
 * one timed transfer through the fabric's replica protocol. */
#ifndef BENCH_FABRIC_COMMON_H
#define BENCH_FABRIC_COMMON_H

#include "bench_common.h" /* first: it sets the feature-test macros */

#include <stdio.h>
#include <stdlib.h>

#include "deepseek.h"

static inline void check(ds_status st, const char *what) {
  if (st == DS_OK) return;
  fprintf(stderr, "bench_fabric: %s: %s\n", what, ds_context_last_error(NULL));
  exit(1);
}

/* Seconds to make the host-written buffer valid on device @p dev (to_device) or the
 * device-written one valid on the host (device 0). */
static inline double fabric_once(ds_buffer *b, int32_t dev, int to_device) {
  void *p = NULL;
  int32_t writer = to_device ? 0 : dev, reader = to_device ? dev : 0;
  check(ds_buffer_acquire(&p, b, writer, DS_ACCESS_WRITE), "acquire write");
  check(ds_buffer_release(b, writer), "release");
  double t0 = bench_now_s();
  check(ds_buffer_acquire(&p, b, reader, DS_ACCESS_READ), "acquire read");
  double t = bench_now_s() - t0;
  check(ds_buffer_release(b, reader), "release");
  return t;
}

#endif /* BENCH_FABRIC_COMMON_H */
