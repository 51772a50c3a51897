/* Internal interface of fabric graphs: kernels and their cost models (costmodel.c), graphs and
 * their dependencies (graph.c), the device view the partitioner plans on and the simulation
 * it plans with (partition*.c), execution (graph_run.c) and the glue to the fabric's devices
 * and buffers (graph_fabric.c, the only file here that knows fabric-core's internals). */
#ifndef DS_FABRIC_GRAPH_INTERNAL_H
#define DS_FABRIC_GRAPH_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "internal.h"
#include "deepseek/fabric.h"

#define DS__GRAPH_MAX_ACC 16
#define DS__GRAPH_MAX_ARGS 256
#define DS__GRAPH_MAX_DEV 16
#define DS__CM_MAX_KEYS 8    /* device keys per kernel model */
#define DS__CM_MAX_POINTS 32 /* distinct sizes per device key */
#define DS__NAME_MAX 64

/* Device kinds as the planner sees them (which implementation a device runs). */
enum { DS__GKIND_CPU = 0, DS__GKIND_CUDA = 1, DS__GKIND_OPENCL = 2, DS__GKIND_COUNT = 3 };

/* ---- cost model (costmodel.c) ---- */
struct ds__cm_point {
  uint64_t size;
  uint64_t n;
  double mean, m2; /* seconds; Welford */
};
struct ds__cm_key {
  char key[DS__NAME_MAX]; /* device identity that survives processes, e.g. "opencl:pthread" */
  uint32_t npoints;
  struct ds__cm_point pts[DS__CM_MAX_POINTS];
  int warm; /* not persisted: a run on this device was seen in this process */
};
struct ds__costmodel {
  pthread_mutex_t mu;
  uint32_t nkeys;
  struct ds__cm_key keys[DS__CM_MAX_KEYS];
  int dirty;
};
void ds__cm_init(struct ds__costmodel *cm);
void ds__cm_fini(struct ds__costmodel *cm);
/* DS_ERR_FULL when the model already holds DS__CM_MAX_KEYS other keys. */
ds_status ds__cm_record(struct ds__costmodel *cm, const char *key, uint64_t size, double s);
/* A measured node run: as ds__cm_record, except that the first run per device key in this
 * process is dropped, because it pays one-time costs (OpenCL/CUDA JIT at first launch, first
 * touch of pages) that later runs do not. */
ds_status ds__cm_record_run(struct ds__costmodel *cm, const char *key, uint64_t size, double s);
/* Prediction in seconds (NaN when nothing is known for key); *samples = runs at exactly size. */
double ds__cm_predict(struct ds__costmodel *cm, const char *key, uint64_t size,
                      uint64_t *samples);
/* Samples wanted at (key, size) before plans trust the mean: @p runs, or while the samples
 * vary so much that the mean's relative standard error exceeds DS__CM_NOISY_RSE, one more
 * than measured, up to @p max_runs. Thread-safe. */
#define DS__CM_NOISY_RSE 0.10
uint64_t ds__cm_wanted(struct ds__costmodel *cm, const char *key, uint64_t size, uint64_t runs,
                       uint64_t max_runs);
/* Serialised form: a versioned little-endian blob. ds__cm_decode replaces the model only
 * when the whole blob is valid (DS_ERR_FORMAT otherwise). */
ds_status ds__cm_encode(ds_context *ctx, struct ds__costmodel *cm, uint8_t **out, size_t *len);
ds_status ds__cm_decode(struct ds__costmodel *cm, const uint8_t *p, size_t len);

/* ---- kernels (graph.c) ---- */
struct ds_kernel {
  ds_context *ctx;
  char name[DS__NAME_MAX];
  ds_kernel_cpu_fn cpu;
  ds_kernel_cuda_fn cuda;
  char *cl_source, *cl_name;
  uint32_t *cl_arg_sizes;
  uint32_t cl_nargs;
  ds_cache *model_cache;
  struct ds__costmodel cm;
};
int ds__kernel_has_kind(const ds_kernel *k, int kind);

/* ---- graphs (graph.c) ---- */
struct ds__gnode {
  ds_kernel *k;
  char name[DS__NAME_MAX];
  uint32_t nacc;
  ds_graph_access acc[DS__GRAPH_MAX_ACC];
  uint8_t args[DS__GRAPH_MAX_ARGS];
  size_t args_len;
  uint64_t size; /* 0: sum of accessed bytes, resolved at plan time */
  uint64_t global[3];
  int32_t device;
  uint32_t npred, cap_pred;
  int32_t *pred; /* distinct predecessors */
};
struct ds__gbuf {
  ds_buffer *buf;
  int32_t last_writer; /* -1: none */
  uint32_t nreaders, cap_readers;
  int32_t *readers; /* readers since last_writer */
};
struct ds_graph {
  ds_context *ctx;
  uint32_t nnodes, cap_nodes;
  struct ds__gnode *nodes;
  uint32_t nbufs, cap_bufs;
  struct ds__gbuf *bufs;
  uint32_t hash_cap; /* power of two; slots hold buffer index + 1, 0 empty */
  uint32_t *hash;
  uint64_t version; /* bumped by every change; plans remember it */
};
/* Successor lists (CSR: node v's successors are succ[first[v] .. first[v + 1]), ascending);
 * both arrays are the caller's to free with ds__free, also on DS_ERR_NO_MEMORY. */
ds_status ds__graph_successors(ds_graph *g, uint32_t **first, int32_t **succ);
/* Index of buf in g->bufs, or -1. */
int32_t ds__graph_buf_find(const ds_graph *g, const ds_buffer *buf);
/* A topological order into order[nnodes] (Kahn, ties by index). On a cycle returns
 * DS_ERR_INVALID_ARG naming a node on it. */
ds_status ds__graph_topo(ds_graph *g, int32_t *order);

/* ---- the devices a plan is made for (graph_fabric.c fills it from the fabric) ---- */
struct ds__gdev {
  int kind;     /* DS__GKIND_* */
  int units;    /* how many nodes it runs at once in the model (CPU: workers) */
  int memspace; /* memory space index; devices sharing one need no transfer */
  char key[DS__NAME_MAX];
  /* Host processing units one node on this device keeps busy while it runs (0: the device
   * computes on its own resources). A CPU worker holds 1; an OpenCL CPU device (PoCL) spreads
   * each kernel over all its compute units, i.e. over the same cores the CPU workers use. */
  int host_pus;
};
struct ds__gplat {
  int ndev;
  struct ds__gdev dev[DS__GRAPH_MAX_DEV];
  int nmem;
  /* Seconds to move bytes from memory space a to b (a != b). */
  double (*xfer_s)(void *user, int from_ms, int to_ms, uint64_t bytes);
  void *user;
  /* Memory space holding each graph buffer's valid data before the run (by buffer index), or
   * -1 when unknown (then the buffer's home, memory space 0). NULL: all at 0. */
  const int32_t *buf_home;
  /* Per graph buffer: 1 when it is copied even to a device that could use host bytes in place
   * (DS_BUFFER_NO_ZERO_COPY, or zero-copy turned off); copy_s then prices its moves. NULL:
   * no such buffer. */
  const uint8_t *buf_copy;
  double (*copy_s)(void *user, int from_ms, int to_ms, uint64_t bytes);
  /* Host processing units the devices with host_pus > 0 share (0: unknown). With shared set
   * the simulation never lets their running nodes hold more than this at once; either way
   * the executor uses it to take contention out of measured times. */
  int host_pus;
  int shared;
  /* After HEFT, also simulate every single-device plan and keep the best (see partition.c). */
  int guard;
};

/* ---- plans (partition.c) ---- */
struct ds_plan {
  ds_graph *g;       /* only compared, never followed, once the graph may be gone */
  ds_context *ctx;   /* so a plan can be queried and destroyed after its graph */
  uint64_t version;
  uint32_t nnodes;
  int32_t *dev;    /* per node */
  int32_t *order;  /* submission order (the HEFT list order, predecessors first) */
  double makespan_s;
  uint64_t bytes_moved;
  uint32_t calibrating;
  /* The shared host-core pool as planned (see ds__gplat.host_pus): the executor uses it to
   * correct measured times for contention before they reach the cost models. */
  int pool_cap;
  int dev_pus[DS__GRAPH_MAX_DEV];
};
/* Plans on an explicit device view (tests drive the partitioner through this). */
ds_status ds__graph_plan_on(ds_plan **out, ds_graph *g, const struct ds__gplat *plat,
                            const ds_plan_options *opts);

/* ---- glue to the fabric (graph_fabric.c) ---- */
/* Bytes of a buffer; 0 if unknown. */
uint64_t ds__gfab_buf_bytes(ds_buffer *buf);
/* The context's devices as the planner sees them. */
ds_status ds__gfab_platform(ds_context *ctx, struct ds__gplat *plat, ds_graph *g,
                            int32_t *buf_home, uint8_t *buf_copy);
/* Stable identity of a fabric device for cost models; NULL for a bad index. */
const char *ds__gfab_device_key(ds_context *ctx, int32_t device, char *buf, size_t cap);
/* Runs node n of g on device dev: acquires, executes, releases; *seconds = execution time. */
ds_status ds__gfab_exec(ds_graph *g, const struct ds__gnode *n, int32_t dev, double *seconds);
/* Starts moving node n's read inputs to device dev ahead of its task, so the copies overlap
 * the compute still running; best effort (a failure only loses the overlap: the node's own
 * acquire moves or reports). The acquire awaits copies still in flight. */
void ds__gfab_prefetch(ds_graph *g, const struct ds__gnode *n, int32_t dev);
/* Total bytes moved by the fabric so far (for run info). */
uint64_t ds__gfab_bytes_moved(ds_context *ctx);

#endif /* DS_FABRIC_GRAPH_INTERNAL_H */
