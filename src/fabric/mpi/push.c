/* Pushed transfers (ds_mpi_buffer_send / ds_mpi_buffer_recv): the owner sends a buffer to a
 * rank that expects it, with no request message. Both ranks know of the transfer (the same
 * program runs everywhere), so the data moves as one MPI_Isend matched by one MPI_Irecv —
 * the pattern a hand-written MPI program uses, at its cost. Under MPI_THREAD_MULTIPLE the
 * calling thread makes both MPI calls and polls them itself (no progress-thread hop); under
 * MPI_THREAD_SERIALIZED the progress thread makes them for it. Messages travel on a
 * communicator of their own with the buffer id as the tag, so a push never matches a fetch,
 * a control message or a graph transfer. */
#include <string.h>

#include "mpi_internal.h"

/* The tag of buffer id's pushes (MPI tags are 0..MPI_TAG_UB). */
static int push_tag(const ds_mpi *m, uint64_t id) {
  return (int)(id % ((uint64_t)m->tag_ub + 1u));
}

/* Ends a direct push whose request did not complete: a receive is cancelled; a send (to a
 * dead or silent rank) is cancelled if MPI can, else let go. */
static void push_cancel(MPI_Request *rq, int send) {
  int f = 0;
  MPI_Cancel(rq);
  if (!send) {
    MPI_Wait(rq, MPI_STATUS_IGNORE); /* a cancelled receive completes at once */
    return;
  }
  MPI_Test(rq, &f, MPI_STATUS_IGNORE);
  if (!f) MPI_Request_free(rq);
}

/* The transfer made by the calling thread (MPI_THREAD_MULTIPLE); op is listed in m->direct
 * (so that the progress thread can fail it: death, shutdown). */
static ds_status push_direct(ds_mpi *m, ds__mpi_op *op, char *msg, size_t cap) {
  MPI_Request rq = MPI_REQUEST_NULL;
  int flag = 1;
  ds_status st = DS_ERR_IO;
  int rc = op->xsend ? MPI_Isend(op->xptr, (int)op->xlen, MPI_BYTE, op->peer, op->xtag,
                                 m->push_comm, &rq)
                     : MPI_Irecv(op->xptr, (int)op->xlen, MPI_BYTE, op->peer, op->xtag,
                                 m->push_comm, &rq);
  if (rc == MPI_SUCCESS) {
    flag = 0;
    st = ds__mpi_direct_poll(op, &rq, &flag, 1, op->deadline_ns, ds__mpi_busy_ns(m), msg, cap);
  } else {
    snprintf(msg, cap, "MPI_I%s with rank %d failed", op->xsend ? "send" : "recv", op->peer);
  }
  if (!flag) push_cancel(&rq, op->xsend);
  return st;
}

/* The transfer made by the progress thread for this one (MPI_THREAD_SERIALIZED). */
static ds_status push_via_progress(ds_mpi *m, const ds__mpi_op *tmpl, const char *what) {
  ds__mpi_op *op = ds__calloc(m->ctx, 1, sizeof *op);
  if (!op) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "%s: no memory", what);
  *op = *tmpl;
  op->waited = 1;
  op->recv = MPI_REQUEST_NULL;
  ds__mpi_op_submit(m, op);
  return ds__mpi_op_wait(m, op, what); /* frees op */
}

static void push_op_init(ds_mpi *m, ds__mpi_op *op, const ds__mpi_buf *b, int32_t peer,
                         int send, int64_t timeout_ms) {
  memset(op, 0, sizeof *op);
  op->kind = DS__OP_XFER;
  op->xpush = 1;
  op->peer = peer;
  op->deadline_ns = ds__mpi_deadline(m, timeout_ms);
  op->xptr = b->ptr;
  op->xlen = b->size;
  op->xid = b->id;
  op->xtag = push_tag(m, b->id);
  op->xsend = send;
}

/* What a push is, for messages (made only when one is needed: formatting costs). */
static const char *push_what(const ds__mpi_op *op, char *buf, size_t cap) {
  snprintf(buf, cap, "%s of buffer %llu %s rank %d", op->xsend ? "send" : "receive",
           (unsigned long long)op->xid, op->xsend ? "to" : "from", op->peer);
  return buf;
}

/* Moves op's bytes once the buffer is claimed (listed: op is in m->direct, the calling
 * thread makes the MPI calls): acquires the attached buffer's host replica around it.
 * Returns the status with the error recorded, except when the progress thread failed the
 * direct op (*elsewhere = 1): the caller reads that status when it unlists op. */
static ds_status push_move(ds_mpi *m, ds__mpi_buf *b, ds__mpi_op *op, int listed,
                           int *elsewhere) {
  char what[96];
  ds_status st = ds__mpi_buf_acquire_wait(m, b, op->xsend ? DS_ACCESS_READ : DS_ACCESS_WRITE,
                                          op->deadline_ns);
  if (st != DS_OK) return st;
  if (listed) {
    char msg[160];
    st = push_direct(m, op, msg, sizeof msg);
    *elsewhere = st == DS_ERR_STATE;
    if (st != DS_OK && !*elsewhere)
      ds__error(m->ctx, st, "mpi", "%s: %s", push_what(op, what, sizeof what), msg);
  } else {
    st = push_via_progress(m, op, push_what(op, what, sizeof what));
  }
  ds__mpi_buf_release(b);
  return st;
}

/* Under mu: lists op for the calling thread's own MPI calls when MPI allows them. Returns 1
 * listed, 0 not (the progress thread will make them), -1 the peer is dead. */
static int push_list(ds_mpi *m, ds__mpi_op *op) {
  if (m->level < MPI_THREAD_MULTIPLE) return m->peers[op->peer].dead ? -1 : 0;
  return ds__mpi_direct_link(m, op) ? 1 : -1;
}

/* Under mu: unlists a direct op; returns @p st, or (elsewhere) the progress thread's failure
 * with its message in msg. */
static ds_status push_unlist(ds_mpi *m, ds__mpi_op *op, int listed, ds_status st, int elsewhere,
                             char *msg, size_t cap) {
  if (listed != 1) return st;
  ds_status failed = ds__mpi_direct_unlink(m, op, elsewhere ? msg : NULL, cap);
  return elsewhere ? failed : st;
}

ds_status ds_mpi_buffer_send(ds_mpi *m, uint64_t id, int32_t to, int64_t timeout_ms) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_send: m is NULL");
  ds__mpi_op op;
  int listed = 0;
  pthread_mutex_lock(&m->mu);
  ds__mpi_buf *b = ds__mpi_buf_find(m, id);
  int mine = b && b->owner == m->rank, ok = mine && to >= 0 && to < m->size && to != m->rank;
  if (ok) {
    b->inflight_sends++; /* keeps it registered until the send completes */
    push_op_init(m, &op, b, to, 1, timeout_ms);
    listed = push_list(m, &op);
  }
  pthread_mutex_unlock(&m->mu);
  if (!b)
    return ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "buffer %llu is not registered",
                     (unsigned long long)id);
  if (!ok)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "send of buffer %llu: %s (to rank %d)",
                     (unsigned long long)id, mine ? "the destination must be another rank in "
                     "range" : "only its owner sends it", to);
  char what[96], msg[160] = "";
  int elsewhere = 0;
  ds_status st = listed < 0 ? DS_ERR_IO : push_move(m, b, &op, listed == 1, &elsewhere);
  pthread_mutex_lock(&m->mu);
  st = push_unlist(m, &op, listed, st, elsewhere, msg, sizeof msg);
  b->inflight_sends--;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (listed < 0 || elsewhere)
    ds__error(m->ctx, st, "mpi", "%s: %s", push_what(&op, what, sizeof what),
              listed < 0 ? "the rank is dead (not heard from)" : msg);
  return st;
}

/* Under mu: claims buffer id for a push receive (as a fetch does), or says why not. */
static ds_status recv_claim(ds_mpi *m, uint64_t id, ds__mpi_buf **out) {
  ds__mpi_buf *b = ds__mpi_wait_other_fetch(m, id);
  *out = b;
  if (!b) return DS_ERR_NOT_FOUND;
  if (b->owner == m->rank) return DS_ERR_INVALID_ARG;
  if (!b->ptr) {
    b->ptr = ds__alloc(m->ctx, b->size);
    b->owned_copy = b->ptr != NULL;
  }
  if (!b->ptr) return DS_ERR_NO_MEMORY;
  b->fetching = 1;
  b->valid = 0; /* being overwritten */
  return DS_OK;
}

ds_status ds_mpi_buffer_recv(ds_mpi *m, uint64_t id, const void **data, int64_t timeout_ms) {
  if (data) *data = NULL;
  if (!m || !data)
    return ds__error(m ? m->ctx : NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_recv: %s is NULL",
                     m ? "data" : "m");
  ds__mpi_buf *b = NULL;
  ds__mpi_op op;
  int listed = 0;
  pthread_mutex_lock(&m->mu);
  ds_status st = recv_claim(m, id, &b);
  if (st == DS_OK) {
    push_op_init(m, &op, b, b->owner, 0, timeout_ms);
    listed = push_list(m, &op);
  }
  pthread_mutex_unlock(&m->mu);
  if (st != DS_OK)
    return ds__error(m->ctx, st, "mpi", "receive of buffer %llu: %s", (unsigned long long)id,
                     st == DS_ERR_NOT_FOUND ? "not registered"
                     : st == DS_ERR_NO_MEMORY ? "no memory for the copy"
                                              : "this rank owns it (its owner sends it)");
  char what[96], msg[160] = "";
  int elsewhere = 0;
  st = listed < 0 ? DS_ERR_IO : push_move(m, b, &op, listed == 1, &elsewhere);
  pthread_mutex_lock(&m->mu);
  st = push_unlist(m, &op, listed, st, elsewhere, msg, sizeof msg);
  b->valid = st == DS_OK && !b->stale; /* stale: the owner wrote meanwhile */
  b->stale = 0;
  b->fetching = 0;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (listed < 0 || elsewhere)
    ds__error(m->ctx, st, "mpi", "%s: %s", push_what(&op, what, sizeof what),
              listed < 0 ? "the rank is dead (not heard from)" : msg);
  if (st == DS_OK) *data = b->ptr;
  return st;
}
