/* libdeepseek: the compute fabric's devices, backends and coherent buffers. */
#ifndef DEEPSEEK_FABRIC_H
#define DEEPSEEK_FABRIC_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/cache.h"
#include "deepseek/context.h"
#include "deepseek/export.h"
#include "deepseek/status.h"
#include "deepseek/fabric_barrier.h" /* timestamp barriers belong to the fabric's API */

/** @defgroup fabric Compute fabric: devices, backends, buffers
 *  The devices a context can compute on, and buffers whose bytes follow the computation from
 *  device to device with as few copies as possible.
 *
 *  **Devices.** Enumerated on first use of the fabric on a context, in this order: one CPU
 *  device per NUMA node (device 0 is the CPU of node 0), then the CUDA GPUs the driver reports
 *  (none without a driver or GPU: not an error), then the OpenCL devices of every platform
 *  (PoCL exposes the CPU as one), then devices of backends registered with
 *  ds_fabric_backend_register(). Each device owns one memory space (the CPU devices' spaces are
 *  host memory on their node). Indices are stable for the context's lifetime.
 *
 *  **Buffers** have one replica per memory space they were used in, each in one of the MSI
 *  states (as StarPU's data handles): Modified (the only valid copy, newer than all others),
 *  Shared (valid; other valid replicas may exist), Invalid (stale or absent).
 *  ds_buffer_acquire() on a device gives a pointer valid on that device and
 *  - for READ: copies the bytes from a valid replica if the device's replica is Invalid, then
 *    every valid replica is Shared;
 *  - for WRITE: makes the device's replica Modified and every other one Invalid, without
 *    copying (the caller overwrites the whole buffer);
 *  - for RW: as READ, then as WRITE.
 *  A CPU device reads another CPU memory space in place (no copy: the host pointer of the valid
 *  replica is returned). An OpenCL CPU device (PoCL) wraps the host replica with
 *  CL_MEM_USE_HOST_PTR, a CUDA device maps registered pinned memory (on a discrete GPU only
 *  for buffers created with DS_BUFFER_MAP_HOST): those replicas alias the host bytes, so they
 *  never need a copy. Each avoided copy is counted. Stats (ds_stats):
 *  fabric.bytes_moved, fabric.copies, fabric.copies_avoided, and per device
 *  fabric.dev<N>.bytes_moved / .copies / .copies_avoided.
 *
 *  **Concurrency.** Any number of READ acquires may be outstanding at once, on any devices.
 *  A WRITE or RW acquire is exclusive: it fails with DS_ERR_BUSY while any other acquire of
 *  the buffer is outstanding, and every other acquire fails with DS_ERR_BUSY while it is.
 *  Acquires never wait for other holders (the graph executor orders accesses, so conflicts
 *  are bugs or a retry); they do wait for transfers and for device work queued through the
 *  fabric that still uses the bytes. Each acquire is paired with one ds_buffer_release() on the
 *  same device. Buffer functions are thread-safe (one mutex per buffer; transfers run under it).
 *  @{ */

/** What kind of device. */
typedef enum ds_fabric_device_kind {
  DS_FABRIC_DEVICE_CPU = 0,    /**< host cores of one NUMA node; pointers are host pointers */
  DS_FABRIC_DEVICE_CUDA = 1,   /**< an NVIDIA GPU; pointers are CUdeviceptr values */
  DS_FABRIC_DEVICE_OPENCL = 2, /**< an OpenCL device; pointers are cl_mem handles */
  DS_FABRIC_DEVICE_OTHER = 3   /**< a device of a registered backend; pointers are its handles */
} ds_fabric_device_kind;

/** Capability bits of ds_device_info.caps. */
#define DS_DEVICE_CAP_HOST_MEMORY 0x1u /**< its memory space is host memory */
#define DS_DEVICE_CAP_MAP_HOST 0x2u    /**< can use host memory in place (zero-copy) */
#define DS_DEVICE_CAP_UNIFIED 0x4u     /**< unified addressing with the host */
#define DS_DEVICE_CAP_ASYNC 0x8u       /**< asynchronous copies with events */
#define DS_DEVICE_CAP_LAUNCH 0x10u     /**< runs kernels through its backend's launch hook */
/** Using host memory in place is slower than a copy for data read more than once (a discrete
 *  GPU over PCIe): zero-copy only for buffers created with DS_BUFFER_MAP_HOST. */
#define DS_DEVICE_CAP_PREFER_COPY 0x20u
/** Computes on the host's cores (an OpenCL CPU device such as PoCL): it competes with the CPU
 *  devices' workers for the same cores, which the graph partitioner takes into account. */
#define DS_DEVICE_CAP_HOST_CORES 0x40u

/** Description of one device. */
typedef struct ds_device_info {
  uint32_t struct_size;
  int32_t index;         /**< fabric device index */
  int32_t kind;          /**< a ds_fabric_device_kind */
  int32_t memory_space;  /**< index of its memory space (0 .. spaces-1) */
  int32_t numa_node;     /**< CPU devices: the node; others: -1 when unknown */
  int32_t compute_units; /**< cores, SMs or OpenCL compute units; 0 when unknown */
  uint32_t caps;         /**< DS_DEVICE_CAP_* bits */
  uint64_t memory_bytes; /**< size of its memory space; 0 when unknown */
  char name[128];        /**< e.g. "cpu:numa0", "cuda:0 NVIDIA H100", "opencl:0.0 pthread-..." */
  char backend[32];      /**< "cpu", "cuda", "opencl" or the registered backend's name */
} ds_device_info;
#define DS_DEVICE_INFO_INIT { sizeof(ds_device_info), 0, 0, 0, 0, 0, 0, 0, {0}, {0} }

/** Access modes of ds_buffer_acquire(). */
typedef enum ds_access {
  DS_ACCESS_READ = 1,
  DS_ACCESS_WRITE = 2,
  DS_ACCESS_RW = 3 /**< DS_ACCESS_READ | DS_ACCESS_WRITE */
} ds_access;

/** Replica states (see the protocol above). */
typedef enum ds_replica_state {
  DS_REPLICA_INVALID = 0,
  DS_REPLICA_SHARED = 1,
  DS_REPLICA_MODIFIED = 2
} ds_replica_state;

/** A backend: the table of functions through which the fabric reaches one family of devices.
 *  The built-in CPU, CUDA and OpenCL backends use the same table, so a vendor adds an NPU by
 *  registering one with ds_fabric_backend_register(). Every function gets the @p user pointer
 *  given at registration and the backend-local device number (0 .. device_count-1). On failure
 *  a function returns a status and may write a one-line reason into msg (msg_size bytes); the
 *  fabric prefixes it with the buffer and device. "mem" is the backend's opaque handle of one
 *  allocation (what ds_buffer_acquire() returns on that device). Functions marked optional may
 *  be NULL. The fabric calls them under the buffer's mutex, possibly from several threads for
 *  different buffers at once: a backend must be thread-safe across allocations. */
typedef struct ds_fabric_backend {
  uint32_t struct_size;
  const char *name; /**< short, e.g. "npu"; copied */
  int32_t device_count;
  /** Fills kind (DS_FABRIC_DEVICE_OTHER for a new family; CPU means it computes on host
   *  memory directly and uses buffers' host replicas), name, caps, memory_bytes,
   *  compute_units and numa_node of device @p dev; index, memory_space and backend are set
   *  by the fabric. */
  ds_status (*describe)(void *user, int32_t dev, ds_device_info *info);
  /** Allocates @p size bytes on the device. If @p host is not NULL the device should use those
   *  host bytes in place (zero-copy; only asked of devices with DS_DEVICE_CAP_MAP_HOST): set
   *  *aliased to 1 if it does, 0 if it allocated separate memory instead. */
  ds_status (*alloc)(void *user, int32_t dev, size_t size, void *host, void **mem, int *aliased,
                     char *msg, size_t msg_size);
  void (*free)(void *user, int32_t dev, void *mem);
  /** Copies @p n bytes from host memory into mem at @p offset. With @p event NULL the copy is
   *  complete on return; otherwise it may still run, and *event (to pass to event_wait, then
   *  event_release) completes with it; *event may be set to NULL when already complete. */
  ds_status (*copy_in)(void *user, int32_t dev, void *mem, size_t offset, const void *host,
                       size_t n, void **event, char *msg, size_t msg_size);
  /** Copies @p n bytes from mem at @p offset to host memory; @p event as copy_in. */
  ds_status (*copy_out)(void *user, int32_t dev, void *host, void *mem, size_t offset, size_t n,
                        void **event, char *msg, size_t msg_size);
  /** Optional: makes an aliased allocation's host bytes and device view agree (to_host 1:
   *  after device writes; 0: after host writes), e.g. map/unmap on OpenCL. */
  ds_status (*sync_alias)(void *user, int32_t dev, void *mem, size_t size, int to_host,
                          char *msg, size_t msg_size);
  /** Optional: an event that completes when all work queued so far on the device has. */
  ds_status (*event_record)(void *user, int32_t dev, void **event, char *msg, size_t msg_size);
  /** Optional (required if copies return events): waits for @p event. */
  ds_status (*event_wait)(void *user, void *event, char *msg, size_t msg_size);
  /** Optional: drops an event. */
  void (*event_release)(void *user, void *event);
  /** Optional: runs @p kernel (a backend handle) with @p nargs arguments over a grid of
   *  @p dims dimensions of @p global work items; args[i] points at argument i's value of
   *  arg_sizes[i] bytes (a buffer: a pointer to the handle from ds_buffer_acquire);
   *  @p event as copy_in. */
  ds_status (*launch)(void *user, int32_t dev, void *kernel, void *const *args,
                      const size_t *arg_sizes, size_t nargs, const size_t *global, uint32_t dims,
                      void **event, char *msg, size_t msg_size);
  /** Optional: called once when the context is destroyed, after every allocation is freed. */
  void (*destroy)(void *user);
  /** Optional (appended after the first release: a table whose struct_size ends just before it
   *  is accepted and makes no direct copies): copies @p n bytes from @p src_mem of device
   *  @p src_dev into @p dst_mem of device @p dst_dev, both devices of this backend, without
   *  passing through host memory (a CUDA peer copy, clEnqueueCopyBuffer within one OpenCL
   *  context). The work queued before on either device that uses either allocation must
   *  come first; the copy is complete on return. Return DS_ERR_UNSUPPORTED when these two
   *  devices cannot copy directly: the fabric then stages the bytes through the buffer's
   *  host replica. */
  ds_status (*copy_peer)(void *user, int32_t dst_dev, void *dst_mem, int32_t src_dev,
                         void *src_mem, size_t n, char *msg, size_t msg_size);
  /** Optional (appended after copy_peer: a table whose struct_size ends just before it is
   *  accepted and copies directly, if at all, through copy_peer): copy_peer that need not wait.
   *  With @p event NULL the copy is complete on return. Otherwise it may still run: it is
   *  queued on the destination device, after the work queued before on the source device,
   *  so that an event_record on the destination device made later completes after it (the
   *  fabric waits for it that way before the replica is used: needs event_record and
   *  event_wait); *event (for event_wait, then event_release) completes with it, and may be set
   *  to NULL when already complete. The source must not be written before then (the fabric
   *  ensures it). Returns DS_ERR_UNSUPPORTED as copy_peer. When set, the fabric uses it
   *  instead of copy_peer: a prefetch of a READ replica from another device of the backend
   *  then does not wait for the bytes. */
  ds_status (*copy_peer_async)(void *user, int32_t dst_dev, void *dst_mem, int32_t src_dev,
                               void *src_mem, size_t n, void **event, char *msg,
                               size_t msg_size);
} ds_fabric_backend;

/** Buffer creation options. */
typedef struct ds_buffer_options {
  uint32_t struct_size;
  const char *name;     /**< label used in messages; copied; NULL: "buffer" */
  int32_t home_device;  /**< CPU device whose node holds the host replica; -1: device 0 */
  uint32_t flags;       /**< DS_BUFFER_* bits */
  uint64_t device_mask; /**< devices (bit i = device i, i < 64) that may acquire it; 0: all */
} ds_buffer_options;
#define DS_BUFFER_OPTIONS_INIT { sizeof(ds_buffer_options), NULL, -1, 0, 0 }
/** Never use the host bytes in place on another device: always copy (for measurements). */
#define DS_BUFFER_NO_ZERO_COPY 0x1u
/** Use the host bytes in place (pinned and mapped) even on devices that prefer copies
 *  (DS_DEVICE_CAP_PREFER_COPY), for data such a device reads once. */
#define DS_BUFFER_MAP_HOST 0x2u

typedef struct ds_buffer ds_buffer;
/** An asynchronous operation's completion, from ds_buffer_acquire_async(). */
typedef struct ds_fabric_event ds_fabric_event;

DS_EXTERN_C_BEGIN
/** Number of devices into *@p out (at least 1: the CPU of node 0). The first call on a context
 *  enumerates them. @return DS_OK; DS_ERR_INVALID_ARG (NULL); DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_fabric_device_count(int32_t *out, ds_context *ctx);
/** Description of device @p index. @return DS_OK; DS_ERR_ABI (struct_size); DS_ERR_INVALID_ARG
 *  (NULL); DS_ERR_NOT_FOUND (no such index). Thread-safe. */
DS_API ds_status ds_fabric_device_info(ds_device_info *out, ds_context *ctx, int32_t index);
/** Index of the @p nth (0-based) device of @p kind. @return DS_OK; DS_ERR_INVALID_ARG;
 *  DS_ERR_NOT_FOUND (fewer such devices, including none). Thread-safe. */
DS_API ds_status ds_fabric_device_find(int32_t *out, ds_context *ctx, ds_fabric_device_kind kind,
                                       int32_t nth);
/** Number of memory spaces into *@p out (each device owns one; devices never share one).
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL); DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_fabric_memory_space_count(int32_t *out, ds_context *ctx);
/** Adds the devices of a backend (see ds_fabric_backend); their indices follow the existing
 *  ones and the first is returned in *@p first_device (may be NULL). @p backend is copied;
 *  @p user must stay valid until the context is destroyed. @return DS_OK; DS_ERR_ABI;
 *  DS_ERR_INVALID_ARG (NULL, no alloc/free/copy_in/copy_out, device_count < 1, or more than
 *  64 devices in all); DS_ERR_NO_MEMORY; a status of describe. Thread-safe. */
DS_API ds_status ds_fabric_backend_register(int32_t *first_device, ds_context *ctx,
                                            const ds_fabric_backend *backend, void *user);

/** Allocates a buffer of @p size bytes in host memory on the home device's node, zero-filled;
 *  its host replica is Modified. @return DS_OK; DS_ERR_INVALID_ARG (NULL, size 0, home device
 *  not a CPU); DS_ERR_ABI; DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_buffer_create(ds_buffer **out, ds_context *ctx, size_t size,
                                  const ds_buffer_options *opts);
/** Wraps the caller's @p host bytes (@p size of them) as a buffer without copying: its host
 *  replica is those bytes, Modified. The caller keeps ownership; the bytes must stay valid
 *  until ds_buffer_destroy(), and hold the latest data only when no device replica is
 *  Modified (acquire for READ on a CPU device to bring them up to date). @return as
 *  ds_buffer_create. */
DS_API ds_status ds_buffer_register(ds_buffer **out, ds_context *ctx, void *host, size_t size,
                                    const ds_buffer_options *opts);
/** Frees the buffer and its device replicas. NULL: DS_OK. @return DS_OK; DS_ERR_BUSY (an
 *  acquire is outstanding: nothing is freed, the buffer stays usable). Not to be called
 *  concurrently with other calls on the same buffer. */
DS_API ds_status ds_buffer_destroy(ds_buffer *buf);
/** Size in bytes (0 for NULL). Thread-safe. */
DS_API size_t ds_buffer_size(const ds_buffer *buf);
/** Name given at creation, or "buffer". Owned by the buffer. Thread-safe. */
DS_API const char *ds_buffer_name(const ds_buffer *buf);
/** State of the buffer's replica in @p device's memory space into *@p out. @return DS_OK;
 *  DS_ERR_INVALID_ARG; DS_ERR_NOT_FOUND (no such device). Thread-safe. */
DS_API ds_status ds_buffer_state(ds_replica_state *out, ds_buffer *buf, int32_t device);

/** Makes the buffer usable on @p device in @p mode (see the protocol above) and returns the
 *  device's handle in *@p out: a host pointer (CPU), a cl_mem (OpenCL) or a CUdeviceptr cast
 *  to void * (CUDA). Transfers complete before it returns. @return DS_OK; DS_ERR_INVALID_ARG
 *  (NULL, bad mode); DS_ERR_NOT_FOUND (no such device); DS_ERR_UNSUPPORTED (the device cannot
 *  reach the buffer: not in its device_mask); DS_ERR_BUSY (conflicting acquire outstanding);
 *  DS_ERR_NO_MEMORY / DS_ERR_DEVICE (allocation or transfer failed; states are unchanged).
 *  Messages name the buffer and the device. Thread-safe. */
DS_API ds_status ds_buffer_acquire(void **out, ds_buffer *buf, int32_t device, ds_access mode);
/** As ds_buffer_acquire, but the transfer may still be running on return: wait for *@p event
 *  (ds_fabric_event_wait) before the device or host uses the bytes, unless *@p event is NULL
 *  (nothing to wait for). The acquire counts as outstanding from the call. @return as
 *  ds_buffer_acquire. Thread-safe. */
DS_API ds_status ds_buffer_acquire_async(void **out, ds_fabric_event **event, ds_buffer *buf,
                                         int32_t device, ds_access mode);
/** Ends one acquire of @p buf on @p device. Device work that used the handle must be complete
 *  by then, or queued on the queue the fabric copies on (OpenCL kernels launched through the
 *  fabric are: the device's in-order queue orders later copies after them); work on the
 *  caller's own CUDA streams or OpenCL queues must be waited for first. @return DS_OK;
 *  DS_ERR_INVALID_ARG (NULL);
 *  DS_ERR_NOT_FOUND (no such device); DS_ERR_STATE (no acquire outstanding on that device);
 *  DS_ERR_DEVICE (syncing an aliased replica back failed). Thread-safe. */
DS_API ds_status ds_buffer_release(ds_buffer *buf, int32_t device);
/** Waits for @p event and frees it (NULL: DS_OK). @return DS_OK or the transfer's failure
 *  (DS_ERR_DEVICE). One thread per event. */
DS_API ds_status ds_fabric_event_wait(ds_fabric_event *event);
DS_EXTERN_C_END
/** @} */

/* ======================================================================================== *
 * Graphs: kernels with per-device implementations and learned cost models, task graphs whose
 * dependencies come from buffer accesses, HEFT partitioning, execution through the scheduler.
 * ======================================================================================== */

/** @defgroup fabric_graph Fabric graphs and partitioning
 *  A **kernel** names one computation with up to one implementation per device kind (a CPU
 *  function, an OpenCL C source and kernel name, a CUDA launcher) and owns a **cost model**: the
 *  measured run time per (device, input size), with a regression for sizes not yet seen.
 *
 *  A **graph** is a list of nodes, each a kernel applied to buffer accesses plus small by-value
 *  arguments. Dependencies follow from the accesses in insertion order, as in StarPU: a node
 *  that reads a buffer runs after its last writer (RAW); a node that writes it runs after the
 *  readers since that writer (WAR) and after the writer (WAW). ds_graph_add_dep() adds an
 *  explicit order; a cycle is reported by ds_graph_plan().
 *
 *  A **plan** maps every node to a device: HEFT (by default), all nodes on one device, a seeded
 *  random placement, or an explicit one. ds_graph_run() executes a plan through the scheduler;
 *  each node's task acquires its buffers on its device, runs the implementation and feeds the
 *  measured time to the kernel's cost model.
 *
 *  Threading: a kernel's model is thread-safe; a graph and its plans are used by one thread
 *  at a time (building, planning and running must not overlap on one graph).
 *  @{ */

typedef struct ds_kernel ds_kernel;
typedef struct ds_graph ds_graph;
typedef struct ds_plan ds_plan;

/** CPU implementation. @p bufs[i] is the host pointer of the node's i-th access (valid for the
 *  access's mode), @p sizes[i] its size in bytes; @p args the node's by-value arguments. Return
 *  DS_OK or a failure status, which cancels the node's successors. */
typedef ds_status (*ds_kernel_cpu_fn)(void *const *bufs, const size_t *sizes, size_t nbufs,
                                      const void *args, size_t args_len);

/** CUDA launcher: enqueue the work on @p stream (a cudaStream_t: the fabric's stream of the
 *  node's device, which is current on the calling thread; not the default stream, which does
 *  not order with it) with device pointers @p bufs; the runtime then waits for an event
 *  recorded on that stream after it. Compiled but not yet run on a GPU. */
typedef ds_status (*ds_kernel_cuda_fn)(void *const *bufs, const size_t *sizes, size_t nbufs,
                                       const void *args, size_t args_len, void *stream);

/** Options of ds_kernel_create(). Initialise with DS_KERNEL_OPTIONS_INIT. */
typedef struct ds_kernel_options {
  uint32_t struct_size;
  const char *name;           /**< required, <= 63 bytes; names the cost model */
  ds_kernel_cpu_fn cpu;       /**< CPU implementation, or NULL */
  ds_kernel_cuda_fn cuda;     /**< CUDA launcher, or NULL */
  const char *opencl_source;  /**< OpenCL C source, or NULL. Kernel arguments: the buffers
                                   (__global pointers) in access order, then the by-value
                                   arguments split as opencl_arg_sizes says */
  const char *opencl_name;    /**< kernel function in opencl_source */
  const uint32_t *opencl_arg_sizes; /**< byte size of each by-value argument (sum = args_len) */
  uint32_t opencl_nargs;
  ds_cache *model_cache;      /**< persistent cache holding the cost model (key
                                   "fabric.model.<name>"): loaded at create, saved by
                                   ds_kernel_model_save() and at destroy. NULL: not persisted */
} ds_kernel_options;

#define DS_KERNEL_OPTIONS_INIT \
  { sizeof(ds_kernel_options), NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL }

/** One buffer access of a node. */
typedef struct ds_graph_access {
  ds_buffer *buf;
  int32_t mode; /**< a ds_access */
} ds_graph_access;

/** Options of ds_graph_add(). Initialise with DS_NODE_OPTIONS_INIT. */
typedef struct ds_node_options {
  uint32_t struct_size;
  const char *name;     /**< label in messages (<= 63 bytes copied); NULL: "<kernel>#<index>" */
  const void *args;     /**< by-value arguments, copied (<= 256 bytes) */
  size_t args_len;
  uint64_t size;        /**< input size for the cost model; 0: sum of the accessed bytes */
  uint64_t global[3];   /**< OpenCL global work size (0 = 1 in that dimension; all 0: 1) */
  int32_t device;       /**< force this device; -1: the plan decides */
} ds_node_options;

#define DS_NODE_OPTIONS_INIT \
  { sizeof(ds_node_options), NULL, NULL, 0, 0, {0, 0, 0}, -1 }

/** How ds_graph_plan() places nodes. */
typedef enum ds_plan_policy {
  DS_PLAN_HEFT = 0,     /**< HEFT with replica-aware transfer costs (see architecture.md) */
  DS_PLAN_DEVICE = 1,   /**< every node on ds_plan_options.device */
  DS_PLAN_RANDOM = 2,   /**< each node on a random capable device (ds_plan_options.seed) */
  DS_PLAN_EXPLICIT = 3  /**< ds_plan_options.placement[node] */
} ds_plan_policy;

/** Options of ds_graph_plan(). Initialise with DS_PLAN_OPTIONS_INIT. */
typedef struct ds_plan_options {
  uint32_t struct_size;
  int32_t policy;            /**< a ds_plan_policy */
  int32_t device;            /**< DS_PLAN_DEVICE */
  uint64_t seed;             /**< DS_PLAN_RANDOM */
  const int32_t *placement;  /**< DS_PLAN_EXPLICIT: one device per node */
  int32_t calibrate;         /**< 1 (default): nodes of a kernel not yet calibrated on a
                                  capable device go there first (DS_PARAM_FABRIC_CALIBRATE_RUNS
                                  samples per device and size); 0: trust the model as it is */
} ds_plan_options;

#define DS_PLAN_OPTIONS_INIT \
  { sizeof(ds_plan_options), DS_PLAN_HEFT, 0, 1, NULL, 1 }

/** What a plan predicts. The caller sets struct_size = sizeof(ds_plan_info). */
typedef struct ds_plan_info {
  uint32_t struct_size;
  uint32_t nodes;
  double makespan_s;      /**< predicted makespan */
  uint64_t bytes_moved;   /**< predicted bytes moved between memory spaces */
  uint32_t calibrating;   /**< nodes placed to calibrate a cost model */
} ds_plan_info;

/** What a run measured. The caller sets struct_size = sizeof(ds_graph_run_info). */
typedef struct ds_graph_run_info {
  uint32_t struct_size;
  double makespan_s;      /**< wall time from the first submit to the last completion */
  uint64_t bytes_moved;   /**< bytes the fabric moved during the run (all devices) */
} ds_graph_run_info;

DS_EXTERN_C_BEGIN

/** Creates a kernel. The strings are copied.
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL out/ctx/name, name too long, no implementation,
 *  opencl_source without opencl_name, opencl_arg_sizes missing); DS_ERR_ABI; DS_ERR_NO_MEMORY.
 *  A model that cannot be loaded from model_cache (absent, corrupt) starts empty; corruption
 *  is logged. Thread-safe. */
DS_API ds_status ds_kernel_create(ds_kernel **out, ds_context *ctx, const ds_kernel_options *opts);

/** Saves the model (when it has a model_cache, which must therefore still be open) and frees
 *  the kernel. Graphs using it must be destroyed first. NULL is a no-op. */
DS_API void ds_kernel_destroy(ds_kernel *k);

/** Writes the cost model to its persistent cache now.
 *  @return DS_OK (also when there is no model cache); DS_ERR_INVALID_ARG; the cache's errors.
 *  Thread-safe. */
DS_API ds_status ds_kernel_model_save(ds_kernel *k);

/** Adds one measured run time of @p seconds at @p size on fabric device @p device.
 *  @return DS_OK; DS_ERR_INVALID_ARG (bad device, negative/NaN time); DS_ERR_FULL (the model
 *  holds 8 device keys and this device is a ninth). Thread-safe. */
DS_API ds_status ds_kernel_model_record(ds_kernel *k, int32_t device, uint64_t size,
                                        double seconds);

/** Predicted run time at @p size on @p device into @p seconds and the number of samples
 *  measured at exactly that size into @p samples (either may be NULL): the mean of those
 *  samples if any, else the log-log least-squares fit over the sizes seen, else (one size
 *  seen) that time scaled linearly.
 *  @return DS_OK; DS_ERR_NOT_FOUND (nothing measured on that device); DS_ERR_INVALID_ARG.
 *  Thread-safe. */
DS_API ds_status ds_kernel_model_predict(ds_kernel *k, int32_t device, uint64_t size,
                                         double *seconds, uint64_t *samples);

/** Creates an empty graph. @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_graph_create(ds_graph **out, ds_context *ctx);

/** Frees the graph (not its kernels or buffers). NULL is a no-op. */
DS_API void ds_graph_destroy(ds_graph *g);

/** Appends a node running @p k on the accesses @p acc[0..nacc) (at most 16; a buffer may
 *  appear once per node).
 *  @param out_node receives the node's index (0, 1, ...); may be NULL.
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL g/k, kernel of another context, NULL buffer, bad
 *  mode, a buffer twice, too many accesses, args too long, OpenCL arg sizes not matching);
 *  DS_ERR_ABI; DS_ERR_NO_MEMORY. One thread per graph. */
DS_API ds_status ds_graph_add(int32_t *out_node, ds_graph *g, ds_kernel *k,
                              const ds_graph_access *acc, size_t nacc,
                              const ds_node_options *opts);

/** Adds an explicit dependency: node @p after runs after node @p before.
 *  @return DS_OK; DS_ERR_INVALID_ARG (unknown node, before == after). A cycle is reported by
 *  ds_graph_plan(). One thread per graph. */
DS_API ds_status ds_graph_add_dep(ds_graph *g, int32_t before, int32_t after);

/** Number of nodes, and of dependency edges (after removing duplicates). Either may be NULL.
 *  @return DS_OK; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_graph_size(const ds_graph *g, uint32_t *nodes, uint32_t *edges);

/** Places every node on a device of the context's fabric (enumerating the devices and
 *  starting the scheduler if needed: a CPU device's execution units are its workers).
 *  @param opts NULL: HEFT with calibration. A node's own forced device (ds_node_options.device)
 *  wins over the policy.
 *  @return DS_OK; DS_ERR_INVALID_ARG (bad policy or device, a cycle — the message names a node
 *  on it, an explicit placement on a device without an implementation — naming the node);
 *  DS_ERR_UNSUPPORTED (a node whose kernel has no implementation for any present device —
 *  the message names it); DS_ERR_STATE (empty graph); DS_ERR_ABI; DS_ERR_NO_MEMORY.
 *  The plan stays valid while the graph is not changed. One thread per graph. */
DS_API ds_status ds_graph_plan(ds_plan **out, ds_graph *g, const ds_plan_options *opts);

/** Frees a plan. NULL is a no-op. A plan may be destroyed (and queried with ds_plan_device and
 *  ds_plan_get_info) before or after its graph. */
DS_API void ds_plan_destroy(ds_plan *p);

/** Device of node @p node in the plan. @return DS_OK; DS_ERR_INVALID_ARG. Thread-safe. */
DS_API ds_status ds_plan_device(const ds_plan *p, int32_t node, int32_t *device);

/** Predicted makespan, bytes moved, calibration count. @return DS_OK; DS_ERR_INVALID_ARG;
 *  DS_ERR_ABI. Thread-safe. */
DS_API ds_status ds_plan_get_info(const ds_plan *p, ds_plan_info *out);

/** Runs the plan's graph: one scheduler task per node with its dependencies, each acquiring its
 *  buffers on its device, running the implementation, releasing, and recording its compute
 *  time into the kernel's model (except a kernel's first run on each device in the process,
 *  which pays one-time costs such as OpenCL JIT). Returns when every node is done.
 *  @param info measurements, or NULL.
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL, plan of another graph or stale); DS_ERR_ABI;
 *  DS_ERR_NO_MEMORY; the first node failure (its status; the message names the node and
 *  device), its successors not run. One thread per graph. */
DS_API ds_status ds_graph_run(ds_graph *g, const ds_plan *p, ds_graph_run_info *info);

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_FABRIC_H */
