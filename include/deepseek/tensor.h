/* libdeepseek: the tensor descriptor shared by every module, and DLPack interchange. */
#ifndef DEEPSEEK_TENSOR_H
#define DEEPSEEK_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

/** @defgroup tensor Tensors
 *  A ds_tensor describes memory the caller (or a module) owns: it never owns its data.
 *  All functions here are thread-safe; a ds_tensor is plain data.
 *  @{ */

/** Element types. Numbers are fixed. */
typedef enum ds_dtype {
  DS_DTYPE_F32 = 0,
  DS_DTYPE_F16 = 1,
  DS_DTYPE_BF16 = 2,
  DS_DTYPE_F64 = 3,
  DS_DTYPE_I8 = 4,
  DS_DTYPE_U8 = 5,
  DS_DTYPE_I32 = 6,
  DS_DTYPE_I64 = 7,
  DS_DTYPE_I16 = 8,
  DS_DTYPE_U16 = 9,
  DS_DTYPE_BOOL = 10,
  DS_DTYPE_COUNT
} ds_dtype;

/** Kinds of memory a tensor may live in. */
typedef enum ds_device_type {
  DS_DEVICE_CPU = 0,
  DS_DEVICE_CUDA = 1,
  DS_DEVICE_CUDA_HOST = 2, /**< pinned host memory, readable by CPU and GPU */
  DS_DEVICE_OPENCL = 3,
  DS_DEVICE_CUDA_MANAGED = 4
} ds_device_type;

typedef struct ds_device {
  int32_t type;  /**< a ds_device_type */
  int32_t index; /**< device ordinal within its type (0 for the CPU) */
} ds_device;

#define DS_TENSOR_MAX_DIMS 8

/** Strided view of typed memory. @c data points at element (0,…,0); strides are in elements
 *  and may be zero (broadcast) but not negative. */
typedef struct ds_tensor {
  void *data;
  int32_t dtype; /**< a ds_dtype */
  int32_t ndim;  /**< 0 (scalar) .. DS_TENSOR_MAX_DIMS */
  int64_t shape[DS_TENSOR_MAX_DIMS];
  int64_t strides[DS_TENSOR_MAX_DIMS];
  ds_device device;
} ds_tensor;

struct DLManagedTensor; /* from <dlpack/dlpack.h>; only pointers cross this header */

DS_EXTERN_C_BEGIN

/** Bytes per element, or 0 for an unknown dtype. */
DS_API size_t ds_dtype_size(ds_dtype dtype);
/** "f32", "bf16", … or "unknown". Static storage. */
DS_API const char *ds_dtype_name(ds_dtype dtype);

/** Fills @p out (unused shape and stride entries are set to 0). @p strides NULL means
 *  contiguous row-major (a zero-sized dimension counts as 1 there, as in NumPy). @p shape may
 *  be NULL when @p ndim is 0. @p ctx (may be NULL) receives the error detail.
 *  @return DS_OK or DS_ERR_INVALID_ARG (bad dtype, device type or negative device index, ndim,
 *  negative dim or stride, NULL data with a non-empty shape, or an element count or byte span
 *  that does not fit in int64_t). */
DS_API ds_status ds_tensor_init(ds_tensor *out, ds_context *ctx, void *data, ds_dtype dtype,
                                int32_t ndim, const int64_t *shape, const int64_t *strides,
                                ds_device device);
/** Number of elements (1 for a scalar, 0 if any dimension is 0). */
DS_API int64_t ds_tensor_numel(const ds_tensor *t);
/** 1 if @p t is contiguous row-major, else 0. */
DS_API int ds_tensor_is_contiguous(const ds_tensor *t);
/** Bytes from the first to one past the last element addressed by @p t: numel times the
 *  element size when contiguous, less for broadcast (stride 0) views, 0 when empty. */
DS_API size_t ds_tensor_nbytes(const ds_tensor *t);

/** Zero-copy view of a DLPack (0.6) tensor: @p out->data is the DLPack data plus byte_offset;
 *  NULL strides mean compact row-major. DLPack dtype code 6 with 8 bits (kDLBool of later
 *  DLPack versions) is DS_DTYPE_BOOL. The caller keeps @p src alive while the view is used
 *  and calls src->deleter when done.
 *  @return DS_OK; DS_ERR_UNSUPPORTED (dtype with lanes ≠ 1 or no ds_dtype, device kind not
 *  handled, more than DS_TENSOR_MAX_DIMS dims, negative strides); DS_ERR_INVALID_ARG. */
DS_API ds_status ds_tensor_from_dlpack(ds_tensor *out, ds_context *ctx,
                                       const struct DLManagedTensor *src);

/** Exports @p src as a DLPack managed tensor sharing its data (no copy; byte_offset 0,
 *  strides always given, DS_DTYPE_BOOL as code 6 with 8 bits). The consumer calls
 *  (*out)->deleter once; that frees the DLPack structure (with malloc's free, so it is valid
 *  after @p ctx is destroyed) and then calls @p on_release(@p user) if not NULL, which is where
 *  the producer may free the data. @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_tensor_to_dlpack(struct DLManagedTensor **out, ds_context *ctx,
                                     const ds_tensor *src, void (*on_release)(void *user),
                                     void *user);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_TENSOR_H */
