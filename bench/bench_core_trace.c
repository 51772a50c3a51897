/* bench_core_trace: cost of recording a span (begin + end) in the trace recorder, against the
 * floor any span recorder pays — two reads of CLOCK_MONOTONIC — measured in the same run; and
 * the cost of the same calls when no trace is being recorded. Median of 7 repetitions.
 * usage: bench_core_trace [--json]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>
#include <unistd.h>

#include "bench_common.h"

#define REPS 7
#define SPANS 200000

static volatile uint64_t sink;

static double time_clock_pairs(void) {
  double t0 = bench_now_s();
  for (int i = 0; i < SPANS; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    sink += (uint64_t)(b.tv_nsec - a.tv_nsec);
  }
  return (bench_now_s() - t0) * 1e9 / SPANS;
}

static double time_spans(ds_context *ctx) {
  double t0 = bench_now_s();
  for (int i = 0; i < SPANS; i++) {
    ds_trace_begin(ctx, "bench", "span");
    ds_trace_end(ctx);
  }
  return (bench_now_s() - t0) * 1e9 / SPANS;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_TRACE_MAX_EVENTS, 0, 2 * SPANS + 16}};
  o.params = pv;
  o.nparams = 3;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &o) != DS_OK) {
    fprintf(stderr, "bench_core_trace: %s\n", ds_context_last_error(NULL));
    return 1;
  }
  char path[64];
  snprintf(path, sizeof path, "/tmp/bench_core_trace.%d.json", (int)getpid());
  double on[REPS], off[REPS], floor_ns[REPS];
  for (int r = 0; r < REPS; r++) {
    floor_ns[r] = time_clock_pairs();
    off[r] = time_spans(ctx);
    if (ds_trace_start(ctx, path) != DS_OK) {
      fprintf(stderr, "bench_core_trace: %s\n", ds_context_last_error(ctx));
      return 1;
    }
    on[r] = time_spans(ctx);
    ds_trace_stop(ctx);
  }
  unlink(path);
  double floor_med = bench_median(floor_ns, REPS);
  bench_row rows[] = {
      {"bench_core_trace", "span_recording", "ns_per_span", bench_median(on, REPS),
       "2x clock_gettime", floor_med, 3.0, "lower"},
      {"bench_core_trace", "span_not_recording", "ns_per_span", bench_median(off, REPS),
       "2x clock_gettime", floor_med, 0.1, "lower"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) bench_print(&rows[i], json, &header);
  ds_context_destroy(ctx);
  return 0;
}
