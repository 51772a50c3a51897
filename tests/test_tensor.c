/* Tests of the tensor descriptor (validation, numel, contiguity, byte span) and of DLPack
 * import/export. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlpack/dlpack.h>
#include <string.h>

#include "deepseek.h"

static const ds_device cpu = {DS_DEVICE_CPU, 0};
static float buf[64];

static void test_dtypes(void **state) {
  (void)state;
  assert_int_equal(ds_dtype_size(DS_DTYPE_F32), 4);
  assert_int_equal(ds_dtype_size(DS_DTYPE_BF16), 2);
  assert_int_equal(ds_dtype_size(DS_DTYPE_F64), 8);
  assert_int_equal(ds_dtype_size(DS_DTYPE_BOOL), 1);
  assert_string_equal(ds_dtype_name(DS_DTYPE_BF16), "bf16");
  assert_string_equal(ds_dtype_name(DS_DTYPE_U16), "u16");
  assert_int_equal(ds_dtype_size(DS_DTYPE_COUNT), 0);
  assert_string_equal(ds_dtype_name((ds_dtype)-1), "unknown");
  for (int d = 0; d < DS_DTYPE_COUNT; d++) assert_true(ds_dtype_size((ds_dtype)d) > 0);
}

static void test_init_validation(void **state) {
  (void)state;
  ds_tensor t;
  int64_t shape[9] = {2, 3, 1, 1, 1, 1, 1, 1, 1}, neg[2] = {2, -1}, nstr[2] = {-3, 1};
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, shape, NULL, cpu), DS_OK);
  assert_int_equal(ds_tensor_init(NULL, NULL, buf, DS_DTYPE_F32, 2, shape, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_COUNT, 2, shape, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, -1, shape, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 9, shape, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, NULL, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, neg, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, shape, nstr, cpu),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_init(&t, NULL, NULL, DS_DTYPE_F32, 2, shape, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  ds_device bad = {7, 0};
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, shape, NULL, bad),
                   DS_ERR_INVALID_ARG);
}

static void test_init_error_detail(void **state) {
  (void)state;
  ds_context *ctx = NULL;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  ds_tensor t;
  int64_t neg[2] = {2, -1};
  assert_int_equal(ds_tensor_init(&t, ctx, buf, DS_DTYPE_F32, 2, neg, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  assert_string_equal(ds_context_last_error(ctx), "tensor: dimension 1 is -1");
  ds_context_destroy(ctx);
}

static void test_init_overflow(void **state) {
  (void)state;
  ds_tensor t;
  int64_t big[2] = {INT64_C(1) << 40, INT64_C(1) << 40}, zero_str[2] = {0, 0};
  /* Broadcast: addresses one element, but numel * size does not fit. */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, big, zero_str, cpu),
                   DS_ERR_INVALID_ARG);
  int64_t wide[2] = {INT64_C(1) << 61, 1}; /* numel fits, bytes (x4) do not */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, wide, NULL, cpu),
                   DS_ERR_INVALID_ARG);
  int64_t span[1] = {3}, huge_str[1] = {INT64_MAX / 2 + 1}; /* 2 * stride overflows */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_U8, 1, span, huge_str, cpu),
                   DS_ERR_INVALID_ARG);
  /* Empty: NULL data is fine, but the contiguous strides must still fit. */
  int64_t empty[3] = {0, INT64_C(1) << 40, INT64_C(1) << 40};
  assert_int_equal(ds_tensor_init(&t, NULL, NULL, DS_DTYPE_F32, 3, empty, NULL, cpu),
                   DS_ERR_INVALID_ARG);
}

static void test_contiguous(void **state) {
  (void)state;
  ds_tensor t;
  int64_t shape[3] = {2, 3, 4};
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 3, shape, NULL, cpu), DS_OK);
  assert_int_equal(t.strides[0], 12);
  assert_int_equal(t.strides[1], 4);
  assert_int_equal(t.strides[2], 1);
  assert_int_equal(t.shape[3], 0); /* unused entries are zero */
  assert_int_equal(ds_tensor_numel(&t), 24);
  assert_true(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 96);
  assert_ptr_equal(t.data, buf);
}

static void test_transposed(void **state) {
  (void)state;
  ds_tensor t;
  int64_t shape[2] = {4, 3}, strides[2] = {1, 4}; /* a 3x4 matrix, transposed */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F64, 2, shape, strides, cpu), DS_OK);
  assert_int_equal(ds_tensor_numel(&t), 12);
  assert_false(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 12 * 8);
  int64_t cols[2] = {4, 1}, col_str[2] = {3, 1}; /* one column of a 4x3 matrix */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, cols, col_str, cpu), DS_OK);
  assert_false(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), (3 * 3 + 1) * 4);
}

static void test_size_one_dims(void **state) {
  (void)state;
  ds_tensor t;
  int64_t shape[3] = {1, 5, 1}, strides[3] = {999, 1, 42}; /* strides of size-1 dims are moot */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_I32, 3, shape, strides, cpu), DS_OK);
  assert_true(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 20);
}

static void test_broadcast(void **state) {
  (void)state;
  ds_tensor t;
  int64_t shape[2] = {1000, 4}, strides[2] = {0, 1}; /* one row of 4 repeated */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 2, shape, strides, cpu), DS_OK);
  assert_int_equal(ds_tensor_numel(&t), 4000);
  assert_false(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 16);
}

static void test_empty(void **state) {
  (void)state;
  ds_tensor t;
  int64_t shape[2] = {3, 0};
  assert_int_equal(ds_tensor_init(&t, NULL, NULL, DS_DTYPE_F16, 2, shape, NULL, cpu), DS_OK);
  assert_int_equal(ds_tensor_numel(&t), 0);
  assert_true(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 0);
  assert_int_equal(t.strides[0], 1); /* zero-sized dims count as 1 in strides */
}

static void test_scalar(void **state) {
  (void)state;
  ds_tensor t;
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F64, 0, NULL, NULL, cpu), DS_OK);
  assert_int_equal(ds_tensor_numel(&t), 1);
  assert_true(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 8);
  assert_int_equal(ds_tensor_init(&t, NULL, NULL, DS_DTYPE_F64, 0, NULL, NULL, cpu),
                   DS_ERR_INVALID_ARG);
}

/* ---- DLPack ---- */

static void count_release(void *user) { (*(int *)user)++; }

static void test_dlpack_round_trip(void **state) {
  (void)state;
  ds_tensor t, back;
  int64_t shape[2] = {4, 3}, strides[2] = {1, 4};
  ds_device dev = {DS_DEVICE_CUDA, 1}; /* descriptors only: nothing dereferences the data */
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_BF16, 2, shape, strides, dev), DS_OK);
  DLManagedTensor *m = NULL;
  int released = 0;
  assert_int_equal(ds_tensor_to_dlpack(&m, NULL, &t, count_release, &released), DS_OK);
  assert_ptr_equal(m->dl_tensor.data, buf);
  assert_int_equal(m->dl_tensor.device.device_type, kDLCUDA);
  assert_int_equal(m->dl_tensor.device.device_id, 1);
  assert_int_equal(m->dl_tensor.dtype.code, kDLBfloat);
  assert_int_equal(m->dl_tensor.dtype.bits, 16);
  assert_int_equal(m->dl_tensor.dtype.lanes, 1);
  assert_int_equal(m->dl_tensor.byte_offset, 0);
  assert_int_equal(ds_tensor_from_dlpack(&back, NULL, m), DS_OK);
  assert_ptr_equal(back.data, buf);
  assert_int_equal(back.dtype, DS_DTYPE_BF16);
  assert_int_equal(back.ndim, 2);
  assert_memory_equal(back.shape, t.shape, sizeof t.shape);
  assert_memory_equal(back.strides, t.strides, sizeof t.strides);
  assert_int_equal(back.device.type, DS_DEVICE_CUDA);
  assert_int_equal(back.device.index, 1);
  assert_int_equal(released, 0);
  m->deleter(m);
  assert_int_equal(released, 1);
}

static void test_dlpack_no_release(void **state) {
  (void)state;
  ds_tensor t;
  assert_int_equal(ds_tensor_init(&t, NULL, buf, DS_DTYPE_F32, 0, NULL, NULL, cpu), DS_OK);
  DLManagedTensor *m = NULL;
  assert_int_equal(ds_tensor_to_dlpack(&m, NULL, &t, NULL, NULL), DS_OK);
  assert_int_equal(m->dl_tensor.ndim, 0);
  m->deleter(m); /* frees without a callback */
  assert_int_equal(ds_tensor_to_dlpack(NULL, NULL, &t, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_to_dlpack(&m, NULL, NULL, NULL, NULL), DS_ERR_INVALID_ARG);
  t.dtype = 99;
  assert_int_equal(ds_tensor_to_dlpack(&m, NULL, &t, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_null(m);
}

/* A DLManagedTensor as another framework would hand it over. */
static DLManagedTensor hand_built(int64_t *shape, int ndim) {
  DLManagedTensor m;
  memset(&m, 0, sizeof m);
  m.dl_tensor.data = buf;
  m.dl_tensor.device.device_type = kDLCPU;
  m.dl_tensor.ndim = ndim;
  m.dl_tensor.dtype.code = kDLFloat;
  m.dl_tensor.dtype.bits = 32;
  m.dl_tensor.dtype.lanes = 1;
  m.dl_tensor.shape = shape;
  return m;
}

static void test_dlpack_import(void **state) {
  (void)state;
  int64_t shape[2] = {2, 3};
  DLManagedTensor m = hand_built(shape, 2);
  m.dl_tensor.byte_offset = 8; /* strides NULL: compact row-major */
  m.dl_tensor.dtype.code = kDLBfloat;
  m.dl_tensor.dtype.bits = 16;
  ds_tensor t;
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_OK);
  assert_ptr_equal(t.data, (char *)buf + 8);
  assert_int_equal(t.dtype, DS_DTYPE_BF16);
  assert_int_equal(t.strides[0], 3);
  assert_int_equal(t.strides[1], 1);
  assert_true(ds_tensor_is_contiguous(&t));
  assert_int_equal(ds_tensor_nbytes(&t), 12);
  assert_int_equal(t.device.type, DS_DEVICE_CPU);
}

static void test_dlpack_import_rejects(void **state) {
  (void)state;
  int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg_str[2] = {-1, 1};
  ds_tensor t;
  DLManagedTensor m = hand_built(shape, 2);
  m.dl_tensor.dtype.lanes = 2;
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_UNSUPPORTED);
  m = hand_built(shape, 9);
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_UNSUPPORTED);
  m = hand_built(shape, 2);
  m.dl_tensor.strides = neg_str;
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_UNSUPPORTED);
  m = hand_built(shape, 2);
  m.dl_tensor.dtype.code = kDLComplex;
  m.dl_tensor.dtype.bits = 64;
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_UNSUPPORTED);
  m = hand_built(shape, 2);
  m.dl_tensor.device.device_type = kDLVulkan;
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_UNSUPPORTED);
  m = hand_built(NULL, 2);
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_INVALID_ARG);
  m = hand_built(shape, -1);
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, &m), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_from_dlpack(&t, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_tensor_from_dlpack(NULL, NULL, &m), DS_ERR_INVALID_ARG);
}

/* Every dtype and device survives export then import; the DLPack codes are the standard ones. */
static void test_dlpack_all_kinds(void **state) {
  (void)state;
  static const struct {
    uint8_t code, bits;
  } want[DS_DTYPE_COUNT] = {{kDLFloat, 32}, {kDLFloat, 16}, {kDLBfloat, 16}, {kDLFloat, 64},
                            {kDLInt, 8},    {kDLUInt, 8},   {kDLInt, 32},    {kDLInt, 64},
                            {kDLInt, 16},   {kDLUInt, 16},  {6, 8}};
  static const int dl_dev[] = {kDLCPU, kDLCUDA, kDLCUDAHost, kDLOpenCL, kDLCUDAManaged};
  int64_t shape[1] = {4};
  for (int d = 0; d < DS_DTYPE_COUNT; d++) {
    for (int v = 0; v < 5; v++) {
      ds_tensor t, back;
      ds_device dev = {v, 0};
      assert_int_equal(ds_tensor_init(&t, NULL, buf, (ds_dtype)d, 1, shape, NULL, dev), DS_OK);
      DLManagedTensor *m = NULL;
      assert_int_equal(ds_tensor_to_dlpack(&m, NULL, &t, NULL, NULL), DS_OK);
      assert_int_equal(m->dl_tensor.dtype.code, want[d].code);
      assert_int_equal(m->dl_tensor.dtype.bits, want[d].bits);
      assert_int_equal(m->dl_tensor.device.device_type, dl_dev[v]);
      assert_int_equal(ds_tensor_from_dlpack(&back, NULL, m), DS_OK);
      assert_int_equal(back.dtype, d);
      assert_int_equal(back.device.type, v);
      m->deleter(m);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dtypes),
      cmocka_unit_test(test_init_validation),
      cmocka_unit_test(test_init_error_detail),
      cmocka_unit_test(test_init_overflow),
      cmocka_unit_test(test_contiguous),
      cmocka_unit_test(test_transposed),
      cmocka_unit_test(test_size_one_dims),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_scalar),
      cmocka_unit_test(test_dlpack_round_trip),
      cmocka_unit_test(test_dlpack_no_release),
      cmocka_unit_test(test_dlpack_import),
      cmocka_unit_test(test_dlpack_import_rejects),
      cmocka_unit_test(test_dlpack_all_kinds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
