/* Tests of the scheduler's lock-free queues on their own: the Chase-Lev deque (owner LIFO,
 * thieves FIFO, growth past the first buffer, and every entry taken exactly once while two
 * thieves race the owner) and the inject ring (FIFO, overflow behind a full ring, and every
 * entry taken exactly once with concurrent producers and consumers). Run under TSan too. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#include "sched_internal.h"

#define N_ITEMS 100000

/* Fake tasks: only their addresses are used; item i is &g_items[i]. */
static struct ds_task g_items[N_ITEMS];
static ds__atomic_int g_taken[N_ITEMS];

static int item_index(const struct ds_task *t) { return (int)(t - g_items); }

static ds_context *new_ctx(void) {
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, NULL), DS_OK);
  return ctx;
}

static void test_deque_order_and_growth(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds__deque d;
  assert_true(ds__deque_init(&d, ctx));
  int n = 3 * DS__DEQUE_INITIAL; /* grows twice */
  for (int i = 0; i < n; i++) assert_true(ds__deque_push(&d, ctx, &g_items[i]));
  assert_int_equal(ds__deque_size(&d), n);
  assert_ptr_equal(ds__deque_steal(&d), &g_items[0]);     /* thieves: oldest */
  assert_ptr_equal(ds__deque_pop(&d), &g_items[n - 1]);   /* owner: newest */
  for (int i = n - 2; i >= 1; i--) assert_ptr_equal(ds__deque_pop(&d), &g_items[i]);
  assert_null(ds__deque_pop(&d));
  assert_null(ds__deque_steal(&d));
  ds__deque_fini(&d, ctx);
  ds_context_destroy(ctx);
}

static ds__deque g_dq;
static ds__atomic_int g_done;

static void take(struct ds_task *t) {
  if (t) ds__fetch_add(&g_taken[item_index(t)], 1);
}

static void *thief(void *arg) {
  (void)arg;
  while (!ds__load(&g_done) || ds__deque_size(&g_dq) > 0) take(ds__deque_steal(&g_dq));
  return NULL;
}

/* The owner pushes everything, popping now and then; two thieves steal. Each item is taken
 * exactly once. */
static void test_deque_concurrent_exactly_once(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  for (int i = 0; i < N_ITEMS; i++) ds__store(&g_taken[i], 0);
  ds__store(&g_done, 0);
  assert_true(ds__deque_init(&g_dq, ctx));
  pthread_t th[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, thief, NULL), 0);
  for (int i = 0; i < N_ITEMS; i++) {
    assert_true(ds__deque_push(&g_dq, ctx, &g_items[i]));
    if (i % 3 == 0) take(ds__deque_pop(&g_dq));
  }
  struct ds_task *t;
  while ((t = ds__deque_pop(&g_dq))) take(t);
  ds__store(&g_done, 1);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N_ITEMS; i++)
    if (ds__load(&g_taken[i]) != 1) fail_msg("item %d taken %d times", i, ds__load(&g_taken[i]));
  ds__deque_fini(&g_dq, ctx);
  ds_context_destroy(ctx);
}

static void test_ring_order_and_overflow(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds__ring r;
  assert_true(ds__ring_init(&r, ctx));
  int n = DS__RING_CELLS + 100; /* the last 100 go to the overflow list */
  for (int i = 0; i < n; i++) ds__ring_push(&r, &g_items[i]);
  assert_int_equal(ds__ring_size(&r), n);
  for (int i = 0; i < n; i++) assert_ptr_equal(ds__ring_pop(&r), &g_items[i]);
  assert_null(ds__ring_pop(&r));
  ds__ring_fini(&r, ctx);
  ds_context_destroy(ctx);
}

static ds__ring g_ring;
static ds__atomic_int g_pushed;

static void *producer(void *arg) {
  int base = (int)(intptr_t)arg;
  for (int i = base; i < N_ITEMS; i += 2) {
    ds__ring_push(&g_ring, &g_items[i]);
    ds__fetch_add(&g_pushed, 1);
  }
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  while (ds__load(&g_pushed) < N_ITEMS || ds__ring_size(&g_ring) > 0) take(ds__ring_pop(&g_ring));
  return NULL;
}

/* Two producers, two consumers: each item is taken exactly once (through the ring or its
 * overflow list). */
static void test_ring_concurrent_exactly_once(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  for (int i = 0; i < N_ITEMS; i++) ds__store(&g_taken[i], 0);
  ds__store(&g_pushed, 0);
  assert_true(ds__ring_init(&g_ring, ctx));
  pthread_t th[4];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, producer, (void *)(intptr_t)i), 0);
  for (int i = 2; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, consumer, NULL), 0);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N_ITEMS; i++)
    if (ds__load(&g_taken[i]) != 1) fail_msg("item %d taken %d times", i, ds__load(&g_taken[i]));
  ds__ring_fini(&g_ring, ctx);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deque_order_and_growth),
      cmocka_unit_test(test_deque_concurrent_exactly_once),
      cmocka_unit_test(test_ring_order_and_overflow),
      cmocka_unit_test(test_ring_concurrent_exactly_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
