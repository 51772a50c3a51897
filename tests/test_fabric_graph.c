/* Tests of fabric graphs: dependencies from accesses, cycles and unrunnable nodes, cost models
 * (history, regression, persistence), the partitioner on synthetic device views, and runs of a
 * tiled GEMM whose result is identical whatever the placement (all-CPU, all-OpenCL, HEFT,
 * random), failure propagation and bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph_internal.h"
#include "test_util.h"
#include "test_fabric_util.h"

static ds_kernel *noop_kernel(ds_context *ctx, const char *name) {
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = name;
  ko.cpu = noop_cpu;
  ds_kernel *k = NULL;
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_OK);
  return k;
}

static int has_pred(const ds_graph *g, int32_t node, int32_t pred) {
  for (uint32_t i = 0; i < g->nodes[node].npred; i++)
    if (g->nodes[node].pred[i] == pred) return 1;
  return 0;
}

static int32_t add1(ds_graph *g, ds_kernel *k, ds_buffer *b, int mode) {
  ds_graph_access a = {b, mode};
  int32_t id = -1;
  assert_int_equal(ds_graph_add(&id, g, k, &a, 1, NULL), DS_OK);
  return id;
}

static void test_dependencies_follow_accesses(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel *k = noop_kernel(ctx, "noop");
  ds_buffer *x = new_buf(ctx, 64), *y = new_buf(ctx, 64);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  int32_t w0 = add1(g, k, x, DS_ACCESS_WRITE);  /* 0 */
  int32_t r1 = add1(g, k, x, DS_ACCESS_READ);   /* 1: RAW on 0 */
  int32_t r2 = add1(g, k, x, DS_ACCESS_READ);   /* 2: RAW on 0, not on 1 */
  int32_t w3 = add1(g, k, x, DS_ACCESS_RW);     /* 3: WAR on 1, 2 (and on 0) */
  int32_t o4 = add1(g, k, y, DS_ACCESS_WRITE);  /* 4: independent */
  int32_t w5 = add1(g, k, x, DS_ACCESS_WRITE);  /* 5: WAW on 3 */
  assert_int_equal(g->nodes[w0].npred, 0);
  assert_true(has_pred(g, r1, w0));
  assert_true(has_pred(g, r2, w0) && !has_pred(g, r2, r1));
  assert_true(has_pred(g, w3, r1) && has_pred(g, w3, r2));
  assert_int_equal(g->nodes[o4].npred, 0);
  assert_true(has_pred(g, w5, w3));
  uint32_t nodes = 0, edges = 0;
  assert_int_equal(ds_graph_size(g, &nodes, &edges), DS_OK);
  assert_int_equal(nodes, 6);
  assert_int_equal(edges, 1 + 1 + 3 + 1);
  ds_graph_destroy(g);
  ds_kernel_destroy(k);
  ds_buffer_destroy(x);
  ds_buffer_destroy(y);
  ds_context_destroy(ctx);
}

static void test_cycle_and_unrunnable_nodes_are_named(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel *k = noop_kernel(ctx, "noop");
  ds_buffer *x = new_buf(ctx, 64);
  ds_graph *g = NULL;
  ds_plan *p = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  assert_int_equal(ds_graph_plan(&p, g, NULL), DS_ERR_STATE); /* empty */
  int32_t a = add1(g, k, x, DS_ACCESS_RW), b = add1(g, k, x, DS_ACCESS_RW);
  assert_int_equal(ds_graph_add_dep(g, b, a), DS_OK);
  assert_int_equal(ds_graph_add_dep(g, a, a), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_graph_add_dep(g, a, 7), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_graph_plan(&p, g, NULL), DS_ERR_INVALID_ARG);
  assert_null(p);
  assert_non_null(strstr(ds_context_last_error(ctx), "cycle"));
  assert_non_null(strstr(ds_context_last_error(ctx), "noop#"));
  ds_graph_destroy(g);

  /* A kernel with only a CUDA launcher cannot run anywhere here (no GPU in CI). */
  int32_t ngpu = 0;
  (void)ngpu;
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "cuda_only";
  ko.cuda = (ds_kernel_cuda_fn)(void (*)(void))noop_cpu; /* never called */
  ds_kernel *kc = NULL;
  assert_int_equal(ds_kernel_create(&kc, ctx, &ko), DS_OK);
  int32_t dcuda = -1;
  if (ds_fabric_device_find(&dcuda, ctx, DS_FABRIC_DEVICE_CUDA, 0) != DS_OK) {
    assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
    ds_node_options no = DS_NODE_OPTIONS_INIT;
    no.name = "lonely";
    ds_graph_access acc = {x, DS_ACCESS_READ};
    assert_int_equal(ds_graph_add(NULL, g, kc, &acc, 1, &no), DS_OK);
    assert_int_equal(ds_graph_plan(&p, g, NULL), DS_ERR_UNSUPPORTED);
    assert_non_null(strstr(ds_context_last_error(ctx), "'lonely'"));
    ds_graph_destroy(g);
  }
  ds_kernel_destroy(kc);
  ds_kernel_destroy(k);
  ds_buffer_destroy(x);
  ds_context_destroy(ctx);
}

static void test_bad_input(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ds_kernel *k = NULL;
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_ERR_INVALID_ARG); /* no name */
  ko.name = "k";
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_ERR_INVALID_ARG); /* no implementation */
  ko.opencl_source = "__kernel void f(void) {}";
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_ERR_INVALID_ARG); /* no kernel name */
  ko.opencl_name = "f";
  ko.opencl_nargs = 1;
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_ERR_INVALID_ARG); /* sizes missing */
  ko.struct_size = 3;
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_ERR_ABI);
  assert_null(k);
  k = noop_kernel(ctx, "noop");
  ds_buffer *x = new_buf(ctx, 16);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  ds_graph_access acc[2] = {{x, DS_ACCESS_READ}, {x, DS_ACCESS_WRITE}};
  assert_int_equal(ds_graph_add(NULL, g, k, acc, 2, NULL), DS_ERR_INVALID_ARG); /* same buffer */
  acc[0].mode = 9;
  assert_int_equal(ds_graph_add(NULL, g, k, acc, 1, NULL), DS_ERR_INVALID_ARG);
  acc[0].buf = NULL;
  acc[0].mode = DS_ACCESS_READ;
  assert_int_equal(ds_graph_add(NULL, g, k, acc, 1, NULL), DS_ERR_INVALID_ARG);
  ds_node_options no = DS_NODE_OPTIONS_INIT;
  char big[DS__GRAPH_MAX_ARGS + 1] = {0};
  no.args = big;
  no.args_len = sizeof big;
  assert_int_equal(ds_graph_add(NULL, g, k, NULL, 0, &no), DS_ERR_INVALID_ARG);
  no.args_len = 0;
  no.device = 40;
  int32_t id = -1;
  assert_int_equal(ds_graph_add(&id, g, k, NULL, 0, &no), DS_OK);
  ds_plan *p = NULL;
  assert_int_equal(ds_graph_plan(&p, g, NULL), DS_ERR_INVALID_ARG); /* forced onto no device */
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.policy = 17;
  assert_int_equal(ds_graph_plan(&p, g, &po), DS_ERR_INVALID_ARG);
  po.struct_size = 1;
  assert_int_equal(ds_graph_plan(&p, g, &po), DS_ERR_ABI);
  assert_int_equal(ds_graph_add(NULL, NULL, k, NULL, 0, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_graph_run(g, NULL, NULL), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_kernel_model_record(k, 99, 1, 1.0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_kernel_model_record(k, 0, 1, -1.0), DS_ERR_INVALID_ARG);
  assert_int_equal(ds_kernel_model_predict(k, 0, 1, NULL, NULL), DS_ERR_NOT_FOUND);
  ds_graph_destroy(NULL);
  ds_kernel_destroy(NULL);
  ds_plan_destroy(NULL);
  ds_graph_destroy(g);
  ds_kernel_destroy(k);
  ds_buffer_destroy(x);
  ds_context_destroy(ctx);
}

/* ---- cost models ---- */

static void test_cost_model_history_and_regression(void **state) {
  (void)state;
  struct ds__costmodel cm;
  ds__cm_init(&cm);
  uint64_t n = 9;
  assert_true(isnan(ds__cm_predict(&cm, "dev", 100, &n)));
  assert_int_equal(n, 0);
  /* t = 1e-9 * size^1.5 at three sizes, two samples each around the value. */
  const uint64_t sizes[] = {1000, 8000, 64000};
  for (int i = 0; i < 3; i++) {
    double t = 1e-9 * pow((double)sizes[i], 1.5);
    assert_int_equal(ds__cm_record(&cm, "dev", sizes[i], t * 0.9), DS_OK);
    assert_int_equal(ds__cm_record(&cm, "dev", sizes[i], t * 1.1), DS_OK);
  }
  double t = ds__cm_predict(&cm, "dev", 8000, &n);
  assert_int_equal(n, 2);
  assert_true(fabs(t - 1e-9 * pow(8000, 1.5)) < 1e-12);
  t = ds__cm_predict(&cm, "dev", 27000, &n); /* unseen: the fit */
  assert_int_equal(n, 0);
  double want = 1e-9 * pow(27000, 1.5);
  assert_true(fabs(t - want) / want < 0.05);
  assert_true(isnan(ds__cm_predict(&cm, "other", 8000, NULL)));
  /* A node run's first time per device in a process (JIT, first touch) is not kept. */
  assert_int_equal(ds__cm_record_run(&cm, "fresh", 5, 9.0), DS_OK);
  assert_true(isnan(ds__cm_predict(&cm, "fresh", 5, NULL)));
  assert_int_equal(ds__cm_record_run(&cm, "fresh", 5, 1.0), DS_OK);
  assert_true(ds__cm_predict(&cm, "fresh", 5, &n) == 1.0);
  assert_int_equal(n, 1);
  /* Round trip, then corrupt blobs are refused without touching the model. */
  uint8_t *blob = NULL;
  size_t len = 0;
  ds_context *ctx = new_ctx();
  assert_int_equal(ds__cm_encode(ctx, &cm, &blob, &len), DS_OK);
  struct ds__costmodel cm2;
  ds__cm_init(&cm2);
  assert_int_equal(ds__cm_decode(&cm2, blob, len), DS_OK);
  assert_true(ds__cm_predict(&cm2, "dev", 27000, NULL) == t);
  assert_int_equal(ds__cm_decode(&cm2, blob, len - 1), DS_ERR_FORMAT);
  blob[0] ^= 1;
  assert_int_equal(ds__cm_decode(&cm2, blob, len), DS_ERR_FORMAT);
  assert_true(ds__cm_predict(&cm2, "dev", 27000, NULL) == t);
  ds__free(ctx, blob);
  /* A full model refuses a ninth device and a full key replaces its least-used size. */
  for (int i = 0; cm2.nkeys < DS__CM_MAX_KEYS; i++) {
    char key[16];
    snprintf(key, sizeof key, "d%d", i);
    assert_int_equal(ds__cm_record(&cm2, key, 1, 1.0), DS_OK);
  }
  assert_int_equal(ds__cm_record(&cm2, "ninth", 1, 1.0), DS_ERR_FULL);
  for (uint64_t s = 1; s <= DS__CM_MAX_POINTS + 5; s++)
    assert_int_equal(ds__cm_record(&cm2, "d0", s * 10, 1.0), DS_OK);
  ds__cm_fini(&cm2);
  ds__cm_fini(&cm);
  ds_context_destroy(ctx);
}

static void test_cost_model_persists_across_contexts(void **state) {
  (void)state;
  char dir[512];
  const char *tmp = getenv("DS_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/fabric_graph_models_%d", tmp ? tmp : "/tmp", (int)getpid());
  for (int round = 0; round < 2; round++) {
    ds_context *ctx = new_ctx();
    ds_cache *c = NULL;
    assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 1 << 20, DS_CACHE_CODEC_NONE), DS_OK);
    ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
    ko.name = "persisted";
    ko.cpu = noop_cpu;
    ko.model_cache = c;
    ds_kernel *k = NULL;
    assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_OK);
    double s = 0;
    uint64_t n = 0;
    if (round == 0) {
      assert_int_equal(ds_kernel_model_predict(k, 0, 4096, &s, &n), DS_ERR_NOT_FOUND);
      assert_int_equal(ds_kernel_model_record(k, 0, 4096, 0.25), DS_OK);
      assert_int_equal(ds_kernel_model_record(k, 0, 4096, 0.75), DS_OK);
    } else {
      assert_int_equal(ds_kernel_model_predict(k, 0, 4096, &s, &n), DS_OK);
      assert_int_equal(n, 2);
      assert_true(fabs(s - 0.5) < 1e-12);
    }
    ds_kernel_destroy(k); /* saves */
    ds_cache_destroy(c);
    ds_context_destroy(ctx);
  }
  ds_test_remove(dir);
}

/* ---- the partitioner on synthetic device views ---- */

static double xfer_linear(void *user, int a, int b, uint64_t bytes) {
  (void)a, (void)b;
  return *(double *)user * (double)bytes; /* seconds per byte */
}

/* Two devices: 0 (CPU, memory space 0, 2 units), 1 (OpenCL-kind, memory space 1, 1 unit). */
static void two_devices(struct ds__gplat *pl, double *rate) {
  memset(pl, 0, sizeof *pl);
  pl->ndev = 2;
  pl->nmem = 2;
  pl->dev[0] = (struct ds__gdev){DS__GKIND_CPU, 2, 0, "cpu", 0};
  pl->dev[1] = (struct ds__gdev){DS__GKIND_OPENCL, 1, 1, "accel", 0};
  pl->xfer_s = xfer_linear;
  pl->user = rate;
}

static void test_heft_beats_single_devices_and_respects_transfers(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel *k = both_kernel(ctx, "indep");
  enum { N = 12 };
  ds_buffer *b[N];
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  for (int i = 0; i < N; i++) {
    b[i] = new_buf(ctx, 1 << 20);
    add1(g, k, b[i], DS_ACCESS_RW);
  }
  struct ds__gplat pl;
  double rate = 1e-15; /* transfers almost free */
  two_devices(&pl, &rate);
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.calibrate = 0;
  ds_plan *heft = NULL, *cpu = NULL, *acc = NULL;
  /* The accelerator is 4x faster than one CPU unit at the node size (its accessed bytes). */
  assert_int_equal(ds__cm_record(&k->cm, "cpu", 1u << 20, 4e-3), DS_OK);
  assert_int_equal(ds__cm_record(&k->cm, "accel", 1u << 20, 1e-3), DS_OK);
  assert_int_equal(ds__graph_plan_on(&heft, g, &pl, &po), DS_OK);
  po.policy = DS_PLAN_DEVICE;
  po.device = 0;
  assert_int_equal(ds__graph_plan_on(&cpu, g, &pl, &po), DS_OK);
  po.device = 1;
  assert_int_equal(ds__graph_plan_on(&acc, g, &pl, &po), DS_OK);
  /* CPU: 12 nodes on 2 units of 4 ms = 24 ms; accel: 12 ms; HEFT: 2 on CPU units, 8 on accel
   * (8 ms): the best split is 8 ms. */
  assert_true(fabs(cpu->makespan_s - 24e-3) < 1e-9);
  assert_true(fabs(acc->makespan_s - 12e-3) < 1e-6);
  assert_true(heft->makespan_s <= 8e-3 + 1e-6);
  int on_cpu = 0;
  for (int i = 0; i < N; i++) {
    int32_t d = -1;
    assert_int_equal(ds_plan_device(heft, i, &d), DS_OK);
    on_cpu += d == 0;
  }
  assert_true(on_cpu >= 2 && on_cpu <= 4);
  ds_plan_info info = {sizeof info, 0, 0, 0, 0};
  assert_int_equal(ds_plan_get_info(heft, &info), DS_OK);
  assert_int_equal(info.nodes, N);
  assert_int_equal(info.bytes_moved, (uint64_t)(N - on_cpu) << 20); /* each accel node reads */
  ds_plan_destroy(heft), ds_plan_destroy(cpu), ds_plan_destroy(acc);
  /* Transfers dearer than the gain: everything stays in memory space 0. */
  rate = 1e-6; /* 1 MiB: ~1 s */
  po.policy = DS_PLAN_HEFT;
  assert_int_equal(ds__graph_plan_on(&heft, g, &pl, &po), DS_OK);
  assert_int_equal(ds_plan_get_info(heft, &info), DS_OK);
  assert_int_equal(info.bytes_moved, 0);
  assert_true(fabs(info.makespan_s - 24e-3) < 1e-9);
  ds_plan_destroy(heft);
  ds_graph_destroy(g);
  for (int i = 0; i < N; i++) ds_buffer_destroy(b[i]);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

static void test_heft_keeps_chains_local_and_calibrates(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel *k = both_kernel(ctx, "chain");
  ds_buffer *x = new_buf(ctx, 1 << 20);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  for (int i = 0; i < 6; i++) add1(g, k, x, DS_ACCESS_RW);
  struct ds__gplat pl;
  double rate = 1e-9; /* 1 MiB: ~1 ms each way */
  two_devices(&pl, &rate);
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  ds_plan *p = NULL;
  /* Uncalibrated: the first 2 x DS_PARAM_FABRIC_CALIBRATE_RUNS (2) nodes alternate. */
  assert_int_equal(ds__graph_plan_on(&p, g, &pl, &po), DS_OK);
  ds_plan_info info = {sizeof info, 0, 0, 0, 0};
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  assert_int_equal(info.calibrating, 4);
  int seen[2] = {0, 0};
  for (int i = 0; i < 4; i++) seen[p->dev[i]]++;
  assert_int_equal(seen[0], 2);
  assert_int_equal(seen[1], 2);
  ds_plan_destroy(p);
  /* Calibrated, the accelerator 20% faster: a chain stays where it starts (moving to the
   * accelerator costs 1 ms for a 0.2 ms gain per node). */
  for (int i = 0; i < 2; i++) {
    ds__cm_record(&k->cm, "cpu", 1u << 20, 1e-3);
    ds__cm_record(&k->cm, "accel", 1u << 20, 0.8e-3);
  }
  assert_int_equal(ds__graph_plan_on(&p, g, &pl, &po), DS_OK);
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  assert_int_equal(info.calibrating, 0);
  assert_int_equal(info.bytes_moved, 0);
  for (int i = 0; i < 6; i++) assert_int_equal(p->dev[i], 0);
  ds_plan_destroy(p);
  /* Random and explicit placements are simulated the same way. */
  po.policy = DS_PLAN_RANDOM;
  po.seed = 7;
  assert_int_equal(ds__graph_plan_on(&p, g, &pl, &po), DS_OK);
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  assert_true(info.makespan_s >= 6 * 0.8e-3);
  ds_plan_destroy(p);
  int32_t place[6] = {1, 1, 1, 1, 1, 1};
  po.policy = DS_PLAN_EXPLICIT;
  po.placement = place;
  assert_int_equal(ds__graph_plan_on(&p, g, &pl, &po), DS_OK);
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  assert_int_equal(info.bytes_moved, 1u << 20); /* in once; the result stays there */
  ds_plan_destroy(p);
  /* Times that vary widely keep a kernel calibrating, one more sample at a time, up to
   * fabric_calibrate_max_runs (8); steady ones need fabric_calibrate_runs (2). */
  ds__cm_record(&k->cm, "cpu", 1u << 20, 3e-3); /* 1, 1, 3 ms: the mean's error is 40 % */
  assert_int_equal(ds__cm_wanted(&k->cm, "cpu", 1u << 20, 2, 8), 4);
  assert_int_equal(ds__cm_wanted(&k->cm, "accel", 1u << 20, 2, 8), 2);
  assert_int_equal(ds__cm_wanted(&k->cm, "cpu", 1u << 20, 2, 2), 2); /* extra samples off */
  po = (ds_plan_options)DS_PLAN_OPTIONS_INIT;
  assert_int_equal(ds__graph_plan_on(&p, g, &pl, &po), DS_OK);
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  assert_int_equal(info.calibrating, 1); /* one node measures the noisy device again */
  assert_int_equal(p->dev[0], 0);
  ds_plan_destroy(p);
  for (int i = 0; i < 5; i++) ds__cm_record(&k->cm, "cpu", 1u << 20, (i & 1) ? 3e-3 : 1e-3);
  assert_int_equal(ds__cm_wanted(&k->cm, "cpu", 1u << 20, 2, 8), 8); /* the cap */
  assert_int_equal(ds__graph_plan_on(&p, g, &pl, &po), DS_OK);
  assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
  assert_int_equal(info.calibrating, 0);
  ds_plan_destroy(p);
  ds_graph_destroy(g);
  ds_buffer_destroy(x);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

/* ---- runs: tiled GEMM ---- */

enum { TS = 16, NT = 3 }; /* tile size, tiles per side */

static ds_status gemm_cpu(void *const *b, const size_t *s, size_t n, const void *args,
                          size_t len) {
  (void)s, (void)n;
  int32_t ts = 0;
  memcpy(&ts, args, len < sizeof ts ? len : sizeof ts);
  const float *A = b[0], *B = b[1];
  float *C = b[2];
  for (int i = 0; i < ts; i++)
    for (int j = 0; j < ts; j++) {
      float acc = C[i * ts + j];
      for (int k = 0; k < ts; k++) acc += A[i * ts + k] * B[k * ts + j];
      C[i * ts + j] = acc;
    }
  return DS_OK;
}

static const char *gemm_cl =
    "__kernel void tile_gemm(__global const float *a, __global const float *b,\n"
    "                        __global float *c, int n) {\n"
    "  int i = get_global_id(0), j = get_global_id(1);\n"
    "  float acc = c[i * n + j];\n"
    "  for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];\n"
    "  c[i * n + j] = acc;\n"
    "}\n";

struct gemm {
  ds_context *ctx;
  ds_kernel *k;
  ds_graph *g;
  ds_buffer *A[NT][NT], *B[NT][NT], *C[NT][NT];
  float ref[NT * TS][NT * TS], a[NT * TS][NT * TS], bm[NT * TS][NT * TS];
};

static void tile_write(ds_buffer *buf, const float (*m)[NT * TS], int ti, int tj) {
  float *p = NULL;
  assert_int_equal(ds_buffer_acquire((void **)&p, buf, 0, DS_ACCESS_WRITE), DS_OK);
  for (int i = 0; i < TS; i++)
    for (int j = 0; j < TS; j++) p[i * TS + j] = m ? m[ti * TS + i][tj * TS + j] : 0.0f;
  assert_int_equal(ds_buffer_release(buf, 0), DS_OK);
}

/* Small integers: every product and sum is exact in float, so any evaluation order (CPU or
 * OpenCL, FMA or not) gives the same bits and "identical" can be asserted bit for bit. */
static void gemm_setup(struct gemm *G, ds_context *ctx) {
  memset(G, 0, sizeof *G);
  G->ctx = ctx;
  unsigned seed = 12345;
  for (int i = 0; i < NT * TS; i++)
    for (int j = 0; j < NT * TS; j++) {
      seed = seed * 1103515245u + 12345u;
      G->a[i][j] = (float)((int)(seed >> 16) % 5 - 2);
      seed = seed * 1103515245u + 12345u;
      G->bm[i][j] = (float)((int)(seed >> 16) % 5 - 2);
    }
  for (int i = 0; i < NT * TS; i++)
    for (int j = 0; j < NT * TS; j++) {
      float acc = 0;
      for (int k = 0; k < NT * TS; k++) acc += G->a[i][k] * G->bm[k][j];
      G->ref[i][j] = acc;
    }
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  static const uint32_t argsz[] = {sizeof(int32_t)};
  ko.name = "test_tile_gemm";
  ko.cpu = gemm_cpu;
  ko.opencl_source = gemm_cl;
  ko.opencl_name = "tile_gemm";
  ko.opencl_arg_sizes = argsz;
  ko.opencl_nargs = 1;
  assert_int_equal(ds_kernel_create(&G->k, ctx, &ko), DS_OK);
  assert_int_equal(ds_graph_create(&G->g, ctx), DS_OK);
  size_t bytes = TS * TS * sizeof(float);
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++) {
      G->A[i][j] = new_buf(ctx, bytes);
      G->B[i][j] = new_buf(ctx, bytes);
      G->C[i][j] = new_buf(ctx, bytes);
      tile_write(G->A[i][j], G->a, i, j);
      tile_write(G->B[i][j], G->bm, i, j);
    }
  int32_t ts = TS;
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++)
      for (int k = 0; k < NT; k++) {
        ds_graph_access acc[3] = {
            {G->A[i][k], DS_ACCESS_READ}, {G->B[k][j], DS_ACCESS_READ}, {G->C[i][j], DS_ACCESS_RW}};
        ds_node_options no = DS_NODE_OPTIONS_INIT;
        no.args = &ts;
        no.args_len = sizeof ts;
        no.global[0] = TS;
        no.global[1] = TS;
        assert_int_equal(ds_graph_add(NULL, G->g, G->k, acc, 3, &no), DS_OK);
      }
}

static void gemm_reset_c(struct gemm *G) {
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++) tile_write(G->C[i][j], NULL, i, j);
}

static void gemm_check(struct gemm *G) {
  for (int ti = 0; ti < NT; ti++)
    for (int tj = 0; tj < NT; tj++) {
      float *p = NULL;
      assert_int_equal(ds_buffer_acquire((void **)&p, G->C[ti][tj], 0, DS_ACCESS_READ), DS_OK);
      for (int i = 0; i < TS; i++)
        assert_memory_equal(&p[i * TS], &G->ref[ti * TS + i][tj * TS], TS * sizeof(float));
      assert_int_equal(ds_buffer_release(G->C[ti][tj], 0), DS_OK);
    }
}

static void gemm_free(struct gemm *G) {
  ds_graph_destroy(G->g);
  ds_kernel_destroy(G->k);
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++) {
      assert_int_equal(ds_buffer_destroy(G->A[i][j]), DS_OK);
      assert_int_equal(ds_buffer_destroy(G->B[i][j]), DS_OK);
      assert_int_equal(ds_buffer_destroy(G->C[i][j]), DS_OK);
    }
}

/* Runs a plan and checks C; returns a bit per device the plan used. */
static unsigned run_plan(struct gemm *G, const ds_plan_options *po, const char *what) {
  ds_plan *p = NULL;
  gemm_reset_c(G);
  assert_int_equal(ds_graph_plan(&p, G->g, po), DS_OK);
  unsigned used = 0;
  for (int32_t v = 0; v < NT * NT * NT; v++) {
    int32_t d = -1;
    assert_int_equal(ds_plan_device(p, v, &d), DS_OK);
    used |= 1u << d;
  }
  ds_graph_run_info ri = {sizeof ri, 0, 0};
  ds_status st = ds_graph_run(G->g, p, &ri);
  if (st != DS_OK) fprintf(stderr, "%s: %s\n", what, ds_context_last_error(G->ctx));
  assert_int_equal(st, DS_OK);
  assert_true(ri.makespan_s > 0);
  gemm_check(G);
  ds_plan_destroy(p);
  return used;
}

static int32_t opencl_device(ds_context *ctx) {
  int32_t d = -1;
  if (ds_fabric_device_find(&d, ctx, DS_FABRIC_DEVICE_OPENCL, 0) != DS_OK) {
    printf("[ SKIPPED  ] no OpenCL device: the OpenCL placements are not run\n");
    return -1;
  }
  return d;
}

static void test_gemm_identical_whatever_the_placement(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  struct gemm *G = malloc(sizeof *G);
  assert_non_null(G);
  gemm_setup(G, ctx);
  int32_t cl = opencl_device(ctx);
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  unsigned used = run_plan(G, &po, "HEFT"); /* the first plan calibrates on every device */
  if (cl >= 0) assert_int_equal(used & (1u | 1u << cl), 1u | 1u << cl);
  po.policy = DS_PLAN_DEVICE;
  po.device = 0;
  assert_int_equal(run_plan(G, &po, "all-CPU"), 1u);
  if (cl >= 0) {
    po.device = cl;
    assert_int_equal(run_plan(G, &po, "all-OpenCL"), 1u << cl);
  }
  po = (ds_plan_options)DS_PLAN_OPTIONS_INIT;
  for (int i = 0; i < 2; i++) run_plan(G, &po, "HEFT"); /* on the learned model */
  po.policy = DS_PLAN_RANDOM;
  used = 0;
  for (uint64_t seed = 1; seed <= 4; seed++) {
    po.seed = seed;
    used |= run_plan(G, &po, "random");
  }
  if (cl >= 0) assert_int_equal(used & (1u | 1u << cl), 1u | 1u << cl); /* mixed placements ran */
  /* The runs fed the model: the CPU has samples at the node size. */
  double s = 0;
  uint64_t n = 0;
  assert_int_equal(ds_kernel_model_predict(G->k, 0, 3 * TS * TS * sizeof(float), &s, &n), DS_OK);
  assert_true(n > 0 && s > 0);
  gemm_free(G);
  free(G);
  ds_context_destroy(ctx);
}

/* With every replica a real copy (zero-copy off), runs that prefetch each ready node's inputs
 * to its device give the exact product under mixed placements, as runs that do not; the
 * copies really happen (directly between two OpenCL devices when there are two). */
static void test_prefetch_with_copies_forced(void **state) {
  (void)state;
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 2}, {DS_PARAM_SCHED_BIND, 0, 0},
                         {DS_PARAM_FABRIC_ZERO_COPY, 0, 0}};
  ds_context *ctx = ds_test_context(pv, 3);
  struct gemm *G = malloc(sizeof *G);
  assert_non_null(G);
  gemm_setup(G, ctx);
  int32_t cl = opencl_device(ctx);
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.policy = DS_PLAN_RANDOM;
  for (int prefetch = 1; prefetch >= 0; prefetch--) {
    assert_int_equal(ds_context_set_param(ctx, DS_PARAM_FABRIC_GRAPH_PREFETCH, prefetch), DS_OK);
    unsigned used = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
      po.seed = seed;
      used |= run_plan(G, &po, prefetch ? "random, prefetch" : "random, no prefetch");
    }
    if (cl >= 0) assert_int_equal(used & (1u | 1u << cl), 1u | 1u << cl);
  }
  if (cl >= 0) assert_true(ds_test_stat(ctx, "fabric.copies") > 0);
  /* With a second OpenCL device (ctest test_fabric_graph_two_pocl), nodes on the two hand
   * tiles over directly. */
  int32_t cl2 = -1;
  if (ds_fabric_device_find(&cl2, ctx, DS_FABRIC_DEVICE_OPENCL, 1) == DS_OK)
    assert_true(ds_test_stat(ctx, "fabric.peer_copies") > 0);
  gemm_free(G);
  free(G);
  ds_context_destroy(ctx);
}

/* On the real fabric: reaching PoCL costs nothing for a zero-copy buffer (it uses the host
 * bytes in place) and a copy for a DS_BUFFER_NO_ZERO_COPY one; plans predict both. */
static void test_plan_prices_zero_copy_and_copies(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  int32_t cl = opencl_device(ctx);
  if (cl < 0) {
    ds_context_destroy(ctx);
    return;
  }
  ds_kernel *k = both_kernel(ctx, "priced");
  ds_buffer_options bo = DS_BUFFER_OPTIONS_INIT;
  ds_buffer *zc = new_buf(ctx, 1 << 16), *cp = NULL;
  bo.flags = DS_BUFFER_NO_ZERO_COPY;
  assert_int_equal(ds_buffer_create(&cp, ctx, 1 << 16, &bo), DS_OK);
  for (int copy = 0; copy < 2; copy++) {
    ds_graph *g = NULL;
    assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
    add1(g, k, copy ? cp : zc, DS_ACCESS_READ);
    ds_plan_options po = DS_PLAN_OPTIONS_INIT;
    po.policy = DS_PLAN_DEVICE;
    po.device = cl;
    ds_plan *p = NULL;
    assert_int_equal(ds_graph_plan(&p, g, &po), DS_OK);
    ds_plan_info info = {sizeof info, 0, 0, 0, 0};
    assert_int_equal(ds_plan_get_info(p, &info), DS_OK);
    assert_int_equal(info.bytes_moved, copy ? 1u << 16 : 0u);
    ds_plan_destroy(p);
    ds_graph_destroy(g);
  }
  ds_buffer_destroy(zc);
  ds_buffer_destroy(cp);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

static int ran_after_failure;
static ds_status fail_cpu(void *const *b, const size_t *s, size_t n, const void *a, size_t l) {
  (void)b, (void)s, (void)n, (void)a, (void)l;
  return DS_ERR_DEVICE;
}
static ds_status count_cpu(void *const *b, const size_t *s, size_t n, const void *a, size_t l) {
  (void)b, (void)s, (void)n, (void)a, (void)l;
  ran_after_failure++;
  return DS_OK;
}

static void test_failure_cancels_successors(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "fails";
  ko.cpu = fail_cpu;
  ds_kernel *kf = NULL, *kc = NULL;
  assert_int_equal(ds_kernel_create(&kf, ctx, &ko), DS_OK);
  ko.name = "counts";
  ko.cpu = count_cpu;
  assert_int_equal(ds_kernel_create(&kc, ctx, &ko), DS_OK);
  ds_buffer *x = new_buf(ctx, 64);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  ds_node_options no = DS_NODE_OPTIONS_INIT;
  no.name = "the_bad_one";
  ds_graph_access acc = {x, DS_ACCESS_RW};
  assert_int_equal(ds_graph_add(NULL, g, kf, &acc, 1, &no), DS_OK);
  for (int i = 0; i < 3; i++) add1(g, kc, x, DS_ACCESS_RW);
  ds_plan *p = NULL;
  assert_int_equal(ds_graph_plan(&p, g, NULL), DS_OK);
  ran_after_failure = 0;
  assert_int_equal(ds_graph_run(g, p, NULL), DS_ERR_DEVICE);
  assert_non_null(strstr(ds_context_last_error(ctx), "the_bad_one"));
  assert_int_equal(ran_after_failure, 0);
  /* A plan goes stale when the graph changes. */
  add1(g, kc, x, DS_ACCESS_READ);
  assert_int_equal(ds_graph_run(g, p, NULL), DS_ERR_INVALID_ARG);
  ds_plan_destroy(p);
  ds_graph_destroy(g);
  ds_buffer_destroy(x);
  ds_kernel_destroy(kf);
  ds_kernel_destroy(kc);
  ds_context_destroy(ctx);
}

static void test_gpu_placement(void **state) {
  (void)state;
  ds_context *ctx = new_ctx();
  int32_t d = -1;
  if (ds_fabric_device_find(&d, ctx, DS_FABRIC_DEVICE_CUDA, 0) != DS_OK) {
    const char *req = getenv("DS_REQUIRE_GPU");
    ds_context_destroy(ctx);
    if (req && !strcmp(req, "1")) fail_msg("DS_REQUIRE_GPU=1 but no CUDA device");
    printf("[ SKIPPED  ] no CUDA device: GPU placements not tested (CPU path tested above)\n");
    return;
  }
  /* With a GPU: a CUDA-only kernel plans onto it. */
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "cuda_only";
  ko.cuda = (ds_kernel_cuda_fn)(void (*)(void))noop_cpu;
  ds_kernel *k = NULL;
  assert_int_equal(ds_kernel_create(&k, ctx, &ko), DS_OK);
  ds_buffer *x = new_buf(ctx, 64);
  ds_graph *g = NULL;
  assert_int_equal(ds_graph_create(&g, ctx), DS_OK);
  add1(g, k, x, DS_ACCESS_READ);
  ds_plan *p = NULL;
  assert_int_equal(ds_graph_plan(&p, g, NULL), DS_OK);
  int32_t on = -1;
  assert_int_equal(ds_plan_device(p, 0, &on), DS_OK);
  assert_int_equal(on, d);
  ds_plan_destroy(p);
  ds_graph_destroy(g);
  ds_buffer_destroy(x);
  ds_kernel_destroy(k);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dependencies_follow_accesses),
      cmocka_unit_test(test_cycle_and_unrunnable_nodes_are_named),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_cost_model_history_and_regression),
      cmocka_unit_test(test_cost_model_persists_across_contexts),
      cmocka_unit_test(test_heft_beats_single_devices_and_respects_transfers),
      cmocka_unit_test(test_heft_keeps_chains_local_and_calibrates),
      cmocka_unit_test(test_gemm_identical_whatever_the_placement),
      cmocka_unit_test(test_plan_prices_zero_copy_and_copies),
      cmocka_unit_test(test_prefetch_with_copies_forced),
      cmocka_unit_test(test_failure_cancels_successors),
      cmocka_unit_test(test_gpu_placement),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
