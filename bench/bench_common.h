/* Shared output for benchmarks: a readable table, or with --json one JSON object per row with
 * bench, case, metric, ours, anchor, anchor_value, ratio (ours/anchor), goal, better. */
#ifndef DS_BENCH_COMMON_H
#define DS_BENCH_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <deepseek.h>

typedef struct bench_row {
  const char *bench, *case_name, *metric;
  double ours;
  const char *anchor;
  double anchor_value;
  double goal; /* target ratio ours/anchor */
  const char *better; /* "higher" or "lower" */
} bench_row;

static inline int bench_json_mode(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--json")) return 1;
  return 0;
}

static inline void bench_print(const bench_row *r, int json, int *header_done) {
  double ratio = r->anchor_value != 0 ? r->ours / r->anchor_value : 0;
  if (json) {
    printf("{\"bench\":\"%s\",\"case\":\"%s\",\"metric\":\"%s\",\"ours\":%.6g,\"anchor\":\"%s\","
           "\"anchor_value\":%.6g,\"ratio\":%.4f,\"goal\":%.4g,\"better\":\"%s\"}\n",
           r->bench, r->case_name, r->metric, r->ours, r->anchor, r->anchor_value, ratio,
           r->goal, r->better);
    return;
  }
  if (!*header_done) {
    printf("%-18s %-22s %-12s %12s %-26s %12s %8s %8s\n", "bench", "case", "metric", "ours",
           "anchor", "anchor_val", "ratio", "goal");
    *header_done = 1;
  }
  printf("%-18s %-22s %-12s %12.4g %-26s %12.4g %8.3f %6s%.2g\n", r->bench, r->case_name,
         r->metric, r->ours, r->anchor, r->anchor_value, ratio,
         strcmp(r->better, "lower") ? ">=" : "<=", r->goal);
}

static inline double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A context for benchmarks: environment ignored, no telemetry thread, no stats file, plus up
 * to 14 extra tunables. Exits with the library's message on failure. */
static inline ds_context *bench_context(const char *bench, const ds_param_value *extra,
                                        size_t nextra) {
  ds_param_value pv[16] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
  size_t n = 2;
  for (size_t i = 0; i < nextra && n < 16; i++) pv[n++] = extra[i];
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = n;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &o) != DS_OK) {
    fprintf(stderr, "%s: %s\n", bench, ds_context_last_error(NULL));
    exit(1);
  }
  return ctx;
}

#endif /* DS_BENCH_COMMON_H */
