/* Tests of ds_optimizer_step_linear, the weight update that consumes a linear layer's
 * gradient in row tiles as ds_gemm produces them: bit-identical to computing the whole fp32
 * gradient from the same row-block products and stepping it, and within a stated bound of
 * stepping the whole product (SGD and AdamW; fp32 and bf16 state; fp32 and split bf16
 * masters; fp32 and bf16 operands, so ds_gemm's sgemm, widened and skinny paths; tiles that
 * end inside the update's blocks), the tile counted in the optimiser's memory report and
 * in the context's allocator, and bad arguments rejected before anything is updated. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "precision_internal.h"
#include "test_precision_util.h"
#include "test_util.h"

enum { NB = 48, OUT = 200, IN = 77 }; /* OUT x IN = 15400: tiles end inside update blocks */

static int64_t live(ds_context *ctx) { return ds__load(&ctx->mem_live_bytes); }

static ds_optimizer *make(ds_context *ctx, int adam, ds_dtype state, int split, ds_dtype wdt) {
  ds_optimizer *o = ds_test_optimizer(ctx, adam, state, split);
  static float init[OUT * IN];
  for (int i = 0; i < OUT * IN; i++) init[i] = 0.3f * (float)sin(i * 0.37) + 1e-5f * (float)i;
  assert_int_equal(ds_optimizer_add_param(o, "w", init, OUT * IN, wdt), DS_OK);
  return o;
}

static ds_tensor mat(ds_context *ctx, void *data, ds_dtype dt, int64_t r, int64_t c) {
  ds_tensor t;
  int64_t s[2] = {r, c};
  assert_int_equal(ds_tensor_init(&t, ctx, data, dt, 2, s, NULL, (ds_device){DS_DEVICE_CPU, 0}),
                   DS_OK);
  return t;
}

/* dy [NB, OUT] and x [NB, IN] of step s in dtype dt (bf16 data rounded from fp32). */
static void inputs(ds_context *ctx, int s, ds_dtype dt, void *dy, void *x) {
  static float fdy[NB * OUT], fx[NB * IN];
  for (int i = 0; i < NB * OUT; i++) fdy[i] = (float)sin(1.0 + s * 0.7 + i * 1.3) * 0.01f;
  for (int i = 0; i < NB * IN; i++) fx[i] = (float)cos(0.5 + s * 0.3 + i * 0.91);
  assert_int_equal(ds_precision_convert(ctx, dy, dt, fdy, DS_DTYPE_F32, NB * OUT), DS_OK);
  assert_int_equal(ds_precision_convert(ctx, x, dt, fx, DS_DTYPE_F32, NB * IN), DS_OK);
}

/* dW = dy^T x into g [OUT, IN] by ds_gemm, in row blocks of rows (OUT: the whole product). */
static void gradient(ds_context *ctx, float *g, ds_tensor *dy, ds_tensor *x, int64_t rows) {
  for (int64_t r0 = 0; r0 < OUT; r0 += rows) {
    int64_t n = OUT - r0 < rows ? OUT - r0 : rows;
    ds_tensor d = *dy, t = mat(ctx, g + r0 * IN, DS_DTYPE_F32, n, IN);
    d.data = (char *)dy->data + (size_t)r0 * ds_dtype_size(dy->dtype), d.shape[1] = n;
    assert_int_equal(ds_gemm(ctx, &t, &d, x, DS_GEMM_TRANS_A, 1.0f, 0.0f), DS_OK);
  }
}

static void same_working(ds_optimizer *a, ds_optimizer *b, ds_dtype wdt) {
  void *wa = NULL, *wb = NULL;
  assert_int_equal(ds_optimizer_working(a, "w", &wa, NULL), DS_OK);
  assert_int_equal(ds_optimizer_working(b, "w", &wb, NULL), DS_OK);
  assert_memory_equal(wa, wb, (size_t)OUT * IN * ds_dtype_size(wdt));
}

/* 5 steps tiled (tile_rows rows), the same through a whole fp32 gradient built from the same
 * row-block products (the same arithmetic: bit-identical masters and working copies), and
 * through the whole product (OpenBLAS sums a row differently when the call's M differs, so
 * the gradients differ by fp32 rounding; with bf16 state that can flip a stochastic
 * rounding of the momentum): SGD within 1e-6 with fp32 state and 1e-4 with bf16 state, on
 * weights of about 0.5 that the 5 steps move by up to about 0.1, where a tiling mistake
 * moves them by ~1e-2. AdamW normalises each update, so a gradient near zero whose
 * rounding differs can move by up to 2 lr: all but 0.1% of its weights within 1e-4. */
static void compare(int adam, ds_dtype state, int split, ds_dtype wdt, ds_dtype io,
                    int64_t tile_rows) {
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer *tiled = make(ctx, adam, state, split, wdt);
  ds_optimizer *blocks = make(ctx, adam, state, split, wdt);
  ds_optimizer *whole = make(ctx, adam, state, split, wdt);
  static float dy[NB * OUT], x[NB * IN], g[OUT * IN], a[OUT * IN], b[OUT * IN];
  int64_t rows = tile_rows ? tile_rows : 128 * 1024 / IN; /* the header's default */
  if (rows > OUT) rows = OUT;
  for (int s = 0; s < 5; s++) {
    inputs(ctx, s, io, dy, x);
    ds_tensor tdy = mat(ctx, dy, io, NB, OUT), tx = mat(ctx, x, io, NB, IN);
    assert_int_equal(ds_optimizer_step_linear(tiled, "w", &tdy, &tx, tile_rows), DS_OK);
    gradient(ctx, g, &tdy, &tx, rows);
    assert_int_equal(ds_optimizer_step(blocks, "w", g), DS_OK);
    gradient(ctx, g, &tdy, &tx, OUT);
    assert_int_equal(ds_optimizer_step(whole, "w", g), DS_OK);
  }
  assert_int_equal(ds_optimizer_master_read(tiled, "w", a), DS_OK);
  assert_int_equal(ds_optimizer_master_read(blocks, "w", b), DS_OK);
  assert_memory_equal(a, b, sizeof a);
  same_working(tiled, blocks, wdt);
  assert_int_equal(ds_optimizer_master_read(whole, "w", b), DS_OK);
  float bound = state == DS_DTYPE_F32 && !adam ? 1e-6f : 1e-4f;
  int over = 0;
  for (int i = 0; i < OUT * IN; i++) over += !(fabsf(a[i] - b[i]) <= bound);
  assert_true(over <= (adam ? OUT * IN / 1000 : 0));
  if (rows == OUT) same_working(tiled, whole, wdt);
  ds_optimizer_memory m = {.struct_size = sizeof(ds_optimizer_memory)};
  assert_int_equal(ds_optimizer_memory_get(tiled, &m), DS_OK);
  assert_int_equal(m.scratch_bytes, (uint64_t)rows * IN * 4);
  ds_optimizer_destroy(tiled);
  ds_optimizer_destroy(blocks);
  ds_optimizer_destroy(whole);
  ds_context_destroy(ctx);
}

static void test_matches_whole_gradient(void **state) {
  (void)state;
  const int64_t tiles[] = {0, 7, 65, 77, 199, 1000};
  for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++)
    for (int adam = 0; adam < 2; adam++) {
      compare(adam, DS_DTYPE_F32, 0, DS_DTYPE_F32, DS_DTYPE_F32, tiles[t]);
      compare(adam, DS_DTYPE_BF16, 1, DS_DTYPE_BF16, DS_DTYPE_BF16, tiles[t]);
      compare(adam, DS_DTYPE_BF16, 0, DS_DTYPE_BF16, DS_DTYPE_F32, tiles[t]);
    }
}

/* The tile is the only memory the call keeps (fp32 operands: ds_gemm needs no scratch), it
 * is in the report's total and f32 bytes, a smaller tile reuses it, and destroy frees it. */
static void test_tile_accounted(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  static float dy[NB * OUT], x[NB * IN];
  inputs(ctx, 0, DS_DTYPE_F32, dy, x);
  float g[4];
  ds_tensor tg = mat(ctx, g, DS_DTYPE_F32, 2, 2), ta = mat(ctx, x, DS_DTYPE_F32, 2, 2);
  assert_int_equal(ds_gemm(ctx, &tg, &ta, &ta, 0, 1.0f, 0.0f), DS_OK); /* precision state */
  int64_t at_start = live(ctx);
  ds_optimizer *o = make(ctx, 0, DS_DTYPE_BF16, 1, DS_DTYPE_BF16);
  ds_tensor tdy = mat(ctx, dy, DS_DTYPE_F32, NB, OUT), tx = mat(ctx, x, DS_DTYPE_F32, NB, IN);
  ds_optimizer_memory m0 = {.struct_size = sizeof(ds_optimizer_memory)};
  ds_optimizer_memory m1 = {.struct_size = sizeof(ds_optimizer_memory)};
  assert_int_equal(ds_optimizer_memory_get(o, &m0), DS_OK);
  assert_int_equal(m0.scratch_bytes, 0);
  int64_t before = live(ctx);
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &tx, 100), DS_OK);
  assert_int_equal(ds_optimizer_memory_get(o, &m1), DS_OK);
  assert_int_equal(m1.scratch_bytes, 100 * IN * 4);
  assert_int_equal(live(ctx) - before, (int64_t)m1.scratch_bytes);
  assert_int_equal(m1.total_bytes, m0.total_bytes + m1.scratch_bytes);
  assert_int_equal(m1.f32_bytes, m0.f32_bytes + m1.scratch_bytes);
  assert_int_equal(m1.f32_bytes + m1.bf16_bytes + m1.f16_bytes + m1.low16_bytes, m1.total_bytes);
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &tx, 30), DS_OK);
  assert_int_equal(live(ctx) - before, (int64_t)m1.scratch_bytes);
  ds_optimizer_destroy(o);
  assert_int_equal(live(ctx), at_start);
  ds_context_destroy(ctx);
}

/* Bad arguments: a clear status, and the parameter is not touched. */
static void test_errors(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer *o = make(ctx, 1, DS_DTYPE_F32, 0, DS_DTYPE_F32);
  static float dy[NB * OUT], x[NB * IN], before[OUT * IN], after[OUT * IN];
  static int32_t xi[NB * IN];
  ds_tensor tdy = mat(ctx, dy, DS_DTYPE_F32, NB, OUT), tx = mat(ctx, x, DS_DTYPE_F32, NB, IN);
  ds_tensor small = mat(ctx, x, DS_DTYPE_F32, NB, IN - 1);
  ds_tensor shortb = mat(ctx, x, DS_DTYPE_F32, 7, IN);
  ds_tensor ti = mat(ctx, xi, DS_DTYPE_I32, NB, IN);
  assert_int_equal(ds_optimizer_master_read(o, "w", before), DS_OK);
  assert_int_equal(ds_optimizer_step_linear(NULL, "w", &tdy, &tx, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_optimizer_step_linear(o, NULL, &tdy, &tx, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_optimizer_step_linear(o, "w", NULL, &tx, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &tx, -1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_optimizer_step_linear(o, "nope", &tdy, &tx, 0), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &small, 0), DS_ERR_SHAPE);
  assert_non_null(strstr(ds_context_last_error(ctx), "out 200 x in 76"));
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &shortb, 0), DS_ERR_SHAPE);
  ds_tensor flat = tx;
  flat.ndim = 1, flat.shape[0] = NB * IN;
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &flat, 0), DS_ERR_SHAPE);
  assert_int_equal(ds_optimizer_step_linear(o, "w", &tdy, &ti, 0), DS_ERR_DTYPE);
  assert_int_equal(ds_optimizer_master_read(o, "w", after), DS_OK);
  assert_memory_equal(before, after, sizeof before);
  ds_optimizer_destroy(o);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_whole_gradient),
      cmocka_unit_test(test_tile_accounted),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
