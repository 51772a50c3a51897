/* Soak test: several threads mix scheduler tasks (groups, dependencies, cancels), cache puts
 * and gets on one shared cache, and batcher requests, for DS_SOAK_SECONDS (default 5), with
 * invariant checks: every task whose handle said it ran did so exactly once and a cancelled
 * one never; a cache get returns exactly the bytes last put under that key by some thread, or
 * a miss; every batcher reply matches its own request; the stats agree at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define THREADS 4
#define GROUP_TASKS 32
#define ROW 4 /* floats per batcher request */

typedef struct {
  ds_context *ctx;
  ds_cache *cache;
  ds_batcher *batcher;
  uint64_t deadline_ns;
  ds__atomic_i64 failures;
  ds__atomic_i64 tasks, cancelled, gets, hits, requests;
} soak;

typedef struct {
  soak *s;
  int id;
  uint64_t rng;
  ds__atomic_i64 runs[GROUP_TASKS];
} soak_thread;

static uint64_t next_rand(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

static void soak_fail(soak *s, const char *what, ds_status st) {
  if (ds__fetch_add(&s->failures, 1) < 10)
    fprintf(stderr, "soak: %s: %s (%s)\n", what, ds_status_name(st),
            ds_context_last_error(s->ctx));
}

static ds_status count_run(void *arg) {
  ds__fetch_add((ds__atomic_i64 *)arg, 1);
  return DS_OK;
}

/* A group of tasks, each after the previous one in pairs, a few cancelled at once. */
static void soak_tasks(soak_thread *t) {
  soak *s = t->s;
  ds_task_group *g = NULL;
  ds_status st = ds_task_group_create(&g, s->ctx);
  if (st != DS_OK) {
    soak_fail(s, "group create", st);
    return;
  }
  ds_task *h[GROUP_TASKS] = {NULL};
  for (int i = 0; i < GROUP_TASKS; i++) {
    ds__store(&t->runs[i], 0);
    ds_task_options o = DS_TASK_OPTIONS_INIT;
    o.group = g;
    o.prio = (int32_t)(next_rand(&t->rng) % 3);
    if (i % 2 && h[i - 1]) {
      o.deps = &h[i - 1];
      o.ndeps = 1;
    }
    if ((st = ds_task_submit(&h[i], s->ctx, count_run, &t->runs[i], &o)) != DS_OK)
      soak_fail(s, "task submit", st);
  }
  for (int i = 0; i < GROUP_TASKS; i += 7)
    if (h[i] && ds_task_cancel(h[i]) == DS_OK) ds__fetch_add(&s->cancelled, 1);
  ds_status gw = ds_task_group_wait(g, -1);
  if (gw != DS_OK && gw != DS_ERR_CANCELLED) soak_fail(s, "group wait", gw);
  for (int i = 0; i < GROUP_TASKS; i++) {
    if (!h[i]) continue;
    ds_status ts = ds_task_wait(h[i], -1);
    int64_t runs = ds__load(&t->runs[i]);
    if ((ts == DS_OK && runs != 1) || (ts == DS_ERR_CANCELLED && runs != 0) ||
        (ts != DS_OK && ts != DS_ERR_CANCELLED))
      soak_fail(s, "task ran a wrong number of times", ts);
    ds_task_release(h[i]);
  }
  ds_task_group_destroy(g);
  ds__fetch_add(&s->tasks, GROUP_TASKS);
}

/* Values carry their key and a writer-chosen version, and a checksum of both. */
static size_t soak_value(uint32_t key, uint32_t version, uint8_t *v) {
  size_t n = 16 + (key * 37u + version) % 3000;
  uint64_t x = ((uint64_t)key << 32 | version) * 0x9E3779B97F4A7C15ull + 1;
  memcpy(v, &key, 4);
  memcpy(v + 4, &version, 4);
  for (size_t i = 8; i < n; i++) v[i] = (uint8_t)next_rand(&x);
  return n;
}

static void soak_cache(soak_thread *t) {
  soak *s = t->s;
  uint8_t v[4096], got[4096];
  for (int i = 0; i < 64; i++) {
    uint32_t key = (uint32_t)(next_rand(&t->rng) % 512); /* shared by every thread */
    if (next_rand(&t->rng) % 3 == 0) {
      size_t n = soak_value(key, (uint32_t)next_rand(&t->rng), v);
      ds_status st = ds_cache_put(s->cache, &key, sizeof key, v, n);
      if (st != DS_OK) soak_fail(s, "cache put", st);
      continue;
    }
    size_t len = 0;
    ds_status st = ds_cache_get(s->cache, &key, sizeof key, got, sizeof got, &len);
    ds__fetch_add(&s->gets, 1);
    if (st == DS_ERR_NOT_FOUND) continue;
    uint32_t k2 = 0, version = 0;
    if (st == DS_OK && len >= 8) {
      memcpy(&k2, got, 4);
      memcpy(&version, got + 4, 4);
    }
    if (st != DS_OK || k2 != key || soak_value(key, version, v) != len || memcmp(v, got, len))
      soak_fail(s, "cache returned bytes never put under that key", st);
    else ds__fetch_add(&s->hits, 1);
  }
}

static ds_status double_handler(void *user, const ds_batch *b) {
  (void)user;
  const float *in = b->input->data;
  float *out = b->output->data;
  for (int64_t i = 0; i < (int64_t)b->nrequests * ROW; i++) out[i] = 2.0f * in[i];
  return DS_OK;
}

static void soak_batch(soak_thread *t) {
  soak *s = t->s;
  enum { N = 8 };
  float in[N][ROW], out[N][ROW];
  ds_tensor ti[N], to[N];
  ds_batch_request *req[N] = {NULL};
  int64_t shape = ROW;
  ds_device cpu = {DS_DEVICE_CPU, 0};
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < ROW; j++) in[i][j] = (float)(t->id * 1000000 + i * 10 + j);
    memset(out[i], 0, sizeof out[i]);
    ds_tensor_init(&ti[i], s->ctx, in[i], DS_DTYPE_F32, 1, &shape, NULL, cpu);
    ds_tensor_init(&to[i], s->ctx, out[i], DS_DTYPE_F32, 1, &shape, NULL, cpu);
    ds_batch_submit_options o = DS_BATCH_SUBMIT_OPTIONS_INIT;
    o.prio = i == 0 ? DS_PRIO_URGENT : DS_PRIO_NORMAL;
    ds_status st = ds_batcher_submit(&req[i], s->batcher, &ti[i], &to[i], &o);
    if (st != DS_OK) soak_fail(s, "batcher submit", st);
  }
  for (int i = 0; i < N; i++) {
    if (!req[i]) continue;
    ds_status st = ds_batch_request_wait(req[i], -1);
    int ok = st == DS_OK;
    for (int j = 0; ok && j < ROW; j++) ok = out[i][j] == 2.0f * in[i][j];
    if (!ok) soak_fail(s, "batcher reply does not match its request", st);
    ds_batch_request_release(req[i]);
    ds__fetch_add(&s->requests, 1);
  }
}

static void *soak_main(void *arg) {
  soak_thread *t = arg;
  while (ds__now_ns() < t->s->deadline_ns) {
    switch (next_rand(&t->rng) % 3) {
      case 0: soak_tasks(t); break;
      case 1: soak_cache(t); break;
      default: soak_batch(t); break;
    }
  }
  return NULL;
}

static void test_soak(void **state) {
  (void)state;
  const char *env = getenv("DS_SOAK_SECONDS");
  double secs = env ? atof(env) : 5.0;
  if (secs <= 0) secs = 0.1;
  soak *s = calloc(1, sizeof *s);
  assert_non_null(s);
  ds_context_options co = DS_CONTEXT_OPTIONS_INIT;
  co.flags = DS_CONTEXT_NO_ENV;
  ds_param_value params[] = {{DS_PARAM_STATS_FILE, 0, 0},
                             {DS_PARAM_TELEMETRY_PERIOD_MS, 0, 10},
                             {DS_PARAM_SCHED_WORKERS, 0, 3},
                             {DS_PARAM_SCHED_BIND, 0, 0}};
  co.params = params;
  co.nparams = 4;
  assert_int_equal(ds_context_create(&s->ctx, &co), DS_OK);
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 256 << 10; /* small: evictions to L2 and back all the time */
  o.l2_bytes = 512 << 10;
  o.prefetch_depth = 2;
  assert_int_equal(ds_cache_create(&s->cache, s->ctx, &o), DS_OK);
  ds_batcher_options bo = DS_BATCHER_OPTIONS_INIT;
  bo.handler = double_handler;
  bo.max_batch_size = 8;
  bo.max_queue_delay_us = 200;
  bo.ndim = 1;
  bo.shape[0] = ROW;
  bo.output_ndim = 1;
  bo.output_shape[0] = ROW;
  assert_int_equal(ds_batcher_create(&s->batcher, s->ctx, &bo), DS_OK);
  s->deadline_ns = ds__now_ns() + (uint64_t)(secs * 1e9);
  soak_thread *ts = calloc(THREADS, sizeof *ts);
  assert_non_null(ts);
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ts[i].s = s;
    ts[i].id = i;
    ts[i].rng = 0x1234567ull * (uint64_t)(i + 1);
    assert_int_equal(pthread_create(&th[i], NULL, soak_main, &ts[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  ds_batcher_stats bs;
  memset(&bs, 0, sizeof bs);
  bs.struct_size = sizeof bs;
  assert_int_equal(ds_batcher_stats_get(s->batcher, &bs), DS_OK);
  printf("soak: %.1f s, %d threads: %lld tasks (%lld cancelled), %lld cache gets (%lld hits), "
         "%lld batcher requests in %llu batches; %lld invariant failures\n",
         secs, THREADS, (long long)ds__load(&s->tasks), (long long)ds__load(&s->cancelled),
         (long long)ds__load(&s->gets), (long long)ds__load(&s->hits),
         (long long)ds__load(&s->requests), (unsigned long long)bs.batches,
         (long long)ds__load(&s->failures));
  assert_int_equal(ds__load(&s->failures), 0);
  assert_int_equal(bs.submitted, (uint64_t)ds__load(&s->requests));
  assert_int_equal(bs.completed, bs.submitted);
  assert_true(ds__load(&s->tasks) > 0 && ds__load(&s->gets) > 0 && ds__load(&s->requests) > 0);
  ds_batcher_destroy(s->batcher);
  ds_cache_destroy(s->cache);
  ds_context_destroy(s->ctx);
  free(ts);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_soak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
