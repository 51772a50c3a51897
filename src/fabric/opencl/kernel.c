/* OpenCL kernels for the fabric's launch path: a program is built from source once per
 * (device, source, entry point) and cached on the device until the context is destroyed. */
#include <stdio.h>
#include <string.h>

#include "opencl_internal.h"

static uint64_t ds__cl_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

void ds__cl_kernels_free(struct ds__cl_backend *be, struct ds__cl_device *d) {
  struct ds__cl_kernel *k = d->kernels;
  while (k) {
    struct ds__cl_kernel *next = k->next;
    clReleaseKernel(k->kernel);
    clReleaseProgram(k->program);
    ds__free(be->ctx, k->source);
    ds__free(be->ctx, k->name);
    ds__free(be->ctx, k);
    k = next;
  }
  d->kernels = NULL;
}

/* The first line of the build log, for the error message. */
static void ds__cl_build_log(cl_program prog, cl_device_id dev, char *out, size_t size) {
  char log[1024] = "";
  clGetProgramBuildInfo(prog, dev, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
  log[sizeof log - 1] = '\0';
  char *p = log;
  while (*p == '\n' || *p == ' ') p++;
  char *nl = strchr(p, '\n');
  if (nl) *nl = '\0';
  snprintf(out, size, "%s", p);
}

/* Build options: single-precision division and sqrt correctly rounded where the device can
 * (OpenCL otherwise allows 2.5 ulp), so a kernel computes what its C twin computes and a
 * graph's results do not depend on the placement. */
static const char *ds__cl_options(const struct ds__cl_device *d) {
  cl_device_fp_config fp = 0;
  if (clGetDeviceInfo(d->id, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL) == CL_SUCCESS &&
      (fp & CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT))
    return "-cl-fp32-correctly-rounded-divide-sqrt";
  return "";
}

static ds_status ds__cl_build(ds_context *ctx, struct ds__cl_device *d, const char *source,
                              const char *name, struct ds__cl_kernel *k) {
  cl_int err = CL_SUCCESS;
  char e[64], why[300];
  k->program = clCreateProgramWithSource(d->context, 1, &source, NULL, &err);
  if (err != CL_SUCCESS)
    return ds__error(ctx, DS_ERR_DEVICE, "fabric", "kernel %s: %s", name,
                     ds__cl_err(err, e, sizeof e));
  err = clBuildProgram(k->program, 1, &d->id, ds__cl_options(d), NULL, NULL);
  if (err != CL_SUCCESS) {
    ds__cl_build_log(k->program, d->id, why, sizeof why);
    clReleaseProgram(k->program);
    return ds__error(ctx, DS_ERR_DEVICE, "fabric", "kernel %s: build failed: %s", name, why);
  }
  k->kernel = clCreateKernel(k->program, name, &err);
  if (err != CL_SUCCESS) {
    clReleaseProgram(k->program);
    return ds__error(ctx, DS_ERR_NOT_FOUND, "fabric", "kernel %s: %s", name,
                     ds__cl_err(err, e, sizeof e));
  }
  return DS_OK;
}

static struct ds__cl_kernel *ds__cl_find(struct ds__cl_device *d, uint64_t h, const char *source,
                                         const char *name) {
  for (struct ds__cl_kernel *k = d->kernels; k; k = k->next)
    if (k->source_hash == h && !strcmp(k->name, name) && !strcmp(k->source, source)) return k;
  return NULL;
}

ds_status ds__fabric_cl_kernel(ds_context *ctx, int32_t dev, const char *source,
                               const char *name, void **kernel) {
  if (!source || !name || !kernel)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "cl_kernel: NULL argument");
  const struct ds__fabric_device *fd = ds__fabric_device(ctx, dev);
  if (!fd) return DS_ERR_NOT_FOUND;
  if (fd->info.kind != DS_FABRIC_DEVICE_OPENCL || strcmp(fd->be->name, "opencl") != 0)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "fabric", "kernel %s: device %d (%s) is not OpenCL",
                     name, (int)dev, fd->info.name);
  struct ds__cl_backend *be = fd->be->user;
  struct ds__cl_device *d = &be->dev[fd->local];
  uint64_t h = ds__cl_hash(source);
  ds_status st = DS_OK;
  pthread_mutex_lock(&d->mu);
  struct ds__cl_kernel *k = ds__cl_find(d, h, source, name);
  if (!k) {
    k = ds__calloc(ctx, 1, sizeof *k);
    if (k) k->source = ds__strdup(ctx, source), k->name = ds__strdup(ctx, name);
    if (!k || !k->source || !k->name)
      st = ds__error(ctx, DS_ERR_NO_MEMORY, "fabric", "kernel %s: out of memory", name);
    else
      st = ds__cl_build(ctx, d, source, name, k);
    if (st == DS_OK) {
      k->source_hash = h;
      k->next = d->kernels;
      d->kernels = k;
    } else if (k) {
      ds__free(ctx, k->source), ds__free(ctx, k->name), ds__free(ctx, k);
      k = NULL;
    }
  }
  pthread_mutex_unlock(&d->mu);
  if (k) *kernel = k->kernel;
  return st;
}
