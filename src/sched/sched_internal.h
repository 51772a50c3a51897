/* Internal interface of the scheduler: the task, queue, worker and scheduler structures shared
 * by the files of src/sched, and the predictor hook other modules (predict) may fill. */
#ifndef DS_SCHED_INTERNAL_H
#define DS_SCHED_INTERNAL_H

#include "internal.h"

#define DS__SCHED_NAME_MAX 32
#define DS__SCHED_STRIPES 64 /* mutex+condvar pairs that guard task/group completion */
#define DS__SCHED_HIST_BUCKETS 40 /* log2 buckets of queue wait in ns: up to ~550 s */
#define DS__SCHED_DEVICES 64 /* fabric devices whose NUMA node is cached (others asked each time) */
/* One NORMAL task in 16 has its wait and completion time measured: three clock reads for a
 * timed task cost more than the rest of an empty task on a virtual machine (9 % of the
 * wavefront's time at one in 8). Not rarer: any 16 consecutive ids of a thread include a
 * sample, so a short run (the tools' 25-task demo) still fills the wait histogram. */
#define DS__TIMED_EVERY 16

struct ds__sched;

/* Adds to a counter only its owner thread writes (others read it relaxed): a plain load and
 * store, no locked instruction on the per-task path. */
#define ds__own_add(p, v) ds__store_relaxed((p), ds__load_relaxed(p) + (v))
struct ds__slab;

/* A successor edge: 'task' waits for the task whose list holds this node (holds a ref). */
typedef struct ds__edge {
  struct ds_task *task;
  struct ds__edge *next;
  int heap; /* 0: one of task->inline_edges, freed with the task */
} ds__edge;
#define DS__SCHED_INLINE_EDGES 2

/* Why a task completed with DS_ERR_CANCELLED (chooses the message ds_task_wait records). */
enum { DS__WHY_NONE = 0, DS__WHY_USER, DS__WHY_PRED, DS__WHY_SHUTDOWN };

struct ds_task {
  /* Hot part: zeroed at allocation (see ds__task_alloc), written at submit and completion. */
  struct ds__sched *s;
  ds_task_fn fn;
  ds__work_fn work; /* core executor work item instead of fn: runs even during shutdown */
  void *arg;
  ds_task_done_fn on_done;
  void *on_done_user;
  struct ds_task_group *group;
  uint64_t id, deadline_ns, cost_ns;
  uint64_t ready_ns; /* when last queued: queue wait and ready-to-done times start here */
  int32_t prio, device, worker_hint;
  int timed; /* its queue wait and completion time are measured (a sample of NORMAL tasks) */
  int detached; /* ds__task_detach() was called: ds__task_complete() finishes it (detach.c) */
  /* Submitted without a handle and without dependencies: no other thread can name it, so only
   * the holder of its queue entry claims it, nobody links to it or waits on it, and the worker
   * that runs it holds its last two refs (see ds__sched_run_entry). */
  int solo;
  ds__atomic_int detach_step; /* detach.c: the function returned / the completion came */
  ds_status detach_status;    /* the completion's status, published by detach_step */

  ds__atomic_int state;  /* ds_task_state_t; leaving WAITING/READY is claimed by CAS */
  ds__atomic_int refs;   /* handle + life + one per queue entry + one per predecessor edge */
  ds__atomic_int npred;  /* unfinished predecessors + 1 while submitting */
  ds__atomic_int cancel; /* ds_task_cancel() was called */
  ds__atomic_u64 failed_pred_id; /* first failed predecessor (root cause), 0 none */
  ds_status status; /* final; written before state becomes DONE */
  int why;          /* DS__WHY_* for a cancelled task */
  ds__atomic_ptr succ;   /* ds__edge list, lock-free push; DS__SUCC_CLOSED once done */
  ds__atomic_int waiters; /* threads sleeping on the stripe for this task (see task.c) */
  struct ds_task *qprev, *qnext;  /* queue links, under the queue's mutex */

  /* Cold part: not zeroed; each field is written before it is read. */
  char name[DS__SCHED_NAME_MAX]; /* written at submit */
  char failed_pred_name[DS__SCHED_NAME_MAX]; /* both written before failed_pred_id is read */
  ds_status failed_pred_status;
  ds__edge inline_edges[DS__SCHED_INLINE_EDGES]; /* this task's first edges (no allocation) */
  struct ds__slab *slab; /* the slab holding this task (task_pool.c), set when it is carved */
  /* Its share of its group's pending weight (see struct ds_task_group), written at submit when
   * it has a group; also fills the task to a whole number of cache lines. */
  int64_t gweight;
};
_Static_assert(sizeof(struct ds_task) % 64 == 0, "struct ds_task: adjust pad to whole cache lines");
/* Bytes of a task zeroed at allocation: the hot part. */
#define DS__TASK_ZEROED offsetof(struct ds_task, name)
/* The successor list of a completed task: new successors see it and do not link. */
extern char ds__succ_closed;
#define DS__SUCC_CLOSED ((void *)&ds__succ_closed)

/* A group counts weight, not tasks (weighted reference counting), so that a task spawning
 * into its own group and then finishing touches the shared count rarely:
 *  - pending is the sum of the weights of the group's unfinished tasks plus the weight their
 *    workers have returned but not yet flushed (ds__worker.gowed). Every task holds a weight
 *    of at least 1 from submit until it is finished, so pending is 0 only when no task of the
 *    group is unfinished or still running its function.
 *  - A task submitted from outside the group (or by a task of it whose weight is 1) adds
 *    DS__GROUP_LOAN to pending: one RMW. A task submitted by a running task of the same group
 *    with weight w >= 2 takes w / 2 of it, and the parent keeps the rest: no RMW; weight is
 *    moved, never created, so the sum above is unchanged.
 *  - A task finished by the worker that ran it adds its weight to the worker's gowed instead
 *    of subtracting it (deferring a decrement keeps pending higher: safe). The worker flushes
 *    gowed (one RMW for many tasks) before it runs a task of another group, after a nested run,
 *    before it sleeps or waits and when it finds no work: weight it holds never belongs to a
 *    group that only the code it is about to run could wait for (ds__group_flush, task.c).
 * s (read by every submit to the group) sits apart from pending. */
#define DS__GROUP_LOAN ((int64_t)1 << 24)
struct ds_task_group {
  struct ds__sched *s;
  char pad0[56];
  ds__atomic_i64 pending;
  ds__atomic_int first_error; /* ds_status, DS_OK until a task fails */
  char pad1[52];
};

/* A mutex-guarded intrusive list (queue.c): ordered for the URGENT and LOW classes, FIFO for
 * mailboxes and overflow. */
typedef struct ds__queue {
  pthread_mutex_t mu;
  struct ds_task *head, *tail;
  ds__atomic_int len;
} ds__queue;

void ds__queue_init(ds__queue *q);
void ds__queue_fini(ds__queue *q);
void ds__queue_push_tail(ds__queue *q, struct ds_task *t);
struct ds_task *ds__queue_pop_head(ds__queue *q);
/* Inserts in the URGENT/LOW order (see ds__queue_before). */
void ds__queue_insert(ds__queue *q, struct ds_task *t);
int ds__queue_before(const struct ds_task *a, const struct ds_task *b);

/* The lock-free Chase-Lev work-stealing deque of one worker (deque.c): push and pop by the
 * owning worker only, steal by anyone. top and bottom sit on separate cache lines. */
#define DS__DEQUE_INITIAL 1024
struct ds__deque_buf;
typedef struct ds__deque {
  _Alignas(64) ds__atomic_i64 top; /* next entry a thief takes; on a line of its own, apart
                                      from the record fields its owner reads per task */
  char pad0[56];
  ds__atomic_i64 bottom; /* next free slot of the owner */
  ds__atomic_ptr buf;    /* struct ds__deque_buf *, older ones linked from it */
  char pad1[48];
} ds__deque;

/* Allocates the first buffer; 0 if out of memory (pushes then fail and the caller queues
 * elsewhere). */
int ds__deque_init(ds__deque *d, ds_context *ctx);
void ds__deque_fini(ds__deque *d, ds_context *ctx);
/* Owner only. 0 if the deque could not grow (out of memory): the task was not queued. */
int ds__deque_push(ds__deque *d, ds_context *ctx, struct ds_task *t);
struct ds_task *ds__deque_pop(ds__deque *d);
/* Any thread. NULL when empty or when it lost a race (the caller moves on). */
struct ds_task *ds__deque_steal(ds__deque *d);
/* Approximate entry count (for the runnable check and stats). */
int64_t ds__deque_size(ds__deque *d);

/* Bounded lock-free MPMC queue with a locked overflow list (ring.c): the inject FIFO. */
#define DS__RING_CELLS 4096 /* a power of two */
typedef struct ds__ring_cell {
  ds__atomic_u64 seq;
  struct ds_task *task;
} ds__ring_cell;
typedef struct ds__ring {
  ds__atomic_u64 tail; /* next position a producer claims */
  char pad0[56];
  ds__atomic_u64 head; /* next position a consumer claims */
  char pad1[56];
  ds__ring_cell *cells;
  ds__queue overflow;
} ds__ring;
int ds__ring_init(ds__ring *r, ds_context *ctx); /* 0: out of memory */
void ds__ring_fini(ds__ring *r, ds_context *ctx);
void ds__ring_push(ds__ring *r, struct ds_task *t);
struct ds_task *ds__ring_pop(ds__ring *r);
int64_t ds__ring_size(ds__ring *r);

typedef struct ds__hist {
  ds__atomic_u64 n[DS__SCHED_HIST_BUCKETS];
  ds__atomic_u64 sum_ns; /* for the published histogram's _sum */
} ds__hist;
/* Published cumulative buckets: waits below 2^(DS__SCHED_HIST_LE0 + 3i) ns, i < DS__SCHED_HIST_LE
 * (1 us, 8 us, 66 us, 0.5 ms, 4 ms, 34 ms, 0.27 s, 2.1 s), then all. */
#define DS__SCHED_HIST_LE0 10
#define DS__SCHED_HIST_LE 8
/* Over n histograms (stride: bytes between them): cum[i] waits below the i-th bound,
 * cum[DS__SCHED_HIST_LE] all of them, and their sum in ns. */
void ds__hist_cumulative_n(const ds__hist *h, int n, size_t stride, uint64_t *cum, uint64_t *sum);
void ds__hist_add(ds__hist *h, uint64_t ns);
/* q-quantile (0..1) in ns, interpolated inside the log2 bucket; 0 when empty. */
double ds__hist_quantile(const ds__hist *h, double q);
/* The same over n histograms taken as one (stride: bytes between them). */
double ds__hist_quantile_n(const ds__hist *h, int n, size_t stride, double q);

/* Worker records are aligned to and sized in multiples of a 4 KiB page, so that each can be
 * bound to its worker's NUMA node on its own (ds__sched_place_record). */
#define DS__WORKER_ALIGN 4096
typedef struct ds__worker {
  _Alignas(DS__WORKER_ALIGN) struct ds__sched *s;
  int index;
  int pu; /* os index of the processing unit it is bound to, -1 if unbound */
  int reserved; /* takes only URGENT tasks (DS_PARAM_SCHED_URGENT_RESERVE) */
  int pool;     /* index of its pool in ds__sched.pools */
  int record_node; /* NUMA node holding this record once the worker runs, -1 unknown */
  pthread_t thread;
  ds__deque deque;   /* NORMAL tasks submitted by this worker's tasks (lock-free) */
  ds__queue mailbox; /* NORMAL tasks sent here by others (ds_task_options.worker) */
  ds__atomic_u64 busy_ns;    /* time in finished stretches of work (see ds__worker_busy) */
  ds__atomic_u64 busy_since; /* start of the current stretch, 0 while idle */
  ds__hist wait_hist[3];  /* queue wait per class of the tasks this worker started */
  /* Written by this worker only (relaxed atomics so the tick may read them): tasks run,
   * steals, and completion time (ready to done) count, sum and sum of squares in us. */
  ds__atomic_u64 run, steals, done_n, done_sum_us, done_sumsq_us2;
  /* Tasks submitted and completed by this worker (release stores by it, see ds__sched_live). */
  ds__atomic_u64 submitted, completed;
  ds__atomic_int nonlow; /* URGENT/NORMAL tasks running on it (nested runs counted), for the tick */
  /* Free tasks of this worker (task_pool.c). This worker only. */
  struct ds_task *cache;
  int ncached;
  /* Group weight returned by tasks this worker ran and not yet subtracted from gcache's
   * pending (see struct ds_task_group). This worker only; gcache is not dereferenced while
   * gowed is 0 (the group may be gone). */
  struct ds_task_group *gcache;
  int64_t gowed;
  uint64_t rng;           /* victim choice; touched by this worker only */
  uint64_t id_next, id_end; /* its current block of task ids (task.c); this worker only */
  char pad[64];
} ds__worker;

/* Load predictor: given the load just observed (URGENT+NORMAL demand / workers), returns the
 * load expected over the next tick. Called from the scheduler tick under tick_mu. */
typedef double (*ds__sched_predict_fn)(void *state, double observed);

typedef struct ds__ewma {
  double alpha, value;
  int primed;
} ds__ewma;
double ds__ewma_predict(void *state, double observed);


/* A pool of workers (DS_PARAM_SCHED_POOLS): workers [first, first + count) and the FIFO of
 * NORMAL tasks submitted to it from outside. The watchdog fields are the tick's (tick_mu). */
#define DS__SCHED_MAX_POOLS 2
typedef struct ds__pool {
  ds__ring inject;
  int first, count;
  ds__atomic_int stalled; /* set by the watchdog: no new outside work is routed here */
  uint64_t seen_run;      /* tasks its workers had finished at the last tick */
  uint64_t progress_ns;   /* when the pool last finished a task or was idle */
} ds__pool;

struct ds__stripe {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char pad[64];
};

struct ds__sched {
  ds_context *ctx;
  void *topo; /* hwloc_topology_t held by the context's reference, or NULL */
  int nworkers;
  int nslots;          /* nworkers + 1: workers[nworkers] is the helper slot (task.c) */
  ds__worker *workers; /* DS__WORKER_ALIGN-aligned, inside workers_mem */
  void *workers_mem;
  pthread_mutex_t helper_mu; /* held by the outside thread using the helper slot */
  int numa_nodes;            /* NUMA nodes of the machine (0: no topology) */
  int *worker_node;          /* per slot: NUMA node os index of its PU, -1 unknown */
  int *worker_reserved;      /* per slot: 1 if URGENT-only (a copy for ds__sched_place) */
  ds__atomic_int numa_rotor; /* spreads data-placed tasks over a node's workers */
  ds__atomic_int device_node[DS__SCHED_DEVICES]; /* per fabric device: 0 not asked yet, else
                                                    its NUMA node + 2 (1: unknown) */
  ds__queue urgent, low;
  ds__pool pools[DS__SCHED_MAX_POOLS];
  int npools;
  ds__atomic_int low_running;
  ds__atomic_int low_cap, low_duty_pct; /* in force, after throttling */

  pthread_mutex_t park_mu;
  pthread_cond_t park_cv, drain_cv, urgent_cv; /* urgent_cv: reserved workers sleep there */
  pthread_cond_t ticker_cv; /* the ticker's timed wait (under park_mu); signalled at stop */
  pthread_t ticker;
  /* Written when a worker spins or parks: 64 bytes apart from the flags every submit reads
   * (pads, not _Alignas: the allocator hook promises less than 64-byte alignment). */
  char pad_park[64];
  ds__atomic_int sleepers, spinning, urgent_sleepers;
  ds__atomic_int waking; /* signals sent to sleepers that have not left the park yet (park_mu) */
  char pad_flags[64];
  ds__atomic_int draining; /* destroy began: no submits, queued user tasks are cancelled */
  ds__atomic_int stop;     /* workers exit */
  /* Tasks submitted and completed by threads that are not workers (each on its own line);
   * workers count theirs in their records, so no shared line is touched per task. */
  char pad_outside[64];
  ds__atomic_u64 outside_submitted;
  char pad_outside2[56];
  ds__atomic_u64 outside_completed;
  char pad_next_id[56];
  ds__atomic_u64 next_id;
  char pad_after[56];

  pthread_mutex_t tick_mu; /* one tick at a time; guards the predictor and tick state */
  ds__atomic_u64 last_tick_ns;
  ds__sched_predict_fn predict;
  void *predict_state;
  void (*predict_free)(ds_context *ctx, void *state); /* frees predict_state, or NULL */
  ds__ewma ewma;
  int (*migrate)(void *user, struct ds_task *t); /* ds__sched_migrate_fn, or NULL */
  void *migrate_user;
  double predicted;
  uint64_t tick_busy_ns, tick_wall_ns;

  struct ds__stripe stripes[DS__SCHED_STRIPES];

  uint64_t serial;           /* unique per scheduler of the process (task_pool.c) */
  struct ds__sched *live_next; /* the process's list of live schedulers (task_pool.c) */
  pthread_mutex_t pool_mu; /* guards pool and slabs (task_pool.c) */
  struct ds_task *pool;    /* free tasks, linked by qnext */
  struct ds__slab *slabs;
  ds__atomic_u64 nslabs;   /* slabs allocated (written under pool_mu, read by the tick) */
  ds__atomic_i64 pool_free; /* tasks in pool (written under pool_mu, read by the tick) */
  int64_t pool_low;         /* pool_free's minimum since the last trim check (pool_mu) */
  int trim_wait, trim_backoff; /* ticks before the next trim may run, and its factor (tick_mu) */

  ds__atomic_u64 preemptions, throttled_ticks, migrated, failovers, failover_tasks;
  struct {
    int run, steals, preempt, util, depth, predicted, low_cap, low_duty, done_stddev, migrated;
    int failovers, failover_tasks, pools_stalled, task_mem;
    int wait_p50[3], wait_p99[3];
    int wait_le[3][DS__SCHED_HIST_LE + 1], wait_sum[3]; /* sched.wait_ns.<class>.le_N/.sum */
  } stat;
};

/* The scheduler of ctx, started on first call; NULL with the error recorded on failure. The
 * check for a started one is inline: it is on every submit. */
struct ds__sched *ds__sched_start_lazy(ds_context *ctx);
static inline struct ds__sched *ds__sched_get(ds_context *ctx) {
  struct ds__sched *s = ds__load(&ctx->sched);
  return DS__LIKELY(s != NULL) ? s : ds__sched_start_lazy(ctx);
}
struct ds__stripe *ds__stripe_of(struct ds__sched *s, const void *p);

/* The worker the calling thread is, and the task it runs (NULL outside). */
extern _Thread_local struct ds__worker *ds__tl_worker;
extern _Thread_local struct ds_task *ds__tl_task;
/* The calling thread's worker record in s (the helper slot included), NULL if none. */
static inline struct ds__worker *ds__sched_self(const struct ds__sched *s) {
  struct ds__worker *w = ds__tl_worker;
  return w && w->s == s ? w : NULL;
}

/* Counts a task submitted or completed by the calling thread (inline: twice per task). See
 * ds__sched_live in sched.c for why the worker's own counts are release stores. */
static inline void ds__sched_count_submit_n(struct ds__sched *s, uint64_t n) {
  struct ds__worker *w = ds__sched_self(s);
  if (w) ds__store(&w->submitted, ds__load_relaxed(&w->submitted) + n);
  else ds__fetch_add(&s->outside_submitted, n);
}
#define ds__sched_count_submit(s) ds__sched_count_submit_n((s), 1)
/* Tells a destroy waiting for the last task (sched.c). */
void ds__sched_drain_notify(struct ds__sched *s);
static inline void ds__sched_count_complete(struct ds__sched *s) {
  struct ds__worker *w = ds__sched_self(s);
  if (w) ds__store(&w->completed, ds__load_relaxed(&w->completed) + 1);
  else ds__fetch_add(&s->outside_completed, 1);
  if (DS__UNLIKELY(ds__load(&s->draining))) ds__sched_drain_notify(s);
}
/* Tasks submitted and not yet completed (0 exactly when none is live; see sched.c). */
int64_t ds__sched_live(struct ds__sched *s);

/* Queues a READY task (holding a ref for the queue entry) and wakes a worker if one sleeps. */
void ds__sched_enqueue(struct ds__sched *s, struct ds_task *t, int worker_hint);
/* The same for a task no other thread can see yet (its refs raised without an atomic RMW). */
void ds__sched_enqueue_new(struct ds__sched *s, struct ds_task *t, int worker_hint);
/* Queues t without waking anyone (the caller wakes once for several); the caller has already
 * raised t's refs for the queue entry. */
void ds__sched_enqueue_owned(struct ds__sched *s, struct ds_task *t, int worker_hint);
/* Takes the next entry this worker should run (it may be a cancelled one); NULL if none. */
struct ds_task *ds__sched_next(ds__worker *w);
/* Runs a popped queue entry on the calling worker (or completes/drops it) and drops the
 * queue's ref. */
void ds__sched_run_entry(ds__worker *w, struct ds_task *t);
int64_t ds__sched_normal_queued(struct ds__sched *s);
/* Nonzero while something a worker could start now is queued. */
int ds__sched_runnable(struct ds__sched *s);
void ds__sched_wake(struct ds__sched *s);
/* Wakes a reserved worker (if one sleeps) and any other sleeper, for queued URGENT work. */
void ds__sched_wake_urgent(struct ds__sched *s);
void ds__sched_maybe_tick(struct ds__sched *s);

/* pool.c: the pool an outside NORMAL task goes to, and the stall watchdog (from the tick). */
ds__pool *ds__sched_route(struct ds__sched *s, uint64_t id);
void ds__sched_watchdog(struct ds__sched *s, uint64_t now);
int ds__sched_pools_stalled(struct ds__sched *s);

/* numa.c: the worker for a NORMAL task whose data is at @p data (-1: no preference), and
 * the choice itself: a worker on @p node, @p self if it is one, else the rotor-th of them
 * (reserved workers excluded); -1 if none. */
void ds__sched_numa_init(struct ds__sched *s);
int ds__sched_worker_for_data(struct ds__sched *s, const void *data);
/* The worker for a NORMAL task with device hint dev into *worker (-1: no preference: dev is
 * -1, or its node is unknown, or the machine has one node). DS_ERR_INVALID_ARG (recorded) if
 * dev is below -1 or not a fabric device. */
ds_status ds__sched_worker_for_device(struct ds__sched *s, int32_t dev, int *worker);
/* Binds worker w's record to its node (called by w after binding); sets w->record_node. */
void ds__sched_place_record(ds__worker *w);
int ds__sched_place(const int *worker_node, const int *reserved, int nworkers, int node,
                    unsigned rotor, int self);

/* task_pool.c: task memory (see there). ds__pool_fini frees every task at once. */
void ds__pool_init(struct ds__sched *s);
void ds__pool_fini(struct ds__sched *s);
/* DS__TASK_ZEROED bytes zeroed; NULL if out of memory */
struct ds_task *ds__task_alloc(struct ds__sched *s);
void ds__task_free(struct ds__sched *s, struct ds_task *t);
/* From the tick (under tick_mu): frees the slabs whose tasks are all in the shared pool,
 * keeping DS__POOL_KEEP free tasks there. */
#define DS__POOL_KEEP 1024
void ds__pool_trim(struct ds__sched *s);
/* Bytes of task memory held (slabs), for the sched.task_mem_bytes gauge. */
uint64_t ds__pool_bytes(struct ds__sched *s);
/* A worker about to park hands its free list to the shared pool (so that an idle context's
 * slabs can be trimmed); it takes a batch back when it next submits. */
void ds__pool_park(ds__worker *w);
/* A task id for the calling thread outside the pool, from its own block of ids of s. */
#define DS__ID_BLOCK 256
uint64_t ds__sched_outside_id(struct ds__sched *s);

/* task.c */
void ds__task_finish(struct ds_task *t, ds_status st, int why);
/* The same for a task finished by the worker that ran it: its life ref is kept, and the caller
 * drops it together with the queue entry's (ds__task_unref_n(t, 2): one RMW, or none for the
 * last refs). The solo form also skips what no other thread can see (see ds_task.solo). */
void ds__task_finish_kept(struct ds_task *t, ds_status st, int why);
void ds__task_finish_solo(struct ds_task *t, ds_status st, int why);
/* Drops n refs the caller holds; frees t at zero. When they are the last ones (a load sees
 * exactly n), no other thread can take a ref any more (only holders do), so no RMW is needed. */
void ds__task_unref_n(struct ds_task *t, int n);
/* Subtracts the group weight worker w holds back (see struct ds_task_group); w is a worker
 * thread's own record. */
void ds__group_flush_slow(ds__worker *w);
static inline void ds__group_flush(ds__worker *w) {
  if (w->gowed != 0) ds__group_flush_slow(w);
}
#define ds__task_unref(t) ds__task_unref_n((t), 1)

/* LOW migration hook: offered, from the scheduler tick, a LOW task that the throttle keeps
 * waiting (as many LOW tasks run as the cap allows). Returning 1 takes it: the hook runs
 * t->fn(t->arg) elsewhere and then calls ds__sched_migrated_done(t, status) from any thread
 * (context destroy waits for that). Returning 0 leaves it queued. Called under tick_mu; it
 * must not block. NULL fn removes the hook. */
typedef int (*ds__sched_migrate_fn)(void *user, struct ds_task *t);
void ds__sched_set_migrate_hook(ds_context *ctx, ds__sched_migrate_fn fn, void *user);
void ds__sched_migrated_done(struct ds_task *t, ds_status st);
void ds__sched_migrate_tick(struct ds__sched *s);

/* "Complete later" (detach.c). Called by a task's function on its worker: the task does not
 * complete when the function returns, but when someone calls ds__task_complete(t, st) (any
 * thread, exactly once, possibly before the function has returned: the task then completes
 * when the function returns, so successors never overlap any part of it). The worker is free
 * as soon as the function returns; successors, groups, waiters and on_done see the task done
 * only then. Returns the task, or NULL outside a scheduler task (or inside a core work item),
 * where nothing is detached. The task must be completed before its context is destroyed. */
struct ds_task *ds__task_detach(void);
void ds__task_complete(struct ds_task *t, ds_status st);
/* The worker, after a detached task's function returned. */
void ds__task_detached_returned(struct ds_task *t);

/* Replaces the load predictor (NULL restores the EWMA). For the predict module and tests. */
void ds__sched_set_predictor(ds_context *ctx, ds__sched_predict_fn fn, void *state);
/* The same, and the scheduler frees @p state with @p free_fn when it is replaced or at destroy. */
ds_status ds__sched_set_predictor_owned(ds_context *ctx, ds__sched_predict_fn fn, void *state,
                                        void (*free_fn)(ds_context *ctx, void *state));
/* Current LOW limits (after throttling), for tests. */
void ds__sched_low_limits(ds_context *ctx, int *cap, int *duty_pct, double *predicted);

#endif /* DS_SCHED_INTERNAL_H */
