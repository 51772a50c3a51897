/* libdeepseek: the dynamic batcher — requests grouped into batches for one handler. */
#ifndef DEEPSEEK_BATCH_H
#define DEEPSEEK_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"
#include "deepseek/export.h"
#include "deepseek/sched.h"
#include "deepseek/status.h"
#include "deepseek/tensor.h"

/** @defgroup batch Dynamic batcher
 *  A batcher collects requests (one ds_tensor each, submitted from any thread) into batches
 *  and runs a handler on each batch as a scheduler task (see @ref sched). The handler gets one
 *  batched input tensor [rows, d1, …, dk] and fills one batched output tensor; the batcher
 *  copies each request's row into the batch (gather) and the request's own row of the output
 *  back into the request's output tensor (scatter).
 *
 *  A batch goes out when max_batch_size requests wait, when a preferred batch size is reached,
 *  when the oldest request has waited max_queue_delay_us (0: at once, Triton's default), or at
 *  once when an URGENT request waits. At most max_inflight batches run at a time; requests
 *  that arrive meanwhile wait and form the next batch. URGENT requests are taken before NORMAL
 *  ones, run in batches of their own on the scheduler's URGENT class, and may use one batch
 *  slot beyond max_inflight.
 *
 *  Shapes: every request has the constraint's ndim dims; a dim given as -1 in the constraint
 *  varies (1 … max_shape, when given), the others are fixed. A batch's varying dims are padded
 *  with zero bytes to the longest request in it; with length buckets (bucket_bounds on the
 *  first varying dim) requests of similar length are batched together. With
 *  allowed_batch_sizes the batch's row count is padded (zero rows) to the next allowed size.
 *  The output row shape is output_shape, where -1 means "the input's dim at the same index"
 *  (a sequence model's output follows its input length); a request's output tensor has its
 *  own lengths there.
 *
 *  Lifetime: a request's input and output tensors must stay valid until the request is done
 *  (its callback ran, or ds_batch_request_wait() returned its final status). Every request
 *  completes exactly once: with the handler's status, or DS_ERR_TIMEOUT (its timeout passed
 *  while it was queued), DS_ERR_CANCELLED, or DS_ERR_SHUTDOWN. The batcher must be destroyed
 *  before its context.
 *
 *  Threading: every function is thread-safe, except ds_batcher_destroy(), which must not run
 *  concurrently with any other call on the batcher or its requests (ds_batch_request_release
 *  and calls on requests already done excepted).
 *  @{ */

typedef struct ds_batcher ds_batcher;
typedef struct ds_batch_request ds_batch_request;

/** What the handler gets. The input is contiguous host memory (zero bytes in the padding);
 *  the output is contiguous host memory of shape [rows, output row shape with the batch's
 *  padded lengths], zero-filled before the call, to be filled by the handler. Rows
 *  nrequests … rows-1 are padding (allowed_batch_sizes); their output is dropped. */
typedef struct ds_batch {
  const ds_tensor *input;
  ds_tensor *output;
  int32_t nrequests;     /**< real rows, in request order */
  int32_t prio;          /**< the ds_prio the batch runs under */
  const int64_t *shapes; /**< nrequests x ndim: each request's own shape (its unpadded dims) */
} ds_batch;

/** Runs one batch. Runs on a scheduler worker; batches of one batcher may run concurrently
 *  (up to max_inflight + 1). A status other than DS_OK fails every request of the batch. */
typedef ds_status (*ds_batch_handler_fn)(void *user, const ds_batch *batch);

/** What to do when max_queue_size requests are queued. */
typedef enum ds_batch_full_policy {
  DS_BATCH_REJECT = 0, /**< ds_batcher_submit returns DS_ERR_NO_SPACE */
  DS_BATCH_DELAY = 1   /**< ds_batcher_submit blocks until there is room (or the request's
                            timeout passes: DS_ERR_TIMEOUT; or shutdown: DS_ERR_SHUTDOWN) */
} ds_batch_full_policy;

#define DS_BATCH_MAX_SIZES 8 /**< entries in the preferred/allowed/bucket lists */

/** Options of ds_batcher_create(). Initialise with DS_BATCHER_OPTIONS_INIT; fields are only
 *  appended. Lists are copied. */
typedef struct ds_batcher_options {
  uint32_t struct_size;        /**< sizeof(ds_batcher_options) */
  ds_batch_handler_fn handler; /**< required */
  void *handler_user;
  const char *name;               /**< stats prefix "batch.<name>."; NULL: "batcher" */
  int32_t max_batch_size;         /**< requests per batch, 1..65536; 0 (default): the
                                       context's DS_PARAM_BATCH_MAX_SIZE (default 32) */
  int64_t max_queue_delay_us;     /**< longest wait of the oldest request for a fuller batch,
                                       0 (do not wait) .. 1 h; -1 (default): the context's
                                       DS_PARAM_BATCH_MAX_DELAY_US (default 0) */
  int32_t max_inflight;           /**< batches running at once; 0 (default): the context's
                                       DS_PARAM_BATCH_MAX_INFLIGHT, whose default 0 means the
                                       number of scheduler workers */
  int32_t max_queue_size;         /**< queued requests; 0 (default): unlimited */
  int32_t full_policy;            /**< a ds_batch_full_policy; default DS_BATCH_REJECT */
  int32_t dtype;                  /**< input dtype (a ds_dtype); default DS_DTYPE_F32 */
  int32_t ndim;                   /**< input dims per request (without the batch dim), 0..7 */
  int64_t shape[DS_TENSOR_MAX_DIMS];     /**< fixed size, or -1: varies */
  int64_t max_shape[DS_TENSOR_MAX_DIMS]; /**< for varying dims: largest accepted; 0: any */
  int32_t output_dtype;           /**< default DS_DTYPE_F32 */
  int32_t output_ndim;            /**< output dims per request (without the batch dim) */
  int64_t output_shape[DS_TENSOR_MAX_DIMS]; /**< fixed size, or -1: the input's dim here */
  const int32_t *preferred_batch_sizes; /**< send at once at these sizes; NULL: none */
  size_t npreferred;
  const int32_t *allowed_batch_sizes; /**< ascending; the last must be max_batch_size; the
                                           row count is padded up to one of them. NULL: any */
  size_t nallowed;
  const int64_t *bucket_bounds; /**< ascending upper bounds of the first varying dim's length
                                     buckets (a last bucket takes longer ones); NULL: one */
  size_t nbuckets;
} ds_batcher_options;

#define DS_BATCHER_OPTIONS_INIT                                                          \
  {                                                                                      \
    sizeof(ds_batcher_options), NULL, NULL, NULL, 0, -1, 0, 0, DS_BATCH_REJECT,          \
        DS_DTYPE_F32, 0, {0}, {0}, DS_DTYPE_F32, 0, {0}, NULL, 0, NULL, 0, NULL, 0        \
  }

/** Completion callback: runs once, on the thread that completes the request (a scheduler
 *  worker, the batcher's timer thread, or the thread that cancels or shuts down), before any
 *  waiter returns. It must not wait on a request of the same batcher nor destroy it. */
typedef void (*ds_batch_done_fn)(void *user, ds_batch_request *req, ds_status status);

/** Options of ds_batcher_submit(). Initialise with DS_BATCH_SUBMIT_OPTIONS_INIT. */
typedef struct ds_batch_submit_options {
  uint32_t struct_size; /**< sizeof(ds_batch_submit_options) */
  int32_t prio;         /**< DS_PRIO_URGENT or DS_PRIO_NORMAL (default) */
  int64_t timeout_us;   /**< a request still queued this long after submit completes with
                             DS_ERR_TIMEOUT; 0: none */
  ds_batch_done_fn on_done; /**< NULL: none */
  void *user;
} ds_batch_submit_options;

#define DS_BATCH_SUBMIT_OPTIONS_INIT \
  { sizeof(ds_batch_submit_options), DS_PRIO_NORMAL, 0, NULL, NULL }

/** Figures of ds_batcher_stats(). Latencies in microseconds, from log-spaced histograms
 *  (about 9 % resolution); NaN while nothing was measured. */
typedef struct ds_batcher_stats {
  uint32_t struct_size;      /**< set by the caller: sizeof(ds_batcher_stats) */
  uint64_t submitted;        /**< accepted by ds_batcher_submit */
  uint64_t completed;        /**< done with DS_OK */
  uint64_t failed;           /**< done with the handler's error */
  uint64_t rejected;         /**< refused at submit: full queue (DS_ERR_NO_SPACE, or
                                  DS_ERR_TIMEOUT while waiting for room) */
  uint64_t invalid;          /**< refused at submit: bad shape, dtype, arguments, shutdown */
  uint64_t timed_out;        /**< done with DS_ERR_TIMEOUT */
  uint64_t cancelled;        /**< done with DS_ERR_CANCELLED or DS_ERR_SHUTDOWN */
  uint64_t batches;          /**< handler calls */
  uint64_t queued;           /**< waiting now */
  double mean_batch_size;    /**< requests per batch */
  double fill_ratio;         /**< mean batch size / max_batch_size */
  double padding_waste;      /**< padding elements / all elements of the batched inputs */
  double queue_delay_p50_us; /**< submit to batch start */
  double queue_delay_p99_us;
  double latency_p50_us;     /**< submit to completion */
  double latency_p99_us;
} ds_batcher_stats;

DS_EXTERN_C_BEGIN

/** Creates a batcher on @p ctx (its scheduler runs the batches).
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL, no handler, sizes out of range, a list not
 *  ascending or too long, a bad dtype, output -1 at an index the input does not have; -1 over
 *  a fixed input dim is allowed and means that fixed size); DS_ERR_ABI;
 *  DS_ERR_NO_MEMORY (memory or the timer thread). */
DS_API ds_status ds_batcher_create(ds_batcher **out, ds_context *ctx,
                                   const ds_batcher_options *opts);

/** Submits one request.
 *  @param out receives the handle (release with ds_batch_request_release()); NULL: none (give
 *  an on_done callback to learn the result). Set to NULL on failure.
 *  @param input host tensor (CPU or CUDA_HOST), contiguous, of the batcher's dtype and shape.
 *  @param output host tensor, contiguous, of the output dtype and this request's output shape;
 *  receives this request's row of the batch output.
 *  @param opts NULL for defaults.
 *  @return DS_OK; DS_ERR_SHAPE (shape violates the constraint; the message names the dim);
 *  DS_ERR_DTYPE; DS_ERR_INVALID_ARG (NULL, not contiguous, not host memory, bad prio);
 *  DS_ERR_NO_SPACE (queue full, REJECT); DS_ERR_TIMEOUT (DELAY and the timeout passed while
 *  waiting for room); DS_ERR_SHUTDOWN (after ds_batcher_shutdown()); DS_ERR_ABI;
 *  DS_ERR_NO_MEMORY. A refused request does not enter any batch. With DS_BATCH_DELAY, do not
 *  call it from a batch handler. */
DS_API ds_status ds_batcher_submit(ds_batch_request **out, ds_batcher *b, const ds_tensor *input,
                                   ds_tensor *output, const ds_batch_submit_options *opts);

/** Waits until @p req is done, at most @p timeout_us (-1: no limit; 0: just test).
 *  @return the request's final status (DS_OK, the handler's error, DS_ERR_TIMEOUT,
 *  DS_ERR_CANCELLED, DS_ERR_SHUTDOWN); DS_ERR_BUSY if it is not done in time;
 *  DS_ERR_INVALID_ARG. */
DS_API ds_status ds_batch_request_wait(ds_batch_request *req, int64_t timeout_us);

/** Cancels @p req. @return DS_OK: it was queued and is now done with DS_ERR_CANCELLED;
 *  DS_ERR_BUSY: its batch is already running, it completes normally; DS_ERR_STATE: already
 *  done; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_batch_request_cancel(ds_batch_request *req);

/** Releases the handle (a queued request still runs). NULL is a no-op. Also valid after
 *  ds_batcher_destroy() (before ds_context_destroy()). */
DS_API void ds_batch_request_release(ds_batch_request *req);

/** Stops accepting requests (DS_ERR_SHUTDOWN), wakes submitters blocked on a full queue, and
 *  then either runs every queued request at once without waiting for the delay (@p drain
 *  nonzero) or completes them with DS_ERR_SHUTDOWN (@p drain 0); returns when no batch runs.
 *  Calling it again is harmless. @return DS_OK; DS_ERR_INVALID_ARG. Not from a handler. */
DS_API ds_status ds_batcher_shutdown(ds_batcher *b, int drain);

/** Shuts down with drain (see ds_batcher_shutdown()) and frees the batcher. NULL is a no-op. */
DS_API void ds_batcher_destroy(ds_batcher *b);

/** Current figures into @p out (set out->struct_size first). Also publishes them to the
 *  context's stats. @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_ABI. */
DS_API ds_status ds_batcher_stats_get(ds_batcher *b, ds_batcher_stats *out);

/** Batch-size histogram: @p counts[i] (i < @p n) receives the number of batches of i requests
 *  (i = 0 is always 0). Sizes >= n are counted in counts[n-1]. @return DS_OK;
 *  DS_ERR_INVALID_ARG. */
DS_API ds_status ds_batcher_histogram(ds_batcher *b, uint64_t *counts, size_t n);

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_BATCH_H */
