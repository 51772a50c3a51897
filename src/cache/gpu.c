/* The cache's GPU tier device glue: allocation, copies and frees of entry values in one
 * device's memory through the fabric's backend table (synchronous copies), and on a CUDA
 * device a pinned host staging buffer that copies go through in chunks. */
#include <pthread.h>
#include <string.h>

#include "build_config.h"
#include "fabric_internal.h"
#include "gpu.h"

#define DS__GPU_STAGE (1u << 20) /* pinned staging bytes: one chunk in flight per copy */

struct ds__cache_gpu {
  ds_context *ctx;
  const struct ds__fabric_device *dev;
  pthread_mutex_t stage_mu; /* one copy at a time uses the staging buffer */
  void *stage;              /* pinned host memory (CUDA), or NULL: copies go direct */
};

static ds_status ds__gpu_pick(int32_t *out, ds_context *ctx, int32_t device) {
  if (device >= 0) {
    ds_device_info info = DS_DEVICE_INFO_INIT;
    ds_status st = ds_fabric_device_info(&info, ctx, device);
    if (st != DS_OK) return st;
    if (info.kind == DS_FABRIC_DEVICE_CPU)
      return ds__error(ctx, DS_ERR_INVALID_ARG, "cache",
                       "GPU tier: device %d (%s) is a CPU, whose memory is L1's", (int)device,
                       info.name);
    *out = device;
    return DS_OK;
  }
  if (ds_fabric_device_find(out, ctx, DS_FABRIC_DEVICE_CUDA, 0) != DS_OK) *out = -1;
  return DS_OK;
}

ds_status ds__gpu_open(ds__cache_gpu **out, ds_context *ctx, int32_t device) {
  *out = NULL;
  int32_t idx = -1;
  ds_status st = ds__gpu_pick(&idx, ctx, device);
  if (st != DS_OK) return st;
  if (idx < 0) {
    ds__log(ctx, DS_LOG_INFO, "cache", "GPU tier: no CUDA device, running without it");
    return DS_OK;
  }
  ds__cache_gpu *g = ds__calloc(ctx, 1, sizeof *g);
  if (!g) return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory for the GPU tier");
  g->ctx = ctx;
  g->dev = ds__fabric_device(ctx, idx);
  pthread_mutex_init(&g->stage_mu, NULL);
#if DS_HAVE_CUDA
  if (g->dev->info.kind == DS_FABRIC_DEVICE_CUDA) {
    g->stage = ds__cache_cuda_host_alloc(DS__GPU_STAGE);
    if (!g->stage)
      ds__log(ctx, DS_LOG_WARN, "cache", "GPU tier: no pinned staging memory, copying direct");
  }
#endif
  *out = g;
  return DS_OK;
}

void ds__gpu_close(ds__cache_gpu *g) {
  if (!g) return;
#if DS_HAVE_CUDA
  ds__cache_cuda_host_free(g->stage);
#endif
  pthread_mutex_destroy(&g->stage_mu);
  ds__free(g->ctx, g);
}

int32_t ds__gpu_device(const ds__cache_gpu *g) { return g->dev->info.index; }

/* One copy in (to_dev) or out, through the staging buffer when there is one. */
static ds_status ds__gpu_copy(ds__cache_gpu *g, void *mem, void *host, size_t n, int to_dev,
                              char *msg, size_t msg_size) {
  const ds_fabric_backend *ops = &g->dev->be->ops;
  void *user = g->dev->be->user;
  int32_t local = g->dev->local;
  if (!g->stage)
    return to_dev ? ops->copy_in(user, local, mem, 0, host, n, NULL, msg, msg_size)
                  : ops->copy_out(user, local, host, mem, 0, n, NULL, msg, msg_size);
  ds_status st = DS_OK;
  pthread_mutex_lock(&g->stage_mu);
  for (size_t off = 0; off < n && st == DS_OK; off += DS__GPU_STAGE) {
    size_t k = n - off < DS__GPU_STAGE ? n - off : DS__GPU_STAGE;
    if (to_dev) {
      memcpy(g->stage, (char *)host + off, k);
      st = ops->copy_in(user, local, mem, off, g->stage, k, NULL, msg, msg_size);
    } else {
      st = ops->copy_out(user, local, g->stage, mem, off, k, NULL, msg, msg_size);
      if (st == DS_OK) memcpy((char *)host + off, g->stage, k);
    }
  }
  pthread_mutex_unlock(&g->stage_mu);
  return st;
}

ds_status ds__gpu_store(ds__cache_gpu *g, const void *src, size_t n, void **mem) {
  const struct ds__fabric_device *d = g->dev;
  char msg[160] = "";
  int aliased = 0;
  *mem = NULL;
  ds_status st = d->be->ops.alloc(d->be->user, d->local, n ? n : 1, NULL, mem, &aliased, msg,
                                  sizeof msg);
  if (st != DS_OK) {
    *mem = NULL;
    ds__log(g->ctx, DS_LOG_DEBUG, "cache", "GPU tier: allocation of %zu bytes on %s failed: %s",
            n, d->info.name, msg);
    return st;
  }
  if (n) st = ds__gpu_copy(g, *mem, (void *)src, n, 1, msg, sizeof msg);
  if (st != DS_OK) {
    ds__log(g->ctx, DS_LOG_WARN, "cache", "GPU tier: copy to %s failed: %s", d->info.name, msg);
    d->be->ops.free(d->be->user, d->local, *mem);
    *mem = NULL;
    return st;
  }
  ds__fabric_count_copy(ds__fabric_get(g->ctx), d->info.index, n);
  return DS_OK;
}

ds_status ds__gpu_load(ds__cache_gpu *g, void *mem, void *dst, size_t n) {
  char msg[160] = "";
  if (!n) return DS_OK;
  ds_status st = ds__gpu_copy(g, mem, dst, n, 0, msg, sizeof msg);
  if (st != DS_OK)
    return ds__error(g->ctx, st, "cache", "GPU tier: copy from %s failed: %s",
                     g->dev->info.name, msg);
  ds__fabric_count_copy(ds__fabric_get(g->ctx), g->dev->info.index, n);
  return DS_OK;
}

void ds__gpu_free(ds__cache_gpu *g, void *mem) {
  if (mem) g->dev->be->ops.free(g->dev->be->user, g->dev->local, mem);
}
