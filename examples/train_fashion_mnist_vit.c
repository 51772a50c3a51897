/* train_fashion_mnist_vit: the demo's vision transformer (--model vit). A 28x28 image is cut
 * into 16 patches of 7x7 = 49 pixels; layers, named for the precision policy:
 *   embedding  patch projection 49 -> D, plus a learned position embedding per patch
 *   attention  per block: LayerNorm, QKV projection, H heads of softmax attention, output
 *              projection, residual
 *   ffn        per block: LayerNorm, D -> F (GELU) -> D, residual
 *   norm, head final LayerNorm, mean over the patches, D -> 10
 * Everything runs on the library's kernels: ds_gemm (batched per head for attention),
 * softmax, layernorm, bias+GELU, cross-entropy and their backward passes, written out here.
 * Precision: the seed's DynamicPrecision(fp16_layers=['attention','ffn'],
 * bf16_layers=['embedding'], fallback_threshold=0.95) as policy rules; a layer's weight
 * matrices run in its dtype (16-bit working copies of AdamW's fp32 masters) and every 50th
 * step its output is checked against an fp32 shadow. The loss is scaled by a dynamic loss
 * scaler; a step whose gradients overflow is skipped. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_fashion_mnist.h"

#define T 16 /* patches */
#define PX 49 /* pixels per patch */
#define D 64
#define NH 4
#define DH (D / NH)
#define F 128
#define C TFM_NCLS
#define PER_BLOCK 12
#define NLAYERS 4 /* policy layers: embedding, attention, ffn, head */

enum { L_EMB = 0, L_ATT = 1, L_FFN = 2, L_HEAD = 3, L_NONE = -1 };
static const char *layer_name[NLAYERS] = {"embedding", "attention", "ffn", "head"};

/* Activations of one forward pass over up to `rows` images (N = rows * T tokens). */
typedef struct vit_ws {
  int rows;
  size_t floats;
  float *mem;
  float *xp, *yf, *meanf, *rstdf, *pooled, *logits, *tmp;
  float **h; /* depth + 1: the embedded tokens, then each block's output */
  struct blk {
    float *y1, *mean1, *rstd1, *qkv, *att, *ctxb, *h1, *y2, *mean2, *rstd2, *f1, *a;
  } *b;
  /* backward scratch (training workspace only) */
  float *dh, *dtmp, *dqkv, *dp, *dctx, *da, *dlg, *dpooled, *shadow;
} vit_ws;

typedef struct vit {
  ds_context *ctx;
  ds_optimizer *opt;
  ds_precision_policy *pol;
  ds_loss_scaler *scaler;
  int depth, np, bs;
  char (*name)[48];
  int64_t *size;
  int *layer;       /* policy layer of a weight matrix, L_NONE for vectors (fp32 always) */
  ds_dtype *wreg;   /* dtype of the optimiser's working copy */
  void **conv;      /* the master converted to the layer's dtype when that is not wreg */
  float **grad;
  ds_dtype ldt[NLAYERS];
  uint64_t step, switches, skipped;
  int check_now;
  vit_ws ws;
} vit;

/* ---- parameters --------------------------------------------------------------------------- */

static void add_param(vit *m, const char *name, int64_t size, int layer) {
  snprintf(m->name[m->np], sizeof m->name[0], "%s", name);
  m->size[m->np] = size;
  m->layer[m->np] = layer;
  m->np++;
}

static void define_params(vit *m) {
  add_param(m, "embedding.w", (int64_t)D * PX, L_EMB);
  add_param(m, "embedding.b", D, L_NONE);
  add_param(m, "embedding.pos", (int64_t)T * D, L_NONE);
  for (int l = 0; l < m->depth; l++) {
    char n[48];
    static const char *part[PER_BLOCK] = {"attention.ln.g", "attention.ln.b", "attention.qkv.w",
                                          "attention.qkv.b", "attention.out.w", "attention.out.b",
                                          "ffn.ln.g", "ffn.ln.b", "ffn.w1", "ffn.b1", "ffn.w2",
                                          "ffn.b2"};
    const int64_t sz[PER_BLOCK] = {D, D, 3 * D * D, 3 * D, D * D, D, D, D, F * D, F, D * F, D};
    const int lay[PER_BLOCK] = {L_NONE, L_NONE, L_ATT, L_NONE, L_ATT, L_NONE,
                                L_NONE, L_NONE, L_FFN, L_NONE, L_FFN, L_NONE};
    for (int k = 0; k < PER_BLOCK; k++) {
      snprintf(n, sizeof n, "block%d.%s", l, part[k]);
      add_param(m, n, sz[k], lay[k]);
    }
  }
  add_param(m, "norm.g", D, L_NONE);
  add_param(m, "norm.b", D, L_NONE);
  add_param(m, "head.w", (int64_t)C * D, L_HEAD);
  add_param(m, "head.b", C, L_NONE);
}

#define P_BLOCK(l, k) (3 + PER_BLOCK * (l) + (k))
#define P_END(m) (3 + PER_BLOCK * (m)->depth)

static float *master(vit *m, int i) {
  float *p = NULL;
  ds_optimizer_master(m->opt, m->name[i], &p);
  return p;
}

/* A weight matrix in the dtype its layer runs in now. */
static const void *weight(vit *m, int i, ds_dtype *dt) {
  ds_dtype want = m->ldt[m->layer[i]];
  *dt = want;
  if (want == DS_DTYPE_F32) return master(m, i);
  if (want == m->wreg[i]) {
    void *w = NULL;
    ds_dtype wd;
    ds_optimizer_working(m->opt, m->name[i], &w, &wd);
    return w;
  }
  return m->conv[i];
}

/* After an update or a switch: refresh the copies of matrices whose layer runs in a 16-bit
 * dtype other than the optimiser's working copy (e.g. fp16 promoted to bf16). */
static ds_status refresh_conv(vit *m) {
  ds_status st = DS_OK;
  for (int i = 0; i < m->np && !st; i++) {
    if (m->layer[i] == L_NONE) continue;
    ds_dtype want = m->ldt[m->layer[i]];
    if (want == DS_DTYPE_F32 || want == m->wreg[i]) continue;
    if (!m->conv[i]) m->conv[i] = malloc((size_t)m->size[i] * 2);
    if (!m->conv[i]) return DS_ERR_NO_MEMORY;
    st = ds_precision_convert(m->ctx, m->conv[i], want, master(m, i), DS_DTYPE_F32,
                              (size_t)m->size[i]);
  }
  return st;
}

/* ---- GEMM on (batched, strided) matrices ------------------------------------------------ */

typedef struct mat {
  const void *p;
  ds_dtype dt;
  int64_t batch, rows, cols, ld, bstride; /* batch 0: a plain 2-D matrix */
} mat;

static mat M2(const void *p, int64_t rows, int64_t cols) {
  return (mat){p, DS_DTYPE_F32, 0, rows, cols, cols, 0};
}

static mat M3(const void *p, int64_t batch, int64_t rows, int64_t cols, int64_t ld,
              int64_t bstride) {
  return (mat){p, DS_DTYPE_F32, batch, rows, cols, ld, bstride};
}

static void to_tensor(ds_tensor *t, mat x) {
  ds_device cpu = {DS_DEVICE_CPU, 0};
  int64_t s3[3] = {x.batch, x.rows, x.cols}, st3[3] = {x.bstride, x.ld, 1};
  int nd = x.batch ? 3 : 2;
  ds_tensor_init(t, NULL, (void *)x.p, x.dt, nd, x.batch ? s3 : s3 + 1,
                 x.batch ? st3 : st3 + 1, cpu);
}

static ds_status mm(vit *m, mat c, mat a, mat b, uint32_t flags, float alpha) {
  ds_tensor tc, ta, tb;
  to_tensor(&tc, c);
  to_tensor(&ta, a);
  to_tensor(&tb, b);
  return ds_gemm(m->ctx, &tc, &ta, &tb, flags, alpha, 0.0f);
}

/* y [n, out] = x [n, in] W^T, with W (param i, [out, in]) in its layer's dtype. */
static ds_status linear(vit *m, float *y, const float *x, int64_t n, int i, int64_t in,
                        int64_t out) {
  mat w = M2(NULL, out, in);
  w.p = weight(m, i, &w.dt);
  return mm(m, M2(y, n, out), M2(x, n, in), w, DS_GEMM_TRANS_B, 1.0f);
}

/* Backward of linear: dW (grad of param i) = dy^T x; dx = dy W (dx may be NULL). */
static ds_status linear_back(vit *m, float *dx, const float *dy, const float *x, int64_t n,
                             int i, int64_t in, int64_t out) {
  ds_status st = mm(m, M2(m->grad[i], out, in), M2(dy, n, out), M2(x, n, in),
                    DS_GEMM_TRANS_A, 1.0f);
  if (st || !dx) return st;
  mat w = M2(NULL, out, in);
  w.p = weight(m, i, &w.dt);
  return mm(m, M2(dx, n, in), M2(dy, n, out), w, 0, 1.0f);
}

/* ---- workspace ---------------------------------------------------------------------------- */

/* Carves the buffers out of one allocation (first pass with mem NULL only counts). */
static size_t ws_carve(vit_ws *w, int depth, int rows, int train, float *mem) {
  size_t off = 0, n = (size_t)rows * T;
#define TAKE(ptr, count)                          \
  do {                                            \
    (ptr) = mem ? mem + off : NULL;               \
    off += ((size_t)(count) + 15) & ~(size_t)15; \
  } while (0)
  TAKE(w->xp, n * PX);
  for (int l = 0; l <= depth; l++) TAKE(w->h[l], n * D);
  for (int l = 0; l < depth; l++) {
    struct blk *b = &w->b[l];
    TAKE(b->y1, n * D); TAKE(b->mean1, n); TAKE(b->rstd1, n); TAKE(b->qkv, n * 3 * D);
    TAKE(b->att, (size_t)NH * n * T); TAKE(b->ctxb, n * D); TAKE(b->h1, n * D);
    TAKE(b->y2, n * D); TAKE(b->mean2, n); TAKE(b->rstd2, n); TAKE(b->f1, n * F);
    TAKE(b->a, n * F);
  }
  TAKE(w->yf, n * D); TAKE(w->meanf, n); TAKE(w->rstdf, n);
  TAKE(w->pooled, (size_t)rows * D); TAKE(w->logits, (size_t)rows * C); TAKE(w->tmp, n * D);
  if (train) {
    TAKE(w->dh, n * D); TAKE(w->dtmp, n * D); TAKE(w->dqkv, n * 3 * D);
    TAKE(w->dp, (size_t)NH * n * T); TAKE(w->dctx, n * D); TAKE(w->da, n * F);
    TAKE(w->dlg, (size_t)rows * C); TAKE(w->dpooled, (size_t)rows * D);
    TAKE(w->shadow, n * 3 * D); /* the widest checked output: the QKV projection */
  }
#undef TAKE
  return off;
}

static ds_status ws_init(vit_ws *w, int depth, int rows, int train) {
  memset(w, 0, sizeof *w);
  w->rows = rows;
  w->h = calloc((size_t)depth + 1, sizeof *w->h);
  w->b = calloc((size_t)depth, sizeof *w->b);
  if (!w->h || !w->b) return DS_ERR_NO_MEMORY;
  w->floats = ws_carve(w, depth, rows, train, NULL);
  w->mem = malloc(w->floats * sizeof(float));
  if (!w->mem) return DS_ERR_NO_MEMORY;
  ws_carve(w, depth, rows, train, w->mem);
  return DS_OK;
}

static void ws_free(vit_ws *w) {
  free(w->mem);
  free(w->h);
  free(w->b);
}

/* ---- forward ------------------------------------------------------------------------------ */

static void patchify(float *xp, const float *x, int rows) {
  for (int b = 0; b < rows; b++)
    for (int t = 0; t < T; t++) {
      int pi = t / 4, pj = t % 4;
      float *dst = xp + ((size_t)b * T + t) * PX;
      for (int r = 0; r < 7; r++)
        memcpy(dst + r * 7, x + (size_t)b * TFM_IMG + (pi * 7 + r) * 28 + pj * 7,
               7 * sizeof(float));
    }
}

/* On check steps: the layer's output @p low (n elements, from weights in its dtype) against
 * the same product in fp32; the policy may switch the layer. */
static ds_status check_layer(vit *m, int layer, const float *low, const float *x, int64_t n,
                             int wi, int64_t in, int64_t out) {
  const float *shadow = low;
  ds_status st = DS_OK;
  if (m->ldt[layer] != DS_DTYPE_F32) {
    st = mm(m, M2(m->ws.shadow, n, out), M2(x, n, in), M2(master(m, wi), out, in),
            DS_GEMM_TRANS_B, 1.0f);
    shadow = m->ws.shadow;
  }
  ds_dtype next = m->ldt[layer];
  float score = 0;
  if (!st)
    st = ds_precision_policy_observe(m->pol, layer_name[layer], m->step, low, DS_DTYPE_F32,
                                     shadow, n * out, &next, &score);
  if (!st && next != m->ldt[layer]) {
    printf("\n  precision: %s %s -> %s at step %llu (score %.4f)\n", layer_name[layer],
           ds_dtype_name(m->ldt[layer]), ds_dtype_name(next), (unsigned long long)m->step,
           (double)score);
    fflush(stdout);
    m->ldt[layer] = next;
    m->switches++;
    st = refresh_conv(m);
  }
  return st;
}

static ds_status attention_fwd(vit *m, struct blk *b, int rows) {
  int64_t n = (int64_t)rows * T;
  float alpha = 1.0f / sqrtf((float)DH);
  ds_status st = DS_OK;
  for (int h = 0; h < NH && !st; h++) {
    mat q = M3(b->qkv + h * DH, rows, T, DH, 3 * D, T * 3 * D);
    mat k = M3(b->qkv + D + h * DH, rows, T, DH, 3 * D, T * 3 * D);
    st = mm(m, M3(b->att + (size_t)h * n * T, rows, T, T, T, T * T), q, k, DS_GEMM_TRANS_B,
            alpha);
  }
  if (!st) st = ds_softmax_forward(m->ctx, b->att, b->att, NH * n, T, 0);
  for (int h = 0; h < NH && !st; h++) {
    mat v = M3(b->qkv + 2 * D + h * DH, rows, T, DH, 3 * D, T * 3 * D);
    st = mm(m, M3(b->ctxb + h * DH, rows, T, DH, D, T * D),
            M3(b->att + (size_t)h * n * T, rows, T, T, T, T * T), v, 0, 1.0f);
  }
  return st;
}

static ds_status block_fwd(vit *m, vit_ws *w, int l, int rows) {
  ds_context *c = m->ctx;
  struct blk *b = &w->b[l];
  int64_t n = (int64_t)rows * T;
  float *x = w->h[l];
  int p0 = P_BLOCK(l, 0);
  int check = m->check_now && w == &m->ws && l == 0;
  ds_status st = ds_layernorm_forward(c, b->y1, b->mean1, b->rstd1, x, master(m, p0),
                                      master(m, p0 + 1), n, D, 1e-5f);
  if (!st) st = linear(m, b->qkv, b->y1, n, p0 + 2, D, 3 * D);
  if (!st && check) st = check_layer(m, L_ATT, b->qkv, b->y1, n, p0 + 2, D, 3 * D);
  if (!st) st = ds_bias_act_forward(c, b->qkv, b->qkv, master(m, p0 + 3), n, 3 * D, DS_ACT_NONE);
  if (!st) st = attention_fwd(m, b, rows);
  if (!st) st = linear(m, w->tmp, b->ctxb, n, p0 + 4, D, D);
  if (!st) st = ds_bias_act_forward(c, w->tmp, w->tmp, master(m, p0 + 5), n, D, DS_ACT_NONE);
  if (!st) st = ds_elementwise(c, DS_EW_ADD, b->h1, x, w->tmp, 0, n * D);
  if (!st) st = ds_layernorm_forward(c, b->y2, b->mean2, b->rstd2, b->h1, master(m, p0 + 6),
                                     master(m, p0 + 7), n, D, 1e-5f);
  if (!st) st = linear(m, b->f1, b->y2, n, p0 + 8, D, F);
  if (!st && check) st = check_layer(m, L_FFN, b->f1, b->y2, n, p0 + 8, D, F);
  if (!st) st = ds_bias_act_forward(c, b->a, b->f1, master(m, p0 + 9), n, F, DS_ACT_GELU);
  if (!st) st = linear(m, w->tmp, b->a, n, p0 + 10, F, D);
  if (!st) st = ds_bias_act_forward(c, w->tmp, w->tmp, master(m, p0 + 11), n, D, DS_ACT_NONE);
  if (!st) st = ds_elementwise(c, DS_EW_ADD, w->h[l + 1], b->h1, w->tmp, 0, n * D);
  return st;
}

static ds_status forward(vit *m, vit_ws *w, const float *x, int rows) {
  ds_context *c = m->ctx;
  int64_t n = (int64_t)rows * T;
  patchify(w->xp, x, rows);
  ds_status st = linear(m, w->h[0], w->xp, n, 0, PX, D);
  if (!st && m->check_now && w == &m->ws)
    st = check_layer(m, L_EMB, w->h[0], w->xp, n, 0, PX, D);
  if (!st) st = ds_bias_act_forward(c, w->h[0], w->h[0], master(m, 1), n, D, DS_ACT_NONE);
  for (int b = 0; b < rows && !st; b++) /* + the position embedding of each patch */
    st = ds_elementwise(c, DS_EW_ADD, w->h[0] + (size_t)b * T * D, w->h[0] + (size_t)b * T * D,
                        master(m, 2), 0, T * D);
  for (int l = 0; l < m->depth && !st; l++) st = block_fwd(m, w, l, rows);
  int pe = P_END(m);
  if (!st) st = ds_layernorm_forward(c, w->yf, w->meanf, w->rstdf, w->h[m->depth],
                                     master(m, pe), master(m, pe + 1), n, D, 1e-5f);
  for (int b = 0; b < rows && !st; b++) { /* mean over the patches */
    float *p = w->pooled + (size_t)b * D;
    memset(p, 0, D * sizeof(float));
    for (int t = 0; t < T; t++)
      for (int k = 0; k < D; k++) p[k] += w->yf[((size_t)b * T + t) * D + k] * (1.0f / T);
  }
  if (!st) st = linear(m, w->logits, w->pooled, rows, pe + 2, D, C);
  if (!st) st = ds_bias_act_forward(c, w->logits, w->logits, master(m, pe + 3), rows, C,
                                    DS_ACT_NONE);
  return st;
}

/* ---- backward ----------------------------------------------------------------------------- */

/* dbias = sum over rows of dy (bias_act_backward with no activation, in place). */
static ds_status colsum(vit *m, float *dbias, float *dy, int64_t rows, int64_t cols) {
  return ds_bias_act_backward(m->ctx, dy, dbias, dy, dy, NULL, rows, cols, DS_ACT_NONE);
}

static ds_status attention_back(vit *m, vit_ws *w, struct blk *b, int rows) {
  int64_t n = (int64_t)rows * T;
  float alpha = 1.0f / sqrtf((float)DH);
  ds_status st = DS_OK;
  for (int h = 0; h < NH && !st; h++) {
    mat dctx = M3(w->dctx + h * DH, rows, T, DH, D, T * D);
    mat v = M3(b->qkv + 2 * D + h * DH, rows, T, DH, 3 * D, T * 3 * D);
    mat p = M3(b->att + (size_t)h * n * T, rows, T, T, T, T * T);
    st = mm(m, M3(w->dp + (size_t)h * n * T, rows, T, T, T, T * T), dctx, v, DS_GEMM_TRANS_B,
            1.0f);
    if (!st)
      st = mm(m, M3(w->dqkv + 2 * D + h * DH, rows, T, DH, 3 * D, T * 3 * D), p, dctx,
              DS_GEMM_TRANS_A, 1.0f);
  }
  if (!st) st = ds_softmax_backward(m->ctx, w->dp, w->dp, b->att, NH * n, T, 0);
  for (int h = 0; h < NH && !st; h++) {
    mat ds = M3(w->dp + (size_t)h * n * T, rows, T, T, T, T * T);
    mat q = M3(b->qkv + h * DH, rows, T, DH, 3 * D, T * 3 * D);
    mat k = M3(b->qkv + D + h * DH, rows, T, DH, 3 * D, T * 3 * D);
    st = mm(m, M3(w->dqkv + h * DH, rows, T, DH, 3 * D, T * 3 * D), ds, k, 0, alpha);
    if (!st)
      st = mm(m, M3(w->dqkv + D + h * DH, rows, T, DH, 3 * D, T * 3 * D), ds, q,
              DS_GEMM_TRANS_A, alpha);
  }
  return st;
}

/* w->dh holds d(loss)/d(block output); on return, d(loss)/d(block input). */
static ds_status block_back(vit *m, vit_ws *w, int l, int rows) {
  ds_context *c = m->ctx;
  struct blk *b = &w->b[l];
  int64_t n = (int64_t)rows * T;
  int p0 = P_BLOCK(l, 0);
  float **g = m->grad;
  /* ffn: h_out = h1 + W2 gelu(W1 y2 + b1) + b2 */
  memcpy(w->dtmp, w->dh, (size_t)n * D * sizeof(float));
  ds_status st = colsum(m, g[p0 + 11], w->dtmp, n, D);
  if (!st) st = linear_back(m, w->da, w->dtmp, b->a, n, p0 + 10, F, D);
  if (!st) st = ds_bias_act_backward(c, w->da, g[p0 + 9], w->da, b->f1, master(m, p0 + 9), n,
                                     F, DS_ACT_GELU);
  if (!st) st = linear_back(m, w->dtmp, w->da, b->y2, n, p0 + 8, D, F);
  if (!st) st = ds_layernorm_backward(c, w->dtmp, g[p0 + 6], g[p0 + 7], w->dtmp, b->h1, b->mean2,
                                      b->rstd2, master(m, p0 + 6), n, D);
  if (!st) st = ds_elementwise(c, DS_EW_ADD, w->dh, w->dh, w->dtmp, 0, n * D); /* d h1 */
  /* attention: h1 = x + Wo attn(Wqkv y1 + bqkv) + bo */
  if (!st) memcpy(w->dtmp, w->dh, (size_t)n * D * sizeof(float));
  if (!st) st = colsum(m, g[p0 + 5], w->dtmp, n, D);
  if (!st) st = linear_back(m, w->dctx, w->dtmp, b->ctxb, n, p0 + 4, D, D);
  if (!st) st = attention_back(m, w, b, rows);
  if (!st) st = colsum(m, g[p0 + 3], w->dqkv, n, 3 * D);
  if (!st) st = linear_back(m, w->dtmp, w->dqkv, b->y1, n, p0 + 2, D, 3 * D);
  if (!st) st = ds_layernorm_backward(c, w->dtmp, g[p0], g[p0 + 1], w->dtmp, w->h[l], b->mean1,
                                      b->rstd1, master(m, p0), n, D);
  if (!st) st = ds_elementwise(c, DS_EW_ADD, w->dh, w->dh, w->dtmp, 0, n * D); /* d x */
  return st;
}

static ds_status backward(vit *m, vit_ws *w, int rows) {
  ds_context *c = m->ctx;
  int64_t n = (int64_t)rows * T;
  int pe = P_END(m);
  float **g = m->grad;
  ds_status st = colsum(m, g[pe + 3], w->dlg, rows, C);
  if (!st) st = linear_back(m, w->dpooled, w->dlg, w->pooled, rows, pe + 2, D, C);
  for (int b = 0; b < rows && !st; b++) /* the mean spreads the gradient over the patches */
    for (int t = 0; t < T; t++)
      for (int k = 0; k < D; k++)
        w->dh[((size_t)b * T + t) * D + k] = w->dpooled[(size_t)b * D + k] * (1.0f / T);
  if (!st) st = ds_layernorm_backward(c, w->dh, g[pe], g[pe + 1], w->dh, w->h[m->depth],
                                      w->meanf, w->rstdf, master(m, pe), n, D);
  for (int l = m->depth - 1; l >= 0 && !st; l--) st = block_back(m, w, l, rows);
  if (!st) { /* position embedding: summed over the images */
    memset(g[2], 0, sizeof(float) * T * D);
    for (int b = 0; b < rows && !st; b++)
      st = ds_elementwise(c, DS_EW_ADD, g[2], g[2], w->dh + (size_t)b * T * D, 0, T * D);
  }
  if (!st) st = colsum(m, g[1], w->dh, n, D);
  if (!st) st = linear_back(m, NULL, w->dh, w->xp, n, 0, PX, D);
  return st;
}

/* ---- the tfm_net interface ---------------------------------------------------------------- */

static ds_status vit_step(void *impl, const float *x, const int32_t *y, int rows, float *loss,
                          int *correct) {
  vit *m = impl;
  vit_ws *w = &m->ws;
  m->check_now = ds_precision_policy_due(m->pol, m->step);
  ds_status st = forward(m, w, x, rows);
  m->check_now = 0;
  m->step++;
  *correct = 0;
  for (int r = 0; r < rows && !st; r++) {
    int best = 0;
    for (int k = 1; k < C; k++)
      if (w->logits[r * C + k] > w->logits[r * C + best]) best = k;
    *correct += best == y[r];
  }
  if (!st) st = ds_cross_entropy(m->ctx, loss, w->dlg, w->logits, y, rows, C);
  /* loss scaling: backward runs on scale x loss; gradients are unscaled before the update */
  float scale = ds_loss_scaler_scale(m->scaler);
  if (!st) st = ds_elementwise(m->ctx, DS_EW_SCALE, w->dlg, w->dlg, NULL, scale, rows * C);
  if (!st) st = backward(m, w, rows);
  for (int i = 0; i < m->np && !st; i++)
    st = ds_loss_scaler_unscale(m->scaler, m->grad[i], m->grad[i], DS_DTYPE_F32, m->size[i],
                                NULL);
  int skip = 0;
  if (!st) st = ds_loss_scaler_update(m->scaler, 0, &skip);
  if (skip) m->skipped++;
  for (int i = 0; i < m->np && !st && !skip; i++) st = ds_optimizer_step(m->opt, m->name[i], m->grad[i]);
  if (!st && !skip) st = refresh_conv(m);
  return st;
}

static ds_status vit_infer(void *impl, const float *x, int rows, float *logits) {
  vit *m = impl;
  vit_ws w;
  ds_status st = ws_init(&w, m->depth, rows, 0);
  if (!st) st = forward(m, &w, x, rows);
  if (!st) memcpy(logits, w.logits, sizeof(float) * (size_t)rows * C);
  ws_free(&w);
  return st;
}

static int64_t vit_psize(void *impl, int i) { return ((vit *)impl)->size[i]; }
static float *vit_param(void *impl, int i) { return master(impl, i); }

static void vit_report(void *impl) {
  vit *m = impl;
  for (int l = 0; l < NLAYERS - 1; l++) {
    ds_precision_layer_info li;
    memset(&li, 0, sizeof li);
    if (ds_precision_policy_layer(m->pol, layer_name[l], &li) == DS_OK)
      printf("precision: %s rule %s, runs in %s now, %llu checks, %llu switches, last score "
             "%.4f\n", layer_name[l], ds_dtype_name((ds_dtype)li.rule_dtype),
             ds_dtype_name((ds_dtype)li.dtype), (unsigned long long)li.checks,
             (unsigned long long)li.switches, (double)li.last_score);
  }
  printf("loss scaler: scale %.0f, %llu overflowing steps skipped\n",
         (double)ds_loss_scaler_scale(m->scaler), (unsigned long long)m->skipped);
  uint64_t bytes[DS_DTYPE_COUNT] = {0};
  ds_optimizer_memory om = {.struct_size = sizeof(ds_optimizer_memory)};
  if (ds_optimizer_memory_get(m->opt, &om) == DS_OK)
    bytes[DS_DTYPE_F32] += om.master_bytes + om.state_bytes; /* fp32 masters, AdamW m and v */
  for (int i = 0; i < m->np; i++) {
    if (m->wreg[i] != DS_DTYPE_F32) bytes[m->wreg[i]] += (uint64_t)m->size[i] * 2;
    if (m->conv[i]) bytes[m->ldt[m->layer[i]]] += (uint64_t)m->size[i] * 2;
    bytes[DS_DTYPE_F32] += (uint64_t)m->size[i] * 4; /* gradients */
  }
  bytes[DS_DTYPE_F32] += (uint64_t)m->ws.floats * 4; /* activations and their gradients */
  tfm_print_memory(bytes);
}

static void vit_destroy(void *impl) {
  vit *m = impl;
  if (!m) return;
  for (int i = 0; i < m->np; i++) {
    if (m->grad) free(m->grad[i]);
    if (m->conv) free(m->conv[i]);
  }
  free(m->grad);
  free(m->conv);
  free(m->name);
  free(m->size);
  free(m->layer);
  free(m->wreg);
  ws_free(&m->ws);
  ds_loss_scaler_destroy(m->scaler);
  ds_precision_policy_destroy(m->pol);
  ds_optimizer_destroy(m->opt);
  free(m);
}

/* ---- creation ----------------------------------------------------------------------------- */

/* The seed's policy, literally: DynamicPrecision(fp16_layers=['attention','ffn'],
 * bf16_layers=['embedding'], fallback_threshold=0.95). On a CPU without native bf16 the
 * policy's per-device map runs the bf16 rule in fp32 (it says so in the log and in the
 * summary); --mixed forces bf16 anyway, as the MLP's --mixed does. */
static ds_status make_policy(vit *m, const tfm_args *a) {
  ds_precision_rule rules[] = {{"attention", DS_DTYPE_F16}, {"ffn", DS_DTYPE_F16},
                               {"embedding", DS_DTYPE_BF16}};
  ds_precision_policy_options po = DS_PRECISION_POLICY_OPTIONS_INIT;
  po.rules = rules;
  po.nrules = 3;
  po.fallback_threshold = 0.95f;
  po.check_interval = 50;
  if (a->mixed) po.native_bf16 = 1;
  ds_status st = ds_precision_policy_create(&m->pol, m->ctx, &po);
  for (int l = 0; l < NLAYERS && !st; l++) {
    st = ds_precision_policy_dtype(m->pol, layer_name[l], &m->ldt[l]);
    ds_precision_layer_info li;
    memset(&li, 0, sizeof li);
    if (!st) st = ds_precision_policy_layer(m->pol, layer_name[l], &li);
    if (!st)
      printf("precision: %s runs in %s (rule %s)%s\n", layer_name[l], ds_dtype_name(m->ldt[l]),
             ds_dtype_name((ds_dtype)li.rule_dtype),
             li.rule_dtype != li.base_dtype ? ": no native bf16 on this CPU" : "");
  }
  return st;
}

static void init_values(float *v, int64_t n, float sd) {
  for (int64_t k = 0; k < n; k++) { /* Box-Muller */
    double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
    v[k] = sd * (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
  }
}

static ds_status register_params(vit *m, const float *ckpt) {
  ds_status st = DS_OK;
  srand(11);
  for (int i = 0; i < m->np && !st; i++) {
    float *init = calloc((size_t)m->size[i], sizeof(float));
    m->grad[i] = malloc(sizeof(float) * (size_t)m->size[i]);
    if (!init || !m->grad[i]) st = DS_ERR_NO_MEMORY;
    const char *nm = m->name[i];
    size_t len = strlen(nm);
    if (st) {
      free(init);
      break;
    }
    if (ckpt) {
      memcpy(init, ckpt, sizeof(float) * (size_t)m->size[i]);
      ckpt += m->size[i];
    } else if (m->layer[i] != L_NONE) { /* [out, in] matrices: std 1/sqrt(in) */
      int64_t in = !strcmp(nm + len - 2, "w2") ? F : (i == 0 ? PX : D);
      init_values(init, m->size[i], 1.0f / sqrtf((float)in));
    } else if (!strcmp(nm + len - 4, ".pos")) {
      init_values(init, m->size[i], 0.02f);
    } else if (!strcmp(nm + len - 2, ".g")) {
      for (int64_t k = 0; k < m->size[i]; k++) init[k] = 1.0f;
    }
    m->wreg[i] = m->layer[i] == L_NONE ? DS_DTYPE_F32 : m->ldt[m->layer[i]];
    st = ds_optimizer_add_param(m->opt, nm, init, m->size[i], m->wreg[i]);
    free(init);
  }
  return st;
}

ds_status tfm_vit_create(tfm_net *out, ds_context *ctx, const tfm_args *a, const float *ckpt) {
  vit *m = calloc(1, sizeof *m);
  if (!m) return DS_ERR_NO_MEMORY;
  m->ctx = ctx;
  m->depth = a->depth;
  m->bs = a->batch;
  int np = 3 + PER_BLOCK * m->depth + 4;
  m->name = calloc((size_t)np, sizeof *m->name);
  m->size = calloc((size_t)np, sizeof *m->size);
  m->layer = calloc((size_t)np, sizeof *m->layer);
  m->wreg = calloc((size_t)np, sizeof *m->wreg);
  m->conv = calloc((size_t)np, sizeof *m->conv);
  m->grad = calloc((size_t)np, sizeof *m->grad);
  ds_status st = (m->name && m->size && m->layer && m->wreg && m->conv && m->grad)
                     ? DS_OK : DS_ERR_NO_MEMORY;
  if (!st) define_params(m);
  ds_optimizer_options o = DS_OPTIMIZER_OPTIONS_INIT;
  o.kind = DS_OPT_ADAMW;
  o.lr = a->lr;
  o.weight_decay = 0.01f;
  if (!st) st = ds_optimizer_create(&m->opt, ctx, &o);
  ds_loss_scaler_options so = DS_LOSS_SCALER_OPTIONS_INIT;
  if (!st) st = ds_loss_scaler_create(&m->scaler, ctx, &so);
  if (!st) st = make_policy(m, a);
  if (!st) st = register_params(m, ckpt);
  if (!st) st = refresh_conv(m);
  if (!st) st = ws_init(&m->ws, m->depth, m->bs, 1);
  if (st) {
    vit_destroy(m);
    return st;
  }
  static char banner[160];
  snprintf(banner, sizeof banner,
           "vision transformer (16 patches of 7x7, D %d, %d heads, FFN %d, %d blocks), AdamW "
           "lr %g, loss scaling", D, NH, F, m->depth, (double)a->lr);
  *out = (tfm_net){m, banner, "vit.ckpt", m->np, vit_psize, vit_param, vit_step, vit_infer,
                   vit_report, vit_destroy};
  return DS_OK;
}

/* ---- --gradcheck: the hand-written backward pass against finite differences -------------- */

static float loss_of(vit *m, const float *x, const int32_t *y, int rows, float *dlg) {
  float loss = NAN;
  if (forward(m, &m->ws, x, rows) == DS_OK)
    ds_cross_entropy(m->ctx, &loss, dlg, m->ws.logits, y, rows, C);
  return loss;
}

/* A depth-1 model, every layer in fp32, 3 random images: a few entries of every parameter
 * tensor get a central difference (step 1e-2) compared with the analytic gradient. Returns 0
 * when every entry agrees within 1e-4 + 1% of its size (fp32 central differences of this
 * step are good to about 2e-5 here). */
int tfm_vit_gradcheck(ds_context *ctx) {
  enum { ROWS = 3, PER_PARAM = 5 };
  tfm_args a = {.batch = ROWS, .depth = 1, .lr = 1e-3f};
  tfm_net net;
  if (tfm_vit_create(&net, ctx, &a, NULL) != DS_OK) return 1;
  vit *m = net.impl;
  for (int l = 0; l < NLAYERS; l++) m->ldt[l] = DS_DTYPE_F32;
  float x[ROWS * TFM_IMG];
  int32_t y[ROWS] = {1, 4, 7};
  init_values(x, ROWS * TFM_IMG, 1.0f);
  int bad = isnan(loss_of(m, x, y, ROWS, m->ws.dlg)) || backward(m, &m->ws, ROWS) != DS_OK;
  double worst = 0, largest = 0;
  int checked = 0;
  for (int i = 0; i < m->np && !bad; i++)
    for (int j = 0; j < PER_PARAM; j++) {
      int64_t k = ((int64_t)i * 7919 + (int64_t)j * 104729) % m->size[i];
      float *p = master(m, i), orig = p[k], eps = 1e-2f;
      p[k] = orig + eps;
      double lp = loss_of(m, x, y, ROWS, NULL);
      p[k] = orig - eps;
      double lm = loss_of(m, x, y, ROWS, NULL);
      p[k] = orig;
      double num = (lp - lm) / (2.0 * eps), ana = m->grad[i][k];
      double excess = fabs(num - ana) - (1e-4 + 0.01 * fabs(ana));
      if (excess > 0) {
        printf("gradcheck: %s[%lld]: numeric %.6g, analytic %.6g\n", m->name[i], (long long)k,
               num, ana);
        bad = 1;
      }
      if (fabs(num - ana) > worst) worst = fabs(num - ana);
      if (fabs(ana) > largest) largest = fabs(ana);
      checked++;
    }
  printf("gradcheck: %d entries of %d parameter tensors, largest gradient %.3g, largest "
         "difference %.3g: %s\n", checked, m->np, largest, worst, bad ? "FAIL" : "ok");
  net.destroy(net.impl);
  return bad;
}
