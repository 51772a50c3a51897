/* The training kernels on ds_tensor operands (ds_*_tensor): operand checks, then the CUDA
 * kernels (cuda/train.cu) for device tensors, or on the CPU the fp32 kernels of kernels_*.c
 * run over blocks of rows, with 16-bit operands widened into an fp32 block on the way in and
 * rounded once on the way out (so the numerics are the fp32 kernel's, and the scratch is a
 * few tens of KiB whatever the tensor size). */
#include "build_config.h"
#include "cuda_backend.h"
#include "kernels_internal.h"

int ds__tk_host_emulation;

#define TK_BLOCK_FLOATS 8192 /* fp32 elements per operand per block */

/* One call's checked view: device and the [rows, cols] every row tensor shares. */
typedef struct tk_call {
  ds_context *ctx;
  const char *name;
  int dev;       /* -1 unset, 0 host, 1 CUDA */
  int dev_index; /* CUDA ordinal */
  int64_t rows, cols;
  const ds_tensor *first; /* the row tensor that set rows/cols, for messages */
  ds__tk_args a;
} tk_call;

static void tk_begin(tk_call *c, ds_context *ctx, const char *name, int op) {
  memset(c, 0, sizeof *c);
  c->ctx = ctx, c->name = name, c->dev = -1, c->rows = c->cols = -1;
  c->a.op = op;
}

static ds_status tk_device(tk_call *c, const ds_tensor *t, const char *what) {
  int d = t->device.type == DS_DEVICE_CPU || t->device.type == DS_DEVICE_CUDA_HOST ? 0
          : t->device.type == DS_DEVICE_CUDA || t->device.type == DS_DEVICE_CUDA_MANAGED ? 1
                                                                                         : -1;
  if (d < 0 || (c->dev >= 0 && (d != c->dev || (d == 1 && t->device.index != c->dev_index))))
    return ds__error(c->ctx, DS_ERR_UNSUPPORTED, "precision",
                     "%s: %s is on device type %d index %d; all operands must be in host memory "
                     "or on one CUDA device", c->name, what, (int)t->device.type,
                     (int)t->device.index);
  c->dev = d, c->dev_index = t->device.index;
  if (!ds_tensor_is_contiguous(t))
    return ds__error(c->ctx, DS_ERR_INVALID_ARG, "precision", "%s: %s is not contiguous",
                     c->name, what);
  return DS_OK;
}

static ds_status tk_no_ctx(const tk_call *c) {
  return ds__error(NULL, DS_ERR_INVALID_ARG, "precision", "%s: ctx is NULL", c->name);
}

static ds_status tk_missing(tk_call *c, const char *what) {
  return ds__error(c->ctx, DS_ERR_INVALID_ARG, "precision", "%s: %s is NULL", c->name, what);
}

/* A row tensor (activations): f32/f16/bf16, viewed as [rows, cols] (@p flat: as [numel, 1],
 * so only element counts must agree), shared with the other row tensors of the call. */
static ds_status tk_rows(tk_call *c, const ds_tensor *t, const char *what, int required,
                         int flat) {
  if (!t) return required ? tk_missing(c, what) : DS_OK;
  ds_status st = tk_device(c, t, what);
  if (st) return st;
  if (!ds__prec_dtype_ok(t->dtype))
    return ds__error(c->ctx, DS_ERR_DTYPE, "precision", "%s: %s is %s (f32, f16 or bf16)",
                     c->name, what, ds_dtype_name(t->dtype));
  int64_t n = ds_tensor_numel(t), cols = flat ? 1 : t->ndim ? t->shape[t->ndim - 1] : 1;
  int64_t rows = cols ? n / cols : 0;
  if (c->cols < 0) {
    c->rows = rows, c->cols = cols, c->first = t;
    return DS_OK;
  }
  if (rows == c->rows && cols == c->cols) return DS_OK;
  char s1[128], s2[128];
  ds__prec_shape_str(s1, sizeof s1, c->first);
  ds__prec_shape_str(s2, sizeof s2, t);
  if (flat)
    return ds__error(c->ctx, DS_ERR_SHAPE, "precision",
                     "%s: %s %s has not the %lld elements of %s", c->name, what, s2,
                     (long long)c->rows, s1);
  return ds__error(c->ctx, DS_ERR_SHAPE, "precision",
                   "%s: %s is %s, expected %lld rows of %lld as the first operand %s", c->name,
                   what, s2, (long long)c->rows, (long long)c->cols, s1);
}
static ds_status tk_row(tk_call *c, const ds_tensor *t, const char *what, int required) {
  return tk_rows(c, t, what, required, 0);
}
static ds_status tk_flat(tk_call *c, const ds_tensor *t, const char *what, int required) {
  return tk_rows(c, t, what, required, 1);
}

/* A vector (F32) or label tensor (I32, dt) of n elements. */
static ds_status tk_vec(tk_call *c, const ds_tensor *t, const char *what, int required,
                        int64_t n, ds_dtype dt) {
  if (!t) return required ? tk_missing(c, what) : DS_OK;
  ds_status st = tk_device(c, t, what);
  if (st) return st;
  if (t->dtype != (int32_t)dt)
    return ds__error(c->ctx, DS_ERR_DTYPE, "precision", "%s: %s is %s (%s expected)", c->name,
                     what, ds_dtype_name(t->dtype), ds_dtype_name(dt));
  if (ds_tensor_numel(t) != n) {
    char s[128];
    ds__prec_shape_str(s, sizeof s, t);
    return ds__error(c->ctx, DS_ERR_SHAPE, "precision", "%s: %s is %s, expected %lld elements",
                     c->name, what, s, (long long)n);
  }
  return DS_OK;
}

static void tk_out(tk_call *c, int slot, ds_tensor *t) {
  c->a.out[slot] = t ? t->data : NULL;
  c->a.out_dt[slot] = t ? t->dtype : 0;
}
static void tk_in(tk_call *c, int slot, const ds_tensor *t) {
  c->a.in[slot] = t ? t->data : NULL;
  c->a.in_dt[slot] = t ? t->dtype : 0;
}

/* Runs the call on CUDA (device tensors), or through the CUDA kernel code on the host when
 * the tests ask for it; *done = 0 leaves it to the CPU path. */
static ds_status tk_offload(tk_call *c, int *done) {
  c->a.rows = c->rows, c->a.cols = c->cols;
  *done = 1;
  if (c->dev == 1) return ds__cuda_train(c->ctx, &c->a, c->name);
#if DS_HAVE_CUDA
  if (ds__tk_host_emulation) {
    char msg[256] = "";
    ds_status st = ds__cuda_train_host_run(&c->a, msg, sizeof msg);
    return st ? ds__error(c->ctx, st, "precision", "%s (CUDA code on the host): %s", c->name, msg)
              : DS_OK;
  }
#endif
  *done = 0;
  return DS_OK;
}

/* ---- the CPU block driver ---- */

/* One block of rows [r0, r0 + nr) with every operand as fp32 (p[i], NULL where absent). */
typedef ds_status (*tk_block_fn)(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u);

typedef struct tk_op {
  void *data;
  int dtype, out;
} tk_op;

static void tk_convert_rows(const ds__prec_kernels *k, const tk_op *o, float *f, int64_t off,
                            size_t n, int to_f32) {
  uint16_t *h = (uint16_t *)o->data + off;
  if (to_f32)
    (o->dtype == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(f, h, n);
  else
    (o->dtype == DS_DTYPE_F16 ? k->f32_to_f16 : k->f32_to_bf16)(h, f, n);
}

static ds_status tk_blocks(tk_call *c, tk_op *ops, int nops, tk_block_fn fn, void *u) {
  int wide = 0;
  for (int i = 0; i < nops; i++) wide |= ops[i].data && ops[i].dtype != DS_DTYPE_F32;
  float *p[6];
  if (!wide) { /* all fp32: one block, no copies */
    for (int i = 0; i < nops; i++) p[i] = ops[i].data;
    return fn(c, p, 0, c->rows, u);
  }
  int64_t cols = c->cols, br = cols >= TK_BLOCK_FLOATS ? 1 : TK_BLOCK_FLOATS / cols;
  if (br > c->rows) br = c->rows;
  float *scratch = ds__alloc(c->ctx, (size_t)(nops * br * cols) * sizeof(float));
  if (!scratch)
    return ds__error(c->ctx, DS_ERR_NO_MEMORY, "precision", "%s: no memory for a block", c->name);
  const ds__prec_kernels *k = ds__prec_kernels_ctx(c->ctx);
  ds_status st = DS_OK;
  for (int64_t r0 = 0; r0 < c->rows && st == DS_OK; r0 += br) {
    int64_t nr = c->rows - r0 < br ? c->rows - r0 : br;
    size_t n = (size_t)(nr * cols);
    for (int i = 0; i < nops; i++) {
      p[i] = !ops[i].data ? NULL
             : ops[i].dtype == DS_DTYPE_F32 ? (float *)ops[i].data + r0 * cols
                                            : scratch + (int64_t)i * br * cols;
      if (p[i] && ops[i].dtype != DS_DTYPE_F32 && !ops[i].out)
        tk_convert_rows(k, &ops[i], p[i], r0 * cols, n, 1);
    }
    st = fn(c, p, r0, nr, u);
    for (int i = 0; i < nops && st == DS_OK; i++)
      if (p[i] && ops[i].out && ops[i].dtype != DS_DTYPE_F32)
        tk_convert_rows(k, &ops[i], p[i], r0 * cols, n, 0);
  }
  ds__free(c->ctx, scratch);
  return st;
}

/* Parameter gradients (dbias, dgamma, dbeta) summed over blocks: the first block writes the
 * caller's vector, later ones a temporary that is added in. */
typedef struct tk_grads {
  float *dst[2], *tmp[2];
  const float *vec[6]; /* per-op vectors: bias, gamma, beta, mean, rstd, ... */
  const int32_t *labels;
  double total;
} tk_grads;

static ds_status tk_grads_init(tk_call *c, tk_grads *g) {
  for (int i = 0; i < 2; i++) {
    g->tmp[i] = NULL;
    if (g->dst[i] && c->rows > (c->cols >= TK_BLOCK_FLOATS ? 1 : TK_BLOCK_FLOATS / c->cols) &&
        !(g->tmp[i] = ds__alloc(c->ctx, (size_t)c->cols * sizeof(float))))
      return ds__error(c->ctx, DS_ERR_NO_MEMORY, "precision", "%s: no memory", c->name);
  }
  return DS_OK;
}
static float *tk_grad_target(tk_grads *g, int i, int64_t r0) {
  return !g->dst[i] ? NULL : r0 == 0 || !g->tmp[i] ? g->dst[i] : g->tmp[i];
}
static void tk_grad_add(tk_call *c, tk_grads *g, int64_t r0) {
  for (int i = 0; i < 2; i++)
    if (g->dst[i] && g->tmp[i] && r0 > 0)
      for (int64_t j = 0; j < c->cols; j++) g->dst[i][j] += g->tmp[i][j];
}
static void tk_grads_free(tk_call *c, tk_grads *g) {
  ds__free(c->ctx, g->tmp[0]);
  ds__free(c->ctx, g->tmp[1]);
}

static const float *fvec(const ds_tensor *t) { return t ? (const float *)t->data : NULL; }
static float *fvec_out(ds_tensor *t) { return t ? (float *)t->data : NULL; }

/* ---- bias + activation ---- */

static ds_status blk_bias_fwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  (void)r0;
  tk_grads *g = u;
  return ds_bias_act_forward(c->ctx, p[0], p[1], g->vec[0], nr, c->cols,
                             (ds_activation)c->a.flag);
}

ds_status ds_bias_act_forward_tensor(ds_context *ctx, ds_tensor *y, const ds_tensor *x,
                                     const ds_tensor *bias, ds_activation act) {
  tk_call c;
  tk_begin(&c, ctx, "bias_act_forward", DS__TK_BIAS_ACT_FWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, x, "x", 1)) || (st = tk_row(&c, y, "y", 1)) ||
      (st = tk_vec(&c, bias, "bias", 0, c.cols, DS_DTYPE_F32)))
    return st;
  if ((unsigned)act > DS_ACT_SILU)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "%s: unknown activation %d", c.name,
                     (int)act);
  tk_out(&c, 0, y), tk_in(&c, 0, x), tk_in(&c, 1, bias), c.a.flag = (int)act;
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  tk_grads g = {{NULL, NULL}, {NULL, NULL}, {fvec(bias)}, NULL, 0};
  tk_op ops[] = {{y->data, y->dtype, 1}, {x->data, x->dtype, 0}};
  return tk_blocks(&c, ops, 2, blk_bias_fwd, &g);
}

static ds_status blk_bias_bwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u;
  ds_status st = ds_bias_act_backward(c->ctx, p[0], tk_grad_target(g, 0, r0), p[1], p[2],
                                      g->vec[0], nr, c->cols, (ds_activation)c->a.flag);
  if (st == DS_OK) tk_grad_add(c, g, r0);
  return st;
}

ds_status ds_bias_act_backward_tensor(ds_context *ctx, ds_tensor *dx, ds_tensor *dbias,
                                      const ds_tensor *dy, const ds_tensor *x,
                                      const ds_tensor *bias, ds_activation act) {
  tk_call c;
  tk_begin(&c, ctx, "bias_act_backward", DS__TK_BIAS_ACT_BWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, dy, "dy", 1)) || (st = tk_row(&c, x, "x", 1)) ||
      (st = tk_row(&c, dx, "dx", 1)) || (st = tk_vec(&c, bias, "bias", 0, c.cols, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, dbias, "dbias", 0, c.cols, DS_DTYPE_F32)))
    return st;
  if ((unsigned)act > DS_ACT_SILU)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "%s: unknown activation %d", c.name,
                     (int)act);
  tk_out(&c, 0, dx), tk_out(&c, 1, dbias);
  tk_in(&c, 0, dy), tk_in(&c, 1, x), tk_in(&c, 2, bias), c.a.flag = (int)act;
  int done;
  if ((st = tk_offload(&c, &done)) || done) return st;
  if (!c.rows || !c.cols) {
    if (dbias)
      for (int64_t j = 0; j < c.cols; j++) ((float *)dbias->data)[j] = 0.0f;
    return DS_OK;
  }
  tk_grads g = {{fvec_out(dbias), NULL}, {NULL, NULL}, {fvec(bias)}, NULL, 0};
  if ((st = tk_grads_init(&c, &g)) == DS_OK) {
    tk_op ops[] = {{dx->data, dx->dtype, 1}, {dy->data, dy->dtype, 0}, {x->data, x->dtype, 0}};
    st = tk_blocks(&c, ops, 3, blk_bias_bwd, &g);
  }
  tk_grads_free(&c, &g);
  return st;
}

/* ---- softmax ---- */

static ds_status blk_softmax_fwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  (void)r0, (void)u;
  return ds_softmax_forward(c->ctx, p[0], p[1], nr, c->cols, c->a.flag);
}
static ds_status blk_softmax_bwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  (void)r0, (void)u;
  return ds_softmax_backward(c->ctx, p[0], p[1], p[2], nr, c->cols, c->a.flag);
}

ds_status ds_softmax_forward_tensor(ds_context *ctx, ds_tensor *y, const ds_tensor *x,
                                    int log_softmax) {
  tk_call c;
  tk_begin(&c, ctx, "softmax_forward", DS__TK_SOFTMAX_FWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, x, "x", 1)) || (st = tk_row(&c, y, "y", 1))) return st;
  tk_out(&c, 0, y), tk_in(&c, 0, x), c.a.flag = !!log_softmax;
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  tk_op ops[] = {{y->data, y->dtype, 1}, {x->data, x->dtype, 0}};
  return tk_blocks(&c, ops, 2, blk_softmax_fwd, NULL);
}

ds_status ds_softmax_backward_tensor(ds_context *ctx, ds_tensor *dx, const ds_tensor *dy,
                                     const ds_tensor *y, int log_softmax) {
  tk_call c;
  tk_begin(&c, ctx, "softmax_backward", DS__TK_SOFTMAX_BWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, dy, "dy", 1)) || (st = tk_row(&c, y, "y", 1)) ||
      (st = tk_row(&c, dx, "dx", 1)))
    return st;
  tk_out(&c, 0, dx), tk_in(&c, 0, dy), tk_in(&c, 1, y), c.a.flag = !!log_softmax;
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  tk_op ops[] = {{dx->data, dx->dtype, 1}, {dy->data, dy->dtype, 0}, {y->data, y->dtype, 0}};
  return tk_blocks(&c, ops, 3, blk_softmax_bwd, NULL);
}

/* ---- LayerNorm and RMSNorm ---- */

static float *at(float *v, int64_t r0) { return v ? v + r0 : NULL; }
static const float *cat(const float *v, int64_t r0) { return v ? v + r0 : NULL; }

static ds_status blk_ln_fwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u; /* vec: gamma, beta; dst: mean, rstd (per row) */
  return ds_layernorm_forward(c->ctx, p[0], at(g->dst[0], r0), at(g->dst[1], r0), p[1],
                              g->vec[0], g->vec[1], nr, c->cols, c->a.eps);
}
static ds_status blk_ln_bwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u; /* vec: mean, rstd, gamma */
  ds_status st = ds_layernorm_backward(c->ctx, p[0], tk_grad_target(g, 0, r0),
                                       tk_grad_target(g, 1, r0), p[1], p[2], g->vec[0] + r0,
                                       g->vec[1] + r0, g->vec[2], nr, c->cols);
  if (st == DS_OK) tk_grad_add(c, g, r0);
  return st;
}
static ds_status blk_rms_fwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u;
  return ds_rmsnorm_forward(c->ctx, p[0], at(g->dst[0], r0), p[1], g->vec[0], nr, c->cols,
                            c->a.eps);
}
static ds_status blk_rms_bwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u; /* vec: rstd, gamma */
  ds_status st = ds_rmsnorm_backward(c->ctx, p[0], tk_grad_target(g, 0, r0), p[1], p[2],
                                     cat(g->vec[0], r0), g->vec[1], nr, c->cols);
  if (st == DS_OK) tk_grad_add(c, g, r0);
  return st;
}

ds_status ds_layernorm_forward_tensor(ds_context *ctx, ds_tensor *y, ds_tensor *mean,
                                      ds_tensor *rstd, const ds_tensor *x,
                                      const ds_tensor *gamma, const ds_tensor *beta, float eps) {
  tk_call c;
  tk_begin(&c, ctx, "layernorm_forward", DS__TK_LN_FWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, x, "x", 1)) || (st = tk_row(&c, y, "y", 1)) ||
      (st = tk_vec(&c, mean, "mean", 0, c.rows, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, rstd, "rstd", 0, c.rows, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, gamma, "gamma", 0, c.cols, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, beta, "beta", 0, c.cols, DS_DTYPE_F32)))
    return st;
  tk_out(&c, 0, y), tk_out(&c, 1, mean), tk_out(&c, 2, rstd);
  tk_in(&c, 0, x), tk_in(&c, 1, gamma), tk_in(&c, 2, beta), c.a.eps = eps;
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  tk_grads g = {{fvec_out(mean), fvec_out(rstd)}, {NULL, NULL}, {fvec(gamma), fvec(beta)}, NULL, 0};
  tk_op ops[] = {{y->data, y->dtype, 1}, {x->data, x->dtype, 0}};
  return tk_blocks(&c, ops, 2, blk_ln_fwd, &g);
}

ds_status ds_layernorm_backward_tensor(ds_context *ctx, ds_tensor *dx, ds_tensor *dgamma,
                                       ds_tensor *dbeta, const ds_tensor *dy, const ds_tensor *x,
                                       const ds_tensor *mean, const ds_tensor *rstd,
                                       const ds_tensor *gamma) {
  tk_call c;
  tk_begin(&c, ctx, "layernorm_backward", DS__TK_LN_BWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, dy, "dy", 1)) || (st = tk_row(&c, x, "x", 1)) ||
      (st = tk_row(&c, dx, "dx", 1)) || (st = tk_vec(&c, mean, "mean", 1, c.rows, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, rstd, "rstd", 1, c.rows, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, gamma, "gamma", 0, c.cols, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, dgamma, "dgamma", 0, c.cols, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, dbeta, "dbeta", 0, c.cols, DS_DTYPE_F32)))
    return st;
  tk_out(&c, 0, dx), tk_out(&c, 1, dgamma), tk_out(&c, 2, dbeta);
  tk_in(&c, 0, dy), tk_in(&c, 1, x), tk_in(&c, 2, mean), tk_in(&c, 3, rstd), tk_in(&c, 4, gamma);
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.cols) return st;
  if (!c.rows) { /* no rows: the parameter gradients are zero */
    for (int64_t j = 0; j < c.cols; j++) {
      if (dgamma) ((float *)dgamma->data)[j] = 0.0f;
      if (dbeta) ((float *)dbeta->data)[j] = 0.0f;
    }
    return DS_OK;
  }
  tk_grads g = {{fvec_out(dgamma), fvec_out(dbeta)}, {NULL, NULL},
                {fvec(mean), fvec(rstd), fvec(gamma)}, NULL, 0};
  if ((st = tk_grads_init(&c, &g)) == DS_OK) {
    tk_op ops[] = {{dx->data, dx->dtype, 1}, {dy->data, dy->dtype, 0}, {x->data, x->dtype, 0}};
    st = tk_blocks(&c, ops, 3, blk_ln_bwd, &g);
  }
  tk_grads_free(&c, &g);
  return st;
}

ds_status ds_rmsnorm_forward_tensor(ds_context *ctx, ds_tensor *y, ds_tensor *rstd,
                                    const ds_tensor *x, const ds_tensor *gamma, float eps) {
  tk_call c;
  tk_begin(&c, ctx, "rmsnorm_forward", DS__TK_RMS_FWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, x, "x", 1)) || (st = tk_row(&c, y, "y", 1)) ||
      (st = tk_vec(&c, rstd, "rstd", 0, c.rows, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, gamma, "gamma", 0, c.cols, DS_DTYPE_F32)))
    return st;
  tk_out(&c, 0, y), tk_out(&c, 1, rstd), tk_in(&c, 0, x), tk_in(&c, 1, gamma), c.a.eps = eps;
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  tk_grads g = {{fvec_out(rstd), NULL}, {NULL, NULL}, {fvec(gamma)}, NULL, 0};
  tk_op ops[] = {{y->data, y->dtype, 1}, {x->data, x->dtype, 0}};
  return tk_blocks(&c, ops, 2, blk_rms_fwd, &g);
}

ds_status ds_rmsnorm_backward_tensor(ds_context *ctx, ds_tensor *dx, ds_tensor *dgamma,
                                     const ds_tensor *dy, const ds_tensor *x,
                                     const ds_tensor *rstd, const ds_tensor *gamma) {
  tk_call c;
  tk_begin(&c, ctx, "rmsnorm_backward", DS__TK_RMS_BWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st;
  if ((st = tk_row(&c, dy, "dy", 1)) || (st = tk_row(&c, x, "x", 1)) ||
      (st = tk_row(&c, dx, "dx", 1)) || (st = tk_vec(&c, rstd, "rstd", 1, c.rows, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, gamma, "gamma", 0, c.cols, DS_DTYPE_F32)) ||
      (st = tk_vec(&c, dgamma, "dgamma", 0, c.cols, DS_DTYPE_F32)))
    return st;
  tk_out(&c, 0, dx), tk_out(&c, 1, dgamma);
  tk_in(&c, 0, dy), tk_in(&c, 1, x), tk_in(&c, 2, rstd), tk_in(&c, 3, gamma);
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.cols) return st;
  if (!c.rows) {
    for (int64_t j = 0; j < c.cols && dgamma; j++) ((float *)dgamma->data)[j] = 0.0f;
    return DS_OK;
  }
  tk_grads g = {{fvec_out(dgamma), NULL}, {NULL, NULL}, {fvec(rstd), fvec(gamma)}, NULL, 0};
  if ((st = tk_grads_init(&c, &g)) == DS_OK) {
    tk_op ops[] = {{dx->data, dx->dtype, 1}, {dy->data, dy->dtype, 0}, {x->data, x->dtype, 0}};
    st = tk_blocks(&c, ops, 3, blk_rms_bwd, &g);
  }
  tk_grads_free(&c, &g);
  return st;
}

/* ---- cross-entropy, embedding ---- */

static ds_status blk_ce(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u;
  ds__ce_rows(&g->total, p[0], p[1], g->labels + r0, nr, c->cols, c->rows);
  return DS_OK;
}

ds_status ds_cross_entropy_tensor(ds_context *ctx, float *loss, ds_tensor *dlogits,
                                  const ds_tensor *logits, const ds_tensor *labels) {
  tk_call c;
  tk_begin(&c, ctx, "cross_entropy", DS__TK_CE);
  if (!ctx) return tk_no_ctx(&c);
  if (!loss) return tk_missing(&c, "loss");
  ds_status st;
  if ((st = tk_row(&c, logits, "logits", 1)) || (st = tk_row(&c, dlogits, "dlogits", 0)) ||
      (st = tk_vec(&c, labels, "labels", 1, c.rows, DS_DTYPE_I32)))
    return st;
  if (c.rows && !c.cols)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "cross_entropy: no classes");
  tk_out(&c, 0, dlogits), tk_in(&c, 0, logits), tk_in(&c, 1, labels);
  *loss = 0.0f;
  if (!c.rows) return DS_OK;
  if (c.dev == 0 && (st = ds__check_labels(ctx, c.name, labels->data, c.rows, c.cols))) return st;
  int done;
  if ((st = tk_offload(&c, &done)) || done) {
    if (done && st == DS_OK) *loss = (float)c.a.result;
    return st;
  }
  tk_grads g = {{NULL, NULL}, {NULL, NULL}, {NULL}, labels->data, 0};
  tk_op ops[] = {{dlogits ? dlogits->data : NULL, dlogits ? dlogits->dtype : 0, 1},
                 {logits->data, logits->dtype, 0}};
  if ((st = tk_blocks(&c, ops, 2, blk_ce, &g)) == DS_OK) *loss = (float)(g.total / (double)c.rows);
  return st;
}

/* Embedding operands: table [vocab, dim] and y/dy [n, dim] are row tensors of different row
 * counts, so they are checked here. */
static ds_status tk_embedding(tk_call *c, const ds_tensor *tab, const char *tname,
                              const ds_tensor *rows, const char *rname, const ds_tensor *ids,
                              int tab_f32_only) {
  ds_status st;
  if (!tab) return tk_missing(c, tname);
  if ((st = tk_row(c, tab, tname, 1))) return st;
  if (tab_f32_only && tab->dtype != DS_DTYPE_F32)
    return ds__error(c->ctx, DS_ERR_DTYPE, "precision", "%s: %s is %s (f32 expected)", c->name,
                     tname, ds_dtype_name(tab->dtype));
  int64_t vocab = c->rows, dim = c->cols;
  c->cols = -1; /* the row operand sets [n, dim] now */
  if ((st = tk_row(c, rows, rname, 1))) return st;
  if (c->cols != dim) {
    char s1[128], s2[128];
    ds__prec_shape_str(s1, sizeof s1, tab);
    ds__prec_shape_str(s2, sizeof s2, rows);
    return ds__error(c->ctx, DS_ERR_SHAPE, "precision", "%s: %s %s and %s %s differ in dim",
                     c->name, tname, s1, rname, s2);
  }
  if ((st = tk_vec(c, ids, "ids", 1, c->rows, DS_DTYPE_I32))) return st;
  c->a.vocab = vocab;
  if (c->dev == 0 && c->cols)
    return ds__check_labels(c->ctx, c->name, ids->data, c->rows, vocab);
  return DS_OK;
}

ds_status ds_embedding_forward_tensor(ds_context *ctx, ds_tensor *y, const ds_tensor *table,
                                      const ds_tensor *ids) {
  tk_call c;
  tk_begin(&c, ctx, "embedding_forward", DS__TK_EMB_FWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st = tk_embedding(&c, table, "table", y, "y", ids, 0);
  if (st) return st;
  tk_out(&c, 0, y), tk_in(&c, 0, table), tk_in(&c, 1, ids);
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  size_t ts = ds_dtype_size(table->dtype), ys = ds_dtype_size(y->dtype);
  const int32_t *id = ids->data;
  for (int64_t i = 0; i < c.rows && st == DS_OK; i++)
    st = ds_precision_convert(ctx, (char *)y->data + (size_t)(i * c.cols) * ys, y->dtype,
                              (const char *)table->data + (size_t)(id[i] * c.cols) * ts,
                              table->dtype, (size_t)c.cols);
  return st;
}

static ds_status blk_emb_bwd(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  tk_grads *g = u;
  return ds_embedding_backward(c->ctx, g->dst[0], p[0], g->labels + r0, nr, c->a.vocab, c->cols);
}

ds_status ds_embedding_backward_tensor(ds_context *ctx, ds_tensor *dtable, const ds_tensor *dy,
                                       const ds_tensor *ids) {
  tk_call c;
  tk_begin(&c, ctx, "embedding_backward", DS__TK_EMB_BWD);
  if (!ctx) return tk_no_ctx(&c);
  ds_status st = tk_embedding(&c, dtable, "dtable", dy, "dy", ids, 1);
  if (st) return st;
  tk_out(&c, 0, dtable), tk_in(&c, 0, dy), tk_in(&c, 1, ids);
  int done;
  if ((st = tk_offload(&c, &done)) || done || !c.rows || !c.cols) return st;
  tk_grads g = {{dtable->data, NULL}, {NULL, NULL}, {NULL}, ids->data, 0};
  tk_op ops[] = {{dy->data, dy->dtype, 0}};
  return tk_blocks(&c, ops, 1, blk_emb_bwd, &g);
}

/* ---- elementwise, reductions (flat: viewed as [n, 1]) ---- */

static ds_status blk_ew(tk_call *c, float *const *p, int64_t r0, int64_t nr, void *u) {
  (void)r0, (void)u;
  return ds_elementwise(c->ctx, (ds_elementwise_op)c->a.flag, p[0], p[1], p[2], c->a.s, nr);
}

ds_status ds_elementwise_tensor(ds_context *ctx, ds_elementwise_op op, ds_tensor *y,
                                const ds_tensor *a, const ds_tensor *b, float s) {
  tk_call c;
  tk_begin(&c, ctx, "elementwise", DS__TK_EW);
  if (!ctx) return tk_no_ctx(&c);
  if ((unsigned)op > DS_EW_SCALE)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "elementwise: unknown op %d", (int)op);
  ds_status st;
  if ((st = tk_flat(&c, a, "a", 1)) || (st = tk_flat(&c, y, "y", 1)) ||
      (op != DS_EW_SCALE && (st = tk_flat(&c, b, "b", 1))))
    return st;
  tk_out(&c, 0, y), tk_in(&c, 0, a), tk_in(&c, 1, op == DS_EW_SCALE ? NULL : b);
  c.a.flag = (int)op, c.a.s = s;
  int64_t n = c.rows; /* flat: [n, 1] for the CPU blocks; the CUDA side takes n as cols */
  c.rows = 1, c.cols = n;
  int done;
  if ((st = tk_offload(&c, &done)) || done || !n) return st;
  c.rows = n, c.cols = 1;
  tk_op ops[] = {{y->data, y->dtype, 1},
                 {a->data, a->dtype, 0},
                 {op == DS_EW_SCALE ? NULL : b->data, op == DS_EW_SCALE ? 0 : b->dtype, 0}};
  return tk_blocks(&c, ops, 3, blk_ew, NULL);
}

ds_status ds_reduce_tensor(ds_context *ctx, double *out, ds_reduce_op op, const ds_tensor *x) {
  tk_call c;
  tk_begin(&c, ctx, "reduce", DS__TK_REDUCE);
  if (!ctx) return tk_no_ctx(&c);
  if (!out) return tk_missing(&c, "out");
  if ((unsigned)op > DS_REDUCE_ALL_FINITE)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "reduce: unknown op %d", (int)op);
  ds_status st = tk_flat(&c, x, "x", 1);
  if (st) return st;
  tk_in(&c, 0, x), c.a.flag = (int)op;
  int64_t n = c.rows;
  c.rows = 1, c.cols = n;
  if (n == 0) { /* as ds_reduce: 0 elements give 0, or 1 for all-finite */
    *out = op == DS_REDUCE_ALL_FINITE ? 1.0 : 0.0;
    return DS_OK;
  }
  int done;
  if ((st = tk_offload(&c, &done)) || done) {
    if (done && st == DS_OK) *out = c.a.result;
    return st;
  }
  return ds_reduce(ctx, out, op, x->data, (ds_dtype)x->dtype, n);
}
