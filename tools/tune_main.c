/* deepseek-tune: searches libdeepseek tunables for the best value of a workload's metric.
 *
 * usage: deepseek-tune --param NAME=LO:HI[:STEP] | NAME=V1,V2,... [--param ...]
 *                      [--constraint EXPR ...] --metric NAME [--minimize]
 *                      [--limit METRIC<=VALUE | METRIC>=VALUE]
 *                      [--strategy grid|random|tpe] [--trials N] [--startup K] [--repeats R]
 *                      [--seed S] [--timeout-s T] [--log FILE] [--out FILE]
 *                      (--workload batch|batch_peak|sched|cache | -- COMMAND [ARGS...])
 * Each trial runs COMMAND R times with the setting as DS_* environment variables (or the
 * built-in workload in-process, tune_workload.c), takes the median of its metric lines, and
 * appends one JSON line to the log; an existing log is resumed (trials that succeeded in it
 * are not rerun; failed ones are). Points that break a --constraint are never tried. With
 * --limit, a trial whose limited metric (median) is outside the bound is infeasible: it is
 * logged and cannot be the best, and the model ranks it below every feasible trial, the
 * smaller the excess the better ("maximise throughput subject to p99 <= budget"). At the end
 * the best setting is written as a config file that the library loads through DS_CONFIG.
 * Strategies: grid (every feasible point in order), random (N distinct random feasible
 * points), tpe (K random start-up points, default 10, then the Tree-structured Parzen
 * Estimator of tune_tpe.c for the rest of the N trials). random and tpe are reproducible with
 * --seed. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tune.h"

#define DTU_KEY_MAX 1024
#define DTU_REPEATS_MAX 99

typedef struct dtu_opts {
  dtu_space space;
  const char *metrics[DST_MAX_METRICS]; /* the objective's, then the --limit's */
  int nmetrics, limit_le;               /* limit: metrics[1] <= (or >=) limit */
  double limit;
  const char *workload, *log, *out;
  int minimize, strategy, trials, startup, repeats;
  unsigned long long seed;
  double timeout_s;
  char **argv;
} dtu_opts;

enum { DTU_GRID, DTU_RANDOM, DTU_TPE };

typedef struct dtu_done { /* trials read back from the log */
  char (*keys)[DTU_KEY_MAX];
  double (*medians)[DST_MAX_METRICS];
  size_t n, cap;
} dtu_done;

static void dtu_usage(FILE *f) {
  fputs("usage: deepseek-tune --param NAME=LO:HI[:STEP]|NAME=V1,V2,... [--param ...]\n"
        "         [--constraint EXPR ...] --metric NAME [--minimize]\n"
        "         [--limit METRIC<=VALUE|METRIC>=VALUE] [--strategy grid|random|tpe]\n"
        "         [--trials N] [--startup K] [--repeats R] [--seed S] [--timeout-s T]\n"
        "         [--log FILE] [--out FILE] (--workload NAME | -- COMMAND...)\n"
        "NAME is a libdeepseek parameter (config key or DS_ variable). EXPR is over the\n"
        "parameters given before it: \"batch_max_inflight <= sched_workers\", with + - * / %\n"
        "( ) < <= > >= == != && || !. COMMAND must print a line \"METRIC VALUE\" (or\n"
        "METRIC=VALUE, METRIC: VALUE) for the metric and the limited one. Built-in workloads\n"
        "and their metrics: batch (throughput, p50_us, p99_us, mean_batch), batch_peak\n"
        "(throughput, p99_us, mean_batch), sched (throughput, wait_p99_us), cache\n"
        "(throughput, hit_ratio). Defaults: grid, 3 repeats,\n"
        "20 trials (random, tpe), tpe start-up 10 random trials, seed 1,\n"
        "60 s timeout, log deepseek-tune.jsonl,\n"
        "out deepseek-tune.conf.\n",
        f);
}

/* "METRIC<=VALUE" or "METRIC>=VALUE" */
static int dtu_parse_limit(dtu_opts *o, const char *v) {
  static char name[64];
  const char *op = strpbrk(v, "<>");
  char *end;
  if (!op || op == v || op[1] != '=' || (size_t)(op - v) >= sizeof name) goto bad;
  o->limit = strtod(op + 2, &end);
  if (end == op + 2 || *end || !isfinite(o->limit)) goto bad;
  memcpy(name, v, (size_t)(op - v));
  name[op - v] = '\0';
  o->metrics[1] = name;
  o->nmetrics = 2;
  o->limit_le = *op == '<';
  return 0;
bad:
  fprintf(stderr, "deepseek-tune: --limit %s: want METRIC<=VALUE or METRIC>=VALUE\n", v);
  return -1;
}

static int dtu_parse(dtu_opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->log = "deepseek-tune.jsonl";
  o->out = "deepseek-tune.conf";
  o->trials = 20;
  o->repeats = 3;
  o->startup = 10; /* fixed, not a share of --trials: a resumed search with a larger budget
                     * then replays the same start-up and proposals */
  o->seed = 1;
  o->timeout_s = 60;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--")) {
      o->argv = argv + i + 1;
      break;
    }
    if (!strcmp(a, "--minimize")) { o->minimize = 1; continue; }
    if (!v) return 0;
    i++;
    if (!strcmp(a, "--param")) { if (dtu_space_add(&o->space, v)) return 0; }
    else if (!strcmp(a, "--constraint")) { if (dtu_space_constrain(&o->space, v)) return 0; }
    else if (!strcmp(a, "--limit")) { if (dtu_parse_limit(o, v)) return 0; }
    else if (!strcmp(a, "--workload")) o->workload = v;
    else if (!strcmp(a, "--metric")) o->metrics[0] = v;
    else if (!strcmp(a, "--strategy") && !strcmp(v, "grid")) o->strategy = DTU_GRID;
    else if (!strcmp(a, "--strategy") && !strcmp(v, "random")) o->strategy = DTU_RANDOM;
    else if (!strcmp(a, "--strategy") && !strcmp(v, "tpe")) o->strategy = DTU_TPE;
    else if (!strcmp(a, "--trials")) o->trials = atoi(v);
    else if (!strcmp(a, "--startup")) o->startup = atoi(v);
    else if (!strcmp(a, "--repeats")) o->repeats = atoi(v);
    else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--timeout-s")) o->timeout_s = atof(v);
    else if (!strcmp(a, "--log")) o->log = v;
    else if (!strcmp(a, "--out")) o->out = v;
    else return 0;
  }
  if (o->workload && (o->argv || !o->metrics[0] || dtu_workload_check(o->workload, o->metrics[0]) ||
                      (o->nmetrics == 2 && dtu_workload_check(o->workload, o->metrics[1]))))
    return 0;
  if (o->nmetrics == 0) o->nmetrics = 1;
  return ((o->argv && o->argv[0]) || o->workload) && o->metrics[0] && o->space.n > 0 &&
         o->trials > 0 && o->repeats > 0 && o->repeats <= DTU_REPEATS_MAX && o->timeout_s > 0 &&
         o->startup >= 1;
}

/* Reads back the trials of an earlier run: lines {"trial":..,"key":"K","median":M|null,...}. */
static void dtu_resume(dtu_done *d, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[8192];
  while (fgets(line, sizeof line, f)) {
    char *k = strstr(line, "\"key\":\""), *m = strstr(line, "\"median\":");
    char *lim = strstr(line, "\"limit_median\":");
    char *kend = k ? strchr(k + 7, '"') : NULL;
    if (!k || !kend || !m || (size_t)(kend - k - 7) >= DTU_KEY_MAX) continue;
    if (d->n == d->cap) {
      size_t cap = d->cap ? d->cap * 2 : 64;
      void *keys = realloc(d->keys, cap * sizeof *d->keys);
      if (keys) d->keys = keys;
      void *med = realloc(d->medians, cap * sizeof *d->medians);
      if (med) d->medians = med;
      if (!keys || !med) break;
      d->cap = cap;
    }
    memcpy(d->keys[d->n], k + 7, (size_t)(kend - k - 7));
    d->keys[d->n][kend - k - 7] = '\0';
    char *end;
    double v = strtod(m + 9, &end);
    if (end == m + 9) continue; /* a failed trial: run it again */
    d->medians[d->n][0] = v;
    d->medians[d->n][1] = lim ? strtod(lim + 15, NULL) : NAN;
    d->n++;
  }
  fclose(f);
}

static int dtu_find_done(const dtu_done *d, const char *key, double *medians) {
  for (size_t i = 0; i < d->n; i++)
    if (!strcmp(d->keys[i], key)) {
      memcpy(medians, d->medians[i], sizeof d->medians[i]);
      return 1;
    }
  return 0;
}

static int dtu_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double dtu_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, dtu_cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int dtu_feasible(const dtu_opts *o, const double *medians) {
  if (o->nmetrics < 2) return 1;
  return o->limit_le ? medians[1] <= o->limit : medians[1] >= o->limit;
}

static void dtu_log_trial(const dtu_opts *o, FILE *log, size_t trial, const int *idx,
                          const char *key, double v[][DST_MAX_METRICS], int ok,
                          const double *medians, const char *why) {
  fprintf(log, "{\"trial\":%zu,\"key\":\"%s\",\"params\":{", trial, key);
  for (int i = 0; i < o->space.n; i++)
    fprintf(log, "%s\"%s\":%lld", i ? "," : "", o->space.p[i].name,
            (long long)o->space.p[i].values[idx[i]]);
  fputs("},\"values\":[", log);
  for (int r = 0; ok && r < o->repeats; r++) fprintf(log, "%s%.17g", r ? "," : "", v[r][0]);
  if (ok && o->nmetrics == 2)
    fprintf(log, "],\"limit_median\":%.17g,\"feasible\":%s,\"median\":%.17g,\"status\":\"ok\"}\n",
            medians[1], dtu_feasible(o, medians) ? "true" : "false", medians[0]);
  else if (ok)
    fprintf(log, "],\"median\":%.17g,\"status\":\"ok\"}\n", medians[0]);
  else {
    fputs("],\"median\":null,\"status\":\"", log);
    for (const char *c = why; *c; c++) fputc(*c == '"' || *c == '\\' ? '\'' : *c, log);
    fputs("\"}\n", log);
    fprintf(stderr, "deepseek-tune: trial %s failed: %s\n", key, why);
  }
  fflush(log);
}

/* Runs the repeats of one trial into medians[] (NaN when any run failed) and logs it. */
static void dtu_trial(const dtu_opts *o, FILE *log, size_t trial, const int *idx, const char *key,
                      double *medians) {
  double v[DTU_REPEATS_MAX][DST_MAX_METRICS], col[DTU_REPEATS_MAX];
  char why[256] = "";
  int ok = 1;
  for (int r = 0; r < o->repeats && ok; r++)
    ok = (o->workload ? dtu_workload_run(v[r], why, sizeof why, o->workload, &o->space, idx,
                                         o->metrics, o->nmetrics)
                      : dtu_run(v[r], why, sizeof why, o->argv, &o->space, idx, o->metrics,
                                o->nmetrics, o->timeout_s)) == 0;
  for (int k = 0; k < DST_MAX_METRICS; k++) {
    medians[k] = NAN;
    for (int r = 0; ok && k < o->nmetrics && r < o->repeats; r++) col[r] = v[r][k];
    if (ok && k < o->nmetrics) medians[k] = dtu_median(col, o->repeats);
  }
  dtu_log_trial(o, log, trial, idx, key, v, ok, medians, why);
}

/* The trial's value for the model, larger better: the metric (negated when minimising); an
 * infeasible trial below every feasible one, ranked by its relative excess over the limit; a
 * failed one last. */
static double dtu_score(const dtu_opts *o, const double *medians) {
  if (isnan(medians[0])) return -INFINITY;
  if (!dtu_feasible(o, medians)) {
    double excess = fabs(medians[1] - o->limit) / (fabs(o->limit) > 0 ? fabs(o->limit) : 1);
    return isnan(excess) ? -DBL_MAX : -1e200 * (1 + fmin(excess, 1e100));
  }
  return o->minimize ? -medians[0] : medians[0];
}

/* The next point: the feasible grid points in order, random distinct ones (a partial shuffle
 * of @p points), or for tpe random ones during the start-up and then the model's proposal
 * from the trials so far. */
static int dtu_next(const dtu_opts *o, size_t k, size_t *points, size_t npoints, int *idx,
                    uint64_t *rng, const dtu_obs *obs, size_t nobs) {
  if (k >= npoints || (o->strategy != DTU_GRID && k >= (size_t)o->trials)) return 0;
  if (o->strategy == DTU_TPE && k >= (size_t)o->startup)
    return dtu_tpe_suggest(&o->space, obs, nobs, rng, idx) == 0;
  if (o->strategy != DTU_GRID) {
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17; /* xorshift64 */
    size_t j = k + (size_t)(*rng % (npoints - k));
    size_t t = points[k];
    points[k] = points[j];
    points[j] = t;
  }
  dtu_grid_point(&o->space, points[k], idx);
  return 1;
}

static void dtu_progress(size_t k, size_t total, const char *key, double m, const char *best,
                         double best_m) {
  char bar[21];
  size_t fill = total ? 20 * k / total : 20;
  for (size_t i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
  bar[20] = '\0';
  fprintf(stderr, "[%s] %zu/%zu  %s -> %.6g   best %.6g (%s)\n", bar, k, total, key, m, best_m,
          best[0] ? best : "none yet");
}

static int dtu_write_config(const dtu_opts *o, const char *best_key, double best_m) {
  FILE *f = fopen(o->out, "w");
  if (!f) {
    perror(o->out);
    return -1;
  }
  fprintf(f, "# written by deepseek-tune: %s %s = %.6g (median of %d runs); log %s\n",
          o->minimize ? "lowest" : "highest", o->metrics[0], best_m, o->repeats, o->log);
  if (o->nmetrics == 2)
    fprintf(f, "# subject to %s %s %g\n", o->metrics[1], o->limit_le ? "<=" : ">=", o->limit);
  char key[DTU_KEY_MAX];
  snprintf(key, sizeof key, "%s", best_key);
  for (char *tok = strtok(key, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    if (eq) fprintf(f, "%.*s = %s\n", (int)(eq - tok), tok, eq + 1);
  }
  return fclose(f) == 0 ? 0 : -1;
}

/* The grid points that satisfy the constraints, in grid order; NULL when out of memory. */
static size_t *dtu_feasible_points(const dtu_space *s, size_t size, size_t *n) {
  size_t *points = malloc((size ? size : 1) * sizeof *points);
  int idx[DST_MAX_PARAMS];
  *n = 0;
  for (size_t g = 0; points && g < size; g++) {
    dtu_grid_point(s, g, idx);
    if (dtu_space_feasible(s, idx)) points[(*n)++] = g;
  }
  return points;
}

typedef struct dtu_best {
  char key[DTU_KEY_MAX];
  double m;
  size_t infeasible;
} dtu_best;

static void dtu_search(const dtu_opts *o, FILE *log, const dtu_done *done, size_t *points,
                       size_t npoints, dtu_obs *obs, dtu_best *best, size_t *evaluated,
                       size_t *resumed) {
  size_t total = o->strategy == DTU_GRID || npoints < (size_t)o->trials ? npoints
                                                                          : (size_t)o->trials;
  uint64_t rng = o->seed ? o->seed : 0x9e3779b97f4a7c15ull;
  int idx[DST_MAX_PARAMS];
  char key[DTU_KEY_MAX];
  for (size_t k = 0; dtu_next(o, k, points, npoints, idx, &rng, obs, k); k++) {
    dtu_point_key(key, sizeof key, &o->space, idx);
    double m[DST_MAX_METRICS];
    if (dtu_find_done(done, key, m)) (*resumed)++;
    else dtu_trial(o, log, k, idx, key, m), (*evaluated)++;
    if (obs) {
      memcpy(obs[k].idx, idx, sizeof obs[k].idx);
      obs[k].y = dtu_score(o, m);
    }
    int feasible = !isnan(m[0]) && dtu_feasible(o, m);
    best->infeasible += !isnan(m[0]) && !feasible;
    if (feasible && (isnan(best->m) || (o->minimize ? m[0] < best->m : m[0] > best->m))) {
      best->m = m[0];
      snprintf(best->key, sizeof best->key, "%s", key);
    }
    dtu_progress(k + 1, total, key, m[0], best->key, best->m);
  }
}

int main(int argc, char **argv) {
  static dtu_opts o;
  if (!dtu_parse(&o, argc, argv)) {
    dtu_usage(stderr);
    return 2;
  }
  size_t size = dtu_space_size(&o.space), npoints = 0;
  if (size > (1u << 24)) {
    fprintf(stderr, "deepseek-tune: the space has %zu points; at most 2^24\n", size);
    return 2;
  }
  size_t *points = dtu_feasible_points(&o.space, size, &npoints);
  dtu_obs *obs = o.strategy == DTU_TPE ? malloc((size_t)o.trials * sizeof *obs) : NULL;
  if (!points || (o.strategy == DTU_TPE && !obs)) {
    fprintf(stderr, "deepseek-tune: out of memory\n");
    free(points), free(obs);
    return 2;
  }
  if (npoints == 0) {
    fprintf(stderr, "deepseek-tune: no point of the %zu satisfies the constraints\n", size);
    free(points), free(obs);
    return 2;
  }
  dtu_done done = {0};
  dtu_resume(&done, o.log);
  FILE *log = fopen(o.log, "a");
  if (!log) {
    perror(o.log);
    free(points), free(obs);
    return 2;
  }
  static dtu_best best = {"", NAN, 0};
  size_t evaluated = 0, resumed = 0;
  dtu_search(&o, log, &done, points, npoints, obs, &best, &evaluated, &resumed);
  fclose(log);
  free(points), free(obs);
  free(done.keys), free(done.medians);
  if (npoints < size)
    fprintf(stderr, "deepseek-tune: %zu of the %zu grid points satisfy the constraints\n",
            npoints, size);
  if (!best.key[0]) {
    fprintf(stderr, "deepseek-tune: no trial succeeded%s; no config written\n",
            best.infeasible ? " within the limit" : "");
    return 1;
  }
  printf("best %s %.6g with %s (%zu trials run, %zu resumed from %s", o.metrics[0], best.m,
         best.key, evaluated, resumed, o.log);
  if (o.nmetrics == 2) printf("; %zu over the limit", best.infeasible);
  printf("); config: %s\n", o.out);
  return dtu_write_config(&o, best.key, best.m) == 0 ? 0 : 1;
}
