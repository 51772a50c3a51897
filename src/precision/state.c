/* Per-context state of the precision module (the oneDNN primitive cache), created on first
 * use under the context's lazy-creation lock and destroyed with the context. */
#include "precision_internal.h"

struct ds__precision *ds__precision_get(ds_context *ctx) {
  pthread_mutex_lock(&ctx->lazy_mu);
  struct ds__precision *p = ctx->precision;
  if (!p) {
    p = ds__calloc(ctx, 1, sizeof *p);
    if (p) {
      static const char *const names[DS__GEMM_PATHS] = {
          "precision.gemm.blas", "precision.gemm.skinny", "precision.gemm.onednn",
          "precision.gemm.widened", "precision.gemm.cuda"};
      pthread_mutex_init(&p->mu, NULL);
      for (int i = 0; i < DS__GEMM_PATHS; i++)
        p->stat_gemm[i] = ds__stat_register(ctx, names[i], DS_STAT_COUNTER);
      p->stat_cudnn = ds__stat_register(ctx, "precision.cudnn.softmax", DS_STAT_COUNTER);
      ctx->precision = p;
    }
  }
  pthread_mutex_unlock(&ctx->lazy_mu);
  return p;
}

void *ds__prec_scratch_get(ds_context *ctx, struct ds__precision *p, size_t bytes) {
  if (bytes > DS__SCRATCH_KEEP) return ds__alloc(ctx, bytes);
  pthread_mutex_lock(&p->mu);
  void *buf = NULL;
  if (!p->scratch_busy) {
    if (p->scratch_size < bytes) {
      ds__free(ctx, p->scratch);
      p->scratch = ds__alloc(ctx, bytes);
      p->scratch_size = p->scratch ? bytes : 0;
    }
    if (p->scratch) p->scratch_busy = 1, buf = p->scratch;
  }
  pthread_mutex_unlock(&p->mu);
  return buf ? buf : ds__alloc(ctx, bytes);
}

void ds__prec_scratch_put(ds_context *ctx, struct ds__precision *p, void *buf) {
  pthread_mutex_lock(&p->mu);
  int kept = buf && buf == p->scratch;
  if (kept) p->scratch_busy = 0;
  pthread_mutex_unlock(&p->mu);
  if (!kept) ds__free(ctx, buf);
}

void ds__precision_destroy(ds_context *ctx) {
  struct ds__precision *p = ctx->precision;
  if (!p) return;
  ds__gemm_cache_destroy(ctx, p->gemm_cache);
  ds__cuda_state_destroy(ctx, p->cuda);
  ds__free(ctx, p->scratch);
  pthread_mutex_destroy(&p->mu);
  ds__free(ctx, p);
  ctx->precision = NULL;
}
