/* The MPI endpoint's lifetime (MPI initialisation, communicator, collective shutdown) and its
 * progress thread: the one thread that calls MPI under MPI_THREAD_SERIALIZED (under MULTIPLE
 * calling threads also send control messages, fetch and push themselves, with the progress
 * thread completing or failing what they leave). It sends what other threads queue, receives
 * control messages, completes data transfers, sends heartbeats, declares silent ranks dead and
 * enforces deadlines, so that no caller ever blocks inside MPI. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi_internal.h"

/* MPI can be initialised once per process: who did it, and how many endpoints use it. */
static pthread_mutex_t ds__mpi_proc_mu = PTHREAD_MUTEX_INITIALIZER;
static int ds__mpi_users, ds__mpi_we_inited, ds__mpi_finalize_wanted;
static int ds__mpi_peer_died; /* MPI_Finalize could wait for the dead rank forever: skip it */

void ds__mpi_hdr_init(ds__mpi_hdr *h, int type) {
  memset(h, 0, sizeof *h);
  h->magic = DS__MPI_MAGIC;
  h->type = (uint16_t)type;
}

uint64_t ds__mpi_deadline(ds_mpi *m, int64_t timeout_ms) {
  if (timeout_ms < 0) timeout_ms = ds__param(m->ctx, DS_PARAM_MPI_TIMEOUT_MS);
  return ds__now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static void ds__abs_time(struct timespec *ts, uint64_t mono_deadline_ns) {
  /* The condition variables use CLOCK_MONOTONIC (set in create). */
  ts->tv_sec = (time_t)(mono_deadline_ns / 1000000000u);
  ts->tv_nsec = (long)(mono_deadline_ns % 1000000000u);
}

/* ---------------------------------------------------------------- queues (any thread) */

void ds__mpi_op_submit(ds_mpi *m, ds__mpi_op *op) {
  pthread_mutex_lock(&m->mu);
  if (!op->present) op->id = ++m->next_op;
  m->outstanding++;
  op->next = m->submitted;
  m->submitted = op;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->mu);
}

void ds__mpi_op_finish(ds_mpi *m, ds__mpi_op *op, ds_status st, const char *msg) {
  pthread_mutex_lock(&m->mu);
  op->status = st;
  if (msg) snprintf(op->msg, sizeof op->msg, "%s", msg);
  ds__store(&op->done, 1);
  m->outstanding--;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

void ds__mpi_direct_fail(ds_mpi *m, uint64_t id, int32_t peer, ds_status st, const char *msg) {
  pthread_mutex_lock(&m->mu);
  for (ds__mpi_op *op = m->direct; op; op = op->next) {
    if (ds__load(&op->done) || (peer >= 0 ? op->peer != peer : op->id != id)) continue;
    op->status = st;
    snprintf(op->msg, sizeof op->msg, "%s", msg);
    ds__store(&op->done, 1);
  }
  pthread_mutex_unlock(&m->mu);
}

void ds__mpi_op_over(ds_mpi *m) {
  pthread_mutex_lock(&m->mu);
  m->outstanding--;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

ds_status ds__mpi_op_wait(ds_mpi *m, ds__mpi_op *op, const char *what) {
  /* Small requests are answered in tens of microseconds: polling that long saves the wake-up
   * of a sleeping thread (~10 us) on each of them. */
  uint64_t spin_until = ds__now_ns() + 50000u;
  while (!ds__load(&op->done) && ds__now_ns() < spin_until) sched_yield();
  pthread_mutex_lock(&m->mu);
  while (!ds__load(&op->done)) pthread_cond_wait(&m->cv, &m->mu); /* deadlines: progress thread */
  pthread_mutex_unlock(&m->mu);
  ds_status st = op->status;
  if (st != DS_OK) ds__error(m->ctx, st, "mpi", "%s: %s", what, op->msg);
  ds__free(m->ctx, op);
  return st;
}

/* Starts s from the calling thread (MPI_THREAD_MULTIPLE) when no queued message precedes it
 * and the endpoint is not stopping (FIN must stay the last message); returns 0 to queue it.
 * send_mu keeps the progress thread's flush of the outbox and this send in one order. A small
 * message usually completes at the first test; else the progress thread completes it. */
static int ds__post_direct(ds_mpi *m, ds__mpi_send *s) {
  pthread_mutex_lock(&m->send_mu);
  pthread_mutex_lock(&m->mu);
  int queue = m->outbox || m->stop || m->peers[s->peer].dead;
  pthread_mutex_unlock(&m->mu);
  if (queue) {
    pthread_mutex_unlock(&m->send_mu);
    return 0;
  }
  int flag = 0;
  if (MPI_Isend(s->owned, (int)s->len, MPI_BYTE, s->peer, s->tag, m->comm, &s->req) !=
      MPI_SUCCESS) {
    ds__log(m->ctx, DS_LOG_WARN, "mpi", "MPI_Isend to rank %d failed", s->peer);
    flag = 1; /* dropped: the peer's silence or the op's deadline reports it */
  } else if (MPI_Test(&s->req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
    flag = 1;
  }
  if (!flag) {
    pthread_mutex_lock(&m->mu);
    s->next = m->started;
    m->started = s;
    pthread_mutex_unlock(&m->mu);
  }
  pthread_mutex_unlock(&m->send_mu);
  if (flag) {
    ds__free(m->ctx, s->owned);
    ds__free(m->ctx, s);
  }
  return 1;
}

ds_status ds__mpi_post(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h, const char *name,
                       const void *payload, size_t len) {
  size_t nlen = name ? strlen(name) : 0;
  ds__mpi_send *s = ds__calloc(m->ctx, 1, sizeof *s);
  char *buf = ds__alloc(m->ctx, sizeof *h + nlen + len);
  if (!s || !buf) {
    ds__free(m->ctx, s);
    ds__free(m->ctx, buf);
    return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for a message to rank %d", peer);
  }
  ds__mpi_hdr hh = *h;
  hh.name_len = (uint16_t)nlen;
  hh.payload_len = len;
  memcpy(buf, &hh, sizeof hh);
  if (nlen) memcpy(buf + sizeof hh, name, nlen);
  if (len) memcpy(buf + sizeof hh + nlen, payload, len);
  s->owned = buf;
  s->len = sizeof hh + nlen + len;
  s->peer = peer;
  s->tag = DS__MPI_TAG_CTRL;
  s->req = MPI_REQUEST_NULL;
  if (m->ctrl_direct && ds__post_direct(m, s)) return DS_OK;
  pthread_mutex_lock(&m->mu);
  s->next = m->outbox;
  m->outbox = s;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->mu);
  return DS_OK;
}

/* ---------------------------------------------------------------- progress thread */

/* Starts a non-blocking send; on failure the message is dropped (the peer's silence or the
 * op's deadline reports it). */
static void ds__start_send(ds_mpi *m, ds__mpi_send *s, const void *data) {
  int rc = MPI_Isend(data, (int)s->len, MPI_BYTE, s->peer, s->tag, m->comm, &s->req);
  if (rc != MPI_SUCCESS) {
    ds__log(m->ctx, DS_LOG_WARN, "mpi", "MPI_Isend to rank %d failed (%d)", s->peer, rc);
    s->req = MPI_REQUEST_NULL;
  }
  m->peers[s->peer].last_sent_ns = ds__now_ns();
  s->next = m->sends;
  m->sends = s;
}

void ds__mpi_send_data(ds_mpi *m, int32_t peer, int tag, ds__mpi_buf *b) {
  ds__mpi_send *s = ds__calloc(m->ctx, 1, sizeof *s);
  if (!s) { /* the requester times out */
    ds__mpi_buf_release(b);
    pthread_mutex_lock(&m->mu);
    b->inflight_sends--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return;
  }
  s->peer = peer;
  s->tag = tag;
  s->len = b->size;
  s->buf = b;
  ds__start_send(m, s, b->ptr);
}

static void ds__send_done(ds_mpi *m, ds__mpi_send *s) {
  if (s->buf) {
    ds__mpi_buf_release(s->buf);
    pthread_mutex_lock(&m->mu);
    s->buf->inflight_sends--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
  }
  ds__free(m->ctx, s->owned);
  ds__free(m->ctx, s);
}

static int ds__test_sends(ds_mpi *m) {
  int progressed = 0;
  for (ds__mpi_send **pp = &m->sends; *pp;) {
    ds__mpi_send *s = *pp;
    int flag = 1;
    if (s->req != MPI_REQUEST_NULL && MPI_Test(&s->req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      flag = 1; /* failed: nothing more will happen to it */
    if (!flag) {
      pp = &s->next;
      continue;
    }
    *pp = s->next;
    ds__send_done(m, s);
    progressed = 1;
  }
  return progressed;
}

static void ds__fail_fetch_recv(ds__mpi_op *op) {
  if (op->recv == MPI_REQUEST_NULL) return;
  MPI_Cancel(&op->recv);
  MPI_Wait(&op->recv, MPI_STATUS_IGNORE); /* a cancelled receive completes at once */
}

/* A graph transfer that will not complete: a receive is cancelled; a send to a dead or silent
 * peer is cancelled if MPI can, else left to MPI (its memory stays the caller's buffer). */
static void ds__cancel_xfer(ds__mpi_op *op) {
  if (op->recv == MPI_REQUEST_NULL) return;
  MPI_Cancel(&op->recv);
  int flag = 0;
  if (!op->xsend) {
    MPI_Wait(&op->recv, MPI_STATUS_IGNORE); /* a cancelled receive completes at once */
    return;
  }
  MPI_Test(&op->recv, &flag, MPI_STATUS_IGNORE);
  if (!flag) MPI_Request_free(&op->recv);
}

/* Completes a pending op with a failure: FETCH's receive is cancelled, a migrated TASK runs
 * locally instead when its rank died. */
static void ds__op_fail(ds_mpi *m, ds__mpi_op *op, ds_status st, const char *msg) {
  if (op->kind == DS__OP_XFER) {
    ds__cancel_xfer(op);
    if (op->xpush)
      ds__mpi_op_finish(m, op, st, msg);
    else
      ds__mpi_xfer_done(m, op, st, msg);
    return;
  }
  if (op->kind == DS__OP_FETCH) {
    ds__fail_fetch_recv(op);
    pthread_mutex_lock(&m->mu);
    op->buf->fetching = 0;
    pthread_mutex_unlock(&m->mu);
  } else if (op->call && !op->waited && !op->placed && st == DS_ERR_IO) {
    ds__mpi_task_failover(m, op);
    return;
  }
  if (op->waited)
    ds__mpi_op_finish(m, op, st, msg);
  else
    ds__mpi_on_task_done(m, op, msg, strlen(msg), st); /* migrated: completes the task */
}

/* Unlinks the pending op with this id, or NULL. */
static ds__mpi_op *ds__take_pending(ds_mpi *m, uint64_t id) {
  for (ds__mpi_op **pp = &m->pending; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id) {
      ds__mpi_op *op = *pp;
      *pp = op->next;
      return op;
    }
  return NULL;
}

/* A graph transfer: its data moves with its own tag, no request message is needed (both
 * ranks derived it from the same graph). */
static void ds__start_xfer(ds_mpi *m, ds__mpi_op *op) {
  if (op->recv != MPI_REQUEST_NULL) { /* posted by the transfer node's worker */
    if (op->xsend) m->peers[op->peer].last_sent_ns = ds__now_ns();
    op->next = m->pending;
    m->pending = op;
    return;
  }
  MPI_Comm c = op->xpush ? m->push_comm : m->comm;
  int rc = op->xsend ? MPI_Isend(op->xptr, (int)op->xlen, MPI_BYTE, op->peer, op->xtag, c,
                                 &op->recv)
                     : MPI_Irecv(op->xptr, (int)op->xlen, MPI_BYTE, op->peer, op->xtag, c,
                                 &op->recv);
  if (rc != MPI_SUCCESS) {
    char msg[96];
    op->recv = MPI_REQUEST_NULL;
    snprintf(msg, sizeof msg, "MPI error %d", rc);
    ds__op_fail(m, op, DS_ERR_IO, msg);
    return;
  }
  if (op->xsend) m->peers[op->peer].last_sent_ns = ds__now_ns();
  op->next = m->pending;
  m->pending = op;
}

static void ds__start_op(ds_mpi *m, ds__mpi_op *op) {
  char msg[160];
  /* A rank that said BYE still serves until every rank has: only the dead are refused. */
  if (m->peers[op->peer].dead) {
    snprintf(msg, sizeof msg, "rank %d is dead (not heard from)", op->peer);
    ds__op_fail(m, op, DS_ERR_IO, msg);
    return;
  }
  if (op->kind == DS__OP_XFER) {
    ds__start_xfer(m, op);
    return;
  }
  if (op->present) { /* its submitter sends the request */
    op->next = m->pending;
    m->pending = op;
    return;
  }
  if (op->kind == DS__OP_FETCH) {
    int tag = DS__MPI_TAG_DATA0 + (int)(op->id % DS__MPI_DATA_TAGS);
    op->hdr.b = op->buf->size;
    if (MPI_Irecv(op->buf->ptr, (int)op->buf->size, MPI_BYTE, op->peer, tag, m->comm,
                  &op->recv) != MPI_SUCCESS) {
      op->recv = MPI_REQUEST_NULL;
      snprintf(msg, sizeof msg, "MPI_Irecv from rank %d failed", op->peer);
      ds__op_fail(m, op, DS_ERR_IO, msg);
      return;
    }
  }
  op->hdr.id = op->id;
  if (ds__mpi_post(m, op->peer, &op->hdr, op->name, op->payload, op->payload_len) != DS_OK) {
    ds__op_fail(m, op, DS_ERR_NO_MEMORY, "no memory for the request");
    return;
  }
  op->next = m->pending;
  m->pending = op;
}

static int ds__start_queued(ds_mpi *m) {
  pthread_mutex_lock(&m->mu);
  ds__mpi_op *ops = m->submitted;
  m->submitted = NULL;
  pthread_mutex_unlock(&m->mu);
  int any = ops != NULL;
  while (ops) {
    ds__mpi_op *op = ops;
    ops = op->next;
    ds__start_op(m, op);
  }
  pthread_mutex_lock(&m->send_mu); /* until the outbox is sent: see ds__post_direct */
  pthread_mutex_lock(&m->mu);
  ds__mpi_send *lifo = m->outbox, *out = NULL, *started = m->started;
  m->outbox = m->started = NULL;
  pthread_mutex_unlock(&m->mu);
  while (started) { /* begun by other threads: completed here */
    ds__mpi_send *s = started;
    started = s->next;
    s->next = m->sends;
    m->sends = s;
  }
  while (lifo) { /* in posting order: an invalidation must not overtake what followed it */
    ds__mpi_send *s = lifo;
    lifo = s->next;
    s->next = out;
    out = s;
  }
  any |= out != NULL;
  while (out) {
    ds__mpi_send *s = out;
    out = s->next;
    if (m->peers[s->peer].dead) {
      ds__send_done(m, s);
      continue;
    }
    ds__start_send(m, s, s->owned);
  }
  pthread_mutex_unlock(&m->send_mu);
  return any;
}

static void ds__on_message(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h, char *body,
                           size_t blen) {
  ds__mpi_peer *p = &m->peers[peer];
  const char *name = body;
  char *payload = body + h->name_len;
  size_t plen = blen - h->name_len;
  switch (h->type) {
  case DS__MSG_HEARTBEAT:
    pthread_mutex_lock(&m->mu);
    p->load = h->load;
    p->backlog = (int64_t)h->a;
    p->workers = (int)h->b;
    pthread_mutex_unlock(&m->mu);
    break;
  case DS__MSG_BYE:
    pthread_mutex_lock(&m->mu);
    p->bye = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    break;
  case DS__MSG_FIN:
    p->fin = 1;
    break;
  case DS__MSG_BARRIER:
    pthread_mutex_lock(&m->mu);
    if (h->a > p->barrier_ts) p->barrier_ts = h->a;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    ds__mpi_bridge_publish(m, peer, h->a, 0);
    break;
  case DS__MSG_FETCH: ds__mpi_on_fetch(m, peer, h); break;
  case DS__MSG_GRAPH_DONE: ds__mpi_on_graph_done(m, peer, h); break;
  case DS__MSG_INVALIDATE: {
    pthread_mutex_lock(&m->mu);
    ds__mpi_buf *b = ds__mpi_buf_find(m, h->a);
    if (b && b->owner == peer) ds__mpi_buf_stale(b);
    pthread_mutex_unlock(&m->mu);
    break;
  }
  case DS__MSG_TASK:
    ds__mpi_on_task(m, peer, h, name, payload, plen);
    m->handed_off = 1; /* a worker was woken to run it */
    break;
  case DS__MSG_FETCH_ERR:
  case DS__MSG_TASK_DONE: {
    ds__mpi_op *op = ds__take_pending(m, h->id);
    if (!op) { /* a request its submitter sent may have been answered before it was listed */
      ds__start_queued(m);
      op = ds__take_pending(m, h->id);
    }
    if (!op && h->type == DS__MSG_FETCH_ERR) /* a fetching thread's own request, maybe */
      ds__mpi_direct_fail(m, h->id, -1, (ds_status)h->status, payload);
    if (!op) break; /* timed out meanwhile */
    m->handed_off = 1; /* its task or waiting thread is woken */
    if (h->type == DS__MSG_FETCH_ERR)
      ds__op_fail(m, op, (ds_status)h->status, payload);
    else
      ds__mpi_on_task_done(m, op, payload, plen, (ds_status)h->status);
    break;
  }
  default:
    ds__log(m->ctx, DS_LOG_WARN, "mpi", "unknown message type %u from rank %d", h->type, peer);
  }
}

/* Receives every control message that has arrived. Bodies are NUL-terminated for messages. */
static int ds__poll_incoming(ds_mpi *m) {
  int any = 0;
  for (int n = 0; n < 64; n++) {
    int flag = 0, count = 0;
    MPI_Message msg;
    MPI_Status stt;
    if (MPI_Improbe(MPI_ANY_SOURCE, DS__MPI_TAG_CTRL, m->comm, &flag, &msg, &stt) != MPI_SUCCESS ||
        !flag)
      break;
    MPI_Get_count(&stt, MPI_BYTE, &count);
    char *buf = ds__alloc(m->ctx, (size_t)count + 1);
    char dummy;
    if (MPI_Mrecv(buf ? buf : &dummy, buf ? count : 0, MPI_BYTE, &msg, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS || !buf) {
      ds__free(m->ctx, buf);
      continue;
    }
    buf[count] = '\0';
    any = 1;
    int peer = stt.MPI_SOURCE;
    if (peer >= 0 && peer < m->size && !m->peers[peer].dead) {
      m->peers[peer].last_heard_ns = ds__now_ns();
      ds__mpi_hdr h;
      if ((size_t)count >= sizeof h) {
        memcpy(&h, buf, sizeof h);
        if (h.magic == DS__MPI_MAGIC && h.name_len + h.payload_len == (size_t)count - sizeof h)
          ds__on_message(m, peer, &h, buf + sizeof h, (size_t)count - sizeof h);
        else
          ds__log(m->ctx, DS_LOG_WARN, "mpi", "malformed message from rank %d dropped", peer);
      }
    }
    ds__free(m->ctx, buf);
  }
  return any;
}

static int ds__test_fetches(ds_mpi *m) {
  int any = 0;
  for (ds__mpi_op **pp = &m->pending; *pp;) {
    ds__mpi_op *op = *pp;
    int flag = 0;
    if ((op->kind != DS__OP_FETCH && op->kind != DS__OP_XFER) || op->recv == MPI_REQUEST_NULL) {
      pp = &op->next;
      continue;
    }
    int rc = MPI_Test(&op->recv, &flag, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && !flag) {
      pp = &op->next;
      continue;
    }
    *pp = op->next;
    any = 1;
    char msg[96];
    snprintf(msg, sizeof msg, "MPI error %d with rank %d", rc, op->peer);
    if (op->kind == DS__OP_XFER && op->xpush) {
      ds__mpi_op_finish(m, op, rc == MPI_SUCCESS ? DS_OK : DS_ERR_IO, msg);
      continue;
    }
    if (op->kind == DS__OP_XFER) {
      m->handed_off = 1; /* the transfer node's successors become ready */
      ds__mpi_xfer_done(m, op, rc == MPI_SUCCESS ? DS_OK : DS_ERR_IO, msg);
      continue;
    }
    pthread_mutex_lock(&m->mu);
    op->buf->fetching = 0;
    op->buf->valid = rc == MPI_SUCCESS && !op->buf->stale; /* stale: the owner wrote meanwhile */
    op->buf->stale = 0;
    pthread_mutex_unlock(&m->mu);
    ds__mpi_op_finish(m, op, rc == MPI_SUCCESS ? DS_OK : DS_ERR_IO, rc == MPI_SUCCESS ? NULL : msg);
  }
  return any;
}

/* Fails every pending op on peer; peer -1: those past their deadline; -2: all. */
static void ds__fail_pending(ds_mpi *m, int32_t peer, uint64_t now, ds_status st,
                             const char *why) {
  for (ds__mpi_op **pp = &m->pending; *pp;) {
    ds__mpi_op *op = *pp;
    int hit = peer >= 0 ? op->peer == peer
                        : peer == -2 || (op->deadline_ns && now > op->deadline_ns);
    if (!hit) {
      pp = &op->next;
      continue;
    }
    *pp = op->next;
    char msg[160];
    snprintf(msg, sizeof msg, "rank %d %s", op->peer, why);
    ds__op_fail(m, op, st, msg);
  }
}

void ds__mpi_fail_xfers(ds_mpi *m, ds_status st, const char *msg) {
  for (ds__mpi_op **pp = &m->pending; *pp;) {
    ds__mpi_op *op = *pp;
    if (op->kind != DS__OP_XFER || op->xpush) { /* pushes are no part of a graph run */
      pp = &op->next;
      continue;
    }
    *pp = op->next;
    ds__op_fail(m, op, st, msg);
  }
}

static void ds__check_peers(ds_mpi *m, uint64_t now) {
  uint64_t dead_ns = (uint64_t)ds__param(m->ctx, DS_PARAM_MPI_DEAD_MS) * 1000000u;
  uint64_t hb_ns = (uint64_t)ds__param(m->ctx, DS_PARAM_MPI_HEARTBEAT_MS) * 1000000u;
  int load_known = 0;
  ds__mpi_hdr hb;
  for (int r = 0; r < m->size; r++) {
    ds__mpi_peer *p = &m->peers[r];
    if (r == m->rank || p->dead || p->fin) continue;
    if (now - p->last_heard_ns > dead_ns) {
      pthread_mutex_lock(&m->mu);
      p->dead = 1;
      m->dead_seen = 1;
      pthread_cond_broadcast(&m->cv);
      pthread_mutex_unlock(&m->mu);
      ds__log(m->ctx, DS_LOG_WARN, "mpi", "rank %d declared dead: nothing heard for %llu ms", r,
              (unsigned long long)((now - p->last_heard_ns) / 1000000u));
      ds__mpi_bridge_publish(m, r, 0, 1);
      char why[96];
      snprintf(why, sizeof why, "died (nothing heard for %llu ms)",
               (unsigned long long)((now - p->last_heard_ns) / 1000000u));
      ds__fail_pending(m, r, now, DS_ERR_IO, why);
      char msg[160];
      snprintf(msg, sizeof msg, "rank %d %s", r, why);
      ds__mpi_direct_fail(m, 0, r, DS_ERR_IO, msg);
      continue;
    }
    if (m->fin_sent || now - p->last_sent_ns < hb_ns) continue;
    if (!load_known) {
      double load = 0;
      int64_t backlog = 0;
      int workers = 0;
      ds__mpi_local_load(m, &load, &backlog, &workers);
      ds__mpi_hdr_init(&hb, DS__MSG_HEARTBEAT);
      hb.load = load;
      hb.a = (uint64_t)backlog;
      hb.b = (uint64_t)workers;
      load_known = 1;
    }
    ds__mpi_post(m, r, &hb, NULL, NULL, 0);
    p->last_sent_ns = now; /* the post is sent on the next pass */
  }
}

static void ds__send_barrier(ds_mpi *m) {
  pthread_mutex_lock(&m->mu);
  int dirty = m->barrier_dirty;
  uint64_t ts = m->barrier_mine;
  m->barrier_dirty = 0;
  pthread_mutex_unlock(&m->mu);
  if (!dirty) return;
  ds__mpi_hdr h;
  ds__mpi_hdr_init(&h, DS__MSG_BARRIER);
  h.a = ts;
  for (int r = 0; r < m->size; r++)
    if (r != m->rank && !m->peers[r].dead) ds__mpi_post(m, r, &h, NULL, NULL, 0);
}

/* Between passes that found nothing to do. For DS_PARAM_MPI_SPIN_US after the last activity
 * the thread keeps polling; for the first 50 us of it without yielding (the next request of a
 * burst, or the next step of a rendezvous send, comes soon), unless the last activity woke a
 * local thread (a worker for a task another rank sent, the thread waiting for an answer): that
 * thread needs a core, and on a machine with few cores a poller that does not yield keeps it
 * off one (this cost a placed task's round trip two waits of 50 us). Then it sleeps on
 * 'wake' for DS_PARAM_MPI_POLL_US at a time. */
static void ds__idle(ds_mpi *m, uint64_t now, uint64_t last_active, int handed_off) {
  uint64_t spin_ns = (uint64_t)ds__param(m->ctx, DS_PARAM_MPI_SPIN_US) * 1000u;
  if (now - last_active < spin_ns) {
    if (handed_off || now - last_active > 50000u) sched_yield();
    return;
  }
  uint64_t poll_ns = (uint64_t)ds__param(m->ctx, DS_PARAM_MPI_POLL_US) * 1000u;
  struct timespec ts;
  ds__abs_time(&ts, now + poll_ns);
  pthread_mutex_lock(&m->mu);
  if (!m->submitted && !m->outbox) pthread_cond_timedwait(&m->wake, &m->mu, &ts);
  pthread_mutex_unlock(&m->mu);
}

/* Gives sends still in flight at stop a short grace, then abandons them (their peers are
 * dead or gone). */
static void ds__drain_sends(ds_mpi *m) {
  uint64_t until = ds__now_ns() + 1000000000u;
  ds__start_queued(m);
  while (m->sends && ds__now_ns() < until) {
    ds__test_sends(m);
    sched_yield();
  }
  while (m->sends) {
    ds__mpi_send *s = m->sends;
    m->sends = s->next;
    if (s->req != MPI_REQUEST_NULL) MPI_Request_free(&s->req);
    s->next = NULL;
    ds__send_done(m, s);
  }
}

/* The last phase of destroy. Messages on a freed communicator could reach the next one that
 * reuses its context id, so each rank ends with FIN, its last message to every rank (MPI keeps
 * the order between two ranks), and receives until every live rank's FIN has come. Returns 1
 * when the thread may exit. */
static int ds__finish(ds_mpi *m, uint64_t now) {
  pthread_mutex_lock(&m->mu);
  int stop = m->stop;
  pthread_mutex_unlock(&m->mu);
  if (!stop) return 0;
  if (!m->fin_sent) {
    ds__mpi_hdr h;
    ds__mpi_hdr_init(&h, DS__MSG_FIN);
    for (int r = 0; r < m->size; r++)
      if (r != m->rank && !m->peers[r].dead) ds__mpi_post(m, r, &h, NULL, NULL, 0);
    m->fin_sent = 1;
    m->fin_deadline = ds__mpi_deadline(m, -1);
    return 0;
  }
  if (now > m->fin_deadline) {
    ds__log(m->ctx, DS_LOG_WARN, "mpi", "destroy: not every rank said FIN in time");
    return 1;
  }
  for (int r = 0; r < m->size; r++)
    if (r != m->rank && !m->peers[r].dead && !m->peers[r].fin) return 0;
  return 1;
}

static void *ds__mpi_progress(void *arg) {
  ds_mpi *m = arg;
  uint64_t last_active = ds__now_ns();
  int handed_off = 0; /* since last_active */
  for (;;) {
    int active = ds__start_queued(m);
    active |= ds__poll_incoming(m);
    active |= ds__test_fetches(m);
    active |= ds__test_sends(m);
    uint64_t now = ds__now_ns();
    ds__fail_pending(m, -1, now, DS_ERR_TIMEOUT, "did not answer in time (DS_PARAM_MPI_TIMEOUT_MS)");
    ds__check_peers(m, now);
    if (ds__finish(m, now)) break;
    if (!m->fin_sent) ds__send_barrier(m);
    ds__mpi_sched_tick(m);
    if (active) { /* more may follow at once (a burst of requests): poll again without yielding */
      last_active = now;
      handed_off = m->handed_off;
      m->handed_off = 0;
    } else {
      ds__idle(m, now, last_active, handed_off);
    }
  }
  ds__start_queued(m);
  ds__fail_pending(m, -2, 0, DS_ERR_SHUTDOWN, "did not answer before shutdown");
  for (int r = 0; r < m->size; r++)
    ds__mpi_direct_fail(m, 0, r, DS_ERR_SHUTDOWN, "the endpoint is shutting down");
  ds__drain_sends(m);
  return NULL;
}

/* ---------------------------------------------------------------- create / destroy */

static ds_status ds__mpi_init_process(ds_context *ctx, int finalize, int *level, int *inited) {
  int initialized = 0, finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized)
    return ds__error(ctx, DS_ERR_STATE, "mpi", "MPI was already finalised in this process");
  MPI_Initialized(&initialized);
  *inited = 0;
  if (!initialized) {
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, level) != MPI_SUCCESS)
      return ds__error(ctx, DS_ERR_IO, "mpi", "MPI_Init_thread failed");
    ds__mpi_we_inited = 1;
    ds__mpi_finalize_wanted = finalize;
    *inited = 1;
  } else {
    MPI_Query_thread(level);
  }
  if (*level < MPI_THREAD_SERIALIZED)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "mpi",
                     "MPI gives thread level %d; the progress thread needs at least "
                     "MPI_THREAD_SERIALIZED (initialise MPI with MPI_Init_thread)", *level);
  return DS_OK;
}

static ds_status ds__mpi_open(ds_mpi *m, const ds_mpi_options *o) {
  pthread_mutex_lock(&ds__mpi_proc_mu);
  ds_status st = ds__mpi_init_process(m->ctx, o->finalize, &m->level, &m->inited_mpi);
  if (st == DS_OK) ds__mpi_users++;
  m->ctrl_direct = m->level >= MPI_THREAD_MULTIPLE;
  pthread_mutex_unlock(&ds__mpi_proc_mu);
  if (st != DS_OK) return st;
  if (MPI_Comm_dup(MPI_COMM_WORLD, &m->comm) != MPI_SUCCESS) {
    m->comm = MPI_COMM_NULL;
    return ds__error(m->ctx, DS_ERR_IO, "mpi", "MPI_Comm_dup(MPI_COMM_WORLD) failed");
  }
  MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
  /* Pushes match by buffer id as the tag: a communicator of their own keeps those tags apart
   * from the control, fetch and graph tags. */
  if (MPI_Comm_dup(MPI_COMM_WORLD, &m->push_comm) != MPI_SUCCESS) {
    m->push_comm = MPI_COMM_NULL;
    return ds__error(m->ctx, DS_ERR_IO, "mpi", "MPI_Comm_dup(MPI_COMM_WORLD) failed");
  }
  MPI_Comm_set_errhandler(m->push_comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(m->comm, &m->rank);
  MPI_Comm_size(m->comm, &m->size);
  int *ub = NULL, has_ub = 0;
  MPI_Comm_get_attr(m->comm, MPI_TAG_UB, &ub, &has_ub);
  m->tag_ub = has_ub && ub && *ub > DS__MPI_TAG_GRAPH0 ? *ub : 32767; /* 32767: MPI's minimum */
  return DS_OK;
}

static void ds__mpi_close_process(ds_mpi *m) {
  if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
  if (m->push_comm != MPI_COMM_NULL) MPI_Comm_free(&m->push_comm);
  pthread_mutex_lock(&ds__mpi_proc_mu);
  if (m->dead_seen) ds__mpi_peer_died = 1;
  if (--ds__mpi_users == 0 && ds__mpi_we_inited && ds__mpi_finalize_wanted) {
    if (ds__mpi_peer_died)
      ds__log(m->ctx, DS_LOG_WARN, "mpi", "MPI_Finalize skipped: a rank died, and Open MPI's "
              "finalize can wait for it forever");
    else
      MPI_Finalize();
  }
  pthread_mutex_unlock(&ds__mpi_proc_mu);
}

static ds_status ds__mpi_sync_init(ds_mpi *m) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int bad = pthread_mutex_init(&m->mu, NULL) || pthread_mutex_init(&m->send_mu, NULL) ||
            pthread_cond_init(&m->cv, &ca) ||
            pthread_cond_init(&m->wake, &ca);
  pthread_condattr_destroy(&ca);
  return bad ? ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "cannot create locks") : DS_OK;
}

ds_status ds_mpi_create(ds_mpi **out, ds_context *ctx, const ds_mpi_options *opts) {
  if (out) *out = NULL;
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_create: %s is NULL", out ? "ctx" : "out");
  ds_mpi_options o = DS_MPI_OPTIONS_INIT;
  if (opts) {
    if (opts->struct_size != sizeof o)
      return ds__error(ctx, DS_ERR_ABI, "mpi", "ds_mpi_create: struct_size %u unknown (expected %zu)",
                       opts->struct_size, sizeof o);
    o = *opts;
  }
  ds_mpi *m = ds__calloc(ctx, 1, sizeof *m);
  if (!m) return ds__error(ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for the endpoint");
  m->ctx = ctx;
  m->comm = m->push_comm = MPI_COMM_NULL;
  ds_status st = ds__mpi_sync_init(m);
  if (st != DS_OK) {
    ds__free(ctx, m);
    return st;
  }
  st = ds__mpi_open(m, &o);
  if (st == DS_OK && !(m->peers = ds__calloc(ctx, (size_t)m->size, sizeof *m->peers)))
    st = ds__error(ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for %d peers", m->size);
  if (st == DS_OK) {
    uint64_t now = ds__now_ns();
    for (int r = 0; r < m->size; r++) m->peers[r].last_heard_ns = now;
    if (o.migrate) ds__mpi_hook_install(m);
    if (pthread_create(&m->thread, NULL, ds__mpi_progress, m) != 0)
      st = ds__error(ctx, DS_ERR_NO_MEMORY, "mpi", "cannot start the progress thread");
  }
  if (st != DS_OK) {
    ds__mpi_hook_remove(m);
    ds__mpi_close_process(m);
    ds__free(ctx, m->peers);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    ds__free(ctx, m);
    return st;
  }
  *out = m;
  return DS_OK;
}

/* Waits under mu until done(m) or the deadline; returns done(m). */
static int ds__wait_until(ds_mpi *m, int (*done)(ds_mpi *), uint64_t deadline) {
  struct timespec ts;
  ds__abs_time(&ts, deadline);
  pthread_mutex_lock(&m->mu);
  int ok;
  while (!(ok = done(m)) && ds__now_ns() < deadline) pthread_cond_timedwait(&m->cv, &m->mu, &ts);
  pthread_mutex_unlock(&m->mu);
  return ok;
}

static int ds__own_ops_done(ds_mpi *m) {
  return m->outstanding == 0;
}

static int ds__all_bye(ds_mpi *m) {
  if (m->remote_running) return 0;
  for (int r = 0; r < m->size; r++)
    if (r != m->rank && !m->peers[r].dead && !m->peers[r].bye) return 0;
  return 1;
}

void ds_mpi_destroy(ds_mpi *m) {
  if (!m) return;
  ds_context *ctx = m->ctx;
  ds__mpi_hook_remove(m);
  uint64_t deadline = ds__mpi_deadline(m, -1);
  if (!ds__wait_until(m, ds__own_ops_done, deadline))
    ds__log(ctx, DS_LOG_WARN, "mpi", "destroy: requests still unanswered after the timeout");
  ds__mpi_hdr h;
  ds__mpi_hdr_init(&h, DS__MSG_BYE);
  for (int r = 0; r < m->size; r++)
    if (r != m->rank) ds__mpi_post(m, r, &h, NULL, NULL, 0);
  if (!ds__wait_until(m, ds__all_bye, ds__mpi_deadline(m, -1)))
    ds__log(ctx, DS_LOG_WARN, "mpi", "destroy: not every rank reached ds_mpi_destroy in time");
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_signal(&m->wake);
  pthread_mutex_unlock(&m->mu);
  pthread_join(m->thread, NULL);
  /* Tasks run for others may still be finishing (their answers are dropped). */
  pthread_mutex_lock(&m->mu);
  while (m->remote_running) pthread_cond_wait(&m->cv, &m->mu);
  pthread_mutex_unlock(&m->mu);
  ds__mpi_close_process(m);
  ds__mpi_bufs_free(m);
  ds__mpi_entries_free(m);
  ds__mpi_graph_free(m);
  while (m->outbox) { /* answers queued after the thread stopped */
    ds__mpi_send *s = m->outbox;
    m->outbox = s->next;
    ds__free(ctx, s->owned);
    ds__free(ctx, s);
  }
  ds__free(ctx, m->peers);
  pthread_cond_destroy(&m->wake);
  pthread_cond_destroy(&m->cv);
  pthread_mutex_destroy(&m->send_mu);
  pthread_mutex_destroy(&m->mu);
  ds__free(ctx, m);
}

int32_t ds_mpi_rank(const ds_mpi *m) { return m ? m->rank : -1; }
int32_t ds_mpi_size(const ds_mpi *m) { return m ? m->size : -1; }
int32_t ds_mpi_thread_level(const ds_mpi *m) { return m ? m->level : -1; }

int ds_mpi_rank_alive(ds_mpi *m, int32_t rank) {
  if (!m || rank < 0 || rank >= m->size) return 0;
  pthread_mutex_lock(&m->mu);
  int alive = !m->peers[rank].dead;
  pthread_mutex_unlock(&m->mu);
  return alive;
}
