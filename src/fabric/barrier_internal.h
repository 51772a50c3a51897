/* Internal interface of the timestamp barrier (barrier*.c, opencl/barrier_cl.c, the CUDA glue,
 * and the MPI extension of issue 12): the barrier structure, the publish paths that skip the
 * public checks, one-shot "passed T" notifications, and the hook through which a remote
 * participant is driven.
 *
 * Wake-up protocol (no lost wake-up; see docs/architecture.md, "Fabric: timestamp barriers"):
 *   publisher: CAS progress[p] up to t; seq_cst fence; read wake_floor and notify_floor; if the
 *              smallest progress reaches a floor: take it (exchange with UINT64_MAX), bump seq,
 *              futex-wake every sleeper (resp. fire the notifications due).
 *   waiter:    read seq; lower wake_floor to T; seq_cst fence; check closed and progress; else
 *              futex_wait(seq, value read first).
 * The two fences order "store progress / load floor" against "store floor / load progress"
 * (store-buffer pattern): either the waiter sees the progress or the publisher sees the floor.
 * A waiter that read seq before the bump is refused by the kernel's value check. */
#ifndef DS_FABRIC_BARRIER_INTERNAL_H
#define DS_FABRIC_BARRIER_INTERNAL_H

#include "internal.h"

#define DS__BARRIER_NONE UINT64_MAX /* floor value: nobody waiting */
#define DS__BARRIER_MAX_PARTICIPANTS 65536u

/* One participant, alone on its cache line so publishers do not slow each other down. */
struct ds__barrier_slot {
  ds__atomic_u64 progress; /* published timestamp */
  ds__atomic_u64 claimed;  /* highest timestamp enqueued on a device (marker not yet reached) */
  char pad[64 - 2 * sizeof(uint64_t)];
};

/* Called once with the t it was registered for, when every participant has passed t (ok = 1)
 * or the barrier closed (ok = 0).
 * Runs on the publishing thread (or device callback thread), outside the barrier's locks: it
 * must be short and must not call back into the barrier's blocking functions. */
typedef void (*ds__barrier_notify_fn)(void *arg, uint64_t t, int ok);

struct ds__barrier_notify {
  uint64_t t;
  ds__barrier_notify_fn fn;
  void *arg;
  struct ds__barrier_notify *next;
};

/* Remote participants (MPI): called after every local publish, CPU or device, so the progress
 * can be forwarded to the other ranks. Must not block. */
typedef void (*ds__barrier_forward_fn)(void *user, uint32_t participant, uint64_t t);

struct ds__barrier_cuda; /* the CUDA side's per-barrier state (barrier_cuda_glue.c) */

struct ds_fabric_barrier {
  ds_context *ctx;
  char *name;
  uint32_t n;
  int64_t spin_ns;
  struct ds__barrier_slot *slots; /* n slots, 64-byte aligned inside slots_mem */
  void *slots_mem;

  char line_pad[64];               /* keeps the read-mostly fields above off the hot line */
  ds__atomic_int seq;              /* the futex word: bumped on every wake */
  ds__atomic_u64 wake_floor;       /* lowest T a sleeping waiter waits for */
  ds__atomic_u64 notify_floor;     /* lowest T of the pending notifications */
  ds__atomic_int closed;           /* 0 = open, else the ds_status waits return */
  ds__atomic_int inside;           /* threads inside a wait (destroy waits for 0) */
  ds__atomic_int device_pending;   /* device markers whose callback has not run yet */
  ds__atomic_i64 spin_cur;         /* adaptive spin budget, 0..spin_ns (barrier_wait.c) */
  ds__atomic_int slow_waits;       /* waits that found t not passed: every 32nd probes */
  ds__atomic_int forward_set;      /* 1 once forward/forward_user are set */
  ds__barrier_forward_fn forward;
  void *forward_user;

  int stat_sleeps, stat_wakes, stat_timeouts; /* fabric.barrier.* stats (ids, -1 if none) */

  pthread_mutex_t mu; /* guards notifies, notify_floor writes, closed_msg, cuda */
  struct ds__barrier_notify *notifies;
  char closed_msg[160];
  struct ds__barrier_cuda *cuda;
};

/* Smallest published progress: the timestamp every participant has passed. */
uint64_t ds__barrier_min(const ds_fabric_barrier *b);
/* 1 when every participant has passed t. */
int ds__barrier_passed(const ds_fabric_barrier *b, uint64_t t);
/* Raises participant p's progress to t (no-op if already there), wakes what is due; calls the
 * forward hook when 'forward'. p must be valid. Used by device callbacks and, with forward = 0,
 * by the MPI module for remote participants. */
void ds__barrier_advance(ds_fabric_barrier *b, uint32_t p, uint64_t t, int forward);
/* Checks that t does not go backwards for a device participant and records it as enqueued.
 * Returns DS_OK or a status with the message set. */
ds_status ds__barrier_claim(ds_fabric_barrier *b, uint32_t p, uint64_t t, const char *what);
/* Registers fn(arg, t, ok) for when every participant has passed t; runs it at once (on this
 * thread) when t is already passed or the barrier is closed. DS_ERR_NO_MEMORY otherwise
 * possible, in which case fn is not called. */
ds_status ds__barrier_on_passed(ds_fabric_barrier *b, uint64_t t, ds__barrier_notify_fn fn,
                                void *arg);
/* Closes the barrier with st (DS_ERR_SHUTDOWN, DS_ERR_DEVICE) and the message waiters report;
 * the first close wins. Wakes every waiter and fires every notification with ok = 0. */
void ds__barrier_close(ds_fabric_barrier *b, ds_status st, const char *msg);
/* Sets the forward hook (MPI); call before publishing starts. fn NULL removes it. */
void ds__barrier_set_forward(ds_fabric_barrier *b, ds__barrier_forward_fn fn, void *user);
/* Wakes every sleeping waiter (barrier_wait.c). */
void ds__barrier_wake_all(ds_fabric_barrier *b);
/* The message waiters report for a closed barrier (copied under the lock into buf). */
void ds__barrier_closed_msg(ds_fabric_barrier *b, char *buf, size_t size);

/* The CUDA side (barrier_cuda_glue.c): frees its state; called by destroy after every device
 * marker completed. */
void ds__barrier_cuda_release(ds_fabric_barrier *b);

#endif /* DS_FABRIC_BARRIER_INTERNAL_H */
