/* deepseek-monitor's live terminal view (ncurses): utilisation bars from the telemetry stats,
 * then every stat grouped by its prefix (core, telemetry, sched, cache, precision, predict,
 * batch...), counters with their rate. Data refreshes once a second; keys: q quit, p pause,
 * s sort (name / value). When the process exits the last values stay on screen, marked. */
#define _POSIX_C_SOURCE 200809L
#include <curses.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor.h"

typedef struct dsm_row {
  const char *name;
  int kind;
  double value, rate; /* rate: NaN when unknown */
} dsm_row;

typedef struct dsm_view {
  dsm_target *t;
  ds_stats *cur, *prev;
  double cur_at, prev_at; /* CLOCK_MONOTONIC seconds of the reads */
  int paused, sort_by_value, exited;
  dsm_row *rows;
  size_t nrows;
} dsm_view;

static double dsm_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dsm_row_cmp_name(const void *a, const void *b) {
  return strcmp(((const dsm_row *)a)->name, ((const dsm_row *)b)->name);
}

/* Grouped by prefix first in both orders, so groups stay together. */
static int dsm_row_cmp_value(const void *a, const void *b) {
  const dsm_row *x = a, *y = b;
  size_t lx = strcspn(x->name, "."), ly = strcspn(y->name, ".");
  int c = strncmp(x->name, y->name, lx < ly ? lx : ly);
  if (c || lx != ly) return c ? c : (lx < ly ? -1 : 1);
  double vx = isnan(x->value) ? -INFINITY : x->value, vy = isnan(y->value) ? -INFINITY : y->value;
  if (vx != vy) return vx > vy ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void dsm_build_rows(dsm_view *v) {
  size_t n = ds_stats_count(v->cur);
  dsm_row *rows = realloc(v->rows, (n + 1) * sizeof *rows);
  if (!rows) {
    v->nrows = 0; /* the old rows name stats of a snapshot about to be freed */
    return;
  }
  v->rows = rows;
  v->nrows = 0;
  for (size_t i = 0; i < n; i++) {
    ds_stat st;
    double before;
    if (ds_stats_at(&st, v->cur, i) != DS_OK) continue;
    dsm_row *r = &rows[v->nrows++];
    *r = (dsm_row){st.name, st.kind, st.value, NAN};
    if (st.kind == DS_STAT_COUNTER && v->prev && v->cur_at > v->prev_at &&
        ds_stats_find(&before, v->prev, st.name) == DS_OK)
      r->rate = (st.value - before) / (v->cur_at - v->prev_at);
  }
  qsort(rows, v->nrows, sizeof *rows, v->sort_by_value ? dsm_row_cmp_value : dsm_row_cmp_name);
}

/* Reads a new snapshot unless paused or gone; notices the exit. */
static void dsm_poll(dsm_view *v) {
  if (v->paused || v->exited) return;
  ds_stats *s = NULL;
  ds_status st = dsm_read(&s, v->t);
  if (st == DS_ERR_NOT_FOUND) {
    v->exited = 1;
    return;
  }
  if (st != DS_OK) return; /* a torn or busy read: keep the last values */
  ds_stats_free(v->prev);
  v->prev = v->cur;
  v->prev_at = v->cur_at;
  v->cur = s;
  v->cur_at = dsm_now_s();
  dsm_build_rows(v);
}

static void dsm_bar(int y, const char *label, double frac, int width) {
  int inner = width - 22;
  if (inner < 4) inner = 4;
  mvprintw(y, 0, "%-10.10s [", label);
  int fill = isnan(frac) ? 0 : (int)lround((frac < 0 ? 0 : frac > 1 ? 1 : frac) * inner);
  for (int i = 0; i < inner; i++) addch(i < fill ? '|' : ' ');
  if (isnan(frac))
    printw("]   n/a");
  else
    printw("] %5.1f%%", 100.0 * frac);
}

/* Per GPU (telemetry.gpu<N>.* from NVML): utilisation, and memory used with the bytes. */
static int dsm_draw_gpu_bars(const dsm_view *v, int y, int width, int height) {
  char name[48], label[16];
  double util, used, total;
  for (int g = 0; g < 16 && y < height - 2; g++) {
    snprintf(name, sizeof name, "telemetry.gpu%d.util_pct", g);
    if (ds_stats_find(&util, v->cur, name) != DS_OK) break;
    snprintf(label, sizeof label, "gpu%d", g);
    dsm_bar(y++, label, util / 100.0, width);
    snprintf(name, sizeof name, "telemetry.gpu%d.mem_used_bytes", g);
    if (ds_stats_find(&used, v->cur, name) != DS_OK) used = NAN;
    snprintf(name, sizeof name, "telemetry.gpu%d.mem_total_bytes", g);
    if (ds_stats_find(&total, v->cur, name) != DS_OK) total = NAN;
    snprintf(label, sizeof label, "gpu%d-mem", g);
    dsm_bar(y, label, total > 0 ? used / total : NAN, width - 20); /* room for the GiB */
    if (total > 0) printw(" %.1f/%.1f GiB", used / 1073741824.0, total / 1073741824.0);
    y++;
  }
  return y;
}

/* Bars for the utilisation gauges (fractions 0..1), per CPU when the library publishes
 * telemetry.cpu.N. Returns the next free line. */
static int dsm_draw_bars(const dsm_view *v, int y, int width, int height) {
  static const struct { const char *stat, *label; } bars[] = {
      {"telemetry.cpu_util", "cpu"},       {"telemetry.mem_used", "memory"},
      {"telemetry.mem_pressure", "mem-prs"}, {"telemetry.gpu_util", "gpu"},
      {"telemetry.gpu_mem_used", "gpu-mem"}, {"sched.utilisation", "sched"}};
  double x;
  for (size_t i = 0; i < sizeof bars / sizeof *bars && y < height - 1; i++)
    if (ds_stats_find(&x, v->cur, bars[i].stat) == DS_OK) dsm_bar(y++, bars[i].label, x, width);
  char name[48], label[16];
  for (int c = 0; c < 1024 && y < height - 1; c++) {
    snprintf(name, sizeof name, "telemetry.cpu.%d", c);
    if (ds_stats_find(&x, v->cur, name) != DS_OK) break;
    snprintf(label, sizeof label, "cpu%d", c);
    dsm_bar(y++, label, x, width);
  }
  return dsm_draw_gpu_bars(v, y, width, height);
}

static void dsm_draw_row(int y, int x, int w, const dsm_row *r) {
  char val[64];
  if (isnan(r->value))
    snprintf(val, sizeof val, "n/a");
  else
    snprintf(val, sizeof val, "%.6g", r->value);
  if (r->kind == DS_STAT_COUNTER && !isnan(r->rate))
    snprintf(val + strlen(val), sizeof val - strlen(val), " (%+.3g/s)", r->rate);
  int name_w = w - (int)strlen(val) - 3;
  if (name_w < 8) name_w = 8;
  mvprintw(y, x, " %-*.*s %s", name_w, name_w, r->name, val);
}

/* The stats, a header line per prefix, in as many columns of 60 as fit. */
static void dsm_draw_groups(const dsm_view *v, int y, int width, int height) {
  int cols = width / 60 > 0 ? width / 60 : 1, colw = width / cols;
  int top = y, col = 0;
  for (size_t i = 0; i < v->nrows; i++) {
    const char *name = v->rows[i].name;
    size_t plen = strcspn(name, ".");
    int new_group = i == 0 || strncmp(name, v->rows[i - 1].name, plen) != 0 ||
                    strcspn(v->rows[i - 1].name, ".") != plen;
    if (y + (new_group ? 2 : 1) > height - 1) {
      if (++col >= cols) {
        mvprintw(height - 1, 0, "... %zu more stats (enlarge the terminal)", v->nrows - i);
        return;
      }
      y = top;
    }
    if (new_group) {
      attron(A_BOLD);
      mvprintw(y++, col * colw, "%.*s", (int)plen, name);
      attroff(A_BOLD);
    }
    dsm_draw_row(y++, col * colw, colw - 1, &v->rows[i]);
  }
}

static void dsm_draw(const dsm_view *v) {
  int height, width;
  getmaxyx(stdscr, height, width);
  erase();
  attron(A_REVERSE);
  mvprintw(0, 0, "%-*s", width, "");
  /* the state first: a narrow terminal cuts the end of the line */
  mvprintw(0, 0, "deepseek-monitor  pid %ld  %s%s  sort: %s  [q quit, p pause, s sort]",
           v->t->proc.pid, v->cur ? ds_stats_label(v->cur) : "", v->paused ? "  PAUSED" : "",
           v->sort_by_value ? "value" : "name");
  attroff(A_REVERSE);
  int y = 1;
  if (v->exited) {
    attron(A_BOLD);
    mvprintw(y++, 0, "process %ld has exited: last values shown", v->t->proc.pid);
    attroff(A_BOLD);
  }
  if (v->cur) {
    y = dsm_draw_bars(v, y + 1, width, height);
    dsm_draw_groups(v, y + 1, width, height);
  } else {
    mvprintw(y + 1, 0, "waiting for the first snapshot...");
  }
  refresh();
}

/* Returns 0 to go on, 1 to quit. */
static int dsm_key(dsm_view *v, int ch) {
  switch (ch) {
  case 'q': case 'Q':
    return 1;
  case 'p': case 'P': case ' ':
    v->paused = !v->paused;
    break;
  case 's': case 'S':
    v->sort_by_value = !v->sort_by_value;
    if (v->cur) dsm_build_rows(v);
    break;
  default:
    break; /* KEY_RESIZE and others: the redraw below adapts */
  }
  return 0;
}

int dsm_tui(dsm_target *t) {
  dsm_view v = {.t = t};
  if (!initscr()) {
    fprintf(stderr, "deepseek-monitor: cannot start the terminal view (TERM?)\n");
    return 1;
  }
  cbreak();
  noecho();
  keypad(stdscr, TRUE);
  curs_set(0);
  timeout(100); /* keys are read every 100 ms; data once a second */
  double next = 0;
  while (!dsm_stop) {
    if (dsm_now_s() >= next) {
      dsm_poll(&v);
      next = dsm_now_s() + 1.0;
      dsm_draw(&v);
    }
    int ch = getch();
    if (ch == ERR) continue;
    if (dsm_key(&v, ch)) break;
    dsm_draw(&v);
  }
  endwin();
  ds_stats_free(v.cur);
  ds_stats_free(v.prev);
  free(v.rows);
  return 0;
}
