/* Internal interface of the fabric's MPI transport: the endpoint, its peers, the wire format,
 * and the operations the calling threads hand to the progress thread (the only thread that
 * calls MPI after ds_mpi_create under MPI_THREAD_SERIALIZED; see transport.c for MULTIPLE). Shared by the files of src/fabric/mpi. */
#ifndef DS_FABRIC_MPI_INTERNAL_H
#define DS_FABRIC_MPI_INTERNAL_H

#include <mpi.h>
#include <stdio.h>
#include <time.h>

#include "internal.h"
#include "deepseek/fabric.h"
#include "deepseek/fabric_barrier.h"
#include "deepseek/fabric_mpi.h"

#define DS__MPI_TAG_CTRL 1
#define DS__MPI_TAG_DATA0 100 /* a fetch's data uses tag DATA0 + op id % DATA_TAGS */
#define DS__MPI_DATA_TAGS 20000
#define DS__MPI_TAG_GRAPH0 (DS__MPI_TAG_DATA0 + DS__MPI_DATA_TAGS) /* graph transfers, to MPI_TAG_UB */
#define DS__MPI_NAME_MAX 64
#define DS__MPI_MAGIC 0x44534d50u /* "DSMP" */

/* Control message types. */
enum {
  DS__MSG_HEARTBEAT = 1, /* a = LOW backlog; load = predicted load in percent */
  DS__MSG_BYE,           /* the sender reached ds_mpi_destroy */
  DS__MSG_FETCH,         /* id = op; a = buffer; b = size the requester expects */
  DS__MSG_FETCH_ERR,     /* id = op; status; payload = message */
  DS__MSG_TASK,          /* id = op; a = buffer (0 none); b = result cap; prio; name; payload = args */
  DS__MSG_TASK_DONE,     /* id = op; status; payload = result (or message when failed) */
  DS__MSG_BARRIER,       /* a = timestamp passed */
  DS__MSG_FIN,           /* the sender's last message on this communicator */
  DS__MSG_INVALIDATE,    /* a = buffer: the owner wrote it, drop the cached copy */
  DS__MSG_GRAPH_DONE     /* a = graph run number; status: the sender's part is over */
};

/* Every control message starts with this header, then name_len name bytes, then payload. */
typedef struct ds__mpi_hdr {
  uint32_t magic;
  uint16_t type;
  uint16_t name_len;
  int32_t status;
  int32_t prio;
  uint64_t id, a, b;
  double load;
  uint64_t payload_len;
} ds__mpi_hdr;

/* A buffer with an owner rank. Guarded by ds_mpi.mu. */
typedef struct ds__mpi_buf {
  uint64_t id;
  int32_t owner;
  size_t size;
  void *ptr;         /* owner: the memory; else the copy's landing area (maybe NULL) */
  int owned_copy;    /* ptr was allocated by the library */
  int valid;         /* the copy holds the owner's data */
  int fetching;      /* a fetch is in flight */
  int stale;         /* invalidated while a fetch was in flight: that copy may be old */
  int inflight_sends; /* owner: data sends not yet completed */
  int graph_written;  /* a graph run that writes it is running (its end drops the copies) */
  ds_buffer *dsbuf;  /* attached fabric buffer (ptr is its host replica), or NULL */
  int32_t cpu_dev;   /* the fabric device through which dsbuf's host replica is acquired */
  struct ds__mpi_buf *next;
} ds__mpi_buf;

typedef struct ds__mpi_entry {
  char name[DS__MPI_NAME_MAX];
  ds_mpi_task_fn fn;
  void *user;
  struct ds__mpi_entry *next;
} ds__mpi_entry;

/* Operation kinds awaiting an answer from a peer. */
enum { DS__OP_FETCH = 1, DS__OP_TASK, DS__OP_XFER };

struct ds__mpi_call_state;
struct ds__mpi_grun;
struct ds_task;

/* A request to a peer that waits for its answer. Created by a calling thread, owned by the
 * progress thread while pending; 'done' (under mu, with cv) hands it back. */
typedef struct ds__mpi_op {
  uint64_t id;
  int kind;
  int32_t peer;
  uint64_t deadline_ns;
  int waited;        /* a calling thread waits for it (else: a migrated or placed task,
                        completed by the progress thread) */
  int placed;        /* TASK placed on this peer explicitly: its local task is detached (not
                        holding a worker) and completed with the answer; never failed over */
  int present;       /* the request was sent by the submitting thread (id set before submit) */
  ds__atomic_int done; /* set under mu (waiters may also poll it without mu) */
  ds_status status;
  char msg[160];     /* failure detail */
  MPI_Request recv;  /* FETCH: the data receive; XFER: its send or receive; else NULL */
  ds__mpi_buf *buf;  /* FETCH */
  struct ds__mpi_call_state *call; /* TASK */
  ds__mpi_hdr hdr;   /* the request to send */
  const void *payload; /* not owned (its submitter keeps it alive); sent after the header */
  size_t payload_len;
  const char *name;
  /* XFER: one transfer of a distributed graph run (graph.c) */
  struct ds__mpi_grun *xrun;
  struct ds_task *xtask; /* the detached transfer node, completed with the transfer */
  void *xptr;
  size_t xlen;
  uint64_t xid;
  int xtag, xsend;
  int xpush;         /* XFER made by ds_mpi_buffer_send/recv (on push_comm), waited for */
  struct ds__mpi_op *next;
} ds__mpi_op;

/* An outgoing message not yet completed. */
typedef struct ds__mpi_send {
  MPI_Request req;
  void *owned;           /* freed on completion */
  ds__mpi_buf *buf;      /* owner data send: inflight_sends is decremented */
  size_t len;
  int32_t peer;
  int tag;
  struct ds__mpi_send *next;
} ds__mpi_send;

typedef struct ds__mpi_peer {
  uint64_t last_heard_ns, last_sent_ns;
  int dead, bye, fin;
  double load;        /* percent of its workers */
  int64_t backlog;    /* its LOW tasks waiting */
  int workers;        /* its scheduler's workers (0: not yet known) */
  int sent;           /* tasks migrated to it and not yet answered */
  uint64_t barrier_ts;
  uint64_t graph_done;   /* the last graph run whose part it finished */
  uint64_t graph_failed; /* the last graph run whose part failed (0: none) */
  ds_status graph_status; /* and how */
} ds__mpi_peer;

struct ds_mpi {
  ds_context *ctx;
  MPI_Comm comm;
  MPI_Comm push_comm; /* ds_mpi_buffer_send/recv's data only (tag: the buffer id) */
  int rank, size, level, inited_mpi, finalize;
  int ctrl_direct; /* MPI_THREAD_MULTIPLE at create: posting threads send control messages
                      themselves (ds__mpi_post); fixed for the endpoint's life */
  ds__atomic_int hooked; /* the migration hook is installed; read by the progress thread */
  pthread_t thread;
  pthread_mutex_t mu; /* guards everything below that is not progress-thread-only */
  pthread_cond_t cv;  /* op completions, barrier and peer changes */
  pthread_cond_t wake; /* the progress thread's idle sleep */
  pthread_mutex_t send_mu; /* orders control sends: the progress thread's outbox flush and other
                              threads' direct sends (under MPI_THREAD_MULTIPLE); taken before mu */
  int stop;               /* destroy began its last phase: FIN, then the thread exits */
  int fin_sent;            /* progress thread only */
  int handed_off;          /* progress thread only: this pass woke a local thread (see ds__idle) */
  uint64_t fin_deadline;   /* progress thread only */
  uint64_t next_op;
  ds__mpi_op *submitted;  /* new ops for the progress thread (LIFO; order does not matter) */
  ds__mpi_op *pending;    /* progress thread: sent, awaiting an answer */
  ds__mpi_op *direct;     /* fetches whose calling thread makes its own MPI calls (under
                             MPI_THREAD_MULTIPLE); the progress thread only fails them */
  ds__mpi_send *outbox;   /* replies queued by other threads (progress thread sends them) */
  ds__mpi_send *started;  /* control sends begun by other threads and not yet completed: the
                             progress thread completes them */
  ds__mpi_send *sends;    /* progress thread: in flight */
  ds__mpi_peer *peers;
  ds__mpi_buf *bufs;
  ds__mpi_entry *entries;
  uint64_t barrier_mine;
  int barrier_dirty;
  ds_fabric_barrier *bridge; /* in-process barrier fed with ranks' timestamps, or NULL */
  uint32_t bridge_first;
  int remote_running;      /* tasks run for other ranks, not yet answered */
  int outstanding;         /* this rank's ops submitted and not yet done */
  uint64_t migrated, ran_for_others;
  int dead_seen;           /* a peer died: skip MPI_Finalize's wait on it */
  int tag_ub;              /* MPI_TAG_UB of comm */
  uint64_t graph_tag_next; /* graph runs (collective): tags used so far, the same everywhere */
  uint64_t graph_runs;     /* graph runs started (collective: the same everywhere) */
  ds_kernel *xfer_kernel;  /* graph runs' transfer nodes; created by the first run */
};

/* ---- transport.c ---- */
/* Hands a new op to the progress thread (which sends op->hdr + name + payload to op->peer,
 * unless op->present: then the submitter sends it after this call, with the id it set). */
void ds__mpi_op_submit(ds_mpi *m, ds__mpi_op *op);
/* Waits (bounded) until op is done; returns its status with the message recorded. Frees op. */
ds_status ds__mpi_op_wait(ds_mpi *m, ds__mpi_op *op, const char *what);
/* Sends a control message (copies header, name and payload) to rank peer. Any thread. Under
 * MPI_THREAD_MULTIPLE the calling thread starts the send itself when nothing is queued before
 * it (saving the progress thread's wake-up on a request's or an answer's path); otherwise, or
 * once the endpoint stops, it is queued for the progress thread. Messages to one rank leave
 * in the order of their posts either way. */
ds_status ds__mpi_post(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h, const char *name,
                       const void *payload, size_t len);
/* Progress thread: fails the direct fetch with this id (peer < 0), or every direct fetch
 * from peer (peer >= 0), with st and msg; its calling thread sees op->done. */
void ds__mpi_direct_fail(ds_mpi *m, uint64_t id, int32_t peer, ds_status st, const char *msg);
/* Marks a waited op done with st and message and wakes its waiter. */
void ds__mpi_op_finish(ds_mpi *m, ds__mpi_op *op, ds_status st, const char *msg);
/* One of this rank's ops is over (outstanding count, for destroy). */
void ds__mpi_op_over(ds_mpi *m);
/* Progress thread: sends buffer b's memory to peer with tag (owner side of a fetch); the
 * caller has counted it in b->inflight_sends. */
void ds__mpi_send_data(ds_mpi *m, int32_t peer, int tag, ds__mpi_buf *b);
uint64_t ds__mpi_deadline(ds_mpi *m, int64_t timeout_ms);
/* A direct op (made by its calling thread under MPI_THREAD_MULTIPLE) is listed in m->direct
 * so that the progress thread can fail it (death, refusal, shutdown): add returns 0 when its
 * peer is already dead (nothing listed); remove unlists it and returns op->status when the
 * progress thread failed it (its message copied to msg), else DS_OK. */
int ds__mpi_direct_add(ds_mpi *m, ds__mpi_op *op);
ds_status ds__mpi_direct_remove(ds_mpi *m, ds__mpi_op *op, char *msg, size_t cap); /* msg may be NULL */
/* The same under mu (link: the op gets its id; unlink: the waiters on cv are woken). */
int ds__mpi_direct_link(ds_mpi *m, ds__mpi_op *op);
ds_status ds__mpi_direct_unlink(ds_mpi *m, ds__mpi_op *op, char *msg, size_t cap);
/* Polls n requests of a direct op until all completed (DS_OK), the progress thread failed
 * the op (DS_ERR_STATE), the deadline (DS_ERR_TIMEOUT, msg set) or an MPI error (DS_ERR_IO);
 * busily for busy_ns, then yielding the CPU between polls. */
ds_status ds__mpi_direct_poll(ds__mpi_op *op, MPI_Request *rq, int *flag, int n,
                              uint64_t deadline, uint64_t busy_ns, char *msg, size_t cap);
/* How long a calling thread polls its own transfer busily (DS_PARAM_MPI_SPIN_US). */
uint64_t ds__mpi_busy_ns(ds_mpi *m);
void ds__mpi_hdr_init(ds__mpi_hdr *h, int type);

/* Progress thread: fails every pending graph transfer (a rank failed its part of the run). */
void ds__mpi_fail_xfers(ds_mpi *m, ds_status st, const char *msg);

/* ---- buffer.c ---- */
ds__mpi_buf *ds__mpi_buf_find(ds_mpi *m, uint64_t id); /* under mu */
/* Under mu: waits for another thread's fetch (or push receive) of buffer id; returns it still
 * registered, or NULL. */
ds__mpi_buf *ds__mpi_wait_other_fetch(ds_mpi *m, uint64_t id);
/* For an attached ds_buffer: acquires (mode) / releases its host replica; no-op for memory. */
ds_status ds__mpi_buf_acquire(ds_mpi *m, ds__mpi_buf *b, ds_access mode);
void ds__mpi_buf_release(ds__mpi_buf *b);
/* The same, retrying while the buffer is DS_ERR_BUSY until deadline (calling threads only). */
ds_status ds__mpi_buf_acquire_wait(ds_mpi *m, ds__mpi_buf *b, ds_access mode, uint64_t deadline);
/* Progress thread: a FETCH request arrived from peer. */
void ds__mpi_on_fetch(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h);
void ds__mpi_bufs_free(ds_mpi *m);

/* Under mu: the cached copy of b (not its owner's) is out of date. */
void ds__mpi_buf_stale(ds__mpi_buf *b);
/* The owner wrote b: tells every other live rank to drop its copy. */
void ds__mpi_buf_written(ds_mpi *m, ds__mpi_buf *b);

/* ---- graph.c ---- */
/* Progress thread: an XFER op ended with st; completes its transfer node and frees op. */
void ds__mpi_xfer_done(ds_mpi *m, ds__mpi_op *op, ds_status st, const char *msg);
void ds__mpi_graph_free(ds_mpi *m);
/* Progress thread: rank peer finished its part of graph run h->a with h->status. */
void ds__mpi_on_graph_done(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h);

/* ---- barrier.c ---- */
/* Passes rank r's timestamp ts (or, ts 0 and dead, its death) to the bridged barrier. */
void ds__mpi_bridge_publish(ds_mpi *m, int32_t r, uint64_t ts, int dead);

/* ---- task.c ---- */
void ds__mpi_on_task(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h, const char *name,
                     const void *args, size_t len);
/* Progress thread: a TASK op is answered (st DS_OK: payload is the result; else a message).
 * Completes the waiter's op or the migrated task, and frees a migrated task's op. */
void ds__mpi_on_task_done(ds_mpi *m, ds__mpi_op *op, const void *payload, size_t len,
                          ds_status st);
/* A migrated task's rank died: run it here (progress thread; must not block). */
void ds__mpi_task_failover(ds_mpi *m, ds__mpi_op *op);
void ds__mpi_hook_install(ds_mpi *m);
void ds__mpi_hook_remove(ds_mpi *m);
void ds__mpi_entries_free(ds_mpi *m);
/* The scheduler's tick, driven also by the progress thread (parked workers do not tick). */
void ds__mpi_sched_tick(ds_mpi *m);
/* This rank's load for heartbeats: predicted percent and LOW backlog. */
void ds__mpi_local_load(ds_mpi *m, double *load_pct, int64_t *backlog, int *workers);

#endif /* DS_FABRIC_MPI_INTERNAL_H */
