/* Allocation-failure sweep over a whole API scenario (in the manner of SQLite's malloc tests):
 * a ds_allocator that fails the Nth allocation made on the test's thread, for N = 1, 2, ...
 * until the scenario runs through without reaching N. The scenario touches the context,
 * tunables, stats, trace, tensors and DLPack, scheduler tasks with groups and dependencies,
 * the memory cache (L1 + compressed L2), the persistent cache, the batcher and the predictor.
 * Every call must return DS_OK or DS_ERR_NO_MEMORY (the step then stops the scenario, which
 * cleans up), nothing may crash, and after ds_context_destroy every block the library took
 * from the allocator must have been given back (checked per N; ASan/LSan checks the rest).
 *
 * Only the test thread's allocations are counted and failed, so N maps to the same call each
 * run; the library's own threads allocate through the same allocator without failures.
 * DS_FAULT_STRIDE=k (default 1) sweeps only every k-th N, to bound the time. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlpack/dlpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef struct {
  pthread_t owner;
  int64_t count;   /* allocations on the owner thread */
  int64_t fail_at; /* 1-based; 0: never */
  int64_t failed;  /* injected failures */
  ds__atomic_i64 live;
  ds__atomic_i64 random_state; /* nonzero: fail one in 8 of the library threads' allocations */
  ds__atomic_i64 random_failed;
} fault_alloc;

static int fa_random_fail(fault_alloc *fa) {
  int64_t x = ds__load(&fa->random_state), next;
  do {
    if (!x) return 0;
    next = (int64_t)((uint64_t)x * 6364136223846793005ull + 1442695040888963407ull);
  } while (!ds__cas(&fa->random_state, &x, next ? next : 1));
  return ((uint64_t)next >> 61) == 0;
}

static void *fa_alloc(void *user, size_t size) {
  fault_alloc *fa = user;
  if (pthread_equal(pthread_self(), fa->owner) && ++fa->count == fa->fail_at) {
    fa->failed++;
    return NULL;
  }
  if (!pthread_equal(pthread_self(), fa->owner) && fa_random_fail(fa)) {
    ds__fetch_add(&fa->random_failed, 1);
    return NULL;
  }
  void *p = malloc(size);
  if (p) ds__fetch_add(&fa->live, 1);
  return p;
}

static void fa_free(void *user, void *p) {
  fault_alloc *fa = user;
  if (p) ds__fetch_sub(&fa->live, 1);
  free(p);
}

/* ---- the scenario ---- */
typedef struct {
  const char *step; /* the step that failed or misbehaved */
  ds_status st;
  char tmp[512];
} scenario;

/* A step's status must be DS_OK (carry on) or DS_ERR_NO_MEMORY (stop cleanly). */
#define STEP(sc, name, call)                 \
  do {                                       \
    (sc)->step = (name);                     \
    if (((sc)->st = (call)) != DS_OK) return; \
  } while (0)

static ds_status add_one(void *arg) {
  ds__fetch_add((ds__atomic_i64 *)arg, 1);
  return DS_OK;
}

static void scenario_sched(scenario *sc, ds_context *ctx) {
  ds__atomic_i64 ran = 0;
  ds_task_group *g = NULL;
  STEP(sc, "ds_task_group_create", ds_task_group_create(&g, ctx));
  ds_task *a = NULL, *b = NULL;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  sc->step = "ds_task_submit(a)";
  if ((sc->st = ds_task_submit(&a, ctx, add_one, &ran, &o)) == DS_OK) {
    o.deps = &a;
    o.ndeps = 1;
    o.prio = DS_PRIO_LOW;
    sc->step = "ds_task_submit(b after a)";
    if ((sc->st = ds_task_submit(&b, ctx, add_one, &ran, &o)) == DS_OK) {
      sc->step = "ds_task_wait(b)";
      sc->st = ds_task_wait(b, -1);
    }
  }
  ds_status gw = ds_task_group_wait(g, -1);
  if (sc->st == DS_OK && gw != DS_OK) {
    sc->step = "ds_task_group_wait";
    sc->st = gw;
  }
  ds_task_release(a);
  ds_task_release(b);
  ds_task_group_destroy(g);
  if (sc->st == DS_OK && ds__load(&ran) != 2) {
    sc->step = "tasks ran";
    sc->st = DS_ERR_INTERNAL;
  }
}

static void scenario_cache(scenario *sc, ds_context *ctx) {
  ds_cache_options co = DS_CACHE_OPTIONS_INIT;
  co.l1_bytes = 64 << 10;
  co.l2_bytes = 1 << 20;
  co.shards = 2;
  ds_cache *c = NULL;
  STEP(sc, "ds_cache_create", ds_cache_create(&c, ctx, &co));
  char val[4096];
  for (size_t i = 0; i < sizeof val; i++) val[i] = (char)(i / 64);
  size_t len = 0;
  const void *data;
  ds_cache_ref *ref = NULL;
  ds_cache_tier_stats ts;
  memset(&ts, 0, sizeof ts);
  ts.struct_size = sizeof ts;
  sc->step = "ds_cache_put";
  for (int k = 0; k < 40 && sc->st == DS_OK; k++) /* > L1: some move down to L2 */
    sc->st = ds_cache_put(c, &k, sizeof k, val, sizeof val);
  int k0 = 0;
  if (sc->st == DS_OK) { /* a memory cache may drop anything: a miss is fine */
    sc->step = "ds_cache_get";
    sc->st = ds_cache_get(c, &k0, sizeof k0, val, sizeof val, &len);
    if (sc->st == DS_ERR_NOT_FOUND) sc->st = DS_OK;
  }
  if (sc->st == DS_OK) {
    sc->step = "ds_cache_get_ref";
    int k39 = 39;
    sc->st = ds_cache_get_ref(c, &k39, sizeof k39, &data, &len, &ref);
    if (sc->st == DS_ERR_NOT_FOUND) sc->st = DS_OK;
    ds_cache_release(c, ref);
  }
  if (sc->st == DS_OK) {
    sc->step = "ds_cache_stats";
    sc->st = ds_cache_stats(c, DS_CACHE_L2, &ts);
  }
  if (sc->st == DS_OK) {
    sc->step = "ds_cache_flush";
    sc->st = ds_cache_flush(c);
  }
  ds_cache_destroy(c);
}

static void scenario_persistent(scenario *sc, ds_context *ctx) {
  ds_cache_persist_options po = DS_CACHE_PERSIST_OPTIONS_INIT;
  po.max_bytes = 4 << 20;
  po.durability = DS_CACHE_SYNC_EVERY_PUT;
  ds_cache *c = NULL;
  STEP(sc, "ds_cache_open_persistent_ex", ds_cache_open_persistent_ex(&c, ctx, sc->tmp, &po));
  char val[1000], out[1000];
  memset(val, 'v', sizeof val);
  size_t len = 0;
  sc->step = "ds_cache_put(persistent)";
  sc->st = ds_cache_put(c, "key", 3, val, sizeof val);
  if (sc->st == DS_OK) { /* the disk tier keeps what it acknowledged */
    sc->step = "ds_cache_get(persistent)";
    sc->st = ds_cache_get(c, "key", 3, out, sizeof out, &len);
    if (sc->st == DS_OK && (len != sizeof val || memcmp(val, out, len))) sc->st = DS_ERR_CORRUPT;
  }
  if (sc->st == DS_OK) {
    sc->step = "ds_cache_remove(persistent)";
    sc->st = ds_cache_remove(c, "key", 3);
  }
  ds_cache_destroy(c);
}

static ds_status echo_handler(void *user, const ds_batch *batch) {
  (void)user;
  memcpy(batch->output->data, batch->input->data, ds_tensor_nbytes(batch->input));
  return DS_OK;
}

static void scenario_batch(scenario *sc, ds_context *ctx) {
  ds_batcher_options bo = DS_BATCHER_OPTIONS_INIT;
  bo.handler = echo_handler;
  bo.max_batch_size = 4;
  bo.ndim = 1;
  bo.shape[0] = 3;
  bo.output_ndim = 1;
  bo.output_shape[0] = 3;
  ds_batcher *b = NULL;
  STEP(sc, "ds_batcher_create", ds_batcher_create(&b, ctx, &bo));
  float in[2][3] = {{1, 2, 3}, {4, 5, 6}}, out[2][3] = {{0}};
  ds_tensor ti[2], to[2];
  ds_batch_request *req[2] = {NULL, NULL};
  int64_t shape = 3;
  ds_device cpu = {DS_DEVICE_CPU, 0};
  for (int i = 0; i < 2 && sc->st == DS_OK; i++) {
    sc->step = "ds_tensor_init";
    sc->st = ds_tensor_init(&ti[i], ctx, in[i], DS_DTYPE_F32, 1, &shape, NULL, cpu);
    if (sc->st == DS_OK) sc->st = ds_tensor_init(&to[i], ctx, out[i], DS_DTYPE_F32, 1, &shape,
                                                 NULL, cpu);
    if (sc->st == DS_OK) {
      sc->step = "ds_batcher_submit";
      sc->st = ds_batcher_submit(&req[i], b, &ti[i], &to[i], NULL);
    }
  }
  for (int i = 0; i < 2; i++) {
    if (!req[i]) continue;
    ds_status w = ds_batch_request_wait(req[i], -1);
    if (sc->st == DS_OK && (w != DS_OK || memcmp(in[i], out[i], sizeof in[i]))) {
      sc->step = "ds_batch_request_wait";
      sc->st = w != DS_OK ? w : DS_ERR_CORRUPT;
    }
    ds_batch_request_release(req[i]);
  }
  ds_batcher_destroy(b);
}

static void scenario_predict(scenario *sc, ds_context *ctx) {
  ds_predictor_options po = DS_PREDICTOR_OPTIONS_INIT;
  po.nfeatures = 2;
  po.window = 4;
  po.hidden = 4;
  po.horizons = 2;
  ds_predictor *p = NULL, *q = NULL;
  STEP(sc, "ds_predictor_create", ds_predictor_create(&p, ctx, &po));
  float sample[2] = {0.5f, 0.25f}, values[2], probs[2];
  for (int i = 0; i < 4 && sc->st == DS_OK; i++) {
    sc->step = "ds_predictor_observe";
    sc->st = ds_predictor_observe(p, sample);
  }
  if (sc->st == DS_OK) {
    sc->step = "ds_predictor_predict";
    sc->st = ds_predictor_predict(p, values, probs);
  }
  unsigned char buf[65536];
  size_t size = 0;
  if (sc->st == DS_OK) {
    sc->step = "ds_predictor_save_buffer";
    sc->st = ds_predictor_save_buffer(p, buf, sizeof buf, &size);
  }
  if (sc->st == DS_OK) {
    sc->step = "ds_predictor_load_buffer";
    sc->st = ds_predictor_load_buffer(&q, ctx, buf, size);
  }
  ds_predictor_destroy(q);
  ds_predictor_destroy(p);
}

static void dl_release(void *user) { (void)user; }

static void scenario_core(scenario *sc, ds_context *ctx) {
  STEP(sc, "ds_context_set_param", ds_context_set_param(ctx, DS_PARAM_SCHED_TICK_MS, 20));
  int64_t v = 0;
  STEP(sc, "ds_context_get_param", ds_context_get_param(ctx, DS_PARAM_SCHED_TICK_MS, &v));
  int id = ds__stat_register(ctx, "fault.counter", DS_STAT_COUNTER);
  ds__stat_add(ctx, id, 1.0); /* -1 (out of memory) is ignored by design */
  ds_stats *snap = NULL;
  STEP(sc, "ds_stats_snapshot", ds_stats_snapshot(&snap, ctx));
  ds_stats_free(snap);
  char path[1024];
  snprintf(path, sizeof path, "%s.trace.json", sc->tmp);
  STEP(sc, "ds_trace_start", ds_trace_start(ctx, path));
  ds_trace_begin(ctx, "fault", "outer");
  ds_trace_instant(ctx, "fault", "mark");
  ds_trace_end(ctx);
  STEP(sc, "ds_trace_stop", ds_trace_stop(ctx));
  float data[6] = {0};
  int64_t shape[2] = {2, 3};
  ds_device cpu = {DS_DEVICE_CPU, 0};
  ds_tensor t, back;
  STEP(sc, "ds_tensor_init", ds_tensor_init(&t, ctx, data, DS_DTYPE_F32, 2, shape, NULL, cpu));
  DLManagedTensor *dl = NULL;
  STEP(sc, "ds_tensor_to_dlpack", ds_tensor_to_dlpack(&dl, ctx, &t, dl_release, NULL));
  sc->step = "ds_tensor_from_dlpack";
  sc->st = ds_tensor_from_dlpack(&back, ctx, dl);
  dl->deleter(dl);
}

static void run_scenario(scenario *sc, ds_context *ctx) {
  void (*parts[])(scenario *, ds_context *) = {scenario_core,  scenario_sched,
                                               scenario_cache, scenario_persistent,
                                               scenario_batch, scenario_predict};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0] && sc->st == DS_OK; i++)
    parts[i](sc, ctx);
}

static void remove_tmp(const char *tmp) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.trace.json'", tmp, tmp);
  assert_int_equal(system(cmd), 0);
}

/* One run with the fail_at-th allocation failing; returns the allocations the run made. */
static int64_t sweep_once(fault_alloc *fa, int64_t fail_at, const char *tmp, int64_t *nomem) {
  fa->count = 0;
  fa->fail_at = fail_at;
  fa->failed = 0;
  ds_allocator a = {fa_alloc, fa_free, fa};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.allocator = &a;
  ds_param_value params[] = {{DS_PARAM_STATS_FILE, 0, 0},
                             {DS_PARAM_TELEMETRY_PERIOD_MS, 0, 5},
                             {DS_PARAM_SCHED_WORKERS, 0, 2},
                             {DS_PARAM_SCHED_BIND, 0, 0},
                             {DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF}};
  o.params = params;
  o.nparams = sizeof params / sizeof params[0];
  scenario sc = {"ds_context_create", DS_OK, {0}};
  snprintf(sc.tmp, sizeof sc.tmp, "%s", tmp);
  remove_tmp(tmp); /* the same directory content each run: the same allocations */
  ds_context *ctx = NULL;
  sc.st = ds_context_create(&ctx, &o);
  if (sc.st == DS_OK) run_scenario(&sc, ctx);
  else assert_null(ctx);
  ds_context_destroy(ctx);
  if (sc.st != DS_OK && sc.st != DS_ERR_NO_MEMORY)
    fail_msg("allocation %lld failing: %s returned %s (%s)", (long long)fail_at, sc.step,
             ds_status_name(sc.st), ds_context_last_error(NULL));
  if (sc.st == DS_ERR_NO_MEMORY) ++*nomem;
  if (sc.st == DS_ERR_NO_MEMORY && !fa->failed && !ds__load(&fa->random_failed))
    fail_msg("%s returned DS_ERR_NO_MEMORY with no injected failure", sc.step);
  if (ds__load(&fa->live) != 0)
    fail_msg("allocation %lld failing (%s): %lld blocks not given back", (long long)fail_at,
             sc.step, (long long)ds__load(&fa->live));
  return fa->count;
}

static void test_alloc_failure_sweep(void **state) {
  (void)state;
  const char *env = getenv("DS_FAULT_STRIDE");
  int64_t stride = env ? atoll(env) : 1;
  if (stride < 1) stride = 1;
  const char *dir = getenv("DS_TEST_TMP");
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s/fault_alloc.%d", dir ? dir : "/tmp", (int)getpid());
  fault_alloc *fa = calloc(1, sizeof *fa);
  assert_non_null(fa);
  fa->owner = pthread_self();
  uint64_t t0 = ds__now_ns();
  int64_t nomem = 0, total = sweep_once(fa, 0, tmp, &nomem), runs = 1;
  printf("fault sweep: one run makes %lld allocations on the test thread (%.1f ms)\n",
         (long long)total, (double)(ds__now_ns() - t0) / 1e6);
  fflush(stdout);
  int64_t n = 1;
  for (; n <= total + 1; n += stride, runs++) {
    int64_t made = sweep_once(fa, n, tmp, &nomem);
    if (made < n) break; /* the scenario finished before reaching N */
    if (made > total) total = made;
  }
  printf("fault sweep: %lld allocations on the test thread per scenario, %lld runs (stride "
         "%lld), %lld ended in DS_ERR_NO_MEMORY, %.1f s\n",
         (long long)total, (long long)runs, (long long)stride, (long long)nomem,
         (double)(ds__now_ns() - t0) / 1e9);
  assert_true(total > 50);
  assert_true(nomem > 0);
  remove_tmp(tmp);
  free(fa);
}

/* Random failures of the library's own threads' allocations (workers, batcher timer, cache
 * prefetch, telemetry): not reproducible run to run, so only "no crash, no hang, no leak, no
 * status other than DS_OK or DS_ERR_NO_MEMORY from the scenario's calls" is checked, over
 * several seeds. */
static void test_random_failures_all_threads(void **state) {
  (void)state;
  const char *dir = getenv("DS_TEST_TMP");
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s/fault_random.%d", dir ? dir : "/tmp", (int)getpid());
  fault_alloc *fa = calloc(1, sizeof *fa);
  assert_non_null(fa);
  fa->owner = pthread_self();
  int64_t nomem = 0, injected = 0;
  for (int64_t seed = 1; seed <= 40; seed++) {
    ds__store(&fa->random_failed, 0);
    ds__store(&fa->random_state, seed * 0x9E3779B97F4A7C15ll);
    sweep_once(fa, 0, tmp, &nomem);
    ds__store(&fa->random_state, 0);
    injected += ds__load(&fa->random_failed);
  }
  printf("random faults: 40 runs, %lld allocations of library threads failed, %lld runs ended in "
         "DS_ERR_NO_MEMORY\n", (long long)injected, (long long)nomem);
  assert_true(injected > 0);
  remove_tmp(tmp);
  free(fa);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_failure_sweep),
      cmocka_unit_test(test_random_failures_all_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
