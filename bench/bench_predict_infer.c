/* bench_predict_infer: one prediction of the load predictor (LSTM + attention + head,
 * ds_predictor_forward: normalisation, forward, de-normalisation) against the scalar reference
 * forward pass of the same model (the libm-activation, row-at-a-time implementation training
 * uses) measured in the same run, and against the absolute goal of 20 us for H=32,
 * W=32, 4 features. Median of 7 repetitions, one thread.
 * usage: bench_predict_infer [--json]   */
#include <deepseek.h>

#include "bench_common.h"
#include "predict/predict_internal.h"

#define REPS 7

static volatile float sink;

static double time_ours(ds_predictor *p, const float *x, int n) {
  float v[DS__PRED_MAX_K], pr[DS__PRED_MAX_K];
  double t0 = bench_now_s();
  for (int i = 0; i < n; i++) {
    ds_predictor_forward(p, x, v, pr);
    sink += v[0];
  }
  return (bench_now_s() - t0) * 1e6 / n;
}

static double time_ref(ds_predictor *p, ds__pred_cache *c, const float *x, int n) {
  float v[DS__PRED_MAX_K], pr[DS__PRED_MAX_K];
  double t0 = bench_now_s();
  for (int i = 0; i < n; i++) {
    ds__pred_forward_ref(&p->o, &p->lay, p->params, c, x, v, pr);
    sink += v[0];
  }
  return (bench_now_s() - t0) * 1e6 / n;
}

static void run_case(ds_context *ctx, uint32_t L, int json, int *header) {
  ds_predictor_options o = DS_PREDICTOR_OPTIONS_INIT; /* H=32, W=32, F=4, K=10 */
  o.layers = L;
  ds_predictor *p = NULL;
  if (ds_predictor_create(&p, ctx, &o) != DS_OK) exit(1);
  uint64_t seed = 1;
  for (size_t i = 0; i < p->lay.total; i++) p->params[i] = 0.3f * (2 * ds__pred_uniform(&seed) - 1);
  ds__pred_cache *c = ds__pred_cache_create(ctx, &o);
  float x[32 * 4];
  for (int i = 0; i < 128; i++) x[i] = ds__pred_uniform(&seed);
  double ours[REPS], ref[REPS];
  time_ours(p, x, 200);
  for (int r = 0; r < REPS; r++) {
    ours[r] = time_ours(p, x, 2000);
    ref[r] = time_ref(p, c, x, 300);
  }
  double mo = bench_median(ours, REPS), mr = bench_median(ref, REPS);
  char name[64];
  snprintf(name, sizeof name, "H32_W32_F4_K10_L%u", L);
  bench_row a = {"bench_predict_infer",      name, "us/predict", mo,
                 "scalar reference forward", mr,   1.0,          "lower"};
  bench_print(&a, json, header);
  bench_row b = {"bench_predict_infer", name, "us/predict", mo, "goal 20 us", 20.0, 1.0, "lower"};
  bench_print(&b, json, header);
  ds__pred_cache_destroy(ctx, c);
  ds_predictor_destroy(p);
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_context *ctx = bench_context("bench_predict_infer", NULL, 0);
  run_case(ctx, 1, json, &header);
  run_case(ctx, 2, json, &header);
  ds_context_destroy(ctx);
  return 0;
}
