/* deepseek-tune's internal interface: the search space (parameters of the library, each a range
 * or a list of values), the strategies that pick settings from it, and running the workload
 * command with a setting in its environment and reading its metric line. */
#ifndef DS_TOOLS_TUNE_H
#define DS_TOOLS_TUNE_H

#include <stddef.h>
#include <stdint.h>

#include <deepseek.h>

#define DST_MAX_PARAMS 16
#define DST_MAX_VALUES 1024 /* per parameter, after a range is expanded */

typedef struct dtu_param {
  ds_param id;
  const char *name; /* the library's name (config key) */
  int64_t values[DST_MAX_VALUES];
  int nvalues;
} dtu_param;

#define DST_MAX_CONSTRAINTS 8
#define DST_MAX_METRICS 2 /* the objective's metric and the one a --limit bounds */

typedef struct dtu_space {
  dtu_param p[DST_MAX_PARAMS];
  int n;
  const char *constraints[DST_MAX_CONSTRAINTS]; /* expressions every point must satisfy */
  int nconstraints;
} dtu_space;

/* Parses "NAME=LO:HI[:STEP]" or "NAME=V1,V2,..." (NAME a config key or DS_ variable) and checks
 * every value against ds_param_bounds(). Returns 0, or -1 with a message on stderr. */
int dtu_space_add(dtu_space *s, const char *spec);
/* Adds a constraint: an expression over the parameters (names as in --param, integers,
 * + - * / % and parentheses, compared with < <= > >= == !=, combined with && || !), e.g.
 * "batch_max_inflight <= sched_workers". Checked against the parameters added so far.
 * Returns 0, or -1 with a message on stderr. */
int dtu_space_constrain(dtu_space *s, const char *expr);
/* 1 when the point satisfies every constraint. */
int dtu_space_feasible(const dtu_space *s, const int *idx);
/* Number of grid points (saturating at SIZE_MAX). */
size_t dtu_space_size(const dtu_space *s);
/* The index-th grid point (mixed radix, the last parameter fastest) into idx[s->n]. */
void dtu_grid_point(const dtu_space *s, size_t index, int *idx);
/* "name=value,name=value": the key a trial is logged and resumed by. */
void dtu_point_key(char *buf, size_t cap, const dtu_space *s, const int *idx);

/* Runs argv with DS_<NAME>=value for the point, @p timeout_s at most, and reads for each of
 * the @p nmetrics names the last line of its stdout whose first token is that name followed by
 * a number ("metric 12.5", "metric=12.5", "metric: 12.5"). Returns 0 with values[] set, or -1
 * with why in @p why. */
int dtu_run(double *values, char *why, size_t why_cap, char *const *argv, const dtu_space *s,
            const int *idx, const char *const *metrics, int nmetrics, double timeout_s);

/* The built-in workloads (tune_workload.c), run in-process on a context created with the
 * point's tunables: "batch", "batch_peak", "sched", "cache". dtu_workload_check() returns 0
 * when @p name is one and offers @p metric (else -1, with the choices on stderr).
 * dtu_workload_run() is dtu_run() for a workload. */
int dtu_workload_check(const char *name, const char *metric);
int dtu_workload_run(double *values, char *why, size_t why_cap, const char *name,
                     const dtu_space *s, const int *idx, const char *const *metrics,
                     int nmetrics);

/* One finished trial for the model-based strategy: its point and its metric oriented so that
 * larger is better (negated when minimising; -INFINITY for a failed trial). */
typedef struct dtu_obs {
  int idx[DST_MAX_PARAMS];
  double y;
} dtu_obs;

/* TPE (see tune_tpe.c): proposes into idx[s->n] an untried point (a tried one only when the
 * whole space is tried) from the @p n observations, drawing from the xorshift64 state @p rng.
 * Returns 0, or -1 when out of memory. */
int dtu_tpe_suggest(const dtu_space *s, const dtu_obs *obs, size_t n, uint64_t *rng, int *idx);

#endif /* DS_TOOLS_TUNE_H */
