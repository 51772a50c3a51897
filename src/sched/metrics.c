/* The scheduler's measurements: the queue-wait histograms (one per worker and class, so
 * workers never share their counters' cache lines) and the EWMA load predictor that
 * fills the predictor hook until the predict module provides a better one. */
#include <math.h>

#include "sched_internal.h"

static int ds__hist_bucket(uint64_t ns) {
  int b = 0;
  while (ns > 1 && b < DS__SCHED_HIST_BUCKETS - 1) {
    ns >>= 1;
    b++;
  }
  return b; /* bucket b holds [2^b, 2^(b+1)) ns */
}

void ds__hist_add(ds__hist *h, uint64_t ns) {
  ds__fetch_add_relaxed(&h->n[ds__hist_bucket(ns)], 1);
  ds__fetch_add_relaxed(&h->sum_ns, ns);
}

void ds__hist_cumulative_n(const ds__hist *h, int count, size_t stride, uint64_t *cum,
                           uint64_t *sum) {
  uint64_t n[DS__SCHED_HIST_BUCKETS] = {0};
  *sum = 0;
  for (int i = 0; i < count; i++) {
    const ds__hist *hi = (const ds__hist *)((const char *)h + (size_t)i * stride);
    for (int b = 0; b < DS__SCHED_HIST_BUCKETS; b++) n[b] += ds__load_relaxed(&hi->n[b]);
    *sum += ds__load_relaxed(&hi->sum_ns);
  }
  uint64_t below = 0;
  int b = 0;
  for (int i = 0; i <= DS__SCHED_HIST_LE; i++) { /* bucket b holds [2^b, 2^(b+1)) */
    int end = i < DS__SCHED_HIST_LE ? DS__SCHED_HIST_LE0 + 3 * i : DS__SCHED_HIST_BUCKETS;
    for (; b < end; b++) below += n[b];
    cum[i] = below;
  }
}

double ds__hist_quantile(const ds__hist *h, double q) { return ds__hist_quantile_n(h, 1, 0, q); }

double ds__hist_quantile_n(const ds__hist *h, int count, size_t stride, double q) {
  uint64_t n[DS__SCHED_HIST_BUCKETS] = {0}, total = 0;
  for (int i = 0; i < count; i++) {
    const ds__hist *hi = (const ds__hist *)((const char *)h + (size_t)i * stride);
    for (int b = 0; b < DS__SCHED_HIST_BUCKETS; b++) n[b] += ds__load_relaxed(&hi->n[b]);
  }
  for (int b = 0; b < DS__SCHED_HIST_BUCKETS; b++) total += n[b];
  if (total == 0) return 0;
  double rank = q * (double)total, seen = 0;
  for (int b = 0; b < DS__SCHED_HIST_BUCKETS; b++) {
    if (n[b] && seen + (double)n[b] >= rank) {
      double lo = ldexp(1.0, b), frac = (rank - seen) / (double)n[b];
      return lo + frac * lo; /* linear inside [2^b, 2^(b+1)) */
    }
    seen += (double)n[b];
  }
  return ldexp(1.0, DS__SCHED_HIST_BUCKETS);
}

double ds__ewma_predict(void *state, double observed) {
  ds__ewma *e = state;
  e->value = e->primed ? e->alpha * observed + (1 - e->alpha) * e->value : observed;
  e->primed = 1;
  /* A rising load is followed at once: throttling late costs URGENT latency, early costs little. */
  return observed > e->value ? observed : e->value;
}
