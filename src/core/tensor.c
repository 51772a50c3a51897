/* The ds_tensor descriptor: dtype sizes and names, validation at construction, element count,
 * contiguity and the byte span a strided view addresses. */
#include <string.h>

#include "internal.h"

static const struct {
  size_t size;
  const char *name;
} ds__dtypes[DS_DTYPE_COUNT] = {
    [DS_DTYPE_F32] = {4, "f32"}, [DS_DTYPE_F16] = {2, "f16"}, [DS_DTYPE_BF16] = {2, "bf16"},
    [DS_DTYPE_F64] = {8, "f64"}, [DS_DTYPE_I8] = {1, "i8"},   [DS_DTYPE_U8] = {1, "u8"},
    [DS_DTYPE_I32] = {4, "i32"}, [DS_DTYPE_I64] = {8, "i64"}, [DS_DTYPE_I16] = {2, "i16"},
    [DS_DTYPE_U16] = {2, "u16"}, [DS_DTYPE_BOOL] = {1, "bool"},
};

size_t ds_dtype_size(ds_dtype dtype) {
  return (unsigned)dtype < DS_DTYPE_COUNT ? ds__dtypes[dtype].size : 0;
}

const char *ds_dtype_name(ds_dtype dtype) {
  return (unsigned)dtype < DS_DTYPE_COUNT ? ds__dtypes[dtype].name : "unknown";
}

/* a * b for non-negative a, b; 0 if the product does not fit in int64_t. */
static int ds__mul(int64_t a, int64_t b, int64_t *out) {
  if (a != 0 && b > INT64_MAX / a) return 0;
  *out = a * b;
  return 1;
}

static int ds__add(int64_t a, int64_t b, int64_t *out) {
  if (b > INT64_MAX - a) return 0;
  *out = a + b;
  return 1;
}

/* Row-major strides, treating zero-sized dimensions as 1 so the strides stay meaningful (as
 * NumPy and PyTorch do). 0 on overflow. */
static int ds__contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int32_t i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    if (!ds__mul(s, shape[i] > 1 ? shape[i] : 1, &s)) return 0;
  }
  return 1;
}

/* Elements from the first addressed to one past the last (0 if empty); 0 on overflow. */
static int ds__span(const ds_tensor *t, int64_t *span) {
  int64_t last = 0, step;
  for (int32_t i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 0) {
      *span = 0;
      return 1;
    }
    if (!ds__mul(t->shape[i] - 1, t->strides[i], &step) || !ds__add(last, step, &last)) return 0;
  }
  return ds__add(last, 1, span);
}

static ds_status ds__check_dims(ds_context *ctx, int32_t ndim, const int64_t *shape,
                                const int64_t *strides) {
  if (ndim < 0 || ndim > DS_TENSOR_MAX_DIMS)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "ndim %d is not 0..%d", (int)ndim,
                     DS_TENSOR_MAX_DIMS);
  if (ndim > 0 && !shape)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "shape is NULL with ndim %d", (int)ndim);
  for (int32_t i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "dimension %d is %lld", (int)i,
                       (long long)shape[i]);
    if (strides && strides[i] < 0)
      return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "stride %d is %lld (negative)", (int)i,
                       (long long)strides[i]);
  }
  return DS_OK;
}

/* numel * element size and the addressed span in bytes must both fit in int64_t, so numel,
 * nbytes and every offset computed later are exact. They differ for broadcast (stride 0)
 * views, which address few bytes but may have many elements. */
static ds_status ds__check_size(ds_context *ctx, const ds_tensor *t) {
  int64_t size = (int64_t)ds_dtype_size((ds_dtype)t->dtype), numel = 1, span, bytes;
  int ok = ds__span(t, &span) && ds__mul(span, size, &bytes);
  for (int32_t i = 0; ok && i < t->ndim; i++) ok = ds__mul(numel, t->shape[i], &numel);
  if (!ok || !ds__mul(numel, size, &bytes))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor",
                     "size of a %d-dimensional %s tensor overflows", (int)t->ndim,
                     ds_dtype_name((ds_dtype)t->dtype));
  if (!t->data && span > 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "data is NULL for a non-empty tensor");
  return DS_OK;
}

ds_status ds_tensor_init(ds_tensor *out, ds_context *ctx, void *data, ds_dtype dtype,
                         int32_t ndim, const int64_t *shape, const int64_t *strides,
                         ds_device device) {
  if (!out) return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "ds_tensor_init: out is NULL");
  if ((unsigned)dtype >= DS_DTYPE_COUNT)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "unknown dtype %d", (int)dtype);
  if (device.type < DS_DEVICE_CPU || device.type > DS_DEVICE_CUDA_MANAGED || device.index < 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "unknown device %d:%d", (int)device.type,
                     (int)device.index);
  ds_status st = ds__check_dims(ctx, ndim, shape, strides);
  if (st != DS_OK) return st;
  ds_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.ndim = ndim;
  t.device = device;
  if (ndim > 0) memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
  if (strides)
    memcpy(t.strides, strides, (size_t)ndim * sizeof *strides);
  else if (!ds__contiguous_strides(ndim, t.shape, t.strides))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "strides of the shape overflow");
  if ((st = ds__check_size(ctx, &t)) != DS_OK) return st;
  *out = t;
  return DS_OK;
}

int64_t ds_tensor_numel(const ds_tensor *t) {
  if (!t) return 0;
  int64_t n = 1;
  for (int32_t i = 0; i < t->ndim; i++) n *= t->shape[i]; /* ds_tensor_init checked the bound */
  return n;
}

int ds_tensor_is_contiguous(const ds_tensor *t) {
  if (!t) return 0;
  if (ds_tensor_numel(t) == 0) return 1; /* no element, so no layout to disagree with */
  int64_t expected = 1;
  for (int32_t i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != expected) return 0;
    expected *= t->shape[i];
  }
  return 1;
}

size_t ds_tensor_nbytes(const ds_tensor *t) {
  int64_t span;
  if (!t || !ds__span(t, &span)) return 0;
  return (size_t)span * ds_dtype_size((ds_dtype)t->dtype);
}
