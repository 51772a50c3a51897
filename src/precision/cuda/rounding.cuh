// The fp32 <-> fp16 / bf16 rounding of the CUDA kernels, written in integer arithmetic exactly
// as the CPU reference (convert_scalar.c), for host and device: shared by convert.cu and
// train.cu so every CUDA result rounds bit-identically to the CPU (the hardware intrinsics
// differ on NaN payloads). Each including file gets its own internal copy.
#ifndef DS_PRECISION_CUDA_ROUNDING_CUH
#define DS_PRECISION_CUDA_ROUNDING_CUH

#include <stdint.h>

namespace {

constexpr int kF32 = 0, kF16 = 1, kBF16 = 2; // ds_dtype numbers
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

} // namespace

#endif // DS_PRECISION_CUDA_ROUNDING_CUH
