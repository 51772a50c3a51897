/* Logging: a threshold (the log_level tunable) and a sink (stderr or the caller's callback). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char *const ds__level_names[] = {"debug", "info", "warn", "error", "off"};

int ds__log_enabled(const ds_context *ctx, int level) {
  return ctx && level >= (int)ds__param(ctx, DS_PARAM_LOG_LEVEL) && level < DS_LOG_OFF;
}

void ds__log(const ds_context *cctx, int level, const char *module, const char *fmt, ...) {
  if (!ds__log_enabled(cctx, level)) return;
  ds_context *ctx = (ds_context *)cctx;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!module) module = "core";

  pthread_mutex_lock(&ctx->log_mu);
  ds_log_fn fn = ctx->log_fn;
  void *user = ctx->log_user;
  pthread_mutex_unlock(&ctx->log_mu);
  if (fn) {
    fn(user, level, module, msg);
    return;
  }
  /* One fprintf per line so concurrent lines do not interleave. */
  fprintf(stderr, "deepseek[%s] %s: %s\n", ds__level_names[level], module, msg);
}

ds_status ds_context_set_log(ds_context *ctx, int level, ds_log_fn fn, void *user) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "core", "ds_context_set_log: ctx is NULL");
  if (level != -1) {
    ds_status st = ds__param_set(ctx, DS_PARAM_LOG_LEVEL, level, 0);
    if (st != DS_OK) return st;
  }
  pthread_mutex_lock(&ctx->log_mu);
  ctx->log_fn = fn;
  ctx->log_user = user;
  pthread_mutex_unlock(&ctx->log_mu);
  return DS_OK;
}
