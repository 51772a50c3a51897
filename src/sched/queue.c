/* The scheduler's locked queues: a mutex-guarded intrusive doubly linked list, used FIFO for
 * worker mailboxes and the inject overflow, and ordered for the URGENT and LOW classes
 * (ds__queue_insert: earliest deadline first, then for LOW the longest cost hint first, FIFO
 * among equals). */
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

/* Order of the URGENT and LOW queues: a before b? Tasks with a deadline come first, earliest
 * first (EDF); among LOW tasks without one, the larger cost hint first (longest first packs
 * the throttled LOW slots better); otherwise submission order. */
int ds__queue_before(const struct ds_task *a, const struct ds_task *b) {
  uint64_t da = a->deadline_ns ? a->deadline_ns : UINT64_MAX;
  uint64_t db = b->deadline_ns ? b->deadline_ns : UINT64_MAX;
  if (da != db) return da < db;
  return a->prio == DS_PRIO_LOW && a->cost_ns > b->cost_ns;
}

void ds__queue_insert(ds__queue *q, struct ds_task *t) {
  pthread_mutex_lock(&q->mu);
  struct ds_task *after = q->tail; /* walk back from the tail: the common case stops at once */
  while (after && ds__queue_before(t, after)) after = after->qprev;
  t->qprev = after;
  t->qnext = after ? after->qnext : q->head;
  if (t->qnext)
    t->qnext->qprev = t;
  else
    q->tail = t;
  if (after)
    after->qnext = t;
  else
    q->head = t;
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

