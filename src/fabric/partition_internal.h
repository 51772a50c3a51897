/* The partitioner's planning simulation (partition_sim.c), shared by every placement policy
 * in partition.c. */
#ifndef DS_FABRIC_PARTITION_INTERNAL_H
#define DS_FABRIC_PARTITION_INTERNAL_H

#include "graph_internal.h"

struct ds__pinterval {
  double start, end;
};
struct ds__punit { /* one execution unit of a device: sorted, disjoint busy intervals */
  uint32_t n, cap;
  struct ds__pinterval *iv;
};
struct ds__psim {
  ds_graph *g;
  const struct ds__gplat *plat;
  int nunits;
  int dev_unit0[DS__GRAPH_MAX_DEV]; /* first unit of each device */
  struct ds__punit *units;
  int *unit_pus;    /* per unit: host processing units its device's nodes hold (0: none) */
  double *valid;    /* [buffer][memspace]: time the replica became valid; INFINITY: invalid */
  uint64_t *bytes;  /* per graph buffer */
  double *aft;      /* per node: finish time once placed */
  double makespan;
  uint64_t bytes_moved;
};
/* Where and when a node would run. */
struct ds__pchoice {
  int dev, unit;
  uint32_t pos; /* insertion index in the unit's intervals */
  double est, eft;
  uint64_t bytes; /* moved to run there */
};

ds_status ds__psim_init(struct ds__psim *s, ds_graph *g, const struct ds__gplat *plat);
void ds__psim_fini(struct ds__psim *s);
/* Best unit of device dev for node (all its predecessors placed), given its compute time.
 * A slot finishing at or after bound is not searched for (INFINITY: no bound); c->eft is
 * INFINITY when no unit finishes before it. */
void ds__psim_eval(const struct ds__psim *s, int32_t node, int dev, double compute_s,
                   double bound, struct ds__pchoice *c);
ds_status ds__psim_commit(struct ds__psim *s, int32_t node, const struct ds__pchoice *c);

#endif /* DS_FABRIC_PARTITION_INTERNAL_H */
