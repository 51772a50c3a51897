/* Fuzz target: deepseek-predict-eval's load-trace readers (bench/predict_eval_traces.c:
 * Bitbrains and Alibaba machine_usage CSV, then resampling) on arbitrary bytes, as read from a
 * trace file. The first byte picks the resampling step (0: the format's default). */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "predict_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const double steps[4] = {0, 1, 60, 0.001};
  if (size < 2) return 0;
  FILE *f = fmemopen((void *)(data + 1), size - 1, "r");
  if (!f) return 0;
  ev_series *list = NULL;
  size_t n = 0;
  /* a small step budget keeps each input fast and far below the fuzzer's ~2 GB memory limit */
  ev_read_trace_stream(f, "fuzz", steps[data[0] & 3], (size_t)1 << 12, &list, &n);
  fclose(f);
  ev_free_series(list, n);
  return 0;
}
