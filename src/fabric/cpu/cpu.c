/* The CPU backend: one device per NUMA node, whose memory space is host memory on that node.
 * Buffers use their host replica directly on every CPU device (buffer.c), so this table is
 * only reached for the transfer model and by code that treats all backends alike. */
#include <stdio.h>
#include <string.h>

#include "fabric_internal.h"
#include "topology_internal.h"


static hwloc_obj_t ds__cpu_node(void *user, int32_t dev) {
  struct ds__fabric *fab = user;
  hwloc_topology_t topo = ds__topology_acquire(fab->ctx);
  return topo ? hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)dev) : NULL;
}

static ds_status ds__cpu_describe(void *user, int32_t dev, ds_device_info *info) {
  struct ds__fabric *fab = user;
  hwloc_topology_t topo = ds__topology_acquire(fab->ctx);
  hwloc_obj_t node = ds__cpu_node(user, dev);
  info->kind = DS_FABRIC_DEVICE_CPU;
  info->numa_node = dev;
  info->caps = DS_DEVICE_CAP_HOST_MEMORY | DS_DEVICE_CAP_MAP_HOST | DS_DEVICE_CAP_UNIFIED |
               DS_DEVICE_CAP_LAUNCH;
  snprintf(info->name, sizeof info->name, "cpu:numa%d", (int)dev);
  if (topo && node) {
    info->memory_bytes = node->attr ? node->attr->numanode.local_memory : 0;
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, node->cpuset, HWLOC_OBJ_CORE);
    info->compute_units = cores > 0 ? cores : 0;
  }
  return DS_OK;
}

static ds_status ds__cpu_alloc(void *user, int32_t dev, size_t size, void *host, void **mem,
                               int *aliased, char *msg, size_t msg_size) {
  struct ds__fabric *fab = user;
  (void)dev;
  if (host) { /* host memory is this device's memory: use it in place */
    *mem = host;
    *aliased = 1;
    return DS_OK;
  }
  *aliased = 0;
  *mem = ds__alloc(fab->ctx, size);
  if (*mem) return DS_OK;
  snprintf(msg, msg_size, "out of host memory for %zu bytes", size);
  return DS_ERR_NO_MEMORY;
}

static void ds__cpu_free(void *user, int32_t dev, void *mem) {
  struct ds__fabric *fab = user;
  (void)dev;
  ds__free(fab->ctx, mem);
}

static ds_status ds__cpu_copy_in(void *user, int32_t dev, void *mem, size_t offset,
                                 const void *host, size_t n, void **event, char *msg,
                                 size_t msg_size) {
  (void)user, (void)dev, (void)msg, (void)msg_size;
  memcpy((char *)mem + offset, host, n);
  if (event) *event = NULL;
  return DS_OK;
}

static ds_status ds__cpu_copy_out(void *user, int32_t dev, void *host, void *mem, size_t offset,
                                  size_t n, void **event, char *msg, size_t msg_size) {
  (void)user, (void)dev, (void)msg, (void)msg_size;
  memcpy(host, (const char *)mem + offset, n);
  if (event) *event = NULL;
  return DS_OK;
}

void ds__fabric_cpu_bind(struct ds__fabric *fab, int32_t dev, void *p, size_t size) {
  hwloc_topology_t topo = ds__topology_acquire(fab->ctx);
  if (!topo || hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE) < 2) return;
  hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)dev);
  if (node && hwloc_set_area_membind(topo, p, size, node->nodeset, HWLOC_MEMBIND_BIND,
                                     HWLOC_MEMBIND_BYNODESET) != 0)
    ds__log(fab->ctx, DS_LOG_DEBUG, "fabric", "cannot bind %zu bytes to NUMA node %d", size,
            (int)dev);
}

/* Runs a struct ds__cpu_kernel on the calling thread (the scheduler spreads CPU work). */
static ds_status ds__cpu_launch(void *user, int32_t dev, void *kernel, void *const *args,
                                const size_t *arg_sizes, size_t nargs, const size_t *global,
                                uint32_t dims, void **event, char *msg, size_t msg_size) {
  (void)user, (void)dev, (void)msg, (void)msg_size;
  const struct ds__cpu_kernel *k = kernel;
  k->fn(k->user, args, arg_sizes, nargs, global, dims);
  if (event) *event = NULL;
  return DS_OK;
}

ds_status ds__fabric_cpu_probe(struct ds__fabric *fab) {
  hwloc_topology_t topo = ds__topology_acquire(fab->ctx);
  int nodes = topo ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE) : 0;
  if (nodes < 1) nodes = 1; /* without hwloc: one CPU device, size unknown */
  if (nodes > DS__FABRIC_MAX_DEVICES / 2) nodes = DS__FABRIC_MAX_DEVICES / 2;
  ds_fabric_backend ops;
  memset(&ops, 0, sizeof ops);
  ops.struct_size = sizeof ops;
  ops.name = "cpu";
  ops.device_count = nodes;
  ops.describe = ds__cpu_describe;
  ops.alloc = ds__cpu_alloc;
  ops.free = ds__cpu_free;
  ops.copy_in = ds__cpu_copy_in;
  ops.copy_out = ds__cpu_copy_out;
  ops.launch = ds__cpu_launch;
  return ds__fabric_add_backend(fab, &ops, fab, NULL);
}
