/* The scheduler's queues: a mutex-guarded intrusive doubly linked list used as FIFO (URGENT,
 * LOW) and as per-worker work-stealing deque (NORMAL). */
#include "sched_internal.h"

void ds__queue_init(ds__queue *q) {
  pthread_mutex_init(&q->mu, NULL);
  q->head = q->tail = NULL;
  ds__store_relaxed(&q->len, 0);
}

void ds__queue_fini(ds__queue *q) { pthread_mutex_destroy(&q->mu); }

void ds__queue_push_tail(ds__queue *q, struct ds_task *t) {
  pthread_mutex_lock(&q->mu);
  t->qnext = NULL;
  t->qprev = q->tail;
  if (q->tail)
    q->tail->qnext = t;
  else
    q->head = t;
  q->tail = t;
  ds__fetch_add(&q->len, 1);
  pthread_mutex_unlock(&q->mu);
}

static struct ds_task *ds__queue_unlink(ds__queue *q, struct ds_task *t) {
  if (t->qprev)
    t->qprev->qnext = t->qnext;
  else
    q->head = t->qnext;
  if (t->qnext)
    t->qnext->qprev = t->qprev;
  else
    q->tail = t->qprev;
  t->qprev = t->qnext = NULL;
  ds__fetch_sub(&q->len, 1);
  return t;
}

struct ds_task *ds__queue_pop_head(ds__queue *q) {
  if (ds__load_relaxed(&q->len) == 0) return NULL; /* a stale 0 only delays to the next poll */
  pthread_mutex_lock(&q->mu);
  struct ds_task *t = q->head ? ds__queue_unlink(q, q->head) : NULL;
  pthread_mutex_unlock(&q->mu);
  return t;
}

struct ds_task *ds__queue_pop_tail(ds__queue *q) {
  if (ds__load_relaxed(&q->len) == 0) return NULL;
  pthread_mutex_lock(&q->mu);
  struct ds_task *t = q->tail ? ds__queue_unlink(q, q->tail) : NULL;
  pthread_mutex_unlock(&q->mu);
  return t;
}
