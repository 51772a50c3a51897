/* ds_tools_demo: a small program using libdeepseek for the tools' tests.
 *   ds_tools_demo --serve SECONDS   runs 25 scheduler tasks, prints "ready PID", then stays
 *                                   alive for SECONDS (or until stdin reaches end of file), so
 *                                   deepseek-monitor has a process to watch.
 *   ds_tools_demo --trace FILE      records a trace with known spans (see test_tools.py).
 *   ds_tools_demo --objective       prints "score S" computed from two tunables as the library
 *                                   loaded them (DS_* variables, DS_CONFIG): the workload that
 *                                   deepseek-tune's test searches; best (0) at
 *                                   telemetry_period_ms=300, trace_max_events=4096. */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ds_status noop(void *arg) {
  (void)arg;
  return DS_OK;
}

static ds_context *demo_context(void) {
  ds_context_options opts = DS_CONTEXT_OPTIONS_INIT;
  ds_param_value params[] = {{DS_PARAM_TELEMETRY_PERIOD_MS, 0, 100}};
  opts.params = params;
  opts.nparams = 1;
  opts.name = "tools-demo";
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &opts) != DS_OK) {
    fprintf(stderr, "ds_tools_demo: %s\n", ds_context_last_error(NULL));
    exit(1);
  }
  return ctx;
}

/* A context with nothing overridden in code, so the environment and DS_CONFIG decide. */
static ds_context *demo_context_plain(void) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) {
    fprintf(stderr, "ds_tools_demo: %s\n", ds_context_last_error(NULL));
    exit(1);
  }
  return ctx;
}

static int serve(double seconds) {
  ds_context *ctx = demo_context();
  for (int i = 0; i < 25; i++) {
    ds_task *t = NULL;
    if (ds_task_submit(&t, ctx, noop, NULL, NULL) != DS_OK) return 1;
    ds_task_wait(t, -1);
    ds_task_release(t);
  }
  printf("ready %ld %s\n", (long)getpid(), ds_stats_file_path(ctx));
  fflush(stdout);
  struct pollfd pfd = {0, POLLIN, 0};
  char buf[64];
  for (double left = seconds * 1000; left > 0; left -= 100)
    if (poll(&pfd, 1, 100) > 0 && read(0, buf, sizeof buf) <= 0) break;
  ds_context_destroy(ctx);
  return 0;
}

/* The spans, in milliseconds from a base (category, name, start, end):
 * main thread: compute/step [0,10] holding data/load_batch [0,3] and op/forward [3,9], which
 *   holds op/matmul [3,7] and op/relu [7,8]; compute/step [10,14] holding data/load_batch
 *   [10,12] and op/forward [12,14], which holds op/matmul [12,13].
 * second thread: io/read_file [0,2] holding io/decompress [0.5,1.5]. */
typedef struct span {
  const char *cat, *name;
  double start, end;
} span;

static const span main_spans[] = {
    {"compute", "step", 0, 10},   {"data", "load_batch", 0, 3}, {"op", "forward", 3, 9},
    {"op", "matmul", 3, 7},       {"op", "relu", 7, 8},         {"compute", "step", 10, 14},
    {"data", "load_batch", 10, 12}, {"op", "forward", 12, 14},  {"op", "matmul", 12, 13}};
static const span io_spans[] = {{"io", "read_file", 0, 2}, {"io", "decompress", 0.5, 1.5}};

typedef struct rec {
  ds_context *ctx;
  uint64_t base;
  const span *s;
  size_t n;
} rec;

static void *record(void *arg) {
  rec *r = arg;
  for (size_t i = 0; i < r->n; i++)
    ds_trace_complete(r->ctx, r->s[i].cat, r->s[i].name, r->base + (uint64_t)(r->s[i].start * 1e6),
                      (uint64_t)((r->s[i].end - r->s[i].start) * 1e6));
  return NULL;
}

static int trace(const char *path) {
  ds_context *ctx = demo_context();
  if (ds_trace_start(ctx, path) != DS_OK) {
    fprintf(stderr, "ds_tools_demo: %s\n", ds_context_last_error(ctx));
    return 1;
  }
  uint64_t base = ds_trace_now_ns();
  rec a = {ctx, base, main_spans, sizeof main_spans / sizeof *main_spans};
  rec b = {ctx, base, io_spans, sizeof io_spans / sizeof *io_spans};
  pthread_t th;
  if (pthread_create(&th, NULL, record, &b) != 0) return 1;
  record(&a);
  pthread_join(th, NULL);
  ds_status st = ds_trace_stop(ctx);
  ds_context_destroy(ctx);
  return st == DS_OK ? 0 : 1;
}

static int objective(void) {
  ds_context *ctx = demo_context_plain();
  int64_t period = 0, events = 0;
  ds_context_get_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, &period);
  ds_context_get_param(ctx, DS_PARAM_TRACE_MAX_EVENTS, &events);
  ds_context_destroy(ctx);
  double a = (double)(period - 300) / 100, b = (double)(events - 4096) / 1024;
  printf("telemetry_period_ms %lld\ntrace_max_events %lld\nscore %g\n", (long long)period,
         (long long)events, 0.0 - a * a - b * b); /* 0.0 first: never "-0" */
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--objective")) return objective();
  if (argc == 3 && !strcmp(argv[1], "--serve")) return serve(atof(argv[2]));
  if (argc == 3 && !strcmp(argv[1], "--trace")) return trace(argv[2]);
  fprintf(stderr, "usage: ds_tools_demo --serve SECONDS | --trace FILE | --objective\n");
  return 2;
}
