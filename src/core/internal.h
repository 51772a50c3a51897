/* Internal interface of the core: the context structure and the helpers every module uses
 * (allocation through the caller's allocator, error reporting, logging, tunables, stats,
 * trace, executor). Modules include this header and their own; never another module's. */
#ifndef DS_CORE_INTERNAL_H
#define DS_CORE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "deepseek.h"
#include "atomic.h"

#if defined(__GNUC__) || defined(__clang__)
#define DS__PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define DS__LIKELY(x) __builtin_expect(!!(x), 1)
#define DS__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define DS__PRINTF(fmt_idx, arg_idx)
#define DS__LIKELY(x) (x)
#define DS__UNLIKELY(x) (x)
#endif

#define DS__ERRMSG_MAX 512
#define DS__MAX_PARAMS 128 /* slots in a context; the table in params.c must fit */

struct ds__telemetry;
struct ds__trace;
struct ds__stats;
struct ds__executor;
struct ds__tls;

/* Per-thread, per-context state: the last error message and the thread's trace buffer. */
struct ds__tls {
  char errmsg[DS__ERRMSG_MAX];
  struct ds__trace_buf *trace_buf; /* owned by trace.c */
  struct ds__tls *next;            /* in ds_context.tls_list */
};

struct ds_context {
  ds_allocator alloc;
  uint32_t flags;
  uint64_t serial;    /* per-process creation number */
  char *name;         /* label for deepseek-monitor */
  char *telemetry_peer;

  ds__atomic_i64 params[DS__MAX_PARAMS]; /* indexed by ds__param_index() */

  pthread_mutex_t log_mu; /* guards log_fn/log_user changes */
  ds_log_fn log_fn;
  void *log_user;

  pthread_key_t tls_key;
  pthread_mutex_t tls_mu;
  struct ds__tls *tls_list;

  ds__atomic_i64 mem_live_bytes;
  ds__atomic_i64 mem_live_blocks;
  ds__atomic_i64 mem_peak_bytes; /* high-water mark of mem_live_bytes */

  struct ds__stats *stats;
  struct ds__trace *trace;
  struct ds__telemetry *telemetry;
  struct ds__executor *executor;
  ds__atomic_ptr sched; /* struct ds__sched *, created on first use by src/sched */
  int topology_ref; /* 1 once this context holds a reference on the process topology */
  pthread_mutex_t lazy_mu; /* guards lazy creation (topology ref, executor) */
  struct ds__precision *precision; /* precision module state, created lazily (precision/) */
  struct ds__fabric *fabric; /* compute fabric state, created lazily under lazy_mu (fabric/) */
};

/* ---- allocation (alloc.c): through the context's allocator, with live-byte accounting ---- */
void *ds__alloc(ds_context *ctx, size_t size);
void *ds__calloc(ds_context *ctx, size_t n, size_t size);
void ds__free(ds_context *ctx, void *p);
char *ds__strdup(ds_context *ctx, const char *s);
/* 1 when the context was created with no allocator hook (malloc/free); context.c. */
int ds__alloc_is_default(const ds_context *ctx);

/* ---- errors and logging (error.c, log.c) ---- */
/* Records "module: message" as the calling thread's last error on ctx (ctx may be NULL), logs
 * it at debug level, and returns st, so callers write: return ds__error(ctx, ...). */
ds_status ds__error(const ds_context *ctx, ds_status st, const char *module, const char *fmt, ...)
    DS__PRINTF(4, 5);
ds_status ds__verror(const ds_context *ctx, ds_status st, const char *module, const char *fmt,
                     va_list ap) DS__PRINTF(4, 0);
/* The calling thread's per-context state, created on first use; NULL if out of memory. */
struct ds__tls *ds__tls_get(const ds_context *ctx);
void ds__tls_destroy_all(ds_context *ctx);
/* Copies the thread's last error on ctx into the context-free slot. */
void ds__error_to_noctx(const ds_context *ctx);
void ds__log(const ds_context *ctx, int level, const char *module, const char *fmt, ...)
    DS__PRINTF(4, 5);
int ds__log_enabled(const ds_context *ctx, int level);

/* ---- tunables (params.c, config.c) ---- */
typedef struct ds__param_def {
  ds_param id;
  const char *name;
  int64_t min, max, def;
  unsigned flags;                 /* DS__PARAM_* */
  const char *const *value_names; /* names for values min.. (NULL-terminated), or NULL */
} ds__param_def;
#define DS__PARAM_CREATE_ONLY 0x1u

/* Definition of p, or NULL. Index in the table (and in ds_context.params) via *index. */
const ds__param_def *ds__param_find(ds_param p, int *index);
const ds__param_def *ds__param_at(int index);
int ds__param_count(void);
/* Fast read of a tunable; p must be a valid ds_param. */
int64_t ds__param(const ds_context *ctx, ds_param p);
/* Validates and stores; 'creating' allows creation-only parameters. */
ds_status ds__param_set(ds_context *ctx, ds_param p, int64_t v, int creating);
/* Parses "123", "0x7b", "true"/"on"/"yes" (1), "false"/"off"/"no" (0), or a value name. */
int ds__param_parse_value(const ds__param_def *d, const char *text, int64_t *out);
ds_status ds__config_load_file(ds_context *ctx, const char *path, int creating);
/* Parses config text (path is only used in messages); applies nothing unless all of it is valid. */
ds_status ds__config_parse(ds_context *ctx, const char *path, const char *data, size_t len,
                           int creating);
ds_status ds__config_load_env(ds_context *ctx);

/* ---- subsystems, created in this order by ds_context_create and destroyed in reverse ---- */
ds_status ds__stats_create(ds_context *ctx);
void ds__stats_destroy(ds_context *ctx);
ds_status ds__trace_create(ds_context *ctx);
void ds__trace_destroy(ds_context *ctx);
ds_status ds__telemetry_create(ds_context *ctx);
void ds__telemetry_destroy(ds_context *ctx);
void ds__executor_destroy(ds_context *ctx);
/* Stops the scheduler (src/sched), if it was started: pending tasks are cancelled, running
 * ones waited for, queued executor work is run. Called after telemetry, before the executor. */
void ds__sched_destroy(ds_context *ctx);
void ds__topology_context_release(ds_context *ctx);
void ds__precision_destroy(ds_context *ctx); /* src/precision/state.c */
/* Releases the compute fabric's devices, backends and their extension state (src/fabric);
 * called before the scheduler is stopped. */
void ds__fabric_destroy(ds_context *ctx);

/* ---- stats publishing (stats.c) ---- */
/* Registers (or finds) a stat by name; returns its id (>= 0), or -1 when the registry is full
 * or out of memory, in which case updates with -1 are ignored. */
int ds__stat_register(ds_context *ctx, const char *name, ds_stat_kind kind);
void ds__stat_add(ds_context *ctx, int id, double delta);
void ds__stat_set(ds_context *ctx, int id, double value);
/* Mirrors the registry into the stats file (no-op without one). Called by the sampler tick. */
void ds__stats_publish(ds_context *ctx);

/* ---- telemetry hooks (telemetry.c) ---- */
/* The scheduler reports its queue depth through this; NULL fn makes it unavailable again. */
void ds__telemetry_set_queue_depth_fn(ds_context *ctx, double (*fn)(void *user), void *user);

/* ---- executor (executor.c): background work with a priority, until sched provides one ---- */
typedef void (*ds__work_fn)(void *arg);
enum { DS__PRIO_URGENT = 0, DS__PRIO_NORMAL = 1, DS__PRIO_LOW = 2 };
ds_status ds__executor_submit(ds_context *ctx, ds__work_fn fn, void *arg, int prio);
/* The scheduler's side of the executor (src/sched): used by ds__executor_submit while
 * DS_PARAM_SCHED_EXECUTOR is 1. */
ds_status ds__sched_executor_submit(ds_context *ctx, ds__work_fn fn, void *arg, int prio);

/* ---- time ---- */
uint64_t ds__now_ns(void); /* CLOCK_MONOTONIC */

#endif /* DS_CORE_INTERNAL_H */
