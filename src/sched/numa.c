/* NUMA-aware placement of NORMAL tasks: each worker's NUMA node (from the processing unit it
 * is bound to), the device hint (ds_task_options.device: the fabric device's NUMA node) and
 * the data-locality hint (ds_task_options.data: the node holding the page of that address,
 * hwloc_get_area_memlocation) pick a worker on that node. On a machine with one node (or no
 * topology) nothing changes. The choice itself is a pure function, so it is tested with
 * made-up node maps. Also the placement of each worker's own record on its node. */
#include <unistd.h>

#include "deepseek/fabric.h"
#include "sched_internal.h"
#include "topology_internal.h"

int ds__sched_place(const int *worker_node, const int *reserved, int nworkers, int node,
                    unsigned rotor, int self) {
  if (node < 0) return -1;
  if (self >= 0 && self < nworkers && worker_node[self] == node && !reserved[self])
    return self; /* stay local: its own deque */
  int count = 0;
  for (int i = 0; i < nworkers; i++) count += worker_node[i] == node && !reserved[i];
  if (count == 0) return -1;
  int k = (int)(rotor % (unsigned)count); /* spread the node's tasks over its workers */
  for (int i = 0; i < nworkers; i++)
    if (worker_node[i] == node && !reserved[i] && k-- == 0) return i;
  return -1;
}

/* The NUMA node (os index) whose cpuset covers the PU worker i is bound to (index i modulo
 * the PUs, as ds__worker_bind uses), or -1. */
static int ds__numa_of_worker(hwloc_topology_t topo, int i) {
  int npu = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  hwloc_obj_t pu = npu > 0 ? hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)(i % npu)) : NULL;
  if (!pu) return -1;
  int nn = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int k = 0; k < nn; k++) {
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
    if (node && hwloc_bitmap_isincluded(pu->cpuset, node->cpuset)) return (int)node->os_index;
  }
  return -1;
}

void ds__sched_numa_init(struct ds__sched *s) {
  hwloc_topology_t topo = s->topo;
  s->numa_nodes = topo ? hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE) : 0;
  for (int i = 0; i < s->nslots; i++) {
    s->worker_node[i] = topo && i < s->nworkers ? ds__numa_of_worker(topo, i) : -1;
    s->worker_reserved[i] = s->workers[i].reserved;
  }
}

/* The node holding the page at p, or -1 (unknown, not touched yet, or one node only). */
static int ds__numa_of_data(struct ds__sched *s, const void *p) {
  if (s->numa_nodes < 2) return -1;
  hwloc_nodeset_t set = hwloc_bitmap_alloc();
  int node = -1;
  if (set && hwloc_get_area_memlocation(s->topo, p, 1, set, HWLOC_MEMBIND_BYNODESET) == 0)
    node = hwloc_bitmap_first(set);
  hwloc_bitmap_free(set);
  return node;
}

/* A worker on node (-1: no preference), spreading over the node's workers. */
static int ds__sched_worker_on_node(struct ds__sched *s, int node) {
  if (node < 0 || s->numa_nodes < 2) return -1;
  ds__worker *self = ds__sched_self(s);
  unsigned rotor = (unsigned)ds__fetch_add_relaxed(&s->numa_rotor, 1);
  return ds__sched_place(s->worker_node, s->worker_reserved, s->nworkers, node, rotor,
                         self ? self->index : -1);
}

int ds__sched_worker_for_data(struct ds__sched *s, const void *data) {
  return ds__sched_worker_on_node(s, ds__numa_of_data(s, data));
}

/* The NUMA node of fabric device dev into *node (-1: unknown), asked of the fabric once per
 * device and cached (devices are fixed once the fabric has started). */
static ds_status ds__device_node(struct ds__sched *s, int32_t dev, int *node) {
  if (dev < DS__SCHED_DEVICES) {
    int c = ds__load_relaxed(&s->device_node[dev]);
    if (c != 0) {
      *node = c - 2;
      return DS_OK;
    }
  }
  ds_device_info info = DS_DEVICE_INFO_INIT;
  if (ds_fabric_device_info(&info, s->ctx, dev) != DS_OK)
    return ds__error(s->ctx, DS_ERR_INVALID_ARG, "sched",
                     "ds_task_submit: device hint %d is not a fabric device", (int)dev);
  *node = info.numa_node >= 0 ? info.numa_node : -1;
  if (dev < DS__SCHED_DEVICES) ds__store_relaxed(&s->device_node[dev], *node + 2);
  return DS_OK;
}

ds_status ds__sched_worker_for_device(struct ds__sched *s, int32_t dev, int *worker) {
  *worker = -1;
  if (dev == -1) return DS_OK;
  if (dev < -1)
    return ds__error(s->ctx, DS_ERR_INVALID_ARG, "sched",
                     "ds_task_submit: device hint %d (-1: any device)", (int)dev);
  int node = -1;
  ds_status st = ds__device_node(s, dev, &node);
  if (st == DS_OK) *worker = ds__sched_worker_on_node(s, node);
  return st;
}

/* ---------------------------------------------------------------- worker records */

/* Called by worker w after binding: the pages of its record (DS__WORKER_ALIGN-aligned and a
 * multiple of it in size, see ds__worker) are bound to its NUMA node and migrated there. Only
 * with several nodes and 4 KiB pages (larger pages would hold several records). Sets
 * w->record_node to the node now holding the record, -1 if unknown. */
void ds__sched_place_record(ds__worker *w) {
  struct ds__sched *s = w->s;
  w->record_node = -1;
  int node = s->worker_node[w->index];
  if (!s->topo || node < 0) return;
  hwloc_topology_t topo = s->topo;
  hwloc_nodeset_t set = hwloc_bitmap_alloc();
  if (!set) return;
  hwloc_bitmap_only(set, (unsigned)node);
  if (s->numa_nodes > 1 && sysconf(_SC_PAGESIZE) == DS__WORKER_ALIGN &&
      hwloc_set_area_membind(topo, w, sizeof *w, set, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_MIGRATE) != 0)
    ds__log(s->ctx, DS_LOG_DEBUG, "sched", "worker %d: its record stays where it is (membind failed)",
            w->index);
  hwloc_bitmap_zero(set);
  if (hwloc_get_area_memlocation(topo, w, sizeof *w, set, HWLOC_MEMBIND_BYNODESET) == 0 &&
      hwloc_bitmap_weight(set) == 1)
    w->record_node = hwloc_bitmap_first(set);
  hwloc_bitmap_free(set);
}
