/* libdeepseek: timestamp barriers of the compute fabric. */
#ifndef DEEPSEEK_FABRIC_BARRIER_H
#define DEEPSEEK_FABRIC_BARRIER_H

#include <stdint.h>

#include "deepseek/context.h"

DS_EXTERN_C_BEGIN

/**
 * @defgroup fabric_barrier Timestamp barriers
 * @{
 * A barrier over a fixed set of participants (CPU threads, CUDA streams, OpenCL queues), each
 * numbered 0..participants-1. Every participant publishes a monotonic 64-bit timestamp, its
 * progress; every participant starts at 0. ds_fabric_barrier_wait(T) returns once every
 * participant has published a timestamp >= T ("has passed T"). A phase barrier in the manner of
 * pthread_barrier_wait() is ds_fabric_barrier_arrive_and_wait(): publish progress + 1, then wait
 * for it.
 *
 * Device participants publish from the device's own timeline: a marker enqueued on an OpenCL
 * queue (or a host function on a CUDA stream) publishes its timestamp when the device reaches
 * it. The other direction, "this queue waits until every participant has passed T", holds back
 * the commands enqueued after it without blocking the host.
 *
 * Memory ordering: everything a participant wrote before publishing T is visible to a thread
 * that returns DS_OK from a wait for T (release on publish, acquire on the wait).
 *
 * Waiting: a waiter spins for a short while (DS_PARAM_FABRIC_BARRIER_SPIN_NS), then sleeps on a
 * futex; a publish wakes sleepers only when the smallest progress reaches the lowest timestamp
 * any of them waits for, so a publish that completes nothing costs no system call.
 */

/** A timestamp barrier; opaque. */
typedef struct ds_fabric_barrier ds_fabric_barrier;

/** Wait without a time limit (the @p timeout_ns argument of the wait functions). */
#define DS_FABRIC_BARRIER_FOREVER (-1)

/** Options of ds_fabric_barrier_create(). */
typedef struct ds_fabric_barrier_options {
  uint32_t struct_size;  /**< sizeof(ds_fabric_barrier_options) */
  uint32_t participants; /**< number of participants, 1..65536 */
  int64_t spin_ns;       /**< spin before sleeping; -1 = DS_PARAM_FABRIC_BARRIER_SPIN_NS */
  const char *name;      /**< label used in error messages (copied); NULL = "barrier" */
} ds_fabric_barrier_options;

/** Default options: 2 participants, spin from the context's tunable. */
#define DS_FABRIC_BARRIER_OPTIONS_INIT {sizeof(ds_fabric_barrier_options), 2u, -1, NULL}

/**
 * Creates a barrier with every participant at timestamp 0.
 * @param out   receives the barrier (NULL on failure)
 * @param ctx   the context; must outlive the barrier
 * @param opts  options (NULL = defaults)
 * @return DS_OK; DS_ERR_INVALID_ARG (NULL out/ctx, participants out of range, spin_ns < -1);
 *         DS_ERR_ABI (unknown struct_size); DS_ERR_NO_MEMORY.
 * Thread-safety: thread-safe (separate barriers).
 */
DS_API ds_status ds_fabric_barrier_create(ds_fabric_barrier **out, ds_context *ctx,
                                          const ds_fabric_barrier_options *opts);

/**
 * Cancels the barrier (as ds_fabric_barrier_cancel()), waits until every thread blocked in a
 * wait has returned (with DS_ERR_SHUTDOWN) and every device marker has completed, then frees it.
 * NULL is a no-op. Device waits still pending are released, so their queues and streams do
 * not hang.
 * Thread-safety: may run while other threads are blocked in waits on @p b; no call on @p b may
 * start once destroy has started.
 */
DS_API void ds_fabric_barrier_destroy(ds_fabric_barrier *b);

/**
 * Publishes participant @p participant's progress: it has passed every timestamp <= @p t.
 * Publishing the current value again is allowed and does nothing.
 * @return DS_OK; DS_ERR_INVALID_ARG (NULL b, or @p t behind the participant's published or
 *         enqueued progress: timestamps never go backwards); DS_ERR_NOT_FOUND (no such
 *         participant); DS_ERR_SHUTDOWN (cancelled) or the device status that closed it.
 * Thread-safety: thread-safe; normally one thread publishes for a participant.
 */
DS_API ds_status ds_fabric_barrier_publish(ds_fabric_barrier *b, uint32_t participant,
                                           uint64_t t);

/**
 * Blocks until every participant has passed @p t, or the timeout expires.
 * @param timeout_ns  nanoseconds; 0 = test only; DS_FABRIC_BARRIER_FOREVER = no limit
 * @return DS_OK; DS_ERR_TIMEOUT; DS_ERR_SHUTDOWN (cancelled or destroyed while waiting);
 *         DS_ERR_DEVICE (a device participant failed); DS_ERR_INVALID_ARG (NULL b).
 * Thread-safety: thread-safe; any number of threads may wait, for any timestamps.
 */
DS_API ds_status ds_fabric_barrier_wait(ds_fabric_barrier *b, uint64_t t, int64_t timeout_ns);

/**
 * Phase barrier: publishes the participant's progress + 1, then waits until every participant
 * has passed it. With each participant calling it once per phase this is a reusable
 * pthread_barrier_wait().
 * @param out_t  if not NULL, receives the timestamp waited for (the phase number)
 * @return as ds_fabric_barrier_publish() and ds_fabric_barrier_wait().
 * Thread-safety: thread-safe; one thread per participant.
 */
DS_API ds_status ds_fabric_barrier_arrive_and_wait(ds_fabric_barrier *b, uint32_t participant,
                                                   int64_t timeout_ns, uint64_t *out_t);

/**
 * Reads progress without waiting.
 * @param out          receives the participant's published timestamp, or with
 *                     @p participant = UINT32_MAX the smallest over all participants (the
 *                     timestamp every participant has passed)
 * @return DS_OK; DS_ERR_INVALID_ARG (NULL argument); DS_ERR_NOT_FOUND (no such participant).
 * Thread-safety: thread-safe.
 */
DS_API ds_status ds_fabric_barrier_progress(const ds_fabric_barrier *b, uint32_t participant,
                                            uint64_t *out);

/**
 * Closes the barrier: every current and later wait returns DS_ERR_SHUTDOWN, publishes return
 * DS_ERR_SHUTDOWN, pending device waits are released. Idempotent.
 * @return DS_OK; DS_ERR_INVALID_ARG (NULL b).
 * Thread-safety: thread-safe.
 */
DS_API ds_status ds_fabric_barrier_cancel(ds_fabric_barrier *b);

/**
 * OpenCL participant: enqueues a marker on @p cl_queue (a cl_command_queue) whose completion
 * publishes @p t for @p participant (from the OpenCL event callback). The check that @p t does
 * not go backwards is made now, against what was already published or enqueued. A marker that
 * completes with an error closes the barrier: waits return DS_ERR_DEVICE.
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NOT_FOUND; DS_ERR_SHUTDOWN; DS_ERR_DEVICE (an
 *         OpenCL call failed; its error code is in the message); DS_ERR_UNSUPPORTED (built
 *         without OpenCL).
 * Thread-safety: thread-safe; the queue is used as OpenCL allows (queues are thread-safe).
 */
DS_API ds_status ds_fabric_barrier_publish_opencl(ds_fabric_barrier *b, uint32_t participant,
                                                  void *cl_queue, uint64_t t);

/**
 * OpenCL waits for T: the commands enqueued on @p cl_queue after this call start only once
 * every participant has passed @p t. The host does not block: a user event, completed by the
 * publish that passes @p t, is enqueued as a barrier's wait event. If @p t is already passed,
 * nothing is enqueued. Cancel or destroy also completes the user event, so the queue never
 * hangs: the commands behind it then run although T was not passed (a negative event status
 * would leave the queue implementation-defined); the host sees the closure in its own calls.
 * @param out_event  if not NULL, receives the user event (a cl_event, retained: the caller
 *                   releases it), or NULL when nothing was enqueued
 * @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_SHUTDOWN; DS_ERR_DEVICE; DS_ERR_NO_MEMORY;
 *         DS_ERR_UNSUPPORTED (built without OpenCL).
 * Thread-safety: thread-safe.
 */
DS_API ds_status ds_fabric_barrier_wait_opencl(ds_fabric_barrier *b, void *cl_queue, uint64_t t,
                                               void **out_event);

/**
 * CUDA participant: enqueues on @p cuda_stream (a cudaStream_t; NULL = the legacy default
 * stream) a host function that publishes @p t for @p participant when the stream reaches it.
 * @return as ds_fabric_barrier_publish_opencl(); DS_ERR_UNAVAILABLE when no CUDA device is
 *         present; DS_ERR_UNSUPPORTED when built without CUDA.
 * Thread-safety: thread-safe.
 */
DS_API ds_status ds_fabric_barrier_publish_cuda(ds_fabric_barrier *b, uint32_t participant,
                                                void *cuda_stream, uint64_t t);

/**
 * CUDA waits for T: the work enqueued on @p cuda_stream after this call starts only once every
 * participant has passed @p t (cuStreamWaitValue64 on a word of mapped, pinned host memory that
 * the host raises to @p t when it is passed). Cancel or destroy raises the word, so the stream
 * never hangs. Nothing is enqueued when @p t is already passed.
 * @return as ds_fabric_barrier_wait_opencl(); DS_ERR_UNAVAILABLE (no CUDA device, or the driver
 *         lacks stream memory operations); DS_ERR_UNSUPPORTED (built without CUDA).
 * Thread-safety: thread-safe.
 */
DS_API ds_status ds_fabric_barrier_wait_cuda(ds_fabric_barrier *b, void *cuda_stream,
                                             uint64_t t);

/** @} */

DS_EXTERN_C_END

#endif /* DEEPSEEK_FABRIC_BARRIER_H */
