/* Trace recorder: per-thread event buffers filled without a lock while a trace records, their
 * life cycle (start, stop, context destroy), and the hand-over to the JSON writer (trace_json.c).
 *
 * Stop versus a recorder in flight. Each buffer has a 'busy' flag that its thread raises around
 * one append. A recorder raises busy and then, after a seq_cst fence, checks 'recording' again;
 * stop clears 'recording' and then, after a seq_cst fence, waits for every buffer's busy flag to
 * drop. The two fences are totally ordered, so at least one side sees the other: either the
 * recorder sees recording == 0 and backs out without touching its buffer, or stop sees busy == 1
 * and waits for that one append to finish. After the wait no thread is inside any buffer, so stop
 * reads and resets them all with no lock on the recording path. The same argument covers a buffer
 * pushed onto the list after stop read it: its thread's check must then see recording == 0.
 * Where the kernel offers membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), the recorder's fence is
 * only a compiler fence and stop issues the process-wide barrier instead (an asymmetric fence):
 * stop is rare, recording is hot, and the full fence was a large part of an event's cost.
 * Buffer headers live until context destroy (a recorder may still hold a pointer to one after
 * stop); only their event chunks are freed at stop. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "trace_internal.h"

/* ---- the recording path: one relaxed load when off, no lock when on ---- */

static int ds__trace_on(const ds_context *ctx) {
  return ctx && ctx->trace && ds__load_relaxed(&ctx->trace->recording);
}

static void ds__trace_drop(const ds_context *ctx) { ds__fetch_add_relaxed(&ctx->trace->dropped, 1); }

static struct ds__trace_buf *ds__trace_buf_new(ds_context *ctx, struct ds__tls *t) {
  struct ds__trace_buf *b = ds__calloc(ctx, 1, sizeof *b);
  if (!b) return NULL;
  b->tid = (long)syscall(SYS_gettid);
  /* Lock-free push: the list only grows until context destroy. */
  void *head = ds__load(&ctx->trace->bufs);
  do {
    b->next = head;
  } while (!ds__cas(&ctx->trace->bufs, &head, (void *)b));
  t->trace_buf = b;
  return b;
}

/* Raises the calling thread's busy flag if a trace is still recording; NULL otherwise. */
static struct ds__trace_buf *ds__trace_enter(ds_context *ctx) {
  struct ds__tls *t = ds__tls_get(ctx);
  struct ds__trace_buf *b = t ? t->trace_buf : NULL;
  if (!b && (!t || !(b = ds__trace_buf_new(ctx, t)))) {
    ds__trace_drop(ctx);
    return NULL;
  }
  ds__store_relaxed(&b->busy, 1);
  /* pairs with the fence in ds_trace_stop(): see the file comment */
  if (DS__LIKELY(ctx->trace->asymmetric))
    ds__compiler_fence();
  else
    ds__fence_seq_cst();
  if (!ds__load(&ctx->trace->recording)) {
    ds__store(&b->busy, 0);
    return NULL;
  }
  return b;
}

static void ds__trace_leave(struct ds__trace_buf *b) { ds__store(&b->busy, 0); }

static ds__trace_chunk *ds__trace_chunk_new(ds_context *ctx, struct ds__trace_buf *b) {
  uint64_t room = ctx->trace->max_events - b->count;
  uint32_t cap = room < DS__TRACE_CHUNK_EVENTS ? (uint32_t)room : DS__TRACE_CHUNK_EVENTS;
  ds__trace_chunk *c = ds__alloc(ctx, sizeof *c + (size_t)cap * sizeof c->ev[0]);
  if (!c) return NULL;
  c->next = NULL;
  c->used = 0;
  c->cap = cap;
  if (!b->head) {
    /* First event of this trace on this thread: the thread may have been named since. */
    if (pthread_getname_np(pthread_self(), b->thread_name, sizeof b->thread_name) != 0)
      b->thread_name[0] = '\0';
    b->head = c;
  } else {
    b->tail->next = c;
  }
  b->tail = c;
  return c;
}

static void ds__trace_copy(char *dst, size_t cap, const char *src) {
  size_t n = src ? strnlen(src, cap - 1) : 0;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Appends one event, keeping room for the 'E' of every open span: a 'B' needs two free slots
 * (reserve = 2), anything else one, so an 'E' whose 'B' was kept is never dropped for lack of
 * space and the file stays balanced. Returns 1 if kept, 0 if dropped (and counted). */
static int ds__trace_push(ds_context *ctx, struct ds__trace_buf *b, char phase, const char *cat,
                          const char *name, uint64_t ts, uint64_t arg, unsigned reserve) {
  ds__trace_chunk *c = b->tail;
  if (b->count + b->depth + reserve > ctx->trace->max_events ||
      ((!c || c->used == c->cap) && !(c = ds__trace_chunk_new(ctx, b)))) {
    ds__trace_drop(ctx);
    return 0;
  }
  ds__trace_event *e = &c->ev[c->used++];
  b->count++;
  e->ts_ns = ts;
  e->arg = arg;
  e->phase = phase;
  ds__trace_copy(e->cat, sizeof e->cat, cat);
  ds__trace_copy(e->name, sizeof e->name, name);
  return 1;
}

static void ds__trace_record(ds_context *ctx, char phase, const char *cat, const char *name,
                             uint64_t ts, uint64_t arg) {
  struct ds__trace_buf *b = ds__trace_enter(ctx);
  if (!b) return;
  ds__trace_push(ctx, b, phase, cat, name, ts, arg, 1);
  ds__trace_leave(b);
}

void ds_trace_begin(ds_context *ctx, const char *category, const char *name) {
  if (!ds__trace_on(ctx)) return;
  struct ds__trace_buf *b = ds__trace_enter(ctx);
  if (!b) return;
  if (ds__trace_push(ctx, b, 'B', category, name, ds__now_ns(), 0, 2))
    b->depth++;
  else
    b->dropped_depth++; /* its 'E' is dropped too, so the pair stays matched */
  ds__trace_leave(b);
}

void ds_trace_end(ds_context *ctx) {
  if (!ds__trace_on(ctx)) return;
  struct ds__trace_buf *b = ds__trace_enter(ctx);
  if (!b) return;
  /* Spans dropped for lack of room are always the innermost ones (once a 'B' does not fit, no
   * later 'B' fits either), so they close first. */
  if (b->dropped_depth) {
    b->dropped_depth--;
    ds__trace_drop(ctx);
  } else if (b->depth) {
    b->depth--;
    ds__trace_push(ctx, b, 'E', NULL, NULL, ds__now_ns(), 0, 1);
  } /* else: no open span on this thread in this trace; ignored */
  ds__trace_leave(b);
}

void ds_trace_complete(ds_context *ctx, const char *category, const char *name,
                       uint64_t start_ns, uint64_t duration_ns) {
  if (!ds__trace_on(ctx)) return;
  ds__trace_record(ctx, 'X', category, name, start_ns, duration_ns);
}

void ds_trace_instant(ds_context *ctx, const char *category, const char *name) {
  if (!ds__trace_on(ctx)) return;
  ds__trace_record(ctx, 'i', category, name, ds__now_ns(), 0);
}

void ds_trace_counter(ds_context *ctx, const char *name, double value) {
  if (!ds__trace_on(ctx)) return;
  uint64_t bits;
  memcpy(&bits, &value, sizeof bits);
  ds__trace_record(ctx, 'C', NULL, name, ds__now_ns(), bits);
}

uint64_t ds_trace_now_ns(void) { return ds__now_ns(); }

int ds_trace_enabled(const ds_context *ctx) { return ds__trace_on(ctx) ? 1 : 0; }

uint64_t ds_trace_dropped(const ds_context *ctx) {
  return ctx && ctx->trace ? ds__load_relaxed(&ctx->trace->dropped) : 0;
}

/* ---- start and stop ---- */

static int ds__membarrier(int cmd) { return (int)syscall(SYS_membarrier, cmd, 0, 0); }

/* The stop side of the asymmetric fence: a full barrier on every running thread of the process. */
static void ds__trace_full_barrier(struct ds__trace *tr) {
  if (!tr->asymmetric || ds__membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
    ds__fence_seq_cst();
}

/* Opens a trace file named by the environment: the final component must not be a symbolic
 * link (O_NOFOLLOW), and an existing file must be a regular file of ours with one link, so a
 * planted link cannot make a process truncate someone else's file. Created 0600. NULL with
 * errno set (EPERM for a file that fails the checks). O_NONBLOCK: a FIFO without a reader
 * fails (ENXIO) instead of blocking context creation; a regular file ignores it. */
static FILE *ds__trace_open_checked(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
  if (fd < 0) return NULL;
  struct stat st;
  int e = EPERM;
  if (fstat(fd, &st) != 0) {
    e = errno;
  } else if (S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_nlink == 1) {
    FILE *f = ftruncate(fd, 0) == 0 ? fdopen(fd, "w") : NULL;
    if (f) return f;
    e = errno;
  }
  close(fd);
  errno = e;
  return NULL;
}

static ds_status ds__trace_start(ds_context *ctx, const char *path, int from_env);

ds_status ds_trace_start(ds_context *ctx, const char *path) {
  return ds__trace_start(ctx, path, 0);
}

static ds_status ds__trace_start(ds_context *ctx, const char *path, int from_env) {
  if (!ctx || !path || !*path)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "trace", "ds_trace_start: %s is NULL or empty",
                     ctx ? "path" : "ctx");
  struct ds__trace *tr = ctx->trace;
  if (!tr) return ds__error(ctx, DS_ERR_STATE, "trace", "the context has no trace recorder");
  pthread_mutex_lock(&tr->mu);
  ds_status st = DS_OK;
  char *copy = NULL;
  FILE *f = NULL;
  if (ds__load(&tr->recording)) {
    st = ds__error(ctx, DS_ERR_STATE, "trace", "already recording to %s", tr->path);
  } else if (!(copy = ds__strdup(ctx, path))) {
    st = ds__error(ctx, DS_ERR_NO_MEMORY, "trace", "cannot copy the path");
  } else if (!(f = from_env ? ds__trace_open_checked(path) : fopen(path, "we"))) {
    /* Opened now, kept until stop: an unwritable path fails here, not after a long run. */
    st = ds__error(ctx, DS_ERR_IO, "trace", "cannot open %s for writing: %s%s", path,
                   strerror(errno),
                   from_env ? " (DS_TRACE must name a regular file of this user with one link,"
                              " not a symbolic link)"
                            : "");
    ds__free(ctx, copy);
  } else {
    tr->out = f;
    tr->path = copy;
    tr->max_events = (uint64_t)ds__param(ctx, DS_PARAM_TRACE_MAX_EVENTS);
    ds__store_relaxed(&tr->dropped, 0);
    ds__store(&tr->recording, 1); /* publishes the fields above to recorders */
  }
  pthread_mutex_unlock(&tr->mu);
  return st;
}

/* Waits until no recorder is inside a buffer; 'recording' is already 0. */
static void ds__trace_quiesce(struct ds__trace_buf *bufs) {
  for (struct ds__trace_buf *b = bufs; b; b = b->next)
    while (ds__load(&b->busy)) sched_yield();
}

static void ds__trace_reset(ds_context *ctx, struct ds__trace_buf *bufs) {
  for (struct ds__trace_buf *b = bufs; b; b = b->next) {
    for (ds__trace_chunk *c = b->head, *next; c; c = next) {
      next = c->next;
      ds__free(ctx, c);
    }
    b->head = b->tail = NULL;
    b->count = 0;
    b->depth = b->dropped_depth = 0;
  }
}

ds_status ds_trace_stop(ds_context *ctx) {
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, "trace", "ds_trace_stop: ctx is NULL");
  struct ds__trace *tr = ctx->trace;
  if (!tr) return ds__error(ctx, DS_ERR_STATE, "trace", "the context has no trace recorder");
  pthread_mutex_lock(&tr->mu);
  if (!ds__load(&tr->recording)) {
    pthread_mutex_unlock(&tr->mu);
    return ds__error(ctx, DS_ERR_STATE, "trace", "ds_trace_stop: not recording");
  }
  ds__store_relaxed(&tr->recording, 0);
  ds__trace_full_barrier(tr); /* pairs with the fence in ds__trace_enter() */
  struct ds__trace_buf *bufs = ds__load(&tr->bufs);
  ds__trace_quiesce(bufs);

  ds_status st = ds__trace_write_json(ctx, tr->out, tr->path, bufs, ds__now_ns());
  tr->out = NULL; /* closed by the writer */
  ds__trace_reset(ctx, bufs);
  ds__free(ctx, tr->path);
  tr->path = NULL;
  pthread_mutex_unlock(&tr->mu);
  return st;
}

/* ---- context life cycle ---- */

ds_status ds__trace_create(ds_context *ctx) {
  struct ds__trace *tr = ds__calloc(ctx, 1, sizeof *tr);
  if (!tr) return ds__error(ctx, DS_ERR_NO_MEMORY, "trace", "cannot allocate the trace recorder");
  pthread_mutex_init(&tr->mu, NULL);
  /* Registration is per process and idempotent; without it (old kernel, seccomp) recorders
   * keep their own full fence. */
  tr->asymmetric = ds__membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
  ctx->trace = tr;
  const char *path = (ctx->flags & DS_CONTEXT_NO_ENV) ? NULL : secure_getenv("DS_TRACE");
  /* A trace is a diagnostic: a bad DS_TRACE path is worth a warning, not a failed creation. */
  if (path && *path && ds__trace_start(ctx, path, 1) != DS_OK)
    ds__log(ctx, DS_LOG_WARN, "trace", "DS_TRACE ignored: %s", ds_context_last_error(ctx));
  return DS_OK;
}

void ds__trace_destroy(ds_context *ctx) {
  struct ds__trace *tr = ctx->trace;
  if (!tr) return;
  if (ds__load(&tr->recording) && ds_trace_stop(ctx) != DS_OK)
    ds__log(ctx, DS_LOG_WARN, "trace", "trace lost at destroy: %s", ds_context_last_error(ctx));
  struct ds__trace_buf *bufs = ds__load(&tr->bufs);
  ds__trace_reset(ctx, bufs);
  for (struct ds__trace_buf *b = bufs, *next; b; b = next) {
    next = b->next;
    ds__free(ctx, b);
  }
  pthread_mutex_lock(&ctx->tls_mu);
  for (struct ds__tls *t = ctx->tls_list; t; t = t->next) t->trace_buf = NULL;
  pthread_mutex_unlock(&ctx->tls_mu);
  pthread_mutex_destroy(&tr->mu);
  ds__free(ctx, tr);
  ctx->trace = NULL;
}
