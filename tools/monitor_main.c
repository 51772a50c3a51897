/* deepseek-monitor: watch a process that uses libdeepseek (through its stats file), export its
 * stats to Prometheus, or analyse a trace it wrote.
 *
 * usage: deepseek-monitor [-p PID] [--list] [--once [--json]] [--prometheus [ADDR:]PORT]
 *                         [--trace FILE.json [--top N]]
 * Without a mode it opens the live terminal view. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"
#include "trace_report.h"

static void dsm_usage(FILE *f) {
  fputs("usage: deepseek-monitor [-p PID] [--list | --once [--json] | --prometheus [ADDR:]PORT]\n"
        "       deepseek-monitor --trace FILE.json [--top N]\n"
        "  (no mode)              live terminal view of the process (q quit, p pause, s sort)\n"
        "  -p PID                 attach to this process (default: the only one)\n"
        "  --list                 list the processes using libdeepseek\n"
        "  --once [--json]        print one snapshot and exit\n"
        "  --prometheus [A:]PORT  serve /metrics (bound to 127.0.0.1 unless A is given)\n"
        "  --trace FILE --top N   the N operators taking most time, critical path, I/O waits\n"
        "Stats files are read from DS_STATS_DIR, else $XDG_RUNTIME_DIR/deepseek, else\n"
        "/tmp/deepseek-UID.\n",
        f);
}

typedef struct dsm_args {
  long pid;
  int list, once, json, top;
  const char *prometheus, *trace;
} dsm_args;

static int dsm_parse_args(dsm_args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->top = 10;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    int more = i + 1 < argc;
    char *end;
    if (!strcmp(s, "-p") && more) {
      a->pid = strtol(argv[++i], &end, 10);
      if (*end || a->pid <= 0) return 0;
    } else if (!strcmp(s, "--top") && more) {
      a->top = (int)strtol(argv[++i], &end, 10);
      if (*end || a->top <= 0) return 0;
    } else if (!strcmp(s, "--prometheus") && more) {
      a->prometheus = argv[++i];
    } else if (!strcmp(s, "--trace") && more) {
      a->trace = argv[++i];
    } else if (!strcmp(s, "--list")) {
      a->list = 1;
    } else if (!strcmp(s, "--once")) {
      a->once = 1;
    } else if (!strcmp(s, "--json")) {
      a->json = 1;
    } else {
      return 0;
    }
  }
  return !(a->json && !a->once);
}

static int dsm_once(dsm_target *t, int json) {
  ds_stats *s = NULL;
  ds_status st = dsm_read(&s, t);
  if (st == DS_ERR_NOT_FOUND) {
    fprintf(stderr, "deepseek-monitor: process %ld has exited\n", t->proc.pid);
    return 1;
  }
  if (st != DS_OK) {
    fprintf(stderr, "deepseek-monitor: %s\n", ds_context_last_error(NULL));
    return 1;
  }
  if (json) {
    dsm_print_json(stdout, s, t);
  } else {
    char safe[64];
    printf("pid %lld  label %s  file %s\n", (long long)ds_stats_pid(s),
           dsm_printable(safe, sizeof safe, ds_stats_label(s)), t->proc.path);
    for (size_t i = 0; i < ds_stats_count(s); i++) {
      ds_stat x;
      if (ds_stats_at(&x, s, i) == DS_OK)
        printf("  %-48s %-7s %.6g\n", dsm_printable(safe, sizeof safe, x.name),
               x.kind == DS_STAT_COUNTER ? "counter" : "gauge", x.value);
    }
  }
  ds_stats_free(s);
  return 0;
}

int main(int argc, char **argv) {
  dsm_args a;
  if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    dsm_usage(stdout);
    return 0;
  }
  if (!dsm_parse_args(&a, argc, argv)) {
    dsm_usage(stderr);
    return 2;
  }
  if (a.trace) return dst_report_file(stdout, a.trace, a.top);
  char dir[DSM_PATH_MAX];
  if (ds_stats_dir(dir, sizeof dir) != DS_OK) {
    fprintf(stderr, "deepseek-monitor: %s\n", ds_context_last_error(NULL));
    return 2;
  }
  if (a.list) {
    if (dsm_print_list(stdout, dir) == 0) printf("no process using libdeepseek in %s\n", dir);
    return 0;
  }
  dsm_target t = {.pid = a.pid};
  if (!dsm_attach(&t, dir)) return 1;
  dsm_handle_signals();
  if (a.once) return dsm_once(&t, a.json);
  if (a.prometheus) return dsm_serve(a.prometheus, &t);
  return dsm_tui(&t);
}
