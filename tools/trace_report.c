/* The trace analysis: begins matched with ends into spans per thread, spans nested by time,
 * then per-operator totals and self times, the critical path (the longest top-level span and,
 * at each level, its longest child: the trace records nesting, not dependencies between
 * threads), and the time spent inside I/O or data-loading spans. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trace_report.h"

int dst_is_io_category(const char *cat) {
  static const char *const words[] = {"io", "load", "loading", "data"};
  char tok[DST_NAME_MAX];
  size_t n = 0;
  for (const char *p = cat;; p++) {
    if (*p && (isalnum((unsigned char)*p)) && n + 1 < sizeof tok) {
      tok[n++] = (char)tolower((unsigned char)*p);
      continue;
    }
    tok[n] = '\0';
    for (size_t i = 0; n && i < sizeof words / sizeof *words; i++)
      if (!strcmp(tok, words[i])) return 1;
    n = 0;
    if (!*p) return 0;
  }
}

static const dst_trace *dst_sort_trace; /* qsort has no context argument */

/* Events by thread, then time, then file order (so a begin and end at one instant stay
 * paired). The index sorts the permutation, never the events. */
static int dst_event_cmp(const void *a, const void *b) {
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  const dst_event *x = &dst_sort_trace->ev[i], *y = &dst_sort_trace->ev[j];
  if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
  if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return (i > j) - (i < j);
}

static int dst_span_cmp(const void *a, const void *b) {
  const dst_span *x = a, *y = b;
  if (x->thread != y->thread) return x->thread - y->thread;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  if (x->end != y->end) return x->end > y->end ? -1 : 1; /* the outer span first */
  return 0;
}

static int dst_push_span(dst_report *r, size_t *cap, double start, double end, int op,
                         int thread) {
  if (r->nspans == *cap) {
    size_t c = *cap ? *cap * 2 : 1024;
    dst_span *s = realloc(r->spans, c * sizeof *s);
    if (!s) return -1;
    r->spans = s;
    *cap = c;
  }
  r->spans[r->nspans++] = (dst_span){start, end < start ? start : end, 0, op, thread, -1, -1};
  return 0;
}

/* Turns B/E pairs and X events into spans; open begins end at the trace's last instant. */
static int dst_build_spans(dst_report *r, const dst_trace *t, const size_t *order, double last) {
  size_t cap = 0, *stack = malloc((t->nev + 1) * sizeof *stack), depth = 0;
  if (!stack) return -1;
  int thread = -1;
  for (size_t k = 0; k < t->nev; k++) {
    const dst_event *e = &t->ev[order[k]];
    if (k == 0 || e->pid != t->ev[order[k - 1]].pid || e->tid != t->ev[order[k - 1]].tid) {
      for (; depth; depth--, r->unclosed_begins++) {
        const dst_event *b = &t->ev[stack[depth - 1]];
        if (dst_push_span(r, &cap, b->ts, last, b->op, thread)) goto oom;
      }
      thread++;
    }
    if (e->ph == 'X' && dst_push_span(r, &cap, e->ts, e->ts + (e->dur > 0 ? e->dur : 0), e->op,
                                      thread))
      goto oom;
    if (e->ph == 'B') stack[depth++] = order[k];
    if (e->ph == 'E' && depth == 0) r->unmatched_ends++;
    if (e->ph == 'E' && depth) {
      const dst_event *b = &t->ev[stack[--depth]];
      if (dst_push_span(r, &cap, b->ts, e->ts, b->op, thread)) goto oom;
    }
  }
  for (; depth; depth--, r->unclosed_begins++) {
    const dst_event *b = &t->ev[stack[depth - 1]];
    if (dst_push_span(r, &cap, b->ts, last, b->op, thread)) goto oom;
  }
  free(stack);
  return 0;
oom:
  free(stack);
  return -1;
}

/* Parents by containment within a thread; sums of children; the longest child. */
static int dst_nest(dst_report *r) {
  if (r->nspans) qsort(r->spans, r->nspans, sizeof *r->spans, dst_span_cmp);
  int *stack = malloc((r->nspans + 1) * sizeof *stack);
  if (!stack) return -1;
  int depth = 0;
  for (size_t i = 0; i < r->nspans; i++) {
    dst_span *s = &r->spans[i];
    while (depth && (r->spans[stack[depth - 1]].thread != s->thread ||
                     r->spans[stack[depth - 1]].end < s->end))
      depth--; /* ended before s, or only overlaps it: not its parent */
    if (depth) {
      dst_span *p = &r->spans[stack[depth - 1]];
      s->parent = stack[depth - 1];
      p->child_us += s->end - s->start;
      if (p->longest_child < 0 || s->end - s->start > r->spans[p->longest_child].end -
                                                          r->spans[p->longest_child].start)
        p->longest_child = (int)i;
    }
    stack[depth++] = (int)i;
  }
  free(stack);
  return 0;
}

/* Per-op totals, wall and busy time, I/O time (an I/O span inside another counts once). */
static int dst_totals(dst_report *r, const dst_trace *t) {
  r->nops = t->nops;
  r->ops = calloc((size_t)t->nops + 1, sizeof *r->ops);
  char *in_io = calloc(r->nspans + 1, 1);
  if (!r->ops || !in_io) {
    free(in_io);
    return -1;
  }
  for (int i = 0; i < t->nops; i++) r->ops[i].op = i;
  double lo = 0, hi = 0;
  int root = -1;
  for (size_t i = 0; i < r->nspans; i++) {
    const dst_span *s = &r->spans[i];
    double d = s->end - s->start, self = d - s->child_us;
    dst_op_stat *o = &r->ops[s->op];
    int io = dst_is_io_category(t->ops[s->op].cat);
    int parent_io = s->parent >= 0 && in_io[s->parent];
    in_io[i] = (char)(io || parent_io);
    o->count++;
    o->total_us += d;
    o->self_us += self > 0 ? self : 0;
    if (d > o->max_us) o->max_us = d;
    if (io) r->io_spans++, o->io_us += d;
    if (io && !parent_io) r->io_us += d;
    if (i == 0 || s->thread != r->spans[i - 1].thread) r->threads++; /* threads with spans */
    if (s->parent < 0) {
      r->busy_us += d;
      if (root < 0 || d > r->spans[root].end - r->spans[root].start) root = (int)i;
    }
    if (i == 0 || s->start < lo) lo = s->start;
    if (i == 0 || s->end > hi) hi = s->end;
  }
  free(in_io);
  r->wall_us = hi - lo;
  r->path = malloc((r->nspans + 1) * sizeof *r->path);
  if (!r->path) return -1;
  for (int s = root; s >= 0; s = r->spans[s].longest_child) r->path[r->path_len++] = s;
  return 0;
}

int dst_analyse(dst_report *r, const dst_trace *t) {
  memset(r, 0, sizeof *r);
  size_t *order = malloc((t->nev + 1) * sizeof *order);
  if (!order) return -1;
  double last = 0;
  for (size_t i = 0; i < t->nev; i++) {
    order[i] = i;
    double end = t->ev[i].ts + (t->ev[i].ph == 'X' && t->ev[i].dur > 0 ? t->ev[i].dur : 0);
    if (i == 0 || end > last) last = end;
  }
  dst_sort_trace = t;
  qsort(order, t->nev, sizeof *order, dst_event_cmp);
  int rc = dst_build_spans(r, t, order, last);
  free(order);
  if (rc == 0) rc = dst_nest(r);
  if (rc == 0) rc = dst_totals(r, t);
  return rc;
}

void dst_report_free(dst_report *r) {
  if (!r) return;
  free(r->spans);
  free(r->ops);
  free(r->path);
  memset(r, 0, sizeof *r);
}

static int dst_by_total(const void *a, const void *b) {
  const dst_op_stat *x = a, *y = b;
  if (x->total_us != y->total_us) return x->total_us > y->total_us ? -1 : 1;
  return x->op - y->op;
}

static int dst_by_self(const void *a, const void *b) {
  const dst_op_stat *x = a, *y = b;
  if (x->self_us != y->self_us) return x->self_us > y->self_us ? -1 : 1;
  return x->op - y->op;
}

static void dst_print_table(FILE *f, const char *title, dst_op_stat *ops, int n,
                            const dst_trace *t, int top,
                            int (*cmp)(const void *, const void *)) {
  qsort(ops, (size_t)n, sizeof *ops, cmp);
  fprintf(f, "\n%s\n  %12s %12s %8s %12s  %-12s %s\n", title, "total_ms", "self_ms", "count",
          "max_ms", "category", "name");
  for (int i = 0, shown = 0; i < n && shown < top; i++) {
    if (!ops[i].count) continue;
    shown++;
    fprintf(f, "  %12.3f %12.3f %8lld %12.3f  %-12s %s\n", ops[i].total_us / 1e3,
            ops[i].self_us / 1e3, ops[i].count, ops[i].max_us / 1e3, t->ops[ops[i].op].cat,
            t->ops[ops[i].op].name);
  }
}

void dst_print(FILE *f, const dst_report *r, const dst_trace *t, int top) {
  fprintf(f, "trace: %zu events, %zu spans on %d thread(s), wall %.3f ms, busy %.3f ms\n",
          t->nev, r->nspans, r->threads, r->wall_us / 1e3, r->busy_us / 1e3);
  if (r->unmatched_ends || r->unclosed_begins)
    fprintf(f, "note: %lld end(s) without a begin ignored; %lld span(s) left open closed at the "
               "trace's end\n", r->unmatched_ends, r->unclosed_begins);
  dst_op_stat *ops = malloc(((size_t)r->nops + 1) * sizeof *ops);
  if (!ops) return;
  memcpy(ops, r->ops, (size_t)r->nops * sizeof *ops);
  dst_print_table(f, "top operators by total time:", ops, r->nops, t, top, dst_by_total);
  dst_print_table(f, "top operators by self time (excluding nested spans):", ops, r->nops, t, top,
                  dst_by_self);
  fprintf(f, "\ncritical path (longest top-level span, then the longest child at each level):\n");
  for (int i = 0; i < r->path_len; i++) {
    const dst_span *s = &r->spans[r->path[i]];
    fprintf(f, "  %*s%s/%s  %.3f ms (self %.3f ms)\n", 2 * i, "", t->ops[s->op].cat,
            t->ops[s->op].name, (s->end - s->start) / 1e3, (s->end - s->start - s->child_us) / 1e3);
  }
  fprintf(f, "\nI/O and data loading (categories io, load, loading, data): %.3f ms in %lld "
             "span(s), %.1f%% of busy time\n",
          r->io_us / 1e3, r->io_spans, r->busy_us > 0 ? 100.0 * r->io_us / r->busy_us : 0.0);
  for (int i = 0; i < r->nops; i++)
    if (ops[i].io_us > 0)
      fprintf(f, "  %12.3f ms  %s/%s\n", ops[i].io_us / 1e3, t->ops[ops[i].op].cat,
              t->ops[ops[i].op].name);
  free(ops);
}

/* The whole file in memory (bounded by DST_FILE_MAX); NULL with a message on failure. */
static char *dst_slurp(const char *path, size_t *len) {
  FILE *in = fopen(path, "rb");
  struct stat st;
  if (!in || fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > DST_FILE_MAX) {
    fprintf(stderr, "deepseek-monitor: cannot read %s: %s\n", path,
            !in ? strerror(errno) : "not a regular file or larger than 1 GiB");
    if (in) fclose(in);
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  *len = buf ? fread(buf, 1, (size_t)st.st_size, in) : 0;
  fclose(in);
  if (!buf) fprintf(stderr, "deepseek-monitor: out of memory reading %s\n", path);
  return buf;
}

int dst_report_file(FILE *f, const char *path, int top) {
  size_t len;
  char *buf = dst_slurp(path, &len);
  if (!buf) return 1;
  dst_trace t;
  dst_report r = {0};
  int rc = 1;
  if (dst_parse(&t, buf, len) != 0)
    fprintf(stderr, "deepseek-monitor: %s: not a trace: %s\n", path, t.err);
  else if (dst_analyse(&r, &t) != 0)
    fprintf(stderr, "deepseek-monitor: %s: out of memory\n", path);
  else {
    dst_print(f, &r, &t, top);
    rc = 0;
  }
  dst_report_free(&r);
  dst_free(&t);
  free(buf);
  return rc;
}
