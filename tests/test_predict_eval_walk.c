/* Tests of deepseek-predict-eval's walk-forward evaluation (bench/predict_eval_walk.c): it is
 * causal — a forecast from origin e, with every refit before it, does not change when the
 * series is altered after e — and every origin of the test split is scored. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "predict_eval.h"
#include "test_util.h"

enum { N = 1000, T0 = 850, POISON = 952 }; /* 70/15/15 split: the test part is [850, 1000) */

/* A periodic CPU series with bursts above 80% (feature 0) and slower companions. */
static void fill(ev_series *s, int poison) {
  s->n = N;
  s->group = EV_ALIBABA;
  s->x = calloc((size_t)N * EV_F, sizeof(float));
  s->real = malloc(N);
  assert_non_null(s->x);
  assert_non_null(s->real);
  uint64_t st = 7;
  for (size_t t = 0; t < N; t++) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    float noise = (float)((st >> 40) % 1000) / 250.0f;
    float *row = s->x + t * EV_F;
    row[0] = 50 + 35 * sinf((float)t * 0.13f) + noise;
    for (int f = 1; f < EV_F; f++) row[f] = row[0] * 0.5f + (float)f;
    s->real[t] = t % 7 != 3; /* some filled steps, as in the real traces */
    if (poison && t >= POISON) row[0] = 100 - row[0], row[1] = 0;
  }
}

/* Runs the walk-forward evaluation of one series from the same untrained model. */
static void run(ds_context *ctx, const ev_series *s, ev_rows out[NH], acc res[NM][NH]) {
  cfg c;
  memset(&c, 0, sizeof c);
  c.window = 8, c.l1 = 1, c.threshold = 80, c.seed = 1;
  c.wf_every = 100, c.wf_history = 300, c.wf_epochs = 1;
  ds_predictor_options o = DS_PREDICTOR_OPTIONS_INIT;
  o.nfeatures = EV_F, o.window = 8, o.hidden = 8, o.horizons = KMAX;
  o.overload_threshold = 80;
  ds_predictor *p = NULL, *q = NULL;
  assert_int_equal(ds_predictor_create(&p, ctx, &o), DS_OK);
  assert_int_equal(ds_predictor_create(&q, ctx, &o), DS_OK);
  ev_rows rows[3][NH];
  memset(rows, 0, sizeof rows); /* no static rows: the ensemble is not fitted */
  float cut[NH] = {0.5f, 0.5f, 0.5f};
  memset(res, 0, sizeof(acc) * NM * NH);
  walk_forward(ctx, p, &q, s, 1, &c, cut, rows, res, out);
  ds_predictor_destroy(q);
  ds_predictor_destroy(p);
}

static void test_walk_forward_is_causal(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ev_series s[2];
  memset(s, 0, sizeof s);
  fill(&s[0], 0);
  fill(&s[1], 1);
  ev_rows a[NH], b[NH];
  acc ra[NM][NH], rb[NM][NH];
  run(ctx, &s[0], a, ra);
  run(ctx, &s[1], b, rb);
  for (int hi = 0; hi < NH; hi++) {
    int h = horizons[hi];
    size_t same = 0, differ = 0;
    assert_true(a[hi].n > 0);
    assert_int_equal(a[hi].n, b[hi].n);
    for (size_t i = 0; i < a[hi].n; i++) {
      const float *ra_ = a[hi].v + i * EV_ROW, *rb_ = b[hi].v + i * EV_ROW;
      assert_true(ra_[EV_T] == rb_[EV_T]);
      double origin = ra_[EV_T] - h + T0;
      /* Everything a forecast is made of: the base forecasts, the current value and the
       * probability (not EV_Y: the target may lie after the change). */
      int eq = memcmp(ra_, rb_, EV_NBASE * sizeof(float)) == 0 && ra_[EV_CUR] == rb_[EV_CUR] &&
               ra_[EV_PROB] == rb_[EV_PROB];
      if (origin < POISON) {
        if (!eq) fail_msg("h=%d origin %.0f: a forecast changed by data after it", h, origin);
        same++;
      } else {
        differ += !eq;
      }
    }
    assert_true(same > 0);
    assert_true(differ > 0); /* the change is seen once it is in the past */
  }
  for (int hi = 0; hi < NH; hi++) free(a[hi].v), free(b[hi].v);
  free(s[0].x), free(s[0].real), free(s[1].x), free(s[1].real);
  ds_context_destroy(ctx);
}

/* Every test origin with a real sample and a real target is scored, by every model. */
static void test_walk_forward_scores_every_origin(void **state) {
  (void)state;
  ds_context *ctx = ds_test_context(NULL, 0);
  ev_series s;
  memset(&s, 0, sizeof s);
  fill(&s, 0);
  ev_rows out[NH];
  acc res[NM][NH];
  run(ctx, &s, out, res);
  for (int hi = 0; hi < NH; hi++) {
    int h = horizons[hi];
    size_t want = 0;
    for (size_t e = T0; e + (size_t)h < N; e++) want += s.real[e] && s.real[e + h];
    assert_int_equal(out[hi].n, want);
    for (int m = 0; m < M_ENS; m++) assert_int_equal(res[m][hi].n, want);
    /* No static rows: no ensemble for the first block, one fitted on it for the second. */
    assert_true(res[M_ENS][hi].n > 0 && res[M_ENS][hi].n < want);
    free(out[hi].v);
  }
  free(s.x), free(s.real);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_walk_forward_is_causal),
      cmocka_unit_test(test_walk_forward_scores_every_origin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
