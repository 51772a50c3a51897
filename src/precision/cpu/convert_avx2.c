/* The AVX2 + F16C + FMA kernel table: conversions (F16C for fp16, integer rounding for bf16,
 * so denormals are never flushed) and the skinny GEMM reading 16-bit weights directly.
 * Compiled with per-function target attributes so the library still runs on baseline x86-64;
 * only called after CPU detection says these instructions exist. */
#include "precision_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define DS__AVX2 __attribute__((target("avx2,f16c,fma")))
#define DS__AVX2_INLINE __attribute__((target("avx2,f16c,fma"), always_inline)) static inline

DS__AVX2 static void f32_to_f16_avx2(uint16_t *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i h0 = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    __m128i h1 = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128((__m128i *)(dst + i), h0);
    _mm_storeu_si128((__m128i *)(dst + i + 8), h1);
  }
  for (; i < n; i++) dst[i] = ds__f32_to_f16(src[i]);
}

DS__AVX2 static void f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    _mm256_storeu_ps(dst + i + 8,
                     _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i + 8))));
  }
  for (; i < n; i++) dst[i] = ds__f16_to_f32(src[i]);
}

/* 8 fp32 bit patterns -> 8 bf16 patterns in the low halves of 32-bit lanes. */
DS__AVX2_INLINE __m256i bf16_round8(__m256i x) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
  __m256i qnan = _mm256_or_si256(x, _mm256_set1_epi32(0x400000));
  return _mm256_srli_epi32(_mm256_blendv_epi8(r, qnan, nan), 16);
}

DS__AVX2 static void f32_to_bf16_avx2(uint16_t *dst, const float *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i lo = bf16_round8(_mm256_loadu_si256((const __m256i *)(src + i)));
    __m256i hi = bf16_round8(_mm256_loadu_si256((const __m256i *)(src + i + 8)));
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
    _mm256_storeu_si256((__m256i *)(dst + i), packed);
  }
  for (; i < n; i++) dst[i] = ds__f32_to_bf16(src[i]);
}

DS__AVX2_INLINE __m256i bf16_widen8(__m128i h) {
  __m256i x = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
  __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)),
                                   _mm256_set1_epi32(0x7f800000));
  return _mm256_or_si256(x, _mm256_and_si256(nan, _mm256_set1_epi32(0x400000)));
}

DS__AVX2 static void bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i lo = bf16_widen8(_mm_loadu_si128((const __m128i *)(src + i)));
    __m256i hi = bf16_widen8(_mm_loadu_si128((const __m128i *)(src + i + 8)));
    _mm256_storeu_si256((__m256i *)(dst + i), lo);
    _mm256_storeu_si256((__m256i *)(dst + i + 8), hi);
  }
  for (; i < n; i++) dst[i] = ds__bf16_to_f32(src[i]);
}

/* ---- skinny GEMM ---- */

/* 8 weights -> fp32 (NaN payloads are irrelevant to arithmetic, so bf16 is a plain shift). */
DS__AVX2_INLINE __m256 load_w8(const uint16_t *p, int is_f16) {
  __m128i h = _mm_loadu_si128((const __m128i *)p);
  if (is_f16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

DS__AVX2_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

DS__AVX2_INLINE float wval(const uint16_t *p, int is_f16) {
  return is_f16 ? ds__f16_to_f32(*p) : ds__bf16_to_f32(*p);
}

DS__AVX2_INLINE void store_c(float *c, float acc, float alpha, float beta) {
  *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

/* W stored [n][k]: MR rows of A against NR rows of W, dot products over k (MR * NR <= 8
 * accumulators; a single row of A takes 8 rows of W so that eight weight streams and eight
 * FMA chains are in flight, which the bandwidth-bound M = 1 case needs). */
DS__AVX2_INLINE void nk_block(float *c, int64_t ldc, const float *a, int64_t lda,
                              const uint16_t *w, int64_t ldw, int is_f16, int64_t k,
                              float alpha, float beta, int mr, int nr) {
  __m256 acc[2][8];
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 av[2];
    for (int i = 0; i < mr; i++) av[i] = _mm256_loadu_ps(a + i * lda + p);
    for (int j = 0; j < nr; j++) {
      __m256 wv = load_w8(w + j * ldw + p, is_f16);
      for (int i = 0; i < mr; i++) acc[i][j] = _mm256_fmadd_ps(av[i], wv, acc[i][j]);
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) {
      float s = hsum8(acc[i][j]);
      for (int64_t q = p; q < k; q++) s += a[i * lda + q] * wval(w + j * ldw + q, is_f16);
      store_c(c + i * ldc + j, s, alpha, beta);
    }
}

/* Constant block shapes so the accumulators stay in registers: 2 x 1..4, 1 x 8, 1 x 4, 1 x 1. */
DS__AVX2_INLINE void nk_dispatch(float *c, int64_t ldc, const float *a, int64_t lda,
                                 const uint16_t *w, int64_t ldw, int is_f16, int64_t k,
                                 float alpha, float beta, int mr, int nr) {
  if (mr == 2) {
    switch (nr) {
    case 4: nk_block(c, ldc, a, lda, w, ldw, is_f16, k, alpha, beta, 2, 4); return;
    case 3: nk_block(c, ldc, a, lda, w, ldw, is_f16, k, alpha, beta, 2, 3); return;
    case 2: nk_block(c, ldc, a, lda, w, ldw, is_f16, k, alpha, beta, 2, 2); return;
    default: nk_block(c, ldc, a, lda, w, ldw, is_f16, k, alpha, beta, 2, 1); return;
    }
  }
  if (nr == 8) {
    nk_block(c, ldc, a, lda, w, ldw, is_f16, k, alpha, beta, 1, 8);
    return;
  }
  if (nr >= 4) {
    nk_block(c, ldc, a, lda, w, ldw, is_f16, k, alpha, beta, 1, 4);
    c += 4, w += 4 * ldw, nr -= 4;
  }
  for (int j = 0; j < nr; j++)
    nk_block(c + j, ldc, a, lda, w + j * ldw, ldw, is_f16, k, alpha, beta, 1, 1);
}

DS__AVX2 static void skinny_nk(float *c, int64_t ldc, const float *a, int64_t lda,
                               const uint16_t *w, int64_t ldw, int is_f16, int64_t m,
                               int64_t n, int64_t k, float alpha, float beta) {
  int64_t nb = m == 1 ? 8 : 4;
  for (int64_t j = 0; j < n; j += nb) {
    int nr = n - j >= nb ? (int)nb : (int)(n - j);
    for (int64_t i = 0; i < m; i += 2)
      nk_dispatch(c + i * ldc + j, ldc, a + i * lda, lda, w + j * ldw, ldw, is_f16, k, alpha,
                  beta, m - i >= 2 ? 2 : 1, nr);
  }
}

/* W stored [k][n]: MR rows of A times 16 columns of W, broadcasting A. first != 0 applies
 * beta; later k blocks add into C. */
DS__AVX2_INLINE void kn_block(float *c, int64_t ldc, const float *a, int64_t lda,
                              const uint16_t *w, int64_t ldw, int is_f16, int64_t kc,
                              float alpha, float beta, int first, int mr) {
  __m256 acc[4][2];
  for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    __m256 w0 = load_w8(w + p * ldw, is_f16), w1 = load_w8(w + p * ldw + 8, is_f16);
    for (int i = 0; i < mr; i++) {
      __m256 av = _mm256_broadcast_ss(a + i * lda + p);
      acc[i][0] = _mm256_fmadd_ps(av, w0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, w1, acc[i][1]);
    }
  }
  __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(first ? beta : 1.0f);
  for (int i = 0; i < mr; i++)
    for (int h = 0; h < 2; h++) {
      float *out = c + i * ldc + 8 * h;
      __m256 r = _mm256_mul_ps(va, acc[i][h]);
      if (!first || beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(out), r);
      _mm256_storeu_ps(out, r);
    }
}

#define DS__KN_KC 256

DS__AVX2 static void skinny_kn(float *c, int64_t ldc, const float *a, int64_t lda,
                               const uint16_t *w, int64_t ldw, int is_f16, int64_t m,
                               int64_t n, int64_t k, float alpha, float beta) {
  int64_t n16 = n - n % 16;
  for (int64_t p0 = 0; p0 < k || p0 == 0; p0 += DS__KN_KC) {
    int64_t kc = k - p0 < DS__KN_KC ? k - p0 : DS__KN_KC;
    int first = p0 == 0;
    for (int64_t j = 0; j < n16; j += 16)
      for (int64_t i = 0; i < m; i += 4) {
        float *cb = c + i * ldc + j;
        const float *ab = a + i * lda + p0;
        const uint16_t *wb = w + p0 * ldw + j;
        switch (m - i >= 4 ? 4 : (int)(m - i)) {
        case 4: kn_block(cb, ldc, ab, lda, wb, ldw, is_f16, kc, alpha, beta, first, 4); break;
        case 3: kn_block(cb, ldc, ab, lda, wb, ldw, is_f16, kc, alpha, beta, first, 3); break;
        case 2: kn_block(cb, ldc, ab, lda, wb, ldw, is_f16, kc, alpha, beta, first, 2); break;
        default: kn_block(cb, ldc, ab, lda, wb, ldw, is_f16, kc, alpha, beta, first, 1); break;
        }
      }
    if (k == 0) break;
  }
  if (n16 < n) /* the last < 16 columns */
    ds__skinny_scalar(c + n16, ldc, a, lda, w + n16, ldw, 0, is_f16, m, n - n16, k, alpha, beta);
}

DS__AVX2 void ds__skinny_avx2(float *c, int64_t ldc, const float *a, int64_t lda,
                                 const uint16_t *w, int64_t ldw, int w_nk, int is_f16, int64_t m,
                                 int64_t n, int64_t k, float alpha, float beta) {
  if (w_nk)
    skinny_nk(c, ldc, a, lda, w, ldw, is_f16, m, n, k, alpha, beta);
  else
    skinny_kn(c, ldc, a, lda, w, ldw, is_f16, m, n, k, alpha, beta);
}

/* The portable loop, vectorised by the compiler with AVX2's 32-bit multiply (baseline SSE2
 * has none, which made it 4x slower). Also the AVX-512 table's entry. */
DS__AVX2 void ds__f32_to_bf16_sr_avx2(uint16_t *dst, const float *src, size_t n, uint32_t key) {
  ds__f32_to_bf16_sr_loop(dst, src, n, key);
}

const ds__prec_kernels ds__prec_kernels_avx2 = {
    DS_PRECISION_ISA_AVX2, f32_to_f16_avx2,         f16_to_f32_avx2, f32_to_bf16_avx2,
    bf16_to_f32_avx2,      ds__f32_to_bf16_sr_avx2, ds__skinny_avx2};
#else
const ds__prec_kernels ds__prec_kernels_avx2 = {
    DS_PRECISION_ISA_SCALAR, NULL, NULL, NULL, NULL, NULL, NULL}; /* never selected off x86-64 */
#endif
