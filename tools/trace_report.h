/* deepseek-monitor --trace: a bounded reader for the subset of Chrome Trace Event JSON that
 * libdeepseek writes (and other tools write: either {"traceEvents":[...]} or a bare array), and
 * the analysis printed from it. The reader takes untrusted bytes: it never reads past the
 * buffer, recurses at most DST_MAX_DEPTH levels, keeps at most DST_MAX_EVENTS events, and
 * reports the first error with its byte offset. */
#ifndef DS_TOOLS_TRACE_REPORT_H
#define DS_TOOLS_TRACE_REPORT_H

#include <stddef.h>
#include <stdio.h>

#define DST_MAX_DEPTH 64
#define DST_MAX_EVENTS (1u << 24)
#define DST_NAME_MAX 256      /* longer names and categories are cut */
#define DST_FILE_MAX (1u << 30) /* the largest trace file read */

typedef struct dst_event {
  double ts, dur; /* microseconds, as in the file */
  long long pid, tid;
  int op;  /* index into dst_trace.ops: the (category, name) pair */
  char ph; /* phase: 'B', 'E', 'X', ... ; 0 when absent */
} dst_event;

typedef struct dst_op {
  char *cat, *name;
} dst_op;

typedef struct dst_trace {
  dst_event *ev;
  size_t nev, cap_ev;
  dst_op *ops;
  int nops, cap_ops;
  int *hash; /* open addressing over ops, hash_cap slots, -1 empty */
  int hash_cap;
  char err[160];
} dst_trace;

/* Parses @p len bytes. Returns 0, or -1 with t->err set (t is still freed by dst_free). */
int dst_parse(dst_trace *t, const char *buf, size_t len);
void dst_free(dst_trace *t);

/* One span after matching begins with ends, nested per thread. */
typedef struct dst_span {
  double start, end, child_us;
  int op, thread, parent, longest_child; /* -1: none */
} dst_span;

typedef struct dst_op_stat {
  int op;
  long long count;
  double total_us, self_us, max_us, io_us;
} dst_op_stat;

typedef struct dst_report {
  dst_span *spans;
  size_t nspans;
  dst_op_stat *ops; /* one per op of the trace, in op order */
  int nops, threads;
  double wall_us, busy_us;
  double io_us; /* time inside I/O or data-loading spans, an I/O span inside another once */
  long long io_spans, unmatched_ends, unclosed_begins;
  int *path; /* the critical path: span indices, outermost first */
  int path_len;
} dst_report;

/* Builds the report from a parsed trace. Returns 0, or -1 when out of memory. */
int dst_analyse(dst_report *r, const dst_trace *t);
void dst_report_free(dst_report *r);
/* 1 when the category names I/O or data loading (a token "io", "load", "loading", "data"). */
int dst_is_io_category(const char *cat);
/* Prints the report with the top @p top operators. */
void dst_print(FILE *f, const dst_report *r, const dst_trace *t, int top);
/* Reads, analyses and prints a file; returns the exit status (0, or 1 with a message). */
int dst_report_file(FILE *f, const char *path, int top);

#endif /* DS_TOOLS_TRACE_REPORT_H */
