/* libdeepseek: the context (the one opaque root), options, tunables, logging, allocator hook. */
#ifndef DEEPSEEK_CONTEXT_H
#define DEEPSEEK_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/export.h"
#include "deepseek/status.h"
#include "deepseek/version.h"

/** @defgroup context Context
 *  A ds_context owns everything the library does for one user: its options, tunables, log
 *  sink, allocator, telemetry sampler, trace recorder and stats. Separate contexts never
 *  interact. Unless a function says otherwise, it is thread-safe.
 *  @{ */

typedef struct ds_context ds_context;

/** Log levels, most verbose first. */
typedef enum ds_log_level {
  DS_LOG_DEBUG = 0,
  DS_LOG_INFO = 1,
  DS_LOG_WARN = 2,
  DS_LOG_ERROR = 3,
  DS_LOG_OFF = 4
} ds_log_level;

/** Receives one formatted log line. @p module is "core", "cache", … ; @p message has no
 *  trailing newline. Called from any library thread, possibly concurrently: it must be
 *  thread-safe and must not call back into the context. */
typedef void (*ds_log_fn)(void *user, int level, const char *module, const char *message);

/** Allocator hook, in the manner of zstd's ZSTD_customMem. @c alloc returns memory aligned
 *  for any object (as malloc does) or NULL; @c free accepts NULL. Both may be called from any
 *  library thread and must be thread-safe. The structure is copied at context creation. */
typedef struct ds_allocator {
  void *(*alloc)(void *user, size_t size);
  void (*free)(void *user, void *ptr);
  void *user;
} ds_allocator;

/** Tunables, numbered in blocks per module (core 0s, sched 100s, cache 200s, precision 300s,
 *  predict 400s, fabric 500s, batch 600s, tools 700s). Numbers are only ever appended.
 *  Each has a name; the config file key is that name and the environment variable is
 *  "DS_" followed by the name in upper case (e.g. telemetry_period_ms, DS_TELEMETRY_PERIOD_MS). */
typedef enum ds_param {
  /** Log threshold, a ds_log_level (0..4). Also read from DS_LOG=debug|info|warn|error|off.
   *  Default: warn. */
  DS_PARAM_LOG_LEVEL = 1,
  /** Telemetry sampler period in milliseconds (1..60000). Default 100. */
  DS_PARAM_TELEMETRY_PERIOD_MS = 2,
  /** Samples kept in the telemetry ring buffer (16..1048576). Default 4096. Creation only. */
  DS_PARAM_TELEMETRY_CAPACITY = 3,
  /** 1 runs the telemetry sampler thread, 0 does not (0..1). Default 1. Creation only. */
  DS_PARAM_TELEMETRY_ENABLE = 4,
  /** Period of the network round-trip probe in milliseconds (10..3600000), when a peer is
   *  configured. Default 1000. */
  DS_PARAM_TELEMETRY_NET_PERIOD_MS = 5,
  /** 1 publishes the memory-mapped stats file for deepseek-monitor, 0 does not (0..1).
   *  Default 1. Creation only. */
  DS_PARAM_STATS_FILE = 6,
  /** Most trace events kept per thread before further events are dropped and counted
   *  (1024..67108864). Default 1048576. */
  DS_PARAM_TRACE_MAX_EVENTS = 7,
  /** Scheduler worker threads (0..1024); 0: one per hardware thread. Default 0. Read when the
   *  scheduler starts. */
  DS_PARAM_SCHED_WORKERS = 100,
  /** 1 binds each worker to one processing unit through hwloc (0..1). Default 1. Read when the
   *  scheduler starts; a binding failure is logged, not fatal. */
  DS_PARAM_SCHED_BIND = 101,
  /** Microseconds an idle worker polls for work before it sleeps (0..100000). Default 50. */
  DS_PARAM_SCHED_SPIN_US = 102,
  /** Most LOW tasks running at once (0..1024); 0: as many as workers. Default 0. */
  DS_PARAM_SCHED_LOW_MAX_WORKERS = 103,
  /** LOW tasks start only during this percentage of each scheduler tick (1..100).
   *  Default 100. */
  DS_PARAM_SCHED_LOW_DUTY_PCT = 104,
  /** Predicted URGENT+NORMAL load, in percent of the workers, above which the LOW cap and duty
   *  cycle are halved (1..100000). Default 90. */
  DS_PARAM_SCHED_THROTTLE_LOAD_PCT = 105,
  /** Scheduler tick in milliseconds: load prediction, throttling, stats (1..10000).
   *  Default 50. */
  DS_PARAM_SCHED_TICK_MS = 106,
  /** 1 runs the core's background work on the scheduler, 0 on the core's own thread (0..1).
   *  Default 1. */
  DS_PARAM_SCHED_EXECUTOR = 107,
  /** Weight in percent of the newest sample in the EWMA load predictor (1..100). Default 30. */
  DS_PARAM_SCHED_EWMA_ALPHA_PCT = 108,
  /** Workers that run only URGENT tasks (0..1024; at most workers - 1 are reserved), so an
   *  URGENT task starts at once even while every other worker runs long NORMAL or LOW tasks
   *  without yield points. Default 0. Read when the scheduler starts. */
  DS_PARAM_SCHED_URGENT_RESERVE = 109,
  /** Worker pools (1..2). With 2, the workers are split into two dual-active pools over
   *  disjoint processing units (the first half and the second half), each with its own queue
   *  for tasks submitted from outside, both serving work (outside submits alternate between
   *  them; an idle worker takes from the other pool). A pool whose workers are all inside tasks
   *  and finish none for DS_PARAM_SCHED_STALL_MS is marked stalled: its queued outside work
   *  moves to the other pool, new work goes there, and the log and stats (sched.failovers,
   *  sched.failover_tasks, sched.pools_stalled) say so, until it makes progress again.
   *  Default 1. Read when the scheduler starts. */
  DS_PARAM_SCHED_POOLS = 110,
  /** Time without progress after which the watchdog declares a pool stalled (10..3600000
   *  ms; checked every scheduler tick). Default 2000. */
  DS_PARAM_SCHED_STALL_MS = 111,
  /** Cache: eviction policy of a cache created with NULL options or a NULL policy name:
   *  0 lruk+, 1 lru, 2 lru2, 3 arc, 4 s3fifo, 5 wtinylfu, 6 sieve (config/env take the
   *  name). Default 0 (lruk+). Read at ds_cache_create. */
  DS_PARAM_CACHE_POLICY = 200,
  /** Cache: L1 byte budget of a cache created with NULL options (0..2^50). Default 64 MiB. */
  DS_PARAM_CACHE_L1_BYTES = 201,
  /** Cache: L2 (compressed) byte budget of a cache created with NULL options (0..2^50).
   *  Default 0 (no L2). */
  DS_PARAM_CACHE_L2_BYTES = 202,
  /** Cache: shards of a cache created with NULL options (0..256, a power of two; 0: up to 16,
   *  at least 4 MiB each). Default 0. */
  DS_PARAM_CACHE_SHARDS = 203,
  /** Cache: L2 codec of a cache created with NULL options, and the codec of
   *  ds_cache_open_persistent when it is given -1: a ds_cache_codec (0 lz4, 1 zstd, 2 none;
   *  config/env take the name). Default 0. */
  DS_PARAM_CACHE_CODEC = 204,
  /** Cache: zstd level for caches created with NULL options and for ds_cache_open_persistent
   *  (1..19). Default 3. */
  DS_PARAM_CACHE_ZSTD_LEVEL = 205,
  /** Cache: durability of ds_cache_open_persistent, a ds_cache_durability (0 every_put,
   *  1 batched; config/env take the name). Default 1. */
  DS_PARAM_CACHE_DURABILITY = 206,
  /** Cache: sync interval in ms of batched durability for ds_cache_open_persistent
   *  (1..60000). Default 1000. */
  DS_PARAM_CACHE_SYNC_INTERVAL_MS = 207,
  /** Cache: prefetch depth of a cache created with NULL options (0..16; 0: no prefetch).
   *  Default 0. */
  DS_PARAM_CACHE_PREFETCH_DEPTH = 208,
  /** Cache: when a persistent cache's get verifies the record's XXH3 checksum besides its
   *  header (a mismatch is DS_ERR_CORRUPT, counted, logged, the entry dropped): 0 header (never;
   *  only segments scanned at open are verified, not those loaded from their index file),
   *  1 first (the first get of a record not verified since the cache was opened: written
   *  since, or in a segment loaded from its index file), 2 always (every get: about half the
   *  speed of a get from the page cache). Config/env take the name. Default 1.
   *  Read when a persistent cache is opened. */
  DS_PARAM_CACHE_VERIFY_READS = 209,
  /** Cache: GPU tier budget in bytes of a cache created with NULL options (0..2^50; 0: no GPU
   *  tier). Default 0. */
  DS_PARAM_CACHE_GPU_BYTES = 210,
  /** Cache: fabric device index of that GPU tier (-1..63; -1: the first CUDA device, none
   *  without a GPU). Default -1. */
  DS_PARAM_CACHE_GPU_DEVICE = 211,
  /** Cache: the XXH3 code of the persistent tier's checksums: 0 auto (AVX2 where the CPU has
   *  it, else the baseline build), 1 baseline (for comparisons). Both compute the same
   *  checksums. Config/env take the name ("auto", "baseline"). Default 0. Read when a
   *  persistent cache is opened. */
  DS_PARAM_CACHE_CHECKSUM_ISA = 212,
  /** Cache: where L1 values of 1 B to 64 KiB and the cache's entries live: 0 off (the heap,
   *  through the context's allocator); 1 on: an arena of 2 MiB chunks mapped apart with mmap
   *  and advised for transparent huge pages (MADV_HUGEPAGE), so that many values share one
   *  TLB entry, for caches whose L1 budget is 2 MiB or more, in a context created with no
   *  allocator hook (the arena's memory does not go through the hook nor count in
   *  core.mem.*; its size is the stat cache.l1.arena_bytes); 2 always: the arena also with an
   *  allocator hook and for smaller L1 budgets. The arena maps at most 1.25x the L1 budget
   *  (8 MiB at least with 2); beyond that, or when a mapping fails, memory comes from the heap.
   *  Config/env take the name ("off", "on", "always"). Default 1. Read at ds_cache_create. */
  DS_PARAM_CACHE_L1_HUGE_PAGES = 213,
  /** Highest CPU kernel level the precision module may use, a ds_precision_isa: 0 auto
   *  (best detected), 1 scalar, 2 avx2, 3 avx512; capped to what the CPU supports. Default 0. */
  DS_PARAM_PRECISION_ISA = 300,
  /** Largest M (rows of op(A)) for which ds_gemm takes the skinny kernel that reads 16-bit
   *  weights directly (0..64; 0 disables it). Above it, compute dominates and widening the
   *  weights for sgemm is faster. Default 32. */
  DS_PARAM_PRECISION_SKINNY_MAX_M = 301,
  /** Threads OpenBLAS and oneDNN may use for a ds_gemm() called inside a scheduler task
   *  (0..1024; 0 leaves the libraries' own settings alone). The calling worker's OpenMP count
   *  (oneDNN, an OpenMP OpenBLAS) is set to it and stays so on that worker; OpenBLAS's pthread
   *  pool has only a process-wide count, lowered to it while any task is inside a GEMM and
   *  restored when the last one leaves. Keeps concurrent GEMM tasks from oversubscribing the
   *  cores. Default 1. */
  DS_PARAM_PRECISION_TASK_BLAS_THREADS = 302,
  /** 1: softmax / log-softmax (forward and backward) on CUDA tensors go to cuDNN when it can
   *  be loaded (libcudnn.so.9) and all operands share one dtype (fp32 accumulation inside
   *  cuDNN; counted in the stat "precision.cudnn.softmax"); 0: always the library's own CUDA
   *  kernels (fp64 row sums). Default 1. */
  DS_PARAM_PRECISION_CUDNN = 303,
  /** Load predictor: observations between two online fine-tunes of a predictor, run at LOW
   *  priority on the context's executor (0..1000000); 0 turns online adaptation off. Read when
   *  a predictor is created or loaded. Default 0. */
  DS_PARAM_PREDICT_ONLINE_INTERVAL = 400,
  /** Load predictor: samples of recent history an online fine-tune uses (16..1048576; raised
   *  to 4 (W + K) when smaller). Default 2048. */
  DS_PARAM_PREDICT_ONLINE_HISTORY = 401,
  /** Load predictor: most epochs over that history per online fine-tune (1..100). Default 2. */
  DS_PARAM_PREDICT_ONLINE_EPOCHS = 402,
  /** Load predictor: the value loss of online fine-tunes, as ds_predictor_train_options.loss
   *  (0 "squared", 1 "absolute": train for the median, the MAE-optimal forecast; the
   *  evaluation tool's walk-forward table fine-tunes with the same procedure and absolute
   *  loss). Read when a predictor is created or loaded. Default 0. */
  DS_PARAM_PREDICT_ONLINE_LOSS = 403,
  /** Compute fabric: enumerate OpenCL devices (0 off, 1 on). Read when the fabric is first used
   *  on a context. Default 1. */
  DS_PARAM_FABRIC_OPENCL = 500,
  /** Compute fabric: let a device use host memory in place (CL_MEM_USE_HOST_PTR, mapped pinned
   *  memory, other CPU memory spaces) instead of copying (0 always copy, 1 zero-copy where the
   *  device can). Read when a replica is created. Default 1. */
  DS_PARAM_FABRIC_ZERO_COPY = 501,
  /** Compute fabric: enumerate CUDA devices (0 off, 1 on). Read when the fabric is first used on
   *  a context. Default 1. */
  DS_PARAM_FABRIC_CUDA = 502,
  /** Compute fabric: a replica valid on one device and wanted on another device of the same
   *  backend is copied directly between them when the backend can (copy_peer(_async): CUDA
   *  peer copies, OpenCL devices sharing a context) instead of through the host replica
   *  (0 always stage through the host, 1 direct where possible). Read at each copy.
   *  Default 1. */
  DS_PARAM_FABRIC_PEER_COPY = 503,
  /** Fabric graphs: measured runs a kernel needs per device and input size before plans trust
   *  its cost model; until then HEFT plans send its nodes to the least-measured device
   *  (0..1000; 0 turns calibration off). Default 2. */
  DS_PARAM_FABRIC_CALIBRATE_RUNS = 520,
  /** Fabric graphs: HEFT plans model that devices computing on the host's cores (CPU workers,
   *  an OpenCL CPU device such as PoCL) share them, so nodes on such devices do not overlap
   *  beyond the host's cores (0 off: every device is independent hardware, plain HEFT; 1 on).
   *  Default 1. */
  DS_PARAM_FABRIC_PLAN_SHARED_CORES = 521,
  /** Fabric graphs: a HEFT plan is compared with every single-device plan in the same
   *  simulation and the best is kept (0 off, 1 on). Default 1. */
  DS_PARAM_FABRIC_PLAN_GUARD = 522,
  /** Fabric graphs: when a node's last predecessor finishes, the run starts moving the node's
   *  inputs to its device, overlapping the copies with the compute still running (0 off,
   *  1 on). Default 1. */
  DS_PARAM_FABRIC_GRAPH_PREFETCH = 523,
  /** Fabric graphs: samples a kernel may need per device and input size when its measured
   *  times vary (the mean's relative standard error above 10 %): HEFT plans keep calibrating
   *  it, one more sample at a time, up to this many (0..1000; at or below
   *  fabric_calibrate_runs: no extra samples). Default 8. */
  DS_PARAM_FABRIC_CALIBRATE_MAX_RUNS = 524,
  /** Fabric timestamp barriers: nanoseconds a waiter spins re-checking progress before it
   *  sleeps on a futex (0..10000000); the budget adapts down while spins end in sleep.
   *  Default 10000. */
  DS_PARAM_FABRIC_BARRIER_SPIN_NS = 540,
  /** Fabric MPI: longest wait of a blocking call (fetch, remote task, barrier, destroy's
   *  goodbyes) in ms (1..86400000). Default 30000. */
  DS_PARAM_MPI_TIMEOUT_MS = 550,
  /** Fabric MPI: a rank with nothing to send for this long sends a heartbeat carrying its load
   *  (ms, 1..60000). Default 100. */
  DS_PARAM_MPI_HEARTBEAT_MS = 551,
  /** Fabric MPI: a rank not heard from for this long is declared dead (ms, 10..3600000).
   *  Default 5000. */
  DS_PARAM_MPI_DEAD_MS = 552,
  /** Fabric MPI: the progress thread polls busily for this long after the last message, then
   *  sleeps between polls; a thread waiting for its own fetch or push polls busily this long,
   *  then yields the CPU between polls (us, 0..1000000). Default 2000. */
  DS_PARAM_MPI_SPIN_US = 553,
  /** Fabric MPI: sleep between polls of an idle progress thread (us, 10..100000). Default 200. */
  DS_PARAM_MPI_POLL_US = 554,
  /** Fabric MPI: a LOW task is migrated only to a rank whose load (percent of its workers) is
   *  at least this many points below this rank's (0..10000). Default 25. */
  DS_PARAM_MPI_MIGRATE_MARGIN_PCT = 555,
  /** Batcher: max_batch_size of a batcher created with max_batch_size 0 (1..65536). Default 32.
   *  Read at ds_batcher_create(). */
  DS_PARAM_BATCH_MAX_SIZE = 600,
  /** Batcher: max_queue_delay_us of a batcher created with max_queue_delay_us -1 (us,
   *  0..3600000000). Default 0 (do not wait). Read at ds_batcher_create(). */
  DS_PARAM_BATCH_MAX_DELAY_US = 601,
  /** Batcher: max_inflight of a batcher created with max_inflight 0 (0..65536; 0: the number
   *  of scheduler workers). Default 0. Read at ds_batcher_create(). */
  DS_PARAM_BATCH_MAX_INFLIGHT = 602
} ds_param;

/** One tunable set at creation (see ds_context_options.params). */
typedef struct ds_param_value {
  int32_t param; /**< a ds_param */
  int32_t reserved;
  int64_t value;
} ds_param_value;

/** ds_context_options.flags */
#define DS_CONTEXT_NO_ENV 0x1u /**< ignore DS_* environment variables and DS_CONFIG */

/** Options for ds_context_create(). Initialise with DS_CONTEXT_OPTIONS_INIT, then set fields.
 *  Fields are only appended; struct_size tells the library which version the caller has. */
typedef struct ds_context_options {
  uint32_t struct_size;    /**< sizeof(ds_context_options) */
  uint32_t header_version; /**< DS_VERSION_NUMBER of the headers the caller compiled with */
  uint32_t flags;          /**< DS_CONTEXT_* */
  int32_t log_level;       /**< a ds_log_level, or -1 for the default (warn, or DS_LOG) */
  ds_log_fn log_fn;        /**< NULL: lines go to stderr */
  void *log_user;
  const ds_allocator *allocator; /**< NULL: malloc/free. Copied. */
  const char *config_path;       /**< config file to load; NULL: $DS_CONFIG if set */
  const ds_param_value *params;  /**< tunables to set at creation, before the config file */
  size_t nparams;
  const char *telemetry_peer; /**< "host:port" whose TCP connect round trip is sampled; NULL: none */
  const char *name;           /**< label shown by deepseek-monitor; NULL: program name */
} ds_context_options;

#define DS_CONTEXT_OPTIONS_INIT \
  { sizeof(ds_context_options), DS_VERSION_NUMBER, 0u, -1, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL }

/** ds_build_features() bits: backends compiled into this library. */
#define DS_FEATURE_CUDA 0x1u
#define DS_FEATURE_OPENCL 0x2u
#define DS_FEATURE_MPI 0x4u
#define DS_FEATURE_HWLOC 0x8u
#define DS_FEATURE_DLPACK 0x10u

DS_EXTERN_C_BEGIN

/** Creates a context. Tunables are applied in this order, each overriding the one before:
 *  built-in defaults, @p opts->params, the config file (@p opts->config_path, else $DS_CONFIG),
 *  DS_* environment variables (unless DS_CONTEXT_NO_ENV), then later ds_context_set_param().
 *  @param out receives the context; set to NULL on failure.
 *  @param opts NULL for defaults.
 *  @return DS_OK; DS_ERR_INVALID_ARG (out NULL, bad option); DS_ERR_ABI (unknown struct_size);
 *  DS_ERR_VERSION (headers of another major version, or newer than the library);
 *  DS_ERR_CONFIG (config file or environment error: detail names the file and line);
 *  DS_ERR_NO_MEMORY. On failure the detail is in ds_context_last_error(NULL).
 *  Thread-safe. */
DS_API ds_status ds_context_create(ds_context **out, const ds_context_options *opts);

/** Destroys a context: stops its threads, writes a trace being recorded, removes its stats
 *  file, frees all it owns. NULL is a no-op. No other call on @p ctx may run concurrently or
 *  follow. */
DS_API void ds_context_destroy(ds_context *ctx);

/** The message of the last failed call made by the calling thread on @p ctx (with @p ctx NULL:
 *  the last failed call that had no context, such as a failed ds_context_create()). "" when
 *  there is none. Valid until the same thread's next failing call on the same context.
 *  Thread-safe (each thread sees its own). */
DS_API const char *ds_context_last_error(const ds_context *ctx);

/** Sets a tunable. @return DS_OK; DS_ERR_INVALID_ARG for an unknown parameter or a value out
 *  of range (the message names the parameter and its range); DS_ERR_STATE for a creation-only
 *  parameter. Thread-safe. */
DS_API ds_status ds_context_set_param(ds_context *ctx, ds_param param, int64_t value);

/** Reads a tunable into @p out. @return DS_OK or DS_ERR_INVALID_ARG. Thread-safe. */
DS_API ds_status ds_context_get_param(ds_context *ctx, ds_param param, int64_t *out);

/** Loads a config file into a live context (same format and rules as at creation; creation-only
 *  keys are rejected). Nothing is applied unless the whole file is valid.
 *  @return DS_OK; DS_ERR_CONFIG (detail: "path:line: reason"); DS_ERR_INVALID_ARG. Thread-safe. */
DS_API ds_status ds_context_load_config(ds_context *ctx, const char *path);

/** Replaces the log threshold and sink. @p fn NULL restores stderr. Thread-safe, but a line
 *  being written concurrently may still go to the old sink. */
DS_API ds_status ds_context_set_log(ds_context *ctx, int level, ds_log_fn fn, void *user);

/** Valid range of @p param. @return DS_OK or DS_ERR_INVALID_ARG (unknown parameter).
 *  Thread-safe; needs no context. */
DS_API ds_status ds_param_bounds(ds_param param, int64_t *min, int64_t *max);
/** Built-in default of @p param. @return DS_OK or DS_ERR_INVALID_ARG. Thread-safe. */
DS_API ds_status ds_param_default(ds_param param, int64_t *out);
/** Name of @p param ("telemetry_period_ms"), or NULL if unknown. Static storage. */
DS_API const char *ds_param_name(ds_param param);
/** Looks a parameter up by name (config key, case-insensitive) or by environment name
 *  ("DS_TELEMETRY_PERIOD_MS"). @return DS_OK or DS_ERR_NOT_FOUND. Thread-safe. */
DS_API ds_status ds_param_from_name(ds_param *out, const char *name);

/** DS_FEATURE_* bits of the backends compiled into this library. Thread-safe. */
DS_API uint32_t ds_build_features(void);
/** One line naming each backend and whether it is built ("cuda=on opencl=off …"). Static. */
DS_API const char *ds_build_summary(void);

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_CONTEXT_H */
