/* Kernels: their implementations per device kind, and their cost models' public face (record,
 * predict) and persistence in a ds_cache under "fabric.model.<kernel name>". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"

#define MOD "fabric"

int ds__kernel_has_kind(const ds_kernel *k, int kind) {
  switch (kind) {
  case DS__GKIND_CPU: return k->cpu != NULL;
  case DS__GKIND_CUDA: return k->cuda != NULL;
  case DS__GKIND_OPENCL: return k->cl_source != NULL;
  default: return 0;
  }
}

static size_t model_key(const ds_kernel *k, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "fabric.model.%s", k->name);
  return n > 0 ? (size_t)n : 0;
}

/* The largest blob a model encodes to: header, then per key its name and every point. */
#define MODEL_MAX_BYTES (12 + DS__CM_MAX_KEYS * (1 + DS__NAME_MAX + 4 + DS__CM_MAX_POINTS * 32))

static void kernel_load_model(ds_kernel *k) {
  char key[96];
  size_t kl = model_key(k, key, sizeof key), len = 0;
  uint8_t *buf = ds__alloc(k->ctx, MODEL_MAX_BYTES);
  if (!buf) return;
  ds_status st = ds_cache_get(k->model_cache, key, kl, buf, MODEL_MAX_BYTES, &len);
  if (st == DS_OK) st = ds__cm_decode(&k->cm, buf, len);
  if (st != DS_OK && st != DS_ERR_NOT_FOUND)
    ds__log(k->ctx, DS_LOG_WARN, MOD, "kernel '%s': stored cost model unusable (%s); starting empty",
            k->name, ds_status_str(st));
  ds__free(k->ctx, buf);
}

static ds_status kernel_check(ds_context *ctx, const ds_kernel_options *o) {
  if (o->struct_size != sizeof *o) return ds__error(ctx, DS_ERR_ABI, MOD, "ds_kernel_options: unknown struct_size %u", o->struct_size);
  if (!o->name || !o->name[0] || strlen(o->name) >= DS__NAME_MAX)
    return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "kernel: name missing or longer than %d bytes",
                     DS__NAME_MAX - 1);
  if (!o->cpu && !o->cuda && !o->opencl_source)
    return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': no implementation", o->name);
  if (o->opencl_source && (!o->opencl_name || !o->opencl_name[0]))
    return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': OpenCL source without a name",
                     o->name);
  if (o->opencl_nargs && !o->opencl_arg_sizes)
    return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': opencl_arg_sizes missing",
                     o->name);
  for (uint32_t i = 0; i < o->opencl_nargs; i++)
    if (!o->opencl_arg_sizes[i] || o->opencl_arg_sizes[i] > DS__GRAPH_MAX_ARGS)
      return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': OpenCL argument %u size %u",
                       o->name, i, o->opencl_arg_sizes[i]);
  return DS_OK;
}

ds_status ds_kernel_create(ds_kernel **out, ds_context *ctx, const ds_kernel_options *opts) {
  if (out) *out = NULL;
  if (!out || !ctx || !opts) return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "kernel: NULL argument");
  ds_status st = kernel_check(ctx, opts);
  if (st != DS_OK) return st;
  ds_kernel *k = ds__calloc(ctx, 1, sizeof *k);
  if (!k) return ds__error(ctx, DS_ERR_NO_MEMORY, MOD, "kernel: out of memory");
  k->ctx = ctx;
  snprintf(k->name, sizeof k->name, "%s", opts->name);
  k->cpu = opts->cpu;
  k->cuda = opts->cuda;
  k->model_cache = opts->model_cache;
  ds__cm_init(&k->cm);
  if (opts->opencl_source) {
    k->cl_source = ds__strdup(ctx, opts->opencl_source);
    k->cl_name = ds__strdup(ctx, opts->opencl_name);
    k->cl_nargs = opts->opencl_nargs;
    if (k->cl_nargs) k->cl_arg_sizes = ds__calloc(ctx, k->cl_nargs, sizeof *k->cl_arg_sizes);
    if (!k->cl_source || !k->cl_name || (k->cl_nargs && !k->cl_arg_sizes)) {
      k->model_cache = NULL;
      ds_kernel_destroy(k);
      return ds__error(ctx, DS_ERR_NO_MEMORY, MOD, "kernel: out of memory");
    }
    if (k->cl_nargs)
      memcpy(k->cl_arg_sizes, opts->opencl_arg_sizes, k->cl_nargs * sizeof *k->cl_arg_sizes);
  }
  if (k->model_cache) kernel_load_model(k);
  *out = k;
  return DS_OK;
}

ds_status ds_kernel_model_save(ds_kernel *k) {
  if (!k) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "kernel: NULL");
  if (!k->model_cache) return DS_OK;
  uint8_t *blob = NULL;
  size_t len = 0;
  ds_status st = ds__cm_encode(k->ctx, &k->cm, &blob, &len);
  if (st != DS_OK) return ds__error(k->ctx, st, MOD, "kernel '%s': cannot encode its model", k->name);
  char key[96];
  size_t kl = model_key(k, key, sizeof key);
  st = ds_cache_put(k->model_cache, key, kl, blob, len);
  ds__free(k->ctx, blob);
  return st;
}

void ds_kernel_destroy(ds_kernel *k) {
  if (!k) return;
  if (k->model_cache && k->cm.dirty && ds_kernel_model_save(k) != DS_OK)
    ds__log(k->ctx, DS_LOG_WARN, MOD, "kernel '%s': cost model not saved: %s", k->name,
            ds_context_last_error(k->ctx));
  ds__cm_fini(&k->cm);
  ds__free(k->ctx, k->cl_source);
  ds__free(k->ctx, k->cl_name);
  ds__free(k->ctx, k->cl_arg_sizes);
  ds__free(k->ctx, k);
}

ds_status ds_kernel_model_record(ds_kernel *k, int32_t device, uint64_t size, double seconds) {
  if (!k) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "kernel: NULL");
  char key[DS__NAME_MAX];
  if (!ds__gfab_device_key(k->ctx, device, key, sizeof key))
    return ds__error(k->ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': no device %d", k->name,
                     (int)device);
  if (!(seconds >= 0) || !isfinite(seconds))
    return ds__error(k->ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': bad time %g", k->name,
                     seconds);
  if (ds__cm_record(&k->cm, key, size, seconds) != DS_OK)
    return ds__error(k->ctx, DS_ERR_FULL, MOD, "kernel '%s': model holds %d devices already",
                     k->name, DS__CM_MAX_KEYS);
  return DS_OK;
}

ds_status ds_kernel_model_predict(ds_kernel *k, int32_t device, uint64_t size, double *seconds,
                                  uint64_t *samples) {
  if (!k) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "kernel: NULL");
  char key[DS__NAME_MAX];
  if (!ds__gfab_device_key(k->ctx, device, key, sizeof key))
    return ds__error(k->ctx, DS_ERR_INVALID_ARG, MOD, "kernel '%s': no device %d", k->name,
                     (int)device);
  uint64_t n = 0;
  double s = ds__cm_predict(&k->cm, key, size, &n);
  if (seconds) *seconds = s;
  if (samples) *samples = n;
  if (isnan(s))
    return ds__error(k->ctx, DS_ERR_NOT_FOUND, MOD, "kernel '%s': nothing measured on %s",
                     k->name, key);
  return DS_OK;
}
