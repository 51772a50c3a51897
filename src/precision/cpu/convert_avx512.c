/* The AVX-512 (F + BW) kernel table: conversions 16 elements per vector (integer rounding for
 * bf16, not VCVTNEPS2BF16, which flushes denormals); the skinny GEMM is the AVX2 one. Target
 * attributes per function keep the library runnable on baseline x86-64. */
#include "precision_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define DS__AVX512 __attribute__((target("avx512f,avx512bw,avx2,f16c,fma")))
#define DS__AVX512_INLINE \
  __attribute__((target("avx512f,avx512bw,avx2,f16c,fma"), always_inline)) static inline

DS__AVX512 static void f32_to_f16_avx512(uint16_t *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i h0 = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    __m256i h1 = _mm512_cvtps_ph(_mm512_loadu_ps(src + i + 16), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256((__m256i *)(dst + i), h0);
    _mm256_storeu_si256((__m256i *)(dst + i + 16), h1);
  }
  for (; i < n; i++) dst[i] = ds__f32_to_f16(src[i]);
}

DS__AVX512 static void f16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    _mm512_storeu_ps(dst + i + 16,
                     _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i + 16))));
  }
  for (; i < n; i++) dst[i] = ds__f16_to_f32(src[i]);
}

DS__AVX512_INLINE __m256i bf16_round16(__m512i x) {
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, x, _mm512_set1_epi32(0x400000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

DS__AVX512 static void f32_to_bf16_avx512(uint16_t *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    _mm256_storeu_si256((__m256i *)(dst + i), bf16_round16(_mm512_loadu_si512(src + i)));
    _mm256_storeu_si256((__m256i *)(dst + i + 16),
                        bf16_round16(_mm512_loadu_si512(src + i + 16)));
  }
  for (; i < n; i++) dst[i] = ds__f32_to_bf16(src[i]);
}

DS__AVX512_INLINE __m512i bf16_widen16(__m256i h) {
  __m512i x = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
  __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)),
                                          _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_or_epi32(x, nan, x, _mm512_set1_epi32(0x400000));
}

DS__AVX512 static void bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    _mm512_storeu_si512(dst + i, bf16_widen16(_mm256_loadu_si256((const __m256i *)(src + i))));
    _mm512_storeu_si512(dst + i + 16,
                        bf16_widen16(_mm256_loadu_si256((const __m256i *)(src + i + 16))));
  }
  for (; i < n; i++) dst[i] = ds__bf16_to_f32(src[i]);
}

const ds__prec_kernels ds__prec_kernels_avx512 = {
    DS_PRECISION_ISA_AVX512, f32_to_f16_avx512,       f16_to_f32_avx512, f32_to_bf16_avx512,
    bf16_to_f32_avx512,      ds__f32_to_bf16_sr_avx2, ds__skinny_avx2};
#else
const ds__prec_kernels ds__prec_kernels_avx512 = {
    DS_PRECISION_ISA_SCALAR, NULL, NULL, NULL, NULL, NULL, NULL}; /* never selected off x86-64 */
#endif
