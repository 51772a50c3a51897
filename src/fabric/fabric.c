/* The per-context fabric: lazy creation and device enumeration through the backend probes,
 * the public device queries, backend registration, transfer costs, stats and extension slots. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "fabric_internal.h"

static void ds__fabric_register_stats(struct ds__fabric *fab, struct ds__fabric_device *d) {
  static const char *const what[3] = {"bytes_moved", "copies", "copies_avoided"};
  char name[64];
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "fabric.dev%d.%s", (int)d->info.index, what[i]);
    d->stat[i] = ds__stat_register(fab->ctx, name, DS_STAT_COUNTER);
  }
}

/* A default transfer model when the backend did not give one: host-memory devices copy
 * nothing; others cross a PCIe-class link. */
static void ds__fabric_default_model(struct ds__fabric_device *d) {
  if (d->bw_in > 0 || d->bw_out > 0 || (d->info.caps & DS_DEVICE_CAP_HOST_MEMORY)) return;
  d->bw_in = d->bw_out = 12e9;
  d->latency_s = 10e-6;
}

static ds_status ds__fabric_check_backend(struct ds__fabric *fab, const ds_fabric_backend *ops) {
  /* A table built before copy_peer (or copy_peer_async) was appended ends just before it. */
  if (ops->struct_size != sizeof *ops &&
      ops->struct_size != offsetof(ds_fabric_backend, copy_peer) &&
      ops->struct_size != offsetof(ds_fabric_backend, copy_peer_async))
    return ds__error(fab->ctx, DS_ERR_ABI, "fabric", "backend: struct_size %u, expected %zu",
                     (unsigned)ops->struct_size, sizeof *ops);
  if (!ops->name || !ops->alloc || !ops->free || !ops->copy_in || !ops->copy_out ||
      !ops->describe)
    return ds__error(fab->ctx, DS_ERR_INVALID_ARG, "fabric",
                     "backend %s: name, describe, alloc, free, copy_in and copy_out are required",
                     ops->name ? ops->name : "(unnamed)");
  int32_t n = ds__load(&fab->ndev);
  if (ops->device_count < 1 || ops->device_count > DS__FABRIC_MAX_DEVICES - n ||
      fab->nbackends >= DS__FABRIC_MAX_BACKENDS)
    return ds__error(fab->ctx, DS_ERR_INVALID_ARG, "fabric",
                     "backend %s: %d device(s) do not fit (%d of %d used, %d backends)", ops->name,
                     (int)ops->device_count, (int)n, DS__FABRIC_MAX_DEVICES, (int)fab->nbackends);
  return DS_OK;
}

ds_status ds__fabric_add_backend(struct ds__fabric *fab, const ds_fabric_backend *ops,
                                 void *user, int32_t *first_device) {
  ds_status st = ds__fabric_check_backend(fab, ops);
  if (st != DS_OK) return st;
  struct ds__fabric_backend *be = &fab->be[fab->nbackends];
  memset(&be->ops, 0, sizeof be->ops);
  memcpy(&be->ops, ops, ops->struct_size);
  be->user = user;
  size_t len = strnlen(ops->name, sizeof be->name - 1);
  memcpy(be->name, ops->name, len);
  be->name[len] = '\0';
  be->ops.name = be->name;
  int32_t first = ds__load(&fab->ndev);
  be->first_device = first;
  for (int32_t i = 0; i < ops->device_count; i++) {
    struct ds__fabric_device *d = &fab->dev[first + i];
    memset(d, 0, sizeof *d);
    d->info.struct_size = sizeof d->info;
    d->info.numa_node = -1;
    st = ops->describe(user, i, &d->info);
    if (st != DS_OK)
      return ds__error(fab->ctx, st, "fabric", "backend %s: describing device %d failed",
                       be->name, (int)i);
    d->info.struct_size = sizeof d->info;
    d->info.index = first + i;
    d->info.memory_space = fab->nspaces + i;
    d->info.name[sizeof d->info.name - 1] = '\0';
    memcpy(d->info.backend, be->name, sizeof d->info.backend); /* both 32 bytes, terminated */
    d->be = be;
    d->local = i;
    ds__fabric_default_model(d);
    ds__fabric_register_stats(fab, d);
  }
  fab->nbackends++;
  fab->nspaces += ops->device_count;
  ds__store(&fab->ndev, first + ops->device_count); /* publishes the filled entries */
  if (first_device) *first_device = first;
  return DS_OK;
}

/* Host-memory devices of other backends get their memory space's transfer model from here. */
static void ds__fabric_probe_all(struct ds__fabric *fab) {
  ds_status st = ds__fabric_cpu_probe(fab);
  if (st != DS_OK) ds__log(fab->ctx, DS_LOG_WARN, "fabric", "CPU devices: %s", ds_status_str(st));
  if (ds__param(fab->ctx, DS_PARAM_FABRIC_CUDA) && ds__fabric_cuda_probe(fab) != DS_OK)
    ds__log(fab->ctx, DS_LOG_INFO, "fabric", "CUDA devices not used: %s",
            ds_context_last_error(fab->ctx));
  if (ds__param(fab->ctx, DS_PARAM_FABRIC_OPENCL) && ds__fabric_opencl_probe(fab) != DS_OK)
    ds__log(fab->ctx, DS_LOG_INFO, "fabric", "OpenCL devices not used: %s",
            ds_context_last_error(fab->ctx));
}

static struct ds__fabric *ds__fabric_new(ds_context *ctx) {
  struct ds__fabric *fab = ds__calloc(ctx, 1, sizeof *fab);
  if (!fab) return NULL;
  fab->ctx = ctx;
  pthread_mutex_init(&fab->mu, NULL);
  fab->stat_bytes = ds__stat_register(ctx, "fabric.bytes_moved", DS_STAT_COUNTER);
  fab->stat_copies = ds__stat_register(ctx, "fabric.copies", DS_STAT_COUNTER);
  fab->stat_avoided = ds__stat_register(ctx, "fabric.copies_avoided", DS_STAT_COUNTER);
  fab->stat_peer = ds__stat_register(ctx, "fabric.peer_copies", DS_STAT_COUNTER);
  pthread_mutex_lock(&fab->mu);
  ds__fabric_probe_all(fab);
  pthread_mutex_unlock(&fab->mu);
  if (ds__load(&fab->ndev) == 0) { /* not even a CPU: out of memory in hwloc or here */
    pthread_mutex_destroy(&fab->mu);
    ds__free(ctx, fab);
    return NULL;
  }
  return fab;
}

/* Serialises fabric creation (rare: once per context). Enumeration cannot run under the
 * context's lazy_mu because the probes take the topology, which uses lazy_mu. */
static pthread_mutex_t ds__fabric_create_mu = PTHREAD_MUTEX_INITIALIZER;

struct ds__fabric *ds__fabric_get(ds_context *ctx) {
  pthread_mutex_lock(&ctx->lazy_mu);
  struct ds__fabric *fab = ctx->fabric;
  pthread_mutex_unlock(&ctx->lazy_mu);
  if (fab) return fab;
  pthread_mutex_lock(&ds__fabric_create_mu);
  pthread_mutex_lock(&ctx->lazy_mu);
  fab = ctx->fabric;
  pthread_mutex_unlock(&ctx->lazy_mu);
  if (!fab) {
    fab = ds__fabric_new(ctx);
    pthread_mutex_lock(&ctx->lazy_mu);
    ctx->fabric = fab;
    pthread_mutex_unlock(&ctx->lazy_mu);
  }
  pthread_mutex_unlock(&ds__fabric_create_mu);
  if (!fab) ds__error(ctx, DS_ERR_NO_MEMORY, "fabric", "cannot set up the device table");
  return fab;
}

void ds__fabric_destroy(ds_context *ctx) {
  struct ds__fabric *fab = ctx->fabric;
  if (!fab) return;
  for (int i = DS__FABRIC_EXT_MAX - 1; i >= 0; i--)
    if (fab->ext[i] && fab->ext_destroy[i]) fab->ext_destroy[i](ctx, fab->ext[i]);
  int64_t live = ds__load(&fab->live_buffers);
  if (live)
    ds__log(ctx, DS_LOG_WARN, "fabric", "%lld buffer(s) not destroyed before the context",
            (long long)live);
  for (int i = fab->nbackends - 1; i >= 0; i--)
    if (fab->be[i].ops.destroy) fab->be[i].ops.destroy(fab->be[i].user);
  pthread_mutex_destroy(&fab->mu);
  ds__free(ctx, fab);
  ctx->fabric = NULL;
}

int32_t ds__fabric_ndev(const struct ds__fabric *fab) {
  return ds__load((ds__atomic_int *)&fab->ndev);
}

const struct ds__fabric_device *ds__fabric_device(ds_context *ctx, int32_t index) {
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return NULL;
  int32_t n = ds__fabric_ndev(fab);
  if (index < 0 || index >= n) {
    ds__error(ctx, DS_ERR_NOT_FOUND, "fabric", "no device %d (this context has %d)", (int)index,
              (int)n);
    return NULL;
  }
  return &fab->dev[index];
}

const char *ds__fabric_device_label(ds_context *ctx, int32_t dev, char *buf, size_t size) {
  struct ds__fabric *fab = ctx->fabric;
  if (fab && dev >= 0 && dev < ds__fabric_ndev(fab))
    snprintf(buf, size, "device %d (%s)", (int)dev, fab->dev[dev].info.name);
  else
    snprintf(buf, size, "device %d", (int)dev);
  return buf;
}

void ds__fabric_count_copy(struct ds__fabric *fab, int32_t dev, size_t bytes) {
  ds__stat_add(fab->ctx, fab->stat_bytes, (double)bytes);
  ds__stat_add(fab->ctx, fab->stat_copies, 1);
  ds__stat_add(fab->ctx, fab->dev[dev].stat[0], (double)bytes);
  ds__stat_add(fab->ctx, fab->dev[dev].stat[1], 1);
}

void ds__fabric_count_peer(struct ds__fabric *fab, int32_t dst, size_t bytes) {
  ds__fabric_count_copy(fab, dst, bytes);
  ds__stat_add(fab->ctx, fab->stat_peer, 1);
}

void ds__fabric_count_avoided(struct ds__fabric *fab, int32_t dev) {
  ds__stat_add(fab->ctx, fab->stat_avoided, 1);
  ds__stat_add(fab->ctx, fab->dev[dev].stat[2], 1);
}

int32_t ds__fabric_space_device(ds_context *ctx, int32_t space) {
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return -1;
  for (int32_t i = 0; i < ds__fabric_ndev(fab); i++)
    if (fab->dev[i].info.memory_space == space) return i;
  return -1;
}

/* Host -> device or device -> host time of one device's link; 0 for host memory. */
static double ds__fabric_link_s(const struct ds__fabric_device *d, size_t bytes, int in) {
  double bw = in ? d->bw_in : d->bw_out;
  if (bw <= 0) return 0;
  return d->latency_s + (double)bytes / bw;
}

double ds__fabric_transfer_cost(ds_context *ctx, int32_t src_space, int32_t dst_space,
                                size_t bytes) {
  if (src_space == dst_space) return 0;
  int32_t s = ds__fabric_space_device(ctx, src_space), d = ds__fabric_space_device(ctx, dst_space);
  if (s < 0 || d < 0) return 0;
  struct ds__fabric *fab = ctx->fabric;
  /* A device that uses host memory in place costs nothing to reach from host memory. */
  int zc = ds__param(ctx, DS_PARAM_FABRIC_ZERO_COPY) != 0;
  const struct ds__fabric_device *sd = &fab->dev[s], *dd = &fab->dev[d];
  const uint32_t in_place = DS_DEVICE_CAP_MAP_HOST | DS_DEVICE_CAP_PREFER_COPY;
  int s_host = (sd->info.caps & DS_DEVICE_CAP_HOST_MEMORY) ||
               (zc && (sd->info.caps & in_place) == DS_DEVICE_CAP_MAP_HOST);
  int d_host = (dd->info.caps & DS_DEVICE_CAP_HOST_MEMORY) ||
               (zc && (dd->info.caps & in_place) == DS_DEVICE_CAP_MAP_HOST);
  double out = s_host ? 0 : ds__fabric_link_s(sd, bytes, 0);
  double in = d_host ? 0 : ds__fabric_link_s(dd, bytes, 1);
  /* Two separate allocations of one backend that copies between its devices: one hop, priced
   * as the slower link (a backend may still refuse a pair; the host path then costs more). */
  if (!s_host && !d_host && sd->be == dd->be &&
      (sd->be->ops.copy_peer || sd->be->ops.copy_peer_async) &&
      ds__param(ctx, DS_PARAM_FABRIC_PEER_COPY))
    return out > in ? out : in;
  return out + in; /* through host memory */
}

void *ds__fabric_ext(ds_context *ctx, int slot, ds_status (*create)(ds_context *ctx, void **out),
                     void (*destroy)(ds_context *ctx, void *state)) {
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab || slot < 0 || slot >= DS__FABRIC_EXT_MAX) return NULL;
  pthread_mutex_lock(&fab->mu);
  void *state = fab->ext[slot];
  if (!state && create(ctx, &state) == DS_OK) {
    fab->ext[slot] = state;
    fab->ext_destroy[slot] = destroy;
  }
  pthread_mutex_unlock(&fab->mu);
  return state;
}

/* ---- public device queries ---- */

ds_status ds_fabric_device_count(int32_t *out, ds_context *ctx) {
  if (!out || !ctx) return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "device_count: NULL argument");
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return DS_ERR_NO_MEMORY;
  *out = ds__fabric_ndev(fab);
  return DS_OK;
}

ds_status ds_fabric_device_info(ds_device_info *out, ds_context *ctx, int32_t index) {
  if (!out || !ctx) return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "device_info: NULL argument");
  if (out->struct_size != sizeof *out)
    return ds__error(ctx, DS_ERR_ABI, "fabric", "device_info: struct_size %u, expected %zu",
                     (unsigned)out->struct_size, sizeof *out);
  const struct ds__fabric_device *d = ds__fabric_device(ctx, index);
  if (!d) return ctx->fabric ? DS_ERR_NOT_FOUND : DS_ERR_NO_MEMORY;
  *out = d->info;
  return DS_OK;
}

ds_status ds_fabric_device_find(int32_t *out, ds_context *ctx, ds_fabric_device_kind kind, int32_t nth) {
  if (!out || !ctx) return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "device_find: NULL argument");
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return DS_ERR_NO_MEMORY;
  int32_t seen = 0;
  for (int32_t i = 0; i < ds__fabric_ndev(fab); i++)
    if (fab->dev[i].info.kind == (int32_t)kind && seen++ == nth) {
      *out = i;
      return DS_OK;
    }
  return ds__error(ctx, DS_ERR_NOT_FOUND, "fabric", "no device of kind %d number %d (%d present)",
                   (int)kind, (int)nth, (int)seen);
}

ds_status ds_fabric_memory_space_count(int32_t *out, ds_context *ctx) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "memory_space_count: NULL argument");
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return DS_ERR_NO_MEMORY;
  pthread_mutex_lock(&fab->mu);
  *out = fab->nspaces;
  pthread_mutex_unlock(&fab->mu);
  return DS_OK;
}

ds_status ds_fabric_backend_register(int32_t *first_device, ds_context *ctx,
                                     const ds_fabric_backend *backend, void *user) {
  if (!ctx || !backend)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "backend_register: NULL argument");
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return DS_ERR_NO_MEMORY;
  pthread_mutex_lock(&fab->mu);
  ds_status st = ds__fabric_add_backend(fab, backend, user, first_device);
  pthread_mutex_unlock(&fab->mu);
  return st;
}
