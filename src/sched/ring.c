/* The inject queue for NORMAL tasks submitted from outside the pool: a bounded lock-free
 * multi-producer multi-consumer ring (the sequence-numbered cell design D. Vyukov
 * published), with a mutex-guarded list behind it for overflow. One CAS per push or pop and
 * no lock shared by the submitting thread and the workers while the ring has room.
 *
 * Each cell carries a sequence number: equal to the position when free for that position's
 * producer, position + 1 once filled for its consumer. The producer writes the task and then
 * release-stores the sequence; the consumer acquires it before reading the task.
 * Order: FIFO within the ring; while the overflow list is non-empty new tasks go there too,
 * and consumers drain the ring first, so the order is kept except around the switch back. */
#include "sched_internal.h"

int ds__ring_init(ds__ring *r, ds_context *ctx) {
  r->cells = ds__calloc(ctx, DS__RING_CELLS, sizeof *r->cells);
  if (!r->cells) return 0;
  for (size_t i = 0; i < DS__RING_CELLS; i++) ds__store_relaxed(&r->cells[i].seq, i);
  ds__store_relaxed(&r->head, 0);
  ds__store_relaxed(&r->tail, 0);
  ds__queue_init(&r->overflow);
  return 1;
}

void ds__ring_fini(ds__ring *r, ds_context *ctx) {
  if (!r->cells) return;
  ds__free(ctx, r->cells);
  r->cells = NULL;
  ds__queue_fini(&r->overflow);
}

static int ds__ring_try_push(ds__ring *r, struct ds_task *t) {
  uint64_t pos = ds__load_relaxed(&r->tail);
  for (;;) {
    ds__ring_cell *c = &r->cells[pos & (DS__RING_CELLS - 1)];
    int64_t dif = (int64_t)(ds__load(&c->seq) - pos);
    if (dif == 0) {
      if (ds__cas(&r->tail, &pos, pos + 1)) {
        c->task = t;
        ds__store(&c->seq, pos + 1);
        return 1;
      }
    } else if (dif < 0) {
      return 0; /* full */
    } else {
      pos = ds__load_relaxed(&r->tail);
    }
  }
}

void ds__ring_push(ds__ring *r, struct ds_task *t) {
  if (ds__load_relaxed(&r->overflow.len) > 0 || !ds__ring_try_push(r, t))
    ds__queue_push_tail(&r->overflow, t);
}

struct ds_task *ds__ring_pop(ds__ring *r) {
  uint64_t pos = ds__load_relaxed(&r->head);
  for (;;) {
    ds__ring_cell *c = &r->cells[pos & (DS__RING_CELLS - 1)];
    int64_t dif = (int64_t)(ds__load(&c->seq) - (pos + 1));
    if (dif == 0) {
      if (ds__cas(&r->head, &pos, pos + 1)) {
        struct ds_task *t = c->task;
        ds__store(&c->seq, pos + DS__RING_CELLS); /* free for the producer one lap later */
        return t;
      }
    } else if (dif < 0) {
      return ds__queue_pop_head(&r->overflow); /* ring empty */
    } else {
      pos = ds__load_relaxed(&r->head);
    }
  }
}

int64_t ds__ring_size(ds__ring *r) {
  int64_t n = (int64_t)(ds__load_relaxed(&r->tail) - ds__load_relaxed(&r->head));
  return (n > 0 ? n : 0) + ds__load_relaxed(&r->overflow.len);
}
