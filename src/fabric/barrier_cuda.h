/* Internal: the CUDA half of the timestamp barrier, as a table of functions that the
 * nvcc-compiled side (cuda/barrier_cuda.cu) fills and the C side (barrier_cuda_glue.c) calls,
 * so the C code builds without CUDA. Plain C types only; each call returns 0 on success, 1 when
 * no CUDA device (or driver feature) is present, 2 on a CUDA error described in msg. */
#ifndef DS_FABRIC_BARRIER_CUDA_H
#define DS_FABRIC_BARRIER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/export.h"

DS_EXTERN_C_BEGIN

struct ds__barrier_cuda_ops {
  /* Enqueues fn(arg) on the stream as a host function (it runs when the stream reaches it). */
  int (*host_func)(void *stream, void (*fn)(void *), void *arg, char *msg, size_t msg_size);
  /* Allocates one 64-bit word of pinned host memory mapped for the device, set to 0. */
  int (*alloc_word)(uint64_t **host, uint64_t *dev_addr, char *msg, size_t msg_size);
  void (*free_word)(uint64_t *host);
  /* Enqueues "wait until (int64_t)(*word - value) >= 0" (cuStreamWaitValue64, GEQ). */
  int (*wait_geq)(void *stream, uint64_t dev_addr, uint64_t value, char *msg, size_t msg_size);
};

/* The table (never NULL); defined in cuda/barrier_cuda.cu, only in builds with CUDA. */
const struct ds__barrier_cuda_ops *ds__barrier_cuda_ops_get(void);

DS_EXTERN_C_END

#endif /* DS_FABRIC_BARRIER_CUDA_H */
