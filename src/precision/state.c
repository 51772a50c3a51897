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
      ctx->precision = p;
    }
  }
  pthread_mutex_unlock(&ctx->lazy_mu);
  return p;
}

void ds__precision_destroy(ds_context *ctx) {
  struct ds__precision *p = ctx->precision;
  if (!p) return;
  ds__gemm_cache_destroy(ctx, p->gemm_cache);
  ds__cuda_state_destroy(ctx, p->cuda);
  pthread_mutex_destroy(&p->mu);
  ds__free(ctx, p);
  ctx->precision = NULL;
}
