/* deepseek-tune: searches libdeepseek tunables for the best value of a workload's metric.
 *
 * usage: deepseek-tune --param NAME=LO:HI[:STEP] | NAME=V1,V2,... [--param ...]
 *                      --metric NAME [--minimize] [--strategy grid|random|tpe] [--trials N]
 *                      [--startup K] [--repeats R] [--seed S] [--timeout-s T] [--log FILE]
 *                      [--out FILE] -- COMMAND [ARGS...]
 * Each trial runs COMMAND R times with the setting as DS_* environment variables, takes the
 * median of its metric lines, and appends one JSON line to the log; an existing log is resumed
 * (trials that succeeded in it are not rerun; failed ones are). At the end the best setting is
 * written as a config file that the library loads through DS_CONFIG.
 * Strategies: grid (every point in order), random (N distinct random points), tpe (K random
 * start-up points, default 10, then the Tree-structured Parzen Estimator of tune_tpe.c for the
 * rest of the N trials). random and tpe are reproducible with --seed. */
#define _POSIX_C_SOURCE 200809L
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
  const char *metric, *log, *out;
  int minimize, strategy, trials, startup, repeats;
  unsigned long long seed;
  double timeout_s;
  char **argv;
} dtu_opts;

enum { DTU_GRID, DTU_RANDOM, DTU_TPE };

typedef struct dtu_done { /* trials read back from the log */
  char (*keys)[DTU_KEY_MAX];
  double *medians;
  size_t n, cap;
} dtu_done;

static void dtu_usage(FILE *f) {
  fputs("usage: deepseek-tune --param NAME=LO:HI[:STEP]|NAME=V1,V2,... [--param ...]\n"
        "         --metric NAME [--minimize] [--strategy grid|random|tpe] [--trials N]\n"
        "         [--startup K] [--repeats R] [--seed S] [--timeout-s T] [--log FILE]\n"
        "         [--out FILE] -- COMMAND [ARGS...]\n"
        "NAME is a libdeepseek parameter (config key or DS_ variable). COMMAND must print a\n"
        "line \"METRIC VALUE\" (or METRIC=VALUE, METRIC: VALUE). Defaults: grid, 3 repeats,\n"
        "20 trials (random, tpe), tpe start-up 10 random trials, seed 1,\n"
        "60 s timeout, log deepseek-tune.jsonl,\n"
        "out deepseek-tune.conf.\n",
        f);
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
    else if (!strcmp(a, "--metric")) o->metric = v;
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
  return o->argv && o->argv[0] && o->metric && o->space.n > 0 && o->trials > 0 &&
         o->repeats > 0 && o->repeats <= DTU_REPEATS_MAX && o->timeout_s > 0 && o->startup >= 1;
}

/* Reads back the trials of an earlier run: lines {"trial":..,"key":"K","median":M|null,...}. */
static void dtu_resume(dtu_done *d, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[8192];
  while (fgets(line, sizeof line, f)) {
    char *k = strstr(line, "\"key\":\""), *m = strstr(line, "\"median\":");
    char *kend = k ? strchr(k + 7, '"') : NULL;
    if (!k || !kend || !m || (size_t)(kend - k - 7) >= DTU_KEY_MAX) continue;
    if (d->n == d->cap) {
      size_t cap = d->cap ? d->cap * 2 : 64;
      void *keys = realloc(d->keys, cap * sizeof *d->keys);
      if (keys) d->keys = keys;
      double *med = realloc(d->medians, cap * sizeof *d->medians);
      if (med) d->medians = med;
      if (!keys || !med) break;
      d->cap = cap;
    }
    memcpy(d->keys[d->n], k + 7, (size_t)(kend - k - 7));
    d->keys[d->n][kend - k - 7] = '\0';
    char *end;
    double v = strtod(m + 9, &end);
    if (end == m + 9) continue; /* a failed trial: run it again */
    d->medians[d->n++] = v;
  }
  fclose(f);
}

static int dtu_find_done(const dtu_done *d, const char *key, double *median) {
  for (size_t i = 0; i < d->n; i++)
    if (!strcmp(d->keys[i], key)) {
      *median = d->medians[i];
      return 1;
    }
  return 0;
}

static int dtu_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Runs the repeats of one trial; returns the median (NaN when any run failed) and logs it. */
static double dtu_trial(const dtu_opts *o, FILE *log, size_t trial, const int *idx,
                        const char *key) {
  double v[DTU_REPEATS_MAX];
  char why[256] = "";
  int ok = 1;
  for (int r = 0; r < o->repeats && ok; r++)
    ok = dtu_run(&v[r], why, sizeof why, o->argv, &o->space, idx, o->metric, o->timeout_s) == 0;
  double median = NAN;
  if (ok) {
    qsort(v, (size_t)o->repeats, sizeof *v, dtu_cmp_double);
    median = o->repeats % 2 ? v[o->repeats / 2]
                            : (v[o->repeats / 2 - 1] + v[o->repeats / 2]) / 2;
  }
  fprintf(log, "{\"trial\":%zu,\"key\":\"%s\",\"params\":{", trial, key);
  for (int i = 0; i < o->space.n; i++)
    fprintf(log, "%s\"%s\":%lld", i ? "," : "", o->space.p[i].name,
            (long long)o->space.p[i].values[idx[i]]);
  fputs("},\"values\":[", log);
  for (int r = 0; ok && r < o->repeats; r++) fprintf(log, "%s%.17g", r ? "," : "", v[r]);
  if (ok) fprintf(log, "],\"median\":%.17g,\"status\":\"ok\"}\n", median);
  else {
    fputs("],\"median\":null,\"status\":\"", log);
    for (const char *c = why; *c; c++) fputc(*c == '"' || *c == '\\' ? '\'' : *c, log);
    fputs("\"}\n", log);
    fprintf(stderr, "deepseek-tune: trial %s failed: %s\n", key, why);
  }
  fflush(log);
  return median;
}

/* The next point: the grid in order, random distinct grid points (a partial shuffle), or for
 * tpe random points during the start-up and then the model's proposal from the trials so far. */
static int dtu_next(const dtu_opts *o, size_t k, size_t *perm, size_t size, int *idx,
                    uint64_t *rng, const dtu_obs *obs, size_t nobs) {
  if (k >= size || (o->strategy != DTU_GRID && k >= (size_t)o->trials)) return 0;
  if (o->strategy == DTU_TPE && k >= (size_t)o->startup)
    return dtu_tpe_suggest(&o->space, obs, nobs, rng, idx) == 0;
  size_t index = k;
  if (o->strategy != DTU_GRID) {
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17; /* xorshift64 */
    size_t j = k + (size_t)(*rng % (size - k));
    size_t t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
    index = perm[k];
  }
  dtu_grid_point(&o->space, index, idx);
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
          o->minimize ? "lowest" : "highest", o->metric, best_m, o->repeats, o->log);
  char key[DTU_KEY_MAX];
  snprintf(key, sizeof key, "%s", best_key);
  for (char *tok = strtok(key, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    if (eq) fprintf(f, "%.*s = %s\n", (int)(eq - tok), tok, eq + 1);
  }
  return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  static dtu_opts o;
  if (!dtu_parse(&o, argc, argv)) {
    dtu_usage(stderr);
    return 2;
  }
  size_t size = dtu_space_size(&o.space);
  int sampled = o.strategy != DTU_GRID;
  size_t total = sampled ? (size < (size_t)o.trials ? size : (size_t)o.trials) : size;
  size_t *perm = sampled ? malloc(size * sizeof *perm) : NULL;
  dtu_obs *obs = o.strategy == DTU_TPE ? malloc((total ? total : 1) * sizeof *obs) : NULL;
  if (size > (1u << 24) || (sampled && !perm) || (o.strategy == DTU_TPE && !obs)) {
    fprintf(stderr, "deepseek-tune: the space has %zu points; at most 2^24\n", size);
    free(perm);
    free(obs);
    return 2;
  }
  for (size_t i = 0; perm && i < size; i++) perm[i] = i;
  dtu_done done = {0};
  dtu_resume(&done, o.log);
  FILE *log = fopen(o.log, "a");
  if (!log) {
    perror(o.log);
    free(perm);
    free(obs);
    return 2;
  }
  uint64_t rng = o.seed ? o.seed : 0x9e3779b97f4a7c15ull;
  int idx[DST_MAX_PARAMS];
  char key[DTU_KEY_MAX], best[DTU_KEY_MAX] = "";
  double best_m = NAN;
  size_t evaluated = 0, resumed = 0;
  for (size_t k = 0; dtu_next(&o, k, perm, size, idx, &rng, obs, k); k++) {
    dtu_point_key(key, sizeof key, &o.space, idx);
    double m;
    if (dtu_find_done(&done, key, &m)) resumed++;
    else m = dtu_trial(&o, log, k, idx, key), evaluated++;
    if (obs) {
      memcpy(obs[k].idx, idx, sizeof obs[k].idx);
      obs[k].y = isnan(m) ? -INFINITY : o.minimize ? -m : m;
    }
    if (!isnan(m) && (isnan(best_m) || (o.minimize ? m < best_m : m > best_m))) {
      best_m = m;
      snprintf(best, sizeof best, "%s", key);
    }
    dtu_progress(k + 1, total, key, m, best, best_m);
  }
  fclose(log);
  free(perm);
  free(obs);
  free(done.keys);
  free(done.medians);
  if (!best[0]) {
    fprintf(stderr, "deepseek-tune: no trial succeeded; no config written\n");
    return 1;
  }
  printf("best %s %.6g with %s (%zu trials run, %zu resumed from %s); config: %s\n", o.metric,
         best_m, best, evaluated, resumed, o.log, o.out);
  return dtu_write_config(&o, best, best_m) == 0 ? 0 : 1;
}
