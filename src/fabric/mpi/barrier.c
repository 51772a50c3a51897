/* Timestamp barrier across ranks: each rank publishes the highest timestamp it has passed (a
 * message to every rank, sent by the progress thread) and a waiter blocks until every rank's
 * published timestamp reaches T. A dead rank that has not passed T fails the wait. This is the
 * cross-rank half; the fabric's in-process timestamp barrier (CPU workers, streams, queues) is
 * separate until the two are unified, joined by the bridge: a death cancels the barrier bridged
 * at that moment (fail-stop: its waiters were promised that rank's progress), and a barrier
 * bridged afterwards counts the dead as having passed everything (the survivors' way on). */
#include "mpi_internal.h"

void ds__mpi_bridge_publish(ds_mpi *m, int32_t r, uint64_t ts, int dead) {
  pthread_mutex_lock(&m->mu); /* held across the call: the bridge cannot be removed meanwhile */
  if (m->bridge && dead)
    ds_fabric_barrier_cancel(m->bridge);
  else if (m->bridge && ts)
    (void)ds_fabric_barrier_publish(m->bridge, m->bridge_first + (uint32_t)r, ts); /* older: refused */
  pthread_mutex_unlock(&m->mu);
}

ds_status ds_mpi_barrier_bridge(ds_mpi *m, ds_fabric_barrier *b, uint32_t first) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_barrier_bridge: m is NULL");
  pthread_mutex_lock(&m->mu);
  m->bridge = b;
  m->bridge_first = first;
  int dead = 0;
  for (int r = 0; b && r < m->size; r++) { /* what is already known */
    uint64_t ts = r == m->rank ? m->barrier_mine : m->peers[r].barrier_ts;
    /* Bridged after a death: the survivors go on among themselves (see the header). */
    if (r != m->rank && m->peers[r].dead) ts = UINT64_MAX, dead++;
    if (ts) (void)ds_fabric_barrier_publish(b, first + (uint32_t)r, ts);
  }
  pthread_mutex_unlock(&m->mu);
  if (dead)
    ds__log(m->ctx, DS_LOG_INFO, "mpi", "barrier bridge: %d dead rank(s) count as having passed "
            "every timestamp", dead);
  return DS_OK;
}

ds_status ds_mpi_barrier_arrive(ds_mpi *m, uint64_t ts) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_barrier_arrive: m is NULL");
  pthread_mutex_lock(&m->mu);
  int stopping = m->stop;
  if (!stopping && ts > m->barrier_mine) {
    m->barrier_mine = ts;
    m->barrier_dirty = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_cond_signal(&m->wake);
  }
  pthread_mutex_unlock(&m->mu);
  if (!stopping) ds__mpi_bridge_publish(m, m->rank, ts, 0);
  return stopping ? ds__error(m->ctx, DS_ERR_SHUTDOWN, "mpi", "barrier: endpoint is shutting down")
                  : DS_OK;
}

/* Under mu: a rank not yet past ts, a dead one first (-1: none), and whether it is dead. */
static int ds__barrier_laggard(ds_mpi *m, uint64_t ts, int *dead) {
  int lag = -1;
  *dead = 0;
  for (int r = 0; r < m->size; r++) {
    uint64_t passed = r == m->rank ? m->barrier_mine : m->peers[r].barrier_ts;
    if (passed >= ts) continue;
    if (r != m->rank && m->peers[r].dead) {
      *dead = 1;
      return r;
    }
    if (lag < 0) lag = r;
  }
  return lag;
}

ds_status ds_mpi_barrier_wait(ds_mpi *m, uint64_t ts, int64_t timeout_ms) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_barrier_wait: m is NULL");
  uint64_t deadline = ds__mpi_deadline(m, timeout_ms);
  struct timespec at = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
  int dead = 0, lag;
  pthread_mutex_lock(&m->mu);
  while ((lag = ds__barrier_laggard(m, ts, &dead)) >= 0 && !dead && ds__now_ns() < deadline)
    pthread_cond_timedwait(&m->cv, &m->mu, &at); /* cv uses CLOCK_MONOTONIC */
  pthread_mutex_unlock(&m->mu);
  if (lag < 0) return DS_OK;
  if (dead)
    return ds__error(m->ctx, DS_ERR_IO, "mpi", "barrier at %llu: rank %d died before passing it",
                     (unsigned long long)ts, lag);
  return ds__error(m->ctx, DS_ERR_TIMEOUT, "mpi", "barrier at %llu: rank %d has not passed it "
                   "within the timeout", (unsigned long long)ts, lag);
}
