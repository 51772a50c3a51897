/* DLPack 0.6 interchange for ds_tensor: zero-copy import of a DLManagedTensor and export of a
 * ds_tensor as one self-contained DLManagedTensor allocation. */
#include <dlpack/dlpack.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* DLPack 1.0 added kDLBool = 6 (one byte per element); DLPack 0.6 producers such as PyTorch
 * already send it, so it is recognised by number. */
enum { DS__DL_BOOL = 6 };

static const struct {
  uint8_t code, bits;
} ds__dl_dtypes[DS_DTYPE_COUNT] = {
    [DS_DTYPE_F32] = {kDLFloat, 32}, [DS_DTYPE_F16] = {kDLFloat, 16},
    [DS_DTYPE_BF16] = {kDLBfloat, 16}, [DS_DTYPE_F64] = {kDLFloat, 64},
    [DS_DTYPE_I8] = {kDLInt, 8},     [DS_DTYPE_U8] = {kDLUInt, 8},
    [DS_DTYPE_I32] = {kDLInt, 32},   [DS_DTYPE_I64] = {kDLInt, 64},
    [DS_DTYPE_I16] = {kDLInt, 16},   [DS_DTYPE_U16] = {kDLUInt, 16},
    [DS_DTYPE_BOOL] = {DS__DL_BOOL, 8},
};

/* Each ds_device_type as a DLPack device kind. */
static const DLDeviceType ds__dl_devices[] = {
    [DS_DEVICE_CPU] = kDLCPU,           [DS_DEVICE_CUDA] = kDLCUDA,
    [DS_DEVICE_CUDA_HOST] = kDLCUDAHost, [DS_DEVICE_OPENCL] = kDLOpenCL,
    [DS_DEVICE_CUDA_MANAGED] = kDLCUDAManaged,
};
#define DS__NDEVICES ((int)(sizeof ds__dl_devices / sizeof ds__dl_devices[0]))

static int ds__dtype_from_dl(DLDataType dt) {
  for (int i = 0; i < DS_DTYPE_COUNT; i++)
    if (ds__dl_dtypes[i].code == dt.code && ds__dl_dtypes[i].bits == dt.bits) return i;
  return -1;
}

static int ds__device_from_dl(DLDeviceType type) {
  for (int i = 0; i < DS__NDEVICES; i++)
    if (ds__dl_devices[i] == type) return i;
  return -1;
}

/* What ds_tensor cannot represent is DS_ERR_UNSUPPORTED; a malformed DLTensor is INVALID_ARG. */
static ds_status ds__check_dl(ds_context *ctx, const DLTensor *dl) {
  if (dl->ndim < 0 || (dl->ndim > 0 && !dl->shape))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "DLPack tensor has ndim %d and shape %p",
                     dl->ndim, (void *)dl->shape);
  if (dl->ndim > DS_TENSOR_MAX_DIMS)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "tensor", "DLPack tensor has %d dimensions (at most %d)",
                     dl->ndim, DS_TENSOR_MAX_DIMS);
  if (dl->dtype.lanes != 1 || ds__dtype_from_dl(dl->dtype) < 0)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "tensor",
                     "DLPack dtype code %u, %u bits, %u lanes has no ds_dtype", dl->dtype.code,
                     dl->dtype.bits, dl->dtype.lanes);
  if (ds__device_from_dl(dl->device.device_type) < 0)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "tensor", "DLPack device type %d is not handled",
                     (int)dl->device.device_type);
  for (int i = 0; dl->strides && i < dl->ndim; i++)
    if (dl->strides[i] < 0)
      return ds__error(ctx, DS_ERR_UNSUPPORTED, "tensor",
                       "DLPack stride %d is %lld (negative strides are not supported)", i,
                       (long long)dl->strides[i]);
  return DS_OK;
}

ds_status ds_tensor_from_dlpack(ds_tensor *out, ds_context *ctx,
                                const struct DLManagedTensor *src) {
  if (!out || !src)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "ds_tensor_from_dlpack: %s is NULL",
                     out ? "src" : "out");
  const DLTensor *dl = &src->dl_tensor;
  ds_status st = ds__check_dl(ctx, dl);
  if (st != DS_OK) return st;
  char *data = dl->data ? (char *)dl->data + dl->byte_offset : NULL;
  ds_device dev = {ds__device_from_dl(dl->device.device_type), dl->device.device_id};
  /* strides NULL means compact row-major in DLPack, as it does for ds_tensor_init. */
  return ds_tensor_init(out, ctx, data, (ds_dtype)ds__dtype_from_dl(dl->dtype), dl->ndim,
                        dl->shape, dl->strides, dev);
}

/* The single allocation behind an exported tensor: the DLManagedTensor first (so the deleter's
 * argument is the block), then the arrays its DLTensor points into and the release callback. */
struct ds__dl_export {
  DLManagedTensor managed;
  struct {
    void (*fn)(void *user);
    void *user;
  } release; /* what manager_ctx points to */
  int64_t shape[DS_TENSOR_MAX_DIMS];
  int64_t strides[DS_TENSOR_MAX_DIMS];
};

static void ds__dl_deleter(DLManagedTensor *self) {
  if (!self) return;
  struct ds__dl_export *e = (struct ds__dl_export *)self;
  void (*fn)(void *) = e->release.fn;
  void *user = e->release.user;
  free(e); /* first, so the producer's callback may free what the structure referred to */
  if (fn) fn(user);
}

static ds_status ds__check_export(ds_context *ctx, const ds_tensor *t) {
  if ((unsigned)t->dtype >= DS_DTYPE_COUNT || t->ndim < 0 || t->ndim > DS_TENSOR_MAX_DIMS ||
      t->device.type < 0 || t->device.type >= DS__NDEVICES)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor",
                     "cannot export a tensor with dtype %d, ndim %d, device type %d",
                     (int)t->dtype, (int)t->ndim, (int)t->device.type);
  return DS_OK;
}

ds_status ds_tensor_to_dlpack(struct DLManagedTensor **out, ds_context *ctx,
                              const ds_tensor *src, void (*on_release)(void *user), void *user) {
  if (!out || !src)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "tensor", "ds_tensor_to_dlpack: %s is NULL",
                     out ? "src" : "out");
  *out = NULL;
  ds_status st = ds__check_export(ctx, src);
  if (st != DS_OK) return st;
  /* malloc, not the context's allocator: the consumer may call the deleter after ctx is gone. */
  struct ds__dl_export *e = calloc(1, sizeof *e);
  if (!e) return ds__error(ctx, DS_ERR_NO_MEMORY, "tensor", "cannot allocate a DLPack tensor");
  memcpy(e->shape, src->shape, sizeof e->shape);
  memcpy(e->strides, src->strides, sizeof e->strides);
  e->release.fn = on_release;
  e->release.user = user;
  DLTensor *dl = &e->managed.dl_tensor;
  dl->data = src->data;
  dl->device.device_type = ds__dl_devices[src->device.type];
  dl->device.device_id = src->device.index;
  dl->ndim = src->ndim;
  dl->dtype.code = ds__dl_dtypes[src->dtype].code;
  dl->dtype.bits = ds__dl_dtypes[src->dtype].bits;
  dl->dtype.lanes = 1;
  dl->shape = e->shape;
  dl->strides = e->strides;
  dl->byte_offset = 0;
  e->managed.manager_ctx = &e->release;
  e->managed.deleter = ds__dl_deleter;
  *out = &e->managed;
  return DS_OK;
}
