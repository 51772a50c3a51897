/* Timestamp barriers: lifetime, publishing progress, one-shot "passed T" notifications and
 * closing. Waiting (spin, then futex) lives in barrier_wait.c; device participants in
 * opencl/barrier_cl.c and barrier_cuda_glue.c. The protocol is described in
 * barrier_internal.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "barrier_internal.h"

#define MOD "fabric"

static const char *bname(const ds_fabric_barrier *b) { return b->name ? b->name : "barrier"; }

static ds_status check_options(ds_context *ctx, const ds_fabric_barrier_options *o) {
  if (o->struct_size != sizeof *o)
    return ds__error(ctx, DS_ERR_ABI, MOD, "barrier options: struct_size %u, expected %zu",
                     o->struct_size, sizeof *o);
  if (o->participants < 1 || o->participants > DS__BARRIER_MAX_PARTICIPANTS)
    return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "barrier: %u participants (allowed 1..%u)",
                     o->participants, DS__BARRIER_MAX_PARTICIPANTS);
  if (o->spin_ns < -1)
    return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "barrier: spin_ns %lld (allowed -1 or >= 0)",
                     (long long)o->spin_ns);
  return DS_OK;
}

static ds_status alloc_slots(ds_fabric_barrier *b) {
  b->slots_mem = ds__calloc(b->ctx, (size_t)b->n + 1, sizeof(struct ds__barrier_slot));
  if (!b->slots_mem) return DS_ERR_NO_MEMORY;
  uintptr_t p = ((uintptr_t)b->slots_mem + 63) & ~(uintptr_t)63;
  b->slots = (struct ds__barrier_slot *)p;
  for (uint32_t i = 0; i < b->n; i++) {
    ds__store_relaxed(&b->slots[i].progress, 0);
    ds__store_relaxed(&b->slots[i].claimed, 0);
  }
  return DS_OK;
}

ds_status ds_fabric_barrier_create(ds_fabric_barrier **out, ds_context *ctx,
                                   const ds_fabric_barrier_options *opts) {
  if (!out) return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "barrier create: out is NULL");
  *out = NULL;
  if (!ctx) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier create: ctx is NULL");
  ds_fabric_barrier_options defaults = DS_FABRIC_BARRIER_OPTIONS_INIT;
  const ds_fabric_barrier_options *o = opts ? opts : &defaults;
  ds_status st = check_options(ctx, o);
  if (st != DS_OK) return st;
  ds_fabric_barrier *b = ds__calloc(ctx, 1, sizeof *b);
  if (!b) return ds__error(ctx, DS_ERR_NO_MEMORY, MOD, "barrier create: out of memory");
  b->ctx = ctx;
  b->n = o->participants;
  b->spin_ns = o->spin_ns >= 0 ? o->spin_ns : ds__param(ctx, DS_PARAM_FABRIC_BARRIER_SPIN_NS);
  if ((o->name && !(b->name = ds__strdup(ctx, o->name))) || alloc_slots(b) != DS_OK) {
    ds__free(ctx, b->name);
    ds__free(ctx, b);
    return ds__error(ctx, DS_ERR_NO_MEMORY, MOD, "barrier create: out of memory");
  }
  ds__store_relaxed(&b->seq, 0);
  ds__store_relaxed(&b->wake_floor, DS__BARRIER_NONE);
  ds__store_relaxed(&b->notify_floor, DS__BARRIER_NONE);
  ds__store_relaxed(&b->closed, 0);
  ds__store_relaxed(&b->inside, 0);
  ds__store_relaxed(&b->device_pending, 0);
  ds__store_relaxed(&b->spin_cur, b->spin_ns);
  ds__store_relaxed(&b->slow_waits, 0);
  ds__store_relaxed(&b->forward_set, 0);
  /* Counted on the slow paths only (a futex call costs far more than the update). */
  b->stat_sleeps = ds__stat_register(ctx, "fabric.barrier.sleeps", DS_STAT_COUNTER);
  b->stat_wakes = ds__stat_register(ctx, "fabric.barrier.wakes", DS_STAT_COUNTER);
  b->stat_timeouts = ds__stat_register(ctx, "fabric.barrier.timeouts", DS_STAT_COUNTER);
  pthread_mutex_init(&b->mu, NULL);
  *out = b;
  return DS_OK;
}

void ds_fabric_barrier_destroy(ds_fabric_barrier *b) {
  if (!b) return;
  ds__barrier_close(b, DS_ERR_SHUTDOWN, "destroyed while waiting");
  /* Waiters leave after reading 'closed'; device callbacks still reference b. */
  struct timespec nap = {0, 50000};
  while (ds__load(&b->inside) > 0 || ds__load(&b->device_pending) > 0) nanosleep(&nap, NULL);
  ds__barrier_cuda_release(b);
  pthread_mutex_destroy(&b->mu);
  ds_context *ctx = b->ctx;
  ds__free(ctx, b->slots_mem);
  ds__free(ctx, b->name);
  ds__free(ctx, b);
}

uint64_t ds__barrier_min(const ds_fabric_barrier *b) {
  uint64_t m = UINT64_MAX;
  for (uint32_t i = 0; i < b->n; i++) {
    uint64_t v = ds__load(&b->slots[i].progress);
    if (v < m) m = v;
  }
  return m;
}

int ds__barrier_passed(const ds_fabric_barrier *b, uint64_t t) {
  for (uint32_t i = 0; i < b->n; i++)
    if (ds__load(&b->slots[i].progress) < t) return 0;
  return 1;
}

/* Detaches the notifications due at m (all of them when closed) and runs them outside the lock,
 * so a callback may register another. */
static void fire_notifies(ds_fabric_barrier *b, uint64_t m, int closed) {
  struct ds__barrier_notify *due = NULL, **pp;
  uint64_t floor = DS__BARRIER_NONE;
  pthread_mutex_lock(&b->mu);
  for (pp = &b->notifies; *pp;) {
    struct ds__barrier_notify *e = *pp;
    if (closed || e->t <= m) {
      *pp = e->next;
      e->next = due;
      due = e;
    } else {
      if (e->t < floor) floor = e->t;
      pp = &e->next;
    }
  }
  ds__store(&b->notify_floor, floor);
  pthread_mutex_unlock(&b->mu);
  while (due) {
    struct ds__barrier_notify *e = due;
    due = e->next;
    e->fn(e->arg, e->t, !closed);
    ds__free(b->ctx, e);
  }
}

/* After progress was raised (and fenced): wakes sleepers and fires notifications now due. */
static void after_publish(ds_fabric_barrier *b) {
  uint64_t wf = ds__load(&b->wake_floor), nf = ds__load(&b->notify_floor);
  if (DS__LIKELY(wf == DS__BARRIER_NONE && nf == DS__BARRIER_NONE)) return;
  uint64_t m = ds__barrier_min(b);
  if (m >= wf && ds__exchange(&b->wake_floor, DS__BARRIER_NONE) != DS__BARRIER_NONE)
    ds__barrier_wake_all(b);
  if (m >= nf) fire_notifies(b, m, 0);
}

/* Raises progress to t; 1 if it moved, 0 if it already was >= t (*cur = the value seen). */
static int raise_progress(struct ds__barrier_slot *s, uint64_t t, uint64_t *cur) {
  *cur = ds__load_relaxed(&s->progress);
  while (*cur < t)
    if (ds__cas(&s->progress, cur, t)) return 1;
  return 0;
}

void ds__barrier_advance(ds_fabric_barrier *b, uint32_t p, uint64_t t, int forward) {
  uint64_t cur;
  if (!raise_progress(&b->slots[p], t, &cur)) return;
  ds__fence_seq_cst();
  after_publish(b);
  if (forward && ds__load(&b->forward_set) && b->forward) b->forward(b->forward_user, p, t);
}

static ds_status closed_error(ds_fabric_barrier *b, const char *what) {
  char msg[sizeof b->closed_msg];
  ds__barrier_closed_msg(b, msg, sizeof msg);
  return ds__error(b->ctx, (ds_status)ds__load(&b->closed), MOD, "%s %s: %s", bname(b), what,
                   msg);
}

static ds_status check_participant(ds_fabric_barrier *b, uint32_t p, const char *what) {
  if (DS__UNLIKELY(p >= b->n))
    return ds__error(b->ctx, DS_ERR_NOT_FOUND, MOD, "%s %s: no participant %u (it has %u)",
                     bname(b), what, p, b->n);
  if (DS__UNLIKELY(ds__load_relaxed(&b->closed) != 0)) return closed_error(b, what);
  return DS_OK;
}

static ds_status backwards(ds_fabric_barrier *b, uint32_t p, uint64_t t, uint64_t cur,
                           const char *what, const char *kind) {
  return ds__error(b->ctx, DS_ERR_INVALID_ARG, MOD,
                   "%s %s: participant %u timestamp %llu goes backwards (already %s %llu)",
                   bname(b), what, p, (unsigned long long)t, kind, (unsigned long long)cur);
}

ds_status ds_fabric_barrier_publish(ds_fabric_barrier *b, uint32_t participant, uint64_t t) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier publish: b is NULL");
  ds_status st = check_participant(b, participant, "publish");
  if (st != DS_OK) return st;
  struct ds__barrier_slot *s = &b->slots[participant];
  uint64_t claimed = ds__load_relaxed(&s->claimed), cur;
  if (DS__UNLIKELY(t < claimed)) return backwards(b, participant, t, claimed, "publish", "enqueued");
  if (!raise_progress(s, t, &cur)) {
    if (cur == t) return DS_OK;
    return backwards(b, participant, t, cur, "publish", "published");
  }
  ds__fence_seq_cst();
  after_publish(b);
  if (ds__load(&b->forward_set) && b->forward) b->forward(b->forward_user, participant, t);
  return DS_OK;
}

ds_status ds__barrier_claim(ds_fabric_barrier *b, uint32_t p, uint64_t t, const char *what) {
  ds_status st = check_participant(b, p, what);
  if (st != DS_OK) return st;
  struct ds__barrier_slot *s = &b->slots[p];
  uint64_t cur = ds__load(&s->progress);
  if (t < cur) return backwards(b, p, t, cur, what, "published");
  uint64_t c = ds__load_relaxed(&s->claimed);
  do {
    if (t < c) return backwards(b, p, t, c, what, "enqueued");
  } while (!ds__cas(&s->claimed, &c, t));
  return DS_OK;
}

ds_status ds_fabric_barrier_progress(const ds_fabric_barrier *b, uint32_t participant,
                                     uint64_t *out) {
  if (!b || !out) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier progress: NULL argument");
  if (participant == UINT32_MAX) {
    *out = ds__barrier_min(b);
    return DS_OK;
  }
  if (participant >= b->n)
    return ds__error(b->ctx, DS_ERR_NOT_FOUND, MOD, "%s progress: no participant %u (it has %u)",
                     bname(b), participant, b->n);
  *out = ds__load(&b->slots[participant].progress);
  return DS_OK;
}

ds_status ds__barrier_on_passed(ds_fabric_barrier *b, uint64_t t, ds__barrier_notify_fn fn,
                                void *arg) {
  struct ds__barrier_notify *e = ds__alloc(b->ctx, sizeof *e);
  if (!e) return ds__error(b->ctx, DS_ERR_NO_MEMORY, MOD, "%s: out of memory", bname(b));
  e->t = t;
  e->fn = fn;
  e->arg = arg;
  pthread_mutex_lock(&b->mu);
  e->next = b->notifies;
  b->notifies = e;
  if (t < ds__load_relaxed(&b->notify_floor)) ds__store(&b->notify_floor, t);
  pthread_mutex_unlock(&b->mu);
  /* Pairs with the publisher's fence: either it sees our floor or we see its progress. */
  ds__fence_seq_cst();
  if (ds__load(&b->closed))
    fire_notifies(b, 0, 1);
  else if (ds__barrier_passed(b, t))
    fire_notifies(b, ds__barrier_min(b), 0);
  return DS_OK;
}

void ds__barrier_closed_msg(ds_fabric_barrier *b, char *buf, size_t size) {
  pthread_mutex_lock(&b->mu);
  snprintf(buf, size, "%s", b->closed_msg[0] ? b->closed_msg : "closed");
  pthread_mutex_unlock(&b->mu);
}

void ds__barrier_close(ds_fabric_barrier *b, ds_status st, const char *msg) {
  int expected = 0;
  pthread_mutex_lock(&b->mu);
  if (ds__cas(&b->closed, &expected, (int)st)) snprintf(b->closed_msg, sizeof b->closed_msg, "%s", msg);
  pthread_mutex_unlock(&b->mu);
  ds__fence_seq_cst();
  ds__store(&b->wake_floor, DS__BARRIER_NONE);
  ds__barrier_wake_all(b);
  fire_notifies(b, 0, 1);
}

ds_status ds_fabric_barrier_cancel(ds_fabric_barrier *b) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier cancel: b is NULL");
  ds__barrier_close(b, DS_ERR_SHUTDOWN, "cancelled");
  return DS_OK;
}

void ds__barrier_set_forward(ds_fabric_barrier *b, ds__barrier_forward_fn fn, void *user) {
  b->forward = fn;
  b->forward_user = user;
  ds__store(&b->forward_set, 1);
}
