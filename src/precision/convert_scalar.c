/* The scalar reference of the conversions (fp32 <-> fp16, fp32 <-> bf16) and of the skinny
 * GEMM kernel, and the scalar kernel table. The vector backends must match these bit for bit;
 * the tests compare them exhaustively. */
#include "precision_internal.h"

uint16_t ds__f32_to_f16(float f) {
  uint32_t x = ds__f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* quiet NaN */
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (incl. Inf) -> Inf */
  if (ax >= 0x38800000u) {                                  /* normal fp16: >= 2^-14 */
    uint32_t r = ax - 0x38000000u;                          /* rebias 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);                         /* nearest, ties to even */
    return (uint16_t)(sign | (r >> 13));
  }
  if (ax <= 0x33000000u) return sign; /* <= 2^-25: half of the smallest subnormal or less */
  uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126u - e; /* value = m * 2^(e-150); units of 2^-24 */
  uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) q++; /* may carry into the smallest normal */
  return (uint16_t)(sign | q);
}

float ds__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1fu)
    return ds__bits_f32(sign | 0x7f800000u | (man ? 0x400000u | (man << 13) : 0u));
  if (exp == 0) {
    float v = (float)man * 0x1p-24f; /* exact: man < 2^10 */
    return ds__bits_f32(sign | ds__f32_bits(v));
  }
  return ds__bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t ds__f32_to_bf16(float f) {
  uint32_t x = ds__f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  x += 0x7fffu + ((x >> 16) & 1u); /* nearest, ties to even; overflow carries into Inf */
  return (uint16_t)(x >> 16);
}

float ds__bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  if ((x & 0x7fffffffu) > 0x7f800000u) x |= 0x400000u;
  return ds__bits_f32(x);
}

static void f32_to_f16_scalar(uint16_t *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = ds__f32_to_f16(src[i]);
}
static void f16_to_f32_scalar(float *dst, const uint16_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = ds__f16_to_f32(src[i]);
}
static void f32_to_bf16_scalar(uint16_t *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = ds__f32_to_bf16(src[i]);
}
static void bf16_to_f32_scalar(float *dst, const uint16_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = ds__bf16_to_f32(src[i]);
}

void ds__skinny_scalar(float *c, int64_t ldc, const float *a, int64_t lda, const uint16_t *w,
                       int64_t ldw, int w_nk, int is_f16, int64_t m, int64_t n, int64_t k,
                       float alpha, float beta) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; p++) {
        uint16_t h = w_nk ? w[j * ldw + p] : w[p * ldw + j];
        acc += a[i * lda + p] * (is_f16 ? ds__f16_to_f32(h) : ds__bf16_to_f32(h));
      }
      float *out = &c[i * ldc + j];
      *out = beta == 0.0f ? alpha * acc : alpha * acc + beta * *out;
    }
}

static void f32_to_bf16_sr_scalar(uint16_t *dst, const float *src, size_t n, uint32_t key) {
  ds__f32_to_bf16_sr_loop(dst, src, n, key);
}

const ds__prec_kernels ds__prec_kernels_scalar = {
    DS_PRECISION_ISA_SCALAR, f32_to_f16_scalar,    f16_to_f32_scalar, f32_to_bf16_scalar,
    bf16_to_f32_scalar,      f32_to_bf16_sr_scalar, ds__skinny_scalar};
