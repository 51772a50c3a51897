/* The telemetry sampler of a context: its thread, the ring of recent samples, the stats it
 * publishes each tick, and the public ds_telemetry_* calls. The readers live in
 * telemetry_sources.c.
 *
 * Locking: take_mu serialises taking a sample (the sources keep delta state, and seq must follow
 * time); mu guards the ring, the per-CPU copy and the sampler's sleep, so readers never wait
 * for a slow measurement; hook_mu guards the queue-depth hook and is held while calling it, so
 * once the hook is unset it is never called again. Order: take_mu, then hook_mu or mu. */
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telemetry_sources.h"

#define DS__RECHECK_NS 250000000u /* how often a sleeping sampler re-reads its period */
#define DS__NET_TIMEOUT_MAX_MS 1000

enum {
  DS__TSTAT_CPU,
  DS__TSTAT_MEM,
  DS__TSTAT_PRESSURE,
  DS__TSTAT_GPU,
  DS__TSTAT_GPU_MEM,
  DS__TSTAT_QUEUE,
  DS__TSTAT_NET,
  DS__TSTAT_SAMPLES,
  DS__TSTAT_COUNT
};

/* Per-CPU gauges published for deepseek-monitor's bars: the first 64 CPUs only, so a large
 * machine does not fill the 512-entry registry. ds_telemetry_cores() has them all. */
#define DS__TSTAT_MAX_CPUS 64
/* Per-GPU gauges telemetry.gpu<N>.util_pct, .mem_used_bytes, .mem_total_bytes (NVML), for the
 * first 16 devices. */
#define DS__TSTAT_MAX_GPUS 16
#define DS__TSTAT_GPU_FIELDS 3

static const char *const ds__tstat_names[DS__TSTAT_COUNT] = {
    "telemetry.cpu_util",   "telemetry.mem_used",     "telemetry.mem_pressure",
    "telemetry.gpu_util",   "telemetry.gpu_mem_used", "telemetry.queue_depth",
    "telemetry.net_latency_us", "telemetry.samples"};

struct ds__telemetry {
  pthread_mutex_t take_mu;
  pthread_mutex_t mu;
  pthread_mutex_t hook_mu;
  pthread_cond_t cv; /* wakes the sampler at destroy; waits on CLOCK_MONOTONIC */
  pthread_t thread;
  int thread_started;
  ds__atomic_int stop;

  /* under mu */
  ds_telemetry_sample *ring;
  size_t capacity;
  uint64_t nsamples; /* samples taken so far: the next seq */
  float *cores;      /* per-CPU values of the latest sample */

  /* under take_mu */
  float *scratch_cores;
  ds__cpu_src cpu;
  ds__gpu_src *gpu;
  ds__net_src net;
  int has_net;
  int stat_id[DS__TSTAT_COUNT];
  int cpu_stat_id[DS__TSTAT_MAX_CPUS]; /* "telemetry.cpu.N" for the first CPUs */
  int ncpu_stats;
  int gpu_stat_id[DS__TSTAT_MAX_GPUS][DS__TSTAT_GPU_FIELDS];
  int ngpu_stats;

  /* under hook_mu */
  double (*queue_fn)(void *user);
  void *queue_user;
};

/* ---------------------------------------------------------------- taking a sample */

static void ds__sample_blank(ds_telemetry_sample *s, uint32_t ncores) {
  memset(s, 0, sizeof *s);
  s->struct_size = sizeof *s;
  s->cpu_util = s->mem_used = s->mem_pressure = NAN;
  s->gpu_util = s->gpu_mem_used = s->queue_depth = s->net_latency_us = NAN;
  s->ncores = ncores;
}

static void ds__sample_memory(ds_telemetry_sample *s) {
  if (ds__mem_read("/proc/meminfo", &s->mem_used)) s->valid |= DS_TELEMETRY_MEM;
  if (ds__psi_read("/proc/pressure/memory", &s->mem_pressure))
    s->valid |= DS_TELEMETRY_PSI;
  else
    s->mem_pressure = s->mem_used; /* the documented fallback; NaN when meminfo failed too */
}

static void ds__sample_queue(struct ds__telemetry *t, ds_telemetry_sample *s) {
  pthread_mutex_lock(&t->hook_mu);
  double v = t->queue_fn ? t->queue_fn(t->queue_user) : NAN;
  pthread_mutex_unlock(&t->hook_mu);
  if (isfinite(v) && v >= 0.0) {
    s->queue_depth = (float)v;
    s->valid |= DS_TELEMETRY_QUEUE;
  }
}

static void ds__sample_net(ds_context *ctx, struct ds__telemetry *t, ds_telemetry_sample *s) {
  int64_t period_ms = ds__param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS);
  uint64_t every_ns = (uint64_t)ds__param(ctx, DS_PARAM_TELEMETRY_NET_PERIOD_MS) * 1000000u;
  int timeout_ms = period_ms < DS__NET_TIMEOUT_MAX_MS ? (int)period_ms : DS__NET_TIMEOUT_MAX_MS;
  if (ds__net_src_read(ctx, &t->net, every_ns, timeout_ms, &t->stop, &s->net_latency_us))
    s->valid |= DS_TELEMETRY_NET;
}

/* Gauges only get valid values: a stale gauge beats a fake one. */
static void ds__sample_publish(ds_context *ctx, struct ds__telemetry *t,
                               const ds_telemetry_sample *s) {
  const float v[DS__TSTAT_SAMPLES] = {s->cpu_util,     s->mem_used,    s->mem_pressure,
                                      s->gpu_util,     s->gpu_mem_used, s->queue_depth,
                                      s->net_latency_us};
  for (int i = 0; i < DS__TSTAT_SAMPLES; i++)
    if (!isnan(v[i])) ds__stat_set(ctx, t->stat_id[i], v[i]);
  ds__stat_add(ctx, t->stat_id[DS__TSTAT_SAMPLES], 1.0);
  for (int c = 0; (s->valid & DS_TELEMETRY_CPU) && c < t->ncpu_stats; c++)
    if (!isnan(t->scratch_cores[c])) ds__stat_set(ctx, t->cpu_stat_id[c], t->scratch_cores[c]);
  for (int g = 0; g < t->ngpu_stats; g++) {
    double d[DS__TSTAT_GPU_FIELDS];
    if (!ds__gpu_src_device(t->gpu, (unsigned)g, &d[0], &d[1], &d[2])) continue;
    for (int f = 0; f < DS__TSTAT_GPU_FIELDS; f++) ds__stat_set(ctx, t->gpu_stat_id[g][f], d[f]);
  }
  ds__stats_publish(ctx);
}

static void ds__sample_push(struct ds__telemetry *t, ds_telemetry_sample *s) {
  pthread_mutex_lock(&t->mu);
  s->seq = t->nsamples;
  t->ring[t->nsamples % t->capacity] = *s;
  t->nsamples++;
  memcpy(t->cores, t->scratch_cores, (size_t)t->cpu.ncpu * sizeof *t->cores);
  pthread_mutex_unlock(&t->mu);
}

/* Takes, stores and publishes one sample. The first one (at creation) skips the network probe,
 * which could otherwise hold ds_context_create() for a name lookup and a connect timeout. */
static void ds__sample_take(ds_context *ctx, struct ds__telemetry *t, int with_net) {
  ds_telemetry_sample s;
  ds__sample_blank(&s, t->cpu.ncpu);
  pthread_mutex_lock(&t->take_mu);
  s.time_ns = ds__now_ns();
  if (ds__cpu_src_read(&t->cpu, &s.cpu_util, t->scratch_cores)) s.valid |= DS_TELEMETRY_CPU;
  ds__sample_memory(&s);
  if (ds__gpu_src_read(t->gpu, &s.gpu_util, &s.gpu_mem_used)) s.valid |= DS_TELEMETRY_GPU;
  ds__sample_queue(t, &s);
  if (t->has_net && with_net) ds__sample_net(ctx, t, &s);
  ds__sample_push(t, &s);
  ds__sample_publish(ctx, t, &s);
  pthread_mutex_unlock(&t->take_mu);
}

/* ---------------------------------------------------------------- the sampler thread */

static struct timespec ds__timespec(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  return ts;
}

/* Sleeps (mu held) until the next tick is due, fixed-rate from *due. The period is re-read at
 * every wake-up, at least every DS__RECHECK_NS, so a shorter period set at run time does not
 * wait out the old one. Returns 1 when the sampler must stop. */
static int ds__sampler_wait(ds_context *ctx, struct ds__telemetry *t, uint64_t *last) {
  for (;;) {
    if (ds__load(&t->stop)) return 1;
    uint64_t period = (uint64_t)ds__param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS) * 1000000u;
    uint64_t now = ds__now_ns(), due = *last + period;
    if (now >= due) {
      *last = now - due < period ? due : now; /* after a stall, restart rather than burst */
      return 0;
    }
    uint64_t wake = due - now < DS__RECHECK_NS ? due : now + DS__RECHECK_NS;
    struct timespec ts = ds__timespec(wake);
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
  }
}

static void *ds__sampler_main(void *arg) {
  ds_context *ctx = arg;
  struct ds__telemetry *t = ctx->telemetry;
  pthread_mutex_lock(&t->mu);
  uint64_t last = t->ring[0].time_ns; /* the sample taken at creation */
  while (!ds__sampler_wait(ctx, t, &last)) {
    pthread_mutex_unlock(&t->mu);
    ds__sample_take(ctx, t, 1);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* The host's signal handlers should never run on a library thread: start it with all blocked. */
static ds_status ds__sampler_start(ds_context *ctx, struct ds__telemetry *t) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&t->thread, NULL, ds__sampler_main, ctx);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "telemetry", "cannot start the sampler thread");
  t->thread_started = 1;
  return DS_OK;
}

/* ---------------------------------------------------------------- creation and teardown */

static int ds__telemetry_sync_init(struct ds__telemetry *t) {
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0) return 0;
  int ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
           pthread_cond_init(&t->cv, &attr) == 0;
  pthread_condattr_destroy(&attr);
  if (!ok) return 0;
  pthread_mutex_init(&t->take_mu, NULL);
  pthread_mutex_init(&t->mu, NULL);
  pthread_mutex_init(&t->hook_mu, NULL);
  return 1;
}

static uint32_t ds__cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_CONF);
  return n < 1 ? 1u : n > 65536 ? 65536u : (uint32_t)n;
}

/* Everything the per-tick path needs, allocated once; sources that are absent stay absent. */
static ds_status ds__telemetry_setup(ds_context *ctx, struct ds__telemetry *t) {
  uint32_t ncpu = ds__cpu_count();
  t->capacity = (size_t)ds__param(ctx, DS_PARAM_TELEMETRY_CAPACITY);
  t->ring = ds__calloc(ctx, t->capacity, sizeof *t->ring);
  t->cores = ds__calloc(ctx, ncpu, sizeof *t->cores);
  t->scratch_cores = ds__calloc(ctx, ncpu, sizeof *t->scratch_cores);
  if (!t->ring || !t->cores || !t->scratch_cores)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "telemetry", "cannot allocate a ring of %zu samples",
                     t->capacity);
  ds_status st = ds__cpu_src_open(ctx, &t->cpu, "/proc/stat", ncpu);
  if (st != DS_OK) return st;
  if (ctx->telemetry_peer) {
    if ((st = ds__net_src_open(ctx, &t->net, ctx->telemetry_peer)) != DS_OK) return st;
    t->has_net = 1;
  }
  t->gpu = ds__gpu_src_open(ctx);
  for (int i = 0; i < DS__TSTAT_COUNT; i++)
    t->stat_id[i] = ds__stat_register(ctx, ds__tstat_names[i],
                                      i == DS__TSTAT_SAMPLES ? DS_STAT_COUNTER : DS_STAT_GAUGE);
  t->ncpu_stats = ncpu < DS__TSTAT_MAX_CPUS ? (int)ncpu : DS__TSTAT_MAX_CPUS;
  for (int c = 0; c < t->ncpu_stats; c++) {
    char name[32];
    snprintf(name, sizeof name, "telemetry.cpu.%d", c);
    t->cpu_stat_id[c] = ds__stat_register(ctx, name, DS_STAT_GAUGE);
  }
  static const char *const gpu_fields[DS__TSTAT_GPU_FIELDS] = {"util_pct", "mem_used_bytes",
                                                               "mem_total_bytes"};
  unsigned ngpu = ds__gpu_src_count(t->gpu);
  t->ngpu_stats = ngpu < DS__TSTAT_MAX_GPUS ? (int)ngpu : DS__TSTAT_MAX_GPUS;
  for (int g = 0; g < t->ngpu_stats; g++)
    for (int f = 0; f < DS__TSTAT_GPU_FIELDS; f++) {
      char name[48];
      snprintf(name, sizeof name, "telemetry.gpu%d.%s", g, gpu_fields[f]);
      t->gpu_stat_id[g][f] = ds__stat_register(ctx, name, DS_STAT_GAUGE);
    }
  return DS_OK;
}

/* With telemetry disabled no sampler exists and ctx->telemetry stays NULL. */
ds_status ds__telemetry_create(ds_context *ctx) {
  if (!ds__param(ctx, DS_PARAM_TELEMETRY_ENABLE)) {
    ds__log(ctx, DS_LOG_DEBUG, "telemetry", "disabled (telemetry_enable=0)");
    return DS_OK;
  }
  struct ds__telemetry *t = ds__calloc(ctx, 1, sizeof *t);
  if (!t) return ds__error(ctx, DS_ERR_NO_MEMORY, "telemetry", "cannot allocate the sampler");
  if (!ds__telemetry_sync_init(t)) {
    ds__free(ctx, t);
    return ds__error(ctx, DS_ERR_INTERNAL, "telemetry", "cannot set up a CLOCK_MONOTONIC wait");
  }
  ctx->telemetry = t; /* from here on a failure is cleaned up by ds__telemetry_destroy() */
  ds_status st = ds__telemetry_setup(ctx, t);
  if (st != DS_OK) return st;
  ds__sample_take(ctx, t, 0); /* ds_telemetry_latest() works as soon as create returns */
  return ds__sampler_start(ctx, t);
}

/* Also runs after a failed ds__telemetry_create(), on whatever part of it was built. */
void ds__telemetry_destroy(ds_context *ctx) {
  struct ds__telemetry *t = ctx->telemetry;
  if (!t) return;
  if (t->thread_started) {
    pthread_mutex_lock(&t->mu);
    ds__store(&t->stop, 1); /* also cuts short a network probe in progress */
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
  }
  ds__gpu_src_close(ctx, t->gpu);
  if (t->has_net) ds__net_src_close(ctx, &t->net);
  ds__cpu_src_close(ctx, &t->cpu);
  ds__free(ctx, t->ring);
  ds__free(ctx, t->cores);
  ds__free(ctx, t->scratch_cores);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->take_mu);
  pthread_mutex_destroy(&t->mu);
  pthread_mutex_destroy(&t->hook_mu);
  ds__free(ctx, t);
  ctx->telemetry = NULL;
}

/* Once this returns, the old hook is not running and is never called again, so the scheduler
 * may free its state. The hook must not call back into telemetry: it runs under hook_mu. */
void ds__telemetry_set_queue_depth_fn(ds_context *ctx, double (*fn)(void *user), void *user) {
  struct ds__telemetry *t = ctx ? ctx->telemetry : NULL;
  if (!t) return;
  pthread_mutex_lock(&t->hook_mu);
  t->queue_fn = fn;
  t->queue_user = fn ? user : NULL;
  pthread_mutex_unlock(&t->hook_mu);
}

/* ---------------------------------------------------------------- public API */

/* The smallest struct_size accepted: the fields every version has, up to time_ns. */
#define DS__SAMPLE_MIN_SIZE offsetof(ds_telemetry_sample, cpu_util)

static ds_status ds__telemetry_of(struct ds__telemetry **out, ds_context *ctx, const char *fn) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "telemetry", "%s: ctx is NULL", fn);
  *out = ctx->telemetry;
  if (!*out)
    return ds__error(ctx, DS_ERR_UNAVAILABLE, "telemetry",
                     "%s: telemetry is disabled (telemetry_enable=0)", fn);
  return DS_OK;
}

/* A size some version of the structure had; a multiple of its alignment, as it is the stride. */
static ds_status ds__check_size(ds_context *ctx, const char *fn, uint32_t size) {
  if (size >= DS__SAMPLE_MIN_SIZE && size <= sizeof(ds_telemetry_sample) &&
      size % _Alignof(ds_telemetry_sample) == 0)
    return DS_OK;
  return ds__error(ctx, DS_ERR_ABI, "telemetry",
                   "%s: struct_size %u is not a size of ds_telemetry_sample (this library knows "
                   "%zu to %zu, in steps of %zu)",
                   fn, size, DS__SAMPLE_MIN_SIZE, sizeof(ds_telemetry_sample),
                   _Alignof(ds_telemetry_sample));
}

/* Copies the first @p size bytes; the caller's struct_size stays what the caller set. */
static void ds__sample_copy(void *dst, const ds_telemetry_sample *src, uint32_t size) {
  memcpy(dst, src, size);
  ((ds_telemetry_sample *)dst)->struct_size = size;
}

static ds_status ds__no_sample(ds_context *ctx, const char *fn) {
  return ds__error(ctx, DS_ERR_UNAVAILABLE, "telemetry", "%s: no sample taken yet", fn);
}

ds_status ds_telemetry_latest(ds_telemetry_sample *out, ds_context *ctx) {
  static const char fn[] = "ds_telemetry_latest";
  struct ds__telemetry *t;
  ds_status st = ds__telemetry_of(&t, ctx, fn);
  if (st != DS_OK) return st;
  if (!out) return ds__error(ctx, DS_ERR_INVALID_ARG, "telemetry", "%s: out is NULL", fn);
  if ((st = ds__check_size(ctx, fn, out->struct_size)) != DS_OK) return st;
  pthread_mutex_lock(&t->mu);
  uint64_t n = t->nsamples;
  if (n) ds__sample_copy(out, &t->ring[(n - 1) % t->capacity], out->struct_size);
  pthread_mutex_unlock(&t->mu);
  return n ? DS_OK : ds__no_sample(ctx, fn);
}

ds_status ds_telemetry_window(ds_telemetry_sample *out, size_t *count, ds_context *ctx,
                              size_t max) {
  static const char fn[] = "ds_telemetry_window";
  struct ds__telemetry *t;
  ds_status st = ds__telemetry_of(&t, ctx, fn);
  if (st != DS_OK) return st;
  if (!out || !count || max == 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "telemetry", "%s: %s", fn,
                     !out ? "out is NULL" : !count ? "count is NULL" : "max is 0");
  *count = 0;
  uint32_t size = out->struct_size;
  if ((st = ds__check_size(ctx, fn, size)) != DS_OK) return st;
  pthread_mutex_lock(&t->mu);
  uint64_t n = t->nsamples, take = n < t->capacity ? n : t->capacity;
  if (take > max) take = max;
  for (uint64_t i = 0; i < take; i++)
    ds__sample_copy((char *)out + i * size, &t->ring[(n - take + i) % t->capacity], size);
  pthread_mutex_unlock(&t->mu);
  *count = (size_t)take;
  return take ? DS_OK : ds__no_sample(ctx, fn);
}

ds_status ds_telemetry_cores(float *out, size_t *count, ds_context *ctx, size_t max) {
  static const char fn[] = "ds_telemetry_cores";
  struct ds__telemetry *t;
  ds_status st = ds__telemetry_of(&t, ctx, fn);
  if (st != DS_OK) return st;
  if (!out || !count || max == 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "telemetry", "%s: %s", fn,
                     !out ? "out is NULL" : !count ? "count is NULL" : "max is 0");
  pthread_mutex_lock(&t->mu);
  size_t n = t->nsamples ? t->cpu.ncpu : 0;
  if (n > max) n = max;
  memcpy(out, t->cores, n * sizeof *out);
  pthread_mutex_unlock(&t->mu);
  *count = n;
  return n ? DS_OK : ds__no_sample(ctx, fn);
}

ds_status ds_telemetry_sample_now(ds_context *ctx) {
  struct ds__telemetry *t;
  ds_status st = ds__telemetry_of(&t, ctx, "ds_telemetry_sample_now");
  if (st != DS_OK) return st;
  ds__sample_take(ctx, t, 1);
  return DS_OK;
}
