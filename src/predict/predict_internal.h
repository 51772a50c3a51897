/* Internal interface of the load predictor: the predictor object, the layout of its weights in
 * one float array, and the cross-file helpers (fast inference, reference forward/backward used
 * by training and tests, serialisation, online adaptation). The scheduler uses the public
 * ds_predictor_* API only (observe a sample, predict horizons 1..K). */
#ifndef DS_PREDICT_INTERNAL_H
#define DS_PREDICT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "deepseek/predict.h"

#define DS__PRED_MAX_F 64
#define DS__PRED_MAX_W 4096
#define DS__PRED_MAX_H 512
#define DS__PRED_MAX_K 64

/* Offsets (in floats) of each tensor in the weight array. Matrices are stored input-major
 * ("transposed": row j holds the 4H gate weights fed by input j) so that both the fast forward
 * and the backward pass walk them as contiguous axpy rows. */
typedef struct ds__pred_layout {
  size_t wx[2], wh[2], b[2]; /* per layer: [in][4H], [H][4H], [4H]; in = F (layer 0) or H */
  size_t wq;                 /* [H][H]: q_i = sum_j h_W[j] * wq[j][i] */
  size_t wy, by;             /* [2H][K], [K]: values (normalised change of the target) */
  size_t wp, bp;             /* [2H][K], [K]: overload logits */
  size_t wl;                 /* [K]: weight of the last observed target in each overload logit */
  size_t total;
} ds__pred_layout;

/* Inference workspace: sized once at creation, so predictions never allocate. */
typedef struct ds__pred_ws {
  float *x;             /* [W][F] normalised window */
  float *seq[2];        /* [W][H] per-layer outputs */
  float *gates;         /* [4H] */
  float *c;             /* [H] */
  float *q, *score, *z; /* [H], [W], [2H] */
  int portable;         /* 1: never the AVX2 kernel (tests set it to cover the portable path) */
} ds__pred_ws;

struct ds__pred_online;

struct ds_predictor {
  ds_context *ctx;
  ds_predictor_options o;
  ds__pred_layout lay;
  float *params;      /* lay.total weights */
  float *mean, *std;  /* [F] normalisation */
  pthread_mutex_t mu; /* guards params/mean/std against the online weight swap */
  ds__pred_ws ws;
  float *ring; /* [W][F] last observed samples (raw), ring order */
  float *last; /* [F] last observed sample (fills non-finite values) */
  uint64_t observed;
  struct ds__pred_online *online; /* NULL when online adaptation is off */
};

/* ---- model.c ---- */
void ds__pred_layout_init(ds__pred_layout *lay, const ds_predictor_options *o);
/* 1 when every size of o is in range (struct_size not checked). */
int ds__pred_shape_valid(const ds_predictor_options *o);
ds_status ds__pred_check_options(ds_context *ctx, const ds_predictor_options *o);
/* Allocates a predictor of shape o with zeroed weights and identity normalisation. */
ds_status ds__pred_alloc(ds_predictor **out, ds_context *ctx, const ds_predictor_options *o);
void ds__pred_init_weights(float *params, const ds__pred_layout *lay, const ds_predictor_options *o,
                           uint64_t seed);
/* splitmix64 step and a uniform float in [0,1) from it. */
uint64_t ds__pred_rng(uint64_t *state);
float ds__pred_uniform(uint64_t *state);

/* ---- forward.c: the inference path (vectorisable, fast exp) ---- */
/* Normalised window x [W][F] -> normalised values y [K] (already including the last target)
 * and overload probabilities pr [K] (may be NULL). */
void ds__pred_forward_fast(const ds_predictor_options *o, const ds__pred_layout *lay,
                           const float *params, ds__pred_ws *ws, const float *x, float *y,
                           float *pr);

/* ---- reference.c: the scalar forward with the activations kept, and its backward ---- */
typedef struct ds__pred_cache ds__pred_cache;
ds__pred_cache *ds__pred_cache_create(ds_context *ctx, const ds_predictor_options *o);
void ds__pred_cache_destroy(ds_context *ctx, ds__pred_cache *c);
/* Reference forward (libm expf/tanhf); outputs as ds__pred_forward_fast. */
void ds__pred_forward_ref(const ds_predictor_options *o, const ds__pred_layout *lay,
                          const float *params, ds__pred_cache *c, const float *x, float *y,
                          float *pr);
/* Loss of the last forward against normalised targets t [K] and overload labels lab [K]
 * (0/1): mean squared (or, with l1, absolute) error + w * mean binary cross-entropy. */
double ds__pred_loss(const ds_predictor_options *o, const ds__pred_cache *c, const float *t,
                     const float *lab, float w, int l1);
/* Accumulates d(loss)/d(params) of the last forward into grad. */
void ds__pred_backward(const ds_predictor_options *o, const ds__pred_layout *lay,
                       const float *params, ds__pred_cache *c, const float *t, const float *lab,
                       float w, int l1, float *grad);

/* ---- train.c: see train_internal.h (shared with online.c) ---- */

/* ---- online.c ---- */
ds_status ds__pred_online_create(ds_predictor *p);
void ds__pred_online_destroy(ds_predictor *p);
void ds__pred_online_observe(ds_predictor *p, const float *sample);

#endif /* DS_PREDICT_INTERNAL_H */
