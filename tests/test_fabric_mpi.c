/* Tests of the fabric's MPI transport, run by ctest under mpirun with 2 and 3 ranks (and alone
 * as one rank): endpoint creation, buffers fetched from their owner and flushed, owner-computes
 * and explicitly placed tasks (which hold no local worker while they wait), LOW-task migration
 * to idle ranks, the cross-rank timestamp barrier, owners' writes invalidating other ranks'
 * copies, fabric graphs run across the ranks (owner-computes, automatic transfers), and a rank
 * that dies mid-run (the others fail with DS_ERR_IO naming it, in bounded
 * time). Every rank runs every test in the same order: each test is collective. Without MPI in
 * the build, the functions must say so (DS_ERR_UNSUPPORTED). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "internal.h"
#if DS_HAVE_MPI
#include <mpi.h>

#include "mpi/mpi_internal.h" /* to take the progress-thread fetch path on some ranks */
#endif

static ds_context *new_ctx(int64_t dead_ms) {
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_SCHED_WORKERS, 0, 2},    {DS_PARAM_SCHED_TICK_MS, 0, 5},
                         {DS_PARAM_MPI_TIMEOUT_MS, 0, 20000}, {DS_PARAM_MPI_HEARTBEAT_MS, 0, 50},
                         {DS_PARAM_MPI_DEAD_MS, 0, dead_ms}, {DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, 1},
                         {DS_PARAM_SCHED_BIND, 0, 0}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = sizeof pv / sizeof pv[0];
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

#if DS_HAVE_MPI

/* A hung run says where it is stuck (see main) rather than being killed silently by ctest. */
static const char *volatile g_phase = "start";
static int g_peer_died; /* MPI_Finalize may then wait for the dead rank forever (Open MPI 4.1) */

typedef struct fixture {
  ds_context *ctx;
  ds_mpi *m;
  int rank, size;
} fixture;

static fixture open_fixture(int64_t dead_ms) {
  fixture f;
  f.ctx = new_ctx(dead_ms);
  f.m = NULL;
  g_phase = "ds_mpi_create";
  assert_int_equal(ds_mpi_create(&f.m, f.ctx, NULL), DS_OK);
  g_phase = "a test body";
  f.rank = ds_mpi_rank(f.m);
  f.size = ds_mpi_size(f.m);
  return f;
}

static void close_fixture(fixture *f) {
  g_phase = "ds_mpi_destroy";
  ds_mpi_destroy(f->m);
  ds_context_destroy(f->ctx);
}

/* Everyone passes ts before anyone goes on. */
static void sync_all(ds_mpi *m, uint64_t ts) {
  assert_int_equal(ds_mpi_barrier_arrive(m, ts), DS_OK);
  assert_int_equal(ds_mpi_barrier_wait(m, ts, -1), DS_OK);
}

static void test_create_and_bad_args(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  assert_int_equal(f.size, world);
  assert_true(f.rank >= 0 && f.rank < f.size);
  assert_true(ds_mpi_thread_level(f.m) >= MPI_THREAD_SERIALIZED);
  for (int r = 0; r < f.size; r++) assert_int_equal(ds_mpi_rank_alive(f.m, r), 1);
  assert_int_equal(ds_mpi_rank_alive(f.m, f.size), 0);
  ds_mpi *m2 = (ds_mpi *)1;
  assert_int_equal(ds_mpi_create(&m2, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_null(m2);
  ds_mpi_options bad = DS_MPI_OPTIONS_INIT;
  bad.struct_size = 3;
  assert_int_equal(ds_mpi_create(&m2, f.ctx, &bad), DS_ERR_ABI);
  char mem[8];
  assert_int_equal(ds_mpi_buffer_register(f.m, 0, 0, mem, 8), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_mpi_buffer_register(f.m, 1, f.size, mem, 8), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_mpi_buffer_register(f.m, 1, f.rank, NULL, 8), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_mpi_buffer_register(f.m, 1, f.rank, mem, 8), DS_OK);
  assert_int_equal(ds_mpi_buffer_register(f.m, 1, f.rank, mem, 8), DS_ERR_BUSY);
  const void *p = NULL;
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 2, &p, 100), DS_ERR_NOT_FOUND);
  assert_non_null(strstr(ds_context_last_error(f.ctx), "buffer 2"));
  assert_int_equal(ds_mpi_buffer_unregister(f.m, 2), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_mpi_buffer_unregister(f.m, 1), DS_OK);
  assert_int_equal(ds_mpi_task_submit(NULL, f.m, "nope", NULL, 0, NULL, 0, NULL, NULL),
                   DS_ERR_NOT_FOUND);
  ds_mpi_destroy(NULL);
  close_fixture(&f);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 12));
}

/* Each rank owns one small and one large buffer; every rank fetches all of them. The owner
 * then changes its data: a copy stays stale until flushed, then the next fetch sees it. */
static void test_buffers_fetch_and_flush(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  const size_t small = 4096, large = (size_t)6 << 20;
  unsigned char *mine_s = malloc(small), *mine_l = malloc(large), *expect = malloc(large);
  assert_non_null(mine_s);
  assert_non_null(mine_l);
  assert_non_null(expect);
  fill(mine_s, small, (unsigned)f.rank);
  fill(mine_l, large, (unsigned)f.rank + 100);
  for (int r = 0; r < f.size; r++) {
    assert_int_equal(ds_mpi_buffer_register(f.m, 10 + (uint64_t)r, r, r == f.rank ? mine_s : NULL,
                                            small), DS_OK);
    assert_int_equal(ds_mpi_buffer_register(f.m, 20 + (uint64_t)r, r, r == f.rank ? mine_l : NULL,
                                            large), DS_OK);
  }
  /* Buffer 30 is registered with another size than its owner's (rank 0) elsewhere. */
  int peer = (f.rank + 1) % f.size;
  assert_int_equal(ds_mpi_buffer_register(f.m, 30, 0, f.rank == 0 ? mine_s : NULL,
                                          f.rank == 0 ? small : small / 2), DS_OK);
  sync_all(f.m, 1);
  for (int r = 0; r < f.size; r++) {
    const void *p = NULL;
    assert_int_equal(ds_mpi_buffer_fetch(f.m, 10 + (uint64_t)r, &p, -1), DS_OK);
    fill(expect, small, (unsigned)r);
    assert_memory_equal(p, expect, small);
    assert_int_equal(ds_mpi_buffer_fetch(f.m, 20 + (uint64_t)r, &p, -1), DS_OK);
    fill(expect, large, (unsigned)r + 100);
    assert_memory_equal(p, expect, large);
  }
  if (f.rank != 0) {
    const void *p = NULL;
    assert_int_equal(ds_mpi_buffer_fetch(f.m, 30, &p, -1), DS_ERR_FORMAT);
    assert_non_null(strstr(ds_context_last_error(f.ctx), "bytes on its owner"));
  }
  sync_all(f.m, 2);
  fill(mine_s, small, (unsigned)f.rank + 7); /* the owner changes its data */
  sync_all(f.m, 3);
  const void *p = NULL;
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 10 + (uint64_t)peer, &p, -1), DS_OK);
  fill(expect, small, (unsigned)peer + (peer == f.rank ? 7u : 0u));
  assert_memory_equal(p, expect, small); /* cached: still the old data (or mine) */
  assert_int_equal(ds_mpi_buffer_flush(f.m, 0), DS_OK);
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 10 + (uint64_t)peer, &p, -1), DS_OK);
  fill(expect, small, (unsigned)peer + 7);
  assert_memory_equal(p, expect, small);
  sync_all(f.m, 4); /* nobody unregisters memory another rank still reads */
  for (int r = 0; r < f.size; r++) {
    assert_int_equal(ds_mpi_buffer_unregister(f.m, 10 + (uint64_t)r), DS_OK);
    assert_int_equal(ds_mpi_buffer_unregister(f.m, 20 + (uint64_t)r), DS_OK);
  }
  close_fixture(&f); /* buffer 30 is left for destroy to free */
  free(mine_s);
  free(mine_l);
  free(expect);
}

/* ---- task functions every rank registers ---- */

typedef struct reply {
  int32_t rank;
  int64_t value;
} reply;

static ds_status fn_square(void *user, ds_mpi_call *c) {
  (void)user;
  int64_t x = 0;
  if (c->args_len != sizeof x) return DS_ERR_INVALID_ARG;
  memcpy(&x, c->args, sizeof x);
  reply r = {c->rank, x * x};
  if (c->result_cap < sizeof r) {
    c->result_len = sizeof r; /* too small: the library reports DS_ERR_FULL */
    return DS_OK;
  }
  memcpy(c->result, &r, sizeof r);
  c->result_len = sizeof r;
  return DS_OK;
}

static ds_status fn_sum_data(void *user, ds_mpi_call *c) {
  (void)user;
  if (!c->data) return DS_ERR_STATE;
  reply r = {c->rank, 0};
  for (size_t i = 0; i < c->data_len; i++) r.value += ((const unsigned char *)c->data)[i];
  memcpy(c->result, &r, sizeof r);
  c->result_len = sizeof r;
  return DS_OK;
}

static ds_status fn_fail(void *user, ds_mpi_call *c) {
  (void)user, (void)c;
  return DS_ERR_CORRUPT;
}

static ds_status fn_slow(void *user, ds_mpi_call *c) {
  (void)user;
  usleep(20000);
  return fn_square(NULL, c);
}

static void register_all(ds_mpi *m) {
  assert_int_equal(ds_mpi_task_register(m, "square", fn_square, NULL), DS_OK);
  assert_int_equal(ds_mpi_task_register(m, "sum_data", fn_sum_data, NULL), DS_OK);
  assert_int_equal(ds_mpi_task_register(m, "fail", fn_fail, NULL), DS_OK);
  assert_int_equal(ds_mpi_task_register(m, "slow", fn_slow, NULL), DS_OK);
  assert_int_equal(ds_mpi_task_register(m, "square", fn_square, NULL), DS_ERR_BUSY);
}

static ds_status run_task(fixture *f, const char *name, int32_t rank, uint64_t buffer, int64_t x,
                          reply *out, size_t cap) {
  ds_mpi_submit_options so = DS_MPI_SUBMIT_OPTIONS_INIT;
  so.rank = rank;
  so.buffer = buffer;
  ds_task_options to = DS_TASK_OPTIONS_INIT; /* NORMAL: never migrated */
  so.task = &to;
  size_t len = 0;
  ds_task *t = NULL;
  ds_status st = ds_mpi_task_submit(&t, f->m, name, &x, sizeof x, out, cap, &len, &so);
  if (st != DS_OK) return st;
  st = ds_task_wait(t, 30000);
  ds_task_release(t);
  if (st == DS_OK) assert_int_equal(len, sizeof *out);
  return st;
}

/* Placed tasks run where asked; owner-computes runs on the buffer's owner with its memory;
 * failures come back with their status. */
static void test_tasks_placed_and_owner_computes(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  register_all(f.m);
  assert_int_equal(ds_mpi_task_register(f.m, f.rank == 0 ? "only_rank0" : "only_others", fn_square,
                                        NULL), DS_OK);
  static unsigned char data[1000];
  for (int i = 0; i < 1000; i++) data[i] = (unsigned char)(i % 7);
  int64_t want_sum = 0;
  for (int i = 0; i < 1000; i++) want_sum += i % 7;
  int owner = f.size - 1;
  assert_int_equal(ds_mpi_buffer_register(f.m, 77, owner, f.rank == owner ? data : NULL, 1000), DS_OK);
  sync_all(f.m, 1);
  for (int r = 0; r < f.size; r++) {
    reply out = {-1, 0};
    assert_int_equal(run_task(&f, "square", r, 0, 12 + r, &out, sizeof out), DS_OK);
    assert_int_equal(out.rank, r);
    assert_int_equal(out.value, (int64_t)(12 + r) * (12 + r));
  }
  reply out = {-1, 0};
  assert_int_equal(run_task(&f, "sum_data", -1, 77, 0, &out, sizeof out), DS_OK);
  assert_int_equal(out.rank, owner);
  assert_int_equal(out.value, want_sum);
  int peer = (f.rank + 1) % f.size;
  assert_int_equal(run_task(&f, "fail", peer, 0, 0, &out, sizeof out), DS_ERR_CORRUPT);
  assert_int_equal(run_task(&f, "square", peer, 0, 3, &out, 4), DS_ERR_FULL);
  if (f.size > 1 && f.rank == 0) { /* registered here only: the remote rank says so */
    assert_int_equal(run_task(&f, "only_rank0", 1, 0, 3, &out, sizeof out), DS_ERR_NOT_FOUND);
  }
  sync_all(f.m, 2);
  close_fixture(&f);
}

/* Rank 0 is overloaded with LOW work (the cap of 1 is taken by a long task, 24 LOW tasks wait):
 * its scheduler offers them to the hook, which sends them to the idle ranks; results come back
 * through the usual task completion. */
static ds_status hold_worker(void *arg) {
  (void)arg;
  usleep(400000);
  return DS_OK;
}

static void test_low_tasks_migrate_to_idle_ranks(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  register_all(f.m);
  sync_all(f.m, 1);
  usleep(150000); /* heartbeats tell rank 0 the others' load */
  enum { N = 24 };
  if (f.rank == 0) {
    ds_task_options lo = DS_TASK_OPTIONS_INIT;
    lo.prio = DS_PRIO_LOW;
    ds_task *hold = NULL;
    assert_int_equal(ds_task_submit(&hold, f.ctx, hold_worker, NULL, &lo), DS_OK);
    usleep(20000);
    ds_task_group *g = NULL;
    assert_int_equal(ds_task_group_create(&g, f.ctx), DS_OK);
    ds_task_options to = DS_TASK_OPTIONS_INIT;
    to.prio = DS_PRIO_LOW;
    to.group = g;
    ds_mpi_submit_options so = DS_MPI_SUBMIT_OPTIONS_INIT;
    so.task = &to;
    static reply out[N];
    static size_t len[N];
    for (int i = 0; i < N; i++) {
      int64_t x = i;
      out[i].rank = -1;
      assert_int_equal(ds_mpi_task_submit(NULL, f.m, "slow", &x, sizeof x, &out[i], sizeof out[i],
                                          &len[i], &so), DS_OK);
    }
    assert_int_equal(ds_task_group_wait(g, 60000), DS_OK);
    ds_task_group_destroy(g);
    assert_int_equal(ds_task_wait(hold, 30000), DS_OK);
    ds_task_release(hold);
    int by_rank[8] = {0};
    for (int i = 0; i < N; i++) {
      assert_int_equal(len[i], sizeof out[i]);
      assert_int_equal(out[i].value, (int64_t)i * i);
      assert_true(out[i].rank >= 0 && out[i].rank < f.size);
      by_rank[out[i].rank < 8 ? out[i].rank : 7]++;
    }
    uint64_t migrated = 0;
    assert_int_equal(ds_mpi_task_counts(f.m, &migrated, NULL), DS_OK);
    printf("migration with %d ranks: %llu of %d LOW tasks migrated; ran on rank 0: %d, 1: %d, "
           "2: %d\n", f.size, (unsigned long long)migrated, N, by_rank[0], by_rank[1], by_rank[2]);
    if (f.size > 1) {
      assert_true(migrated > 0);
      assert_int_equal((int)migrated, N - by_rank[0]);
    } else {
      assert_int_equal(migrated, 0);
    }
  }
  sync_all(f.m, 2);
  if (f.rank != 0 && f.size > 1) {
    uint64_t ran = 0;
    assert_int_equal(ds_mpi_task_counts(f.m, NULL, &ran), DS_OK);
    printf("rank %d ran %llu tasks for others\n", f.rank, (unsigned long long)ran);
  }
  close_fixture(&f);
}

static void test_barrier_timestamps(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  for (uint64_t ts = 1; ts <= 20; ts++) sync_all(f.m, ts);
  assert_int_equal(ds_mpi_barrier_arrive(f.m, 5), DS_OK); /* older: ignored */
  /* Nobody passes 1000: the wait times out naming a rank (this one, with one rank). */
  uint64_t t0 = ds__now_ns();
  assert_int_equal(ds_mpi_barrier_wait(f.m, 1000, 200), DS_ERR_TIMEOUT);
  assert_true(ds__now_ns() - t0 >= 150000000u);
  assert_non_null(strstr(ds_context_last_error(f.ctx), "rank "));
  sync_all(f.m, 21);
  /* Bridged to an in-process barrier: participant 0 is a local one, 1.. the ranks. */
  ds_fabric_barrier_options bo = DS_FABRIC_BARRIER_OPTIONS_INIT;
  bo.participants = (uint32_t)f.size + 1;
  ds_fabric_barrier *b = NULL;
  assert_int_equal(ds_fabric_barrier_create(&b, f.ctx, &bo), DS_OK);
  assert_int_equal(ds_mpi_barrier_bridge(f.m, b, 1), DS_OK);
  assert_int_equal(ds_fabric_barrier_publish(b, 0, 30), DS_OK);
  assert_int_equal(ds_fabric_barrier_wait(b, 21, 20000000000LL), DS_OK); /* known already */
  assert_int_equal(ds_fabric_barrier_wait(b, 30, 0), DS_ERR_TIMEOUT);
  assert_int_equal(ds_mpi_barrier_arrive(f.m, 30), DS_OK);
  assert_int_equal(ds_fabric_barrier_wait(b, 30, 20000000000LL), DS_OK);
  sync_all(f.m, 31);
  assert_int_equal(ds_mpi_barrier_bridge(f.m, NULL, 0), DS_OK);
  ds_fabric_barrier_destroy(b);
  close_fixture(&f);
}

/* Fabric buffers (ds_buffer) as owner-ranked buffers: the owner writes through an acquire,
 * the others fetch into their buffer's host replica and read it back through an acquire;
 * owner-computes sums the owner's buffer; the owner's write through the fabric drops the
 * other ranks' copies. */
static void test_fabric_buffer_attach(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  register_all(f.m);
  const size_t n = 64 << 10;
  ds_buffer *buf = NULL;
  assert_int_equal(ds_buffer_create(&buf, f.ctx, n, NULL), DS_OK);
  int32_t cpu = -1;
  assert_int_equal(ds_fabric_device_find(&cpu, f.ctx, DS_FABRIC_DEVICE_CPU, 0), DS_OK);
  int owner = f.size - 1;
  if (f.rank == owner) {
    void *p = NULL;
    assert_int_equal(ds_buffer_acquire(&p, buf, cpu, DS_ACCESS_WRITE), DS_OK);
    for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = (unsigned char)(i % 3);
    assert_int_equal(ds_buffer_release(buf, cpu), DS_OK);
  }
  assert_int_equal(ds_mpi_buffer_attach(f.m, 40, owner, buf), DS_OK);
  assert_int_equal(ds_mpi_buffer_attach(f.m, 40, owner, buf), DS_ERR_BUSY);
  sync_all(f.m, 1);
  const void *got = NULL;
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 40, &got, -1), DS_OK);
  void *p = NULL;
  assert_int_equal(ds_buffer_acquire(&p, buf, cpu, DS_ACCESS_READ), DS_OK);
  assert_ptr_equal(p, got);
  int64_t want = 0, sum = 0;
  for (size_t i = 0; i < n; i++) {
    want += (int64_t)(i % 3);
    sum += ((const unsigned char *)p)[i];
  }
  assert_int_equal(sum, want);
  assert_int_equal(ds_buffer_release(buf, cpu), DS_OK);
  reply out = {-1, 0};
  assert_int_equal(run_task(&f, "sum_data", -1, 40, 0, &out, sizeof out), DS_OK);
  assert_int_equal(out.rank, owner);
  assert_int_equal(out.value, want);
  sync_all(f.m, 2);
  /* The owner writes through the fabric only (acquire WRITE, release; no
   * ds_mpi_buffer_written, no flush anywhere): the other ranks' copies are dropped, and a fetch
   * after the owner's next barrier arrival sees the new bytes. */
  if (f.rank == owner) {
    assert_int_equal(ds_buffer_acquire(&p, buf, cpu, DS_ACCESS_WRITE), DS_OK);
    for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = (unsigned char)(i % 5);
    assert_int_equal(ds_buffer_release(buf, cpu), DS_OK);
  }
  sync_all(f.m, 3);
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 40, &got, -1), DS_OK);
  want = sum = 0;
  for (size_t i = 0; i < n; i++) {
    want += (int64_t)(i % 5);
    sum += ((const unsigned char *)got)[i];
  }
  assert_int_equal(sum, want);
  sync_all(f.m, 4);
  assert_int_equal(ds_mpi_buffer_unregister(f.m, 40), DS_OK);
  assert_int_equal(ds_buffer_destroy(buf), DS_OK);
  close_fixture(&f);
}

/* A rank inside ds_mpi_destroy keeps serving the others until they all reach it too. */
static void test_destroying_rank_still_serves(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  static char mem[256];
  memset(mem, 0x5a, sizeof mem);
  register_all(f.m);
  assert_int_equal(ds_mpi_buffer_register(f.m, 9, 0, f.rank == 0 ? mem : NULL, sizeof mem), DS_OK);
  sync_all(f.m, 1);
  if (f.rank != 0) {
    usleep(100000); /* rank 0 is in destroy by now */
    const void *p = NULL;
    assert_int_equal(ds_mpi_buffer_fetch(f.m, 9, &p, -1), DS_OK);
    assert_memory_equal(p, mem, sizeof mem);
    reply out;
    assert_int_equal(run_task(&f, "square", 0, 0, 5, &out, sizeof out), DS_OK);
    assert_int_equal(out.value, 25);
  }
  close_fixture(&f);
}

/* ---- item: the owner's writes invalidate other ranks' copies ---- */

static ds_status fn_add_one(void *user, ds_mpi_call *c) {
  (void)user;
  if (!c->data) return DS_ERR_STATE;
  for (size_t i = 0; i < c->data_len; i++) ((unsigned char *)c->data)[i]++;
  c->result_len = 0;
  return DS_OK;
}

static void test_owner_writes_invalidate_copies(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  static unsigned char mem[4096];
  memset(mem, 1, sizeof mem);
  /* Odd ranks fetch through the progress thread, as under MPI_THREAD_SERIALIZED; the others
   * make their own MPI calls (MPI_THREAD_MULTIPLE, what this test initialised). */
  if (f.rank % 2) f.m->level = MPI_THREAD_SERIALIZED;
  assert_int_equal(ds_mpi_task_register(f.m, "add_one", fn_add_one, NULL), DS_OK);
  assert_int_equal(ds_mpi_buffer_register(f.m, 50, 0, f.rank == 0 ? mem : NULL, sizeof mem), DS_OK);
  assert_int_equal(ds_mpi_buffer_written(f.m, 51), DS_ERR_NOT_FOUND);
  if (f.rank != 0) assert_int_equal(ds_mpi_buffer_written(f.m, 50), DS_ERR_INVALID_ARG);
  sync_all(f.m, 1);
  const void *p = NULL;
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 50, &p, -1), DS_OK);
  assert_int_equal(((const unsigned char *)p)[4095], 1);
  sync_all(f.m, 2);
  if (f.rank == 0) { /* the owner writes by itself and says so */
    memset(mem, 2, sizeof mem);
    assert_int_equal(ds_mpi_buffer_written(f.m, 50), DS_OK);
  }
  sync_all(f.m, 3); /* the invalidation travels ahead of rank 0's arrival */
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 50, &p, -1), DS_OK); /* no flush */
  assert_int_equal(((const unsigned char *)p)[0], 2);
  assert_int_equal(((const unsigned char *)p)[4095], 2);
  sync_all(f.m, 4);
  if (f.rank == f.size - 1) { /* an owner-computes task writes: copies are dropped too */
    reply out;
    ds_mpi_submit_options so = DS_MPI_SUBMIT_OPTIONS_INIT;
    so.buffer = 50;
    ds_task_options to = DS_TASK_OPTIONS_INIT;
    so.task = &to;
    ds_task *t = NULL;
    assert_int_equal(ds_mpi_task_submit(&t, f.m, "add_one", NULL, 0, &out, sizeof out, NULL, &so),
                     DS_OK);
    assert_int_equal(ds_task_wait(t, 30000), DS_OK);
    ds_task_release(t);
  }
  sync_all(f.m, 5);
  if (f.rank == 0) assert_int_equal(mem[7], 3);
  sync_all(f.m, 6); /* rank 0 arrived after it ran the task and sent the invalidation */
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 50, &p, -1), DS_OK);
  assert_int_equal(((const unsigned char *)p)[7], 3);
  sync_all(f.m, 7);
  assert_int_equal(ds_mpi_buffer_unregister(f.m, 50), DS_OK);
  close_fixture(&f);
}

/* ---- item: a task placed on another rank holds no local worker while it waits ---- */

static ds_status fn_sleep(void *user, ds_mpi_call *c) {
  (void)user, (void)c;
  usleep(400000);
  return DS_OK;
}

static ds_status local_mark(void *arg) {
  *(int *)arg = 1;
  return DS_OK;
}

static void test_placed_task_frees_worker(void **state) {
  (void)state;
  fixture f = open_fixture(5000); /* 2 workers */
  assert_int_equal(ds_mpi_task_register(f.m, "sleep", fn_sleep, NULL), DS_OK);
  sync_all(f.m, 1);
  if (f.size > 1 && f.rank == 0) {
    enum { NP = 4 }; /* more than the workers */
    ds_task *placed[NP];
    ds_mpi_submit_options so = DS_MPI_SUBMIT_OPTIONS_INIT;
    ds_task_options to = DS_TASK_OPTIONS_INIT;
    so.task = &to;
    for (int i = 0; i < NP; i++) {
      so.rank = 1 + i % (f.size - 1);
      assert_int_equal(ds_mpi_task_submit(&placed[i], f.m, "sleep", NULL, 0, NULL, 0, NULL, &so),
                       DS_OK);
    }
    usleep(50000); /* the placed tasks have started: before, they held both workers */
    int ran = 0;
    ds_task *local = NULL;
    assert_int_equal(ds_task_submit(&local, f.ctx, local_mark, &ran, NULL), DS_OK);
    assert_int_equal(ds_task_wait(local, 30000), DS_OK);
    assert_int_equal(ran, 1);
    int still = 0; /* the remote ones sleep 400 ms each (the peer runs 2 at a time) */
    for (int i = 0; i < NP; i++) still += ds_task_state(placed[i]) != DS_TASK_DONE;
    assert_true(still > 0);
    for (int i = 0; i < NP; i++) {
      assert_int_equal(ds_task_wait(placed[i], 30000), DS_OK);
      ds_task_release(placed[i]);
    }
    ds_task_release(local);
  }
  sync_all(f.m, 2);
  close_fixture(&f);
}

/* ---- item: graph nodes run on the owner of what they write; transfers are automatic ---- */

enum { GT = 6, GN = 64 }; /* tiles, floats per tile */

static ds_status k_scale2(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                          size_t args_len) {
  (void)args, (void)args_len;
  if (nbufs != 1) return DS_ERR_INVALID_ARG;
  float *x = bufs[0];
  for (size_t i = 0; i < sizes[0] / sizeof *x; i++) x[i] *= 2.0f;
  return DS_OK;
}

static ds_status k_add(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                       size_t args_len) { /* bufs[n-1] (+)= sum of the others */
  int32_t accumulate = 0;
  if (nbufs < 2 || args_len != sizeof accumulate) return DS_ERR_INVALID_ARG;
  memcpy(&accumulate, args, sizeof accumulate);
  float *y = bufs[nbufs - 1];
  for (size_t i = 0; i < sizes[0] / sizeof *y; i++) {
    float s = accumulate ? y[i] : 0.0f;
    for (size_t b = 0; b + 1 < nbufs; b++) s += ((const float *)bufs[b])[i];
    y[i] = s;
  }
  return DS_OK;
}

typedef struct gfix {
  ds_kernel *scale, *add;
  ds_buffer *x[GT], *y[GT];
  ds_graph *g;
  int32_t cpu;
} gfix;

static int xo(const fixture *f, int i) { return i % f->size; }       /* owner of X[i] */
static int yo(const fixture *f, int i) { return (i + 1) % f->size; } /* owner of Y[i] */

/* X[i] *= 2 (owner); Y[i] = X[i] + X[i+1] (owner of Y[i]); X[0] += Y[GT-1] placed on the last
 * rank (not X[0]'s owner when there are several): its result goes back to rank 0. */
static void graph_build(fixture *f, gfix *G, int32_t *placement) {
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "scale2";
  ko.cpu = k_scale2;
  assert_int_equal(ds_kernel_create(&G->scale, f->ctx, &ko), DS_OK);
  ko.name = "add";
  ko.cpu = k_add;
  assert_int_equal(ds_kernel_create(&G->add, f->ctx, &ko), DS_OK);
  assert_int_equal(ds_fabric_device_find(&G->cpu, f->ctx, DS_FABRIC_DEVICE_CPU, 0), DS_OK);
  for (int i = 0; i < GT; i++) {
    assert_int_equal(ds_buffer_create(&G->x[i], f->ctx, GN * sizeof(float), NULL), DS_OK);
    assert_int_equal(ds_buffer_create(&G->y[i], f->ctx, GN * sizeof(float), NULL), DS_OK);
    assert_int_equal(ds_mpi_buffer_attach(f->m, 100 + (uint64_t)i, xo(f, i), G->x[i]), DS_OK);
    assert_int_equal(ds_mpi_buffer_attach(f->m, 200 + (uint64_t)i, yo(f, i), G->y[i]), DS_OK);
  }
  assert_int_equal(ds_graph_create(&G->g, f->ctx), DS_OK);
  int32_t node = 0, zero = 0, one = 1;
  for (int i = 0; i < GT; i++) {
    ds_graph_access a = {G->x[i], DS_ACCESS_RW};
    assert_int_equal(ds_graph_add(&node, G->g, G->scale, &a, 1, NULL), DS_OK);
    placement[node] = -1;
  }
  for (int i = 0; i < GT; i++) {
    ds_graph_access a[3] = {{G->x[i], DS_ACCESS_READ}, {G->x[(i + 1) % GT], DS_ACCESS_READ},
                            {G->y[i], DS_ACCESS_WRITE}};
    ds_node_options no = DS_NODE_OPTIONS_INIT;
    no.args = &zero;
    no.args_len = sizeof zero;
    assert_int_equal(ds_graph_add(&node, G->g, G->add, a, 3, &no), DS_OK);
    placement[node] = -1;
  }
  ds_graph_access a[2] = {{G->y[GT - 1], DS_ACCESS_READ}, {G->x[0], DS_ACCESS_RW}};
  ds_node_options no = DS_NODE_OPTIONS_INIT;
  no.args = &one;
  no.args_len = sizeof one;
  assert_int_equal(ds_graph_add(&node, G->g, G->add, a, 2, &no), DS_OK);
  placement[node] = f->size - 1;
}

static void set_tile(gfix *G, ds_buffer *b, float v) {
  float *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, b, G->cpu, DS_ACCESS_WRITE), DS_OK);
  for (int k = 0; k < GN; k++) p[k] = v;
  assert_int_equal(ds_buffer_release(b, G->cpu), DS_OK);
}

static float get_tile(gfix *G, ds_buffer *b) {
  float *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, b, G->cpu, DS_ACCESS_READ), DS_OK);
  float v = p[0];
  for (int k = 1; k < GN; k++) assert_true(p[k] == v);
  assert_int_equal(ds_buffer_release(b, G->cpu), DS_OK);
  return v;
}

static void test_graph_owner_computes(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  gfix G;
  int32_t placement[2 * GT + 1];
  graph_build(&f, &G, placement);
  for (int i = 0; i < GT; i++) { /* owners hold the data; other ranks' copies are garbage */
    set_tile(&G, G.x[i], xo(&f, i) == f.rank ? (float)(i + 1) : -99.0f);
    set_tile(&G, G.y[i], -77.0f);
  }
  ds_mpi_graph_options go = DS_MPI_GRAPH_OPTIONS_INIT;
  go.placement = placement;
  ds_mpi_graph_info info = {sizeof info, 0, 0, 0, 0, 0, 0.0};
  assert_int_equal(ds_mpi_graph_run(f.m, G.g, &go, &info), DS_OK);
  uint32_t mine = 0;
  for (int i = 0; i < GT; i++) mine += (xo(&f, i) == f.rank) + (yo(&f, i) == f.rank);
  mine += f.rank == f.size - 1;
  assert_int_equal(info.nodes_here, mine);
  if (f.size == 1) assert_int_equal(info.sends + info.recvs, 0);
  else assert_true(info.recvs > 0 && info.bytes_received == info.recvs * GN * sizeof(float));
  /* Owners check theirs: X[i] = 2(i+1), Y[i] = X[i] + X[i+1], X[0] = 2 + Y[GT-1]. */
  float y_last = 2.0f * GT + 2.0f;
  for (int i = 0; i < GT; i++) {
    if (xo(&f, i) == f.rank)
      assert_true(get_tile(&G, G.x[i]) == (i == 0 ? 2.0f + y_last : 2.0f * (i + 1)));
    if (yo(&f, i) == f.rank)
      assert_true(get_tile(&G, G.y[i]) == 2.0f * (i + 1) + 2.0f * ((i + 1) % GT + 1));
  }
  /* The run returned when every rank's part was done: any rank reads any tile at once. */
  const void *p = NULL;
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 200 + GT - 2, &p, -1), DS_OK);
  assert_true(((const float *)p)[GN - 1] == 2.0f * (GT - 1) + 2.0f * GT);
  sync_all(f.m, 2); /* the owners do not write while others still read */
  /* Again: the data changed on the owners, so fetched copies must not be served stale. */
  assert_int_equal(ds_mpi_graph_run(f.m, G.g, &go, NULL), DS_OK);
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 200 + GT - 2, &p, -1), DS_OK);
  assert_true(((const float *)p)[0] == 4.0f * (GT - 1) + 4.0f * GT);
  sync_all(f.m, 3);
  /* Bad calls. */
  int32_t bad[2 * GT + 1];
  memcpy(bad, placement, sizeof bad);
  bad[3] = f.size;
  go.placement = bad;
  assert_int_equal(ds_mpi_graph_run(f.m, G.g, &go, NULL), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(f.ctx), "rank"));
  ds_mpi_graph_options abi = DS_MPI_GRAPH_OPTIONS_INIT;
  abi.struct_size = 4;
  assert_int_equal(ds_mpi_graph_run(f.m, G.g, &abi, NULL), DS_ERR_ABI);
  assert_int_equal(ds_mpi_graph_run(f.m, NULL, NULL, NULL), DS_ERR_INVALID_ARG);
  ds_buffer *loose = NULL;
  assert_int_equal(ds_buffer_create(&loose, f.ctx, 16, NULL), DS_OK);
  ds_graph *g2 = NULL;
  assert_int_equal(ds_graph_create(&g2, f.ctx), DS_OK);
  ds_graph_access la = {loose, DS_ACCESS_RW};
  assert_int_equal(ds_graph_add(NULL, g2, G.scale, &la, 1, NULL), DS_OK);
  assert_int_equal(ds_mpi_graph_run(f.m, g2, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(f.ctx), "not attached"));
  ds_graph_destroy(g2);
  assert_int_equal(ds_buffer_destroy(loose), DS_OK);
  sync_all(f.m, 4);
  ds_graph_destroy(G.g);
  for (int i = 0; i < GT; i++) {
    assert_int_equal(ds_mpi_buffer_unregister(f.m, 100 + (uint64_t)i), DS_OK);
    assert_int_equal(ds_mpi_buffer_unregister(f.m, 200 + (uint64_t)i), DS_OK);
    assert_int_equal(ds_buffer_destroy(G.x[i]), DS_OK);
    assert_int_equal(ds_buffer_destroy(G.y[i]), DS_OK);
  }
  ds_kernel_destroy(G.scale);
  ds_kernel_destroy(G.add);
  close_fixture(&f);
}

/* ---- item: pushed transfers (the owner sends, the reader receives; no request) ---- */

static void test_buffer_push(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  const size_t big = (size_t)256 << 10; /* past the eager limit: a rendezvous transfer */
  unsigned char *mine = malloc(big), *expect = malloc(big);
  assert_non_null(mine);
  assert_non_null(expect);
  uint64_t small_v = 0;
  int last = f.size - 1;
  assert_int_equal(ds_mpi_buffer_register(f.m, 900, 0, f.rank == 0 ? mine : NULL, big), DS_OK);
  assert_int_equal(ds_mpi_buffer_register(f.m, 901, last, f.rank == last ? &small_v : NULL,
                                          sizeof small_v), DS_OK);
  /* Bad calls, on every rank. */
  const void *p = NULL;
  assert_int_equal(ds_mpi_buffer_send(f.m, 900, f.rank, -1), DS_ERR_INVALID_ARG); /* to self */
  assert_non_null(strstr(ds_context_last_error(f.ctx), "buffer 900"));
  assert_int_equal(ds_mpi_buffer_send(f.m, 900, f.size, -1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_mpi_buffer_send(f.m, 77, 0, -1), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_mpi_buffer_recv(f.m, 77, &p, -1), DS_ERR_NOT_FOUND);
  assert_int_equal(ds_mpi_buffer_recv(f.m, 900, NULL, -1), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_mpi_buffer_send(NULL, 900, 0, -1), DS_ERR_INVALID_ARG);
  if (f.rank == 0) {
    assert_int_equal(ds_mpi_buffer_recv(f.m, 900, &p, -1), DS_ERR_INVALID_ARG);
    assert_non_null(strstr(ds_context_last_error(f.ctx), "owns it"));
    assert_null(p);
  }
  if (f.size == 1) {
    close_fixture(&f);
    free(mine);
    free(expect);
    return;
  }
  /* Rank 0 pushes two versions to each rank in turn; each receives both, in order. The first
   * receives on odd ranks go through the progress thread (MPI_THREAD_SERIALIZED's path). */
  if (f.rank % 2) f.m->level = MPI_THREAD_SERIALIZED;
  for (int r = 1; r < f.size; r++)
    for (unsigned v = 0; v < 2; v++) {
      if (f.rank == 0) {
        fill(mine, big, 10u * (unsigned)r + v);
        assert_int_equal(ds_mpi_buffer_send(f.m, 900, r, -1), DS_OK);
      } else if (f.rank == r) {
        assert_int_equal(ds_mpi_buffer_recv(f.m, 900, &p, -1), DS_OK);
        fill(expect, big, 10u * (unsigned)r + v);
        assert_memory_equal(p, expect, big);
      }
    }
  f.m->level = MPI_THREAD_MULTIPLE;
  if (f.rank != 0) { /* the pushed copy counts as fetched: no transfer, the same memory */
    const void *q = NULL;
    assert_int_equal(ds_mpi_buffer_fetch(f.m, 900, &q, -1), DS_OK);
    assert_ptr_equal(q, p);
    assert_memory_equal(q, expect, big);
    /* Nobody sends 901 to this rank: the receive times out and is cancelled. */
    if (f.rank != last) {
      assert_int_equal(ds_mpi_buffer_recv(f.m, 901, &q, 100), DS_ERR_TIMEOUT);
      assert_non_null(strstr(ds_context_last_error(f.ctx), "buffer 901"));
    }
  }
  sync_all(f.m, 1);
  /* The small buffer goes from the last rank to rank 0 (eager), after the cancelled receives. */
  if (f.rank == last) {
    small_v = 0x1234567890abcdefu;
    assert_int_equal(ds_mpi_buffer_send(f.m, 901, 0, -1), DS_OK);
  } else if (f.rank == 0) {
    assert_int_equal(ds_mpi_buffer_recv(f.m, 901, &p, -1), DS_OK);
    assert_true(*(const uint64_t *)p == 0x1234567890abcdefu);
  }
  sync_all(f.m, 2);
  assert_int_equal(ds_mpi_buffer_unregister(f.m, 900), DS_OK);
  assert_int_equal(ds_mpi_buffer_unregister(f.m, 901), DS_OK);
  close_fixture(&f);
  free(mine);
  free(expect);
}

/* ---- item: dependencies across ranks without data are kept (zero-byte tokens) ---- */

static uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t); /* one clock for every process of this machine */
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Writes {start, end} in ns into its buffer, sleeping args (ms) in between. */
static ds_status k_stamp(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                         size_t args_len) {
  int32_t ms = 0;
  if (nbufs != 1 || sizes[0] != 2 * sizeof(uint64_t) || args_len != sizeof ms)
    return DS_ERR_INVALID_ARG;
  memcpy(&ms, args, sizeof ms);
  uint64_t *t = bufs[0];
  t[0] = mono_ns();
  struct timespec d = {0, (long)ms * 1000000L};
  nanosleep(&d, NULL);
  t[1] = mono_ns();
  return DS_OK;
}

static void test_graph_cross_rank_deps(void **state) {
  (void)state;
  fixture f = open_fixture(5000);
  enum { NS = 4 };
  ds_kernel *k = NULL;
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "stamp";
  ko.cpu = k_stamp;
  assert_int_equal(ds_kernel_create(&k, f.ctx, &ko), DS_OK);
  int32_t cpu = -1;
  assert_int_equal(ds_fabric_device_find(&cpu, f.ctx, DS_FABRIC_DEVICE_CPU, 0), DS_OK);
  /* S[i] on rank i % size; chain S0 -> S1 -> S2 -> S3 by explicit dependencies only, and S3
   * also after S0 (a second token edge); each node writes only its own buffer. */
  ds_buffer *b[NS];
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, f.ctx), DS_OK);
  int32_t node[NS], ms = 40;
  for (int i = 0; i < NS; i++) {
    assert_int_equal(ds_buffer_create(&b[i], f.ctx, 2 * sizeof(uint64_t), NULL), DS_OK);
    assert_int_equal(ds_mpi_buffer_attach(f.m, 300 + (uint64_t)i, i % f.size, b[i]), DS_OK);
    ds_graph_access a = {b[i], DS_ACCESS_WRITE};
    ds_node_options no = DS_NODE_OPTIONS_INIT;
    no.args = &ms;
    no.args_len = sizeof ms;
    assert_int_equal(ds_graph_add(&node[i], g, k, &a, 1, &no), DS_OK);
    if (i) assert_int_equal(ds_graph_add_dep(g, node[i - 1], node[i]), DS_OK);
  }
  assert_int_equal(ds_graph_add_dep(g, node[0], node[NS - 1]), DS_OK);
  for (int run = 0; run < 2; run++) {
    ds_mpi_graph_info info = {sizeof info, 0, 0, 0, 0, 0, 0.0};
    assert_int_equal(ds_mpi_graph_run(f.m, g, NULL, &info), DS_OK);
    assert_int_equal(info.bytes_sent + info.bytes_received, 0); /* tokens carry no data */
    uint64_t t[NS][2];
    for (int i = 0; i < NS; i++) {
      const void *p = NULL;
      assert_int_equal(ds_mpi_buffer_fetch(f.m, 300 + (uint64_t)i, &p, -1), DS_OK);
      memcpy(t[i], p, sizeof t[i]);
      assert_true(t[i][1] >= t[i][0] + 30000000u);
    }
    for (int i = 1; i < NS; i++) assert_true(t[i][0] >= t[i - 1][1]); /* started after */
    sync_all(f.m, 1 + (uint64_t)run); /* fetches done before the owners write again */
  }
  ds_graph_destroy(g);
  for (int i = 0; i < NS; i++) {
    assert_int_equal(ds_mpi_buffer_unregister(f.m, 300 + (uint64_t)i), DS_OK);
    assert_int_equal(ds_buffer_destroy(b[i]), DS_OK);
  }
  ds_kernel_destroy(k);
  close_fixture(&f);
}

/* Exits the process when run on the victim rank (*user): the migrated task's rank dies. */
static ds_status fn_die_on_victim(void *user, ds_mpi_call *c) {
  if (c->rank == *(const int *)user) {
    fflush(stdout);
    _exit(0);
  }
  return fn_square(NULL, c);
}

/* Rank 0 migrates LOW tasks; those sent to the victim kill it, and run here instead. */
static void migrate_into_death(fixture *f) {
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  ds_task *hold = NULL;
  assert_int_equal(ds_task_submit(&hold, f->ctx, hold_worker, NULL, &lo), DS_OK);
  usleep(20000);
  ds_task_group *g = NULL;
  assert_int_equal(ds_task_group_create(&g, f->ctx), DS_OK);
  lo.group = g;
  ds_mpi_submit_options so = DS_MPI_SUBMIT_OPTIONS_INIT;
  so.task = &lo;
  enum { N = 12 };
  static reply out[N];
  for (int64_t i = 0; i < N; i++)
    assert_int_equal(ds_mpi_task_submit(NULL, f->m, "die_on_victim", &i, sizeof i, &out[i],
                                        sizeof out[i], NULL, &so), DS_OK);
  assert_int_equal(ds_task_group_wait(g, 60000), DS_OK); /* every one completes, and right */
  ds_task_group_destroy(g);
  assert_int_equal(ds_task_wait(hold, 30000), DS_OK);
  ds_task_release(hold);
  int here = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(out[i].value, (int64_t)i * i);
    assert_true(out[i].rank != f->size - 1);
    here += out[i].rank == 0;
  }
  uint64_t migrated = 0;
  ds_mpi_task_counts(f->m, &migrated, NULL);
  printf("rank 0: %llu of %d LOW tasks migrated, %d ran here (failover included)\n",
         (unsigned long long)migrated, N, here);
  assert_true(migrated > 0);
}

/* The last rank dies mid-run, inside a task migrated to it: that task and the others sent to
 * it run on rank 0 instead; the others' fetch from it, task placed on it and barrier with it
 * fail with DS_ERR_IO naming it, within the dead-rank bound; destroy does not hang. */
static void test_dead_rank_fails_cleanly(void **state) {
  (void)state;
  fixture f = open_fixture(1500);
  int victim = f.size - 1;
  static char mem[64];
  static int victim_rank;
  victim_rank = victim;
  register_all(f.m);
  assert_int_equal(ds_mpi_task_register(f.m, "die_on_victim", fn_die_on_victim, &victim_rank),
                   DS_OK);
  assert_int_equal(ds_mpi_buffer_register(f.m, 5, victim, f.rank == victim ? mem : NULL, 64), DS_OK);
  sync_all(f.m, 1);
  if (f.size == 1) {
    close_fixture(&f);
    return;
  }
  if (f.rank == victim) {
    usleep(3000000); /* a task migrated here ends the process sooner */
    fflush(stdout);
    _exit(0); /* no goodbye, no MPI_Finalize */
  }
  ds_fabric_barrier_options bo = DS_FABRIC_BARRIER_OPTIONS_INIT;
  bo.participants = (uint32_t)f.size;
  ds_fabric_barrier *fb = NULL;
  assert_int_equal(ds_fabric_barrier_create(&fb, f.ctx, &bo), DS_OK);
  assert_int_equal(ds_mpi_barrier_bridge(f.m, fb, 0), DS_OK);
  if (f.rank == 0) migrate_into_death(&f);
  /* The bridged barrier is cancelled by the death rather than waiting forever. */
  assert_int_equal(ds_fabric_barrier_wait(fb, 2, 30000000000LL), DS_ERR_SHUTDOWN);
  assert_int_equal(ds_mpi_barrier_bridge(f.m, NULL, 0), DS_OK);
  ds_fabric_barrier_destroy(fb);
  /* The barrier first: the victim may still answer a request in the moment before it exits,
   * but it never passes timestamp 2. */
  uint64_t t0 = ds__now_ns();
  char want[32];
  snprintf(want, sizeof want, "rank %d", victim);
  assert_int_equal(ds_mpi_barrier_arrive(f.m, 2), DS_OK);
  assert_int_equal(ds_mpi_barrier_wait(f.m, 2, -1), DS_ERR_IO);
  assert_non_null(strstr(ds_context_last_error(f.ctx), want));
  /* The survivors go on together: a barrier bridged after the death does not wait for it. */
  bo.participants = (uint32_t)f.size;
  assert_int_equal(ds_fabric_barrier_create(&fb, f.ctx, &bo), DS_OK);
  assert_int_equal(ds_mpi_barrier_bridge(f.m, fb, 0), DS_OK);
  assert_int_equal(ds_mpi_barrier_arrive(f.m, 3), DS_OK);
  assert_int_equal(ds_fabric_barrier_wait(fb, 3, 30000000000LL), DS_OK);
  assert_int_equal(ds_mpi_barrier_bridge(f.m, NULL, 0), DS_OK);
  ds_fabric_barrier_destroy(fb);
  double s = (double)(ds__now_ns() - t0) / 1e9;
  g_peer_died = 1;
  assert_int_equal(ds_mpi_rank_alive(f.m, victim), 0);
  const void *p = NULL;
  assert_int_equal(ds_mpi_buffer_fetch(f.m, 5, &p, -1), DS_ERR_IO);
  assert_non_null(strstr(ds_context_last_error(f.ctx), want));
  reply out;
  assert_int_equal(run_task(&f, "square", victim, 0, 2, &out, sizeof out), DS_ERR_IO);
  printf("rank %d: rank %d's death reported after %.2f s\n", f.rank, victim, s);
  assert_true(s < 15.0);
  /* The survivors still work together. */
  if (f.size > 2) {
    assert_int_equal(run_task(&f, "square", (f.rank + 1) % victim, 0, 4, &out, sizeof out), DS_OK);
    assert_int_equal(out.value, 16);
  }
  close_fixture(&f);
}

static void on_alarm(int sig) {
  (void)sig;
  char msg[160];
  int n = snprintf(msg, sizeof msg, "test_fabric_mpi: watchdog: still in %s after 150 s\n",
                   g_phase);
  if (n > 0) (void)!write(2, msg, (size_t)n);
  _exit(3);
}

int main(int argc, char **argv) {
  int level = 0;
  signal(SIGALRM, on_alarm);
  alarm(150);
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_and_bad_args),
      cmocka_unit_test(test_buffers_fetch_and_flush),
      cmocka_unit_test(test_tasks_placed_and_owner_computes),
      cmocka_unit_test(test_low_tasks_migrate_to_idle_ranks),
      cmocka_unit_test(test_barrier_timestamps),
      cmocka_unit_test(test_destroying_rank_still_serves),
      cmocka_unit_test(test_fabric_buffer_attach),
      cmocka_unit_test(test_owner_writes_invalidate_copies),
      cmocka_unit_test(test_placed_task_frees_worker),
      cmocka_unit_test(test_graph_owner_computes),
      cmocka_unit_test(test_buffer_push),
      cmocka_unit_test(test_graph_cross_rank_deps),
      cmocka_unit_test(test_dead_rank_fails_cleanly), /* last: a rank dies */
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  g_phase = "MPI_Finalize";
  if (failed) { /* a failed test left its endpoint open and its peers waiting: end the job */
    fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (g_peer_died) { /* as the library does: no MPI_Finalize after a rank died */
    fflush(stdout);
    _exit(0);
  }
  MPI_Finalize();
  return failed;
}

#else /* no MPI in this build */

static void test_without_mpi_says_unsupported(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(5000);
  ds_mpi *m = (ds_mpi *)1;
  assert_int_equal(ds_mpi_create(&m, ctx, NULL), DS_ERR_UNSUPPORTED);
  assert_null(m);
  assert_non_null(strstr(ds_context_last_error(ctx), "libopenmpi-dev"));
  assert_int_equal(ds_mpi_buffer_fetch(NULL, 1, NULL, 0), DS_ERR_UNSUPPORTED);
  assert_int_equal(ds_mpi_buffer_written(NULL, 1), DS_ERR_UNSUPPORTED);
  assert_int_equal(ds_mpi_buffer_send(NULL, 1, 0, 0), DS_ERR_UNSUPPORTED);
  const void *p = (const void *)1;
  assert_int_equal(ds_mpi_buffer_recv(NULL, 1, &p, 0), DS_ERR_UNSUPPORTED);
  assert_null(p);
  assert_int_equal(ds_mpi_graph_run(NULL, NULL, NULL, NULL), DS_ERR_UNSUPPORTED);
  assert_int_equal(ds_mpi_rank(NULL), -1);
  ds_mpi_destroy(NULL);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_without_mpi_says_unsupported)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
