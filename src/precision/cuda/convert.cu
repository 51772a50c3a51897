// CUDA conversions fp32 <-> fp16 / bf16: one thread per element, grid-stride loops, with the
// rounding of rounding.cuh (bit-identical to the CPU reference).
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>

#include "cuda_backend.h"
#include "rounding.cuh"

namespace {

constexpr int kThreads = 256;

__global__ void narrow_kernel(uint16_t *dst, const uint32_t *src, size_t n, int dtype) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    dst[i] = narrow(src[i], dtype);
}

__global__ void widen_kernel(uint32_t *dst, const uint16_t *src, size_t n, int dtype) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    dst[i] = widen(src[i], dtype);
}

__global__ void cross_kernel(uint16_t *dst, int dst_dtype, const uint16_t *src, size_t n,
                             int src_dtype) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    dst[i] = narrow(widen(src[i], src_dtype), dst_dtype);
}

ds_status report(cudaError_t e, const char *what, char *msg, size_t msg_size) {
  if (e == cudaSuccess) return DS_OK;
  snprintf(msg, msg_size, "%s: %s", what, cudaGetErrorString(e));
  return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ? DS_ERR_UNAVAILABLE
                                                                    : DS_ERR_DEVICE;
}

} // namespace

extern "C" ds_status ds__cuda_convert_run(void *dst, int dst_dtype, const void *src,
                                          int src_dtype, size_t n, char *msg, size_t msg_size) {
  if (n == 0) return DS_OK;
  size_t blocks = (n + kThreads - 1) / kThreads;
  unsigned grid = (unsigned)(blocks < 65535 * 8 ? blocks : 65535 * 8);
  if (dst_dtype == src_dtype) {
    size_t bytes = n * (dst_dtype == kF32 ? 4 : 2);
    return report(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "convert copy", msg,
                  msg_size);
  }
  if (src_dtype == kF32)
    narrow_kernel<<<grid, kThreads>>>((uint16_t *)dst, (const uint32_t *)src, n, dst_dtype);
  else if (dst_dtype == kF32)
    widen_kernel<<<grid, kThreads>>>((uint32_t *)dst, (const uint16_t *)src, n, src_dtype);
  else
    cross_kernel<<<grid, kThreads>>>((uint16_t *)dst, dst_dtype, (const uint16_t *)src, n,
                                     src_dtype);
  ds_status st = report(cudaGetLastError(), "convert launch", msg, msg_size);
  if (st != DS_OK) return st;
  return report(cudaDeviceSynchronize(), "convert", msg, msg_size);
}

// The device rounding code, run on the host against the C reference: lets the tests check it
// bit for bit on machines without a GPU. Returns the number of mismatches.
extern "C" size_t ds__cuda_convert_host_check(const uint32_t *f32_patterns, size_t n,
                                              uint16_t (*ref_narrow)(uint32_t, int),
                                              uint32_t (*ref_widen)(uint16_t, int)) {
  size_t bad = 0;
  for (int dt = kF16; dt <= kBF16; dt++) {
    for (uint32_t h = 0; h < 65536; h++) bad += widen((uint16_t)h, dt) != ref_widen((uint16_t)h, dt);
    for (size_t i = 0; i < n; i++) bad += narrow(f32_patterns[i], dt) != ref_narrow(f32_patterns[i], dt);
  }
  return bad;
}

extern "C" ds_status ds__cuda_sync_run(char *msg, size_t msg_size) {
  return report(cudaDeviceSynchronize(), "synchronize", msg, msg_size);
}

extern "C" ds_status ds__cuda_test_alloc(void **p, size_t bytes) {
  return cudaMalloc(p, bytes) == cudaSuccess ? DS_OK : DS_ERR_DEVICE;
}
extern "C" void ds__cuda_test_free(void *p) { cudaFree(p); }
extern "C" ds_status ds__cuda_test_copy(void *dst, const void *src, size_t bytes, int kind) {
  cudaMemcpyKind k = kind == 0 ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
  return cudaMemcpy(dst, src, bytes, k) == cudaSuccess ? DS_OK : DS_ERR_DEVICE;
}
