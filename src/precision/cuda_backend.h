/* Internal: the CUDA half of the precision module, shared by the nvcc-compiled side
 * (cuda/convert.cu) and the C side (cuda_glue.c). Plain C and C++-compatible types only. All
 * calls are synchronous on the calling thread's current device and the legacy default stream;
 * failures come back as a status plus a message in @p msg (the .cu cannot include the core's
 * C11 internal header). Built only with CUDA; cuda_glue.c stubs them otherwise. */
#ifndef DS_PRECISION_CUDA_BACKEND_H
#define DS_PRECISION_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

DS_EXTERN_C_BEGIN

/* Converts n elements between dtypes (ds_dtype numbers: F32, F16, BF16) in device memory with
 * the same bit-exact rounding as the CPU reference. */
ds_status ds__cuda_convert_run(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n,
                               char *msg, size_t msg_size);
/* Runs the device rounding functions on the host over all 16-bit patterns and the given fp32
 * patterns, against reference callbacks (dtype 1 = F16, 2 = BF16); the number of mismatches. */
size_t ds__cuda_convert_host_check(const uint32_t *f32_patterns, size_t n,
                                   uint16_t (*ref_narrow)(uint32_t, int),
                                   uint32_t (*ref_widen)(uint16_t, int));
/* Waits for the device; reports an asynchronous error of earlier work. */
ds_status ds__cuda_sync_run(char *msg, size_t msg_size);
/* For tests: device memory and copies (kind 0 host->device, 1 device->host). */
ds_status ds__cuda_test_alloc(void **p, size_t bytes);
void ds__cuda_test_free(void *p);
ds_status ds__cuda_test_copy(void *dst, const void *src, size_t bytes, int kind);

DS_EXTERN_C_END

#endif /* DS_PRECISION_CUDA_BACKEND_H */
