/* The table of tunables: name, bounds, default, flags. One row per ds_param, sorted by number,
 * so a lookup is a binary search. Values live in ds_context.params as atomics. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static const char *const ds__log_level_names[] = {"debug", "info", "warn", "error", "off", NULL};

static const char *const ds__cache_policy_names[] = {"lruk+",    "lru",   "lru2", "arc",
                                                     "s3fifo",   "wtinylfu", "sieve", NULL};
static const char *const ds__cache_codec_names[] = {"lz4", "zstd", "none", NULL};
static const char *const ds__cache_durability_names[] = {"every_put", "batched", NULL};
static const char *const ds__cache_verify_names[] = {"header", "first", "always", NULL};
static const char *const ds__cache_checksum_isa_names[] = {"auto", "baseline", NULL};
static const char *const ds__cache_huge_pages_names[] = {"off", "on", "always", NULL};
static const char *const ds__predict_loss_names[] = {"squared", "absolute", NULL};

static const char *const ds__precision_isa_names[] = {"auto", "scalar", "avx2", "avx512", NULL};

static const ds__param_def ds__params[] = {
    {DS_PARAM_LOG_LEVEL, "log_level", DS_LOG_DEBUG, DS_LOG_OFF, DS_LOG_WARN, 0, ds__log_level_names},
    {DS_PARAM_TELEMETRY_PERIOD_MS, "telemetry_period_ms", 1, 60000, 100, 0, NULL},
    {DS_PARAM_TELEMETRY_CAPACITY, "telemetry_capacity", 16, 1048576, 4096, DS__PARAM_CREATE_ONLY,
     NULL},
    {DS_PARAM_TELEMETRY_ENABLE, "telemetry_enable", 0, 1, 1, DS__PARAM_CREATE_ONLY, NULL},
    {DS_PARAM_TELEMETRY_NET_PERIOD_MS, "telemetry_net_period_ms", 10, 3600000, 1000, 0, NULL},
    {DS_PARAM_STATS_FILE, "stats_file", 0, 1, 1, DS__PARAM_CREATE_ONLY, NULL},
    {DS_PARAM_TRACE_MAX_EVENTS, "trace_max_events", 1024, 67108864, 1048576, 0, NULL},
    {DS_PARAM_SCHED_WORKERS, "sched_workers", 0, 1024, 0, 0, NULL},
    {DS_PARAM_SCHED_BIND, "sched_bind", 0, 1, 1, 0, NULL},
    {DS_PARAM_SCHED_SPIN_US, "sched_spin_us", 0, 100000, 50, 0, NULL},
    {DS_PARAM_SCHED_LOW_MAX_WORKERS, "sched_low_max_workers", 0, 1024, 0, 0, NULL},
    {DS_PARAM_SCHED_LOW_DUTY_PCT, "sched_low_duty_pct", 1, 100, 100, 0, NULL},
    {DS_PARAM_SCHED_THROTTLE_LOAD_PCT, "sched_throttle_load_pct", 1, 100000, 90, 0, NULL},
    {DS_PARAM_SCHED_TICK_MS, "sched_tick_ms", 1, 10000, 50, 0, NULL},
    {DS_PARAM_SCHED_EXECUTOR, "sched_executor", 0, 1, 1, 0, NULL},
    {DS_PARAM_SCHED_EWMA_ALPHA_PCT, "sched_ewma_alpha_pct", 1, 100, 30, 0, NULL},
    {DS_PARAM_SCHED_URGENT_RESERVE, "sched_urgent_reserve", 0, 1024, 0, 0, NULL},
    {DS_PARAM_SCHED_POOLS, "sched_pools", 1, 2, 1, 0, NULL},
    {DS_PARAM_SCHED_STALL_MS, "sched_stall_ms", 10, 3600000, 2000, 0, NULL},
    {DS_PARAM_CACHE_POLICY, "cache_policy", 0, 6, 0, 0, ds__cache_policy_names},
    {DS_PARAM_CACHE_L1_BYTES, "cache_l1_bytes", 0, (int64_t)1 << 50, (int64_t)64 << 20, 0, NULL},
    {DS_PARAM_CACHE_L2_BYTES, "cache_l2_bytes", 0, (int64_t)1 << 50, 0, 0, NULL},
    {DS_PARAM_CACHE_SHARDS, "cache_shards", 0, 256, 0, 0, NULL},
    {DS_PARAM_CACHE_CODEC, "cache_codec", 0, 2, 0, 0, ds__cache_codec_names},
    {DS_PARAM_CACHE_ZSTD_LEVEL, "cache_zstd_level", 1, 19, 3, 0, NULL},
    {DS_PARAM_CACHE_DURABILITY, "cache_durability", 0, 1, 1, 0, ds__cache_durability_names},
    {DS_PARAM_CACHE_SYNC_INTERVAL_MS, "cache_sync_interval_ms", 1, 60000, 1000, 0, NULL},
    {DS_PARAM_CACHE_PREFETCH_DEPTH, "cache_prefetch_depth", 0, 16, 0, 0, NULL},
    {DS_PARAM_CACHE_VERIFY_READS, "cache_verify_reads", 0, 2, 1, 0, ds__cache_verify_names},
    {DS_PARAM_CACHE_GPU_BYTES, "cache_gpu_bytes", 0, (int64_t)1 << 50, 0, 0, NULL},
    {DS_PARAM_CACHE_GPU_DEVICE, "cache_gpu_device", -1, 63, -1, 0, NULL},
    {DS_PARAM_CACHE_CHECKSUM_ISA, "cache_checksum_isa", 0, 1, 0, 0, ds__cache_checksum_isa_names},
    {DS_PARAM_CACHE_L1_HUGE_PAGES, "cache_l1_huge_pages", 0, 2, 1, 0, ds__cache_huge_pages_names},
    {DS_PARAM_PRECISION_ISA, "precision_isa", 0, 3, 0, 0, ds__precision_isa_names},
    {DS_PARAM_PRECISION_SKINNY_MAX_M, "precision_skinny_max_m", 0, 64, 32, 0, NULL},
    {DS_PARAM_PRECISION_TASK_BLAS_THREADS, "precision_task_blas_threads", 0, 1024, 1, 0, NULL},
    {DS_PARAM_PRECISION_CUDNN, "precision_cudnn", 0, 1, 1, 0, NULL},
    {DS_PARAM_PREDICT_ONLINE_INTERVAL, "predict_online_interval", 0, 1000000, 0, 0, NULL},
    {DS_PARAM_PREDICT_ONLINE_HISTORY, "predict_online_history", 16, 1048576, 2048, 0, NULL},
    {DS_PARAM_PREDICT_ONLINE_EPOCHS, "predict_online_epochs", 1, 100, 2, 0, NULL},
    {DS_PARAM_PREDICT_ONLINE_LOSS, "predict_online_loss", 0, 1, 0, 0, ds__predict_loss_names},
    {DS_PARAM_FABRIC_OPENCL, "fabric_opencl", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_ZERO_COPY, "fabric_zero_copy", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_CUDA, "fabric_cuda", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_PEER_COPY, "fabric_peer_copy", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_CALIBRATE_RUNS, "fabric_calibrate_runs", 0, 1000, 2, 0, NULL},
    {DS_PARAM_FABRIC_PLAN_SHARED_CORES, "fabric_plan_shared_cores", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_PLAN_GUARD, "fabric_plan_guard", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_GRAPH_PREFETCH, "fabric_graph_prefetch", 0, 1, 1, 0, NULL},
    {DS_PARAM_FABRIC_CALIBRATE_MAX_RUNS, "fabric_calibrate_max_runs", 0, 1000, 8, 0, NULL},
    {DS_PARAM_FABRIC_BARRIER_SPIN_NS, "fabric_barrier_spin_ns", 0, 10000000, 10000, 0, NULL},
    {DS_PARAM_MPI_TIMEOUT_MS, "mpi_timeout_ms", 1, 86400000, 30000, 0, NULL},
    {DS_PARAM_MPI_HEARTBEAT_MS, "mpi_heartbeat_ms", 1, 60000, 100, 0, NULL},
    {DS_PARAM_MPI_DEAD_MS, "mpi_dead_ms", 10, 3600000, 5000, 0, NULL},
    {DS_PARAM_MPI_SPIN_US, "mpi_spin_us", 0, 1000000, 2000, 0, NULL},
    {DS_PARAM_MPI_POLL_US, "mpi_poll_us", 10, 100000, 200, 0, NULL},
    {DS_PARAM_MPI_MIGRATE_MARGIN_PCT, "mpi_migrate_margin_pct", 0, 10000, 25, 0, NULL},
    {DS_PARAM_BATCH_MAX_SIZE, "batch_max_size", 1, 65536, 32, 0, NULL},
    {DS_PARAM_BATCH_MAX_DELAY_US, "batch_max_delay_us", 0, 3600000000LL, 0, 0, NULL},
    {DS_PARAM_BATCH_MAX_INFLIGHT, "batch_max_inflight", 0, 65536, 0, 0, NULL},
};

#define DS__NPARAMS ((int)(sizeof ds__params / sizeof ds__params[0]))
_Static_assert(sizeof ds__params / sizeof ds__params[0] <= DS__MAX_PARAMS,
               "raise DS__MAX_PARAMS");

int ds__param_count(void) { return DS__NPARAMS; }

const ds__param_def *ds__param_at(int index) {
  return index >= 0 && index < DS__NPARAMS ? &ds__params[index] : NULL;
}

const ds__param_def *ds__param_find(ds_param p, int *index) {
  int lo = 0, hi = DS__NPARAMS - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if ((int)ds__params[mid].id == (int)p) {
      if (index) *index = mid;
      return &ds__params[mid];
    }
    if ((int)ds__params[mid].id < (int)p)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return NULL;
}

int64_t ds__param(const ds_context *ctx, ds_param p) {
  int i = 0;
  if (!ds__param_find(p, &i)) return 0;
  return ds__load_relaxed(&((ds_context *)ctx)->params[i]);
}

ds_status ds__param_set(ds_context *ctx, ds_param p, int64_t v, int creating) {
  int i = 0;
  const ds__param_def *d = ds__param_find(p, &i);
  if (!d) return ds__error(ctx, DS_ERR_INVALID_ARG, "core", "unknown parameter %d", (int)p);
  if (v < d->min || v > d->max)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "core",
                     "%s = %lld is out of range [%lld, %lld]", d->name, (long long)v,
                     (long long)d->min, (long long)d->max);
  if ((d->flags & DS__PARAM_CREATE_ONLY) && !creating)
    return ds__error(ctx, DS_ERR_STATE, "core",
                     "%s can only be set at creation (options, config file or DS_ environment)",
                     d->name);
  ds__store_relaxed(&ctx->params[i], v);
  return DS_OK;
}

int ds__param_parse_value(const ds__param_def *d, const char *text, int64_t *out) {
  if (d->value_names) {
    for (int k = 0; d->value_names[k]; k++)
      if (strcasecmp(text, d->value_names[k]) == 0) {
        *out = d->min + k;
        return 1;
      }
  }
  if (d->min == 0 && d->max == 1) {
    static const char *const yes[] = {"true", "on", "yes"}, *const no[] = {"false", "off", "no"};
    for (int k = 0; k < 3; k++) {
      if (strcasecmp(text, yes[k]) == 0) return (*out = 1), 1;
      if (strcasecmp(text, no[k]) == 0) return (*out = 0), 1;
    }
  }
  const char *s = text;
  if (*s == '+' || *s == '-') s++;
  if (!isdigit((unsigned char)*s)) return 0;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 0);
  if (errno != 0 || end == text || *end != '\0') return 0;
  *out = v;
  return 1;
}

ds_status ds_context_set_param(ds_context *ctx, ds_param param, int64_t value) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "ds_context_set_param: ctx is NULL");
  return ds__param_set(ctx, param, value, 0);
}

ds_status ds_context_get_param(ds_context *ctx, ds_param param, int64_t *out) {
  if (!ctx || !out)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "core", "ds_context_get_param: %s is NULL",
                     ctx ? "out" : "ctx");
  int i = 0;
  if (!ds__param_find(param, &i))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "core", "unknown parameter %d", (int)param);
  *out = ds__load_relaxed(&ctx->params[i]);
  return DS_OK;
}

ds_status ds_param_bounds(ds_param param, int64_t *min, int64_t *max) {
  const ds__param_def *d = ds__param_find(param, NULL);
  if (!d) return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "unknown parameter %d", (int)param);
  if (min) *min = d->min;
  if (max) *max = d->max;
  return DS_OK;
}

ds_status ds_param_default(ds_param param, int64_t *out) {
  const ds__param_def *d = ds__param_find(param, NULL);
  if (!d || !out)
    return ds__error(NULL, DS_ERR_INVALID_ARG, "core", d ? "out is NULL" : "unknown parameter");
  *out = d->def;
  return DS_OK;
}

const char *ds_param_name(ds_param param) {
  const ds__param_def *d = ds__param_find(param, NULL);
  return d ? d->name : NULL;
}

ds_status ds_param_from_name(ds_param *out, const char *name) {
  if (!out || !name) return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "NULL argument");
  const char *key = name;
  if (strncasecmp(key, "DS_", 3) == 0) key += 3;
  for (int i = 0; i < DS__NPARAMS; i++)
    if (strcasecmp(key, ds__params[i].name) == 0) {
      *out = ds__params[i].id;
      return DS_OK;
    }
  if (strcasecmp(name, "DS_LOG") == 0) {
    *out = DS_PARAM_LOG_LEVEL;
    return DS_OK;
  }
  return ds__error(NULL, DS_ERR_NOT_FOUND, "core", "no parameter named '%s'", name);
}
