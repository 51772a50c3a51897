/* Tests of the timestamp barrier, CPU side and CUDA participants: bad input, timeouts,
 * ordering with memory visibility (property test with random delays and many threads), no lost
 * wake-up over many quick rounds under a watchdog, cancel and destroy while waiting, the MPI
 * forward hook, and the CUDA path (skipped without a GPU unless DS_REQUIRE_GPU=1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "barrier_internal.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define SEC 1000000000LL

static ds_context *new_ctx(void) { return ds_test_context(NULL, 0); }

static ds_fabric_barrier *new_barrier(ds_context *ctx, uint32_t n, int64_t spin_ns) {
  ds_fabric_barrier_options o = DS_FABRIC_BARRIER_OPTIONS_INIT;
  o.participants = n;
  o.spin_ns = spin_ns;
  o.name = "test";
  ds_fabric_barrier *b = NULL;
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, &o), DS_OK);
  assert_non_null(b);
  return b;
}

static double stat(ds_context *ctx, const char *name) {
  ds_stats *s = NULL;
  double v = -1;
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, s, name), DS_OK);
  ds_stats_free(s);
  return v;
}

static void sleep_ns(long ns) {
  struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
  nanosleep(&ts, NULL);
}

static void test_create_bad_options(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = (ds_fabric_barrier *)1;
  ds_fabric_barrier_options o = DS_FABRIC_BARRIER_OPTIONS_INIT;
  assert_int_equal(ds_fabric_barrier_create(NULL, ctx, &o), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_barrier_create(&b, NULL, &o), DS_ERR_INVALID_ARG);
  assert_null(b);
  o.participants = 0;
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "0 participants"));
  o.participants = 65537;
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o.participants = 2;
  o.spin_ns = -5;
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o.spin_ns = -1;
  o.struct_size = 8;
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, &o), DS_ERR_ABI);
  assert_null(b);
  assert_int_equal(ds_fabric_barrier_create(&b, ctx, NULL), DS_OK); /* defaults: 2 */
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 1), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 2, 1), DS_ERR_NOT_FOUND);
  ds_fabric_barrier_destroy(b);
  ds_fabric_barrier_destroy(NULL);
  ds_context_destroy(ctx);
}

static void test_publish_bad_input(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 3, 0);
  uint64_t v = 99;
  assert_int_equal(ds_fabric_barrier_publish(NULL, 0, 1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_barrier_publish(b, 3, 1), DS_ERR_NOT_FOUND);
  assert_non_null(strstr(ds_context_last_error(ctx), "no participant 3 (it has 3)"));
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 10), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 10), DS_OK); /* same value: allowed */
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 9), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "participant 1 timestamp 9 goes backwards"));
  assert_int_equal(ds_fabric_barrier_progress(b, 1, &v), DS_OK);
  assert_int_equal(v, 10);
  assert_int_equal(ds_fabric_barrier_progress(b, UINT32_MAX, &v), DS_OK);
  assert_int_equal(v, 0);
  assert_int_equal(ds_fabric_barrier_progress(b, 7, &v), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_fabric_barrier_progress(b, 0, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_barrier_wait(NULL, 1, 0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_fabric_barrier_arrive_and_wait(b, 5, 0, NULL), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_fabric_barrier_cancel(NULL), DS_ERR_INVALID_ARG);
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
}

static void test_wait_passed_and_timeout(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2, -1);
  assert_int_equal(ds_fabric_barrier_wait(b, 0, 0), DS_OK); /* everyone starts at 0 */
  assert_int_equal(ds_fabric_barrier_publish(b, 0, 5), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 1, 3), DS_OK);
  assert_int_equal(ds_fabric_barrier_wait(b, 3, 0), DS_OK);
  assert_int_equal(ds_fabric_barrier_wait(b, 4, 0), DS_ERR_TIMEOUT);
  uint64_t t0 = ds__now_ns();
  assert_int_equal(ds_fabric_barrier_wait(b, 4, 30000000), DS_ERR_TIMEOUT);
  uint64_t took = ds__now_ns() - t0;
  assert_true(took >= 30000000u);
  assert_true(took < 20u * 1000000000u); /* loose: a loaded machine */
  assert_non_null(strstr(ds_context_last_error(ctx), "participant 1 at 3"));
  assert_true(stat(ctx, "fabric.barrier.timeouts") >= 2);
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
}

/* ---- ordering: nobody returns before all passed T, and sees what was written before ---- */

#define ORD_PUB 5
#define ORD_WAIT 4
#define ORD_STEPS 200

struct ord {
  ds_fabric_barrier *b;
  uint64_t data[ORD_PUB][ORD_STEPS + 1]; /* plain memory: written before the publish */
  int errors;
  pthread_mutex_t mu;
  unsigned seed;
};

static void ord_error(struct ord *o) {
  pthread_mutex_lock(&o->mu);
  o->errors++;
  pthread_mutex_unlock(&o->mu);
}

static struct ord *ORD;
static void *ord_publisher(void *arg) {
  uint32_t p = (uint32_t)(uintptr_t)arg;
  unsigned seed = ORD->seed + p * 7919u;
  for (uint64_t t = 1; t <= ORD_STEPS; t++) {
    if (rand_r(&seed) % 4 == 0) sleep_ns((long)(rand_r(&seed) % 200000));
    ORD->data[p][t] = t * 1000 + p;
    if (ds_fabric_barrier_publish(ORD->b, p, t) != DS_OK) ord_error(ORD);
  }
  return NULL;
}

static void *ord_waiter(void *arg) {
  unsigned seed = ORD->seed + (unsigned)(uintptr_t)arg * 104729u;
  uint64_t t = 0;
  while (t < ORD_STEPS) {
    t += 1 + (uint64_t)(rand_r(&seed) % 8);
    if (t > ORD_STEPS) t = ORD_STEPS;
    if (ds_fabric_barrier_wait(ORD->b, t, 60 * SEC) != DS_OK) {
      ord_error(ORD);
      return NULL;
    }
    for (uint32_t p = 0; p < ORD_PUB; p++) {
      uint64_t v = 0;
      ds_fabric_barrier_progress(ORD->b, p, &v);
      if (v < t || ORD->data[p][t] != t * 1000 + p) ord_error(ORD);
    }
  }
  return NULL;
}

static void test_ordering_property(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  static struct ord o;
  ORD = &o;
  pthread_mutex_init(&o.mu, NULL);
  for (int round = 0; round < 4; round++) {
    memset(o.data, 0, sizeof o.data);
    o.errors = 0;
    o.seed = 12345u + (unsigned)round;
    /* Alternate pure futex sleeping and the default spin-then-sleep. */
    o.b = new_barrier(ctx, ORD_PUB, round % 2 ? -1 : 0);
    pthread_t pub[ORD_PUB], wt[ORD_WAIT];
    for (uintptr_t i = 0; i < ORD_WAIT; i++) pthread_create(&wt[i], NULL, ord_waiter, (void *)i);
    for (uintptr_t i = 0; i < ORD_PUB; i++) pthread_create(&pub[i], NULL, ord_publisher, (void *)i);
    for (int i = 0; i < ORD_PUB; i++) pthread_join(pub[i], NULL);
    for (int i = 0; i < ORD_WAIT; i++) pthread_join(wt[i], NULL);
    assert_int_equal(o.errors, 0);
    ds_fabric_barrier_destroy(o.b);
  }
  pthread_mutex_destroy(&o.mu);
  ds_context_destroy(ctx);
}

/* ---- no lost wake-up: many quick phase rounds, under a watchdog ---- */

struct rounds {
  ds_fabric_barrier *b;
  uint64_t rounds;
  uint64_t deadline_ns;
  ds__atomic_u64 limit; /* last round everybody runs; lowered by participant 0 at the deadline */
  ds__atomic_int failures;
  ds__atomic_int done;
};

struct rounds_arg {
  struct rounds *r;
  uint32_t p;
};

static void *rounds_worker(void *arg) {
  struct rounds_arg *a = arg;
  for (uint64_t i = 1; i <= ds__load(&a->r->limit); i++) {
    /* Participant 0 stops everybody at the deadline: the others read the new limit only after
     * round i completed, which needs its arrival, which comes after the store. */
    if (a->p == 0 && ds__load_relaxed(&a->r->limit) == a->r->rounds &&
        ds__now_ns() > a->r->deadline_ns)
      ds__store(&a->r->limit, i + 1);
    uint64_t t = 0;
    ds_status st = ds_fabric_barrier_arrive_and_wait(a->r->b, a->p, DS_FABRIC_BARRIER_FOREVER, &t);
    if (st != DS_OK || t != i) {
      ds__fetch_add(&a->r->failures, 1);
      break;
    }
  }
  return NULL;
}

/* Fails the process if the barrier's smallest progress stops moving for 20 s: a lost wake-up
 * would otherwise hang the test forever (the workers wait without a timeout). */
static void *watchdog(void *arg) {
  struct rounds *r = arg;
  uint64_t last = 0, since = ds__now_ns();
  while (!ds__load(&r->done)) {
    sleep_ns(50000000);
    uint64_t m = ds__barrier_min(r->b), now = ds__now_ns();
    if (m != last) {
      last = m;
      since = now;
    } else if (now - since > 20ull * 1000000000ull) {
      fprintf(stderr, "watchdog: barrier stuck at %llu for 20 s: lost wake-up\n",
              (unsigned long long)m);
      abort();
    }
  }
  return NULL;
}

/* Up to 'rounds' phase rounds, stopped after budget_s seconds (a loaded machine): at least
 * 1000 must complete. */
static void run_rounds(ds_context *ctx, uint32_t nthreads, uint64_t rounds, int64_t spin_ns,
                       double budget_s) {
  struct rounds r = {0};
  r.b = new_barrier(ctx, nthreads, spin_ns);
  r.rounds = rounds;
  r.deadline_ns = ds__now_ns() + (uint64_t)(budget_s * 1e9);
  ds__store(&r.limit, rounds);
  ds__store(&r.failures, 0);
  ds__store(&r.done, 0);
  pthread_t th[8], wd;
  struct rounds_arg args[8];
  uint64_t start = ds__now_ns();
  pthread_create(&wd, NULL, watchdog, &r);
  for (uint32_t i = 0; i < nthreads; i++) {
    args[i] = (struct rounds_arg){&r, i};
    pthread_create(&th[i], NULL, rounds_worker, &args[i]);
  }
  for (uint32_t i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  ds__store(&r.done, 1);
  pthread_join(wd, NULL);
  assert_int_equal(ds__load(&r.failures), 0);
  uint64_t m = 0, done = ds__load(&r.limit);
  printf("  %u threads, spin %lld ns: %llu rounds in %.2f s\n", nthreads, (long long)spin_ns,
         (unsigned long long)done, (double)(ds__now_ns() - start) * 1e-9);
  assert_int_equal(ds_fabric_barrier_progress(r.b, UINT32_MAX, &m), DS_OK);
  assert_int_equal(m, done);
  assert_true(done >= 1000);
  ds_fabric_barrier_destroy(r.b);
}

static void test_no_lost_wakeup(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  /* Up to 2.3 M rounds in a release build, each configuration bounded to a few seconds;
   * spin 0 forces every wait through the futex, spin 1 ms mostly spins and yields. */
  uint64_t scale = SANITIZED ? 10 : 1;
  double budget = SANITIZED ? 2.0 : 3.0;
  run_rounds(ctx, 2, 1000000 / scale, -1, budget);
  run_rounds(ctx, 2, 500000 / scale, 0, budget);
  run_rounds(ctx, 3, 200000 / scale, 0, budget);
  run_rounds(ctx, 4, 200000 / scale, 1000000, budget);
  run_rounds(ctx, 8, 200000 / scale, 0, budget);
  run_rounds(ctx, 8, 200000 / scale, -1, budget);
  assert_true(stat(ctx, "fabric.barrier.sleeps") > 0); /* the futex path was exercised */
  assert_true(stat(ctx, "fabric.barrier.wakes") > 0);
  ds_context_destroy(ctx);
}

/* ---- cancel and destroy while waiting ---- */

struct blocked {
  ds_fabric_barrier *b;
  uint64_t t;
  ds_status st;
};

static void *blocked_waiter(void *arg) {
  struct blocked *w = arg;
  w->st = ds_fabric_barrier_wait(w->b, w->t, 60 * SEC);
  return NULL;
}

static void start_blocked(ds_fabric_barrier *b, struct blocked *w, pthread_t *th, int n) {
  for (int i = 0; i < n; i++) {
    w[i] = (struct blocked){b, 100 + (uint64_t)i, DS_ERR_INTERNAL};
    pthread_create(&th[i], NULL, blocked_waiter, &w[i]);
  }
  /* Let them reach the futex (correct either way: a late waiter sees 'closed'). */
  for (int spins = 0; spins < 200 && ds__load(&b->inside) < n; spins++) sleep_ns(1000000);
  sleep_ns(20000000);
}

static void test_destroy_while_waiting(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2, 0);
  struct blocked w[4];
  pthread_t th[4];
  start_blocked(b, w, th, 4);
  uint64_t t0 = ds__now_ns();
  ds_fabric_barrier_destroy(b);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].st, DS_ERR_SHUTDOWN);
  }
  assert_true(ds__now_ns() - t0 < 30ull * 1000000000ull); /* woken, not timed out */
  ds_context_destroy(ctx);
}

static void test_cancel(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2, -1);
  struct blocked w[3];
  pthread_t th[3];
  start_blocked(b, w, th, 3);
  assert_int_equal(ds_fabric_barrier_cancel(b), DS_OK);
  assert_int_equal(ds_fabric_barrier_cancel(b), DS_OK); /* idempotent */
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].st, DS_ERR_SHUTDOWN);
  }
  assert_int_equal(ds_fabric_barrier_wait(b, 1, SEC), DS_ERR_SHUTDOWN);
  assert_non_null(strstr(ds_context_last_error(ctx), "cancelled"));
  assert_int_equal(ds_fabric_barrier_publish(b, 0, 1), DS_ERR_SHUTDOWN);
  assert_int_equal(ds_fabric_barrier_wait(b, 0, 0), DS_OK); /* already passed stays true */
  ds_fabric_barrier_destroy(b);
  ds_context_destroy(ctx);
}

/* A device failure closes the barrier with DS_ERR_DEVICE and the device's message. */
static void test_device_failure_closes(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 2, 0);
  struct blocked w[2];
  pthread_t th[2];
  start_blocked(b, w, th, 2);
  ds__barrier_close(b, DS_ERR_DEVICE, "participant 1: marker failed with error -5");
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].st, DS_ERR_DEVICE);
  }
  assert_int_equal(ds_fabric_barrier_wait(b, 1, 0), DS_ERR_DEVICE);
  assert_non_null(strstr(ds_context_last_error(ctx), "marker failed with error -5"));
  ds_fabric_barrier_destroy(b); /* a later close keeps the first status */
  ds_context_destroy(ctx);
}

/* ---- internal hooks: notifications and the remote (MPI) forward hook ---- */

struct fwd_log {
  int calls;
  uint32_t last_p;
  uint64_t last_t;
};

static void fwd(void *user, uint32_t p, uint64_t t) {
  struct fwd_log *l = user;
  l->calls++;
  l->last_p = p;
  l->last_t = t;
}

static void note(void *arg, uint64_t t, int ok) {
  int *fired = arg;
  *fired = ok ? (int)t : -1;
}

static void test_forward_hook_and_notify(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *b = new_barrier(ctx, 3, 0);
  struct fwd_log log = {0};
  ds__barrier_set_forward(b, fwd, &log);
  int fired = 0, fired_now = -7, fired_closed = 0;
  assert_int_equal(ds__barrier_on_passed(b, 4, note, &fired), DS_OK);
  assert_int_equal(ds__barrier_on_passed(b, 0, note, &fired_now), DS_OK);
  assert_int_equal(fired_now, 0); /* t = 0 is passed: fired at once, with ok */
  assert_int_equal(ds__barrier_on_passed(b, 9, note, &fired_closed), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 0, 4), DS_OK); /* local: forwarded */
  assert_int_equal(log.calls, 1);
  assert_int_equal(log.last_p, 0);
  assert_int_equal(log.last_t, 4);
  ds__barrier_advance(b, 1, 4, 0); /* a remote participant's progress: not forwarded */
  assert_int_equal(log.calls, 1);
  assert_int_equal(fired, 0);
  ds__barrier_advance(b, 2, 6, 1);
  assert_int_equal(log.calls, 2);
  assert_int_equal(fired, 4);
  assert_int_equal(fired_closed, 0);
  ds_fabric_barrier_destroy(b); /* closes: pending notifications fire with ok = 0 */
  assert_int_equal(fired_closed, -1);
  ds_context_destroy(ctx);
}

/* ---- CUDA participants ---- */

static int require_gpu(void) {
  const char *e = getenv("DS_REQUIRE_GPU");
  return e && strcmp(e, "1") == 0;
}

/* Barrier "gate" (participant 0: this thread) holds the default stream back; barrier "done"
 * (participant 0: the stream) is published by a host function behind that wait. */
static void test_cuda_participant(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_barrier *gate = new_barrier(ctx, 1, -1), *done = new_barrier(ctx, 1, -1);
  ds_status st = ds_fabric_barrier_wait_cuda(gate, NULL, 2);
  if (st == DS_ERR_UNAVAILABLE || st == DS_ERR_UNSUPPORTED) {
    printf("test_cuda_participant: skipped, no GPU (%s)\n", ds_context_last_error(ctx));
    /* Bad input is still checked before the device is touched. */
    assert_int_equal(ds_fabric_barrier_publish_cuda(done, 9, NULL, 1),
                     st == DS_ERR_UNSUPPORTED ? DS_ERR_UNSUPPORTED : DS_ERR_NOT_FOUND);
    ds_fabric_barrier_destroy(gate);
    ds_fabric_barrier_destroy(done);
    ds_context_destroy(ctx);
    if (require_gpu()) fail_msg("DS_REQUIRE_GPU=1 but the CUDA barrier is unavailable");
    return;
  }
  assert_int_equal(st, DS_OK);
  assert_int_equal(ds_fabric_barrier_publish_cuda(done, 0, NULL, 1), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(done, 0, 0), DS_ERR_INVALID_ARG); /* enqueued 1 */
  sleep_ns(50000000);
  assert_int_equal(ds_fabric_barrier_wait(done, 1, 0), DS_ERR_TIMEOUT); /* stream held back */
  assert_int_equal(ds_fabric_barrier_publish(gate, 0, 2), DS_OK);     /* releases it */
  assert_int_equal(ds_fabric_barrier_wait(done, 1, 30 * SEC), DS_OK);
  /* Destroy releases a stream still waiting: the marker behind it completes. */
  assert_int_equal(ds_fabric_barrier_wait_cuda(gate, NULL, 5), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish_cuda(done, 0, NULL, 2), DS_OK);
  ds_fabric_barrier_destroy(gate);
  assert_int_equal(ds_fabric_barrier_wait(done, 2, 30 * SEC), DS_OK);
  ds_fabric_barrier_destroy(done);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_bad_options),
      cmocka_unit_test(test_publish_bad_input),
      cmocka_unit_test(test_wait_passed_and_timeout),
      cmocka_unit_test(test_ordering_property),
      cmocka_unit_test(test_no_lost_wakeup),
      cmocka_unit_test(test_destroy_while_waiting),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_device_failure_closes),
      cmocka_unit_test(test_forward_hook_and_notify),
      cmocka_unit_test(test_cuda_participant),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
