/* precision_mixed: one linear layer y = x W^T with bf16/fp16 weights under the DynamicPrecision
 * policy, its activation stored in bf16, a loss scaler, and an optimiser keeping its master
 * weights and momentum in 6 bytes a parameter (and, without a loss scaler, taking the weight
 * gradient in tiles), the way a training loop would use them.
 *   build: part of the project (examples/), or: cc precision_mixed.c $(pkg-config --cflags --libs deepseek)
 *   run:   ./precision_mixed */
#include <deepseek.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 8
#define IN 256
#define OUT 128

static int check(ds_context *ctx, ds_status st, const char *what) {
  if (st == DS_OK) return 0;
  fprintf(stderr, "%s: %s (%s)\n", what, ds_status_str(st), ds_context_last_error(ctx));
  return 1;
}

int main(void) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;

  /* The seed's rules: attention and FFN layers in fp16, embeddings in bf16, the rest fp32. */
  ds_precision_rule rules[] = {
      {"*attention*", DS_DTYPE_F16}, {"*ffn*", DS_DTYPE_F16}, {"*embedding*", DS_DTYPE_BF16}};
  ds_precision_policy_options po = DS_PRECISION_POLICY_OPTIONS_INIT;
  po.rules = rules;
  po.nrules = 3;
  po.check_interval = 10; /* compare against an fp32 shadow every 10 steps */
  ds_precision_policy *policy = NULL;
  if (check(ctx, ds_precision_policy_create(&policy, ctx, &po), "policy")) return 1;

  /* fp32 master weights [OUT, IN] and inputs; the layer keeps a 16-bit working copy. */
  static float w32[OUT * IN], x[BATCH * IN], y[BATCH * OUT], shadow[BATCH * OUT];
  static uint16_t w16[OUT * IN];
  for (int i = 0; i < OUT * IN; i++) w32[i] = sinf((float)i) * 0.05f;
  for (int i = 0; i < BATCH * IN; i++) x[i] = cosf((float)i * 0.1f);

  const char *layer = "blk0.ffn.up";
  ds_device cpu = {DS_DEVICE_CPU, 0};
  for (uint64_t step = 0; step <= 30; step++) {
    ds_dtype dt;
    ds_precision_policy_dtype(policy, layer, &dt); /* the dtype this layer runs in now */
    ds_tensor tx, tw, ty;
    int64_t xs[2] = {BATCH, IN}, ws[2] = {OUT, IN}, ys[2] = {BATCH, OUT};
    ds_tensor_init(&tx, ctx, x, DS_DTYPE_F32, 2, xs, NULL, cpu);
    if (dt == DS_DTYPE_F32) {
      ds_tensor_init(&tw, ctx, w32, DS_DTYPE_F32, 2, ws, NULL, cpu);
    } else { /* refresh the 16-bit copy from the master weights (after each optimiser step) */
      ds_precision_convert(ctx, w16, dt, w32, DS_DTYPE_F32, OUT * IN);
      ds_tensor_init(&tw, ctx, w16, dt, 2, ws, NULL, cpu);
    }
    ds_tensor_init(&ty, ctx, y, DS_DTYPE_F32, 2, ys, NULL, cpu);
    /* y = x W^T: with 16-bit W and a small batch this is the skinny kernel */
    if (check(ctx, ds_gemm(ctx, &ty, &tx, &tw, DS_GEMM_TRANS_B, 1.0f, 0.0f), "gemm")) return 1;

    if (ds_precision_policy_due(policy, step)) { /* the fp32 shadow, and the check */
      ds_tensor_init(&tw, ctx, w32, DS_DTYPE_F32, 2, ws, NULL, cpu);
      ds_tensor_init(&ty, ctx, shadow, DS_DTYPE_F32, 2, ys, NULL, cpu);
      ds_gemm(ctx, &ty, &tx, &tw, DS_GEMM_TRANS_B, 1.0f, 0.0f);
      float score;
      ds_dtype next;
      ds_precision_policy_observe(policy, layer, step, y, DS_DTYPE_F32, shadow, BATCH * OUT,
                                  &next, &score);
      printf("step %2llu: %s runs in %s, stability score %.6f\n", (unsigned long long)step,
             layer, ds_dtype_name(next), score);
    }
  }

  /* 16-bit activations: GELU of the layer output kept in bf16 for the backward pass (computed
   * in fp32, rounded once), half the bytes of fp32. The same call runs on CUDA tensors. */
  static uint16_t act16[BATCH * OUT];
  ds_tensor tyf, ta16;
  int64_t as[2] = {BATCH, OUT};
  ds_tensor_init(&tyf, ctx, y, DS_DTYPE_F32, 2, as, NULL, cpu);
  ds_tensor_init(&ta16, ctx, act16, DS_DTYPE_BF16, 2, as, NULL, cpu);
  if (check(ctx, ds_bias_act_forward_tensor(ctx, &ta16, &tyf, NULL, DS_ACT_GELU), "gelu"))
    return 1;
  double amax = 0;
  ds_reduce_tensor(ctx, &amax, DS_REDUCE_AMAX, &ta16);
  printf("bf16 activations: %zu bytes instead of %zu, max |gelu(y)| %.4f\n", sizeof act16,
         sizeof y, amax);

  /* Loss scaling: scale the loss, unscale the gradients in one fused pass, update. */
  ds_loss_scaler *scaler = NULL;
  ds_loss_scaler_create(&scaler, ctx, NULL);
  float grads[4] = {1e3f, -2e4f, 5.0f, INFINITY}; /* a step whose backward overflowed */
  int skip = 0;
  ds_loss_scaler_unscale(scaler, grads, grads, DS_DTYPE_F32, 4, NULL);
  ds_loss_scaler_update(scaler, 0, &skip);
  printf("overflow: step %s, loss scale now %g\n", skip ? "skipped" : "taken",
         ds_loss_scaler_scale(scaler));

  /* Memory-lean optimiser: the bf16 working weight is the high half of the exact fp32 master
   * (split_master), momentum in bf16 (stochastic rounding), a bf16 gradient of the scaled
   * loss unscaled inside the update. 6 bytes a parameter instead of fp32's 8. */
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.split_master = 1;
  oo.state_dtype = DS_DTYPE_BF16;
  ds_optimizer *opt = NULL;
  if (check(ctx, ds_optimizer_create(&opt, ctx, &oo), "optimizer")) return 1;
  if (check(ctx, ds_optimizer_add_param(opt, layer, w32, OUT * IN, DS_DTYPE_BF16), "param"))
    return 1;
  float scale = ds_loss_scaler_scale(scaler);
  for (int i = 0; i < OUT * IN; i++) w32[i] = 0.01f * scale; /* stand-in scaled gradient */
  ds_precision_convert(ctx, w16, DS_DTYPE_BF16, w32, DS_DTYPE_F32, OUT * IN);
  int inf = 0; /* the finite check alone (NULL dst): the update unscales */
  ds_loss_scaler_unscale(scaler, NULL, w16, DS_DTYPE_BF16, OUT * IN, &inf);
  if (!inf && check(ctx, ds_optimizer_step_scaled(opt, layer, w16, DS_DTYPE_BF16, scale), "step"))
    return 1;
  /* A bf16 step needs no loss scaler (bf16 has fp32's range), so the weight gradient
   * dW = dy^T x need not exist whole: the optimiser computes it in row tiles and applies
   * each at once (ds_optimizer_step_linear, 16 rows a tile; dy stands in for the loss gradient). */
  ds_tensor tdy, tx;
  int64_t ys[2] = {BATCH, OUT}, xs[2] = {BATCH, IN};
  for (int i = 0; i < BATCH * OUT; i++) y[i] = 1e-3f * (float)(i % 7);
  ds_tensor_init(&tdy, ctx, y, DS_DTYPE_F32, 2, ys, NULL, (ds_device){DS_DEVICE_CPU, 0});
  ds_tensor_init(&tx, ctx, x, DS_DTYPE_F32, 2, xs, NULL, (ds_device){DS_DEVICE_CPU, 0});
  if (check(ctx, ds_optimizer_step_linear(opt, layer, &tdy, &tx, 16), "step_linear")) return 1;
  ds_optimizer_memory mem = {.struct_size = sizeof(ds_optimizer_memory)};
  ds_optimizer_memory_get(opt, &mem);
  printf("optimiser: %llu bytes (fp32 would be %llu, %.0f%% saved): f32 %llu, bf16 %llu, "
         "master low halves %llu, of which the gradient tile %llu\n",
         (unsigned long long)mem.total_bytes, (unsigned long long)mem.fp32_equivalent,
         100.0 * mem.saved_fraction, (unsigned long long)mem.f32_bytes,
         (unsigned long long)mem.bf16_bytes, (unsigned long long)mem.low16_bytes,
         (unsigned long long)mem.scratch_bytes);
  ds_optimizer_destroy(opt);

  ds_loss_scaler_destroy(scaler);
  ds_precision_policy_destroy(policy);
  ds_context_destroy(ctx);
  return 0;
}
