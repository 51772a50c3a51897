/* deepseek-tune: the built-in workloads, run in-process so that hundreds of trials fit in
 * minutes. Each trial creates a context from the point's tunables alone (DS_* variables and
 * DS_CONFIG of the tool's own environment are ignored, so a trial is what its key says), runs
 * a fixed amount of work on the public API and returns named metrics:
 *   batch: the dynamic batcher (batch_* tunables: its options are left to the context) under
 *          an open-loop Poisson load of BATCH_RATE requests/s for BATCH_SECONDS, each batch
 *          costing BATCH_BASE_US + BATCH_ROW_US per request, spent asleep as an accelerator
 *          call would be (so the figures depend little on the host's other load). Arrivals
 *          are the same sequence in every trial. Metrics: throughput (requests completed within
 *          the window per second), p50_us, p99_us (completion minus submission), mean_batch.
 *   batch_peak: the same batcher and batch cost under a closed loop instead: PEAK_CLIENTS
 *          requests always outstanding (each completion submits the next) for BATCH_SECONDS, so
 *          the metric is the batcher's peak throughput, which batch size and concurrency
 *          trade against each other. Metrics: throughput, p99_us, mean_batch.
 *   sched: SCHED_TASKS tasks of about SCHED_WORK_US of arithmetic each, submitted from one
 *          thread. Metrics: throughput (tasks/s), wait_p99_us (submit to start).
 *   cache: SCHED-free gets on a cache made from the cache_* tunables (ds_cache_create with
 *          NULL options): CACHE_GETS gets of 1 KiB values over CACHE_KEYS keys, skewed (a
 *          fixed Zipf-like sequence), a put after each miss. Metrics: throughput (gets/s),
 *          hit_ratio. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tune.h"

#define BATCH_RATE 6000.0
#define BATCH_SECONDS 0.25
#define BATCH_BASE_US 400
#define BATCH_ROW_US 25
#define PEAK_CLIENTS 128
#define SCHED_TASKS 4000
#define SCHED_WORK_US 10
#define CACHE_GETS 40000
#define CACHE_KEYS 8192
#define CACHE_VALUE 1024

typedef struct dtu_result {
  const char *names[4];
  double v[4];
} dtu_result;

static const dtu_result dtu_metric_names[] = {
    {{"throughput", "p50_us", "p99_us", "mean_batch"}, {0}},
    {{"throughput", "p99_us", "mean_batch", NULL}, {0}},
    {{"throughput", "wait_p99_us", NULL, NULL}, {0}},
    {{"throughput", "hit_ratio", NULL, NULL}, {0}},
};
static const char *const dtu_workloads[] = {"batch", "batch_peak", "sched", "cache"};

static double dtu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void dtu_sleep_until(double t) {
  struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static double dtu_uniform(uint64_t *s) { /* (0, 1) from xorshift64 */
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return ((double)(*s >> 11) + 0.5) * 0x1.0p-53;
}

static int dtu_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double dtu_quantile(double *v, size_t n, double q) {
  if (!n) return NAN;
  qsort(v, n, sizeof *v, dtu_cmp);
  return v[(size_t)(q * (double)(n - 1))];
}

static ds_status dtu_context(ds_context **ctx, const dtu_space *s, const int *idx) {
  ds_param_value pv[DST_MAX_PARAMS + 2] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                                           {DS_PARAM_STATS_FILE, 0, 0}};
  for (int i = 0; i < s->n; i++)
    pv[2 + i] = (ds_param_value){(int32_t)s->p[i].id, 0, s->p[i].values[idx[i]]};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = (size_t)s->n + 2;
  o.name = "deepseek-tune";
  return ds_context_create(ctx, &o);
}

/* ------------------------------------------------------------------ batch */

typedef struct dtu_breq {
  double t_arrival, t_done; /* t_done < 0: not completed OK */
  float in, out;
} dtu_breq;

static ds_status dtu_batch_handler(void *user, const ds_batch *b) {
  (void)user;
  long us = BATCH_BASE_US + BATCH_ROW_US * (long)b->nrequests;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
  return DS_OK;
}

static void dtu_batch_done(void *user, ds_batch_request *req, ds_status st) {
  (void)req;
  dtu_breq *r = user;
  r->t_done = st == DS_OK ? dtu_now() : -1;
}

static ds_status dtu_batch_submit_cb(ds_batcher *b, dtu_breq *r, ds_batch_done_fn done) {
  int64_t shape[1] = {1};
  ds_tensor in, out;
  ds_tensor_init(&in, NULL, &r->in, DS_DTYPE_F32, 1, shape, NULL, (ds_device){DS_DEVICE_CPU, 0});
  ds_tensor_init(&out, NULL, &r->out, DS_DTYPE_F32, 1, shape, NULL,
                 (ds_device){DS_DEVICE_CPU, 0});
  ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.on_done = done;
  so.user = r;
  return ds_batcher_submit(NULL, b, &in, &out, &so);
}

static ds_status dtu_batch_submit(ds_batcher *b, dtu_breq *r) {
  return dtu_batch_submit_cb(b, r, dtu_batch_done);
}

/* The load, then a draining shutdown: what is queued at the end of the window runs at once
 * (its latency counts; its completion is past the window, so not its throughput). */
static int dtu_batch(ds_context *ctx, dtu_result *res, char *why, size_t why_cap) {
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT; /* size, delay, inflight: the tunables */
  o.handler = dtu_batch_handler;
  o.ndim = 1;
  o.shape[0] = 1;
  o.output_ndim = 1;
  o.output_shape[0] = 1;
  ds_batcher *b = NULL;
  size_t cap = (size_t)(BATCH_RATE * BATCH_SECONDS * 2) + 64, n = 0;
  dtu_breq *r = calloc(cap, sizeof *r);
  double *lat = calloc(cap, sizeof *lat);
  if (!r || !lat || ds_batcher_create(&b, ctx, &o) != DS_OK) {
    snprintf(why, why_cap, "batcher: %s", r && lat ? ds_context_last_error(ctx) : "memory");
    free(r), free(lat);
    return -1;
  }
  uint64_t rng = 0x5eed;
  double t0 = dtu_now() + 0.002, t = t0;
  while (n < cap) {
    t += -log(dtu_uniform(&rng)) / BATCH_RATE;
    if (t >= t0 + BATCH_SECONDS) break;
    dtu_sleep_until(t);
    r[n].t_arrival = dtu_now(); /* not t: a generator that ran late is not the batcher's doing */
    r[n].t_done = -1;
    dtu_batch_submit(b, &r[n++]);
  }
  ds_batcher_shutdown(b, 1);
  ds_batcher_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  ds_batcher_stats_get(b, &st);
  ds_batcher_destroy(b);
  size_t ok = 0, in_window = 0;
  for (size_t k = 0; k < n; k++) { /* a failed request counts as waiting to the end */
    double done = r[k].t_done >= 0 ? r[k].t_done : dtu_now();
    lat[ok++] = (done - r[k].t_arrival) * 1e6;
    in_window += r[k].t_done >= 0 && r[k].t_done <= t0 + BATCH_SECONDS;
  }
  res->v[0] = (double)in_window / BATCH_SECONDS;
  res->v[1] = dtu_quantile(lat, ok, 0.50);
  res->v[2] = dtu_quantile(lat, ok, 0.99);
  res->v[3] = st.mean_batch_size;
  free(r), free(lat);
  return 0;
}

/* The closed loop: each completion within the window records its latency and submits the
 * same slot again (from the worker that completed it: submit never blocks here, the queue is
 * unbounded and REJECT). */
typedef struct dtu_peak {
  pthread_mutex_t mu;
  ds_batcher *b;
  double end;
  size_t n, cap;
  double *lat;
  dtu_breq slot[PEAK_CLIENTS];
} dtu_peak;

static dtu_peak *dtu_peak_state; /* the one trial running (trials run one at a time) */

static void dtu_peak_done(void *user, ds_batch_request *req, ds_status st) {
  (void)req;
  dtu_breq *r = user;
  dtu_peak *p = dtu_peak_state;
  double now = dtu_now();
  int again = 0;
  pthread_mutex_lock(&p->mu);
  if (st == DS_OK && now <= p->end && p->n < p->cap) {
    p->lat[p->n++] = (now - r->t_arrival) * 1e6;
    again = 1;
  }
  pthread_mutex_unlock(&p->mu);
  if (!again) return;
  r->t_arrival = dtu_now();
  dtu_batch_submit_cb(p->b, r, dtu_peak_done); /* refused only by the final shutdown */
}

static int dtu_batch_peak(ds_context *ctx, dtu_result *res, char *why, size_t why_cap) {
  static dtu_peak p;
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = dtu_batch_handler;
  o.ndim = 1;
  o.shape[0] = 1;
  o.output_ndim = 1;
  o.output_shape[0] = 1;
  memset(&p, 0, sizeof p);
  pthread_mutex_init(&p.mu, NULL);
  p.cap = 1u << 20;
  p.lat = malloc(p.cap * sizeof *p.lat);
  dtu_peak_state = &p;
  if (!p.lat || ds_batcher_create(&p.b, ctx, &o) != DS_OK) {
    snprintf(why, why_cap, "batcher: %s", p.lat ? ds_context_last_error(ctx) : "memory");
    free(p.lat);
    pthread_mutex_destroy(&p.mu);
    return -1;
  }
  double t0 = dtu_now();
  p.end = t0 + BATCH_SECONDS;
  for (int k = 0; k < PEAK_CLIENTS; k++) {
    p.slot[k].t_arrival = dtu_now();
    dtu_batch_submit_cb(p.b, &p.slot[k], dtu_peak_done);
  }
  dtu_sleep_until(p.end);
  ds_batcher_shutdown(p.b, 1);
  ds_batcher_stats st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  ds_batcher_stats_get(p.b, &st);
  ds_batcher_destroy(p.b);
  res->v[0] = (double)p.n / BATCH_SECONDS;
  res->v[1] = dtu_quantile(p.lat, p.n, 0.99);
  res->v[2] = st.mean_batch_size;
  free(p.lat);
  pthread_mutex_destroy(&p.mu);
  return 0;
}

/* ------------------------------------------------------------------ sched */

typedef struct dtu_stask {
  double t_submit, t_start;
} dtu_stask;

static ds_status dtu_sched_task(void *arg) {
  dtu_stask *t = arg;
  t->t_start = dtu_now();
  volatile double x = 1;
  while (dtu_now() - t->t_start < SCHED_WORK_US * 1e-6) x = x * 1.0000001 + 1e-9;
  return DS_OK;
}

static int dtu_sched(ds_context *ctx, dtu_result *res, char *why, size_t why_cap) {
  dtu_stask *t = calloc(SCHED_TASKS, sizeof *t);
  double *wait = calloc(SCHED_TASKS, sizeof *wait);
  ds_task_group *g = NULL;
  ds_status st = !t || !wait ? DS_ERR_NO_MEMORY : ds_task_group_create(&g, ctx);
  if (st == DS_OK) st = ds_sched_start(ctx);
  double t0 = dtu_now();
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  for (int k = 0; st == DS_OK && k < SCHED_TASKS; k++) {
    t[k].t_submit = dtu_now();
    st = ds_task_submit(NULL, ctx, dtu_sched_task, &t[k], &o);
  }
  if (g && ds_task_group_wait(g, -1) != DS_OK && st == DS_OK) st = DS_ERR_INTERNAL;
  double elapsed = dtu_now() - t0;
  ds_task_group_destroy(g);
  if (st != DS_OK) {
    snprintf(why, why_cap, "sched: %s", ds_status_str(st));
    free(t), free(wait);
    return -1;
  }
  for (int k = 0; k < SCHED_TASKS; k++) wait[k] = (t[k].t_start - t[k].t_submit) * 1e6;
  res->v[0] = SCHED_TASKS / elapsed;
  res->v[1] = dtu_quantile(wait, SCHED_TASKS, 0.99);
  free(t), free(wait);
  return 0;
}

/* ------------------------------------------------------------------ cache */

static int dtu_cache(ds_context *ctx, dtu_result *res, char *why, size_t why_cap) {
  ds_cache *c = NULL;
  static char value[CACHE_VALUE], buf[CACHE_VALUE];
  if (ds_cache_create(&c, ctx, NULL) != DS_OK) {
    snprintf(why, why_cap, "cache: %s", ds_context_last_error(ctx));
    return -1;
  }
  memset(value, 'v', sizeof value);
  uint64_t rng = 0xcace;
  size_t hits = 0;
  double t0 = dtu_now();
  for (int k = 0; k < CACHE_GETS; k++) {
    /* key ~ KEYS^u - 1 with u uniform: rank r drawn with probability ~ 1/r (Zipf s = 1) */
    unsigned key = (unsigned)(pow(CACHE_KEYS, dtu_uniform(&rng)) - 1);
    size_t len = 0;
    if (ds_cache_get(c, &key, sizeof key, buf, sizeof buf, &len) == DS_OK) hits++;
    else ds_cache_put(c, &key, sizeof key, value, sizeof value);
  }
  double elapsed = dtu_now() - t0;
  ds_cache_destroy(c);
  res->v[0] = CACHE_GETS / elapsed;
  res->v[1] = (double)hits / CACHE_GETS;
  return 0;
}

/* ------------------------------------------------------------------ entry points */

static int dtu_workload_index(const char *name) {
  for (int w = 0; w < (int)(sizeof dtu_workloads / sizeof dtu_workloads[0]); w++)
    if (!strcmp(name, dtu_workloads[w])) return w;
  return -1;
}

int dtu_workload_check(const char *name, const char *metric) {
  int w = dtu_workload_index(name);
  if (w < 0) {
    fprintf(stderr, "deepseek-tune: --workload %s: one of batch, batch_peak, sched, cache\n",
            name);
    return -1;
  }
  const dtu_result *m = &dtu_metric_names[w];
  for (int k = 0; k < 4 && m->names[k]; k++)
    if (!strcmp(m->names[k], metric)) return 0;
  fprintf(stderr, "deepseek-tune: workload %s has no metric %s; it has:", name, metric);
  for (int k = 0; k < 4 && m->names[k]; k++) fprintf(stderr, " %s", m->names[k]);
  fputc('\n', stderr);
  return -1;
}

int dtu_workload_run(double *values, char *why, size_t why_cap, const char *name,
                     const dtu_space *s, const int *idx, const char *const *metrics,
                     int nmetrics) {
  int w = dtu_workload_index(name);
  dtu_result res = dtu_metric_names[w];
  ds_context *ctx = NULL;
  if (dtu_context(&ctx, s, idx) != DS_OK) {
    snprintf(why, why_cap, "context: %s", ds_context_last_error(NULL));
    return -1;
  }
  int rc = w == 0   ? dtu_batch(ctx, &res, why, why_cap)
           : w == 1 ? dtu_batch_peak(ctx, &res, why, why_cap)
           : w == 2 ? dtu_sched(ctx, &res, why, why_cap)
                    : dtu_cache(ctx, &res, why, why_cap);
  ds_context_destroy(ctx);
  for (int k = 0; rc == 0 && k < nmetrics; k++)
    for (int j = 0; j < 4; j++)
      if (res.names[j] && !strcmp(res.names[j], metrics[k])) values[k] = res.v[j];
  return rc;
}
