// CUDA conversions fp32 <-> fp16 / bf16: one thread per element, grid-stride loops, with the
// rounding written in integer arithmetic exactly as the CPU reference (convert_scalar.c), so
// results are bit-identical on every backend (the hardware intrinsics differ on NaN payloads).
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>

#include "cuda_backend.h"

namespace {

constexpr int kF32 = 0, kF16 = 1, kBF16 = 2; // ds_dtype numbers
constexpr int kThreads = 256;

__host__ __device__ int clz32(uint32_t x) {
#ifdef __CUDA_ARCH__
  return __clz(x);
#else
  return __builtin_clz(x);
#endif
}

__host__ __device__ uint16_t f32_to_f16(uint32_t x) {
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (ax >= 0x38800000u) {
    uint32_t r = ax - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
  }
  if (ax <= 0x33000000u) return sign;
  uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - e;
  uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) q++;
  return (uint16_t)(sign | q);
}

__host__ __device__ uint32_t f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1fu) return sign | 0x7f800000u | (man ? 0x400000u | (man << 13) : 0u);
  if (exp == 0) {
    if (!man) return sign;
    uint32_t p = 31u - (uint32_t)clz32(man); // value = man 2^-24 = 1.f x 2^(p - 24)
    return sign | ((p + 103u) << 23) | ((man << (23u - p)) & 0x7fffffu);
  }
  return sign | ((exp + 112u) << 23) | (man << 13);
}

__host__ __device__ uint16_t f32_to_bf16(uint32_t x) {
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

__host__ __device__ uint32_t bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  if ((x & 0x7fffffffu) > 0x7f800000u) x |= 0x400000u;
  return x;
}

__host__ __device__ uint32_t widen(uint16_t h, int dtype) {
  return dtype == kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}
__host__ __device__ uint16_t narrow(uint32_t x, int dtype) {
  return dtype == kF16 ? f32_to_f16(x) : f32_to_bf16(x);
}

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
