/* Dynamic loss scaling with GradScaler semantics (plus optional hysteresis and minimum
 * scale), and the fused unscale + finite check over f32/f16/bf16 gradients. */
#include <math.h>

#include "precision_internal.h"

struct ds_loss_scaler {
  ds_context *ctx;
  float scale, growth, backoff, min_scale;
  uint32_t interval, hysteresis;
  uint32_t growth_tracker; /* consecutive clean steps since the last growth or backoff */
  uint32_t overflow_run;   /* consecutive overflowing steps (for hysteresis) */
  int found_inf;           /* gathered by unscale() during the current step */
  int stat_scale, stat_skipped;
};

ds_status ds_loss_scaler_create(ds_loss_scaler **out, ds_context *ctx,
                                const ds_loss_scaler_options *opts) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision", "loss_scaler_create: NULL out or ctx");
  *out = NULL;
  ds_loss_scaler_options defaults = DS_LOSS_SCALER_OPTIONS_INIT;
  const ds_loss_scaler_options *o = opts ? opts : &defaults;
  if (o->struct_size != sizeof *o)
    return ds__error(ctx, DS_ERR_ABI, "precision", "loss_scaler: struct_size %u, expected %zu",
                     o->struct_size, sizeof *o);
  if (!(o->init_scale > 0.0f && isfinite(o->init_scale)) || !(o->growth_factor > 1.0f) ||
      !(o->backoff_factor > 0.0f && o->backoff_factor < 1.0f) || !o->growth_interval ||
      !o->hysteresis || !(o->min_scale >= 0.0f))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "precision",
                     "loss_scaler: init_scale > 0, growth_factor > 1, backoff_factor in (0, 1), "
                     "growth_interval and hysteresis >= 1, min_scale >= 0");
  ds_loss_scaler *s = ds__calloc(ctx, 1, sizeof *s);
  if (!s) return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "loss_scaler: no memory");
  s->ctx = ctx;
  s->scale = o->init_scale;
  s->growth = o->growth_factor, s->backoff = o->backoff_factor, s->min_scale = o->min_scale;
  s->interval = o->growth_interval, s->hysteresis = o->hysteresis;
  s->stat_scale = ds__stat_register(ctx, "precision.loss_scale", DS_STAT_GAUGE);
  s->stat_skipped = ds__stat_register(ctx, "precision.loss_scale.skipped_steps", DS_STAT_COUNTER);
  ds__stat_set(ctx, s->stat_scale, s->scale);
  *out = s;
  return DS_OK;
}

void ds_loss_scaler_destroy(ds_loss_scaler *s) {
  if (s) ds__free(s->ctx, s);
}

float ds_loss_scaler_scale(const ds_loss_scaler *s) { return s ? s->scale : 0.0f; }

/* dst = src * inv over n floats; returns 1 if any result is Inf or NaN. One pass, no branch
 * in the loop so the compiler vectorises it. */
static int unscale_f32(float *dst, const float *src, size_t n, float inv) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    float v = src[i] * inv;
    dst[i] = v;
    bad |= (uint32_t)((ds__f32_bits(v) & 0x7f800000u) == 0x7f800000u);
  }
  return bad != 0;
}

/* The finite check of unscale without a destination: chunks widened and unscaled into a
 * stack buffer (the same values unscale would store, so the same verdict). */
static int check_only(ds_context *ctx, const void *grads, ds_dtype dtype, int64_t n, float inv) {
  const ds__prec_kernels *k = ds__prec_kernels_ctx(ctx);
  float buf[1024];
  int bad = 0;
  for (int64_t i = 0; i < n && !bad; i += 1024) {
    size_t c = (size_t)(n - i < 1024 ? n - i : 1024);
    const float *src = buf;
    if (dtype == DS_DTYPE_F32)
      src = (const float *)grads + i;
    else
      (dtype == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(buf, (const uint16_t *)grads + i,
                                                               c);
    bad |= unscale_f32(buf, src, c, inv);
  }
  return bad;
}

ds_status ds_loss_scaler_unscale(ds_loss_scaler *s, float *dst, const void *grads,
                                 ds_dtype dtype, int64_t n, int *found_inf) {
  if (!s || n < 0 || (n && !grads))
    return ds__error(s ? s->ctx : NULL, DS_ERR_INVALID_ARG, "precision",
                     "loss_scaler_unscale: bad arguments");
  if (!ds__prec_dtype_ok(dtype))
    return ds__error(s->ctx, DS_ERR_DTYPE, "precision", "loss_scaler_unscale: dtype %s",
                     ds_dtype_name(dtype));
  float inv = 1.0f / s->scale;
  int bad = 0;
  if (!dst) {
    bad = check_only(s->ctx, grads, dtype, n, inv);
  } else if (dtype == DS_DTYPE_F32) {
    bad = unscale_f32(dst, grads, (size_t)n, inv);
  } else { /* widen a cache-sized chunk into dst, then unscale it in place while it is hot */
    const ds__prec_kernels *k = ds__prec_kernels_ctx(s->ctx);
    for (int64_t i = 0; i < n; i += 4096) {
      size_t c = (size_t)(n - i < 4096 ? n - i : 4096);
      (dtype == DS_DTYPE_F16 ? k->f16_to_f32 : k->bf16_to_f32)(dst + i,
                                                               (const uint16_t *)grads + i, c);
      bad |= unscale_f32(dst + i, dst + i, c, inv);
    }
  }
  s->found_inf |= bad;
  if (found_inf) *found_inf = bad;
  return DS_OK;
}

ds_status ds_loss_scaler_update(ds_loss_scaler *s, int found_inf, int *skip_step) {
  if (!s) return ds__error(NULL, DS_ERR_INVALID_ARG, "precision", "loss_scaler_update: NULL");
  int inf = s->found_inf || found_inf;
  s->found_inf = 0;
  if (inf) {
    s->growth_tracker = 0;
    if (++s->overflow_run >= s->hysteresis) {
      float next = s->scale * s->backoff;
      s->scale = next < s->min_scale ? s->min_scale : next;
      s->overflow_run = 0;
    }
    ds__stat_add(s->ctx, s->stat_skipped, 1.0);
  } else {
    s->overflow_run = 0;
    if (++s->growth_tracker == s->interval) {
      float next = s->scale * s->growth;
      if (isfinite(next)) s->scale = next;
      s->growth_tracker = 0;
    }
  }
  ds__stat_set(s->ctx, s->stat_scale, s->scale);
  if (skip_step) *skip_step = inf;
  return DS_OK;
}
