/* Waiting on a timestamp barrier: a short spin, then sleep on the barrier's futex word (Linux
 * FUTEX_WAIT/FUTEX_WAKE, process-private). The waker side (ds__barrier_wake_all) is called by
 * publishers that took the wake floor and by close. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "barrier_internal.h"

#define MOD "fabric"

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void futex_wait(ds__atomic_int *word, int expected, int64_t timeout_ns) {
  struct timespec ts, *tsp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    tsp = &ts;
  }
  /* EAGAIN (the word moved on), EINTR and ETIMEDOUT all send the caller back to its check. */
  syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}

void ds__barrier_wake_all(ds_fabric_barrier *b) {
  ds__stat_add(b->ctx, b->stat_wakes, 1);
  ds__fetch_add(&b->seq, 1);
  syscall(SYS_futex, (int *)&b->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Lowers the wake floor to t with a read-modify-write even when it is already lower, so the
 * waiter's fence orders a modification of the floor (see barrier_internal.h). */
static void lower_floor(ds_fabric_barrier *b, uint64_t t) {
  uint64_t cur = ds__load_relaxed(&b->wake_floor);
  while (!ds__cas(&b->wake_floor, &cur, cur < t ? cur : t)) {
  }
}

/* 1 when t was passed, 0 when the barrier closed, -1 when the spin ran out. */
static int spin(ds_fabric_barrier *b, uint64_t t, uint64_t until_ns) {
  for (unsigned i = 1;; i++) {
    if (ds__barrier_passed(b, t)) return 1;
    if (ds__load_relaxed(&b->closed)) return 0;
    cpu_relax();
    if ((i & 15) == 0 && ds__now_ns() >= until_ns) return -1;
  }
}

/* The participant furthest behind t, for the timeout message. */
static uint32_t laggard(const ds_fabric_barrier *b, uint64_t t, uint64_t *at) {
  uint32_t who = 0;
  *at = UINT64_MAX;
  for (uint32_t i = 0; i < b->n; i++) {
    uint64_t v = ds__load(&b->slots[i].progress);
    if (v < t && v < *at) {
      *at = v;
      who = i;
    }
  }
  return who;
}

static ds_status fail(ds_fabric_barrier *b, ds_status st, uint64_t t, int64_t timeout_ns) {
  const char *name = b->name ? b->name : "barrier";
  if (st == DS_ERR_TIMEOUT) {
    ds__stat_add(b->ctx, b->stat_timeouts, 1);
    uint64_t at;
    uint32_t who = laggard(b, t, &at);
    return ds__error(b->ctx, st, MOD,
                     "%s wait: timestamp %llu not passed after %lld ns (participant %u at %llu)",
                     name, (unsigned long long)t, (long long)timeout_ns, who,
                     (unsigned long long)at);
  }
  char msg[sizeof b->closed_msg];
  ds__barrier_closed_msg(b, msg, sizeof msg);
  return ds__error(b->ctx, st, MOD, "%s wait for %llu: %s", name, (unsigned long long)t, msg);
}

/* The sleeping part: returns DS_OK, DS_ERR_TIMEOUT or the closing status. */
static ds_status sleep_until(ds_fabric_barrier *b, uint64_t t, uint64_t deadline) {
  for (;;) {
    int s = ds__load(&b->seq);
    /* Checked before registering too: after a wake-up, a floor left at a passed t would cost
     * the next publisher a useless FUTEX_WAKE. */
    if (ds__barrier_passed(b, t)) return DS_OK;
    lower_floor(b, t);
    ds__fence_seq_cst();
    int closed = ds__load(&b->closed);
    if (closed) return (ds_status)closed;
    if (ds__barrier_passed(b, t)) return DS_OK;
    ds__stat_add(b->ctx, b->stat_sleeps, 1);
    if (deadline == UINT64_MAX) {
      futex_wait(&b->seq, s, -1);
      continue;
    }
    uint64_t now = ds__now_ns();
    if (now >= deadline) return DS_ERR_TIMEOUT;
    futex_wait(&b->seq, s, (int64_t)(deadline - now));
  }
}

/* Adaptive spinning: a spin that ends in sleep halves the budget (spinning only burns the CPU
 * the awaited participant may need on a busy machine), one that succeeds restores it, and one
 * slow wait in 32 spins the full budget to notice when the machine got quiet again. */
static int64_t spin_budget(ds_fabric_barrier *b) {
  if (b->spin_ns == 0) return 0;
  if ((ds__fetch_add_relaxed(&b->slow_waits, 1) & 31) == 0) return b->spin_ns;
  return ds__load_relaxed(&b->spin_cur);
}

static void spin_learn(ds_fabric_barrier *b, int64_t budget, int passed) {
  if (passed)
    ds__store_relaxed(&b->spin_cur, b->spin_ns);
  else
    ds__store_relaxed(&b->spin_cur, budget / 2 < 1000 ? 0 : budget / 2);
}

ds_status ds_fabric_barrier_wait(ds_fabric_barrier *b, uint64_t t, int64_t timeout_ns) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier wait: b is NULL");
  if (DS__LIKELY(ds__barrier_passed(b, t))) return DS_OK;
  ds__fetch_add(&b->inside, 1);
  int64_t budget = timeout_ns == 0 ? 0 : spin_budget(b);
  /* The clock is read only when a spin or a timeout needs it. */
  uint64_t start = budget > 0 || timeout_ns >= 0 ? ds__now_ns() : 0;
  uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
  uint64_t spin_end = start + (uint64_t)budget;
  int r = -1;
  if (budget > 0) {
    r = spin(b, t, spin_end < deadline ? spin_end : deadline);
    if (r != 0) spin_learn(b, budget, r == 1);
  }
  ds_status st;
  if (r == 1)
    st = DS_OK;
  else if (r == 0)
    st = (ds_status)ds__load(&b->closed);
  else
    st = sleep_until(b, t, deadline);
  if (st != DS_OK) st = fail(b, st, t, timeout_ns);
  /* Last touch of b: destroy may free it as soon as 'inside' drops to 0. */
  ds__fetch_sub(&b->inside, 1);
  return st;
}

ds_status ds_fabric_barrier_arrive_and_wait(ds_fabric_barrier *b, uint32_t participant,
                                            int64_t timeout_ns, uint64_t *out_t) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier arrive: b is NULL");
  if (participant >= b->n) return ds_fabric_barrier_publish(b, participant, 0);
  uint64_t t = ds__load_relaxed(&b->slots[participant].progress) + 1;
  if (out_t) *out_t = t;
  ds_status st = ds_fabric_barrier_publish(b, participant, t);
  return st != DS_OK ? st : ds_fabric_barrier_wait(b, t, timeout_ns);
}
