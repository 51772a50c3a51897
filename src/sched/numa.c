/* NUMA-aware placement of NORMAL tasks: each worker's NUMA node (from the processing unit it
 * is bound to), and the data-locality hint (ds_task_options.data): the node holding the page
 * of that address (hwloc_get_area_memlocation) picks a worker on that node. On a machine with
 * one node (or no topology) nothing changes. The choice itself is a pure function, so it is
 * tested with made-up node maps. */
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

int ds__sched_worker_for_data(struct ds__sched *s, const void *data) {
  int node = ds__numa_of_data(s, data);
  if (node < 0) return -1;
  ds__worker *self = ds__sched_self(s);
  unsigned rotor = (unsigned)ds__fetch_add_relaxed(&s->numa_rotor, 1);
  return ds__sched_place(s->worker_node, s->worker_reserved, s->nworkers, node, rotor,
                         self ? self->index : -1);
}
