/* Shared argument checks of the training kernels (kernels_*.c). */
#ifndef DS_PRECISION_KERNELS_INTERNAL_H
#define DS_PRECISION_KERNELS_INTERNAL_H

#include "precision_internal.h"

/* DS_OK when ctx is set, the sizes are >= 0 and every pointer in ptrs (n of them) is non-NULL
 * or the problem is empty; else the error, naming the kernel. */
static inline ds_status ds__kcheck(ds_context *ctx, const char *kernel, int64_t rows,
                                   int64_t cols, const void *const *ptrs, int n) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "precision", "%s: ctx is NULL", kernel);
  if (rows < 0 || cols < 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "%s: negative size %lld x %lld",
                     kernel, (long long)rows, (long long)cols);
  if (rows == 0 || cols == 0) return DS_OK;
  for (int i = 0; i < n; i++)
    if (!ptrs[i])
      return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "%s: required buffer %d is NULL",
                       kernel, i + 1);
  return DS_OK;
}

/* Cross-entropy of @p rows rows (kernels_loss.c), no checks: adds each row's loss term to
 * *total in order and writes dlogits (may be NULL) divided by @p denom. */
void ds__ce_rows(double *total, float *dlogits, const float *logits, const int32_t *labels,
                 int64_t rows, int64_t cols, int64_t denom);
/* DS_ERR_INVALID_ARG naming kernel @p k when an id/label is outside [0, bound). */
ds_status ds__check_labels(ds_context *ctx, const char *k, const int32_t *ids, int64_t n,
                           int64_t bound);

#endif /* DS_PRECISION_KERNELS_INTERNAL_H */
