/* libdeepseek: the fabric's MPI transport — ranks, buffers with an owner rank, tasks run by
 * name on other ranks (owner-computes and LOW-task migration), timestamp barriers across ranks. */
#ifndef DEEPSEEK_FABRIC_MPI_H
#define DEEPSEEK_FABRIC_MPI_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"
#include "deepseek/export.h"
#include "deepseek/fabric.h"
#include "deepseek/fabric_barrier.h"
#include "deepseek/sched.h"
#include "deepseek/status.h"

/** @defgroup fabric_mpi Fabric: MPI transport
 *  One ds_mpi per context and process (rank) connects the ranks of MPI_COMM_WORLD. It follows
 *  StarPU-MPI's owner-computes model: every rank runs the same program (SPMD), registers the
 *  same buffers with the same owner rank and the same task functions under the same names.
 *
 *  Threading: MPI is initialised asking MPI_THREAD_MULTIPLE and any level from
 *  MPI_THREAD_SERIALIZED up is accepted, because every MPI call of the library is made by one
 *  progress thread per ds_mpi (the calling threads hand it requests and wait for its answers).
 *  Every waiting call has a timeout (DS_PARAM_MPI_TIMEOUT_MS); the progress thread sends
 *  heartbeats (DS_PARAM_MPI_HEARTBEAT_MS) and declares a rank dead when nothing was heard from
 *  it for DS_PARAM_MPI_DEAD_MS: what was pending on it fails with DS_ERR_IO naming the rank,
 *  and later requests to it fail at once. Open MPI aborts the whole job when a rank dies unless
 *  mpirun is given --enable-recovery (see docs/mpi.md).
 *
 *  Builds without MPI have every function: they return DS_ERR_UNSUPPORTED with a message
 *  naming the Debian package (libopenmpi-dev).
 *
 *  Unless stated otherwise every function is thread-safe.
 *  @{ */

/** An MPI endpoint of a context. */
typedef struct ds_mpi ds_mpi;

/** Options of ds_mpi_create(). Initialise with DS_MPI_OPTIONS_INIT; fields only appended. */
typedef struct ds_mpi_options {
  uint32_t struct_size;  /**< sizeof(ds_mpi_options) */
  int32_t finalize;      /**< 1: if ds_mpi_create() initialised MPI, the last ds_mpi_destroy()
                              calls MPI_Finalize (MPI cannot be initialised twice in a process).
                              0: leave MPI initialised. Default 1. */
  int32_t migrate;       /**< 1: install the LOW-task migration hook in the context's scheduler
                              (see ds_mpi_task_submit()). Default 1. */
} ds_mpi_options;

#define DS_MPI_OPTIONS_INIT { sizeof(ds_mpi_options), 1, 1 }

/** What a registered task function receives: its serialised arguments, where to write its
 *  serialised result, and for owner-computes tasks the buffer's memory on its owner. */
typedef struct ds_mpi_call {
  const void *args;   /**< argument bytes as submitted (not owned) */
  size_t args_len;
  void *result;       /**< result bytes go here (capacity result_cap; NULL if 0) */
  size_t result_cap;
  size_t result_len;  /**< set by the function (0 on entry); at most result_cap */
  void *data;         /**< owner-computes: the buffer's memory on this (the owner) rank; else NULL */
  size_t data_len;
  int32_t rank;       /**< the rank running the function */
} ds_mpi_call;

/** A task function registered by name. It may run on any rank: it must use only @p call and
 *  state that every rank has (@p user is the registering rank's own pointer). Returning other
 *  than DS_OK fails the task with that status. */
typedef ds_status (*ds_mpi_task_fn)(void *user, ds_mpi_call *call);

/** Options of ds_mpi_task_submit(). Initialise with DS_MPI_SUBMIT_OPTIONS_INIT. */
typedef struct ds_mpi_submit_options {
  uint32_t struct_size; /**< sizeof(ds_mpi_submit_options) */
  int32_t rank;         /**< -1: run here, or, for a LOW task that the local throttle holds back
                             while another rank is less loaded, migrate it there (the result
                             comes back and completes the local task); >= 0: run on that rank */
  uint64_t buffer;      /**< nonzero: owner-computes — run on the owner of this registered
                             buffer, with its memory as ds_mpi_call.data (overrides rank) */
  const ds_task_options *task; /**< the local task's options (prio, deps, group, on_done...);
                                    NULL: DS_PRIO_LOW, named after the function */
} ds_mpi_submit_options;

#define DS_MPI_SUBMIT_OPTIONS_INIT { sizeof(ds_mpi_submit_options), -1, 0, NULL }

DS_EXTERN_C_BEGIN

/** Connects this process to the others of MPI_COMM_WORLD. Collective: every rank calls it.
 *  Initialises MPI (MPI_Init_thread, asking MPI_THREAD_MULTIPLE) unless the application did;
 *  duplicates MPI_COMM_WORLD (messages never mix with the application's), sets
 *  MPI_ERRORS_RETURN on it and starts the progress thread.
 *  @param opts NULL for defaults.
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_ABI; DS_ERR_NO_MEMORY; DS_ERR_UNSUPPORTED (no MPI
 *  in this build, or MPI gives less than MPI_THREAD_SERIALIZED); DS_ERR_STATE (MPI was already
 *  finalised); DS_ERR_IO (an MPI call failed).
 *  Lifecycle: one endpoint per context (the migration hook is the context's one); every rank
 *  creates its endpoints in the same order. */
DS_API ds_status ds_mpi_create(ds_mpi **out, ds_context *ctx, const ds_mpi_options *opts);

/** Collective shutdown: removes the migration hook, waits (each wait bounded by
 *  DS_PARAM_MPI_TIMEOUT_MS) for this rank's requests to be answered and for every live rank to
 *  reach its own ds_mpi_destroy() (so ranks keep serving each other until all are done), then
 *  stops the progress thread, frees the communicator and cached copies, and calls MPI_Finalize
 *  if ds_mpi_create() initialised MPI, opts.finalize was 1 and no rank was seen to die (Open
 *  MPI's finalize can wait for a dead rank forever). Tasks this rank runs for others are
 *  waited for. Registered buffers need not be unregistered. NULL is a no-op. Lifecycle: not
 *  concurrently with other calls on @p m. */
DS_API void ds_mpi_destroy(ds_mpi *m);

/** This process's rank, and the number of ranks. -1 for NULL. */
DS_API int32_t ds_mpi_rank(const ds_mpi *m);
DS_API int32_t ds_mpi_size(const ds_mpi *m);

/** The thread support MPI gave (MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE's value). */
DS_API int32_t ds_mpi_thread_level(const ds_mpi *m);

/** Whether @p rank is believed alive: 1 yes, 0 no (declared dead, or out of range). */
DS_API int ds_mpi_rank_alive(ds_mpi *m, int32_t rank);

/** Registers buffer @p id (nonzero, the same on every rank) of @p size bytes owned by rank
 *  @p owner. On the owner @p ptr is its memory (required; not owned, must stay valid until
 *  unregistered); elsewhere @p ptr is where fetched copies land (NULL: allocated by the
 *  library on the first fetch).
 *  @return DS_OK; DS_ERR_INVALID_ARG (id 0, owner out of range, size 0, ptr NULL on the owner);
 *  DS_ERR_BUSY (id already registered); DS_ERR_NO_MEMORY; DS_ERR_SHUTDOWN. */
DS_API ds_status ds_mpi_buffer_register(ds_mpi *m, uint64_t id, int32_t owner, void *ptr,
                                        size_t size);

/** Registers the fabric buffer @p buf (see fabric.h) as buffer @p id owned by rank @p owner,
 *  as ds_mpi_buffer_register() does with memory: every rank attaches a buffer of the same size
 *  under the same id. Transfers go through its host replica, acquired on the first CPU device:
 *  the owner acquires it for READ while sending (device replicas Modified are copied back
 *  first), a fetch acquires it for WRITE while receiving (the copy becomes the buffer's latest
 *  data; other replicas are invalidated), an owner-computes task acquires it for RW while
 *  running. ds_mpi_buffer_fetch() returns the host replica. @p buf is not owned and must
 *  outlive the registration; an acquire of it outstanding elsewhere makes those steps fail
 *  with DS_ERR_BUSY (reported to the fetching rank). On its owner, every release of a WRITE
 *  or RW acquire of @p buf (ds_buffer_release(), by anyone, on any device) tells the other
 *  ranks to drop their copies, as ds_mpi_buffer_written() does, except while a
 *  ds_mpi_graph_run() of this endpoint that writes @p buf runs (the run drops the copies of
 *  what it wrote at its end). Attach a ds_buffer to one endpoint only.
 *  @return as ds_mpi_buffer_register(); a status of ds_buffer_acquire(). */
DS_API ds_status ds_mpi_buffer_attach(ds_mpi *m, uint64_t id, int32_t owner, ds_buffer *buf);

/** Unregisters buffer @p id, freeing a copy the library allocated. On the owner it waits until
 *  transfers of it that are in flight have completed.
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_mpi_buffer_unregister(ds_mpi *m, uint64_t id);

/** A readable copy of buffer @p id: on the owner its memory; elsewhere the cached copy,
 *  fetched from the owner first if there is none (concurrent fetches of one buffer share one
 *  transfer). The data is sent straight from the owner's memory into the copy (no staging).
 *  The pointer is valid until ds_mpi_buffer_flush() or unregister of @p id. The copy is dropped
 *  (the next fetch transfers again) when the owner writes the buffer through the library (an
 *  owner-computes task, a ds_mpi_graph_run() node, a WRITE or RW acquire of an attached
 *  ds_buffer, or ds_mpi_buffer_written()): the owner's invalidation travels ahead of its later
 *  messages, so after a ds_mpi_barrier_wait() for a timestamp the owner arrived at after
 *  writing, a fetch returns the new data. Exactly what is not seen: a memory buffer
 *  registered with ds_mpi_buffer_register() that its owner writes directly (a plain store,
 *  memcpy, a device copy into it) — the owner must call ds_mpi_buffer_written() (or every
 *  reader ds_mpi_buffer_flush()); a write into an attached ds_buffer's host memory made
 *  without an acquire; and writes made while another rank's fetch of the buffer is already
 *  being answered (that copy may hold bytes from before or after them; the invalidation
 *  then drops it, so the next fetch is right).
 *  @param timeout_ms -1: DS_PARAM_MPI_TIMEOUT_MS.
 *  @return DS_OK; DS_ERR_NOT_FOUND (not registered here; or not on the owner, named in the
 *  message); DS_ERR_FORMAT (sizes differ between ranks); DS_ERR_TIMEOUT; DS_ERR_IO (the owner
 *  is dead or MPI failed, the rank named); DS_ERR_NO_MEMORY; DS_ERR_SHUTDOWN. */
DS_API ds_status ds_mpi_buffer_fetch(ds_mpi *m, uint64_t id, const void **data,
                                     int64_t timeout_ms);

/** Drops the cached copy of @p id (0: of every buffer), so the next fetch transfers again;
 *  no-op on the owner. Not while another thread reads the copy.
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_BUSY (a fetch of it is in flight). */
DS_API ds_status ds_mpi_buffer_flush(ds_mpi *m, uint64_t id);

/** Says that this rank, the owner of buffer @p id, has written its memory by itself (not
 *  through an owner-computes task or a graph run, which say so on their own): every other
 *  rank drops its cached copy (see ds_mpi_buffer_fetch()). Needed for memory registered with
 *  ds_mpi_buffer_register(); an attached ds_buffer written through an acquire says so by
 *  itself. Does not wait.
 *  @return DS_OK; DS_ERR_NOT_FOUND (not registered); DS_ERR_INVALID_ARG (this rank is not the
 *  owner); DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_mpi_buffer_written(ds_mpi *m, uint64_t id);

/** Pushes buffer @p id from this rank, its owner, to rank @p to, which takes it with
 *  ds_mpi_buffer_recv(). No request travels (both ranks know of the transfer: the program is
 *  the same everywhere), so the bytes move as one MPI_Isend matched by one MPI_Irecv, straight
 *  from the owner's memory (an attached ds_buffer's host replica, acquired for READ while it
 *  is sent) — what a hand-written MPI program pays. Use it when the reader is known in
 *  advance; ds_mpi_buffer_fetch() serves readers the owner does not know of. Returns when the
 *  send completed (for large buffers: when the receiver has taken the data). Under
 *  MPI_THREAD_MULTIPLE the calling thread makes the MPI calls and polls them itself; under
 *  SERIALIZED the progress thread makes them for it.
 *  Matching: a rank's receives of @p id from the owner take the owner's sends of @p id to that
 *  rank in the order both were made. Buffer ids equal modulo MPI_TAG_UB + 1 (at least 32768;
 *  2^31 with Open MPI) share one channel: pushes of such buffers between the same two ranks
 *  must be made in the same order on both.
 *  @param timeout_ms -1: DS_PARAM_MPI_TIMEOUT_MS (the receiver must post its receive in time).
 *  @return DS_OK; DS_ERR_NOT_FOUND (not registered); DS_ERR_INVALID_ARG (m NULL, this rank is
 *  not the owner, @p to out of range or this rank); DS_ERR_TIMEOUT; DS_ERR_IO (@p to is dead
 *  or MPI failed, the rank named); DS_ERR_SHUTDOWN; DS_ERR_NO_MEMORY; a status of
 *  ds_buffer_acquire() (an attached buffer written elsewhere until the timeout: DS_ERR_BUSY).
 *  Thread-safe; concurrent sends of one buffer may overlap (they only read it). */
DS_API ds_status ds_mpi_buffer_send(ds_mpi *m, uint64_t id, int32_t to, int64_t timeout_ms);

/** Receives buffer @p id pushed by its owner with ds_mpi_buffer_send() into this rank's copy
 *  (the registered landing area, allocated on first use if NULL; an attached ds_buffer's host
 *  replica, acquired for WRITE while it lands), which then counts as fetched: @p data is set
 *  to it and ds_mpi_buffer_fetch() returns it without a transfer until the owner writes the
 *  buffer or the copy is flushed. Waits for a fetch of @p id in flight on this rank first.
 *  @param timeout_ms -1: DS_PARAM_MPI_TIMEOUT_MS.
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG (NULL, or this rank is the owner);
 *  DS_ERR_TIMEOUT; DS_ERR_IO (the owner is dead, named; or MPI failed, as when the owner's
 *  buffer is larger than this rank's: sizes must match on every rank); DS_ERR_SHUTDOWN;
 *  DS_ERR_NO_MEMORY.
 *  Thread-safe; not while another thread reads the copy. */
DS_API ds_status ds_mpi_buffer_recv(ds_mpi *m, uint64_t id, const void **data,
                                    int64_t timeout_ms);

/** Registers @p fn under @p name (at most 63 bytes; the same on every rank).
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_BUSY (name taken); DS_ERR_NO_MEMORY. */
DS_API ds_status ds_mpi_task_register(ds_mpi *m, const char *name, ds_mpi_task_fn fn, void *user);

/** Submits the registered function @p name as a task of the context's scheduler, with a copy
 *  of @p args. Where it runs: see ds_mpi_submit_options. Its result bytes are written to
 *  @p result (capacity @p result_cap) and their count to @p result_len (may be NULL) before
 *  the task completes, so ds_task_wait() and callbacks work as for any task. A task sent to
 *  another rank (migrated, or placed with an explicit rank or buffer) occupies no local
 *  worker while it waits for the answer (bounded by DS_PARAM_MPI_TIMEOUT_MS): its worker is
 *  released once the request is queued, and the answer completes the task. A migrated task
 *  whose rank dies runs here instead; a placed one fails with DS_ERR_IO.
 *  @param out as ds_task_submit() (NULL: fire-and-forget; @p result must then outlive it).
 *  @return as ds_task_submit(); DS_ERR_NOT_FOUND (name not registered); DS_ERR_INVALID_ARG
 *  (rank out of range, unknown buffer). The task itself completes with the function's status,
 *  DS_ERR_NOT_FOUND (not registered on the remote rank), DS_ERR_FULL (result larger than
 *  @p result_cap), DS_ERR_IO (the remote rank died) or DS_ERR_TIMEOUT. */
DS_API ds_status ds_mpi_task_submit(ds_task **out, ds_mpi *m, const char *name,
                                    const void *args, size_t args_len, void *result,
                                    size_t result_cap, size_t *result_len,
                                    const ds_mpi_submit_options *opts);

/** Options of ds_mpi_graph_run(). Initialise with DS_MPI_GRAPH_OPTIONS_INIT. */
typedef struct ds_mpi_graph_options {
  uint32_t struct_size;       /**< sizeof(ds_mpi_graph_options) */
  const int32_t *placement;   /**< per graph node: the rank that runs it, or -1 for
                                   owner-computes (the owner of the first buffer it writes);
                                   NULL: owner-computes for all. The same on every rank. */
  const ds_plan_options *plan; /**< how each rank places its own nodes on its devices (NULL:
                                    HEFT); DS_PLAN_EXPLICIT is refused */
  int64_t timeout_ms;         /**< bound on each transfer; -1: DS_PARAM_MPI_TIMEOUT_MS */
} ds_mpi_graph_options;
#define DS_MPI_GRAPH_OPTIONS_INIT { sizeof(ds_mpi_graph_options), NULL, NULL, -1 }

/** What one rank did in ds_mpi_graph_run(). The caller sets struct_size. */
typedef struct ds_mpi_graph_info {
  uint32_t struct_size;    /**< sizeof(ds_mpi_graph_info) */
  uint32_t nodes_here;     /**< graph nodes this rank ran */
  uint32_t sends, recvs;   /**< buffer transfers this rank made */
  uint64_t bytes_sent, bytes_received;
  double makespan_s;       /**< this rank's part, from its first node to its last completion */
} ds_mpi_graph_info;

/** Runs a fabric graph (fabric.h) across the ranks. Collective: every rank builds the same
 *  graph (same kernels, nodes in the same order, same accesses and arguments) over its own
 *  ds_buffer objects, each attached with ds_mpi_buffer_attach() under the same id and owner
 *  on every rank, and calls this with the same options. Each node runs on one rank: the
 *  owner of the first buffer it writes (owner-computes), or opts->placement[node]. Transfers
 *  are derived from the graph: a rank that runs a node reading a buffer whose latest data is
 *  elsewhere receives it from the rank of its last writer (once per version); after the run
 *  every written buffer's latest data is on its owner (sent back if a placed node wrote it
 *  elsewhere), and other ranks' fetched copies of written buffers are dropped. Each rank runs
 *  its nodes and its transfers as one local graph (planned with opts->plan on its devices),
 *  non-blocking: waiting transfers hold no worker. It returns when every rank's part is done
 *  (each rank tells the others), so on return the owners hold the final data everywhere and
 *  a fetch sees it. Every dependency is kept across ranks too: a node that reads what a node
 *  on another rank wrote waits for that data; any other dependency on a node of another rank
 *  (ds_graph_add_dep(), or a write after a read) is kept by a zero-byte token message sent
 *  after the earlier node(s) of that rank and received before the later node (one per pair
 *  of ranks per node; counted in neither sends/recvs nor bytes).
 *  Contents of non-owner ranks' buffers after the run are unspecified.
 *  @param info this rank's counts and time, or NULL.
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL, graph of another context, a buffer not attached,
 *  a placement out of range, DS_PLAN_EXPLICIT); DS_ERR_STATE (empty graph); DS_ERR_ABI;
 *  DS_ERR_NO_SPACE (more transfers than MPI tags); DS_ERR_NO_MEMORY; a node's failure (as
 *  ds_graph_run()); DS_ERR_IO (a peer died during a transfer, named) or DS_ERR_TIMEOUT (a
 *  transfer or another rank's part did not complete in time); another rank's failure (its
 *  status, the rank named; transfers waiting for it are cancelled at once). One thread per
 *  endpoint at a time; the
 *  graph as in ds_graph_run(). */
DS_API ds_status ds_mpi_graph_run(ds_mpi *m, ds_graph *g, const ds_mpi_graph_options *opts,
                                  ds_mpi_graph_info *info);

/** Tasks this rank sent to others by migration, and ran for others (since create). */
DS_API ds_status ds_mpi_task_counts(ds_mpi *m, uint64_t *migrated_out, uint64_t *run_for_others);

/** Timestamp barrier across ranks: publishes that this rank has passed timestamp @p ts (a
 *  monotonic counter the application chooses; smaller values than already published are
 *  ignored). Does not wait. @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_SHUTDOWN. */
DS_API ds_status ds_mpi_barrier_arrive(ds_mpi *m, uint64_t ts);

/** Waits until every rank (this one included) has published a timestamp >= @p ts.
 *  @param timeout_ms -1: DS_PARAM_MPI_TIMEOUT_MS.
 *  @return DS_OK; DS_ERR_TIMEOUT; DS_ERR_IO (a rank that has not passed @p ts died, named);
 *  DS_ERR_INVALID_ARG. */
DS_API ds_status ds_mpi_barrier_wait(ds_mpi *m, uint64_t ts, int64_t timeout_ms);

/** Makes the ranks participants of an in-process timestamp barrier (fabric_barrier.h): every
 *  timestamp rank r publishes with ds_mpi_barrier_arrive() (this rank included) is published
 *  to participant @p first + r of @p b, so this process's threads can wait on @p b for "every
 *  rank has passed T" together with local participants (CPU threads, streams, queues). A rank
 *  declared dead while @p b is bridged cancels @p b (its waiters return DS_ERR_SHUTDOWN instead
 *  of hanging: a timestamp barrier promises every participant's progress, which a dead rank can
 *  never make, and the fabric barrier has no per-participant failure to report; find the rank
 *  with ds_mpi_rank_alive() or ds_mpi_barrier_wait(), which names it). To go on without the
 *  dead, bridge a new barrier: ranks already dead when a barrier is bridged count as having
 *  passed every timestamp, so it synchronises the survivors. @p b
 *  needs at least @p first + size participants and must outlive the bridge: call again with
 *  NULL (or destroy @p m) before destroying it. One bridge per endpoint; a new one replaces it.
 *  @return DS_OK; DS_ERR_INVALID_ARG (m NULL). Thread-safe. */
DS_API ds_status ds_mpi_barrier_bridge(ds_mpi *m, ds_fabric_barrier *b, uint32_t first);

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_FABRIC_MPI_H */
