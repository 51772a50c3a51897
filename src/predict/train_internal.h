/* Training internals shared by train.c and online.c: normalised windowed data and the
 * optimizer state, and the fit loop both use. */
#ifndef DS_PREDICT_TRAIN_INTERNAL_H
#define DS_PREDICT_TRAIN_INTERNAL_H

#include "predict_internal.h"

/* Series concatenated and normalised; a window is the index of its last input row e (inputs
 * e-W+1..e, targets e+1..e+K, all inside one series). */
typedef struct ds__pred_data {
  float *norm;    /* [rows][F] */
  uint8_t *label; /* [rows] raw target > overload threshold */
  size_t *win;
  size_t nwin;
} ds__pred_data;

typedef struct ds__pred_opt {
  float *g, *m, *v, *best; /* one allocation of 4 * total floats */
  uint8_t *decay;          /* 1 for weight matrices (AdamW decay), 0 for biases */
  ds__pred_cache *cache;
  uint64_t step;
} ds__pred_opt;

ds_status ds__pred_data_build(ds_predictor *p, const ds_predictor_series *s, size_t ns,
                              const float *mean, const float *std, ds__pred_data *d);
void ds__pred_data_free(ds_context *ctx, ds__pred_data *d);
void ds__pred_normalisation(const ds_predictor_series *s, size_t ns, size_t F, float *mean,
                            float *std);
ds_status ds__pred_opt_init(ds_predictor *p, ds__pred_opt *s);
void ds__pred_opt_free(ds_context *ctx, ds__pred_opt *s);
/* Mean loss of params over up to maxw evenly spaced windows of d (0 = all). */
double ds__pred_eval_loss(ds_predictor *p, const float *params, ds__pred_cache *c,
                          const ds__pred_data *d, size_t maxw, float w, int l1);
/* Trains params in place, leaving the best-validation weights (or the initial ones when no
 * epoch beats them); *val_before gets the validation loss of the initial weights. */
ds_status ds__pred_fit(ds_predictor *p, float *params, ds__pred_opt *s, const ds__pred_data *tr,
                       const ds__pred_data *va, const ds_predictor_train_options *to,
                       ds_predictor_train_report *rep, double *val_before);

#endif /* DS_PREDICT_TRAIN_INTERNAL_H */
