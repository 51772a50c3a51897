/* Tests of the precision module's CUDA path. Everywhere: the device rounding code, run on the
 * host, equals the CPU reference bit for bit; CUDA operands without a GPU give a clear status;
 * ds_precision_convert_tensor on host tensors. With a GPU (required when DS_REQUIRE_GPU=1):
 * device conversions of every 16-bit pattern and a fp32 sample, and cuBLAS GEMM against the
 * CPU path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "cuda_backend.h"
#include "precision_internal.h"
#include "test_util.h"

static int gpu_required(void) {
  const char *e = getenv("DS_REQUIRE_GPU");
  return e && !strcmp(e, "1");
}

static uint64_t rng = 0x853c49e6748fea9bull;
static uint32_t next_u32(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (uint32_t)(rng >> 13);
}

/* fp32 patterns: a stride through all 2^32, the bf16/fp16 halfway points and neighbours, random */
static size_t patterns(uint32_t **out) {
  size_t cap = (1u << 20) + 65536 * 6 + (1u << 18), n = 0;
  uint32_t *p = malloc(cap * sizeof *p);
  assert_non_null(p);
  for (uint64_t x = 0; x < (1ull << 32); x += 4099) p[n++] = (uint32_t)x;
  for (uint32_t h = 0; h < 65536; h++) {
    uint32_t b = h << 16, f = ds__f32_bits(ds__f16_to_f32((uint16_t)h)) + 0x1000u; /* fp16 tie */
    p[n++] = b + 0x8000u, p[n++] = b + 0x7fffu, p[n++] = b + 0x8001u;
    p[n++] = f, p[n++] = f - 1, p[n++] = f + 1;
  }
  while (n < cap) p[n++] = next_u32();
  *out = p;
  return n;
}

static uint16_t ref_narrow(uint32_t x, int dt) {
  return dt == DS_DTYPE_F16 ? ds__f32_to_f16(ds__bits_f32(x)) : ds__f32_to_bf16(ds__bits_f32(x));
}
static uint32_t ref_widen(uint16_t h, int dt) {
  return ds__f32_bits(dt == DS_DTYPE_F16 ? ds__f16_to_f32(h) : ds__bf16_to_f32(h));
}

static void test_device_rounding_code_on_host(void **state) {
  (void)state;
#if DS_HAVE_CUDA
  uint32_t *p = NULL;
  size_t n = patterns(&p);
  assert_int_equal(ds__cuda_convert_host_check(p, n, ref_narrow, ref_widen), 0);
  free(p);
#else
  (void)ref_narrow, (void)ref_widen, (void)patterns;
  printf("precision: built without CUDA, device rounding code not compiled\n");
#endif
}

static ds_tensor t2(void *data, ds_dtype dt, int64_t r, int64_t c, int dev) {
  ds_tensor t;
  int64_t shape[2] = {r, c};
  ds_device d = {dev, 0};
  assert_int_equal(ds_tensor_init(&t, NULL, data, dt, 2, shape, NULL, d), DS_OK);
  return t;
}

static void test_cuda_operands_without_gpu(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  if (ds__cuda_present(ctx)) {
    printf("precision: a CUDA device is present; the no-GPU statuses are not tested here\n");
    ds_context_destroy(ctx);
    return;
  }
  float a[6] = {1, 2, 3, 4, 5, 6}, c[4];
  ds_tensor ta = t2(a, DS_DTYPE_F32, 2, 3, DS_DEVICE_CUDA), tb = t2(a, DS_DTYPE_F32, 3, 2, DS_DEVICE_CUDA);
  ds_tensor tc = t2(c, DS_DTYPE_F32, 2, 2, DS_DEVICE_CUDA);
  ds_status want = DS_HAVE_CUDA ? DS_ERR_UNAVAILABLE : DS_ERR_UNSUPPORTED;
  assert_int_equal(ds_gemm(ctx, &tc, &ta, &tb, 0, 1, 0), want);
  printf("precision: CUDA gemm without a GPU: %s\n", ds_context_last_error(ctx));
  tc.device.type = DS_DEVICE_CPU;
  assert_int_equal(ds_gemm(ctx, &tc, &ta, &tb, 0, 1, 0), DS_ERR_UNSUPPORTED);
  assert_non_null(strstr(ds_context_last_error(ctx), "device"));
  ds_tensor s = t2(a, DS_DTYPE_F32, 2, 3, DS_DEVICE_CUDA);
  uint16_t h[6];
  ds_tensor d = t2(h, DS_DTYPE_F16, 3, 2, DS_DEVICE_CUDA);
  assert_int_equal(ds_precision_convert_tensor(ctx, &d, &s), want);
  ds_context_destroy(ctx);
}

static void test_convert_tensor_host(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  float a[6] = {1.5f, -2, 65519, 65520, 1e-8f, 3}, back[6];
  uint16_t h[6];
  ds_tensor s = t2(a, DS_DTYPE_F32, 2, 3, DS_DEVICE_CPU), d = t2(h, DS_DTYPE_F16, 3, 2, DS_DEVICE_CPU);
  assert_int_equal(ds_precision_convert_tensor(ctx, &d, &s), DS_OK);
  for (int i = 0; i < 6; i++) assert_int_equal(h[i], ds__f32_to_f16(a[i]));
  ds_tensor b = t2(back, DS_DTYPE_F32, 6, 1, DS_DEVICE_CPU);
  assert_int_equal(ds_precision_convert_tensor(ctx, &b, &d), DS_OK);
  assert_true(back[0] == 1.5f && isinf(back[3]));
  ds_tensor small = t2(back, DS_DTYPE_F32, 1, 5, DS_DEVICE_CPU);
  assert_int_equal(ds_precision_convert_tensor(ctx, &small, &d), DS_ERR_SHAPE);
  s.strides[0] = 4;
  assert_int_equal(ds_precision_convert_tensor(ctx, &d, &s), DS_ERR_INVALID_ARG);
  ds_context_destroy(ctx);
}

#if DS_HAVE_CUDA
static void *dev_copy(const void *src, size_t bytes) {
  void *p = NULL;
  assert_int_equal(ds__cuda_test_alloc(&p, bytes), DS_OK);
  if (src) assert_int_equal(ds__cuda_test_copy(p, src, bytes, 0), DS_OK);
  return p;
}

static void gpu_conversions(ds_context *ctx) {
  uint32_t *p = NULL;
  size_t n = patterns(&p);
  uint16_t *h = malloc(n * 2), *ref = malloc(n * 2);
  assert_true(h && ref);
  void *dsrc = dev_copy(p, n * 4), *ddst = dev_copy(NULL, n * 4);
  for (int dt = DS_DTYPE_F16; dt <= DS_DTYPE_BF16; dt++) {
    ds_tensor s = t2(dsrc, DS_DTYPE_F32, 1, (int64_t)n, DS_DEVICE_CUDA);
    ds_tensor d = t2(ddst, (ds_dtype)dt, 1, (int64_t)n, DS_DEVICE_CUDA);
    assert_int_equal(ds_precision_convert_tensor(ctx, &d, &s), DS_OK);
    assert_int_equal(ds__cuda_test_copy(h, ddst, n * 2, 1), DS_OK);
    ds_precision_convert(ctx, ref, (ds_dtype)dt, p, DS_DTYPE_F32, n);
    assert_memory_equal(h, ref, n * 2);
  }
  ds__cuda_test_free(dsrc), ds__cuda_test_free(ddst);
  free(p), free(h), free(ref);
}

static void gpu_gemm(ds_context *ctx) {
  enum { M = 96, N = 80, K = 64 };
  float a[M * K], b[N * K], c[M * N], ref[M * N];
  uint16_t a16[M * K], b16[N * K];
  for (int i = 0; i < M * K; i++) a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
  for (int i = 0; i < N * K; i++) b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
  for (int dt = DS_DTYPE_F32; dt <= DS_DTYPE_BF16; dt++) {
    size_t es = dt == DS_DTYPE_F32 ? 4 : 2;
    const void *ha = a, *hb = b;
    if (dt != DS_DTYPE_F32) {
      ds_precision_convert(ctx, a16, (ds_dtype)dt, a, DS_DTYPE_F32, M * K);
      ds_precision_convert(ctx, b16, (ds_dtype)dt, b, DS_DTYPE_F32, N * K);
      ha = a16, hb = b16;
    }
    void *da = dev_copy(ha, M * K * es), *db = dev_copy(hb, N * K * es), *dc = dev_copy(NULL, M * N * 4);
    ds_tensor ta = t2(da, (ds_dtype)dt, M, K, DS_DEVICE_CUDA), tb = t2(db, (ds_dtype)dt, N, K, DS_DEVICE_CUDA);
    ds_tensor tc = t2(dc, DS_DTYPE_F32, M, N, DS_DEVICE_CUDA);
    assert_int_equal(ds_gemm(ctx, &tc, &ta, &tb, DS_GEMM_TRANS_B, 1.0f, 0.0f), DS_OK);
    assert_int_equal(ds__cuda_test_copy(c, dc, sizeof c, 1), DS_OK);
    ta = t2((void *)ha, (ds_dtype)dt, M, K, DS_DEVICE_CPU), tb = t2((void *)hb, (ds_dtype)dt, N, K, DS_DEVICE_CPU);
    tc = t2(ref, DS_DTYPE_F32, M, N, DS_DEVICE_CPU);
    assert_int_equal(ds_gemm(ctx, &tc, &ta, &tb, DS_GEMM_TRANS_B, 1.0f, 0.0f), DS_OK);
    for (int i = 0; i < M * N; i++) assert_true(fabsf(c[i] - ref[i]) <= 1e-3f * (1 + fabsf(ref[i])));
    ds__cuda_test_free(da), ds__cuda_test_free(db), ds__cuda_test_free(dc);
  }
}
#endif

static void test_gpu(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  if (!ds__cuda_present(ctx)) {
    printf("precision: no CUDA device: GPU tests skipped (the CPU path is tested above)\n");
    ds_context_destroy(ctx);
    if (gpu_required()) fail_msg("DS_REQUIRE_GPU=1 but no CUDA device is present");
    return;
  }
#if DS_HAVE_CUDA
  gpu_conversions(ctx);
  gpu_gemm(ctx);
#endif
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_device_rounding_code_on_host),
      cmocka_unit_test(test_cuda_operands_without_gpu),
      cmocka_unit_test(test_convert_tensor_host),
      cmocka_unit_test(test_gpu),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
