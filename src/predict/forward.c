/* The inference path: LSTM layers, attention and head in fp32 with a branch-free exp that the
 * compiler vectorises, on weights stored input-major so every inner loop is a contiguous axpy
 * over the 4H gates. On x86-64 the hot function is also compiled for AVX2+FMA and picked at
 * load time (GCC/Clang target_clones); elsewhere the portable build runs. No allocation. */
#include <math.h>
#include <string.h>

#include "predict_internal.h"

/* The clones' ifunc resolver runs during relocation, before a sanitizer runtime is up: an
 * instrumented resolver crashes the process there (seen with TSan), so sanitized builds use
 * the portable loop. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DS__PRED_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DS__PRED_SANITIZED 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && defined(__has_attribute) && !defined(DS__PRED_SANITIZED)
#if __has_attribute(target_clones)
#define DS__PRED_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#endif
#ifndef DS__PRED_CLONES
#define DS__PRED_CLONES
#endif

/* exp(x) for x in [-87, 88] (clamped outside): 2^n * poly(r), r = x - n ln2 in [-ln2/2, ln2/2],
 * degree-6 Taylor polynomial (relative error < 2e-7). Rounding to nearest through the 1.5*2^23
 * trick keeps it free of branches and library calls. */
static inline float ds__expf_fast(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float t = x * 1.44269504f + 12582912.0f;
  float n = t - 12582912.0f;
  float r = x - n * 0.693145752f;
  r = r - n * 1.42860677e-6f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t e = ((int32_t)n + 127) * (1 << 23);
  float s;
  memcpy(&s, &e, sizeof s);
  return p * s;
}

/* dst[i] = sigmoid(scale * src[i]); with scale 2, 2*dst-1 is tanh(src). */
static inline void ds__sigmoid_vec(float *dst, const float *src, size_t n, float scale) {
  for (size_t i = 0; i < n; i++) dst[i] = 1.0f / (1.0f + ds__expf_fast(-scale * src[i]));
}

static inline void ds__axpy(float *y, float a, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* g[0..G) += sum_j v[j] * w[j*G + 0..G): the gate pre-activations from nin inputs. */
static void ds__gates_portable(float *g, const float *v, const float *w, size_t nin, size_t G) {
  for (size_t j = 0; j < nin; j++) ds__axpy(g, v[j], w + j * G, G);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(DS__PRED_NO_AVX2)
#include <immintrin.h>
#define DS__PRED_HAVE_AVX2 1
/* The same with the accumulators held in eight AVX registers per 64-gate block, so each input
 * costs one broadcast and eight fused multiply-adds instead of a load and store of g. */
__attribute__((target("avx2,fma"))) static void ds__gates_avx2(float *g, const float *v,
                                                               const float *w, size_t nin,
                                                               size_t G) {
  size_t i = 0;
  for (; i + 64 <= G; i += 64) {
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_loadu_ps(g + i + 8 * k);
    for (size_t j = 0; j < nin; j++) {
      __m256 b = _mm256_broadcast_ss(v + j);
      const float *r = w + j * G + i;
      for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(b, _mm256_loadu_ps(r + 8 * k), a[k]);
    }
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(g + i + 8 * k, a[k]);
  }
  for (; i + 8 <= G; i += 8) {
    __m256 a = _mm256_loadu_ps(g + i);
    for (size_t j = 0; j < nin; j++)
      a = _mm256_fmadd_ps(_mm256_broadcast_ss(v + j), _mm256_loadu_ps(w + j * G + i), a);
    _mm256_storeu_ps(g + i, a);
  }
  for (; i < G; i++)
    for (size_t j = 0; j < nin; j++) g[i] += v[j] * w[j * G + i];
}
#endif

typedef void (*ds__gates_fn)(float *, const float *, const float *, size_t, size_t);

/* Picked once per process by CPU feature detection (idempotent: every caller picks the same). */
static ds__gates_fn ds__gates_pick(void) {
#ifdef DS__PRED_HAVE_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ds__gates_avx2;
#endif
  return ds__gates_portable;
}

/* One LSTM layer over the window: in [W][nin] -> out [W][H]. */
DS__PRED_CLONES
static void ds__pred_lstm_fast(const float *wx, const float *wh, const float *b, const float *in,
                               size_t nin, size_t W, size_t H, float *g, float *c, float *out,
                               ds__gates_fn gates) {
  size_t G = 4 * H;
  memset(c, 0, H * sizeof(float));
  for (size_t t = 0; t < W; t++) {
    memcpy(g, b, G * sizeof(float));
    gates(g, in + t * nin, wx, nin, G);
    if (t > 0) gates(g, out + (t - 1) * H, wh, H, G);
    ds__sigmoid_vec(g, g, 2 * H, 1.0f);             /* i, f */
    ds__sigmoid_vec(g + 2 * H, g + 2 * H, H, 2.0f); /* g (as (tanh+1)/2) */
    ds__sigmoid_vec(g + 3 * H, g + 3 * H, H, 1.0f); /* o */
    float *h = out + t * H;
    for (size_t j = 0; j < H; j++) {
      c[j] = g[H + j] * c[j] + g[j] * (2.0f * g[2 * H + j] - 1.0f);
      h[j] = c[j];
    }
    ds__sigmoid_vec(h, h, H, 2.0f);
    for (size_t j = 0; j < H; j++) h[j] = g[3 * H + j] * (2.0f * h[j] - 1.0f);
  }
}

/* Attention over the top layer's states seq [W][H] with the last state as query, then the head. */
DS__PRED_CLONES
static void ds__pred_head_fast(const ds_predictor_options *o, const ds__pred_layout *lay,
                               const float *params, ds__pred_ws *ws, const float *seq, float last,
                               float *y, float *pr) {
  size_t W = o->window, H = o->hidden, K = o->horizons;
  const float *hl = seq + (W - 1) * H;
  memset(ws->q, 0, H * sizeof(float));
  for (size_t j = 0; j < H; j++) ds__axpy(ws->q, hl[j], params + lay->wq + j * H, H);
  float inv = 1.0f / sqrtf((float)H), mx = -INFINITY, sum = 0.0f;
  for (size_t t = 0; t < W; t++) {
    float s = 0.0f;
    for (size_t j = 0; j < H; j++) s += ws->q[j] * seq[t * H + j];
    ws->score[t] = s * inv;
    mx = ws->score[t] > mx ? ws->score[t] : mx;
  }
  for (size_t t = 0; t < W; t++) {
    ws->score[t] = ds__expf_fast(ws->score[t] - mx);
    sum += ws->score[t];
  }
  float *z = ws->z;
  memset(z, 0, H * sizeof(float));
  for (size_t t = 0; t < W; t++) ds__axpy(z, ws->score[t] / sum, seq + t * H, H);
  memcpy(z + H, hl, H * sizeof(float));
  float logit[DS__PRED_MAX_K];
  for (size_t k = 0; k < K; k++) {
    y[k] = params[lay->by + k] + last;
    logit[k] = params[lay->bp + k] + params[lay->wl + k] * last;
  }
  for (size_t j = 0; j < 2 * H; j++) {
    ds__axpy(y, z[j], params + lay->wy + j * K, K);
    ds__axpy(logit, z[j], params + lay->wp + j * K, K);
  }
  if (pr) ds__sigmoid_vec(pr, logit, K, 1.0f);
}

void ds__pred_forward_fast(const ds_predictor_options *o, const ds__pred_layout *lay,
                           const float *params, ds__pred_ws *ws, const float *x, float *y,
                           float *pr) {
  size_t W = o->window, H = o->hidden;
  ds__gates_fn gates = ws->portable ? ds__gates_portable : ds__gates_pick();
  const float *in = x;
  size_t nin = o->nfeatures;
  for (uint32_t l = 0; l < o->layers; l++) {
    ds__pred_lstm_fast(params + lay->wx[l], params + lay->wh[l], params + lay->b[l], in, nin, W, H,
                       ws->gates, ws->c, ws->seq[l], gates);
    in = ws->seq[l];
    nin = H;
  }
  float last = x[(W - 1) * o->nfeatures + o->target];
  ds__pred_head_fast(o, lay, params, ws, in, last, y, pr);
}
