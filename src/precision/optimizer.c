/* Optimisers (SGD with momentum, AdamW) holding fp32 master weights, fp32 state and a
 * low-precision working copy per named parameter, with memory accounting by role. */
#include <math.h>

#include "precision_internal.h"

typedef struct param {
  char *name;
  int64_t n;
  ds_dtype wdtype;
  float *master, *m, *v; /* v only for AdamW */
  void *working;         /* == master for f32 */
  uint64_t steps;
} param;

struct ds_optimizer {
  ds_context *ctx;
  ds_optimizer_options opt;
  param *params;
  size_t nparams, cap;
};

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
      !(o->beta2 >= 0.0f && o->beta2 < 1.0f) || !(o->eps > 0.0f) || !(o->weight_decay >= 0.0f))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "optimizer: kind SGD/AdamW, lr > 0, momentum/betas in [0, 1), eps > 0, "
                     "weight_decay >= 0");
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
  ds__free(ctx, p->m);
  ds__free(ctx, p->v);
  ds__free(ctx, p->name);
}

void ds_optimizer_destroy(ds_optimizer *o) {
  if (!o) return;
  for (size_t i = 0; i < o->nparams; i++) param_free(o->ctx, &o->params[i]);
  ds__free(o->ctx, o->params);
  ds__free(o->ctx, o);
}

static param *find(ds_optimizer *o, const char *name) {
  for (size_t i = 0; i < o->nparams; i++)
    if (!strcmp(o->params[i].name, name)) return &o->params[i];
  return NULL;
}

static void refresh_working(ds_optimizer *o, param *p) {
  if (p->working != p->master)
    ds_precision_convert(o->ctx, p->working, p->wdtype, p->master, DS_DTYPE_F32, (size_t)p->n);
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
  param p = {ds__strdup(o->ctx, name), n, working_dtype, NULL, NULL, NULL, NULL, 0};
  size_t bytes = (size_t)n * sizeof(float);
  p.master = ds__alloc(o->ctx, bytes);
  p.m = ds__calloc(o->ctx, (size_t)n, sizeof(float));
  if (o->opt.kind == DS_OPT_ADAMW) p.v = ds__calloc(o->ctx, (size_t)n, sizeof(float));
  p.working = working_dtype == DS_DTYPE_F32 ? p.master : ds__alloc(o->ctx, (size_t)n * 2);
  if (!p.name || !p.master || !p.m || (o->opt.kind == DS_OPT_ADAMW && !p.v) || !p.working) {
    param_free(o->ctx, &p);
    return ds__error(o->ctx, DS_ERR_NO_MEMORY, "precision", "optimizer: no memory for %s", name);
  }
  memcpy(p.master, init, bytes);
  o->params[o->nparams++] = p;
  refresh_working(o, &o->params[o->nparams - 1]);
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
  *data = p->master;
  return DS_OK;
}

static void sgd(const ds_optimizer_options *o, param *p, const float *g) {
  for (int64_t i = 0; i < p->n; i++) {
    float d = g[i] + o->weight_decay * p->master[i];
    float buf = p->steps == 0 ? d : o->momentum * p->m[i] + d; /* torch: first buf = grad */
    p->m[i] = buf;
    p->master[i] -= o->lr * (o->momentum > 0.0f ? buf : d);
  }
}

static void adamw(const ds_optimizer_options *o, param *p, const float *g) {
  double t = (double)(p->steps + 1);
  float c1 = (float)(1.0 - pow(o->beta1, t)), c2 = (float)(1.0 - pow(o->beta2, t));
  float step = o->lr / c1, c2s = sqrtf(c2), decay = 1.0f - o->lr * o->weight_decay;
  for (int64_t i = 0; i < p->n; i++) {
    float m = o->beta1 * p->m[i] + (1.0f - o->beta1) * g[i];
    float v = o->beta2 * p->v[i] + (1.0f - o->beta2) * g[i] * g[i];
    p->m[i] = m, p->v[i] = v;
    p->master[i] = p->master[i] * decay - step * m / (sqrtf(v) / c2s + o->eps);
  }
}

ds_status ds_optimizer_step(ds_optimizer *o, const char *name, const float *grad) {
  if (!o || !name || !grad)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer_step: NULL");
  param *p = find(o, name);
  if (!p) return ds__error(o->ctx, DS_ERR_NOT_FOUND, "precision", "optimizer: no param %s", name);
  if (o->opt.kind == DS_OPT_SGD)
    sgd(&o->opt, p, grad);
  else
    adamw(&o->opt, p, grad);
  p->steps++;
  refresh_working(o, p);
  return DS_OK;
}

ds_status ds_optimizer_memory_get(const ds_optimizer *o, ds_optimizer_memory *out) {
  if (!o || !out)
    return ds__error(o ? o->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "optimizer: NULL");
  memset(out, 0, sizeof *out);
  int states = o->opt.kind == DS_OPT_ADAMW ? 2 : 1;
  for (size_t i = 0; i < o->nparams; i++) {
    const param *p = &o->params[i];
    uint64_t n = (uint64_t)p->n;
    out->master_bytes += 4 * n;
    out->state_bytes += 4 * n * (uint64_t)states;
    if (p->working != p->master) out->working_bytes += 2 * n;
  }
  out->total_bytes = out->master_bytes + out->state_bytes + out->working_bytes;
  out->fp32_equivalent = out->master_bytes + out->state_bytes;
  out->saved_fraction =
      out->fp32_equivalent ? 1.0 - (double)out->total_bytes / (double)out->fp32_equivalent : 0.0;
  return DS_OK;
}
