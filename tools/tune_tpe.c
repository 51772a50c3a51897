/* deepseek-tune: the model-based strategy, a Tree-structured Parzen Estimator (TPE).
 *
 * Instead of modelling p(metric | setting), TPE models p(setting | the trial was good) = l(x)
 * and p(setting | the trial was bad) = g(x), and proposes the setting that maximises
 * l(x) / g(x), which (Bergstra et al., 2011) is the setting with the largest expected
 * improvement. Each proposal:
 *   1. sorts the observed trials by metric (failed trials rank last) and splits them at the
 *      gamma quantile: the best ceil(gamma * n) trials (at least 1) are "good", the rest "bad";
 *   2. for each parameter independently, fits a Parzen density to the good and to the bad
 *      trials' values. The space is discrete (grid values), so each density is a distribution
 *      over the parameter's values:
 *      - a numeric parameter (at least 3 values, strictly increasing) puts a Gaussian kernel on
 *        each observed value, in the parameter's domain scaled to [0, 1] (log-scaled when the
 *        values span more than two decades or form a geometric progression such as 1, 2, 4, ...
 *        64), plus a broad prior kernel (centre 0.5, width 1);
 *        the kernels are evaluated at the grid values and normalised over them, which is the
 *        exact truncation to the domain. Kernel width: 0.25 * n^(-1/5) (Scott-like shrinking
 *        with the group's size n), never below half a grid step;
 *      - any other parameter (a list of choices) is categorical: (1 + count) / (m + n);
 *   3. draws DTU_TPE_CANDIDATES settings from l (each parameter from its own distribution) and
 *      returns the untried one that satisfies the constraints with the largest sum over
 *      parameters of log l - log g.
 * When every candidate was tried already it returns a random untried setting. The caller runs
 * the first trials (the start-up) at random, as the model needs data. All randomness comes
 * from the caller's xorshift state, so a seed reproduces the search, and a resumed search
 * (the same trials read back from the log) proposes the same settings. Cost per proposal:
 * O(params * values * trials) for the densities plus O(candidates * trials * params) for the
 * duplicate check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tune.h"

#define DTU_TPE_CANDIDATES 24
#define DTU_TPE_GAMMA 0.25

static uint64_t dtu_rand(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17; /* xorshift64 */
  return *s;
}

static double dtu_unit(uint64_t *s) { return (double)(dtu_rand(s) >> 11) * 0x1.0p-53; }

static int dtu_numeric(const dtu_param *p) {
  if (p->nvalues < 3) return 0;
  for (int j = 1; j < p->nvalues; j++)
    if (p->values[j] <= p->values[j - 1]) return 0;
  return 1;
}

/* Values given as a geometric progression (each at least 1.5 times the one before, e.g. batch
 * sizes 1, 2, 4, ..., 64): the user thinks of them on a log scale, and so should the kernels,
 * or the values at the low end look like one point. */
static int dtu_geometric(const dtu_param *p) {
  for (int j = 1; j < p->nvalues; j++)
    if (p->values[j - 1] <= 0 || (double)p->values[j] < 1.5 * (double)p->values[j - 1]) return 0;
  return 1;
}

/* The parameter's values mapped into [0, 1], log-scaled when they span over two decades or
 * form a geometric progression. */
static void dtu_positions(const dtu_param *p, double *x) {
  double lo = (double)p->values[0], hi = (double)p->values[p->nvalues - 1];
  double d = lo > 0 ? lo : 1; /* log(v - lo + d): log(v) when lo > 0, log(v + 1) from 0 */
  int logs = lo >= 0 && ((hi - lo + d) / d > 100 || dtu_geometric(p));
  for (int j = 0; j < p->nvalues; j++) {
    double v = (double)p->values[j];
    x[j] = logs ? log(v - lo + d) : v;
  }
  double a = x[0], b = x[p->nvalues - 1];
  for (int j = 0; j < p->nvalues; j++) x[j] = (x[j] - a) / (b - a);
}

/* The distribution over parameter i's values given the observations in @p group. */
static void dtu_density(const dtu_space *s, int i, const dtu_obs *const *group, size_t n,
                        double *w) {
  const dtu_param *p = &s->p[i];
  int m = p->nvalues;
  double sum = 0;
  if (!dtu_numeric(p)) {
    for (int j = 0; j < m; j++) w[j] = 1;
    for (size_t k = 0; k < n; k++) w[group[k]->idx[i]] += 1;
  } else {
    double x[DST_MAX_VALUES];
    dtu_positions(p, x);
    double sigma = 0.25 * pow((double)(n ? n : 1), -0.2), step = 0.5 / (m - 1);
    if (sigma < step) sigma = step;
    for (int j = 0; j < m; j++) {
      double z = x[j] - 0.5, acc = exp(-0.5 * z * z); /* the prior, width 1 */
      for (size_t k = 0; k < n; k++) {
        double u = (x[j] - x[group[k]->idx[i]]) / sigma;
        acc += exp(-0.5 * u * u) / sigma;
      }
      w[j] = acc;
    }
  }
  for (int j = 0; j < m; j++) sum += w[j];
  for (int j = 0; j < m; j++) w[j] /= sum;
}

static int dtu_draw(const double *w, int m, uint64_t *rng) {
  double u = dtu_unit(rng), c = 0;
  for (int j = 0; j < m; j++)
    if ((c += w[j]) > u) return j;
  return m - 1;
}

static int dtu_tried(const dtu_space *s, const dtu_obs *obs, size_t n, const int *idx) {
  for (size_t k = 0; k < n; k++)
    if (!memcmp(obs[k].idx, idx, (size_t)s->n * sizeof *idx)) return 1;
  return 0;
}

static int dtu_cmp_obs(const void *a, const void *b) {
  double x = (*(const dtu_obs *const *)a)->y, y = (*(const dtu_obs *const *)b)->y;
  return (x < y) - (x > y); /* best (largest) first */
}

/* A random untried point, or a tried one when the draws keep hitting tried points. */
static void dtu_random_untried(const dtu_space *s, const dtu_obs *obs, size_t n, uint64_t *rng,
                               int *idx) {
  for (int tries = 0; tries < 1000; tries++) {
    for (int i = 0; i < s->n; i++) idx[i] = (int)(dtu_rand(rng) % (uint64_t)s->p[i].nvalues);
    if (dtu_space_feasible(s, idx) && !dtu_tried(s, obs, n, idx)) return;
  }
  size_t size = dtu_space_size(s);
  for (size_t g = 0; g < size; g++) {
    dtu_grid_point(s, g, idx);
    if (dtu_space_feasible(s, idx) && !dtu_tried(s, obs, n, idx)) return;
  }
}

int dtu_tpe_suggest(const dtu_space *s, const dtu_obs *obs, size_t n, uint64_t *rng, int *idx) {
  const dtu_obs **sorted = malloc((n ? n : 1) * sizeof *sorted);
  double(*l)[DST_MAX_VALUES] = malloc((size_t)s->n * sizeof *l);
  double(*g)[DST_MAX_VALUES] = malloc((size_t)s->n * sizeof *g);
  if (!sorted || !l || !g) {
    free(sorted), free(l), free(g);
    return -1;
  }
  for (size_t k = 0; k < n; k++) sorted[k] = &obs[k];
  qsort(sorted, n, sizeof *sorted, dtu_cmp_obs);
  size_t ngood = (size_t)ceil(DTU_TPE_GAMMA * (double)n);
  if (ngood < 1) ngood = n ? 1 : 0;
  for (int i = 0; i < s->n; i++) {
    dtu_density(s, i, sorted, ngood, l[i]);
    dtu_density(s, i, sorted + ngood, n - ngood, g[i]);
  }
  double best = -INFINITY;
  int cand[DST_MAX_PARAMS];
  for (int c = 0; c < DTU_TPE_CANDIDATES; c++) {
    double score = 0;
    for (int i = 0; i < s->n; i++) {
      cand[i] = dtu_draw(l[i], s->p[i].nvalues, rng);
      score += log(l[i][cand[i]]) - log(g[i][cand[i]]);
    }
    if (score > best && dtu_space_feasible(s, cand) && !dtu_tried(s, obs, n, cand)) {
      best = score;
      memcpy(idx, cand, (size_t)s->n * sizeof *idx);
    }
  }
  if (best == -INFINITY) dtu_random_untried(s, obs, n, rng, idx);
  free(sorted), free(l), free(g);
  return 0;
}
