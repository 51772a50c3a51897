/* Training kernels: cross-entropy from logits (with its gradient) and embedding lookup
 * (gather forward, scatter-add backward). */
#include <math.h>

#include "kernels_internal.h"

void ds__ce_rows(double *total, float *dlogits, const float *logits, const int32_t *labels,
                 int64_t rows, int64_t cols, int64_t denom) {
  for (int64_t i = 0; i < rows; i++) {
    const float *l = logits + i * cols;
    float mx = l[0];
    for (int64_t j = 1; j < cols; j++) mx = l[j] > mx ? l[j] : mx;
    double sum = 0;
    for (int64_t j = 0; j < cols; j++) sum += exp((double)l[j] - mx);
    double lse = mx + log(sum);
    *total += lse - l[labels[i]];
    if (dlogits)
      for (int64_t j = 0; j < cols; j++)
        dlogits[i * cols + j] =
            (float)((exp((double)l[j] - lse) - (j == labels[i])) / (double)denom);
  }
}

ds_status ds__check_labels(ds_context *ctx, const char *k, const int32_t *ids, int64_t n,
                           int64_t bound) {
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= bound)
      return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                       "%s: %s %d at %lld is outside [0, %lld)", k,
                       strstr(k, "entropy") ? "label" : "id", (int)ids[i], (long long)i,
                       (long long)bound);
  return DS_OK;
}

ds_status ds_cross_entropy(ds_context *ctx, float *loss, float *dlogits, const float *logits,
                           const int32_t *labels, int64_t rows, int64_t cols) {
  const void *p[] = {loss, logits, labels};
  ds_status st = ds__kcheck(ctx, "cross_entropy", rows, cols, p, 3);
  if (st) return st;
  if (!loss) return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "cross_entropy: loss is NULL");
  if (rows && !cols)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "cross_entropy: no classes");
  for (int64_t i = 0; i < rows; i++)
    if (labels[i] < 0 || labels[i] >= cols)
      return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                       "cross_entropy: label %d of row %lld is outside [0, %lld)", (int)labels[i],
                       (long long)i, (long long)cols);
  double total = 0;
  ds__ce_rows(&total, dlogits, logits, labels, rows, cols, rows);
  *loss = rows ? (float)(total / (double)rows) : 0.0f;
  return DS_OK;
}

ds_status ds_embedding_forward(ds_context *ctx, float *y, const float *table, const int32_t *ids,
                               int64_t n, int64_t vocab, int64_t dim) {
  const void *p[] = {y, table, ids};
  ds_status st = ds__kcheck(ctx, "embedding_forward", n, dim, p, 3);
  if (st || n == 0 || dim == 0 || (st = ds__check_labels(ctx, "embedding_forward", ids, n, vocab)))
    return st;
  for (int64_t i = 0; i < n; i++)
    memcpy(y + i * dim, table + (int64_t)ids[i] * dim, (size_t)dim * sizeof(float));
  return DS_OK;
}

ds_status ds_embedding_backward(ds_context *ctx, float *dtable, const float *dy,
                                const int32_t *ids, int64_t n, int64_t vocab, int64_t dim) {
  const void *p[] = {dtable, dy, ids};
  ds_status st = ds__kcheck(ctx, "embedding_backward", n, dim, p, 3);
  if (st || n == 0 || dim == 0 || (st = ds__check_labels(ctx, "embedding_backward", ids, n, vocab)))
    return st;
  for (int64_t i = 0; i < n; i++) {
    float *row = dtable + (int64_t)ids[i] * dim;
    for (int64_t j = 0; j < dim; j++) row[j] += dy[i * dim + j];
  }
  return DS_OK;
}
