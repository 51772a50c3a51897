/* Per-thread last-error messages. Each context has a pthread key whose per-thread value holds
 * the thread's message (and its trace buffer); errors raised without a context go to a plain
 * thread-local buffer. Nothing here is process-global state shared between contexts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char ds__noctx_errmsg[DS__ERRMSG_MAX];

struct ds__tls *ds__tls_get(const ds_context *cctx) {
  ds_context *ctx = (ds_context *)cctx; /* the per-thread list is mutable state behind const */
  struct ds__tls *t = pthread_getspecific(ctx->tls_key);
  if (DS__LIKELY(t != NULL)) return t;
  t = ds__calloc(ctx, 1, sizeof *t);
  if (!t) return NULL;
  if (pthread_setspecific(ctx->tls_key, t) != 0) {
    ds__free(ctx, t);
    return NULL;
  }
  pthread_mutex_lock(&ctx->tls_mu);
  t->next = ctx->tls_list;
  ctx->tls_list = t;
  pthread_mutex_unlock(&ctx->tls_mu);
  return t;
}

/* Called at context destroy, after every thread of the context has stopped. Per-thread state of
 * threads that exited earlier is freed here too: it stays linked until then. */
void ds__tls_destroy_all(ds_context *ctx) {
  struct ds__tls *t = ctx->tls_list;
  while (t) {
    struct ds__tls *next = t->next;
    ds__free(ctx, t);
    t = next;
  }
  ctx->tls_list = NULL;
}

ds_status ds__verror(const ds_context *ctx, ds_status st, const char *module, const char *fmt,
                     va_list ap) {
  char *buf = ds__noctx_errmsg;
  if (ctx) {
    struct ds__tls *t = ds__tls_get(ctx);
    if (t) buf = t->errmsg;
  }
  int n = snprintf(buf, DS__ERRMSG_MAX, "%s: ", module ? module : "core");
  if (n < 0 || n >= DS__ERRMSG_MAX) n = 0;
  vsnprintf(buf + n, DS__ERRMSG_MAX - (size_t)n, fmt, ap);
  if (ctx) ds__log(ctx, DS_LOG_DEBUG, module, "%s (%s)", buf + n, ds_status_name(st));
  return st;
}

ds_status ds__error(const ds_context *ctx, ds_status st, const char *module, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ds__verror(ctx, st, module, fmt, ap);
  va_end(ap);
  return st;
}

void ds__error_to_noctx(const ds_context *ctx) {
  snprintf(ds__noctx_errmsg, sizeof ds__noctx_errmsg, "%s", ds_context_last_error(ctx));
}

const char *ds_context_last_error(const ds_context *ctx) {
  if (!ctx) return ds__noctx_errmsg;
  struct ds__tls *t = pthread_getspecific(ctx->tls_key);
  return t ? t->errmsg : "";
}
