/* Buffers with an owner rank: registration, fetching a cached copy from the owner (the data
 * goes straight from the owner's memory into the copy) and flushing copies. */
#include <sched.h>
#include <string.h>

#include "mpi_internal.h"
#include "fabric/fabric_internal.h"

ds__mpi_buf *ds__mpi_buf_find(ds_mpi *m, uint64_t id) {
  for (ds__mpi_buf *b = m->bufs; b; b = b->next)
    if (b->id == id) return b;
  return NULL;
}

ds_status ds__mpi_buf_acquire(ds_mpi *m, ds__mpi_buf *b, ds_access mode) {
  void *p = NULL;
  if (!b->dsbuf) return DS_OK;
  ds_status st = ds_buffer_acquire(&p, b->dsbuf, b->cpu_dev, mode);
  if (st != DS_OK) return st;
  if (p != b->ptr) { /* a CPU device uses the host replica: this cannot happen */
    ds_buffer_release(b->dsbuf, b->cpu_dev);
    return ds__error(m->ctx, DS_ERR_INTERNAL, "mpi", "buffer %llu: host replica moved",
                     (unsigned long long)b->id);
  }
  return DS_OK;
}

void ds__mpi_buf_release(ds__mpi_buf *b) {
  if (b->dsbuf) ds_buffer_release(b->dsbuf, b->cpu_dev);
}

static ds_status ds__buf_add(ds_mpi *m, uint64_t id, int32_t owner, void *ptr, size_t size,
                             ds_buffer *dsbuf, int32_t cpu_dev);

/* Tells every other live rank to drop its copy of buffer id. */
static void ds__post_invalidate(ds_mpi *m, uint64_t id) {
  ds__mpi_hdr h;
  ds__mpi_hdr_init(&h, DS__MSG_INVALIDATE);
  h.a = id;
  /* Sent on the control channel, so it reaches each rank before anything this rank sends
   * later (a barrier arrival, say): a fetch after that sees the write. */
  for (int r = 0; r < m->size; r++)
    if (r != m->rank && ds_mpi_rank_alive(m, r)) (void)ds__mpi_post(m, r, &h, NULL, NULL, 0);
}

/* The fabric's write hook of an attached buffer this rank owns: a WRITE or RW acquire of it
 * was released, so other ranks' copies are old. Skipped while a graph run that writes the
 * buffer runs: it drops those copies on every rank at its end without messages. */
static void ds__on_owner_write(void *arg, ds_buffer *buf) {
  ds_mpi *m = arg;
  pthread_mutex_lock(&m->mu);
  ds__mpi_buf *b = m->bufs;
  while (b && b->dsbuf != buf) b = b->next;
  uint64_t id = b && b->owner == m->rank && !b->graph_written ? b->id : 0;
  pthread_mutex_unlock(&m->mu);
  if (id) ds__post_invalidate(m, id);
}

/* Unhooks an attached buffer this rank owns (before its registration goes). */
static void ds__buf_unhook(ds_mpi *m, ds__mpi_buf *b) {
  if (b->dsbuf && b->owner == m->rank) ds__buffer_set_write_hook(b->dsbuf, NULL, NULL);
}

ds_status ds_mpi_buffer_attach(ds_mpi *m, uint64_t id, int32_t owner, ds_buffer *buf) {
  if (!m || !buf)
    return ds__error(m ? m->ctx : NULL, DS_ERR_INVALID_ARG, "mpi",
                     "ds_mpi_buffer_attach: %s is NULL", m ? "buf" : "m");
  int32_t cpu = -1;
  void *host = NULL;
  ds_status st = ds_fabric_device_find(&cpu, m->ctx, DS_FABRIC_DEVICE_CPU, 0);
  /* The host replica's address never changes: learn it once (READ moves nothing if valid). */
  if (st == DS_OK) st = ds_buffer_acquire(&host, buf, cpu, DS_ACCESS_READ);
  if (st != DS_OK)
    return ds__error(m->ctx, st, "mpi", "buffer %llu: cannot reach its host replica: %s",
                     (unsigned long long)id, ds_context_last_error(m->ctx));
  ds_buffer_release(buf, cpu);
  st = ds__buf_add(m, id, owner, host, ds_buffer_size(buf), buf, cpu);
  /* The owner's writes through the fabric (acquire WRITE/RW, then release) invalidate the
   * other ranks' copies by themselves. */
  if (st == DS_OK && owner == m->rank) ds__buffer_set_write_hook(buf, ds__on_owner_write, m);
  return st;
}

ds_status ds_mpi_buffer_register(ds_mpi *m, uint64_t id, int32_t owner, void *ptr, size_t size) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_register: m is NULL");
  if (id == 0 || size == 0 || owner < 0 || owner >= m->size || size > (size_t)INT32_MAX)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi",
                     "buffer %llu: id must be nonzero, size in 1..2^31-1 (got %zu) and owner a "
                     "rank in 0..%d (got %d)", (unsigned long long)id, size, m->size - 1, owner);
  if (owner == m->rank && !ptr)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi",
                     "buffer %llu: this rank owns it, so ptr (its memory) must not be NULL",
                     (unsigned long long)id);
  return ds__buf_add(m, id, owner, ptr, size, NULL, -1);
}

static ds_status ds__buf_add(ds_mpi *m, uint64_t id, int32_t owner, void *ptr, size_t size,
                             ds_buffer *dsbuf, int32_t cpu_dev) {
  if (id == 0 || owner < 0 || owner >= m->size || size > (size_t)INT32_MAX)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "buffer %llu: bad id, owner or size",
                     (unsigned long long)id);
  ds__mpi_buf *b = ds__calloc(m->ctx, 1, sizeof *b);
  if (!b) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for buffer %llu",
                           (unsigned long long)id);
  b->id = id;
  b->owner = owner;
  b->size = size;
  b->ptr = ptr;
  b->dsbuf = dsbuf;
  b->cpu_dev = cpu_dev;
  b->valid = owner == m->rank;
  pthread_mutex_lock(&m->mu);
  int taken = ds__mpi_buf_find(m, id) != NULL;
  if (!taken) {
    b->next = m->bufs;
    m->bufs = b;
  }
  pthread_mutex_unlock(&m->mu);
  if (taken) {
    ds__free(m->ctx, b);
    return ds__error(m->ctx, DS_ERR_BUSY, "mpi", "buffer %llu is already registered",
                     (unsigned long long)id);
  }
  return DS_OK;
}

static void ds__buf_free(ds_mpi *m, ds__mpi_buf *b) {
  if (b->owned_copy) ds__free(m->ctx, b->ptr);
  ds__free(m->ctx, b);
}

ds_status ds_mpi_buffer_unregister(ds_mpi *m, uint64_t id) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_unregister: m is NULL");
  pthread_mutex_lock(&m->mu);
  ds__mpi_buf *b = ds__mpi_buf_find(m, id);
  /* Sends of the owner's memory and a fetch into the copy must end before it goes. */
  while (b && (b->inflight_sends || b->fetching)) {
    pthread_cond_wait(&m->cv, &m->mu);
    b = ds__mpi_buf_find(m, id);
  }
  if (b)
    for (ds__mpi_buf **pp = &m->bufs; *pp; pp = &(*pp)->next)
      if (*pp == b) {
        *pp = b->next;
        break;
      }
  pthread_mutex_unlock(&m->mu);
  if (!b) return ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "buffer %llu is not registered",
                           (unsigned long long)id);
  ds__buf_unhook(m, b);
  ds__buf_free(m, b);
  return DS_OK;
}

void ds__mpi_bufs_free(ds_mpi *m) {
  while (m->bufs) {
    ds__mpi_buf *b = m->bufs;
    m->bufs = b->next;
    ds__buf_unhook(m, b);
    ds__buf_free(m, b);
  }
}

ds__mpi_buf *ds__mpi_wait_other_fetch(ds_mpi *m, uint64_t id) {
  ds__mpi_buf *b = ds__mpi_buf_find(m, id);
  while (b && b->fetching) {
    pthread_cond_wait(&m->cv, &m->mu); /* that fetch's deadline bounds this */
    b = ds__mpi_buf_find(m, id);
  }
  return b;
}

static void ds__nap_us(long us) {
  struct timespec d = {0, us * 1000L};
  nanosleep(&d, NULL);
}

ds_status ds__mpi_buf_acquire_wait(ds_mpi *m, ds__mpi_buf *b, ds_access mode, uint64_t deadline) {
  ds_status st;
  while ((st = ds__mpi_buf_acquire(m, b, mode)) == DS_ERR_BUSY && ds__now_ns() < deadline)
    ds__nap_us(100); /* held by a transfer or a task: those end soon */
  return st;
}

/* Ends a direct fetch's requests that did not complete: the receive is cancelled; the
 * request's send (to a dead or silent owner) is cancelled if MPI can, else let go. */
static void ds__direct_cancel(MPI_Request *rq, const int *flag) {
  if (!flag[0]) {
    MPI_Cancel(&rq[0]);
    MPI_Wait(&rq[0], MPI_STATUS_IGNORE);
  }
  if (!flag[1]) {
    int f = 0;
    MPI_Cancel(&rq[1]);
    MPI_Test(&rq[1], &f, MPI_STATUS_IGNORE);
    if (!f) MPI_Request_free(&rq[1]);
  }
}

/* Polls a direct op's requests until all completed, the progress thread failed the op (the
 * owner refused, died, or the endpoint stops) or the deadline. Polls busily for busy_ns (as
 * MPI's own blocking calls do, which never yield: on a loaded machine a yield hands the core
 * to another process for a whole time slice, during which the answer waits), then yields the
 * CPU between polls. */
ds_status ds__mpi_direct_poll(ds__mpi_op *op, MPI_Request *rq, int *flag, int n,
                              uint64_t deadline, uint64_t busy_ns, char *msg, size_t cap) {
  uint64_t busy_until = 0; /* set at the first look at the clock: most transfers end before */
  for (unsigned spin = 1;; spin++) {
    int all = 1;
    for (int i = 0; i < n; i++) {
      if (!flag[i] && MPI_Test(&rq[i], &flag[i], MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        snprintf(msg, cap, "MPI error with rank %d", op->peer);
        return DS_ERR_IO;
      }
      all &= flag[i] != 0;
    }
    if (all) return DS_OK;
    if (ds__load(&op->done)) return DS_ERR_STATE; /* the status is op->status, under mu */
    if (spin % 16u) continue; /* reading the clock can cost more than a poll (VMs) */
    uint64_t now = ds__now_ns();
    if (!busy_until) busy_until = now + busy_ns;
    if (now > deadline) {
      snprintf(msg, cap, "rank %d did not answer in time (DS_PARAM_MPI_TIMEOUT_MS)", op->peer);
      return DS_ERR_TIMEOUT;
    }
    if (now > busy_until) sched_yield();
  }
}

uint64_t ds__mpi_busy_ns(ds_mpi *m) {
  return (uint64_t)ds__param(m->ctx, DS_PARAM_MPI_SPIN_US) * 1000u;
}

int ds__mpi_direct_link(ds_mpi *m, ds__mpi_op *op) {
  op->id = ++m->next_op;
  if (m->peers[op->peer].dead) return 0;
  m->outstanding++;
  op->next = m->direct;
  m->direct = op;
  return 1;
}

ds_status ds__mpi_direct_unlink(ds_mpi *m, ds__mpi_op *op, char *msg, size_t cap) {
  for (ds__mpi_op **pp = &m->direct; *pp; pp = &(*pp)->next)
    if (*pp == op) {
      *pp = op->next;
      break;
    }
  ds_status st = ds__load(&op->done) ? op->status : DS_OK;
  if (st != DS_OK && msg) snprintf(msg, cap, "%s", op->msg);
  m->outstanding--;
  pthread_cond_broadcast(&m->cv);
  return st;
}

int ds__mpi_direct_add(ds_mpi *m, ds__mpi_op *op) {
  pthread_mutex_lock(&m->mu);
  int alive = ds__mpi_direct_link(m, op);
  pthread_mutex_unlock(&m->mu);
  return alive;
}

ds_status ds__mpi_direct_remove(ds_mpi *m, ds__mpi_op *op, char *msg, size_t cap) {
  pthread_mutex_lock(&m->mu);
  ds_status st = ds__mpi_direct_unlink(m, op, msg, cap);
  pthread_mutex_unlock(&m->mu);
  return st;
}

/* One fetch made by the calling thread itself (MPI_THREAD_MULTIPLE): it posts the receive,
 * sends the request and polls both, so a small fetch costs about what a hand-written pull
 * does; the owner answers from its progress thread. The op sits in m->direct only so that the
 * progress thread can fail it (refusal, death, shutdown). */
static ds_status ds__fetch_direct(ds_mpi *m, ds__mpi_buf *b, uint64_t deadline) {
  ds__mpi_op *op = ds__calloc(m->ctx, 1, sizeof *op);
  if (!op) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory to fetch buffer %llu",
                            (unsigned long long)b->id);
  op->kind = DS__OP_FETCH;
  op->peer = b->owner;
  ds__mpi_hdr_init(&op->hdr, DS__MSG_FETCH);
  op->hdr.a = b->id;
  op->hdr.b = b->size;
  if (!ds__mpi_direct_add(m, op)) {
    ds__free(m->ctx, op);
    return ds__error(m->ctx, DS_ERR_IO, "mpi", "fetch of buffer %llu: rank %d is dead (not "
                     "heard from)", (unsigned long long)b->id, b->owner);
  }
  op->hdr.id = op->id;
  MPI_Request rq[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  int flag[2] = {1, 1};
  int tag = DS__MPI_TAG_DATA0 + (int)(op->id % DS__MPI_DATA_TAGS);
  ds_status st = DS_ERR_IO;
  char msg[160] = ""; /* op->msg belongs to the progress thread while op is listed */
  if (MPI_Irecv(b->ptr, (int)b->size, MPI_BYTE, op->peer, tag, m->comm, &rq[0]) == MPI_SUCCESS &&
      (flag[0] = 0, MPI_Isend(&op->hdr, (int)sizeof op->hdr, MPI_BYTE, op->peer, DS__MPI_TAG_CTRL,
                              m->comm, &rq[1]) == MPI_SUCCESS)) {
    flag[1] = 0;
    st = ds__mpi_direct_poll(op, rq, flag, 2, deadline, ds__mpi_busy_ns(m), msg, sizeof msg);
  } else {
    snprintf(msg, sizeof msg, "MPI_Irecv/MPI_Isend with rank %d failed", op->peer);
  }
  ds__direct_cancel(rq, flag);
  ds_status failed = ds__mpi_direct_remove(m, op, st == DS_ERR_STATE ? msg : NULL, sizeof msg);
  if (st == DS_ERR_STATE) st = failed; /* failed by the progress thread */
  pthread_mutex_lock(&m->mu);
  b->valid = st == DS_OK && !b->stale; /* stale: the owner wrote meanwhile */
  b->stale = 0;
  pthread_mutex_unlock(&m->mu);
  if (st != DS_OK)
    ds__error(m->ctx, st, "mpi", "fetch of buffer %llu: %s", (unsigned long long)b->id, msg);
  ds__free(m->ctx, op);
  return st;
}

/* One FETCH request to the owner, waited for. */
static ds_status ds__fetch_once(ds_mpi *m, ds__mpi_buf *b, uint64_t deadline) {
  if (m->level >= MPI_THREAD_MULTIPLE) return ds__fetch_direct(m, b, deadline);
  ds__mpi_op *op = ds__calloc(m->ctx, 1, sizeof *op);
  if (!op) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory to fetch buffer %llu",
                            (unsigned long long)b->id);
  op->kind = DS__OP_FETCH;
  op->waited = 1;
  op->peer = b->owner;
  op->buf = b;
  op->recv = MPI_REQUEST_NULL;
  op->deadline_ns = deadline;
  ds__mpi_hdr_init(&op->hdr, DS__MSG_FETCH);
  op->hdr.a = b->id;
  ds__mpi_op_submit(m, op);
  char what[64];
  snprintf(what, sizeof what, "fetch of buffer %llu", (unsigned long long)b->id);
  return ds__mpi_op_wait(m, op, what);
}

ds_status ds_mpi_buffer_fetch(ds_mpi *m, uint64_t id, const void **data, int64_t timeout_ms) {
  if (data) *data = NULL;
  if (!m || !data)
    return ds__error(m ? m->ctx : NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_fetch: %s is NULL",
                     m ? "data" : "m");
  pthread_mutex_lock(&m->mu);
  ds__mpi_buf *b = ds__mpi_wait_other_fetch(m, id);
  if (!b || b->valid) {
    if (b) *data = b->ptr;
    pthread_mutex_unlock(&m->mu);
    return b ? DS_OK : ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "buffer %llu is not registered",
                                 (unsigned long long)id);
  }
  if (!b->ptr) {
    b->ptr = ds__alloc(m->ctx, b->size);
    b->owned_copy = b->ptr != NULL;
  }
  if (b->ptr) b->fetching = 1;
  pthread_mutex_unlock(&m->mu);
  if (!b->ptr) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory to fetch buffer %llu",
                                (unsigned long long)id);
  uint64_t deadline = ds__mpi_deadline(m, timeout_ms);
  /* The copy lands in the host replica of an attached ds_buffer. */
  ds_status st = ds__mpi_buf_acquire_wait(m, b, DS_ACCESS_WRITE, deadline);
  /* An owner's ds_buffer held by an owner-computes task answers DS_ERR_BUSY: ask again. */
  int acquired = st == DS_OK;
  if (acquired) {
    while ((st = ds__fetch_once(m, b, deadline)) == DS_ERR_BUSY && ds__now_ns() < deadline) {
      ds__nap_us(200);
      pthread_mutex_lock(&m->mu);
      b->fetching = 1;
      pthread_mutex_unlock(&m->mu);
    }
    ds__mpi_buf_release(b);
  }
  pthread_mutex_lock(&m->mu);
  b->fetching = 0; /* also on the paths that did not send */
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (st == DS_OK) *data = b->ptr;
  return st;
}

ds_status ds_mpi_buffer_flush(ds_mpi *m, uint64_t id) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_flush: m is NULL");
  ds_status st = DS_OK;
  int found = 0;
  pthread_mutex_lock(&m->mu);
  for (ds__mpi_buf *b = m->bufs; b; b = b->next) {
    if (id && b->id != id) continue;
    found = 1;
    if (b->owner == m->rank) continue;
    if (b->fetching)
      st = DS_ERR_BUSY;
    else
      b->valid = 0;
  }
  pthread_mutex_unlock(&m->mu);
  if (id && !found)
    return ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "buffer %llu is not registered",
                     (unsigned long long)id);
  if (st != DS_OK)
    return ds__error(m->ctx, st, "mpi", "flush: a fetch of buffer %llu is in flight",
                     (unsigned long long)id);
  return DS_OK;
}

void ds__mpi_buf_stale(ds__mpi_buf *b) {
  b->valid = 0;
  if (b->fetching) b->stale = 1; /* the copy arriving may predate the write */
}

void ds__mpi_buf_written(ds_mpi *m, ds__mpi_buf *b) {
  ds__post_invalidate(m, b->id);
}

ds_status ds_mpi_buffer_written(ds_mpi *m, uint64_t id) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_buffer_written: m is NULL");
  pthread_mutex_lock(&m->mu);
  ds__mpi_buf *b = ds__mpi_buf_find(m, id);
  int32_t owner = b ? b->owner : -1;
  pthread_mutex_unlock(&m->mu);
  if (!b)
    return ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "buffer %llu is not registered",
                     (unsigned long long)id);
  if (owner != m->rank)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "buffer %llu is owned by rank %d, not "
                     "this rank (%d): only its owner's writes count", (unsigned long long)id,
                     owner, m->rank);
  ds__mpi_buf_written(m, b);
  return DS_OK;
}

/* Owner side: sends the memory, or says why not. */
void ds__mpi_on_fetch(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h) {
  char msg[160] = "";
  pthread_mutex_lock(&m->mu);
  ds__mpi_buf *b = ds__mpi_buf_find(m, h->a);
  ds_status st = DS_OK;
  if (!b || b->owner != m->rank) {
    st = DS_ERR_NOT_FOUND;
    snprintf(msg, sizeof msg, "rank %d does not own buffer %llu%s", m->rank,
             (unsigned long long)h->a, b ? "" : " (not registered there)");
  } else if (b->size != h->b) {
    st = DS_ERR_FORMAT;
    snprintf(msg, sizeof msg, "buffer %llu is %zu bytes on its owner (rank %d) but %llu on rank %d",
             (unsigned long long)h->a, b->size, m->rank, (unsigned long long)h->b, peer);
  } else {
    b->inflight_sends++; /* keeps it registered until the send completes */
  }
  pthread_mutex_unlock(&m->mu);
  if (st == DS_OK && (st = ds__mpi_buf_acquire(m, b, DS_ACCESS_READ)) != DS_OK) {
    snprintf(msg, sizeof msg, "on rank %d: %s", m->rank, ds_context_last_error(m->ctx));
    pthread_mutex_lock(&m->mu);
    b->inflight_sends--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
  }
  if (st == DS_OK) { /* released when the send completes */
    ds__mpi_send_data(m, peer, DS__MPI_TAG_DATA0 + (int)(h->id % DS__MPI_DATA_TAGS), b);
    return;
  }
  ds__mpi_hdr e;
  ds__mpi_hdr_init(&e, DS__MSG_FETCH_ERR);
  e.id = h->id;
  e.status = st;
  ds__mpi_post(m, peer, &e, NULL, msg, strlen(msg) + 1);
}
