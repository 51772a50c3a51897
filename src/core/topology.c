/* The process-wide hwloc topology (loaded on first use, shared by every context through a
 * reference count, destroyed with the last reference) and the public ds_topology_* queries. */
#include <stddef.h>
#include <string.h>

#include "topology_internal.h"

/* The one piece of process state here: hwloc discovery is slow (milliseconds to seconds on large
 * machines) and describes the machine, not a context, so contexts share it. Lock order:
 * ctx->lazy_mu, then ds__topo_mu. */
static pthread_mutex_t ds__topo_mu = PTHREAD_MUTEX_INITIALIZER;
static hwloc_topology_t ds__topo;
static int ds__topo_refs;

/* Loads the topology; called with ds__topo_mu held and no topology loaded. */
static ds_status ds__topo_load(ds_context *ctx) {
  hwloc_topology_t t;
  if (hwloc_topology_init(&t) != 0)
    return ds__error(ctx, DS_ERR_UNAVAILABLE, "topology", "hwloc_topology_init failed");
  if (hwloc_topology_load(t) != 0) {
    hwloc_topology_destroy(t);
    return ds__error(ctx, DS_ERR_UNAVAILABLE, "topology", "hwloc could not read the machine");
  }
  /* hwloc fills some internal caches lazily, which is not thread-safe; refreshing once here
   * makes the loaded topology safe for the concurrent readers that follow. */
  hwloc_topology_refresh(t);
  ds__topo = t;
  return DS_OK;
}

hwloc_topology_t ds__topology_acquire(ds_context *ctx) {
  pthread_mutex_lock(&ctx->lazy_mu);
  if (!ctx->topology_ref) {
    pthread_mutex_lock(&ds__topo_mu);
    ds_status st = ds__topo_refs > 0 ? DS_OK : ds__topo_load(ctx);
    if (st == DS_OK) ds__topo_refs++;
    pthread_mutex_unlock(&ds__topo_mu);
    ctx->topology_ref = st == DS_OK;
  }
  int held = ctx->topology_ref;
  pthread_mutex_unlock(&ctx->lazy_mu);
  /* While this context holds its reference, ds__topo is set and does not change. */
  return held ? ds__topo : NULL;
}

void ds__topology_context_release(ds_context *ctx) {
  pthread_mutex_lock(&ctx->lazy_mu);
  int held = ctx->topology_ref;
  ctx->topology_ref = 0;
  pthread_mutex_unlock(&ctx->lazy_mu);
  if (!held) return;
  pthread_mutex_lock(&ds__topo_mu);
  if (--ds__topo_refs == 0) {
    hwloc_topology_destroy(ds__topo);
    ds__topo = NULL;
  }
  pthread_mutex_unlock(&ds__topo_mu);
}

int ds__topology_refcount(void) {
  pthread_mutex_lock(&ds__topo_mu);
  int n = ds__topo_refs;
  pthread_mutex_unlock(&ds__topo_mu);
  return n;
}

/* ---- output structures ---- */

/* Bytes up to the end of the last field of the first released version of each structure.
 * A caller's struct_size must lie between that and this library's sizeof: smaller means a
 * corrupt size, larger a caller built against newer headers than this library. */
#define DS__END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define DS__TOPOLOGY_INFO_V1 DS__END_OF(ds_topology_info, cache_count)
#define DS__NUMA_NODE_INFO_V1 DS__END_OF(ds_numa_node_info, memory_bytes)
#define DS__CUDA_DEVICE_INFO_V1 DS__END_OF(ds_cuda_device_info, memory_bytes)

static ds_status ds__check_out(const ds_context *ctx, const void *out, size_t v1, size_t cur,
                               const char *fn) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "topology", "%s: %s is NULL", fn,
                     out ? "ctx" : "out");
  uint32_t size;
  memcpy(&size, out, sizeof size); /* every output structure starts with uint32_t struct_size */
  if (size < v1 || size > cur)
    return ds__error(ctx, DS_ERR_ABI, "topology",
                     "%s: struct_size is %u; this library accepts %zu..%zu", fn, size, v1, cur);
  return DS_OK;
}

/* Copies the part of @p full the caller's structure has room for, keeping its struct_size. */
static void ds__copy_out(void *out, const void *full, size_t full_size) {
  uint32_t size;
  memcpy(&size, out, sizeof size);
  memcpy(out, full, size < full_size ? size : full_size);
  memcpy(out, &size, sizeof size);
}

/* ---- queries ---- */

static int32_t ds__count(hwloc_topology_t t, hwloc_obj_type_t type) {
  int n = hwloc_get_nbobjs_by_type(t, type);
  return n > 0 ? n : 0; /* -1 means "at several depths", which hwloc 2 has for no type used here */
}

/* Levels 1-4 of data (or unified) caches: one cache's size, and how many there are. */
static void ds__fill_caches(ds_topology_info *info, hwloc_topology_t t) {
  static const hwloc_obj_type_t types[DS_TOPOLOGY_CACHE_LEVELS] = {
      HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L4CACHE};
  for (int i = 0; i < DS_TOPOLOGY_CACHE_LEVELS; i++) {
    hwloc_obj_t c = hwloc_get_obj_by_type(t, types[i], 0);
    info->cache_count[i] = c ? ds__count(t, types[i]) : 0;
    info->cache_bytes[i] = c ? c->attr->cache.size : 0;
  }
}

ds_status ds_topology_get(ds_topology_info *out, ds_context *ctx) {
  ds_status st = ds__check_out(ctx, out, DS__TOPOLOGY_INFO_V1, sizeof *out, "ds_topology_get");
  if (st != DS_OK) return st;
  hwloc_topology_t t = ds__topology_acquire(ctx);
  if (!t) return DS_ERR_UNAVAILABLE;
  ds_topology_info info = DS_TOPOLOGY_INFO_INIT;
  info.pus = ds__count(t, HWLOC_OBJ_PU);
  /* Some platforms (ARM boards, some VMs) do not tell hwloc about packages or cores; a
   * machine has at least one package, and a PU with no known core is its own core. */
  info.packages = ds__count(t, HWLOC_OBJ_PACKAGE);
  if (info.packages == 0) info.packages = 1;
  info.cores = ds__count(t, HWLOC_OBJ_CORE);
  if (info.cores == 0) info.cores = info.pus;
  info.numa_nodes = ds__count(t, HWLOC_OBJ_NUMANODE);
  info.total_memory_bytes = hwloc_get_root_obj(t)->total_memory;
  ds__fill_caches(&info, t);
  info.cuda_devices = ds__cuda_driver_devices(ctx, NULL);
  ds__copy_out(out, &info, sizeof info);
  return DS_OK;
}

/* Objects of @p type whose cpuset intersects @p set: a core split across two nodes (rare, but
 * hwloc allows it) counts for both, which is what a scheduler placing work there wants. */
static int32_t ds__count_in(hwloc_topology_t t, hwloc_obj_type_t type, hwloc_const_cpuset_t set) {
  int32_t n = 0;
  for (hwloc_obj_t o = hwloc_get_next_obj_by_type(t, type, NULL); o;
       o = hwloc_get_next_obj_by_type(t, type, o))
    n += hwloc_bitmap_intersects(o->cpuset, set) != 0;
  return n;
}

ds_status ds_topology_numa_node(ds_numa_node_info *out, ds_context *ctx, int32_t index) {
  ds_status st =
      ds__check_out(ctx, out, DS__NUMA_NODE_INFO_V1, sizeof *out, "ds_topology_numa_node");
  if (st != DS_OK) return st;
  hwloc_topology_t t = ds__topology_acquire(ctx);
  if (!t) return DS_ERR_UNAVAILABLE;
  int32_t n = ds__count(t, HWLOC_OBJ_NUMANODE);
  hwloc_obj_t node = index >= 0 ? hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, (unsigned)index)
                                : NULL;
  if (!node)
    return ds__error(ctx, DS_ERR_NOT_FOUND, "topology", "no NUMA node %d (%d found)",
                     (int)index, (int)n);
  ds_numa_node_info info = DS_NUMA_NODE_INFO_INIT;
  info.os_index = (int32_t)node->os_index;
  info.pus = ds__count_in(t, HWLOC_OBJ_PU, node->cpuset);
  /* As in ds_topology_get: without known cores, each PU counts as one. */
  info.cores = ds__count(t, HWLOC_OBJ_CORE) ? ds__count_in(t, HWLOC_OBJ_CORE, node->cpuset)
                                            : info.pus;
  info.memory_bytes = node->attr->numanode.local_memory;
  ds__copy_out(out, &info, sizeof info);
  return DS_OK;
}

ds_status ds_topology_cuda_device(ds_cuda_device_info *out, ds_context *ctx, int32_t index) {
  ds_status st = ds__check_out(ctx, out, DS__CUDA_DEVICE_INFO_V1, sizeof *out,
                               "ds_topology_cuda_device");
  if (st != DS_OK) return st;
  const ds_cuda_device_info *devs;
  int32_t n = ds__cuda_driver_devices(ctx, &devs);
  if (index < 0 || index >= n)
    return ds__error(ctx, DS_ERR_NOT_FOUND, "topology", "no CUDA device %d (%d found)",
                     (int)index, (int)n);
  ds__copy_out(out, &devs[index], sizeof devs[index]);
  return DS_OK;
}
