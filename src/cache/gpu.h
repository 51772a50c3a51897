/* Internal: the cache's GPU tier device glue (gpu.c). Device memory is reached through the
 * fabric's backend table, so the tier works on any device with its own memory: a CUDA GPU, an
 * OpenCL device (PoCL's), or a registered backend's device. */
#ifndef DS_CACHE_GPU_H
#define DS_CACHE_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

typedef struct ds__cache_gpu ds__cache_gpu;

/* Opens the tier on fabric device @p device, or (-1) the first CUDA device; *out stays NULL
 * when -1 finds none (no GPU: the cache runs without the tier, not an error). */
ds_status ds__gpu_open(ds__cache_gpu **out, ds_context *ctx, int32_t device);
void ds__gpu_close(ds__cache_gpu *g);
/* Allocates device memory for n bytes and copies src into it. DS_ERR_NO_SPACE /
 * DS_ERR_DEVICE / DS_ERR_NO_MEMORY on failure, nothing allocated then. Thread-safe. */
ds_status ds__gpu_store(ds__cache_gpu *g, const void *src, size_t n, void **mem);
/* Copies n bytes of mem to dst. Thread-safe. */
ds_status ds__gpu_load(ds__cache_gpu *g, void *mem, void *dst, size_t n);
void ds__gpu_free(ds__cache_gpu *g, void *mem);
/* The device's fabric index. */
int32_t ds__gpu_device(const ds__cache_gpu *g);

/* CUDA pinned host memory (cudaHostAlloc / cudaFreeHost), in gpu_staging.cu; only built with
 * CUDA. */
DS_EXTERN_C_BEGIN
void *ds__cache_cuda_host_alloc(size_t size);
void ds__cache_cuda_host_free(void *p);
DS_EXTERN_C_END

#endif
