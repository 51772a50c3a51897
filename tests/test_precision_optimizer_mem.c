/* Tests of the optimisers' memory-saving storage: split masters (bf16 high plane = working
 * copy, exact fp32 master), bf16 state with stochastic rounding (convergence against fp32
 * state on a small least-squares problem), 16-bit scaled gradients with the loss scaler's
 * check-only unscale, and memory accounting equal to what the context's allocator hands
 * out. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "precision_internal.h"
#include "test_precision_util.h"
#include "test_util.h"

#define NP 1000

static float grad_v(int s, int i) { return (float)sin(1.0 + s * 0.7 + i * 1.3); }

/* The split master is the same fp32 master: bit-identical to the separate layout after the
 * same steps; its working copy is the master's high half (truncation). */
static void split_vs_separate(int adam) {
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer *sep = ds_test_optimizer(ctx, adam, DS_DTYPE_F32, 0),
               *spl = ds_test_optimizer(ctx, adam, DS_DTYPE_F32, 1);
  static float init[NP], g[NP], a[NP], b[NP];
  for (int i = 0; i < NP; i++) init[i] = 0.3f * (float)sin(i * 0.37) + 1e-3f * (float)i;
  assert_int_equal(ds_optimizer_add_param(sep, "w", init, NP, DS_DTYPE_BF16), DS_OK);
  assert_int_equal(ds_optimizer_add_param(spl, "w", init, NP, DS_DTYPE_BF16), DS_OK);
  for (int s = 0; s < 20; s++) {
    for (int i = 0; i < NP; i++) g[i] = grad_v(s, i);
    assert_int_equal(ds_optimizer_step(sep, "w", g), DS_OK);
    assert_int_equal(ds_optimizer_step(spl, "w", g), DS_OK);
  }
  float *m = NULL;
  void *work = NULL;
  ds_dtype wd;
  assert_int_equal(ds_optimizer_master(spl, "w", &m), DS_ERR_UNSUPPORTED);
  assert_int_equal(ds_optimizer_master_read(sep, "w", a), DS_OK);
  assert_int_equal(ds_optimizer_master_read(spl, "w", b), DS_OK);
  assert_memory_equal(a, b, sizeof a);
  assert_int_equal(ds_optimizer_working(spl, "w", &work, &wd), DS_OK);
  assert_int_equal(wd, DS_DTYPE_BF16);
  for (int i = 0; i < NP; i++) {
    uint16_t hi = ((const uint16_t *)work)[i];
    assert_int_equal(hi, ds__f32_bits(b[i]) >> 16);
    /* truncation: within one bf16 ulp of the master, toward zero */
    float w = ds__bf16_to_f32(hi);
    assert_true(fabsf(w) <= fabsf(b[i]) && fabsf(b[i] - w) <= fabsf(b[i]) * 0x1p-7f);
  }
  ds_optimizer_destroy(sep);
  ds_optimizer_destroy(spl);
  ds_context_destroy(ctx);
}

static void test_split_master(void **state) {
  (void)state;
  split_vs_separate(0);
  split_vs_separate(1);
  /* only bf16 parameters split: an fp16 one keeps an fp32 array and a rounded copy */
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer *o = ds_test_optimizer(ctx, 0, DS_DTYPE_F32, 1);
  float w[4] = {1, 2, 3, 4}, *m = NULL;
  assert_int_equal(ds_optimizer_add_param(o, "h", w, 4, DS_DTYPE_F16), DS_OK);
  assert_int_equal(ds_optimizer_master(o, "h", &m), DS_OK);
  assert_true(m[3] == 4.0f);
  ds_optimizer_destroy(o);
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.split_master = 2;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_ERR_INVALID_ARG);
  oo.split_master = 0, oo.state_dtype = DS_DTYPE_F16;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_ERR_DTYPE);
  ds_context_destroy(ctx);
}

/* A 16-bit gradient of a loss scaled by 1024 gives the same update as the fp32 gradient
 * (the values are exact in fp16 and bf16, the unscale a power of two). */
static void test_scaled_16bit_gradients(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  static float g[NP], ref[NP], got[NP];
  static uint16_t g16[NP], gb16[NP];
  ds_optimizer *o32 = ds_test_optimizer(ctx, 1, DS_DTYPE_F32, 0),
               *o16 = ds_test_optimizer(ctx, 1, DS_DTYPE_F32, 0);
  ds_optimizer *ob = ds_test_optimizer(ctx, 1, DS_DTYPE_F32, 0);
  for (int i = 0; i < NP; i++) g[i] = 0.5f;
  assert_int_equal(ds_optimizer_add_param(o32, "w", g, NP, DS_DTYPE_F32), DS_OK);
  assert_int_equal(ds_optimizer_add_param(o16, "w", g, NP, DS_DTYPE_F32), DS_OK);
  assert_int_equal(ds_optimizer_add_param(ob, "w", g, NP, DS_DTYPE_F32), DS_OK);
  ds_loss_scaler *sc = NULL;
  assert_int_equal(ds_loss_scaler_create(&sc, ctx, NULL), DS_OK);
  for (int s = 0; s < 5; s++) {
    for (int i = 0; i < NP; i++) {
      g[i] = (float)((i * 7 + s * 13) % 129 - 64) / 64.0f;
      g16[i] = ds__f32_to_f16(g[i] * 1024.0f), gb16[i] = ds__f32_to_bf16(g[i] * 1024.0f);
    }
    int inf = -1;
    assert_int_equal(ds_loss_scaler_unscale(sc, NULL, g16, DS_DTYPE_F16, NP, &inf), DS_OK);
    assert_int_equal(inf, 0);
    assert_int_equal(ds_optimizer_step(o32, "w", g), DS_OK);
    assert_int_equal(ds_optimizer_step_scaled(o16, "w", g16, DS_DTYPE_F16, 1024.0f), DS_OK);
    assert_int_equal(ds_optimizer_step_scaled(ob, "w", gb16, DS_DTYPE_BF16, 1024.0f), DS_OK);
  }
  assert_int_equal(ds_optimizer_master_read(o32, "w", ref), DS_OK);
  assert_int_equal(ds_optimizer_master_read(o16, "w", got), DS_OK);
  assert_memory_equal(ref, got, sizeof ref);
  assert_int_equal(ds_optimizer_master_read(ob, "w", got), DS_OK);
  assert_memory_equal(ref, got, sizeof ref);
  /* the check-only unscale sees an overflow in a 16-bit gradient; the step is skipped */
  g16[NP / 2] = 0x7c00; /* fp16 +Inf */
  int inf = 0, skip = 0;
  assert_int_equal(ds_loss_scaler_unscale(sc, NULL, g16, DS_DTYPE_F16, NP, &inf), DS_OK);
  assert_int_equal(inf, 1);
  assert_int_equal(ds_loss_scaler_update(sc, 0, &skip), DS_OK);
  assert_int_equal(skip, 1);
  assert_true(ds_loss_scaler_scale(sc) == 32768.0f);
  assert_int_equal(ds_optimizer_step_scaled(o16, "w", g16, DS_DTYPE_F16, 0.0f),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_optimizer_step_scaled(o16, "w", g16, DS_DTYPE_F16, NAN),
                   DS_ERR_INVALID_ARG);
  assert_int_equal(ds_optimizer_step_scaled(o16, "w", g16, DS_DTYPE_I32, 1.0f), DS_ERR_DTYPE);
  assert_int_equal(ds_optimizer_step_scaled(o16, "w", NULL, DS_DTYPE_F16, 1.0f),
                   DS_ERR_INVALID_ARG);
  ds_loss_scaler_destroy(sc);
  ds_optimizer_destroy(o32);
  ds_optimizer_destroy(o16);
  ds_optimizer_destroy(ob);
  ds_context_destroy(ctx);
}

/* Least squares, 64 samples x 16 features, w* known: loss = mean (A w - b)^2 / 2, the
 * gradient computed from the working copy (as a forward/backward pass would). */
#define LS_M 64
#define LS_D 16

static double ls_loss_grad(const float *w, float *g) {
  double loss = 0, gd[LS_D] = {0};
  for (int r = 0; r < LS_M; r++) {
    double pred = 0, target = 0;
    for (int c = 0; c < LS_D; c++) {
      double a = sin(0.3 + r * 1.7 + c * 0.9);
      pred += a * w[c];
      target += a * (0.5 + 0.1 * c);
    }
    double e = pred - target;
    loss += 0.5 * e * e / LS_M;
    for (int c = 0; c < LS_D; c++) gd[c] += e * sin(0.3 + r * 1.7 + c * 0.9) / LS_M;
  }
  for (int c = 0; c < LS_D && g; c++) g[c] = (float)gd[c];
  return loss;
}

/* Final loss after `steps` steps. mode 0: all fp32; 1: bf16 state; 2: bf16 state and bf16
 * working weights (split master). */
static double ls_train(int adam, int mode, int steps, float *final_master) {
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.kind = adam ? DS_OPT_ADAMW : DS_OPT_SGD;
  oo.lr = adam ? 0.02f : 0.05f;
  oo.state_dtype = mode ? DS_DTYPE_BF16 : DS_DTYPE_F32;
  oo.split_master = mode == 2;
  ds_optimizer *o = NULL;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_OK);
  float w[LS_D] = {0}, g[LS_D], wf[LS_D];
  ds_dtype wdt = mode == 2 ? DS_DTYPE_BF16 : DS_DTYPE_F32;
  assert_int_equal(ds_optimizer_add_param(o, "w", w, LS_D, wdt), DS_OK);
  for (int s = 0; s < steps; s++) {
    void *work = NULL;
    assert_int_equal(ds_optimizer_working(o, "w", &work, NULL), DS_OK);
    assert_int_equal(ds_precision_convert(ctx, wf, DS_DTYPE_F32, work, wdt, LS_D), DS_OK);
    ls_loss_grad(wf, g);
    assert_int_equal(ds_optimizer_step(o, "w", g), DS_OK);
  }
  assert_int_equal(ds_optimizer_master_read(o, "w", final_master), DS_OK);
  ds_optimizer_destroy(o);
  ds_context_destroy(ctx);
  return ls_loss_grad(final_master, NULL);
}

static void test_bf16_state_converges(void **state) {
  (void)state;
  float w0[LS_D] = {0}, a[LS_D], b[LS_D];
  double start = ls_loss_grad(w0, NULL);
  for (int adam = 0; adam < 2; adam++) {
    double l32 = ls_train(adam, 0, 400, a), lst = ls_train(adam, 1, 400, b);
    double lmx = ls_train(adam, 2, 400, b);
    printf("precision: least squares %s, loss %.3g at start, after 400 steps: fp32 %.3g, "
           "bf16 state %.3g, bf16 state + bf16 weights (split master) %.3g\n",
           adam ? "AdamW" : "SGD-momentum", start, l32, lst, lmx);
    assert_true(l32 < 1e-6 * start);
    /* bf16 state alone: the noise of its rounding (2^-8 of the state) slows the last digits
     * only; with bf16 working weights too the gradient is taken at weights within 2^-7 of
     * the master, which sets a floor far below the start but above fp32's */
    assert_true(lst < 1e-9 * start);
    assert_true(lmx < 1e-4 * start);
    /* reproducible: the stochastic rounding is a hash, not a clock */
    float b2[LS_D];
    assert_true(ls_train(adam, 2, 400, b2) == lmx);
    assert_memory_equal(b, b2, sizeof b);
  }
}

/* The bytes the context's allocator has handed out (payloads, as the library counts them). */
static int64_t live(ds_context *ctx) { return ds__load(&ctx->mem_live_bytes); }

/* What memory_get reports grows by exactly what the allocator handed out (plus the name). */
static void accounting(ds_context *ctx, int adam, ds_dtype st, int split, ds_dtype wdt) {
  ds_optimizer *o = ds_test_optimizer(ctx, adam, st, split);
  static float w[3000];
  assert_int_equal(ds_optimizer_add_param(o, "x", w, 10, wdt), DS_OK); /* params array */
  ds_optimizer_memory m0 = {.struct_size = sizeof(ds_optimizer_memory)};
  ds_optimizer_memory m1 = {.struct_size = sizeof(ds_optimizer_memory)};
  assert_int_equal(ds_optimizer_memory_get(o, &m0), DS_OK);
  int64_t before = live(ctx);
  assert_int_equal(ds_optimizer_add_param(o, "w", w, 3000, wdt), DS_OK);
  assert_int_equal(ds_optimizer_memory_get(o, &m1), DS_OK);
  assert_int_equal(live(ctx) - before, m1.total_bytes - m0.total_bytes + 2); /* + "w\0" */
  assert_int_equal(m1.total_bytes, m1.f32_bytes + m1.bf16_bytes + m1.f16_bytes + m1.low16_bytes);
  assert_int_equal(m1.total_bytes, m1.master_bytes + m1.state_bytes + m1.working_bytes);
  uint64_t n = 3010, states = adam ? 2 : 1, ss = st == DS_DTYPE_BF16 ? 2 : 4;
  assert_int_equal(m1.master_bytes, 4 * n);
  assert_int_equal(m1.state_bytes, ss * states * n);
  assert_int_equal(m1.fp32_equivalent, 4 * n * (1 + states));
  int sp = split && wdt == DS_DTYPE_BF16;
  assert_int_equal(m1.working_bytes, wdt == DS_DTYPE_F32 || sp ? 0 : 2 * n);
  assert_int_equal(m1.low16_bytes, sp ? 2 * n : 0);
  ds_optimizer_destroy(o);
}

static void test_memory_exact(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  int64_t at_start = live(ctx);
  for (int adam = 0; adam < 2; adam++) {
    accounting(ctx, adam, DS_DTYPE_F32, 0, DS_DTYPE_F32);
    accounting(ctx, adam, DS_DTYPE_F32, 0, DS_DTYPE_BF16);
    accounting(ctx, adam, DS_DTYPE_F32, 1, DS_DTYPE_F16);
    accounting(ctx, adam, DS_DTYPE_BF16, 1, DS_DTYPE_BF16);
    accounting(ctx, adam, DS_DTYPE_BF16, 0, DS_DTYPE_F32);
  }
  /* the mixed layouts' saving: SGD 6 of 8 bytes a parameter, AdamW 8 of 12 */
  for (int adam = 0; adam < 2; adam++) {
    ds_optimizer *o = ds_test_optimizer(ctx, adam, DS_DTYPE_BF16, 1);
    static float w[1000];
    ds_optimizer_memory m = {.struct_size = sizeof(ds_optimizer_memory)};
    assert_int_equal(ds_optimizer_add_param(o, "w", w, 1000, DS_DTYPE_BF16), DS_OK);
    assert_int_equal(ds_optimizer_memory_get(o, &m), DS_OK);
    assert_true(fabs(m.saved_fraction - (adam ? 1.0 / 3.0 : 0.25)) < 1e-12);
    ds_optimizer_destroy(o);
  }
  assert_int_equal(live(ctx), at_start); /* all of it freed */
  ds_context_destroy(ctx);
}

/* Stochastic rounding: unbiased on average, specials kept, every table bit-identical. */
static void test_stochastic_rounding(void **state) {
  (void)state;
  enum { N = 65536 };
  static float x[N];
  static uint16_t r[N], r2[N];
  float v = 1.0f + 0x1p-10f; /* an eighth of the way from bf16 1.0 to 1.0078125 */
  for (int i = 0; i < N; i++) x[i] = v;
  ds__prec_kernels_scalar.f32_to_bf16_sr(r, x, N, 12345u);
  double mean = 0;
  int up = 0;
  for (int i = 0; i < N; i++) mean += ds__bf16_to_f32(r[i]) / N, up += r[i] == 0x3f81;
  assert_true(fabs(mean - v) < 2e-5);
  assert_true(up > N / 8 - 600 && up < N / 8 + 600); /* rounds up 1/8 of the time */
  float sp[6];
  uint32_t bits[6] = {0x7f800000u, 0xff800000u, 0x7f800001u, 0x7fffffffu, 0x3f810000u, 0};
  for (int i = 0; i < 6; i++) memcpy(&sp[i], &bits[i], 4);
  ds__prec_kernels_scalar.f32_to_bf16_sr(r, sp, 6, 7u);
  assert_int_equal(r[0], 0x7f80); /* +Inf */
  assert_int_equal(r[1], 0xff80); /* -Inf */
  assert_int_equal(r[2], 0x7fc0); /* NaN with only low payload bits: still a (quiet) NaN */
  assert_int_equal(r[3], 0x7fff); /* no carry into the sign */
  assert_int_equal(r[4], 0x3f81); /* exact in bf16: unchanged */
  assert_int_equal(r[5], 0);
  for (int i = 0; i < N; i++) x[i] = (float)sin(i * 0.1) * (float)(1 + i % 97);
  ds__prec_kernels_scalar.f32_to_bf16_sr(r, x, N, 99u);
  const ds__prec_kernels *tabs[2] = {&ds__prec_kernels_avx2, &ds__prec_kernels_avx512};
  ds_context *ctx = ds_test_context(NULL, 0);
  ds_precision_isa have = ds_precision_isa_in_use(ctx);
  for (int t = 0; t < 2; t++) {
    if ((t == 0 && have < DS_PRECISION_ISA_AVX2) || (t == 1 && have < DS_PRECISION_ISA_AVX512)) {
      printf("precision: %s stochastic rounding not run (CPU lacks it)\n", t ? "AVX-512" : "AVX2");
      continue;
    }
    tabs[t]->f32_to_bf16_sr(r2, x, N, 99u);
    assert_memory_equal(r, r2, sizeof r);
  }
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_master),
      cmocka_unit_test(test_scaled_16bit_gradients),
      cmocka_unit_test(test_bf16_state_converges),
      cmocka_unit_test(test_memory_exact),
      cmocka_unit_test(test_stochastic_rounding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
