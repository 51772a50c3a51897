/* Internal interface of the compute fabric: the per-context fabric state (device table and
 * backend table), buffers and their replicas, and the calls the graph executor, the
 * partitioner, the barriers and the MPI transport use. Other fabric files (graph*, barrier*,
 * mpi/) include this header; only backend folders include an SDK header. */
#ifndef DS_FABRIC_INTERNAL_H
#define DS_FABRIC_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "deepseek/fabric.h"
#include "internal.h"

#define DS__FABRIC_MAX_DEVICES 64 /* device_mask is a uint64_t */
#define DS__FABRIC_MAX_BACKENDS 16
#define DS__FABRIC_MSG 256 /* backend reason buffer */

/* One registered backend (built-in or the user's): its table, copied, and its user pointer. */
struct ds__fabric_backend {
  ds_fabric_backend ops;
  void *user;
  char name[32]; /* same size as ds_device_info.backend */
  int32_t first_device; /* fabric index of its device 0 */
};

/* One device: its public description, its backend and its backend-local number, and a
 * transfer model (filled at enumeration; see ds__fabric_transfer_cost). */
struct ds__fabric_device {
  ds_device_info info;
  struct ds__fabric_backend *be;
  int32_t local;
  double bw_in;      /* bytes/s host -> device memory (0: no copy needed, host memory) */
  double bw_out;     /* bytes/s device memory -> host */
  double latency_s;  /* fixed cost of one transfer */
  int stat[3];       /* ids of fabric.dev<N>.bytes_moved, .copies, .copies_avoided */
};

/* Extension slots: per-context state of the other fabric parts, created by them on first use
 * (under ds__fabric.mu) and destroyed with the fabric, before the devices. */
enum { DS__FABRIC_EXT_GRAPH = 0, DS__FABRIC_EXT_BARRIER = 1, DS__FABRIC_EXT_MPI = 2,
       DS__FABRIC_EXT_CL_KERNELS = 3, DS__FABRIC_EXT_MAX = 8 };

struct ds__fabric {
  ds_context *ctx;
  pthread_mutex_t mu; /* guards registration, extension slots, kernel caches */
  ds__atomic_int ndev; /* devices published so far (only grows; entries are then read-only) */
  int32_t nspaces;
  int32_t nbackends;
  struct ds__fabric_device dev[DS__FABRIC_MAX_DEVICES];
  struct ds__fabric_backend be[DS__FABRIC_MAX_BACKENDS];
  int stat_bytes, stat_copies, stat_avoided, stat_peer; /* totals */
  ds__atomic_i64 live_buffers;
  void *ext[DS__FABRIC_EXT_MAX];
  void (*ext_destroy[DS__FABRIC_EXT_MAX])(ds_context *ctx, void *state);
};

/* One replica: the device allocation in one memory space. CPU devices all use the host
 * replica (buffer->host), which is replica index 'host_space'. */
struct ds__replica {
  void *mem;     /* backend handle (NULL: not allocated) */
  int32_t device; /* the device that allocated mem (frees it) */
  int state;     /* ds_replica_state */
  int aliased;   /* mem uses the host bytes in place (no copy ever needed to/from host) */
  int pending;   /* an asynchronous copy into mem may still run (see ds__buffer_acquire) */
};

struct ds_buffer {
  ds_context *ctx;
  struct ds__fabric *fab;
  char *name;
  size_t size;
  pthread_mutex_t mu; /* guards everything below; transfers run under it */
  void *host;         /* host replica bytes */
  int owns_host;      /* allocated by ds_buffer_create (freed at destroy) */
  void *host_raw;     /* the allocation host points into (aligned), when owns_host */
  int32_t home;       /* CPU device of the host replica */
  int32_t host_space; /* memory space of the host replica */
  uint32_t flags;     /* DS_BUFFER_* */
  uint64_t mask;      /* devices allowed; ~0 for all */
  int32_t holders;    /* outstanding acquires, all devices */
  int writer;         /* 1 while a WRITE/RW acquire is outstanding */
  int32_t npending;   /* replicas with a copy in flight (the fast path skips them at 0) */
  int32_t held[DS__FABRIC_MAX_DEVICES];    /* outstanding acquires per device */
  uint8_t wrote[DS__FABRIC_MAX_DEVICES];   /* the outstanding acquire on that device writes */
  struct ds__replica rep[DS__FABRIC_MAX_DEVICES]; /* indexed by memory space */
  /* Called (outside mu) after a WRITE or RW acquire is released, so a layer keeping copies
   * elsewhere learns of the write (the MPI transport: other ranks' copies). */
  void (*on_write)(void *arg, ds_buffer *buf);
  void *on_write_arg;
};

/* Sets (fn NULL: clears) buffer @p buf's write hook. Thread-safe; a release already past its
 * lock may still call the previous hook. */
void ds__buffer_set_write_hook(ds_buffer *buf, void (*fn)(void *arg, ds_buffer *buf), void *arg);

/* ---- the fabric (fabric.c) ---- */
/* The context's fabric, created and enumerated on first call. NULL with the error recorded
 * (DS_ERR_NO_MEMORY) on failure. Thread-safe. */
struct ds__fabric *ds__fabric_get(ds_context *ctx);
/* Device @p index, or NULL (error recorded, DS_ERR_NOT_FOUND, naming the index). */
const struct ds__fabric_device *ds__fabric_device(ds_context *ctx, int32_t index);
/* Number of devices (after ds__fabric_get). */
int32_t ds__fabric_ndev(const struct ds__fabric *fab);
/* Adds a backend's devices; used by the public registration and by the built-in probes.
 * Caller holds fab->mu. */
ds_status ds__fabric_add_backend(struct ds__fabric *fab, const ds_fabric_backend *ops,
                                 void *user, int32_t *first_device);
/* Estimated seconds to make @p bytes valid in memory space @p dst when they are valid in
 * @p src (0 when equal or when @p dst can use @p src in place: both host memory, or an
 * aliasing device). Used by the partitioner (HEFT's communication cost). Thread-safe. */
double ds__fabric_transfer_cost(ds_context *ctx, int32_t src_space, int32_t dst_space,
                                size_t bytes);
/* The device that owns memory space @p space (the first one), or -1. */
int32_t ds__fabric_space_device(ds_context *ctx, int32_t space);
/* Records a transfer (bytes moved, copies) or an avoided copy on device @p dev's stats. */
void ds__fabric_count_copy(struct ds__fabric *fab, int32_t dev, size_t bytes);
void ds__fabric_count_avoided(struct ds__fabric *fab, int32_t dev);
/* Records a direct device-to-device copy into device @p dst: a copy, plus fabric.peer_copies. */
void ds__fabric_count_peer(struct ds__fabric *fab, int32_t dst, size_t bytes);
/* Extension slot @p slot (DS__FABRIC_EXT_*): returns the state, creating it with
 * create(ctx, &state) on first use; destroy is called with the fabric. NULL with create's
 * error recorded on failure. Thread-safe. */
void *ds__fabric_ext(ds_context *ctx, int slot, ds_status (*create)(ds_context *ctx, void **out),
                     void (*destroy)(ds_context *ctx, void *state));
/* Formats "device 3 (opencl:0.0 pthread-cpu)" into buf; returns buf. */
const char *ds__fabric_device_label(ds_context *ctx, int32_t dev, char *buf, size_t size);

/* ---- buffers (buffer.c) ---- */
/* Acquire with the backend event of the last transfer in *event (NULL when complete or when
 * event is NULL, in which case the transfer is waited for). The executor waits on it with
 * ds__fabric_event_wait before launching on the device. */
ds_status ds__buffer_acquire(void **out, void **event, ds_buffer *buf, int32_t device,
                             ds_access mode);
/* Starts making the buffer valid on @p device (READ semantics, without holding an acquire):
 * the graph executor overlaps the transfer with compute and waits on *event (may be NULL:
 * nothing to wait for) before the consumer's acquire, which then copies nothing. Thread-safe. */
ds_status ds__buffer_prefetch(ds_buffer *buf, int32_t device, void **event);
/* Bitmask of memory spaces holding a valid replica (bit s = space s). Thread-safe. */
uint64_t ds__buffer_valid_spaces(ds_buffer *buf);
/* Waits for and releases a backend event of device @p dev (NULL: DS_OK). */
ds_status ds__fabric_event_wait(ds_context *ctx, int32_t dev, void *event);
void ds__fabric_event_release(ds_context *ctx, int32_t dev, void *event);

/* ---- kernels and launches (launch.c; OpenCL kernels in opencl/) ---- */
/* A kernel for device @p dev built from OpenCL C @p source, entry point @p name; built once per
 * (device, source, name) and cached for the context's lifetime (the cache owns it).
 * DS_ERR_UNSUPPORTED on a device that is not OpenCL; DS_ERR_DEVICE with the build log's first
 * line when the build fails. Thread-safe. */
ds_status ds__fabric_cl_kernel(ds_context *ctx, int32_t dev, const char *source,
                               const char *name, void **kernel);
/* Runs @p kernel on @p dev through its backend's launch hook. For OpenCL: args[i] points at the
 * i-th argument's value and arg_sizes[i] is its size (a buffer: the cl_mem from acquire, passed
 * as &mem with sizeof(void *)). @p event as ds__buffer_acquire. Thread-safe. */
ds_status ds__fabric_launch(ds_context *ctx, int32_t dev, void *kernel, void *const *args,
                            const size_t *arg_sizes, size_t nargs, const size_t *global,
                            uint32_t dims, void **event);

/* A CPU "kernel" for ds__fabric_launch on a CPU device: the handle passed as kernel points at
 * this struct; fn runs synchronously on the calling thread with the launch's arguments. */
struct ds__cpu_kernel {
  void (*fn)(void *user, void *const *args, const size_t *arg_sizes, size_t nargs,
             const size_t *global, uint32_t dims);
  void *user;
};
/* An event that completes when all work queued so far on @p dev has (OpenCL marker, CUDA
 * event); *event NULL when the device has nothing asynchronous. Wait and release it with
 * ds__fabric_event_wait / ds__fabric_event_release. Thread-safe. */
ds_status ds__fabric_event_record(ds_context *ctx, int32_t dev, void **event);

/* ---- built-in backends ---- */
/* CPU devices, one per NUMA node (cpu/cpu.c). */
ds_status ds__fabric_cpu_probe(struct ds__fabric *fab);
/* Binds [p, p+size) to CPU device dev's NUMA node, before it is first touched; best effort
 * (nothing on a single-node machine or when hwloc refuses). */
void ds__fabric_cpu_bind(struct ds__fabric *fab, int32_t dev, void *p, size_t size);
/* OpenCL devices of every platform (opencl/; a no-op without DS_HAVE_OPENCL). */
ds_status ds__fabric_opencl_probe(struct ds__fabric *fab);
/* CUDA devices through the runtime (cuda_glue.c + cuda/; none without DS_HAVE_CUDA or GPU). */
ds_status ds__fabric_cuda_probe(struct ds__fabric *fab);
/* The stream the fabric uses on built-in CUDA device @p dev (its copies and event records go
 * there), with that device made current on the calling thread; NULL for another device or
 * without CUDA. A graph node's CUDA launcher enqueues on it, so the event recorded after the
 * launch orders after the kernel. */
void *ds__fabric_cuda_stream(ds_context *ctx, int32_t dev);

#endif /* DS_FABRIC_INTERNAL_H */
