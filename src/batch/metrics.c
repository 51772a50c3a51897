/* Metrics of the dynamic batcher: lock-free counters and log-spaced latency histograms,
 * ds_batcher_stats_get(), the batch-size histogram, and publishing to the context's stats
 * ("batch.<name>.*"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "batch_internal.h"

/* Bucket of ns: values below 8 exactly, then 8 buckets per power of two. */
static int bucket_of(uint64_t ns) {
  if (ns < 8) return (int)ns;
  int e = 63 - __builtin_clzll(ns);
  int i = (e - 2) * 8 + (int)((ns >> (e - 3)) & 7);
  return i < DS__BHIST_BUCKETS ? i : DS__BHIST_BUCKETS - 1;
}

/* Middle of bucket i, in ns. */
static double bucket_mid(int i) {
  if (i < 8) return i;
  int e = i / 8 + 2, sub = i % 8;
  double lo = (double)(8 + sub) * ldexp(1.0, e - 3);
  return lo + 0.5 * ldexp(1.0, e - 3);
}

void ds__bhist_add(struct ds__bhist *h, uint64_t ns) {
  ds__fetch_add_relaxed(&h->n[bucket_of(ns)], 1);
}

double ds__bhist_quantile_us(const struct ds__bhist *h, double q) {
  uint64_t total = 0;
  for (int i = 0; i < DS__BHIST_BUCKETS; i++) total += ds__load_relaxed(&h->n[i]);
  if (!total) return NAN;
  uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
  if (want < 1) want = 1;
  for (int i = 0; i < DS__BHIST_BUCKETS; i++) {
    seen += ds__load_relaxed(&h->n[i]);
    if (seen >= want) return bucket_mid(i) / 1000.0;
  }
  return bucket_mid(DS__BHIST_BUCKETS - 1) / 1000.0;
}

static const char *const stat_names[16] = {
    "submitted",      "completed",          "failed",       "rejected",
    "invalid",        "timed_out",          "cancelled",    "batches",
    "queued",         "mean_batch_size",    "fill_ratio",   "padding_waste",
    "queue_delay_p50_us", "queue_delay_p99_us", "latency_p50_us", "latency_p99_us"};

void ds__batch_stats_register(struct ds_batcher *b) {
  for (int i = 0; i < 16; i++) {
    char name[96];
    snprintf(name, sizeof name, "batch.%s.%s", b->name, stat_names[i]);
    b->stat_ids[i] = ds__stat_register(b->ctx, name, i < 8 ? DS_STAT_COUNTER : DS_STAT_GAUGE);
  }
}

static void fill_stats(struct ds_batcher *b, ds_batcher_stats *s) {
  s->submitted = ds__load_relaxed(&b->submitted);
  s->completed = ds__load_relaxed(&b->completed);
  s->failed = ds__load_relaxed(&b->failed);
  s->rejected = ds__load_relaxed(&b->rejected);
  s->invalid = ds__load_relaxed(&b->invalid);
  s->timed_out = ds__load_relaxed(&b->timed_out);
  s->cancelled = ds__load_relaxed(&b->cancelled);
  s->batches = ds__load_relaxed(&b->batches);
  pthread_mutex_lock(&b->mu);
  s->queued = (uint64_t)b->nqueued;
  pthread_mutex_unlock(&b->mu);
  uint64_t reqs = ds__load_relaxed(&b->batched_reqs);
  s->mean_batch_size = s->batches ? (double)reqs / (double)s->batches : NAN;
  s->fill_ratio = s->mean_batch_size / b->o.max_batch_size;
  double real = (double)ds__load_relaxed(&b->real_elems);
  double pad = (double)ds__load_relaxed(&b->padded_elems);
  s->padding_waste = real + pad > 0 ? pad / (real + pad) : NAN;
  s->queue_delay_p50_us = ds__bhist_quantile_us(&b->queue_delay, 0.50);
  s->queue_delay_p99_us = ds__bhist_quantile_us(&b->queue_delay, 0.99);
  s->latency_p50_us = ds__bhist_quantile_us(&b->latency, 0.50);
  s->latency_p99_us = ds__bhist_quantile_us(&b->latency, 0.99);
}

static void publish(struct ds_batcher *b, const ds_batcher_stats *s) {
  const double v[16] = {(double)s->submitted, (double)s->completed, (double)s->failed,
                        (double)s->rejected,  (double)s->invalid,   (double)s->timed_out,
                        (double)s->cancelled, (double)s->batches,   (double)s->queued,
                        s->mean_batch_size,   s->fill_ratio,        s->padding_waste,
                        s->queue_delay_p50_us, s->queue_delay_p99_us, s->latency_p50_us,
                        s->latency_p99_us};
  for (int i = 0; i < 16; i++) ds__stat_set(b->ctx, b->stat_ids[i], v[i]);
}

/* Fills *s and publishes it, under pub_mu: the last publisher read the counters last. */
static void fill_and_publish(struct ds_batcher *b, ds_batcher_stats *s) {
  pthread_mutex_lock(&b->pub_mu);
  fill_stats(b, s);
  publish(b, s);
  pthread_mutex_unlock(&b->pub_mu);
}

void ds__batch_stats_publish(struct ds_batcher *b) {
  ds_batcher_stats s;
  fill_and_publish(b, &s);
}

/* At most every 50 ms, by whichever batch finishes first after that. */
void ds__batch_stats_maybe_publish(struct ds_batcher *b, uint64_t now) {
  uint64_t last = ds__load_relaxed(&b->last_publish_ns);
  if (now - last < 50000000u) return;
  if (!ds__cas(&b->last_publish_ns, &last, now)) return;
  ds__batch_stats_publish(b);
}

ds_status ds_batcher_stats_get(ds_batcher *b, ds_batcher_stats *out) {
  if (!b || !out)
    return ds__error(b ? b->ctx : NULL, DS_ERR_INVALID_ARG, "batch",
                     "ds_batcher_stats_get: NULL argument");
  if (out->struct_size != sizeof(ds_batcher_stats))
    return ds__error(b->ctx, DS_ERR_ABI, "batch", "stats struct_size %u, expected %zu",
                     out->struct_size, sizeof(ds_batcher_stats));
  fill_and_publish(b, out);
  return DS_OK;
}

ds_status ds_batcher_histogram(ds_batcher *b, uint64_t *counts, size_t n) {
  if (!b || !counts || !n)
    return ds__error(b ? b->ctx : NULL, DS_ERR_INVALID_ARG, "batch",
                     "ds_batcher_histogram: NULL or empty argument");
  memset(counts, 0, n * sizeof *counts);
  for (size_t i = 1; i <= (size_t)b->o.max_batch_size; i++)
    counts[i < n ? i : n - 1] += ds__load_relaxed(&b->size_hist[i]);
  return DS_OK;
}
