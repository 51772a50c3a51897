/* Tests of the partitioner's shared-core model and its single-device guard, as pure functions
 * of synthetic device views and cost tables (no device runs anything): a PoCL-like device that
 * computes on the same cores as the CPU workers never overlaps them beyond the core count, a
 * HEFT plan is never predicted worse than the best single-device plan, and the real
 * platform view marks an OpenCL CPU device as sharing the host's cores. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "partition_internal.h"
#include "test_util.h"
#include "test_fabric_util.h"

static double xfer_free(void *user, int a, int b, uint64_t bytes) {
  (void)user, (void)a, (void)b, (void)bytes;
  return 0; /* zero-copy: PoCL reads the host bytes in place */
}

/* Device 0: a CPU of 2 workers (1 core each); device 1: a PoCL-like device whose every kernel
 * spreads over both cores. Both in memory space 0. shared: the 2-core pool is modelled. */
static void pocl_like(struct ds__gplat *pl, int shared, int guard) {
  memset(pl, 0, sizeof *pl);
  pl->ndev = 2;
  pl->nmem = 1;
  pl->dev[0] = (struct ds__gdev){DS__GKIND_CPU, 2, 0, "cpu", 1};
  pl->dev[1] = (struct ds__gdev){DS__GKIND_OPENCL, 1, 0, "pocl", 2};
  pl->host_pus = 2;
  pl->shared = shared;
  pl->guard = guard;
  pl->xfer_s = xfer_free;
}

struct fixture {
  ds_context *ctx;
  ds_kernel *k;
  ds_graph *g;
  ds_buffer *b[12];
};

/* 12 independent nodes; one CPU worker takes 4 ms per node, the PoCL device 2.5 ms (faster
 * than one worker, slower than both: 0.4 nodes/ms against 0.5). */
static void fixture_make(struct fixture *f) {
  f->ctx = new_ctx();
  f->k = both_kernel(f->ctx, "indep");
  assert_int_equal(ds_graph_create(&f->g, f->ctx), DS_OK);
  for (int i = 0; i < 12; i++) {
    f->b[i] = new_buf(f->ctx, 1 << 16);
    ds_graph_access a = {f->b[i], DS_ACCESS_RW};
    assert_int_equal(ds_graph_add(NULL, f->g, f->k, &a, 1, NULL), DS_OK);
  }
  assert_int_equal(ds__cm_record(&f->k->cm, "cpu", 1u << 16, 4e-3), DS_OK);
  assert_int_equal(ds__cm_record(&f->k->cm, "pocl", 1u << 16, 2.5e-3), DS_OK);
}

static void fixture_free(struct fixture *f) {
  ds_graph_destroy(f->g);
  for (int i = 0; i < 12; i++) ds_buffer_destroy(f->b[i]);
  ds_kernel_destroy(f->k);
  ds_context_destroy(f->ctx);
}

static double plan_makespan(ds_graph *g, const struct ds__gplat *pl, ds_plan_options *po,
                            int *on_cpu) {
  ds_plan *p = NULL;
  assert_int_equal(ds__graph_plan_on(&p, g, pl, po), DS_OK);
  ds_plan_info info = {sizeof info, 0, 0, 0, 0};
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  *on_cpu = 0;
  for (uint32_t i = 0; i < info.nodes; i++) *on_cpu += p->dev[i] == 0;
  ds_plan_destroy(p);
  return info.makespan_s;
}

static void test_shared_cores_serialise_the_pocl_device(void **state) {
  (void)state;
  struct fixture f;
  fixture_make(&f);
  struct ds__gplat pl;
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.calibrate = 0;
  po.policy = DS_PLAN_EXPLICIT;
  int32_t place[12] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  po.placement = place;
  int on_cpu = 0;
  /* Independent devices: node 2 runs on PoCL next to nodes 0 and 1 on the two workers, and
   * the 11 CPU nodes take 6 rounds of 4 ms. */
  pocl_like(&pl, 0, 0);
  assert_true(fabs(plan_makespan(f.g, &pl, &po, &on_cpu) - 24e-3) < 1e-9);
  assert_int_equal(on_cpu, 11);
  /* Shared cores: node 2 needs both cores, so it waits for nodes 0 and 1 (4 ms), holds both
   * cores 2.5 ms, then the 9 CPU nodes take 5 rounds: 4 + 2.5 + 20 = 26.5 ms. */
  pocl_like(&pl, 1, 0);
  assert_true(fabs(plan_makespan(f.g, &pl, &po, &on_cpu) - 26.5e-3) < 1e-9);
  /* All on PoCL: one at a time whatever the model. */
  po.policy = DS_PLAN_DEVICE;
  po.device = 1;
  assert_true(fabs(plan_makespan(f.g, &pl, &po, &on_cpu) - 30e-3) < 1e-9);
  assert_int_equal(on_cpu, 0);
  fixture_free(&f);
}

static void test_guard_keeps_the_best_single_device(void **state) {
  (void)state;
  struct fixture f;
  fixture_make(&f);
  struct ds__gplat pl;
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.calibrate = 0;
  int on_cpu = 0;
  /* Plain HEFT believes PoCL is extra hardware and mixes: 15 ms predicted (7 nodes on PoCL,
   * 5 on the workers), well under the 24 ms of all-CPU. */
  pocl_like(&pl, 0, 0);
  double naive = plan_makespan(f.g, &pl, &po, &on_cpu);
  assert_true(naive < 16e-3);
  assert_true(on_cpu > 0 && on_cpu < 12);
  /* With shared cores, HEFT's greed (each node's earliest finish is on PoCL: 2.5 ms < 4 ms)
   * sends everything to PoCL: 30 ms, worse than all-CPU's 24 ms. */
  pocl_like(&pl, 1, 0);
  double greedy = plan_makespan(f.g, &pl, &po, &on_cpu);
  assert_true(greedy > 24e-3 + 1e-6);
  /* The guard keeps the all-CPU plan. */
  pocl_like(&pl, 1, 1);
  assert_true(fabs(plan_makespan(f.g, &pl, &po, &on_cpu) - 24e-3) < 1e-9);
  assert_int_equal(on_cpu, 12);
  /* When PoCL is faster than both workers together, it is used (all of it: every node). */
  assert_int_equal(ds__cm_record(&f.k->cm, "pocl", 1u << 16, 0.5e-3), DS_OK);
  assert_int_equal(ds__cm_record(&f.k->cm, "pocl", 1u << 16, 0.5e-3), DS_OK);
  assert_int_equal(ds__cm_record(&f.k->cm, "pocl", 1u << 16, 0.5e-3), DS_OK);
  double fast = plan_makespan(f.g, &pl, &po, &on_cpu);
  assert_true(fast < 24e-3);
  assert_true(on_cpu < 12);
  /* The guard is HEFT's only: explicit, random and one-device plans are what was asked. */
  po.policy = DS_PLAN_RANDOM;
  po.seed = 3;
  pocl_like(&pl, 1, 1);
  double rnd = plan_makespan(f.g, &pl, &po, &on_cpu);
  assert_true(rnd >= fast - 1e-9);
  fixture_free(&f);
}

/* Property: whatever the placement and graph, units of the shared pool never hold more than
 * host_pus cores at any instant of the simulation. Random DAGs over 6 buffers, random costs
 * and devices, driven through the simulation directly. */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static int pool_peak(const struct ds__psim *s) {
  int peak = 0;
  for (int v = 0; v < s->nunits; v++)
    for (uint32_t i = 0; i < s->units[v].n; i++) {
      double p = s->units[v].iv[i].start;
      int held = 0;
      for (int w = 0; w < s->nunits; w++)
        for (uint32_t j = 0; j < s->units[w].n; j++)
          if (s->units[w].iv[j].start <= p && p < s->units[w].iv[j].end) held += s->unit_pus[w];
      if (held > peak) peak = held;
    }
  return peak;
}

static void test_pool_never_oversubscribed(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel *k = both_kernel(ctx, "rand");
  ds_buffer *b[6];
  for (int i = 0; i < 6; i++) b[i] = new_buf(ctx, 4096);
  struct ds__gplat pl;
  uint64_t seed = 0x5eed;
  for (int round = 0; round < 60; round++) {
    pocl_like(&pl, 1, 1);
    pl.host_pus = 2 + (int)(rng_next(&seed) % 3);   /* 2..4 cores */
    pl.dev[0].units = 1 + (int)(rng_next(&seed) % 4); /* 1..4 workers */
    pl.dev[1].host_pus = 1 + (int)(rng_next(&seed) % 5); /* may exceed the pool: clamped */
    ds_graph *g = NULL;
    assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
    int n = 5 + (int)(rng_next(&seed) % 20);
    for (int i = 0; i < n; i++) {
      ds_graph_access a[2] = {{b[rng_next(&seed) % 6], DS_ACCESS_READ},
                              {b[rng_next(&seed) % 6], DS_ACCESS_RW}};
      if (a[0].buf == a[1].buf) a[0].mode = DS_ACCESS_RW;
      assert_int_equal(ds_graph_add(NULL, g, k, a, a[0].buf == a[1].buf ? 1 : 2, NULL), DS_OK);
    }
    int32_t *order = test_malloc((size_t)n * sizeof *order);
    assert_int_equal(ds__graph_topo(g, order), DS_OK);
    struct ds__psim sim;
    assert_int_equal(ds__psim_init(&sim, g, &pl), DS_OK);
    for (int i = 0; i < n; i++) {
      struct ds__pchoice c;
      int dev = (int)(rng_next(&seed) % 2);
      double cost = 1e-3 * (double)(1 + rng_next(&seed) % 9);
      ds__psim_eval(&sim, order[i], dev, cost, INFINITY, &c);
      assert_true(isfinite(c.eft) && c.eft >= c.est + cost - 1e-12);
      assert_int_equal(ds__psim_commit(&sim, order[i], &c), DS_OK);
    }
    assert_true(pool_peak(&sim) <= pl.host_pus);
    ds__psim_fini(&sim);
    test_free(order);
    ds_graph_destroy(g);
  }
  for (int i = 0; i < 6; i++) ds_buffer_destroy(b[i]);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

/* The real device view: an OpenCL CPU device (PoCL) is marked as computing on the host's
 * cores and holds its compute units of the pool; CPU workers are not reduced for it. With the
 * tunable off, the planner's old view (independent devices, one worker less per other
 * device). */
static void test_platform_marks_pocl_as_sharing_cores(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel *k = both_kernel(ctx, "view");
  ds_buffer *b = new_buf(ctx, 64);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  ds_graph_access a = {b, DS_ACCESS_RW};
  assert_int_equal(ds_graph_add(NULL, g, k, &a, 1, NULL), DS_OK);
  int32_t ndev = 0, cl = -1;
  assert_int_equal(ds_fabric_device_count(&ndev, ctx), DS_OK);
  ds_device_info info = DS_DEVICE_INFO_INIT;
  for (int32_t d = 0; d < ndev && cl < 0; d++) {
    assert_int_equal(ds_fabric_device_info(&info, ctx, d), DS_OK);
    if (info.caps & DS_DEVICE_CAP_HOST_CORES) cl = d;
  }
  struct ds__gplat pl;
  int32_t home[1];
  uint8_t copy[1];
  assert_int_equal(ds__gfab_platform(ctx, &pl, g, home, copy), DS_OK);
  assert_true(pl.guard && pl.shared);
  assert_true(pl.host_pus >= 1);
  assert_int_equal(pl.dev[0].host_pus, 1);
  if (cl < 0) {
    print_message("no OpenCL CPU device: shared-core view checked on the CPU alone\n");
  } else {
    assert_int_equal(info.kind, DS_FABRIC_DEVICE_OPENCL);
    assert_int_equal(pl.dev[cl].host_pus,
                     info.compute_units > 0 ? info.compute_units : pl.host_pus);
    assert_int_equal(pl.dev[0].units, 2); /* both workers: PoCL holds cores, not a worker */
  }
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_FABRIC_PLAN_SHARED_CORES, 0), DS_OK);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_FABRIC_PLAN_GUARD, 0), DS_OK);
  assert_int_equal(ds__gfab_platform(ctx, &pl, g, home, copy), DS_OK);
  assert_false(pl.guard || pl.shared); /* the pool is still described, for the executor */
  assert_true(pl.host_pus >= 1);
  assert_int_equal(pl.dev[0].host_pus, 1);
  if (cl >= 0 && ndev == 2) assert_int_equal(pl.dev[0].units, 1);
  ds_graph_destroy(g);
  ds_buffer_destroy(b);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

/* ---- pricing of buffers that are always copied (copy_s) ---- */

/* A two-device backend that never moves a byte here: only its table matters to the pricing. */
static ds_status twin_describe(void *user, int32_t dev, ds_device_info *info) {
  (void)user, (void)dev;
  info->kind = DS_FABRIC_DEVICE_OTHER;
  snprintf(info->name, sizeof info->name, "twin:%d", (int)dev);
  return DS_OK;
}
static ds_status twin_alloc(void *user, int32_t dev, size_t size, void *host, void **mem,
                            int *aliased, char *msg, size_t msg_size) {
  (void)user, (void)dev, (void)size, (void)host, (void)mem, (void)aliased, (void)msg;
  (void)msg_size;
  return DS_ERR_UNSUPPORTED;
}
static void twin_free(void *user, int32_t dev, void *mem) { (void)user, (void)dev, (void)mem; }
static ds_status twin_copy(void *user, int32_t dev, void *a, size_t off, const void *b, size_t n,
                           void **event, char *msg, size_t msg_size) {
  (void)user, (void)dev, (void)a, (void)off, (void)b, (void)n, (void)event, (void)msg;
  (void)msg_size;
  return DS_ERR_UNSUPPORTED;
}
static ds_status twin_copy_out(void *user, int32_t dev, void *host, void *mem, size_t off,
                               size_t n, void **event, char *msg, size_t msg_size) {
  return twin_copy(user, dev, host, off, mem, n, event, msg, msg_size);
}
static ds_status twin_peer(void *user, int32_t dst_dev, void *dst, int32_t src_dev, void *src,
                           size_t n, void **event, char *msg, size_t msg_size) {
  (void)user, (void)dst_dev, (void)dst, (void)src_dev, (void)src, (void)n, (void)event;
  (void)msg, (void)msg_size;
  return DS_ERR_UNSUPPORTED;
}

/* A buffer that is always copied (DS_BUFFER_NO_ZERO_COPY) moving between two devices of a
 * backend with direct copies is priced as one hop, as ds__fabric_transfer_cost does, and as
 * two (through the host) with fabric_peer_copy off. */
static void test_copied_buffer_priced_one_hop_between_peers(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_fabric_backend be;
  memset(&be, 0, sizeof be);
  be.struct_size = sizeof be, be.name = "twin", be.device_count = 2;
  be.describe = twin_describe, be.alloc = twin_alloc, be.free = twin_free;
  be.copy_in = twin_copy, be.copy_out = twin_copy_out, be.copy_peer_async = twin_peer;
  int32_t first = -1;
  assert_int_equal(ds_fabric_backend_register(&first, ctx, &be, NULL), DS_OK);
  ds_kernel *k = both_kernel(ctx, "priced");
  ds_buffer *b = new_buf(ctx, 64);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  ds_graph_access a = {b, DS_ACCESS_RW};
  assert_int_equal(ds_graph_add(NULL, g, k, &a, 1, NULL), DS_OK);
  struct ds__gplat pl;
  int32_t home[1];
  uint8_t copy[1];
  assert_int_equal(ds__gfab_platform(ctx, &pl, g, home, copy), DS_OK);
  assert_non_null(pl.copy_s);
  ds_device_info i0 = DS_DEVICE_INFO_INIT, i1 = DS_DEVICE_INFO_INIT;
  assert_int_equal(ds_fabric_device_info(&i0, ctx, first), DS_OK);
  assert_int_equal(ds_fabric_device_info(&i1, ctx, first + 1), DS_OK);
  double direct = pl.copy_s(pl.user, i0.memory_space, i1.memory_space, 1 << 20);
  assert_int_equal(ds_context_set_param(ctx, DS_PARAM_FABRIC_PEER_COPY, 0), DS_OK);
  double staged = pl.copy_s(pl.user, i0.memory_space, i1.memory_space, 1 << 20);
  assert_true(direct > 0 && fabs(staged - 2 * direct) < 1e-12); /* two equal default links */
  ds_graph_destroy(g);
  ds_buffer_destroy(b);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_cores_serialise_the_pocl_device),
      cmocka_unit_test(test_guard_keeps_the_best_single_device),
      cmocka_unit_test(test_pool_never_oversubscribed),
      cmocka_unit_test(test_platform_marks_pocl_as_sharing_cores),
      cmocka_unit_test(test_copied_buffer_priced_one_hop_between_peers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
