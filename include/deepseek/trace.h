/* libdeepseek: trace recorder (spans, instants, counters) writing Chrome Trace Event JSON. */
#ifndef DEEPSEEK_TRACE_H
#define DEEPSEEK_TRACE_H

#include "deepseek/context.h"

/** @defgroup trace Trace
 *  Low-overhead recorder that every module uses for spans and counters. Each thread records
 *  into its own buffer (no lock on the hot path); ds_trace_stop() writes all buffers as Chrome
 *  Trace Event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open. When no trace
 *  is being recorded every recording call costs one atomic load. Setting DS_TRACE=path in the
 *  environment starts a trace at context creation (unless DS_CONTEXT_NO_ENV; a path that cannot
 *  be opened only logs a warning; from the environment the path must not be a symbolic link
 *  and an existing file must be a regular file of this user with one link); it is written at
 *  ds_context_destroy().
 *  Names and categories are copied (truncated to 47 and 15 bytes), so any string may be passed.
 *  All functions are thread-safe.
 *  @{ */

DS_EXTERN_C_BEGIN
/** Starts recording; the file is written by ds_trace_stop() or ds_context_destroy().
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_STATE (already recording); DS_ERR_IO (path not
 *  writable: the file is created, or truncated, now and kept open until the trace is written).
 *  DS_PARAM_TRACE_MAX_EVENTS is read here and holds for this trace. */
DS_API ds_status ds_trace_start(ds_context *ctx, const char *path);
/** Stops recording and writes the file. Events recorded by other threads after this call
 *  starts are dropped; spans still open are closed at the stop time in the file, so begins
 *  and ends always pair. The buffers are then freed and a new trace may start.
 *  @return DS_OK; DS_ERR_STATE (not recording); DS_ERR_IO. */
DS_API ds_status ds_trace_stop(ds_context *ctx);
/** 1 while recording, else 0. */
DS_API int ds_trace_enabled(const ds_context *ctx);

/** Opens a span on the calling thread; close it with ds_trace_end() on the same thread. */
DS_API void ds_trace_begin(ds_context *ctx, const char *category, const char *name);
/** Closes the calling thread's innermost open span. Ignored when the thread has no open span in
 *  the current trace. */
DS_API void ds_trace_end(ds_context *ctx);
/** A complete span measured by the caller: start and duration in nanoseconds of
 *  CLOCK_MONOTONIC (as ds_trace_now_ns()). */
DS_API void ds_trace_complete(ds_context *ctx, const char *category, const char *name,
                              uint64_t start_ns, uint64_t duration_ns);
/** A point event. */
DS_API void ds_trace_instant(ds_context *ctx, const char *category, const char *name);
/** A counter sample (drawn as a track of values). */
DS_API void ds_trace_counter(ds_context *ctx, const char *name, double value);
/** CLOCK_MONOTONIC in nanoseconds, the trace's time base. */
DS_API uint64_t ds_trace_now_ns(void);
/** Events dropped since the last ds_trace_start() because a thread's buffer was full
 *  (DS_PARAM_TRACE_MAX_EVENTS) or out of memory. A span whose end would not fit is dropped
 *  whole. Also written to the file as otherData.dropped_events. */
DS_API uint64_t ds_trace_dropped(const ds_context *ctx);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_TRACE_H */
