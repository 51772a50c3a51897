/* The fabric's CUDA backend, C side: the backend table over the nvcc-compiled runtime calls in
 * cuda/cuda_fabric.cu. Devices are enumerated only when the driver (probed with dlopen by the
 * core) reports a GPU, so a machine without one pays nothing and gets no error. */
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "fabric_internal.h"
#include "topology_internal.h"

#if DS_HAVE_CUDA
#include "cuda/cuda_fabric.h"

struct ds__cuda_fab {
  ds_context *ctx;
  int32_t n;
  void *stream[DS__FABRIC_MAX_DEVICES];
};

static ds_status ds__cu_describe(void *user, int32_t dev, ds_device_info *info) {
  (void)user;
  char name[96] = "";
  uint64_t mem = 0;
  int sms = 0, can_map = 0, integrated = 0, unified = 0;
  ds_status st = ds__fcuda_describe(dev, name, sizeof name, &mem, &sms, &can_map, &integrated,
                                    &unified);
  if (st != DS_OK) return st;
  info->kind = DS_FABRIC_DEVICE_CUDA;
  info->memory_bytes = mem;
  info->compute_units = sms;
  info->caps = DS_DEVICE_CAP_ASYNC;
  if (can_map) info->caps |= DS_DEVICE_CAP_MAP_HOST;
  if (can_map && !integrated) info->caps |= DS_DEVICE_CAP_PREFER_COPY; /* over PCIe/NVLink */
  if (unified) info->caps |= DS_DEVICE_CAP_UNIFIED;
  snprintf(info->name, sizeof info->name, "cuda:%d %s", (int)dev, name);
  return DS_OK;
}

static ds_status ds__cu_alloc(void *user, int32_t dev, size_t size, void *host, void **mem,
                              int *aliased, char *msg, size_t msg_size) {
  (void)user;
  return ds__fcuda_alloc(dev, size, host, mem, aliased, msg, msg_size);
}

static void ds__cu_free(void *user, int32_t dev, void *mem) {
  (void)user;
  ds__fcuda_free(dev, mem);
}

static ds_status ds__cu_copy_in(void *user, int32_t dev, void *mem, size_t offset,
                                const void *host, size_t n, void **event, char *msg,
                                size_t msg_size) {
  struct ds__cuda_fab *cf = user;
  return ds__fcuda_copy(dev, cf->stream[dev], (char *)mem + offset, host, n, 1, event, msg,
                        msg_size);
}

static ds_status ds__cu_copy_out(void *user, int32_t dev, void *host, void *mem, size_t offset,
                                 size_t n, void **event, char *msg, size_t msg_size) {
  struct ds__cuda_fab *cf = user;
  return ds__fcuda_copy(dev, cf->stream[dev], host, (char *)mem + offset, n, 0, event, msg,
                        msg_size);
}

/* Mapped host memory is coherent once the device's work is done. */
static ds_status ds__cu_sync_alias(void *user, int32_t dev, void *mem, size_t size, int to_host,
                                   char *msg, size_t msg_size) {
  (void)user, (void)mem, (void)size;
  return to_host ? ds__fcuda_device_sync(dev, msg, msg_size) : DS_OK;
}

static ds_status ds__cu_event_record(void *user, int32_t dev, void **event, char *msg,
                                     size_t msg_size) {
  struct ds__cuda_fab *cf = user;
  return ds__fcuda_event_record(dev, cf->stream[dev], event, msg, msg_size);
}

static ds_status ds__cu_event_wait(void *user, void *event, char *msg, size_t msg_size) {
  (void)user;
  return ds__fcuda_event_wait(event, msg, msg_size);
}

static void ds__cu_event_release(void *user, void *event) {
  (void)user;
  ds__fcuda_event_release(event);
}

static ds_status ds__cu_copy_peer(void *user, int32_t dst_dev, void *dst_mem, int32_t src_dev,
                                  void *src_mem, size_t n, void **event, char *msg,
                                  size_t msg_size) {
  struct ds__cuda_fab *cf = user;
  return ds__fcuda_copy_peer(dst_dev, cf->stream[dst_dev], dst_mem, src_dev, cf->stream[src_dev],
                             src_mem, n, event, msg, msg_size);
}

static void ds__cu_destroy(void *user) {
  struct ds__cuda_fab *cf = user;
  for (int32_t i = 0; i < cf->n; i++)
    if (cf->stream[i]) ds__fcuda_stream_destroy(i, cf->stream[i]);
  ds__free(cf->ctx, cf);
}

static ds_status ds__cu_open(struct ds__cuda_fab *cf, int32_t n) {
  char msg[DS__FABRIC_MSG] = "";
  for (int32_t i = 0; i < n; i++) {
    ds_status st = ds__fcuda_stream_create(i, &cf->stream[i], msg, sizeof msg);
    if (st != DS_OK) return ds__error(cf->ctx, st, "fabric", "CUDA device %d: %s", (int)i, msg);
    cf->n = i + 1;
  }
  ds__fcuda_enable_peers(n); /* best effort: cudaMemcpyPeer also works without */
  return DS_OK;
}

void *ds__fabric_cuda_stream(ds_context *ctx, int32_t dev) {
  const struct ds__fabric_device *d = ds__fabric_device(ctx, dev);
  if (!d || d->be->ops.alloc != ds__cu_alloc) return NULL; /* not the built-in backend */
  struct ds__cuda_fab *cf = d->be->user;
  return ds__fcuda_set_device(d->local) == DS_OK ? cf->stream[d->local] : NULL;
}

ds_status ds__fabric_cuda_probe(struct ds__fabric *fab) {
  if (ds__cuda_driver_devices(fab->ctx, NULL) <= 0) return DS_OK; /* no GPU: no devices */
  int32_t n = ds__fcuda_device_count();
  int32_t room = DS__FABRIC_MAX_DEVICES - ds__fabric_ndev(fab);
  if (n > room) n = room;
  if (n <= 0) return DS_OK;
  struct ds__cuda_fab *cf = ds__calloc(fab->ctx, 1, sizeof *cf);
  if (!cf) return ds__error(fab->ctx, DS_ERR_NO_MEMORY, "fabric", "CUDA: out of memory");
  cf->ctx = fab->ctx;
  ds_status st = ds__cu_open(cf, n);
  if (st != DS_OK) {
    ds__cu_destroy(cf);
    return st;
  }
  ds_fabric_backend ops;
  memset(&ops, 0, sizeof ops);
  ops.struct_size = sizeof ops;
  ops.name = "cuda";
  ops.device_count = n;
  ops.describe = ds__cu_describe;
  ops.alloc = ds__cu_alloc;
  ops.free = ds__cu_free;
  ops.copy_in = ds__cu_copy_in;
  ops.copy_out = ds__cu_copy_out;
  ops.sync_alias = ds__cu_sync_alias;
  ops.event_record = ds__cu_event_record;
  ops.event_wait = ds__cu_event_wait;
  ops.event_release = ds__cu_event_release;
  ops.destroy = ds__cu_destroy;
  ops.copy_peer_async = ds__cu_copy_peer;
  st = ds__fabric_add_backend(fab, &ops, cf, NULL);
  if (st != DS_OK) ds__cu_destroy(cf);
  return st;
}
#else
ds_status ds__fabric_cuda_probe(struct ds__fabric *fab) {
  (void)fab;
  return DS_OK; /* built without CUDA: no CUDA devices */
}

void *ds__fabric_cuda_stream(ds_context *ctx, int32_t dev) {
  (void)ctx, (void)dev;
  return NULL;
}
#endif
