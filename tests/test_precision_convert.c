/* Tests of the precision conversions: every fp16 and bf16 bit pattern through fp32 and back,
 * the scalar reference against the nearest-value definition (ties to even, subnormals,
 * overflow, NaN), every vector level this CPU has against the scalar reference on all 2^k
 * spaced, tie, neighbour and random fp32 patterns, and the public entry point's checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "precision_internal.h"
#include "test_util.h"

/* Value of an fp16 pattern computed from its fields in double (independent of the library). */
static double f16_value(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}
static double bf16_value(uint16_t h) {
  int e = (h >> 7) & 0xff, m = h & 0x7f;
  double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
  return (h & 0x8000) ? -v : v;
}

static void test_f16_all_patterns(void **state) {
  (void)state;
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    float f = ds__f16_to_f32(h);
    double want = f16_value(h);
    if (isnan(want)) {
      assert_true(isnan(f));
      assert_true(ds__f32_bits(f) & 0x400000u);                  /* quiet */
      assert_int_equal(ds__f32_bits(f) >> 31, h >> 15);          /* sign */
      assert_int_equal(ds__f32_to_f16(f), h | 0x200);            /* payload kept */
    } else {
      assert_true((double)f == want);
      assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
      assert_int_equal(ds__f32_to_f16(f), h);
    }
  }
}

static void test_bf16_all_patterns(void **state) {
  (void)state;
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    float f = ds__bf16_to_f32(h);
    double want = bf16_value(h);
    if (isnan(want)) {
      assert_true(isnan(f));
      assert_int_equal(ds__f32_to_bf16(f), h | 0x40);
    } else {
      assert_true((double)f == want);
      assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
      assert_int_equal(ds__f32_to_bf16(f), h);
    }
  }
}

/* h is the correctly rounded (nearest, ties to even) fp16 of finite x: no neighbour of h is
 * nearer, a tie goes to the even mantissa, overflow goes to Inf. */
static void check_nearest(float x, uint16_t h, double (*value)(uint16_t), double overflow) {
  double xd = x, v = value(h);
  if (fabs(xd) >= overflow) {
    assert_true(isinf(v) && (v > 0) == (xd > 0));
    return;
  }
  assert_false(isinf(v));
  double err = fabs(xd - v);
  uint16_t mag = h & 0x7fff;
  for (int d = -1; d <= 1; d += 2) {
    if ((mag == 0 && d < 0)) continue;
    uint16_t nb = (uint16_t)((h & 0x8000) | (uint16_t)(mag + d));
    double vn = value(nb);
    if (isinf(vn) || isnan(vn)) continue;
    double en = fabs(xd - vn);
    assert_true(err <= en);
    if (err == en) assert_int_equal(h & 1, 0);
  }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

/* The fp32 patterns the vector checks run over: a stride through all 2^32 patterns, every
 * pattern near each fp16 and bf16 rounding boundary (ties and their neighbours), and random. */
static size_t build_patterns(uint32_t **out) {
  size_t cap = (1u << 20) + 65536 * 12 + (1u << 20), n = 0;
  uint32_t *p = malloc(cap * sizeof *p);
  assert_non_null(p);
  for (uint64_t x = 0; x < (1ull << 32); x += 4099) p[n++] = (uint32_t)x;
  for (uint32_t h = 0; h < 65536; h++) {
    uint32_t b = h << 16; /* bf16 ties and neighbours */
    p[n++] = b + 0x7fff, p[n++] = b + 0x8000, p[n++] = b + 0x8001, p[n++] = b + 1;
    float f = ds__f16_to_f32((uint16_t)h); /* fp16: halfway to the next pattern */
    uint32_t fb = ds__f32_bits(f);
    double nxt = f16_value((uint16_t)(h + 1));
    if (!isnan(f) && !isinf(f) && !isnan(nxt) && (h & 0x7fff) != 0x7bff) {
      float mid = (float)((f16_value((uint16_t)h) + nxt) / 2); /* exact in fp32 */
      uint32_t mb = ds__f32_bits(mid);
      p[n++] = mb, p[n++] = mb - 1, p[n++] = mb + 1;
    }
    p[n++] = fb, p[n++] = fb + 1, p[n++] = fb - 1;
  }
  while (n < cap) p[n++] = next_u32();
  *out = p;
  return n;
}

static void test_scalar_is_nearest(void **state) {
  (void)state;
  uint32_t *pat = NULL;
  size_t n = build_patterns(&pat);
  for (size_t i = 0; i < n; i++) {
    float x = ds__bits_f32(pat[i]);
    if (isnan(x)) {
      assert_true(isnan(ds__f16_to_f32(ds__f32_to_f16(x))));
      assert_true(isnan(ds__bf16_to_f32(ds__f32_to_bf16(x))));
      continue;
    }
    check_nearest(x, ds__f32_to_f16(x), f16_value, 65520.0);
    check_nearest(x, ds__f32_to_bf16(x), bf16_value, ldexp(256 * 2 - 1, 127 - 8));
  }
  free(pat);
}

static void test_known_ties(void **state) {
  (void)state;
  assert_int_equal(ds__f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        /* tie -> even (down) */
  assert_int_equal(ds__f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);    /* tie -> even (up) */
  assert_int_equal(ds__f32_to_f16(0x1p-25f), 0x0000);               /* half the min subnormal */
  assert_int_equal(ds__f32_to_f16(0x1.000002p-25f), 0x0001);
  assert_int_equal(ds__f32_to_f16(3 * 0x1p-25f), 0x0002);           /* subnormal tie -> even */
  assert_int_equal(ds__f32_to_f16(-0x1.ffcp-15f), 0x8400);          /* rounds up to min normal */
  assert_int_equal(ds__f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(ds__f32_to_f16(65519.996f), 0x7bff);
  assert_int_equal(ds__f32_to_f16(65520.0f), 0x7c00);
  assert_int_equal(ds__f32_to_f16(-INFINITY), 0xfc00);
  assert_int_equal(ds__f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  assert_int_equal(ds__f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  assert_int_equal(ds__f32_to_bf16(0x1.fffffep127f), 0x7f80);        /* overflow -> Inf */
  assert_int_equal(ds__f32_to_bf16(ds__bits_f32(0x00008000u)), 0x0000); /* denormal tie */
  assert_int_equal(ds__f32_to_bf16(ds__bits_f32(0x00018000u)), 0x0002);
  assert_int_equal(ds__f32_to_bf16(ds__bits_f32(0x7f800001u)), 0x7fc0); /* sNaN -> qNaN */
  assert_int_equal(ds__f32_to_f16(ds__bits_f32(0xff800001u)), 0xfe00);
}

/* Every vector level the CPU has equals the scalar reference bit for bit, at every length
 * remainder (tails) and unaligned offsets. */
static void check_level(const ds__prec_kernels *k, const uint32_t *pat, size_t n) {
  uint16_t *h = malloc(n * 2 + 64), *ref = malloc(n * 2 + 64);
  float *f = malloc(n * 4 + 64);
  assert_true(h && ref && f);
  const float *src = (const float *)pat;
  k->f32_to_f16(h, src, n);
  ds__prec_kernels_scalar.f32_to_f16(ref, src, n);
  assert_memory_equal(h, ref, n * 2);
  k->f32_to_bf16(h + 1, src + 1, n - 1); /* unaligned */
  ds__prec_kernels_scalar.f32_to_bf16(ref + 1, src + 1, n - 1);
  assert_memory_equal(h + 1, ref + 1, (n - 1) * 2);
  uint16_t all[65536 + 8];
  for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
  float *fr = malloc(65536 * 4);
  assert_non_null(fr);
  for (int bf = 0; bf < 2; bf++) {
    (bf ? k->bf16_to_f32 : k->f16_to_f32)(f, all, 65536);
    (bf ? ds__prec_kernels_scalar.bf16_to_f32 : ds__prec_kernels_scalar.f16_to_f32)(fr, all, 65536);
    assert_memory_equal(f, fr, 65536 * 4);
  }
  for (size_t len = 0; len < 70; len++) { /* every tail length */
    k->f32_to_f16(h, src + 3, len);
    ds__prec_kernels_scalar.f32_to_f16(ref, src + 3, len);
    assert_memory_equal(h, ref, len * 2);
    k->bf16_to_f32(f, all + 5, len);
    ds__prec_kernels_scalar.bf16_to_f32(fr, all + 5, len);
    assert_memory_equal(f, fr, len * 4);
  }
  free(fr);
  free(h);
  free(ref);
  free(f);
}

static void test_vector_levels_match_scalar(void **state) {
  (void)state;
  uint32_t *pat = NULL;
  size_t n = build_patterns(&pat);
  ds_precision_isa best = ds__prec_cpu_isa();
  int tested = 0;
  for (int isa = DS_PRECISION_ISA_SCALAR; isa <= DS_PRECISION_ISA_AVX512; isa++) {
    const ds__prec_kernels *k = ds__prec_kernels_for((ds_precision_isa)isa);
    if ((int)k->isa != isa) {
      printf("precision: %s kernels not available on this CPU, not tested\n",
             ds_precision_isa_name((ds_precision_isa)isa));
      continue;
    }
    check_level(k, pat, n);
    tested++;
  }
  assert_int_equal(tested, (int)best);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  /* the AVX-512 table is compiled in and distinct whether or not this CPU can run it */
  assert_int_equal(ds__prec_kernels_avx512.isa, DS_PRECISION_ISA_AVX512);
  assert_true(ds__prec_kernels_avx512.f32_to_f16 != ds__prec_kernels_scalar.f32_to_f16);
  assert_true(ds__prec_kernels_avx512.bf16_to_f32 != ds__prec_kernels_avx2.bf16_to_f32);
#endif
  free(pat);
}

#if defined(__x86_64__)
/* MXCSR's denormals-are-zero and flush-to-zero bits must not change any result. */
static void test_daz_ftz_ignored(void **state) {
  (void)state;
  uint32_t pat[] = {0x00000001u, 0x007fffffu, 0x33800001u, 0x387fc000u, 0x80400000u, 0x0000c000u};
  size_t n = sizeof pat / sizeof pat[0];
  unsigned int saved = _mm_getcsr();
  for (int isa = DS_PRECISION_ISA_SCALAR; isa <= (int)ds__prec_cpu_isa(); isa++) {
    const ds__prec_kernels *k = ds__prec_kernels_for((ds_precision_isa)isa);
    uint16_t want16[32], wantb[32], got16[32], gotb[32];
    float src[32], back[32], wantback[32];
    for (size_t i = 0; i < 32; i++) src[i] = ds__bits_f32(pat[i % n]);
    uint16_t sub16[32];
    for (size_t i = 0; i < 32; i++) sub16[i] = (uint16_t)(1 + 37 * i) & 0x83ff;
    k->f32_to_f16(want16, src, 32);
    k->f32_to_bf16(wantb, src, 32);
    k->f16_to_f32(wantback, sub16, 32);
    _mm_setcsr(saved | 0x8040u); /* FTZ | DAZ */
    k->f32_to_f16(got16, src, 32);
    k->f32_to_bf16(gotb, src, 32);
    k->f16_to_f32(back, sub16, 32);
    _mm_setcsr(saved);
    assert_memory_equal(want16, got16, sizeof got16);
    assert_memory_equal(wantb, gotb, sizeof gotb);
    assert_memory_equal(wantback, back, sizeof back);
  }
}
#endif

static void test_public_convert(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  float src[100], back[100];
  uint16_t h[100], b[100];
  for (int i = 0; i < 100; i++) src[i] = (float)(i - 50) * 0.37f;
  assert_int_equal(ds_precision_convert(ctx, h, DS_DTYPE_F16, src, DS_DTYPE_F32, 100), DS_OK);
  assert_int_equal(ds_precision_convert(ctx, back, DS_DTYPE_F32, h, DS_DTYPE_F16, 100), DS_OK);
  for (int i = 0; i < 100; i++) assert_true(fabsf(back[i] - src[i]) <= fabsf(src[i]) * 0x1p-11f);
  assert_int_equal(ds_precision_convert(ctx, b, DS_DTYPE_BF16, h, DS_DTYPE_F16, 100), DS_OK);
  for (int i = 0; i < 100; i++) assert_int_equal(b[i], ds__f32_to_bf16(ds__f16_to_f32(h[i])));
  assert_int_equal(ds_precision_convert(ctx, back, DS_DTYPE_F32, back, DS_DTYPE_F32, 100), DS_OK);
  assert_int_equal(ds_precision_convert(ctx, h, DS_DTYPE_I32, src, DS_DTYPE_F32, 4), DS_ERR_DTYPE);
  assert_non_null(strstr(ds_context_last_error(ctx), "i32"));
  assert_int_equal(ds_precision_convert(ctx, NULL, DS_DTYPE_F16, src, DS_DTYPE_F32, 4),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_precision_convert(ctx, NULL, DS_DTYPE_F16, NULL, DS_DTYPE_F32, 0), DS_OK);
  assert_int_equal(ds_precision_convert(NULL, h, DS_DTYPE_F16, src, DS_DTYPE_F32, 4),
                   DS_ERR_INVALID_ARG);
  /* forcing a level: never above what the CPU has, scalar always possible */
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_PRECISION_ISA, DS_PRECISION_ISA_SCALAR),
                   DS_OK);
  assert_int_equal(ds_precision_isa_in_use(ctx), DS_PRECISION_ISA_SCALAR);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_PRECISION_ISA, DS_PRECISION_ISA_AVX512),
                   DS_OK);
  assert_int_equal(ds_precision_isa_in_use(ctx), ds__prec_cpu_isa());
  printf("precision: CPU kernel level %s\n", ds_precision_isa_name(ds__prec_cpu_isa()));
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f16_all_patterns),
      cmocka_unit_test(test_bf16_all_patterns),
      cmocka_unit_test(test_known_ties),
      cmocka_unit_test(test_scalar_is_nearest),
      cmocka_unit_test(test_vector_levels_match_scalar),
#if defined(__x86_64__)
      cmocka_unit_test(test_daz_ftz_ignored),
#endif
      cmocka_unit_test(test_public_convert),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
