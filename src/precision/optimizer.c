/* Optimisers (SGD with momentum, AdamW) holding fp32 master weights, their state (fp32, or
 * bf16 with stochastic rounding) and a low-precision working copy per named parameter, with
 * memory accounting by role and dtype. A bf16 parameter may keep its master split into two
 * 16-bit planes, the high one being the working copy itself. ds_optimizer_step_linear
 * consumes a linear layer's weight gradient in row tiles as ds_gemm produces them, so no
 * whole-layer gradient buffer exists. */
#include <math.h>

#include "precision_internal.h"

enum { BLOCK = 512 }; /* elements per update block: the fp32 scratch stays in L1 */

typedef struct param {
  char *name;
  int64_t n;
  ds_dtype wdtype;
  int split;        /* master = hi << 16 | lo, hi being the bf16 working copy */
  float *master;    /* fp32 master; NULL when split */
  uint16_t *lo;     /* split: the low 16 bits of each master */
  void *working;    /* == master for f32; the high plane when split */
  void *state[2];   /* momentum, or AdamW's m and v; fp32 or bf16 (state_dtype) */
  uint32_t seed;    /* of the stochastic rounding of bf16 state */
  uint64_t steps;
} param;

struct ds_optimizer {
  ds_context *ctx;
  ds_optimizer_options opt;
  param *params;
  size_t nparams, cap;
  float *tile;      /* fp32 gradient tile of ds_optimizer_step_linear, kept for reuse */
  size_t tile_size; /* its elements */
};

static int nstates(const ds_optimizer *o) { return o->opt.kind == DS_OPT_ADAMW ? 2 : 1; }

ds_status ds_optimizer_create(ds_optimizer **out, ds_context *ctx,
                              const ds_optimizer_options *opts) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "optimizer_create: NULL out or ctx");
  *out = NULL;
  ds_optimizer_options defaults = DS_OPTIMIZER_OPTIONS_INIT;
  const ds_optimizer_options *o = opts ? opts : &defaults;
  if (o->struct_size != sizeof *o)
    return ds__error(ctx, DS_ERR_ABI, "precision", "optimizer: struct_size %u, expected %zu",
                     o->struct_size, sizeof *o);
  if ((o->kind != DS_OPT_SGD && o->kind != DS_OPT_ADAMW) || !(o->lr > 0.0f) ||
      !(o->momentum >= 0.0f && o->momentum < 1.0f) || !(o->beta1 >= 0.0f && o->beta1 < 1.0f) ||
      !(o->beta2 >= 0.0f && o->beta2 < 1.0f) || !(o->eps > 0.0f) || !(o->weight_decay >= 0.0f) ||
      (o->split_master != 0 && o->split_master != 1))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "optimizer: kind SGD/AdamW, lr > 0, momentum/betas in [0, 1), eps > 0, "
                     "weight_decay >= 0, split_master 0 or 1");
  if (o->state_dtype != DS_DTYPE_F32 && o->state_dtype != DS_DTYPE_BF16)
    return ds__error(ctx, DS_ERR_DTYPE, "precision", "optimizer: state dtype %s (f32 or bf16)",
                     ds_dtype_name((ds_dtype)o->state_dtype));
  ds_optimizer *opt = ds__calloc(ctx, 1, sizeof *opt);
  if (!opt) return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "optimizer: no memory");
  opt->ctx = ctx;
  opt->opt = *o;
  *out = opt;
  return DS_OK;
}

static void param_free(ds_context *ctx, param *p) {
  if (p->working != p->master) ds__free(ctx, p->working);
  ds__free(ctx, p->master);
  ds__free(ctx, p->lo);
  ds__free(ctx, p->state[0]);
  ds__free(ctx, p->state[1]);
  ds__free(ctx, p->name);
}

void ds_optimizer_destroy(ds_optimizer *o) {
  if (!o) return;
  for (size_t i = 0; i < o->nparams; i++) param_free(o->ctx, &o->params[i]);
  ds__free(o->ctx, o->params);
  ds__free(o->ctx, o->tile);
  ds__free(o->ctx, o);
}

static param *find(ds_optimizer *o, const char *name) {
  for (size_t i = 0; i < o->nparams; i++)
    if (!strcmp(o->params[i].name, name)) return &o->params[i];
  return NULL;
}

/* Masters [i, i + c) as fp32 into buf (or a pointer straight into the fp32 master). */
static float *master_load(const param *p, float *buf, int64_t i, size_t c) {
  if (!p->split) return p->master + i;
  const uint16_t *hi = (const uint16_t *)p->working + i, *lo = p->lo + i;
  for (size_t j = 0; j < c; j++) buf[j] = ds__bits_f32((uint32_t)hi[j] << 16 | lo[j]);
  return buf;
}

/* Stores masters [i, i + c) from w, and refreshes the working copy: the split planes are
 * the master's bits (the working bf16 is the master truncated toward zero); a separate
 * 16-bit copy is the master rounded to nearest even. */
static void master_store(const ds__prec_kernels *k, param *p, const float *w, int64_t i,
                         size_t c) {
  if (p->split) {
    uint16_t *hi = (uint16_t *)p->working + i, *lo = p->lo + i;
    for (size_t j = 0; j < c; j++) {
      uint32_t b = ds__f32_bits(w[j]);
      hi[j] = (uint16_t)(b >> 16), lo[j] = (uint16_t)b;
    }
    return;
  }
  if (w != p->master + i) memcpy(p->master + i, w, c * sizeof(float));
  if (p->wdtype == DS_DTYPE_BF16) k->f32_to_bf16((uint16_t *)p->working + i, p->master + i, c);
  if (p->wdtype == DS_DTYPE_F16) k->f32_to_f16((uint16_t *)p->working + i, p->master + i, c);
}

/* One state array's [i, i + c) as fp32 (pointer into an fp32 state, or widened into buf). */
static float *state_load(const ds__prec_kernels *k, const void *s, ds_dtype dt, float *buf,
                         int64_t i, size_t c) {
  if (dt == DS_DTYPE_F32) return (float *)s + i;
  k->bf16_to_f32(buf, (const uint16_t *)s + i, c);
  return buf;
}

/* The stochastic-rounding key of a state block: parameter, state array, step, position. */
static uint32_t state_key(const param *p, int which, int64_t i0) {
  return ((p->seed + (uint32_t)which * 0x68e31da4u) ^ ((uint32_t)p->steps * 0xb5297a4du)) +
         (uint32_t)i0;
}

ds_status ds_optimizer_add_param(ds_optimizer *o, const char *name, const float *init, int64_t n,
                                 ds_dtype working_dtype) {
  if (!o || !name || !init || n <= 0)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision",
                     "optimizer_add_param: NULL argument or n <= 0");
  if (!ds__prec_dtype_ok(working_dtype))
    return ds__error(o->ctx, DS_ERR_DTYPE, "precision", "optimizer: working dtype %s",
                     ds_dtype_name(working_dtype));
  if (find(o, name))
    return ds__error(o->ctx, DS_ERR_INVALID_ARG, "precision", "optimizer: %s already registered",
                     name);
  if (o->nparams == o->cap) {
    size_t cap = o->cap ? 2 * o->cap : 8;
    param *np = ds__calloc(o->ctx, cap, sizeof *np);
    if (!np) return ds__error(o->ctx, DS_ERR_NO_MEMORY, "precision", "optimizer: no memory");
    if (o->nparams) memcpy(np, o->params, o->nparams * sizeof *np);
    ds__free(o->ctx, o->params);
    o->params = np, o->cap = cap;
  }
  param p = {0};
  p.name = ds__strdup(o->ctx, name);
  p.n = n, p.wdtype = working_dtype;
  p.split = o->opt.split_master && working_dtype == DS_DTYPE_BF16;
  p.seed = ds__rand16((uint32_t)o->nparams) << 16 | ds__rand16((uint32_t)o->nparams + 0x5eedu);
  size_t un = (size_t)n, ssize = ds_dtype_size((ds_dtype)o->opt.state_dtype);
  int ok = p.name != NULL;
  if (p.split) {
    p.working = ds__alloc(o->ctx, un * 2);
    p.lo = ds__alloc(o->ctx, un * 2);
    ok = ok && p.working && p.lo;
  } else {
    p.master = ds__alloc(o->ctx, un * sizeof(float));
    p.working = working_dtype == DS_DTYPE_F32 ? p.master : ds__alloc(o->ctx, un * 2);
    ok = ok && p.master && p.working;
  }
  for (int s = 0; s < nstates(o); s++) {
    p.state[s] = ds__calloc(o->ctx, un, ssize);
    ok = ok && p.state[s];
  }
  if (!ok) {
    param_free(o->ctx, &p);
    return ds__error(o->ctx, DS_ERR_NO_MEMORY, "precision", "optimizer: no memory for %s", name);
  }
  const ds__prec_kernels *k = ds__prec_kernels_ctx(o->ctx);
  for (int64_t i = 0; i < n; i += BLOCK)
    master_store(k, &p, init + i, i, (size_t)(n - i < BLOCK ? n - i : BLOCK));
  o->params[o->nparams++] = p;
  return DS_OK;
}

ds_status ds_optimizer_working(ds_optimizer *o, const char *name, void **data, ds_dtype *dtype) {
  if (!o || !name || !data)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer: NULL");
  param *p = find(o, name);
  if (!p) return ds__error(o->ctx, DS_ERR_NOT_FOUND, "precision", "optimizer: no param %s", name);
  *data = p->working;
  if (dtype) *dtype = p->wdtype;
  return DS_OK;
}

ds_status ds_optimizer_master(ds_optimizer *o, const char *name, float **data) {
  if (!o || !name || !data)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer: NULL");
  param *p = find(o, name);
  if (!p) return ds__error(o->ctx, DS_ERR_NOT_FOUND, "precision", "optimizer: no param %s", name);
  if (p->split)
    return ds__error(o->ctx, DS_ERR_UNSUPPORTED, "precision",
                     "optimizer: %s keeps its master split in two 16-bit planes (no fp32 array); "
                     "use ds_optimizer_master_read", name);
  *data = p->master;
  return DS_OK;
}

ds_status ds_optimizer_master_read(ds_optimizer *o, const char *name, float *dst) {
  if (!o || !name || !dst)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer: NULL");
  param *p = find(o, name);
  if (!p) return ds__error(o->ctx, DS_ERR_NOT_FOUND, "precision", "optimizer: no param %s", name);
  for (int64_t i = 0; i < p->n; i += BLOCK) {
    size_t c = (size_t)(p->n - i < BLOCK ? p->n - i : BLOCK);
    const float *w = master_load(p, dst + i, i, c);
    if (w != dst + i) memcpy(dst + i, w, c * sizeof(float));
  }
  return DS_OK;
}

/* The torch update rules over one block (fp32 math whatever the storage). The options are
 * copied into locals and the arrays are restrict so the loops vectorise (stores through w
 * could otherwise alias the options). */
static void sgd_block(const ds_optimizer_options *o, uint64_t steps, float *restrict w,
                      float *restrict m, const float *restrict g, size_t c) {
  const float wd = o->weight_decay, mu = o->momentum, lr = o->lr;
  const int first = steps == 0, use_m = mu > 0.0f;
  for (size_t i = 0; i < c; i++) {
    float d = g[i] + wd * w[i];
    float buf = first ? d : mu * m[i] + d; /* torch: first buf = grad */
    m[i] = buf;
    w[i] -= lr * (use_m ? buf : d);
  }
}

static void adamw_block(const ds_optimizer_options *o, uint64_t steps, float *restrict w,
                        float *restrict m, float *restrict v, const float *restrict g,
                        size_t c) {
  double t = (double)(steps + 1);
  const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
  const float c1 = (float)(1.0 - pow(b1, t)), c2 = (float)(1.0 - pow(b2, t));
  const float step = o->lr / c1, c2s = sqrtf(c2), decay = 1.0f - o->lr * o->weight_decay;
  for (size_t i = 0; i < c; i++) {
    float mi = b1 * m[i] + (1.0f - b1) * g[i];
    float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    m[i] = mi, v[i] = vi;
    w[i] = w[i] * decay - step * mi / (sqrtf(vi) / c2s + eps);
  }
}

/* Gradient block [i, i + c) as fp32 divided by scale (a pointer into an fp32 gradient when
 * there is nothing to do). */
static const float *grad_load(const ds__prec_kernels *k, const void *g, ds_dtype dt, float inv,
                              float *buf, int64_t i, size_t c) {
  if (dt == DS_DTYPE_F32 && inv == 1.0f) return (const float *)g + i;
  if (dt == DS_DTYPE_F32) memcpy(buf, (const float *)g + i, c * sizeof(float));
  if (dt == DS_DTYPE_F16) k->f16_to_f32(buf, (const uint16_t *)g + i, c);
  if (dt == DS_DTYPE_BF16) k->bf16_to_f32(buf, (const uint16_t *)g + i, c);
  if (inv != 1.0f)
    for (size_t j = 0; j < c; j++) buf[j] *= inv;
  return buf;
}

/* Updates elements [e0, e1) of p from grad (whose element 0 is element e0), without counting
 * a step. Blocks follow the parameter's own BLOCK grid, and the rounding key of an element
 * is its index in the parameter, so a range update is bit-identical to the same elements
 * of a whole update. */
static void step_range(const ds_optimizer *o, const ds__prec_kernels *k, param *p,
                       const void *grad, ds_dtype gdt, float inv, int64_t e0, int64_t e1) {
  float wb[BLOCK], gb[BLOCK], sb[2][BLOCK];
  ds_dtype sdt = (ds_dtype)o->opt.state_dtype;
  for (int64_t i = e0, next; i < e1; i = next) {
    next = (i / BLOCK + 1) * BLOCK;
    if (next > e1) next = e1;
    size_t c = (size_t)(next - i);
    float *w = master_load(p, wb, i, c);
    const float *g = grad_load(k, grad, gdt, inv, gb, i - e0, c);
    float *m = state_load(k, p->state[0], sdt, sb[0], i, c);
    if (o->opt.kind == DS_OPT_SGD) {
      sgd_block(&o->opt, p->steps, w, m, g, c);
    } else {
      float *v = state_load(k, p->state[1], sdt, sb[1], i, c);
      adamw_block(&o->opt, p->steps, w, m, v, g, c);
      if (sdt == DS_DTYPE_BF16)
        k->f32_to_bf16_sr((uint16_t *)p->state[1] + i, v, c, state_key(p, 1, i));
    }
    if (sdt == DS_DTYPE_BF16)
      k->f32_to_bf16_sr((uint16_t *)p->state[0] + i, m, c, state_key(p, 0, i));
    master_store(k, p, w, i, c);
  }
}

static void step_param(const ds_optimizer *o, const ds__prec_kernels *k, param *p,
                       const void *grad, ds_dtype gdt, float inv) {
  step_range(o, k, p, grad, gdt, inv, 0, p->n);
  p->steps++;
}

ds_status ds_optimizer_step_scaled(ds_optimizer *o, const char *name, const void *grad,
                                   ds_dtype grad_dtype, float grad_scale) {
  if (!o || !name || !grad)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer_step: NULL");
  if (!ds__prec_dtype_ok(grad_dtype))
    return ds__error(o->ctx, DS_ERR_DTYPE, "precision", "optimizer_step: gradient dtype %s",
                     ds_dtype_name(grad_dtype));
  if (!(grad_scale > 0.0f) || !isfinite(grad_scale))
    return ds__error(o->ctx, DS_ERR_INVALID_ARG, "precision",
                     "optimizer_step: grad_scale %g (finite and > 0)", (double)grad_scale);
  param *p = find(o, name);
  if (!p) return ds__error(o->ctx, DS_ERR_NOT_FOUND, "precision", "optimizer: no param %s", name);
  step_param(o, ds__prec_kernels_ctx(o->ctx), p, grad, grad_dtype, 1.0f / grad_scale);
  return DS_OK;
}

ds_status ds_optimizer_step(ds_optimizer *o, const char *name, const float *grad) {
  return ds_optimizer_step_scaled(o, name, grad, DS_DTYPE_F32, 1.0f);
}

/* Default tile: 128 K fp32 (512 KiB), and at least 65 rows so that ds_gemm takes its
 * widened path for 16-bit operands (whose scratch persists, so the context's live bytes
 * show it) rather than the skinny one, which allocates transient copies of A per call
 * (skinny_max_m is at most 64). */
enum { TILE_ELEMS = 128 * 1024, TILE_MIN_ROWS = 65 };

static ds_status linear_args(ds_optimizer *o, const char *name, const ds_tensor *dy,
                             const ds_tensor *x, int64_t tile_rows, param **pp) {
  if (!o || !name || !dy || !x || tile_rows < 0)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision",
                     "optimizer_step_linear: NULL argument or tile_rows < 0");
  if (dy->ndim != 2 || x->ndim != 2 || dy->shape[0] != x->shape[0] || dy->shape[0] < 0 ||
      dy->shape[1] < 1 || x->shape[1] < 1)
    return ds__error(o->ctx, DS_ERR_SHAPE, "precision",
                     "optimizer_step_linear: dy [B, out] and x [B, in] (out, in > 0) expected, "
                     "got ndim %d and %d, batch %lld and %lld", (int)dy->ndim, (int)x->ndim,
                     (long long)(dy->ndim ? dy->shape[0] : 0),
                     (long long)(x->ndim ? x->shape[0] : 0));
  if (!(*pp = find(o, name)))
    return ds__error(o->ctx, DS_ERR_NOT_FOUND, "precision", "optimizer: no param %s", name);
  if ((*pp)->n % dy->shape[1] != 0 || (*pp)->n / dy->shape[1] != x->shape[1]) /* no overflow */
    return ds__error(o->ctx, DS_ERR_SHAPE, "precision",
                     "optimizer_step_linear: %s has %lld elements, not out %lld x in %lld", name,
                     (long long)(*pp)->n, (long long)dy->shape[1], (long long)x->shape[1]);
  return DS_OK;
}

/* The fp32 tile of at least n elements (grown, never shrunk; counted by memory_get). */
static float *tile_get(ds_optimizer *o, size_t n) {
  if (o->tile_size >= n) return o->tile;
  ds__free(o->ctx, o->tile);
  o->tile = ds__alloc(o->ctx, n * sizeof(float));
  o->tile_size = o->tile ? n : 0;
  return o->tile;
}

ds_status ds_optimizer_step_linear(ds_optimizer *o, const char *name, const ds_tensor *dy,
                                   const ds_tensor *x, int64_t tile_rows) {
  param *p = NULL;
  ds_status st = linear_args(o, name, dy, x, tile_rows, &p);
  if (st != DS_OK) return st;
  int64_t out = dy->shape[1], in = x->shape[1];
  if (tile_rows == 0) {
    tile_rows = TILE_ELEMS / in;
    if (tile_rows < TILE_MIN_ROWS) tile_rows = TILE_MIN_ROWS;
  }
  if (tile_rows > out) tile_rows = out;
  float *tile = tile_get(o, (size_t)(tile_rows * in));
  if (!tile)
    return ds__error(o->ctx, DS_ERR_NO_MEMORY, "precision",
                     "optimizer_step_linear: no memory for a %lld x %lld fp32 tile",
                     (long long)tile_rows, (long long)in);
  const ds__prec_kernels *k = ds__prec_kernels_ctx(o->ctx);
  for (int64_t r0 = 0; r0 < out; r0 += tile_rows) {
    int64_t rows = out - r0 < tile_rows ? out - r0 : tile_rows;
    /* rows [r0, r0 + rows) of dW = dy^T x: dy's columns r0.. as a strided view */
    ds_tensor dys = *dy, t;
    dys.data = (char *)dy->data + (size_t)(r0 * dy->strides[1]) * ds_dtype_size(dy->dtype);
    dys.shape[1] = rows;
    int64_t shape[2] = {rows, in};
    ds_device cpu = {DS_DEVICE_CPU, 0};
    ds_tensor_init(&t, o->ctx, tile, DS_DTYPE_F32, 2, shape, NULL, cpu);
    if ((st = ds_gemm(o->ctx, &t, &dys, x, DS_GEMM_TRANS_A, 1.0f, 0.0f)) != DS_OK) return st;
    step_range(o, k, p, tile, DS_DTYPE_F32, 1.0f, r0 * in, (r0 + rows) * in);
  }
  p->steps++;
  return DS_OK;
}

/* Adds bytes of dtype dt (-1: the low planes of split masters) to the per-dtype fields. */
static void by_dtype(ds_optimizer_memory *m, int dt, uint64_t bytes) {
  if (dt == DS_DTYPE_F32) m->f32_bytes += bytes;
  else if (dt == DS_DTYPE_F16) m->f16_bytes += bytes;
  else if (dt == DS_DTYPE_BF16) m->bf16_bytes += bytes;
  else m->low16_bytes += bytes;
}

ds_status ds_optimizer_memory_get(const ds_optimizer *o, ds_optimizer_memory *out) {
  if (!o || !out)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer: NULL");
  if (out->struct_size != sizeof *out)
    return ds__error(o->ctx, DS_ERR_ABI, "precision",
                     "ds_optimizer_memory.struct_size %u is unknown (expected %zu)",
                     out->struct_size, sizeof *out);
  memset(out, 0, sizeof *out);
  out->struct_size = sizeof *out;
  int sdt = o->opt.state_dtype;
  uint64_t states = (uint64_t)nstates(o), ssize = ds_dtype_size((ds_dtype)sdt);
  for (size_t i = 0; i < o->nparams; i++) {
    const param *p = &o->params[i];
    uint64_t n = (uint64_t)p->n;
    out->master_bytes += 4 * n;
    out->state_bytes += ssize * n * states;
    by_dtype(out, sdt, ssize * n * states);
    out->fp32_equivalent += 4 * n * (1 + states);
    if (p->split) {
      by_dtype(out, DS_DTYPE_BF16, 2 * n);
      by_dtype(out, -1, 2 * n);
      continue;
    }
    by_dtype(out, DS_DTYPE_F32, 4 * n);
    if (p->working != p->master) out->working_bytes += 2 * n, by_dtype(out, p->wdtype, 2 * n);
  }
  out->scratch_bytes = (uint64_t)o->tile_size * sizeof(float);
  by_dtype(out, DS_DTYPE_F32, out->scratch_bytes);
  out->total_bytes = out->master_bytes + out->state_bytes + out->working_bytes +
                     out->scratch_bytes;
  uint64_t params = out->total_bytes - out->scratch_bytes; /* like for like with fp32 */
  out->saved_fraction =
      out->fp32_equivalent ? 1.0 - (double)params / (double)out->fp32_equivalent : 0.0;
  return DS_OK;
}
