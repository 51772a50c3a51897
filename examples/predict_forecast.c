/* predict_forecast: train a load predictor on a recorded series, save it, load it back and
 * forecast from a live sliding window. The series here is synthetic (a periodic CPU load with
 * noise, 0..1); in a real program it is your own telemetry history (ds_telemetry_window) or a
 * trace, and the live samples come from ds_telemetry_latest() each tick.
 * usage: predict_forecast [MODEL_PATH]   */
#include <deepseek.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define STEPS 3000
#define F 2 /* features per sample: CPU utilisation (the target), memory used */

static void make_series(float *s, int n) {
  unsigned seed = 7;
  for (int t = 0; t < n; t++) {
    seed = seed * 1103515245u + 12345u;
    float noise = 0.05f * ((float)(seed >> 16 & 0x7fff) / 32768.0f - 0.5f);
    s[t * F] = 0.55f + 0.35f * sinf(6.2831853f * (float)t / 48.0f) + noise; /* CPU 0..1 */
    s[t * F + 1] = 0.4f + 0.1f * sinf(6.2831853f * (float)t / 480.0f);      /* memory */
  }
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "predict_forecast.model";
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) {
    fprintf(stderr, "context: %s\n", ds_context_last_error(NULL));
    return 1;
  }
  /* The shape: 2 features, a window of 24 samples, hidden size 16, forecast 1..5 steps ahead,
   * overload when CPU > 0.8. */
  ds_predictor_options o = DS_PREDICTOR_OPTIONS_INIT;
  o.nfeatures = F;
  o.window = 24;
  o.hidden = 16;
  o.horizons = 5;
  o.overload_threshold = 0.8f;
  ds_predictor *p = NULL;
  float *s = malloc(sizeof(float) * STEPS * F);
  make_series(s, STEPS);
  /* Chronological split: the first 80% trains, the rest decides when to stop. */
  ds_predictor_series train = {s, STEPS * 8 / 10, NULL};
  ds_predictor_series val = {s + (STEPS * 8 / 10) * F, STEPS - STEPS * 8 / 10, NULL};
  ds_predictor_train_options to = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  to.max_epochs = 10;
  to.windows_per_epoch = 1024;
  ds_predictor_train_report rep = {sizeof rep, 0, 0, 0, 0, 0, 0};
  ds_status st = ds_predictor_create(&p, ctx, &o);
  if (st == DS_OK) st = ds_predictor_train(p, &train, 1, &val, 1, &to, &rep);
  if (st == DS_OK) st = ds_predictor_save(p, path);
  ds_predictor_destroy(p);
  p = NULL;
  if (st == DS_OK) st = ds_predictor_load(&p, ctx, path); /* what a deployed program does */
  if (st != DS_OK) {
    fprintf(stderr, "predict: %s\n", ds_context_last_error(ctx));
    free(s);
    ds_context_destroy(ctx);
    return 1;
  }
  printf("trained %u epochs (kept epoch %u), validation loss %.4f; model in %s\n", rep.epochs,
         rep.best_epoch, rep.best_val_loss, path);
  /* Live use: observe one sample per tick, predict once the window is full. */
  float v[5], pr[5];
  for (int t = STEPS - 40; t < STEPS - 5; t++) {
    ds_predictor_observe(p, s + t * F);
    if (ds_predictor_predict(p, v, pr) == DS_OK && t % 8 == 0)
      printf("t=%d cpu now %.2f -> +1: %.2f  +5: %.2f (actual %.2f)  P(cpu>0.8 at +5) %.2f\n", t,
             s[t * F], v[0], v[4], s[(t + 5) * F], pr[4]);
  }
  ds_predictor_destroy(p);
  free(s);
  ds_context_destroy(ctx);
  return 0;
}
