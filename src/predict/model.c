/* The predictor object: shape checks, weight layout and initialisation, creation and
 * destruction, and the inference entry points (explicit window, observed sliding window). */
#include <math.h>
#include <string.h>

#include "predict_internal.h"

void ds__pred_layout_init(ds__pred_layout *lay, const ds_predictor_options *o) {
  size_t H = o->hidden, G = 4 * (size_t)H, off = 0;
  memset(lay, 0, sizeof *lay);
  for (uint32_t l = 0; l < o->layers; l++) {
    size_t in = l == 0 ? o->nfeatures : H;
    lay->wx[l] = off;
    off += in * G;
    lay->wh[l] = off;
    off += H * G;
    lay->b[l] = off;
    off += G;
  }
  lay->wq = off;
  off += H * H;
  lay->wy = off;
  off += 2 * H * o->horizons;
  lay->by = off;
  off += o->horizons;
  lay->wp = off;
  off += 2 * H * o->horizons;
  lay->bp = off;
  off += o->horizons;
  lay->wl = off;
  off += o->horizons;
  lay->total = off;
}

int ds__pred_shape_valid(const ds_predictor_options *o) {
  return o->nfeatures >= 1 && o->nfeatures <= DS__PRED_MAX_F && o->window >= 1 &&
         o->window <= DS__PRED_MAX_W && o->hidden >= 1 && o->hidden <= DS__PRED_MAX_H &&
         o->layers >= 1 && o->layers <= 2 && o->horizons >= 1 && o->horizons <= DS__PRED_MAX_K &&
         o->target < o->nfeatures && isfinite(o->overload_threshold);
}

ds_status ds__pred_check_options(ds_context *ctx, const ds_predictor_options *o) {
  if (o->struct_size != sizeof *o)
    return ds__error(ctx, DS_ERR_ABI, "predict", "options: struct_size %u, expected %zu",
                     o->struct_size, sizeof *o);
  if (!ds__pred_shape_valid(o))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "predict",
                     "options out of range: F=%u (1..%d) W=%u (1..%d) H=%u (1..%d) layers=%u "
                     "(1..2) K=%u (1..%d) target=%u threshold=%g",
                     o->nfeatures, DS__PRED_MAX_F, o->window, DS__PRED_MAX_W, o->hidden,
                     DS__PRED_MAX_H, o->layers, o->horizons, DS__PRED_MAX_K, o->target,
                     (double)o->overload_threshold);
  return DS_OK;
}

uint64_t ds__pred_rng(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float ds__pred_uniform(uint64_t *state) {
  return (float)(ds__pred_rng(state) >> 40) * (1.0f / 16777216.0f);
}

/* PyTorch's LSTM/Linear initialisation, U(-1/sqrt(fan), 1/sqrt(fan)), plus a forget-gate bias
 * of 1 (gradients flow through long windows from the start) and a zero value head, so that an
 * untrained model predicts "no change" — the last-value baseline. */
void ds__pred_init_weights(float *params, const ds__pred_layout *lay, const ds_predictor_options *o,
                           uint64_t seed) {
  uint64_t st = seed ^ 0x5eedull;
  size_t H = o->hidden;
  float a = 1.0f / sqrtf((float)H), ah = 1.0f / sqrtf((float)(2 * H));
  for (size_t i = 0; i < lay->wy; i++) params[i] = a * (2.0f * ds__pred_uniform(&st) - 1.0f);
  for (uint32_t l = 0; l < o->layers; l++)
    for (size_t j = 0; j < H; j++) params[lay->b[l] + H + j] = 1.0f;
  memset(params + lay->wy, 0, (lay->wp - lay->wy) * sizeof(float));
  for (size_t i = lay->wp; i < lay->bp; i++) params[i] = ah * (2.0f * ds__pred_uniform(&st) - 1.0f);
  memset(params + lay->bp, 0, 2 * o->horizons * sizeof(float)); /* bp, wl */
}

static ds_status ds__pred_alloc_ws(ds_predictor *p) {
  ds_context *ctx = p->ctx;
  size_t W = p->o.window, F = p->o.nfeatures, H = p->o.hidden;
  p->ws.x = ds__alloc(ctx, W * F * sizeof(float));
  p->ws.seq[0] = ds__alloc(ctx, W * H * sizeof(float));
  p->ws.seq[1] = ds__alloc(ctx, W * H * sizeof(float));
  p->ws.gates = ds__alloc(ctx, 4 * H * sizeof(float));
  p->ws.c = ds__alloc(ctx, H * sizeof(float));
  p->ws.q = ds__alloc(ctx, H * sizeof(float));
  p->ws.score = ds__alloc(ctx, W * sizeof(float));
  p->ws.z = ds__alloc(ctx, 2 * H * sizeof(float));
  p->ring = ds__calloc(ctx, W * F, sizeof(float));
  p->last = ds__calloc(ctx, F, sizeof(float));
  if (!p->ws.x || !p->ws.seq[0] || !p->ws.seq[1] || !p->ws.gates || !p->ws.c || !p->ws.q ||
      !p->ws.score || !p->ws.z || !p->ring || !p->last)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate the workspace");
  return DS_OK;
}

ds_status ds__pred_alloc(ds_predictor **out, ds_context *ctx, const ds_predictor_options *o) {
  ds_status st = ds__pred_check_options(ctx, o);
  if (st != DS_OK) return st;
  ds_predictor *p = ds__calloc(ctx, 1, sizeof *p);
  if (!p) return ds__error(ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate a predictor");
  p->ctx = ctx;
  p->o = *o;
  pthread_mutex_init(&p->mu, NULL);
  ds__pred_layout_init(&p->lay, o);
  p->params = ds__calloc(ctx, p->lay.total, sizeof(float));
  p->mean = ds__calloc(ctx, o->nfeatures, sizeof(float));
  p->std = ds__alloc(ctx, o->nfeatures * sizeof(float));
  st = p->params && p->mean && p->std ? ds__pred_alloc_ws(p)
                                      : ds__error(ctx, DS_ERR_NO_MEMORY, "predict",
                                                  "cannot allocate %zu weights", p->lay.total);
  if (st == DS_OK) st = ds__pred_online_create(p);
  if (st != DS_OK) {
    ds_predictor_destroy(p);
    return st;
  }
  for (uint32_t f = 0; f < o->nfeatures; f++) p->std[f] = 1.0f;
  *out = p;
  return DS_OK;
}

ds_status ds_predictor_create(ds_predictor **out, ds_context *ctx,
                              const ds_predictor_options *opts) {
  ds_predictor_options def = DS_PREDICTOR_OPTIONS_INIT;
  if (!out || !ctx) return ds__error(ctx, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  *out = NULL;
  ds_status st = ds__pred_alloc(out, ctx, opts ? opts : &def);
  if (st == DS_OK) ds__pred_init_weights((*out)->params, &(*out)->lay, &(*out)->o, (*out)->o.seed);
  return st;
}

void ds_predictor_destroy(ds_predictor *p) {
  if (!p) return;
  ds_context *ctx = p->ctx;
  ds__pred_online_destroy(p);
  float *bufs[] = {p->params,    p->mean,     p->std,  p->ws.x, p->ws.seq[0],
                   p->ws.seq[1], p->ws.gates, p->ws.c, p->ws.q, p->ws.score,
                   p->ws.z,      p->ring,     p->last};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ds__free(ctx, bufs[i]);
  pthread_mutex_destroy(&p->mu);
  ds__free(ctx, p);
}

ds_status ds_predictor_get_options(ds_predictor_options *out, const ds_predictor *p) {
  if (!out || !p)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  if (out->struct_size != sizeof *out)
    return ds__error(p->ctx, DS_ERR_ABI, "predict", "options: struct_size %u", out->struct_size);
  *out = p->o;
  return DS_OK;
}

/* Normalises rows (oldest first; row i of the ring is at (first + i) % W) into ws.x, runs the
 * fast forward and de-normalises. The lock only contends with an online weight swap. */
static void ds__pred_run(ds_predictor *p, const float *rows, size_t first, float *values,
                         float *probs) {
  size_t W = p->o.window, F = p->o.nfeatures, K = p->o.horizons;
  float y[DS__PRED_MAX_K];
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < W; i++) {
    const float *r = rows + ((first + i) % W) * F;
    for (size_t f = 0; f < F; f++) p->ws.x[i * F + f] = (r[f] - p->mean[f]) / p->std[f];
  }
  ds__pred_forward_fast(&p->o, &p->lay, p->params, &p->ws, p->ws.x, y, probs);
  float m = p->mean[p->o.target], s = p->std[p->o.target];
  pthread_mutex_unlock(&p->mu);
  for (size_t k = 0; k < K; k++) values[k] = y[k] * s + m;
}

ds_status ds_predictor_forward(ds_predictor *p, const float *window, float *values, float *probs) {
  if (!p || !window || !values)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  ds__pred_run(p, window, 0, values, probs);
  return DS_OK;
}

ds_status ds_predictor_observe(ds_predictor *p, const float *sample) {
  if (!p || !sample)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  size_t F = p->o.nfeatures;
  float *row = p->ring + (p->observed % p->o.window) * F;
  for (size_t f = 0; f < F; f++) {
    float v = isfinite(sample[f]) ? sample[f] : p->last[f];
    row[f] = v;
    p->last[f] = v;
  }
  p->observed++;
  if (p->online) ds__pred_online_observe(p, row);
  return DS_OK;
}

ds_status ds_predictor_predict(ds_predictor *p, float *values, float *probs) {
  if (!p || !values)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  if (p->observed < p->o.window)
    return ds__error(p->ctx, DS_ERR_UNAVAILABLE, "predict",
                     "%llu of the %u samples of a window observed so far",
                     (unsigned long long)p->observed, p->o.window);
  ds__pred_run(p, p->ring, (size_t)(p->observed % p->o.window), values, probs);
  return DS_OK;
}
