/* The DynamicPrecision policy: rules (fnmatch patterns -> dtype), the per-device bf16 map,
 * the stability score, and per-layer promotion/demotion with hysteresis, switch history,
 * logging and stats. One mutex per policy guards its layers. */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>

#include "precision_internal.h"
#include "topology_internal.h"

#define DS__HISTORY 64

typedef struct layer {
  char *name;
  ds_precision_layer_info info;
  ds_precision_switch hist[DS__HISTORY]; /* ring: the last DS__HISTORY switches */
  int stat_dtype;
} layer;

struct ds_precision_policy {
  ds_context *ctx;
  pthread_mutex_t mu;
  ds_precision_rule *rules; /* patterns owned */
  size_t nrules;
  float threshold;
  uint32_t interval, demote_after;
  int native_bf16;
  ds_dtype bf16_fallback;
  layer *layers;
  size_t nlayers, cap;
  int stat_switches;
};

/* Native bf16 arithmetic where the layers run: AVX512-BF16 on the CPU, compute capability
 * 8.0 or later on a CUDA device (a device that is not there counts as not native). */
static int native_bf16(ds_context *ctx, ds_device dev) {
  if (dev.type == DS_DEVICE_CUDA || dev.type == DS_DEVICE_CUDA_MANAGED) {
    const ds_cuda_device_info *info = NULL;
    int32_t n = ds__cuda_driver_devices(ctx, &info);
    return dev.index >= 0 && dev.index < n && info && info[dev.index].cc_major >= 8;
  }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") != 0;
#else
  return 0;
#endif
}

static ds_status check_opts(ds_context *ctx, const ds_precision_policy_options *o) {
  if (o->struct_size != sizeof *o)
    return ds__error(ctx, DS_ERR_ABI, "precision", "policy: struct_size %u, expected %zu",
                     o->struct_size, sizeof *o);
  if (o->nrules && !o->rules)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "policy: rules is NULL");
  for (size_t i = 0; i < o->nrules; i++)
    if (!o->rules[i].pattern || !ds__prec_dtype_ok(o->rules[i].dtype))
      return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                       "policy: rule %zu has no pattern or a dtype other than f32/f16/bf16", i);
  if (!(o->fallback_threshold >= 0.0f && o->fallback_threshold <= 1.0f) || !o->check_interval ||
      !o->demote_after || o->native_bf16 < -1 || o->native_bf16 > 1 ||
      (o->bf16_fallback != DS_DTYPE_F32 && o->bf16_fallback != DS_DTYPE_F16))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "policy: threshold must be in [0, 1], check_interval and demote_after >= 1, "
                     "native_bf16 in -1..1, bf16_fallback f32 or f16");
  return DS_OK;
}

ds_status ds_precision_policy_create(ds_precision_policy **out, ds_context *ctx,
                                     const ds_precision_policy_options *opts) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "policy_create: NULL out or ctx");
  *out = NULL;
  ds_precision_policy_options defaults = DS_PRECISION_POLICY_OPTIONS_INIT;
  const ds_precision_policy_options *o = opts ? opts : &defaults;
  ds_status st = check_opts(ctx, o);
  if (st) return st;
  ds_precision_policy *p = ds__calloc(ctx, 1, sizeof *p);
  if (!p) return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "policy_create: no memory");
  p->ctx = ctx;
  pthread_mutex_init(&p->mu, NULL);
  p->rules = ds__calloc(ctx, o->nrules + 1, sizeof *p->rules);
  for (size_t i = 0; p->rules && i < o->nrules; i++, p->nrules++) {
    p->rules[i].dtype = o->rules[i].dtype;
    if (!(p->rules[i].pattern = ds__strdup(ctx, o->rules[i].pattern))) break;
  }
  if (!p->rules || p->nrules != o->nrules) {
    ds_precision_policy_destroy(p);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "policy_create: no memory");
  }
  p->threshold = o->fallback_threshold;
  p->interval = o->check_interval;
  p->demote_after = o->demote_after;
  p->native_bf16 = o->native_bf16 < 0 ? native_bf16(ctx, o->device) : o->native_bf16;
  p->bf16_fallback = (ds_dtype)o->bf16_fallback;
  p->stat_switches = ds__stat_register(ctx, "precision.policy.switches", DS_STAT_COUNTER);
  ds__log(ctx, DS_LOG_INFO, "precision", "policy: %zu rules, bf16 %s", p->nrules,
          p->native_bf16 ? "native" : "not native here: bf16 rules fall back");
  *out = p;
  return DS_OK;
}

void ds_precision_policy_destroy(ds_precision_policy *p) {
  if (!p) return;
  ds_context *ctx = p->ctx;
  for (size_t i = 0; i < p->nrules; i++) ds__free(ctx, (void *)p->rules[i].pattern);
  for (size_t i = 0; i < p->nlayers; i++) ds__free(ctx, p->layers[i].name);
  ds__free(ctx, p->rules);
  ds__free(ctx, p->layers);
  pthread_mutex_destroy(&p->mu);
  ds__free(ctx, p);
}

/* Level order: fp16 < bf16 < fp32. One step up, skipping bf16 when it is not native. */
static ds_dtype level_up(const ds_precision_policy *p, ds_dtype t) {
  if (t == DS_DTYPE_F16) return p->native_bf16 ? DS_DTYPE_BF16 : DS_DTYPE_F32;
  return DS_DTYPE_F32;
}
static int level(ds_dtype t) { return t == DS_DTYPE_F16 ? 0 : t == DS_DTYPE_BF16 ? 1 : 2; }
static ds_dtype level_down(const ds_precision_policy *p, ds_dtype t, ds_dtype base) {
  ds_dtype d = t == DS_DTYPE_F32 && p->native_bf16 ? DS_DTYPE_BF16 : DS_DTYPE_F16;
  return level(d) < level(base) ? base : d;
}

/* Under p->mu: the layer called name, created (rule + device map) if new; NULL on no memory. */
static layer *find_layer(ds_precision_policy *p, const char *name, int create) {
  for (size_t i = 0; i < p->nlayers; i++)
    if (!strcmp(p->layers[i].name, name)) return &p->layers[i];
  if (!create) return NULL;
  if (p->nlayers == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 16;
    layer *nl = ds__calloc(p->ctx, cap, sizeof *nl);
    if (!nl) return NULL;
    if (p->nlayers) memcpy(nl, p->layers, p->nlayers * sizeof *nl);
    ds__free(p->ctx, p->layers);
    p->layers = nl, p->cap = cap;
  }
  layer *l = &p->layers[p->nlayers];
  memset(l, 0, sizeof *l);
  if (!(l->name = ds__strdup(p->ctx, name))) return NULL;
  ds_dtype rule = DS_DTYPE_F32;
  for (size_t i = 0; i < p->nrules; i++)
    if (fnmatch(p->rules[i].pattern, name, 0) == 0) {
      rule = (ds_dtype)p->rules[i].dtype;
      break;
    }
  ds_dtype base = rule == DS_DTYPE_BF16 && !p->native_bf16 ? p->bf16_fallback : rule;
  if (base != rule)
    ds__log(p->ctx, DS_LOG_INFO, "precision", "policy: layer %s: rule bf16 -> %s (no native bf16)",
            name, ds_dtype_name(base));
  l->info.rule_dtype = rule, l->info.base_dtype = base, l->info.dtype = base;
  l->info.last_score = 1.0f;
  char stat[96];
  snprintf(stat, sizeof stat, "precision.layer.%s", name);
  l->stat_dtype = strlen(stat) < 64 ? ds__stat_register(p->ctx, stat, DS_STAT_GAUGE) : -1;
  ds__stat_set(p->ctx, l->stat_dtype, (double)base);
  p->nlayers++;
  return l;
}

ds_status ds_precision_policy_dtype(ds_precision_policy *p, const char *layer_name,
                                    ds_dtype *out) {
  if (!p || !layer_name || !out)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "policy_dtype: NULL");
  pthread_mutex_lock(&p->mu);
  layer *l = find_layer(p, layer_name, 1);
  if (l) *out = (ds_dtype)l->info.dtype;
  pthread_mutex_unlock(&p->mu);
  return l ? DS_OK : ds__error(p->ctx, DS_ERR_NO_MEMORY, "precision", "policy: no memory");
}

int ds_precision_policy_due(const ds_precision_policy *p, uint64_t step) {
  return p && step % p->interval == 0;
}

static void record_switch(ds_precision_policy *p, layer *l, uint64_t step, ds_dtype to,
                          ds_precision_reason why, float score) {
  ds_precision_switch sw = {step, l->info.dtype, (int32_t)to, (int32_t)why, score};
  l->hist[l->info.switches % DS__HISTORY] = sw;
  l->info.switches++;
  ds__log(p->ctx, DS_LOG_INFO, "precision", "policy: layer %s %s %s -> %s at step %llu: %s",
          l->name, why == DS_PRECISION_PROMOTED_UNSTABLE ? "promoted" : "demoted",
          ds_dtype_name(l->info.dtype), ds_dtype_name(to), (unsigned long long)step,
          why == DS_PRECISION_PROMOTED_UNSTABLE ? "stability score below the threshold"
                                                : "clean checks reached demote_after");
  l->info.dtype = to;
  l->info.clean_checks = 0;
  ds__stat_add(p->ctx, p->stat_switches, 1.0);
  ds__stat_set(p->ctx, l->stat_dtype, (double)to);
}

static void apply(ds_precision_policy *p, layer *l, uint64_t step, float score) {
  ds_dtype cur = (ds_dtype)l->info.dtype, base = (ds_dtype)l->info.base_dtype;
  l->info.checks++;
  l->info.last_score = score;
  if (score < p->threshold) {
    l->info.clean_checks = 0;
    if (cur != DS_DTYPE_F32)
      record_switch(p, l, step, level_up(p, cur), DS_PRECISION_PROMOTED_UNSTABLE, score);
    return;
  }
  if (cur == base) return;
  if (++l->info.clean_checks >= p->demote_after)
    record_switch(p, l, step, level_down(p, cur, base), DS_PRECISION_DEMOTED_STABLE, score);
}

ds_status ds_precision_policy_report(ds_precision_policy *p, const char *layer_name,
                                     uint64_t step, float score, ds_dtype *new_dtype) {
  if (!p || !layer_name || !(score >= 0.0f && score <= 1.0f))
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "precision",
                     "policy_report: NULL argument or score outside [0, 1]");
  pthread_mutex_lock(&p->mu);
  layer *l = find_layer(p, layer_name, 1);
  if (l) {
    apply(p, l, step, score);
    if (new_dtype) *new_dtype = (ds_dtype)l->info.dtype;
  }
  pthread_mutex_unlock(&p->mu);
  return l ? DS_OK : ds__error(p->ctx, DS_ERR_NO_MEMORY, "precision", "policy: no memory");
}

ds_status ds_precision_stability_score(ds_context *ctx, float *score, const void *low,
                                       ds_dtype low_dtype, const float *shadow, int64_t n) {
  if (!ctx || !score || n < 0 || (n && (!low || !shadow)))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "stability_score: bad arguments");
  if (!ds__prec_dtype_ok(low_dtype))
    return ds__error(ctx, DS_ERR_DTYPE, "precision", "stability_score: dtype %s",
                     ds_dtype_name(low_dtype));
  const ds__prec_kernels *k = ds__prec_kernels_ctx(ctx);
  double dot = 0, na = 0, nb = 0;
  int64_t finite = 0;
  float tmp[1024];
  for (int64_t i = 0; i < n; i += 1024) {
    size_t c = (size_t)(n - i < 1024 ? n - i : 1024);
    const float *a = tmp;
    if (low_dtype == DS_DTYPE_F32)
      a = (const float *)low + i;
    else
      (low_dtype == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(tmp, (const uint16_t *)low + i, c);
    for (size_t j = 0; j < c; j++) {
      float x = a[j], y = shadow[i + (int64_t)j];
      if (!isfinite(x)) continue;
      finite++;
      if (!isfinite(y)) continue;
      dot += (double)x * y, na += (double)x * x, nb += (double)y * y;
    }
  }
  double cosv = na == 0 && nb == 0 ? 1.0 : na == 0 || nb == 0 ? 0.0 : dot / sqrt(na * nb);
  if (cosv < 0) cosv = 0;
  if (cosv > 1) cosv = 1;
  *score = n == 0 ? 1.0f : (float)((double)finite / (double)n * cosv);
  return DS_OK;
}

ds_status ds_precision_policy_observe(ds_precision_policy *p, const char *layer_name,
                                      uint64_t step, const void *low, ds_dtype low_dtype,
                                      const float *shadow, int64_t n, ds_dtype *new_dtype,
                                      float *score) {
  if (!p) return ds__error(NULL, DS_ERR_INVALID_ARG, "precision", "policy_observe: NULL policy");
  float s = 0;
  ds_status st = ds_precision_stability_score(p->ctx, &s, low, low_dtype, shadow, n);
  if (st) return st;
  if (score) *score = s;
  return ds_precision_policy_report(p, layer_name, step, s, new_dtype);
}

ds_status ds_precision_policy_layer(ds_precision_policy *p, const char *layer_name,
                                    ds_precision_layer_info *out) {
  if (!p || !layer_name || !out)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "policy_layer: NULL");
  pthread_mutex_lock(&p->mu);
  layer *l = find_layer(p, layer_name, 0);
  if (l) *out = l->info;
  pthread_mutex_unlock(&p->mu);
  return l ? DS_OK
           : ds__error(p->ctx, DS_ERR_NOT_FOUND, "precision", "policy: no layer %s", layer_name);
}

ds_status ds_precision_policy_history(ds_precision_policy *p, const char *layer_name,
                                      ds_precision_switch *out, size_t cap, size_t *n) {
  if (!p || !layer_name || !n || (cap && !out))
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "precision", "policy_history: NULL");
  pthread_mutex_lock(&p->mu);
  layer *l = find_layer(p, layer_name, 0);
  if (l) {
    uint64_t total = l->info.switches, kept = total < DS__HISTORY ? total : DS__HISTORY;
    size_t c = 0;
    for (uint64_t i = total - kept; i < total && c < cap; i++) out[c++] = l->hist[i % DS__HISTORY];
    *n = c;
  }
  pthread_mutex_unlock(&p->mu);
  return l ? DS_OK
           : ds__error(p->ctx, DS_ERR_NOT_FOUND, "precision", "policy: no layer %s", layer_name);
}
