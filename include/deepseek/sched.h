/* libdeepseek: the scheduler — priority-tiered work-stealing tasks, dependencies, groups. */
#ifndef DEEPSEEK_SCHED_H
#define DEEPSEEK_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"
#include "deepseek/export.h"
#include "deepseek/predict.h"
#include "deepseek/status.h"

/** @defgroup sched Scheduler
 *  Tasks run on a per-context pool of worker threads (one per hardware thread by default,
 *  DS_PARAM_SCHED_WORKERS), bound to their processing units. The pool starts on the first
 *  ds_task_submit() (or ds_sched_start()) and stops in ds_context_destroy().
 *
 *  Three classes: URGENT tasks are taken before any other queued task, and a running LOW task
 *  that reaches ds_task_yield() while an URGENT task waits and no worker is idle runs that
 *  URGENT task inline, then resumes (it is not moved or restarted). With
 *  DS_PARAM_SCHED_URGENT_RESERVE, some workers take only URGENT tasks, so these start at once
 *  even when the other workers run tasks without yield points. NORMAL tasks submitted
 *  by a task go to its worker's deque (run newest first by that worker, stolen oldest first by
 *  idle ones); those submitted from outside go to a shared FIFO. LOW tasks are throttled: at most
 *  DS_PARAM_SCHED_LOW_MAX_WORKERS of them run at once, they start only during the first
 *  DS_PARAM_SCHED_LOW_DUTY_PCT percent of each scheduler tick, and both limits are halved
 *  while the predicted URGENT+NORMAL load exceeds DS_PARAM_SCHED_THROTTLE_LOAD_PCT.
 *
 *  Destroying the context with tasks pending: no new task is accepted (DS_ERR_SHUTDOWN), tasks
 *  not yet started complete with DS_ERR_CANCELLED (their callbacks run), running tasks see
 *  ds_task_cancelled() return 1 and are waited for. Every task handle and group must be
 *  released before ds_context_destroy().
 *
 *  Unless stated otherwise every function is thread-safe and may be called from inside a task.
 *  @{ */

typedef struct ds_task ds_task;
typedef struct ds_task_group ds_task_group;

/** Priority classes. */
typedef enum ds_prio {
  DS_PRIO_URGENT = 0, /**< before anything queued; preempts LOW tasks at their yield points */
  DS_PRIO_NORMAL = 1, /**< default; work-stealing */
  DS_PRIO_LOW = 2     /**< background; throttled */
} ds_prio;

/** States reported by ds_task_state(). */
typedef enum ds_task_state_t {
  DS_TASK_WAITING = 0, /**< predecessors not finished */
  DS_TASK_READY = 1,   /**< queued */
  DS_TASK_RUNNING = 2, /**< running (or being completed) */
  DS_TASK_DONE = 3     /**< finished; ds_task_status() is final */
} ds_task_state_t;

/** A task body. Returning a status other than DS_OK marks the task failed: its successors
 *  complete with DS_ERR_CANCELLED without running. */
typedef ds_status (*ds_task_fn)(void *arg);

/** Completion callback: runs once, on the thread that completes the task (a worker, or the
 *  thread that cancelled it), before any waiter returns. It must not wait on @p task. */
typedef void (*ds_task_done_fn)(void *user, ds_task *task, ds_status status);

/** Options of ds_task_submit(). Initialise with DS_TASK_OPTIONS_INIT; fields only appended. */
typedef struct ds_task_options {
  uint32_t struct_size; /**< sizeof(ds_task_options) */
  int32_t prio;         /**< a ds_prio; default DS_PRIO_NORMAL */
  const char *name;     /**< label in messages (first 31 bytes copied); NULL: "task" */
  ds_task *const *deps; /**< predecessors: the task starts after all of them finish */
  size_t ndeps;
  ds_task_group *group;    /**< group that waits for this task; NULL: none */
  ds_task_done_fn on_done; /**< NULL: none */
  void *on_done_user;
  uint64_t deadline_ns; /**< CLOCK_MONOTONIC time; a task not started by then completes with
                             DS_ERR_TIMEOUT instead of running. Queued URGENT and LOW tasks
                             start earliest deadline first, before those without one. 0: none */
  uint64_t cost_ns;     /**< expected run time (hint): queued LOW tasks without a deadline
                             start longest first. 0: unknown */
  int32_t device;       /**< fabric device the task works for (an index of
                             ds_fabric_device_info()), -1: any. NORMAL only, with worker -1:
                             on a machine with several NUMA nodes the task goes to a worker on
                             the device's node (a CPU device's node; for other devices the node
                             the fabric reports, none when unknown), before the data hint. Any
                             class: below -1 or not a fabric device is DS_ERR_INVALID_ARG. */
  int32_t worker;       /**< NORMAL only: worker whose deque receives the task (its cache or
                             NUMA node holds the data); -1: the submitting worker's deque, or
                             from outside the pool a FIFO all workers take from */
  const void *data;     /**< NORMAL only, with worker -1: the data the task works on. On a
                             machine with several NUMA nodes the task goes to a worker on the
                             node holding that page (hwloc_get_area_memlocation), the
                             submitting worker if it is one. NULL: none. (Appended in 0.x;
                             callers built with the shorter struct are still accepted.) */
} ds_task_options;

#define DS_TASK_OPTIONS_INIT \
  { sizeof(ds_task_options), DS_PRIO_NORMAL, NULL, NULL, 0, NULL, NULL, NULL, 0, 0, -1, -1, NULL }

DS_EXTERN_C_BEGIN

/** Starts the context's worker pool now rather than at the first submit.
 *  @return DS_OK (also if already started); DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY (threads or
 *  memory). */
DS_API ds_status ds_sched_start(ds_context *ctx);

/** Number of worker threads into @p out (starting the pool if needed).
 *  @return as ds_sched_start(). */
DS_API ds_status ds_sched_workers(ds_context *ctx, int32_t *out);

/** Submits @p fn(@p arg).
 *  @param out receives a handle to wait on (release it with ds_task_release()); NULL for
 *  fire-and-forget. Set to NULL on failure.
 *  @param opts NULL for defaults.
 *  @return DS_OK; DS_ERR_INVALID_ARG (ctx or fn NULL, bad prio, a dep NULL or of another
 *  context, a device hint that names no fabric device); DS_ERR_ABI; DS_ERR_NO_MEMORY; DS_ERR_SHUTDOWN (context being destroyed).
 *  A dependency that already failed makes the new task complete with DS_ERR_CANCELLED. */
DS_API ds_status ds_task_submit(ds_task **out, ds_context *ctx, ds_task_fn fn, void *arg,
                                const ds_task_options *opts);

/** Submits @p n independent tasks fn(args[i]) with the same options, at a lower cost per task
 *  than n calls of ds_task_submit() (the counts a submit raises are raised once per 64 tasks,
 *  and sleeping workers are woken once per 64 rather than checked per task). No handles are
 *  returned: give @p opts a group to wait for them (ds_task_group_wait()). Outside the pool
 *  NORMAL tasks are queued in order (FIFO); from inside a task they go to its worker's deque.
 *  @param submitted receives how many tasks were submitted (all of them on DS_OK); may be NULL.
 *  @param args n arguments; NULL: every task gets NULL.
 *  @param opts as ds_task_submit(), except that deps must be empty (ndeps 0); NULL: defaults.
 *  @return DS_OK; DS_ERR_INVALID_ARG (ctx or fn NULL, bad prio, ndeps not 0, group of another
 *  context, bad device hint); DS_ERR_ABI; DS_ERR_SHUTDOWN; DS_ERR_NO_MEMORY (the first
 *  *submitted tasks were submitted and will run, the others not). Thread-safe. */
DS_API ds_status ds_task_submit_batch(size_t *submitted, ds_context *ctx, ds_task_fn fn,
                                      void *const *args, size_t n, const ds_task_options *opts);

/** Waits until @p task is done. Called from a worker, it runs other tasks while it waits (a
 *  task must not wait for itself or for a task that depends on it).
 *  @param timeout_ms -1: no limit; 0: just test.
 *  @return the task's final status (DS_OK, what its function returned, DS_ERR_CANCELLED with a
 *  message naming the failed predecessor, DS_ERR_TIMEOUT for a missed deadline); or
 *  DS_ERR_TIMEOUT if it is not done in time (ds_task_state() tells which);
 *  DS_ERR_INVALID_ARG. */
DS_API ds_status ds_task_wait(ds_task *task, int64_t timeout_ms);

/** Cancels @p task. @return DS_OK: it had not started and is now done with DS_ERR_CANCELLED
 *  (its successors are cancelled); DS_ERR_BUSY: a worker has claimed it: ds_task_cancelled()
 *  now returns 1 inside it, and it may still be stopped before its function starts;
 *  DS_ERR_STATE: it was already done (this call changed nothing); DS_ERR_INVALID_ARG. */
DS_API ds_status ds_task_cancel(ds_task *task);

/** A ds_task_state_t. Thread-safe. */
DS_API int ds_task_state(const ds_task *task);

/** Final status once done; DS_ERR_STATE before. */
DS_API ds_status ds_task_status(const ds_task *task);

/** Releases the handle (the task itself still runs). NULL is a no-op. */
DS_API void ds_task_release(ds_task *task);

/** Inside a task: 1 if ds_task_cancel() was called on it or its context is being destroyed;
 *  else 0 (also outside a task). The task should then return DS_ERR_CANCELLED. */
DS_API int ds_task_cancelled(void);

/** Inside a LOW task: 1 if an URGENT task waits and no worker is idle to take it. 0 otherwise
 *  (NORMAL and URGENT tasks are never asked to yield). */
DS_API int ds_task_should_yield(void);

/** Inside a LOW task: if ds_task_should_yield(), runs the waiting URGENT tasks on this worker,
 *  then returns and the LOW task carries on where it was. Otherwise returns at once.
 *  @return the number of URGENT tasks run. */
DS_API int ds_task_yield(void);

/** Creates an empty task group (see ds_task_options.group).
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_task_group_create(ds_task_group **out, ds_context *ctx);

/** Waits until every task submitted to the group so far is done. Not from a task of the same
 *  group (it would wait for itself). As ds_task_wait: a worker, or an outside thread waiting
 *  with no time limit, runs queued tasks while it waits (so such a wait can change the order in
 *  which queued tasks start; wait with a limit to leave them to the workers).
 *  @return DS_OK if all succeeded; else the first failure status recorded; DS_ERR_TIMEOUT if
 *  some are still pending after @p timeout_ms (-1: no limit); DS_ERR_INVALID_ARG. */
DS_API ds_status ds_task_group_wait(ds_task_group *group, int64_t timeout_ms);

/** Waits for the group's tasks, then frees it. NULL is a no-op. One thread per group. */
DS_API void ds_task_group_destroy(ds_task_group *group);

/** Makes @p p the scheduler's load predictor, in place of the built-in EWMA. Each scheduler
 *  tick feeds it one sample of its F features, in this order (the first F of them): the load
 *  just observed (queued + running URGENT/NORMAL tasks per worker, in percent), the machine's
 *  CPU utilisation (percent), memory pressure (percent) and the scheduler's queue depth (tasks),
 *  the last three from telemetry (NaN when unavailable: the predictor then repeats the previous
 *  value). The scheduler uses the predicted load one step ahead (horizon 1, in percent of the
 *  workers) to throttle LOW work; until @p p has observed a full window, and whenever it cannot
 *  predict, the EWMA's value is used. @p p is not owned: call again with NULL (which restores
 *  the EWMA) before destroying it (and a predictor is destroyed before its context). Starts
 *  the scheduler if needed.
 *  @return DS_OK; DS_ERR_INVALID_ARG (ctx NULL); DS_ERR_NO_MEMORY; DS_ERR_SHUTDOWN.
 *  Thread-safe; the predictor must not be used by another thread meanwhile. */
DS_API ds_status ds_sched_set_predictor(ds_context *ctx, ds_predictor *p);

/** The load (fraction of the workers) the scheduler predicted at its last tick, and the LOW
 *  limits it set from it (concurrency cap, duty-cycle percent). Any pointer may be NULL.
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_SHUTDOWN (no scheduler). Thread-safe. */
DS_API ds_status ds_sched_load(ds_context *ctx, double *predicted, int *low_cap, int *low_duty_pct);

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_SCHED_H */
