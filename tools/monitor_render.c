/* deepseek-monitor: one snapshot as JSON (for scripts) and in the Prometheus text exposition
 * format (for /metrics). Stat names come from another process's file: they are escaped, never
 * trusted to be printable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

const char *dsm_printable(char *buf, size_t cap, const char *s) {
  size_t n = 0;
  for (; *s && n + 1 < cap; s++, n++) buf[n] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
  buf[n] = '\0';
  return buf;
}

void dsm_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f)
      fprintf(f, "\\u%04x", *p); /* bytes, not UTF-8: stat names are ASCII in practice */
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

static void dsm_json_number(FILE *f, double v) {
  if (isfinite(v))
    fprintf(f, "%.17g", v);
  else
    fputs("null", f); /* a gauge never set is NaN: JSON has no NaN */
}

void dsm_print_json(FILE *f, const ds_stats *s, const dsm_target *t) {
  fprintf(f, "{\"pid\":%lld,\"serial\":%llu,\"label\":", (long long)ds_stats_pid(s),
          t->proc.serial);
  dsm_json_string(f, ds_stats_label(s));
  fputs(",\"file\":", f);
  dsm_json_string(f, t->proc.path);
  fputs(",\"stats\":{", f);
  size_t n = ds_stats_count(s);
  for (size_t i = 0; i < n; i++) {
    ds_stat st;
    if (ds_stats_at(&st, s, i) != DS_OK) continue;
    fputs(i ? "," : "", f);
    dsm_json_string(f, st.name);
    fputc(':', f);
    dsm_json_number(f, st.value);
  }
  fputs("},\"kinds\":{", f);
  for (size_t i = 0; i < n; i++) {
    ds_stat st;
    if (ds_stats_at(&st, s, i) != DS_OK) continue;
    fputs(i ? "," : "", f);
    dsm_json_string(f, st.name);
    fputs(st.kind == DS_STAT_COUNTER ? ":\"counter\"" : ":\"gauge\"", f);
  }
  fputs("}}\n", f);
}

void dsm_prom_name(char *buf, size_t cap, const char *stat_name, int kind) {
  size_t n = (size_t)snprintf(buf, cap, "deepseek_");
  for (const char *p = stat_name; *p && n + 1 < cap; p++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    buf[n++] = ok ? c : '_';
  }
  buf[n] = '\0';
  if (kind == DS_STAT_COUNTER && (n < 6 || strcmp(buf + n - 6, "_total") != 0))
    snprintf(buf + n, cap - n, "_total");
}

/* A label value: backslash, quote and newline escaped as the format requires. */
static void dsm_prom_label(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fprintf(f, "\\%c", *s);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

/* {pid="..",label=".."} and, for a histogram bucket, le=".." */
static void dsm_prom_labels_le(FILE *f, long long pid, const char *label, const char *le) {
  fprintf(f, "{pid=\"%lld\",label=\"", pid);
  dsm_prom_label(f, label);
  if (le) fprintf(f, "\",le=\"%s", le);
  fputs("\"}", f);
}

static void dsm_prom_labels(FILE *f, long long pid, const char *label) {
  dsm_prom_labels_le(f, pid, label, NULL);
}

static void dsm_prom_value(FILE *f, double v) {
  if (isnan(v))
    fputs(" NaN\n", f);
  else if (isinf(v))
    fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
  else
    fprintf(f, " %.17g\n", v);
}

/* A histogram the library publishes as cumulative counters <base>.le_<bound>, ...,
 * <base>.le_inf and <base>.sum (the scheduler's sched.wait_ns.<class>): 1 with the base when
 * @p name is one of them and the snapshot has <base>.le_inf. */
static int dsm_hist_member(const ds_stats *s, const char *name, char *base, size_t cap) {
  const char *dot = strrchr(name, '.');
  if (!dot || (size_t)(dot - name) + 8 > cap) return 0;
  const char *tail = dot + 1;
  int le = !strncmp(tail, "le_", 3) && tail[3] &&
           (!strcmp(tail + 3, "inf") || strspn(tail + 3, "0123456789") == strlen(tail + 3));
  if (!le && strcmp(tail, "sum") != 0) return 0;
  memcpy(base, name, (size_t)(dot - name));
  strcpy(base + (dot - name), ".le_inf");
  double v;
  int found = ds_stats_find(&v, s, base) == DS_OK;
  base[dot - name] = '\0';
  return found;
}

/* The family of histogram @p base: _bucket lines in the snapshot's order, _sum, _count. */
static void dsm_prom_histogram(FILE *f, const ds_stats *s, const char *base, const char *family,
                               long long pid, const char *label) {
  fprintf(f, "# HELP %s libdeepseek histogram ", family);
  dsm_prom_label(f, base);
  fprintf(f, "\n# TYPE %s histogram\n", family);
  size_t n = ds_stats_count(s), len = strlen(base);
  double sum = NAN, count = NAN;
  for (size_t i = 0; i < n; i++) {
    ds_stat st;
    if (ds_stats_at(&st, s, i) != DS_OK || strncmp(st.name, base, len) != 0 ||
        st.name[len] != '.')
      continue;
    const char *tail = st.name + len + 1;
    if (!strcmp(tail, "sum")) sum = st.value;
    if (strncmp(tail, "le_", 3) != 0) continue;
    int inf = !strcmp(tail + 3, "inf");
    if (inf) count = st.value;
    fprintf(f, "%s_bucket", family);
    dsm_prom_labels_le(f, pid, label, inf ? "+Inf" : tail + 3);
    dsm_prom_value(f, st.value);
  }
  fprintf(f, "%s_sum", family);
  dsm_prom_labels(f, pid, label);
  dsm_prom_value(f, sum);
  fprintf(f, "%s_count", family);
  dsm_prom_labels(f, pid, label);
  dsm_prom_value(f, count);
}

void dsm_print_prometheus(FILE *f, const ds_stats *s, const dsm_target *t) {
  const char *label = s ? ds_stats_label(s) : "";
  fputs("# HELP deepseek_up 1 while the monitored process is running, 0 once it has exited.\n"
        "# TYPE deepseek_up gauge\ndeepseek_up",
        f);
  dsm_prom_labels(f, (long long)t->proc.pid, label);
  fputs(s ? " 1\n" : " 0\n", f);
  size_t n = s ? ds_stats_count(s) : 0;
  char(*names)[160] = calloc(n + 1, sizeof *names);
  for (size_t i = 0; names && i < n; i++) {
    ds_stat st;
    char *name = names[i], base[160];
    if (ds_stats_at(&st, s, i) != DS_OK) continue;
    int hist = dsm_hist_member(s, st.name, base, sizeof base);
    dsm_prom_name(name, sizeof names[i], hist ? base : st.name, hist ? DS_STAT_GAUGE : st.kind);
    int seen = 0; /* "a.b" and "a_b" map to one name: a family may appear once per scrape */
    for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(names[j], name);
    if (seen && hist) continue; /* a later member of a histogram already written */
    if (seen) {
      fprintf(f, "# skipped %s: its name is taken by an earlier stat\n", name);
      continue;
    }
    if (hist) {
      dsm_prom_histogram(f, s, base, name, (long long)t->proc.pid, label);
      continue;
    }
    const char *type = st.kind == DS_STAT_COUNTER ? "counter" : "gauge";
    fprintf(f, "# HELP %s libdeepseek %s ", name, type);
    dsm_prom_label(f, st.name); /* HELP text escapes backslash and newline only; harmless */
    fprintf(f, "\n# TYPE %s %s\n%s", name, type, name);
    dsm_prom_labels(f, (long long)t->proc.pid, label);
    dsm_prom_value(f, st.value);
  }
  free(names);
}
