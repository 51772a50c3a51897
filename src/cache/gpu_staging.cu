/* The cache's pinned host staging memory on CUDA: copies between pageable memory and the
 * device go through it so the DMA engine reads and writes page-locked memory. */
#include <cuda_runtime.h>

#include "gpu.h"

void *ds__cache_cuda_host_alloc(size_t size) {
  void *p = NULL;
  if (cudaHostAlloc(&p, size, cudaHostAllocPortable) != cudaSuccess) {
    (void)cudaGetLastError(); /* clear the non-fatal error */
    return NULL;
  }
  return p;
}

void ds__cache_cuda_host_free(void *p) {
  if (p) cudaFreeHost(p);
}
