/* deepseek-predict-eval: readers for the Bitbrains (GWA-T-12, ";\t"-separated, timestamps in
 * seconds) and Alibaba cluster-trace-v2018 machine_usage CSV formats, and resampling of each
 * series to a fixed step (mean of the samples in a step; an empty step carries the previous
 * values forward and is marked not real, so it is never scored), and the inputs derived from
 * the target series. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "predict_eval.h"

typedef struct ev_raw {
  double ts;
  float f[EV_NRAW];
} ev_raw;

typedef struct ev_rawvec {
  ev_raw *v;
  size_t n, cap;
} ev_rawvec;

static int ev_push(ev_rawvec *r, const ev_raw *x) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 1024;
    ev_raw *v = realloc(r->v, cap * sizeof *v);
    if (!v) return -1;
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = *x;
  return 0;
}

const char *ev_group_name(int g) { return g == EV_BITBRAINS ? "bitbrains" : "alibaba"; }

const char *ev_feature_names(int g) {
  return g == EV_BITBRAINS
             ? "cpu%, mem% of provisioned, log1p(disk r+w KB/s), log1p(net rx+tx KB/s)"
             : "cpu_util%, mem_util%, net_in, disk_io% (-1/101 = missing)";
}

static int ev_cmp_ts(const void *a, const void *b) {
  double x = ((const ev_raw *)a)->ts, y = ((const ev_raw *)b)->ts;
  return (x > y) - (x < y);
}

/* Inputs derived from the target's past only (causal), for what a 32-step window cannot see
 * or the model would have to learn: slow levels and the recent peak. */
static void ev_derive(ev_series *s) {
#if EV_NDERIVED == 3
  double fast = s->x[0], slow = s->x[0];
  for (size_t t = 0; t < s->n; t++) {
    float *row = s->x + t * EV_F, peak = row[0];
    fast += 0.1 * (row[0] - fast);
    slow += 0.02 * (row[0] - slow);
    for (size_t k = 1; k < 10 && k <= t; k++) peak = fmaxf(peak, s->x[(t - k) * EV_F]);
    row[EV_NRAW] = (float)fast, row[EV_NRAW + 1] = (float)slow, row[EV_NRAW + 2] = peak;
  }
#else
  (void)s;
#endif
}

/* Appends the series in r; -1: out of memory, -2: it would take the file past *budget steps
 * (a bad timestamp far from the others, which would otherwise ask for gigabytes). */
static int ev_resample(ev_rawvec *r, double step, int group, const char *name, ev_series **list,
                       size_t *count, size_t *budget) {
  if (r->n < 2) return 0;
  qsort(r->v, r->n, sizeof *r->v, ev_cmp_ts);
  double t0 = r->v[0].ts, span = (r->v[r->n - 1].ts - t0) / step;
  if (!(span < (double)*budget)) return -2; /* also catches an infinite span */
  size_t n = (size_t)span + 1;
  *budget -= n;
  ev_series s = {{0}, group, n, calloc(n * EV_F, sizeof(float)), calloc(n, 1)};
  double *sum = calloc(n * EV_F, sizeof(double));
  unsigned *cnt = calloc(n * EV_F, sizeof(unsigned));
  ev_series *grown = realloc(*list, (*count + 1) * sizeof **list);
  if (!s.x || !s.real || !sum || !cnt || !grown) {
    free(s.x), free(s.real), free(sum), free(cnt);
    if (grown) *list = grown;
    return -1;
  }
  *list = grown;
  snprintf(s.name, sizeof s.name, "%s", name);
  for (size_t i = 0; i < r->n; i++) {
    size_t b = (size_t)((r->v[i].ts - t0) / step);
    s.real[b] = 1;
    for (int f = 0; f < EV_NRAW; f++)
      if (isfinite(r->v[i].f[f])) sum[b * EV_F + f] += r->v[i].f[f], cnt[b * EV_F + f]++;
  }
  float prev[EV_NRAW] = {0};
  for (size_t b = 0; b < n; b++)
    for (int f = 0; f < EV_NRAW; f++) {
      if (cnt[b * EV_F + f]) prev[f] = (float)(sum[b * EV_F + f] / cnt[b * EV_F + f]);
      s.x[b * EV_F + f] = prev[f];
    }
  free(sum);
  free(cnt);
  ev_derive(&s);
  (*list)[(*count)++] = s;
  return 0;
}

/* A measurement as float; NAN (missing) when it is not finite or out of float's range. */
static float ev_float(double v) { return isfinite(v) && fabs(v) <= FLT_MAX ? (float)v : NAN; }

/* Timestamps must be finite (strtod accepts "nan" and "inf"). */
static int ev_bad_ts(double ts) { return !isfinite(ts); }

/* "v1;\tv2;\t..." */
static int ev_parse_bitbrains(const char *line, ev_raw *out) {
  double c[11];
  const char *p = line;
  for (int i = 0; i < 11; i++) {
    char *end;
    while (*p == ';' || *p == ' ' || *p == '\t') p++;
    c[i] = strtod(p, &end);
    if (end == p) return -1;
    p = end;
  }
  if (ev_bad_ts(c[0])) return -1;
  out->ts = c[0];
  out->f[0] = ev_float(c[4]);
  out->f[1] = c[5] > 0 ? ev_float(100.0 * c[6] / c[5]) : NAN;
  out->f[2] = ev_float(log1p(fmax(0, c[7] + c[8])));
  out->f[3] = ev_float(log1p(fmax(0, c[9] + c[10])));
  return 0;
}

/* machine_id,time_stamp,cpu,mem,mem_gps,mkpi,net_in,net_out,disk_io (fields may be empty) */
static int ev_parse_alibaba(char *line, char *id, size_t idcap, ev_raw *out) {
  char *fld[9];
  int n = 0;
  for (char *p = line; n < 9;) {
    fld[n++] = p;
    char *c = strchr(p, ',');
    if (!c) break;
    *c = 0;
    p = c + 1;
  }
  if (n < 9 || !*fld[1]) return -1;
  snprintf(id, idcap, "%s", fld[0]);
  out->ts = strtod(fld[1], NULL);
  if (ev_bad_ts(out->ts)) return -1;
  int cols[EV_NRAW] = {2, 3, 6, 8};
  for (int f = 0; f < EV_NRAW; f++) {
    char *end;
    double v = strtod(fld[cols[f]], &end);
    out->f[f] = end == fld[cols[f]] ? NAN : ev_float(v);
  }
  if (out->f[3] < 0 || out->f[3] > 100) out->f[3] = NAN;
  return 0;
}

int ev_read_trace(const char *path, double step, ev_series **list, size_t *count) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "deepseek-predict-eval: cannot open %s\n", path);
    return -1;
  }
  int rc = ev_read_trace_stream(f, path, step, EV_MAX_STEPS, list, count);
  fclose(f);
  return rc;
}

int ev_read_trace_stream(FILE *f, const char *name, double step, size_t max_steps,
                         ev_series **list, size_t *count) {
  char *line = NULL;
  size_t cap = 0, budget = max_steps;
  ssize_t len = getline(&line, &cap, f);
  int group = len > 0 && strstr(line, "Timestamp") && strchr(line, ';') ? EV_BITBRAINS : EV_ALIBABA;
  if (!(step > 0)) step = group == EV_BITBRAINS ? 300 : 60;
  ev_rawvec r = {0};
  char id[64] = "", cur[64] = "", sname[128];
  int rc = 0, bad = 0;
  if (group == EV_ALIBABA) rewind(f);
  while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
    ev_raw x;
    int ok = group == EV_BITBRAINS ? ev_parse_bitbrains(line, &x)
                                   : ev_parse_alibaba(line, id, sizeof id, &x);
    if (ok != 0) {
      bad++;
      continue;
    }
    if (group == EV_ALIBABA && strcmp(id, cur) != 0) { /* a new machine starts */
      snprintf(sname, sizeof sname, "%s:%s", name, cur);
      if (cur[0]) rc = ev_resample(&r, step, group, sname, list, count, &budget);
      r.n = 0;
      snprintf(cur, sizeof cur, "%s", id);
    }
    if (rc == 0) rc = ev_push(&r, &x);
  }
  if (rc == 0) {
    if (group == EV_ALIBABA)
      snprintf(sname, sizeof sname, "%s:%s", name, cur);
    else
      snprintf(sname, sizeof sname, "%s", name);
    rc = ev_resample(&r, step, group, sname, list, count, &budget);
  }
  if (bad > 1)
    fprintf(stderr, "deepseek-predict-eval: %s: %d unparsable lines skipped\n", name, bad);
  free(r.v);
  free(line);
  if (rc == -2)
    fprintf(stderr, "deepseek-predict-eval: %s: time span over %zu steps of %g s (bad timestamp?)\n",
            name, max_steps, step);
  else if (rc != 0)
    fprintf(stderr, "deepseek-predict-eval: %s: out of memory\n", name);
  return rc ? -1 : 0;
}

void ev_free_series(ev_series *s, size_t n) {
  for (size_t i = 0; i < n; i++) free(s[i].x), free(s[i].real);
  free(s);
}
