/* Public conversion entry points: argument checks, then the context's kernel table. */
#include "precision_internal.h"

/* f16 <-> bf16 through an fp32 buffer on the stack, in chunks. */
static void convert_16_16(const ds__prec_kernels *k, uint16_t *dst, int dst_f16,
                          const uint16_t *src, size_t n) {
  float tmp[1024];
  for (size_t i = 0; i < n; i += 1024) {
    size_t c = n - i < 1024 ? n - i : 1024;
    (dst_f16 ? k->bf16_to_f32 : k->f16_to_f32)(tmp, src + i, c);
    (dst_f16 ? k->f32_to_f16 : k->f32_to_bf16)(dst + i, tmp, c);
  }
}

ds_status ds_precision_convert(ds_context *ctx, void *dst, ds_dtype dst_dtype, const void *src,
                               ds_dtype src_dtype, size_t n) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "precision", "convert: ctx is NULL");
  if (n && (!dst || !src))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "convert: NULL buffer with n = %zu", n);
  if (!ds__prec_dtype_ok(dst_dtype) || !ds__prec_dtype_ok(src_dtype))
    return ds__error(ctx, DS_ERR_DTYPE, "precision",
                     "convert: %s -> %s is not supported (f32, f16 and bf16 only)",
                     ds_dtype_name(src_dtype), ds_dtype_name(dst_dtype));
  if (!n) return DS_OK;
  const ds__prec_kernels *k = ds__prec_kernels_ctx(ctx);
  if (dst_dtype == src_dtype) {
    if (dst != src) memcpy(dst, src, n * ds_dtype_size(src_dtype));
  } else if (src_dtype == DS_DTYPE_F32) {
    (dst_dtype == DS_DTYPE_F16 ? k->f32_to_f16 : k->f32_to_bf16)(dst, src, n);
  } else if (dst_dtype == DS_DTYPE_F32) {
    (src_dtype == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(dst, src, n);
  } else {
    convert_16_16(k, dst, dst_dtype == DS_DTYPE_F16, src, n);
  }
  return DS_OK;
}

ds_status ds_precision_convert_tensor(ds_context *ctx, ds_tensor *dst, const ds_tensor *src) {
  if (!ctx || !dst || !src)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "convert_tensor: NULL argument");
  if (!ds_tensor_is_contiguous(dst) || !ds_tensor_is_contiguous(src))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "convert_tensor: not contiguous");
  int64_t n = ds_tensor_numel(src);
  if (n != ds_tensor_numel(dst))
    return ds__error(ctx, DS_ERR_SHAPE, "precision", "convert_tensor: %lld elements into %lld",
                     (long long)n, (long long)ds_tensor_numel(dst));
  int hs = src->device.type == DS_DEVICE_CPU || src->device.type == DS_DEVICE_CUDA_HOST;
  int hd = dst->device.type == DS_DEVICE_CPU || dst->device.type == DS_DEVICE_CUDA_HOST;
  if (hs && hd)
    return ds_precision_convert(ctx, dst->data, (ds_dtype)dst->dtype, src->data,
                                (ds_dtype)src->dtype, (size_t)n);
  int cs = src->device.type == DS_DEVICE_CUDA || src->device.type == DS_DEVICE_CUDA_MANAGED;
  int cd = dst->device.type == DS_DEVICE_CUDA || dst->device.type == DS_DEVICE_CUDA_MANAGED;
  if (!cs || !cd || src->device.index != dst->device.index)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "precision",
                     "convert_tensor: both tensors must be in host memory or on one CUDA device");
  if (!ds__prec_dtype_ok(dst->dtype) || !ds__prec_dtype_ok(src->dtype))
    return ds__error(ctx, DS_ERR_DTYPE, "precision", "convert_tensor: %s -> %s",
                     ds_dtype_name(src->dtype), ds_dtype_name(dst->dtype));
  return ds__cuda_convert(ctx, dst->data, (ds_dtype)dst->dtype, src->data, (ds_dtype)src->dtype,
                          (size_t)n);
}

ds_precision_isa ds_precision_isa_in_use(ds_context *ctx) {
  return ctx ? ds__prec_kernels_ctx(ctx)->isa : ds__prec_cpu_isa();
}

const char *ds_precision_isa_name(ds_precision_isa isa) {
  switch (isa) {
  case DS_PRECISION_ISA_AUTO: return "auto";
  case DS_PRECISION_ISA_SCALAR: return "scalar";
  case DS_PRECISION_ISA_AVX2: return "avx2";
  case DS_PRECISION_ISA_AVX512: return "avx512";
  }
  return "unknown";
}
