/* The scalar reference model: a forward pass with libm activations that keeps every
 * activation of the window, the loss, and backpropagation through time through the head, the
 * attention and the LSTM layers. Training and the tests use it; inference uses forward.c. */
#include <math.h>
#include <string.h>

#include "predict_internal.h"

struct ds__pred_cache {
  const float *x;                  /* the window of the last forward [W][F] */
  float *act[2];                   /* [W][4H] post-activation gates i, f, g, o */
  float *c[2], *tc[2];             /* [W][H] cell state and tanh(cell) */
  float *h[2];                     /* [W][H] layer outputs */
  float *q, *alpha, *z;            /* [H], [W], [2H] */
  float *y, *pr;                   /* [K] outputs of the last forward */
  float *dh, *dlow;                /* [W][H] gradient into the top and lower layer outputs */
  float *da, *dhn, *dcn, *dz, *dq; /* [4H], [H], [H], [2H], [H] */
};

static float ds__sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

ds__pred_cache *ds__pred_cache_create(ds_context *ctx, const ds_predictor_options *o) {
  size_t W = o->window, H = o->hidden, K = o->horizons;
  size_t n =
      2 * (W * 4 * H + 3 * W * H) + H + W + 2 * H + 2 * K + 2 * W * H + 4 * H + 2 * H + 2 * H + H;
  ds__pred_cache *c = ds__calloc(ctx, 1, sizeof *c + n * sizeof(float));
  if (!c) return NULL;
  float *f = (float *)(c + 1);
#define DS__TAKE(ptr, count) (ptr = f, f += (count))
  for (int l = 0; l < 2; l++) {
    DS__TAKE(c->act[l], W * 4 * H);
    DS__TAKE(c->c[l], W * H);
    DS__TAKE(c->tc[l], W * H);
    DS__TAKE(c->h[l], W * H);
  }
  DS__TAKE(c->q, H);
  DS__TAKE(c->alpha, W);
  DS__TAKE(c->z, 2 * H);
  DS__TAKE(c->y, K);
  DS__TAKE(c->pr, K);
  DS__TAKE(c->dh, W * H);
  DS__TAKE(c->dlow, W * H);
  DS__TAKE(c->da, 4 * H);
  DS__TAKE(c->dhn, H);
  DS__TAKE(c->dcn, H);
  DS__TAKE(c->dz, 2 * H);
  DS__TAKE(c->dq, H);
#undef DS__TAKE
  return c;
}

void ds__pred_cache_destroy(ds_context *ctx, ds__pred_cache *c) { ds__free(ctx, c); }

/* Pre-activations accumulate input by input (contiguous rows of the input-major weights), then
 * the libm activations; the result is the same sum as row-by-row, in a fixed order. */
static void ds__ref_lstm(const float *wx, const float *wh, const float *b, const float *in,
                         size_t nin, size_t W, size_t H, float *act, float *cs, float *tc,
                         float *hs) {
  size_t G = 4 * H;
  for (size_t t = 0; t < W; t++) {
    float *a = act + t * G;
    memcpy(a, b, G * sizeof(float));
    for (size_t j = 0; j < nin; j++) {
      float v = in[t * nin + j];
      for (size_t i = 0; i < G; i++) a[i] += v * wx[j * G + i];
    }
    for (size_t j = 0; t > 0 && j < H; j++) {
      float v = hs[(t - 1) * H + j];
      for (size_t i = 0; i < G; i++) a[i] += v * wh[j * G + i];
    }
    for (size_t i = 0; i < G; i++)
      a[i] = (i >= 2 * H && i < 3 * H) ? tanhf(a[i]) : ds__sigmoidf(a[i]);
    for (size_t j = 0; j < H; j++) {
      float cp = t > 0 ? cs[(t - 1) * H + j] : 0.0f;
      cs[t * H + j] = a[H + j] * cp + a[j] * a[2 * H + j];
      tc[t * H + j] = tanhf(cs[t * H + j]);
      hs[t * H + j] = a[3 * H + j] * tc[t * H + j];
    }
  }
}

void ds__pred_forward_ref(const ds_predictor_options *o, const ds__pred_layout *lay,
                          const float *params, ds__pred_cache *c, const float *x, float *y,
                          float *pr) {
  size_t W = o->window, H = o->hidden, K = o->horizons, L = o->layers;
  c->x = x;
  const float *in = x;
  size_t nin = o->nfeatures;
  for (size_t l = 0; l < L; l++) {
    ds__ref_lstm(params + lay->wx[l], params + lay->wh[l], params + lay->b[l], in, nin, W, H,
                 c->act[l], c->c[l], c->tc[l], c->h[l]);
    in = c->h[l];
    nin = H;
  }
  const float *seq = c->h[L - 1], *hl = seq + (W - 1) * H;
  for (size_t i = 0; i < H; i++) {
    float s = 0.0f;
    for (size_t j = 0; j < H; j++) s += hl[j] * params[lay->wq + j * H + i];
    c->q[i] = s;
  }
  float mx = -INFINITY, sum = 0.0f, inv = 1.0f / sqrtf((float)H);
  for (size_t t = 0; t < W; t++) {
    float s = 0.0f;
    for (size_t j = 0; j < H; j++) s += c->q[j] * seq[t * H + j];
    c->alpha[t] = s * inv;
    if (c->alpha[t] > mx) mx = c->alpha[t];
  }
  for (size_t t = 0; t < W; t++) sum += (c->alpha[t] = expf(c->alpha[t] - mx));
  for (size_t t = 0; t < W; t++) c->alpha[t] /= sum;
  for (size_t j = 0; j < H; j++) {
    float s = 0.0f;
    for (size_t t = 0; t < W; t++) s += c->alpha[t] * seq[t * H + j];
    c->z[j] = s;
    c->z[H + j] = hl[j];
  }
  float last = x[(W - 1) * o->nfeatures + o->target];
  for (size_t k = 0; k < K; k++) {
    float v = params[lay->by + k], lg = params[lay->bp + k] + params[lay->wl + k] * last;
    for (size_t j = 0; j < 2 * H; j++) {
      v += c->z[j] * params[lay->wy + j * K + k];
      lg += c->z[j] * params[lay->wp + j * K + k];
    }
    c->y[k] = v + last;
    c->pr[k] = ds__sigmoidf(lg);
    y[k] = c->y[k];
    if (pr) pr[k] = c->pr[k];
  }
}

double ds__pred_loss(const ds_predictor_options *o, const ds__pred_cache *c, const float *t,
                     const float *lab, float w, int l1) {
  double mse = 0, bce = 0;
  size_t K = o->horizons;
  for (size_t k = 0; k < K; k++) {
    double d = (double)c->y[k] - t[k], p = c->pr[k];
    p = p < 1e-7 ? 1e-7 : (p > 1 - 1e-7 ? 1 - 1e-7 : p);
    mse += l1 ? fabs(d) : d * d;
    bce -= lab[k] > 0.5f ? log(p) : log(1 - p);
  }
  return (mse + (double)w * bce) / (double)K;
}

/* Backward through one LSTM layer: dh [W][H] is the gradient into its outputs; din (may be
 * NULL) receives the gradient into its inputs. */
static void ds__ref_lstm_back(const ds_predictor_options *o, const float *wx, const float *wh,
                              const float *in, size_t nin, ds__pred_cache *c, int l,
                              const float *dh, float *din, float *gwx, float *gwh, float *gb) {
  size_t W = o->window, H = o->hidden, G = 4 * H;
  memset(c->dhn, 0, H * sizeof(float));
  memset(c->dcn, 0, H * sizeof(float));
  for (size_t tt = W; tt-- > 0;) {
    const float *a = c->act[l] + tt * G, *tcv = c->tc[l] + tt * H;
    for (size_t j = 0; j < H; j++) {
      float dhj = dh[tt * H + j] + c->dhn[j];
      float ig = a[j], fg = a[H + j], gg = a[2 * H + j], og = a[3 * H + j];
      float dc = c->dcn[j] + dhj * og * (1.0f - tcv[j] * tcv[j]);
      float cp = tt > 0 ? c->c[l][(tt - 1) * H + j] : 0.0f;
      c->da[j] = dc * gg * ig * (1.0f - ig);
      c->da[H + j] = dc * cp * fg * (1.0f - fg);
      c->da[2 * H + j] = dc * ig * (1.0f - gg * gg);
      c->da[3 * H + j] = dhj * tcv[j] * og * (1.0f - og);
      c->dcn[j] = dc * fg;
    }
    for (size_t i = 0; i < G; i++) gb[i] += c->da[i];
    for (size_t j = 0; j < nin; j++) {
      float xv = in[tt * nin + j], s = 0.0f;
      for (size_t i = 0; i < G; i++) {
        gwx[j * G + i] += xv * c->da[i];
        s += wx[j * G + i] * c->da[i];
      }
      if (din) din[tt * nin + j] = s;
    }
    for (size_t j = 0; j < H; j++) {
      float hv = tt > 0 ? c->h[l][(tt - 1) * H + j] : 0.0f, s = 0.0f;
      for (size_t i = 0; i < G; i++) {
        gwh[j * G + i] += hv * c->da[i];
        s += wh[j * G + i] * c->da[i];
      }
      c->dhn[j] = s;
    }
  }
}

/* Backward through the head and the attention into c->dh (gradient into the top states). */
static void ds__ref_head_back(const ds_predictor_options *o, const ds__pred_layout *lay,
                              const float *params, ds__pred_cache *c, const float *t,
                              const float *lab, float w, int l1, float *grad) {
  size_t W = o->window, H = o->hidden, K = o->horizons;
  const float *seq = c->h[o->layers - 1], *hl = seq + (W - 1) * H;
  float dy[DS__PRED_MAX_K], dl[DS__PRED_MAX_K];
  for (size_t k = 0; k < K; k++) {
    float d = c->y[k] - t[k];
    dy[k] = (l1 ? (float)((d > 0) - (d < 0)) : 2.0f * d) / (float)K;
    dl[k] = w * (c->pr[k] - (lab[k] > 0.5f ? 1.0f : 0.0f)) / (float)K;
    grad[lay->by + k] += dy[k];
    grad[lay->bp + k] += dl[k];
    grad[lay->wl + k] += dl[k] * c->x[(W - 1) * o->nfeatures + o->target];
  }
  for (size_t j = 0; j < 2 * H; j++) {
    float s = 0.0f;
    for (size_t k = 0; k < K; k++) {
      grad[lay->wy + j * K + k] += c->z[j] * dy[k];
      grad[lay->wp + j * K + k] += c->z[j] * dl[k];
      s += params[lay->wy + j * K + k] * dy[k] + params[lay->wp + j * K + k] * dl[k];
    }
    c->dz[j] = s;
  }
  /* z[0:H] = sum_t alpha_t h_t; alpha = softmax(s); s_t = q . h_t / sqrt(H) */
  float inv = 1.0f / sqrtf((float)H), dot = 0.0f;
  memset(c->dh, 0, W * H * sizeof(float));
  memset(c->dq, 0, H * sizeof(float));
  for (size_t tt = 0; tt < W; tt++) {
    float da = 0.0f;
    for (size_t j = 0; j < H; j++) da += c->dz[j] * seq[tt * H + j];
    c->dlow[tt] = da; /* dlow used as scratch for d(alpha) here */
    dot += c->alpha[tt] * da;
  }
  for (size_t tt = 0; tt < W; tt++) {
    float ds = c->alpha[tt] * (c->dlow[tt] - dot) * inv;
    for (size_t j = 0; j < H; j++) {
      c->dh[tt * H + j] += c->alpha[tt] * c->dz[j] + ds * c->q[j];
      c->dq[j] += ds * seq[tt * H + j];
    }
  }
  /* q_i = sum_j hl_j wq[j][i]; plus the direct path z[H:2H] = hl */
  for (size_t j = 0; j < H; j++) {
    float s = c->dz[H + j];
    for (size_t i = 0; i < H; i++) {
      grad[lay->wq + j * H + i] += hl[j] * c->dq[i];
      s += params[lay->wq + j * H + i] * c->dq[i];
    }
    c->dh[(W - 1) * H + j] += s;
  }
}

void ds__pred_backward(const ds_predictor_options *o, const ds__pred_layout *lay,
                       const float *params, ds__pred_cache *c, const float *t, const float *lab,
                       float w, int l1, float *grad) {
  size_t H = o->hidden;
  ds__ref_head_back(o, lay, params, c, t, lab, w, l1, grad);
  /* The target's own last value enters y directly (y = last + head): its input gradient is
   * not needed, since inputs are data. */
  if (o->layers == 2) {
    ds__ref_lstm_back(o, params + lay->wx[1], params + lay->wh[1], c->h[0], H, c, 1, c->dh, c->dlow,
                      grad + lay->wx[1], grad + lay->wh[1], grad + lay->b[1]);
    ds__ref_lstm_back(o, params + lay->wx[0], params + lay->wh[0], c->x, o->nfeatures, c, 0,
                      c->dlow, NULL, grad + lay->wx[0], grad + lay->wh[0], grad + lay->b[0]);
  } else {
    ds__ref_lstm_back(o, params + lay->wx[0], params + lay->wh[0], c->x, o->nfeatures, c, 0, c->dh,
                      NULL, grad + lay->wx[0], grad + lay->wh[0], grad + lay->b[0]);
  }
}
