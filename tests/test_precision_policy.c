/* Tests of the DynamicPrecision policy (rules, per-device bf16 map, the stability score, an
 * injected overflow that promotes a layer and later demotes it, history, stats, logging) and
 * of the loss scaler (GradScaler's rules on recorded inf patterns, hysteresis, min scale,
 * fused unscale on f32/f16/bf16). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "precision_internal.h"

static int switch_logs;
static void count_logs(void *user, int level, const char *module, const char *message) {
  (void)user, (void)level;
  if (!strcmp(module, "precision") && (strstr(message, "promoted") || strstr(message, "demoted")))
    switch_logs++;
}

static ds_context *new_ctx(void) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value p[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                        {DS_PARAM_STATS_FILE, 0, 0},
                        {DS_PARAM_LOG_LEVEL, 0, DS_LOG_INFO}};
  o.params = p;
  o.nparams = 3;
  o.log_fn = count_logs;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static const ds_precision_rule seed_rules[] = {
    {"*attention*", DS_DTYPE_F16}, {"*ffn*", DS_DTYPE_F16}, {"*embedding*", DS_DTYPE_BF16}};

static ds_precision_policy *new_policy(ds_context *ctx, int native_bf16, int fallback) {
  ds_precision_policy_options o = DS_PRECISION_POLICY_OPTIONS_INIT;
  o.rules = seed_rules;
  o.nrules = 3;
  o.check_interval = 10;
  o.demote_after = 3;
  o.native_bf16 = native_bf16;
  o.bf16_fallback = fallback;
  ds_precision_policy *p = NULL;
  assert_int_equal(ds_precision_policy_create(&p, ctx, &o), DS_OK);
  return p;
}

static ds_dtype dtype_of(ds_precision_policy *p, const char *layer) {
  ds_dtype t = DS_DTYPE_I8;
  assert_int_equal(ds_precision_policy_dtype(p, layer, &t), DS_OK);
  return t;
}

static void test_rules_and_device_map(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_precision_policy *p = new_policy(ctx, 1, DS_DTYPE_F32);
  assert_int_equal(dtype_of(p, "blk3.attention.qkv"), DS_DTYPE_F16);
  assert_int_equal(dtype_of(p, "blk3.ffn.up"), DS_DTYPE_F16);
  assert_int_equal(dtype_of(p, "tok_embedding"), DS_DTYPE_BF16);
  assert_int_equal(dtype_of(p, "lm_head"), DS_DTYPE_F32);
  ds_precision_policy_destroy(p);
  p = new_policy(ctx, 0, DS_DTYPE_F32); /* no native bf16: the bf16 rule becomes fp32 */
  assert_int_equal(dtype_of(p, "tok_embedding"), DS_DTYPE_F32);
  ds_precision_layer_info info;
  assert_int_equal(ds_precision_policy_layer(p, "tok_embedding", &info), DS_OK);
  assert_int_equal(info.rule_dtype, DS_DTYPE_BF16);
  assert_int_equal(info.base_dtype, DS_DTYPE_F32);
  assert_int_equal(ds_precision_policy_layer(p, "never_seen", &info), DS_ERR_NOT_FOUND);
  ds_precision_policy_destroy(p);
  p = new_policy(ctx, 0, DS_DTYPE_F16);
  assert_int_equal(dtype_of(p, "tok_embedding"), DS_DTYPE_F16);
  assert_int_equal(ds_precision_policy_due(p, 20), 1);
  assert_int_equal(ds_precision_policy_due(p, 21), 0);
  ds_precision_policy_destroy(p);
  ds_precision_policy_destroy(NULL);
  /* detection for a CUDA device that is not there: bf16 not native, rule falls back */
  ds_precision_policy_options od = DS_PRECISION_POLICY_OPTIONS_INIT;
  od.rules = seed_rules, od.nrules = 3;
  od.device.type = DS_DEVICE_CUDA, od.device.index = 64;
  assert_int_equal(ds_precision_policy_create(&p, ctx, &od), DS_OK);
  assert_int_equal(dtype_of(p, "tok_embedding"), DS_DTYPE_F32);
  ds_precision_policy_destroy(p);
  /* bad options */
  ds_precision_policy_options o = DS_PRECISION_POLICY_OPTIONS_INIT;
  o.fallback_threshold = 1.5f;
  assert_int_equal(ds_precision_policy_create(&p, ctx, &o), DS_ERR_INVALID_ARG);
  o = (ds_precision_policy_options)DS_PRECISION_POLICY_OPTIONS_INIT;
  ds_precision_rule bad = {"x*", DS_DTYPE_I32};
  o.rules = &bad, o.nrules = 1;
  assert_int_equal(ds_precision_policy_create(&p, ctx, &o), DS_ERR_INVALID_ARG);
  o.struct_size = 8;
  assert_int_equal(ds_precision_policy_create(&p, ctx, &o), DS_ERR_ABI);
  ds_context_destroy(ctx);
}

static void test_stability_score(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  float a[100], b[100], s = -1;
  for (int i = 0; i < 100; i++) a[i] = b[i] = (float)sin(i * 0.7);
  assert_int_equal(ds_precision_stability_score(ctx, &s, a, DS_DTYPE_F32, b, 100), DS_OK);
  assert_true(fabsf(s - 1.0f) < 1e-6f);
  a[7] = NAN; /* 99 finite of 100, cosine over the rest still 1 */
  assert_int_equal(ds_precision_stability_score(ctx, &s, a, DS_DTYPE_F32, b, 100), DS_OK);
  assert_true(fabsf(s - 0.99f) < 1e-6f);
  for (int i = 0; i < 100; i++) a[i] = -b[i];
  assert_int_equal(ds_precision_stability_score(ctx, &s, a, DS_DTYPE_F32, b, 100), DS_OK);
  assert_true(s == 0.0f);
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  assert_int_equal(ds_precision_stability_score(ctx, &s, a, DS_DTYPE_F32, b, 100), DS_OK);
  assert_true(s == 1.0f);
  uint16_t h[100];
  for (int i = 0; i < 100; i++) b[i] = (float)cos(i * 0.3), h[i] = ds__f32_to_f16(b[i]);
  assert_int_equal(ds_precision_stability_score(ctx, &s, h, DS_DTYPE_F16, b, 100), DS_OK);
  assert_true(s > 0.99999f && s <= 1.0f);
  assert_int_equal(ds_precision_stability_score(ctx, &s, h, DS_DTYPE_I8, b, 100), DS_ERR_DTYPE);
  ds_context_destroy(ctx);
}

/* A layer whose fp32 output is 'shadow'; in fp16 values above 65504 overflow to Inf. */
static ds_dtype run_check(ds_precision_policy *p, const char *layer, uint64_t step, float big) {
  enum { S = 256 };
  float shadow[S];
  uint16_t low16[S];
  for (int i = 0; i < S; i++) shadow[i] = (float)sin(i * 0.05 + step) * (i % 17 == 0 ? big : 1.0f);
  ds_dtype cur = dtype_of(p, layer), next = cur;
  const void *low = shadow;
  if (cur != DS_DTYPE_F32) { /* what the layer's dtype gives */
    for (int i = 0; i < S; i++)
      low16[i] = cur == DS_DTYPE_F16 ? ds__f32_to_f16(shadow[i]) : ds__f32_to_bf16(shadow[i]);
    low = low16;
  }
  assert_int_equal(ds_precision_policy_observe(p, layer, step, low, cur, shadow, S, &next, NULL),
                   DS_OK);
  return next;
}

static void test_overflow_promotes_then_demotes(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  switch_logs = 0;
  for (int native = 1; native >= 0; native--) {
    ds_precision_policy *p = new_policy(ctx, native, DS_DTYPE_F32);
    const char *L = "blk0.attention.out";
    uint64_t step = 0;
    for (; step < 50; step += 10) assert_int_equal(run_check(p, L, step, 1.0f), DS_DTYPE_F16);
    /* injected overflow at step 50: promoted one level */
    ds_dtype up = native ? DS_DTYPE_BF16 : DS_DTYPE_F32;
    assert_int_equal(run_check(p, L, step, 1e6f), up);
    step += 10;
    /* the overflow persists, but bf16/fp32 hold it: clean checks, then back to fp16 */
    assert_int_equal(run_check(p, L, step, 1e6f), up);
    step += 10;
    assert_int_equal(run_check(p, L, step, 1.0f), up);
    step += 10;
    assert_int_equal(run_check(p, L, step, 1.0f), DS_DTYPE_F16); /* 3rd clean check: demoted */
    step += 10;
    ds_precision_switch h[8];
    size_t n = 0;
    assert_int_equal(ds_precision_policy_history(p, L, h, 8, &n), DS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(h[0].step, 50);
    assert_int_equal(h[0].from, DS_DTYPE_F16);
    assert_int_equal(h[0].to, up);
    assert_int_equal(h[0].reason, DS_PRECISION_PROMOTED_UNSTABLE);
    assert_true(h[0].score < 0.99f);
    assert_int_equal(h[1].step, 80);
    assert_int_equal(h[1].to, DS_DTYPE_F16);
    assert_int_equal(h[1].reason, DS_PRECISION_DEMOTED_STABLE);
    /* two unstable checks in a row when bf16 also fails: fp16 -> bf16 -> fp32, then down */
    if (native) {
      assert_int_equal(ds_precision_policy_report(p, L, step, 0.5f, NULL), DS_OK);
      ds_dtype t;
      assert_int_equal(ds_precision_policy_report(p, L, step + 10, 0.5f, &t), DS_OK);
      assert_int_equal(t, DS_DTYPE_F32);
      for (int i = 0; i < 3; i++) ds_precision_policy_report(p, L, step + 20 + 10 * i, 1.0f, &t);
      assert_int_equal(t, DS_DTYPE_BF16);
      for (int i = 0; i < 3; i++) ds_precision_policy_report(p, L, step + 50 + 10 * i, 1.0f, &t);
      assert_int_equal(t, DS_DTYPE_F16);
      ds_precision_layer_info info;
      assert_int_equal(ds_precision_policy_layer(p, L, &info), DS_OK);
      assert_int_equal(info.switches, 6);
      ds_stats *st = NULL;
      double v = -1;
      assert_int_equal(ds_stats_snapshot(&st, ctx), DS_OK);
      assert_int_equal(ds_stats_find(&v, st, "precision.layer.blk0.attention.out"), DS_OK);
      assert_true(v == DS_DTYPE_F16);
      assert_int_equal(ds_stats_find(&v, st, "precision.policy.switches"), DS_OK);
      assert_true(v == 6);
      ds_stats_free(st);
    }
    assert_int_equal(ds_precision_policy_report(p, L, step, NAN, NULL), DS_ERR_INVALID_ARG);
    ds_precision_policy_destroy(p);
  }
  assert_int_equal(switch_logs, 6 + 2);
  ds_context_destroy(ctx);
}

/* GradScaler's rules on a recorded inf pattern (growth_interval 3 to keep it short; values
 * derived by hand from torch.cuda.amp.GradScaler's documented update rule). */
static void run_pattern(const ds_loss_scaler_options *o, const int *infs, const float *want,
                        int n) {
  ds_context *ctx = new_ctx();
  ds_loss_scaler *s = NULL;
  assert_int_equal(ds_loss_scaler_create(&s, ctx, o), DS_OK);
  for (int i = 0; i < n; i++) {
    float g[4] = {1.0f, -2.0f, 3.0f, infs[i] ? INFINITY : 4.0f};
    int skip = -1, found = -1;
    assert_int_equal(ds_loss_scaler_unscale(s, g, g, DS_DTYPE_F32, 4, &found), DS_OK);
    assert_int_equal(found, infs[i]);
    assert_int_equal(ds_loss_scaler_update(s, 0, &skip), DS_OK);
    assert_int_equal(skip, infs[i]);
    if (ds_loss_scaler_scale(s) != want[i]) {
      printf("step %d: scale %g, expected %g\n", i + 1, ds_loss_scaler_scale(s), want[i]);
      fail();
    }
  }
  ds_loss_scaler_destroy(s);
  ds_context_destroy(ctx);
}

/* The scale after each update of torch's own rule (torch._amp_update_scale_ on CPU tensors,
 * which GradScaler.update() calls) through /usr/bin/python3; 0 when that is not available
 * (no python3, no torch, or a torch without the CPU kernel, as Debian's 1.13). */
static int torch_scales(const int *infs, int n, int interval, float *out) {
  if (access("/usr/bin/python3", X_OK) != 0) return 0;
  char pat[128] = "";
  for (int i = 0; i < n && i < 60; i++) strcat(pat, infs[i] ? "1," : "0,");
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"\nimport torch\n"
           "s=torch.full((1,),65536.0);g=torch.zeros((1,),dtype=torch.int32)\n"
           "for f in [%s]:\n"
           " torch._amp_update_scale_(s,g,torch.full((1,),float(f)),2.0,0.5,%d)\n"
           " print(s.item())\n\" 2>/dev/null",
           pat, interval);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  int got = 0;
  for (int i = 0; i < n; i++) got += fscanf(f, "%f", &out[i]) == 1;
  return pclose(f) == 0 && got == n;
}

static void test_loss_scaler_gradscaler_rules(void **state) {
  (void)state;
  static const int infs[14] = {0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0};
  static const float torch_like[14] = {65536,  65536,  131072, 65536, 65536, 65536, 32768,
                                       16384,  16384,  16384,  32768, 32768, 32768, 65536};
  static const float hyst2[14] = {65536,  65536,  131072, 131072, 131072, 131072, 131072,
                                  65536,  65536,  65536,  131072, 131072, 131072, 262144};
  ds_loss_scaler_options o = DS_LOSS_SCALER_OPTIONS_INIT;
  o.growth_interval = 3;
  run_pattern(&o, infs, torch_like, 14);
  float from_torch[14];
  if (torch_scales(infs, 14, 3, from_torch)) {
    assert_memory_equal(from_torch, torch_like, sizeof from_torch);
    printf("precision: the recorded scales match torch._amp_update_scale_\n");
  } else {
    printf("precision: torch with a CPU _amp_update_scale_ not available; recorded values only\n");
  }
  o.hysteresis = 2;
  run_pattern(&o, infs, hyst2, 14);
  static const int all_inf[4] = {1, 1, 1, 1};
  static const float floor_scale[4] = {32768, 20000, 20000, 20000};
  o.hysteresis = 1, o.min_scale = 20000;
  run_pattern(&o, all_inf, floor_scale, 4);
  /* defaults: 2000 clean steps double the scale, 1999 do not */
  ds_context *ctx = new_ctx();
  ds_loss_scaler *s = NULL;
  assert_int_equal(ds_loss_scaler_create(&s, ctx, NULL), DS_OK);
  assert_true(ds_loss_scaler_scale(s) == 65536.0f);
  for (int i = 0; i < 1999; i++) ds_loss_scaler_update(s, 0, NULL);
  assert_true(ds_loss_scaler_scale(s) == 65536.0f);
  ds_loss_scaler_update(s, 0, NULL);
  assert_true(ds_loss_scaler_scale(s) == 131072.0f);
  int skip = 0;
  ds_loss_scaler_update(s, 1, &skip); /* an overflow found elsewhere */
  assert_true(skip == 1 && ds_loss_scaler_scale(s) == 65536.0f);
  ds_loss_scaler_destroy(s);
  ds_loss_scaler_options bad = DS_LOSS_SCALER_OPTIONS_INIT;
  bad.backoff_factor = 1.0f;
  assert_int_equal(ds_loss_scaler_create(&s, ctx, &bad), DS_ERR_INVALID_ARG);
  bad.struct_size = 4;
  assert_int_equal(ds_loss_scaler_create(&s, ctx, &bad), DS_ERR_ABI);
  ds_context_destroy(ctx);
}

static void test_loss_scaler_fused_unscale(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_loss_scaler *s = NULL;
  assert_int_equal(ds_loss_scaler_create(&s, ctx, NULL), DS_OK);
  enum { M = 10000 };
  float *g = malloc(M * 4), *out = malloc(M * 4);
  uint16_t *h = malloc(M * 2), *b = malloc(M * 2);
  assert_true(g && out && h && b);
  for (int i = 0; i < M; i++) g[i] = (float)((i % 101) - 50) * 64.0f;
  ds_precision_convert(ctx, h, DS_DTYPE_F16, g, DS_DTYPE_F32, M);
  ds_precision_convert(ctx, b, DS_DTYPE_BF16, g, DS_DTYPE_F32, M);
  const void *srcs[3] = {g, h, b};
  ds_dtype dts[3] = {DS_DTYPE_F32, DS_DTYPE_F16, DS_DTYPE_BF16};
  for (int d = 0; d < 3; d++) {
    int found = -1;
    assert_int_equal(ds_loss_scaler_unscale(s, out, srcs[d], dts[d], M, &found), DS_OK);
    assert_int_equal(found, 0);
    for (int i = 0; i < M; i++) assert_true(out[i] == g[i] / 65536.0f);
  }
  h[M - 3] = 0xfc00; /* -Inf in the tail, after the vector part */
  int found = 0, skip = 0;
  assert_int_equal(ds_loss_scaler_unscale(s, out, h, DS_DTYPE_F16, M, &found), DS_OK);
  assert_int_equal(found, 1);
  assert_int_equal(ds_loss_scaler_unscale(s, out, g, DS_DTYPE_F32, M, &found), DS_OK);
  assert_int_equal(found, 0); /* this call clean, but the step keeps the earlier overflow */
  assert_int_equal(ds_loss_scaler_update(s, 0, &skip), DS_OK);
  assert_int_equal(skip, 1);
  b[5] = 0x7fc0; /* NaN */
  assert_int_equal(ds_loss_scaler_unscale(s, out, b, DS_DTYPE_BF16, M, &found), DS_OK);
  assert_int_equal(found, 1);
  assert_int_equal(ds_loss_scaler_unscale(s, out, b, DS_DTYPE_I8, M, &found), DS_ERR_DTYPE);
  free(g), free(out), free(h), free(b);
  ds_loss_scaler_destroy(s);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rules_and_device_map),
      cmocka_unit_test(test_stability_score),
      cmocka_unit_test(test_overflow_promotes_then_demotes),
      cmocka_unit_test(test_loss_scaler_gradscaler_rules),
      cmocka_unit_test(test_loss_scaler_fused_unscale),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
