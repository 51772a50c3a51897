/* Internal: the CUDA self-test (a fill kernel and a streaming kernel over 64 MiB, verified on
 * the host, with the streaming bandwidth). Plain C and C++-compatible, so the nvcc-compiled
 * side (cuda/selftest.cu) and the C side (cuda_selftest.c) share these prototypes. */
#ifndef DS_CORE_CUDA_SELFTEST_H
#define DS_CORE_CUDA_SELFTEST_H

#include <stddef.h>

#include "deepseek/context.h"

DS_EXTERN_C_BEGIN

/* Runs the self-test on CUDA device @p device and stores the measured device-memory bandwidth
 * in *gbps (GB/s, 1e9 bytes; gbps may be NULL). Returns DS_OK; DS_ERR_UNAVAILABLE when the
 * machine has no CUDA device (also when there is no driver); DS_ERR_NOT_FOUND for a device
 * index out of range; DS_ERR_NO_MEMORY (host buffer); DS_ERR_DEVICE for a CUDA error or a wrong value (the detail is in
 * ds_context_last_error(ctx)); DS_ERR_UNSUPPORTED in a build without CUDA. Never crashes
 * without a GPU. Thread-safe; it sets the calling thread's current device. */
ds_status ds__cuda_selftest(ds_context *ctx, int device, double *gbps);

/* The nvcc-compiled half, built only with CUDA: same contract, but it reports failures as a
 * message in @p msg instead of through the context (the .cu cannot include the core's C11
 * internal header). */
ds_status ds__cuda_selftest_run(int device, double *gbps, char *msg, size_t msg_size);

DS_EXTERN_C_END

#endif /* DS_CORE_CUDA_SELFTEST_H */
