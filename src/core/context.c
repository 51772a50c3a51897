/* ds_context: creation (options, version and ABI checks, tunables from options, config file and
 * environment), subsystem start-up in dependency order, and teardown in reverse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static ds__atomic_u64 ds__context_serial;

static void *ds__default_alloc(void *user, size_t size) {
  (void)user;
  return malloc(size);
}

static void ds__default_free(void *user, void *p) {
  (void)user;
  free(p);
}

int ds__alloc_is_default(const ds_context *ctx) { return ctx->alloc.alloc == ds__default_alloc; }

uint64_t ds__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sizes of every released version of ds_context_options; only the current one so far. */
static int ds__known_options_size(uint32_t size) { return size == sizeof(ds_context_options); }

static ds_status ds__check_options(const ds_context_options *o) {
  if (!ds__known_options_size(o->struct_size))
    return ds__error(NULL, DS_ERR_ABI, "core",
                     "ds_context_options.struct_size is %u; this library (%s) knows %zu",
                     o->struct_size, DS_VERSION_STRING, sizeof(ds_context_options));
  unsigned hv = o->header_version, major = hv / 10000, minor = (hv / 100) % 100;
  if (major != DS_VERSION_MAJOR || minor > DS_VERSION_MINOR)
    return ds__error(NULL, DS_ERR_VERSION, "core",
                     "compiled against headers %u.%u.%u, but the library is %s", major, minor,
                     hv % 100, DS_VERSION_STRING);
  if (o->log_level < -1 || o->log_level > DS_LOG_OFF)
    return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "log_level %d is not -1 or 0..4",
                     (int)o->log_level);
  if (o->allocator && (!o->allocator->alloc || !o->allocator->free))
    return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "allocator needs both alloc and free");
  if (o->nparams && !o->params)
    return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "nparams is %zu but params is NULL",
                     o->nparams);
  if (o->flags & ~DS_CONTEXT_NO_ENV)
    return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "unknown flags 0x%x",
                     o->flags & ~DS_CONTEXT_NO_ENV);
  return DS_OK;
}

static ds_status ds__apply_tunables(ds_context *ctx, const ds_context_options *o) {
  for (int i = 0; i < ds__param_count(); i++) ds__store_relaxed(&ctx->params[i], ds__param_at(i)->def);
  if (o->log_level >= 0) ds__store_relaxed(&ctx->params[0], o->log_level);
  for (size_t k = 0; k < o->nparams; k++) {
    ds_status st = ds__param_set(ctx, (ds_param)o->params[k].param, o->params[k].value, 1);
    if (st != DS_OK) return st;
  }
  const char *path = o->config_path;
  /* secure_getenv here and for every DS_* variable: a setuid or setgid program ignores the
   * environment, whose paths it would otherwise open with its privileges */
  if (!path && !(o->flags & DS_CONTEXT_NO_ENV)) path = secure_getenv("DS_CONFIG");
  if (path && *path) {
    ds_status st = ds__config_load_file(ctx, path, 1);
    if (st != DS_OK) return st;
  }
  if (!(o->flags & DS_CONTEXT_NO_ENV)) return ds__config_load_env(ctx);
  return DS_OK;
}

static ds_status ds__start_subsystems(ds_context *ctx, const ds_context_options *o) {
  ds_status st;
  if ((st = ds__stats_create(ctx)) != DS_OK) return st;
  if ((st = ds__trace_create(ctx)) != DS_OK) return st;
  if ((st = ds__telemetry_create(ctx)) != DS_OK) return st;
  (void)o;
  return DS_OK;
}

static void ds__free_context(ds_context *ctx) {
  ds__precision_destroy(ctx);
  ds__fabric_destroy(ctx);
  ds__telemetry_destroy(ctx);
  ds__sched_destroy(ctx);
  ds__executor_destroy(ctx);
  ds__trace_destroy(ctx);
  ds__stats_destroy(ctx);
  ds__topology_context_release(ctx);
  ds__tls_destroy_all(ctx);
  pthread_key_delete(ctx->tls_key);
  ds__free(ctx, ctx->name);
  ds__free(ctx, ctx->telemetry_peer);
  int64_t live = ds__load(&ctx->mem_live_bytes);
  if (live != (int64_t)sizeof *ctx)
    ds__log(ctx, DS_LOG_WARN, "core", "%lld bytes in %lld blocks still allocated at destroy",
            (long long)(live - (int64_t)sizeof *ctx), (long long)ds__load(&ctx->mem_live_blocks) - 1);
  pthread_mutex_destroy(&ctx->log_mu);
  pthread_mutex_destroy(&ctx->tls_mu);
  pthread_mutex_destroy(&ctx->lazy_mu);
  ds__free(ctx, ctx);
}

static const char *ds__program_name(void) {
  extern char *program_invocation_short_name; /* glibc */
  return program_invocation_short_name ? program_invocation_short_name : "unknown";
}

ds_status ds_context_create(ds_context **out, const ds_context_options *opts) {
  if (!out) return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "ds_context_create: out is NULL");
  *out = NULL;
  ds_context_options defaults = DS_CONTEXT_OPTIONS_INIT;
  const ds_context_options *o = opts ? opts : &defaults;
  ds_status st = ds__check_options(o);
  if (st != DS_OK) return st;

  ds_allocator a = {ds__default_alloc, ds__default_free, NULL};
  if (o->allocator) a = *o->allocator;
  /* The context is allocated through its own allocator: bootstrap with a stack copy. */
  ds_context boot;
  memset(&boot, 0, sizeof boot);
  boot.alloc = a;
  ds_context *ctx = ds__calloc(&boot, 1, sizeof *ctx);
  if (!ctx) return ds__error(NULL, DS_ERR_NO_MEMORY, "core", "cannot allocate the context");
  ctx->alloc = a;
  ds__store_relaxed(&ctx->mem_live_bytes, (int64_t)sizeof *ctx);
  ds__store_relaxed(&ctx->mem_peak_bytes, (int64_t)sizeof *ctx);
  ds__store_relaxed(&ctx->mem_live_blocks, 1);
  ctx->flags = o->flags;
  ctx->serial = ds__fetch_add(&ds__context_serial, 1) + 1;
  pthread_mutex_init(&ctx->log_mu, NULL);
  pthread_mutex_init(&ctx->tls_mu, NULL);
  pthread_mutex_init(&ctx->lazy_mu, NULL);
  ctx->log_fn = o->log_fn;
  ctx->log_user = o->log_user;
  ds__store_relaxed(&ctx->params[0], DS_LOG_OFF); /* no logging until tunables are known */
  if (pthread_key_create(&ctx->tls_key, NULL) != 0) {
    pthread_mutex_destroy(&ctx->log_mu);
    pthread_mutex_destroy(&ctx->tls_mu);
    pthread_mutex_destroy(&ctx->lazy_mu);
    ds__free(ctx, ctx);
    return ds__error(NULL, DS_ERR_NO_MEMORY, "core", "no thread-specific key left (too many contexts)");
  }

  ctx->name = ds__strdup(ctx, o->name ? o->name : ds__program_name());
  ctx->telemetry_peer = o->telemetry_peer ? ds__strdup(ctx, o->telemetry_peer) : NULL;
  if (!ctx->name || (o->telemetry_peer && !ctx->telemetry_peer)) {
    st = ds__error(ctx, DS_ERR_NO_MEMORY, "core", "cannot allocate context strings");
  } else {
    st = ds__apply_tunables(ctx, o);
    if (st == DS_OK) st = ds__start_subsystems(ctx, o);
  }
  if (st != DS_OK) {
    ds__error_to_noctx(ctx); /* readable with ds_context_last_error(NULL) */
    ds__free_context(ctx);
    return st;
  }
  ds__log(ctx, DS_LOG_INFO, "core", "context %llu created (libdeepseek %s; %s)",
          (unsigned long long)ctx->serial, DS_VERSION_STRING, ds_build_summary());
  *out = ctx;
  return DS_OK;
}

void ds_context_destroy(ds_context *ctx) {
  if (!ctx) return;
  ds__log(ctx, DS_LOG_INFO, "core", "context %llu destroyed", (unsigned long long)ctx->serial);
  ds__free_context(ctx);
}
