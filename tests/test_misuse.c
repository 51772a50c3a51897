/* API misuse across every public header: NULL arguments, a wrong struct_size, out-of-range
 * tunables and options, calls in a wrong state. Each row is one call with the status it must
 * return; all rows run (a mismatch is reported and fails the test at the end) and nothing
 * may crash. With DS_MISUSE_TABLE=<file>, the rows are written there as the Markdown table of
 * docs/reliability.md ("API misuse"). Use after destroy is not detectable (handles are plain
 * pointers) and is left to ASan; it is not in the table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlpack/dlpack.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int mismatches, rows;
static FILE *table;

static void row(const char *call, const char *misuse, ds_status want, ds_status got) {
  rows++;
  if (table) fprintf(table, "| `%s` | %s | `%s` |\n", call, misuse, ds_status_name(want));
  if (got != want) {
    mismatches++;
    fprintf(stderr, "misuse: %s with %s: want %s, got %s (%s)\n", call, misuse,
            ds_status_name(want), ds_status_name(got), ds_context_last_error(NULL));
  }
}

/* Calls that return no status: the row records what they do instead. */
static void row_fact(const char *call, const char *misuse, const char *result, int ok) {
  rows++;
  if (table) fprintf(table, "| `%s` | %s | %s |\n", call, misuse, result);
  if (!ok) {
    mismatches++;
    fprintf(stderr, "misuse: %s with %s: did not %s\n", call, misuse, result);
  }
}

static ds_context *quiet_ctx(void) {
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value p[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                        {DS_PARAM_STATS_FILE, 0, 0},
                        {DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF},
                        {DS_PARAM_SCHED_WORKERS, 0, 2},
                        {DS_PARAM_SCHED_BIND, 0, 0}};
  o.params = p;
  o.nparams = 5;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static const char *tmp_path(const char *name) {
  static char buf[4][1024];
  static int k;
  char *b = buf[k++ & 3];
  const char *dir = getenv("DS_TEST_TMP");
  snprintf(b, 1024, "%s/%s.%d", dir ? dir : "/tmp", name, (int)getpid());
  return b;
}

static void context_rows(ds_context *ctx) {
  ds_context *c = NULL;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  row("ds_context_create", "NULL out", DS_ERR_INVALID_ARG, ds_context_create(NULL, NULL));
  o.struct_size = 3;
  row("ds_context_create", "struct_size 3", DS_ERR_ABI, ds_context_create(&c, &o));
  o = (ds_context_options)DS_CONTEXT_OPTIONS_INIT;
  o.header_version = DS_VERSION_NUMBER + 1000000u;
  row("ds_context_create", "headers of the next major version", DS_ERR_VERSION,
      ds_context_create(&c, &o));
  o = (ds_context_options)DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value bad = {DS_PARAM_LOG_LEVEL, 0, 99};
  o.params = &bad;
  o.nparams = 1;
  row("ds_context_create", "tunable out of range in params", DS_ERR_INVALID_ARG,
      ds_context_create(&c, &o));
  o.params = NULL;
  o.nparams = 0;
  o.config_path = tmp_path("no-such-config");
  row("ds_context_create", "config_path that does not exist", DS_ERR_CONFIG,
      ds_context_create(&c, &o));
  row_fact("ds_context_create", "any failure", "leave *out NULL", c == NULL);
  ds_context_destroy(NULL);
  row_fact("ds_context_destroy", "NULL", "do nothing", 1);
  row("ds_context_set_param", "NULL ctx", DS_ERR_INVALID_ARG,
      ds_context_set_param(NULL, DS_PARAM_LOG_LEVEL, 1));
  row("ds_context_set_param", "unknown tunable 9999", DS_ERR_INVALID_ARG,
      ds_context_set_param(ctx, (ds_param)9999, 0));
  row("ds_context_set_param", "value above the maximum", DS_ERR_INVALID_ARG,
      ds_context_set_param(ctx, DS_PARAM_SCHED_TICK_MS, 10001));
  row("ds_context_set_param", "value below the minimum", DS_ERR_INVALID_ARG,
      ds_context_set_param(ctx, DS_PARAM_TELEMETRY_PERIOD_MS, 0));
  row("ds_context_set_param", "creation-only tunable after creation", DS_ERR_STATE,
      ds_context_set_param(ctx, DS_PARAM_TELEMETRY_CAPACITY, 64));
  row("ds_context_get_param", "NULL out", DS_ERR_INVALID_ARG,
      ds_context_get_param(ctx, DS_PARAM_LOG_LEVEL, NULL));
  int64_t v;
  row("ds_context_get_param", "unknown tunable", DS_ERR_INVALID_ARG,
      ds_context_get_param(ctx, (ds_param)-1, &v));
  row("ds_context_load_config", "NULL path", DS_ERR_INVALID_ARG,
      ds_context_load_config(ctx, NULL));
  row("ds_context_load_config", "missing file", DS_ERR_CONFIG,
      ds_context_load_config(ctx, tmp_path("no-such-config")));
  row("ds_context_set_log", "level 17", DS_ERR_INVALID_ARG,
      ds_context_set_log(ctx, 17, NULL, NULL));
  int64_t lo, hi;
  row("ds_param_bounds", "unknown tunable", DS_ERR_INVALID_ARG,
      ds_param_bounds((ds_param)9999, &lo, &hi));
  ds_param p;
  row("ds_param_from_name", "unknown name", DS_ERR_NOT_FOUND, ds_param_from_name(&p, "nope"));
  row("ds_param_from_name", "NULL name", DS_ERR_INVALID_ARG, ds_param_from_name(&p, NULL));
  row_fact("ds_param_name", "unknown tunable", "return NULL", ds_param_name((ds_param)9999) == NULL);
  row_fact("ds_status_str", "unknown status", "return \"unknown status\"",
           !strcmp(ds_status_str((ds_status)999), "unknown status"));
  row_fact("ds_context_last_error", "NULL ctx", "return the context-free message",
           ds_context_last_error(NULL) != NULL);
}

static void stats_trace_rows(ds_context *ctx) {
  ds_stats *s = NULL;
  row("ds_stats_snapshot", "NULL out", DS_ERR_INVALID_ARG, ds_stats_snapshot(NULL, ctx));
  row("ds_stats_snapshot", "NULL ctx", DS_ERR_INVALID_ARG, ds_stats_snapshot(&s, NULL));
  row("ds_stats_file_read", "missing file", DS_ERR_IO,
      ds_stats_file_read(&s, tmp_path("no-such-stats")));
  const char *junk = tmp_path("junk.stats");
  FILE *f = fopen(junk, "w");
  assert_non_null(f);
  fputs("this is not a stats file, but long enough to have a header's size......", f);
  fclose(f);
  row("ds_stats_file_read", "a file that is not a stats file", DS_ERR_CORRUPT,
      ds_stats_file_read(&s, junk));
  remove(junk);
  char small[2];
  row("ds_stats_dir", "NULL buffer", DS_ERR_INVALID_ARG, ds_stats_dir(NULL, 10));
  row("ds_stats_dir", "buffer of 2 bytes", DS_ERR_NO_SPACE, ds_stats_dir(small, sizeof small));
  ds_stat st;
  row("ds_stats_at", "NULL snapshot", DS_ERR_NOT_FOUND, ds_stats_at(&st, NULL, 0));
  assert_int_equal(ds_stats_snapshot(&s, ctx), DS_OK);
  row("ds_stats_at", "index past the end", DS_ERR_NOT_FOUND, ds_stats_at(&st, s, 1u << 30));
  double d;
  row("ds_stats_find", "unknown name", DS_ERR_NOT_FOUND, ds_stats_find(&d, s, "no.such.stat"));
  row("ds_stats_find", "NULL name", DS_ERR_INVALID_ARG, ds_stats_find(&d, s, NULL));
  ds_stats_free(s);
  ds_stats_free(NULL);
  row_fact("ds_stats_free", "NULL", "do nothing", 1);
  row("ds_trace_start", "NULL ctx", DS_ERR_INVALID_ARG, ds_trace_start(NULL, "x"));
  row("ds_trace_start", "NULL path", DS_ERR_INVALID_ARG, ds_trace_start(ctx, NULL));
  row("ds_trace_start", "path in a missing directory", DS_ERR_IO,
      ds_trace_start(ctx, tmp_path("no-such-dir/trace.json")));
  row("ds_trace_stop", "not recording", DS_ERR_STATE, ds_trace_stop(ctx));
  const char *tp = tmp_path("misuse.trace.json");
  assert_int_equal(ds_trace_start(ctx, tp), DS_OK);
  row("ds_trace_start", "already recording", DS_ERR_STATE, ds_trace_start(ctx, tp));
  ds_trace_end(ctx);
  row_fact("ds_trace_end", "no open span", "do nothing", 1);
  assert_int_equal(ds_trace_stop(ctx), DS_OK);
  remove(tp);
  ds_trace_begin(NULL, "c", "n");
  ds_trace_instant(NULL, "c", "n");
  row_fact("ds_trace_begin/instant/counter", "NULL ctx", "do nothing", 1);
}

static void dl_deleter(DLManagedTensor *t) { (void)t; }

static void tensor_rows(ds_context *ctx) {
  ds_tensor t;
  float data[4];
  int64_t shape[2] = {2, 2}, neg[1] = {-1};
  ds_device cpu = {DS_DEVICE_CPU, 0}, bad_dev = {99, 0};
  row("ds_tensor_init", "NULL out", DS_ERR_INVALID_ARG,
      ds_tensor_init(NULL, ctx, data, DS_DTYPE_F32, 2, shape, NULL, cpu));
  row("ds_tensor_init", "dtype 99", DS_ERR_INVALID_ARG,
      ds_tensor_init(&t, ctx, data, (ds_dtype)99, 2, shape, NULL, cpu));
  row("ds_tensor_init", "ndim 9", DS_ERR_INVALID_ARG,
      ds_tensor_init(&t, ctx, data, DS_DTYPE_F32, 9, shape, NULL, cpu));
  row("ds_tensor_init", "negative dim", DS_ERR_INVALID_ARG,
      ds_tensor_init(&t, ctx, data, DS_DTYPE_F32, 1, neg, NULL, cpu));
  row("ds_tensor_init", "NULL data, non-empty shape", DS_ERR_INVALID_ARG,
      ds_tensor_init(&t, ctx, NULL, DS_DTYPE_F32, 2, shape, NULL, cpu));
  row("ds_tensor_init", "device type 99", DS_ERR_INVALID_ARG,
      ds_tensor_init(&t, ctx, data, DS_DTYPE_F32, 2, shape, NULL, bad_dev));
  row("ds_tensor_from_dlpack", "NULL source", DS_ERR_INVALID_ARG,
      ds_tensor_from_dlpack(&t, ctx, NULL));
  DLManagedTensor m;
  memset(&m, 0, sizeof m);
  m.dl_tensor.data = data;
  m.dl_tensor.device.device_type = kDLCPU;
  m.dl_tensor.ndim = 2;
  m.dl_tensor.shape = shape;
  m.dl_tensor.dtype.code = kDLFloat;
  m.dl_tensor.dtype.bits = 32;
  m.dl_tensor.dtype.lanes = 4;
  m.deleter = dl_deleter;
  row("ds_tensor_from_dlpack", "dtype with 4 lanes", DS_ERR_UNSUPPORTED,
      ds_tensor_from_dlpack(&t, ctx, &m));
  m.dl_tensor.dtype.lanes = 1;
  m.dl_tensor.ndim = 9;
  row("ds_tensor_from_dlpack", "9 dims", DS_ERR_UNSUPPORTED, ds_tensor_from_dlpack(&t, ctx, &m));
  DLManagedTensor *out = NULL;
  row("ds_tensor_to_dlpack", "NULL source", DS_ERR_INVALID_ARG,
      ds_tensor_to_dlpack(&out, ctx, NULL, NULL, NULL));
  row_fact("ds_dtype_size", "dtype 99", "return 0", ds_dtype_size((ds_dtype)99) == 0);
  float a[4] = {0}, b[6] = {0};
  row("ds_precision_convert", "NULL ctx", DS_ERR_INVALID_ARG,
      ds_precision_convert(NULL, a, DS_DTYPE_F32, b, DS_DTYPE_F32, 1));
  row("ds_precision_convert", "i32 source", DS_ERR_DTYPE,
      ds_precision_convert(ctx, a, DS_DTYPE_F32, b, DS_DTYPE_I32, 1));
  ds_tensor ta, tb, tc;
  int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
  ds_tensor_init(&ta, ctx, b, DS_DTYPE_F32, 2, s23, NULL, cpu);
  ds_tensor_init(&tb, ctx, b, DS_DTYPE_F32, 2, s23, NULL, cpu);
  ds_tensor_init(&tc, ctx, a, DS_DTYPE_F32, 2, s22, NULL, cpu);
  row("ds_gemm", "inner dimensions disagree", DS_ERR_SHAPE,
      ds_gemm(ctx, &tc, &ta, &tb, 0, 1.0f, 0.0f));
  row("ds_gemm", "NULL operand", DS_ERR_INVALID_ARG, ds_gemm(ctx, &tc, NULL, &tb, 0, 1.0f, 0.0f));
  ds_precision_policy *pol = NULL;
  ds_precision_policy_options po;
  memset(&po, 0, sizeof po);
  po.struct_size = 5;
  row("ds_precision_policy_create", "struct_size 5", DS_ERR_ABI,
      ds_precision_policy_create(&pol, ctx, &po));
  ds_loss_scaler *ls = NULL;
  ds_loss_scaler_options lo = DS_LOSS_SCALER_OPTIONS_INIT;
  lo.growth_factor = 0.5f;
  row("ds_loss_scaler_create", "growth_factor 0.5", DS_ERR_INVALID_ARG,
      ds_loss_scaler_create(&ls, ctx, &lo));
  ds_optimizer *opt = NULL;
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.lr = -1.0f;
  row("ds_optimizer_create", "negative lr", DS_ERR_INVALID_ARG,
      ds_optimizer_create(&opt, ctx, &oo));
  oo.lr = 0.01f;
  assert_int_equal(ds_optimizer_create(&opt, ctx, &oo), DS_OK);
  float w[2] = {1, 2};
  row("ds_optimizer_step", "unknown parameter name", DS_ERR_NOT_FOUND,
      ds_optimizer_step(opt, "nope", w));
  ds_optimizer_destroy(opt);
}

static ds_status noop_task(void *arg) {
  (void)arg;
  return DS_OK;
}

static void sched_rows(ds_context *ctx) {
  ds_task *t = NULL;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  row("ds_sched_start", "NULL ctx", DS_ERR_INVALID_ARG, ds_sched_start(NULL));
  row("ds_task_submit", "NULL ctx", DS_ERR_INVALID_ARG, ds_task_submit(&t, NULL, noop_task, NULL, NULL));
  row("ds_task_submit", "NULL fn", DS_ERR_INVALID_ARG, ds_task_submit(&t, ctx, NULL, NULL, NULL));
  o.struct_size = 1;
  row("ds_task_submit", "struct_size 1", DS_ERR_ABI, ds_task_submit(&t, ctx, noop_task, NULL, &o));
  o = (ds_task_options)DS_TASK_OPTIONS_INIT;
  o.prio = 7;
  row("ds_task_submit", "prio 7", DS_ERR_INVALID_ARG, ds_task_submit(&t, ctx, noop_task, NULL, &o));
  o.prio = DS_PRIO_NORMAL;
  ds_task *nulldep = NULL;
  o.deps = &nulldep;
  o.ndeps = 1;
  row("ds_task_submit", "a NULL dependency", DS_ERR_INVALID_ARG,
      ds_task_submit(&t, ctx, noop_task, NULL, &o));
  o.deps = NULL;
  o.ndeps = 2;
  row("ds_task_submit", "ndeps 2, deps NULL", DS_ERR_INVALID_ARG,
      ds_task_submit(&t, ctx, noop_task, NULL, &o));
  row_fact("ds_task_submit", "any failure", "leave *out NULL", t == NULL);
  row("ds_task_wait", "NULL", DS_ERR_INVALID_ARG, ds_task_wait(NULL, 0));
  row("ds_task_cancel", "NULL", DS_ERR_INVALID_ARG, ds_task_cancel(NULL));
  assert_int_equal(ds_task_submit(&t, ctx, noop_task, NULL, NULL), DS_OK);
  assert_int_equal(ds_task_wait(t, -1), DS_OK);
  row("ds_task_cancel", "task already done", DS_ERR_STATE, ds_task_cancel(t));
  ds_task_release(t);
  ds_task_release(NULL);
  row_fact("ds_task_release", "NULL", "do nothing", 1);
  row_fact("ds_task_cancelled", "outside a task", "return 0", ds_task_cancelled() == 0);
  row_fact("ds_task_yield", "outside a task", "return 0", ds_task_yield() == 0);
  ds_task_group *g = NULL;
  row("ds_task_group_create", "NULL out", DS_ERR_INVALID_ARG, ds_task_group_create(NULL, ctx));
  row("ds_task_group_create", "NULL ctx", DS_ERR_INVALID_ARG, ds_task_group_create(&g, NULL));
  row("ds_task_group_wait", "NULL", DS_ERR_INVALID_ARG, ds_task_group_wait(NULL, 0));
  ds_task_group_destroy(NULL);
  row_fact("ds_task_group_destroy", "NULL", "do nothing", 1);
  row("ds_sched_set_predictor", "NULL ctx", DS_ERR_INVALID_ARG, ds_sched_set_predictor(NULL, NULL));
  row("ds_sched_load", "NULL ctx", DS_ERR_INVALID_ARG, ds_sched_load(NULL, NULL, NULL, NULL));
  int32_t n;
  row("ds_sched_workers", "NULL out", DS_ERR_INVALID_ARG, ds_sched_workers(ctx, NULL));
  row("ds_sched_workers", "NULL ctx", DS_ERR_INVALID_ARG, ds_sched_workers(NULL, &n));
}

static void cache_rows(ds_context *ctx) {
  ds_cache *c = NULL;
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  row("ds_cache_create", "NULL ctx", DS_ERR_INVALID_ARG, ds_cache_create(&c, NULL, NULL));
  o.struct_size = 2;
  row("ds_cache_create", "struct_size 2", DS_ERR_ABI, ds_cache_create(&c, ctx, &o));
  o = (ds_cache_options)DS_CACHE_OPTIONS_INIT;
  o.policy = "nope";
  row("ds_cache_create", "unknown policy name", DS_ERR_INVALID_ARG, ds_cache_create(&c, ctx, &o));
  o.policy = NULL;
  o.shards = 3;
  row("ds_cache_create", "3 shards (not a power of two)", DS_ERR_INVALID_ARG,
      ds_cache_create(&c, ctx, &o));
  o.shards = 0;
  o.codec = 9;
  row("ds_cache_create", "codec 9", DS_ERR_INVALID_ARG, ds_cache_create(&c, ctx, &o));
  o.codec = DS_CACHE_CODEC_ZSTD;
  o.zstd_level = 40;
  row("ds_cache_create", "zstd level 40", DS_ERR_INVALID_ARG, ds_cache_create(&c, ctx, &o));
  assert_int_equal(ds_cache_create(&c, ctx, NULL), DS_OK);
  char big[70000] = {0}, buf[4];
  size_t len;
  row("ds_cache_put", "NULL cache", DS_ERR_INVALID_ARG, ds_cache_put(NULL, "k", 1, "v", 1));
  row("ds_cache_put", "key length 0", DS_ERR_INVALID_ARG, ds_cache_put(c, "k", 0, "v", 1));
  row("ds_cache_put", "key length 70000", DS_ERR_INVALID_ARG,
      ds_cache_put(c, big, sizeof big, "v", 1));
  row("ds_cache_put", "NULL value with length 5", DS_ERR_INVALID_ARG,
      ds_cache_put(c, "k", 1, NULL, 5));
  row("ds_cache_put_owned", "NULL free function", DS_ERR_INVALID_ARG,
      ds_cache_put_owned(c, "k", 1, buf, 1, NULL, NULL));
  assert_int_equal(ds_cache_put(c, "k", 1, "0123456789", 10), DS_OK);
  row("ds_cache_get", "buffer too small", DS_ERR_FULL, ds_cache_get(c, "k", 1, buf, sizeof buf, &len));
  row("ds_cache_get", "NULL len", DS_ERR_INVALID_ARG, ds_cache_get(c, "k", 1, buf, sizeof buf, NULL));
  row("ds_cache_get", "missing key", DS_ERR_NOT_FOUND, ds_cache_get(c, "z", 1, buf, sizeof buf, &len));
  row("ds_cache_unpin", "key not pinned", DS_ERR_STATE, ds_cache_unpin(c, "k", 1));
  row("ds_cache_remove", "missing key", DS_ERR_NOT_FOUND, ds_cache_remove(c, "z", 1));
  ds_cache_tier_stats s;
  memset(&s, 0, sizeof s);
  row("ds_cache_stats", "struct_size 0", DS_ERR_ABI, ds_cache_stats(c, DS_CACHE_L1, &s));
  s.struct_size = sizeof s;
  row("ds_cache_stats", "tier 9", DS_ERR_INVALID_ARG, ds_cache_stats(c, 9, &s));
  row_fact("ds_cache_contains", "NULL cache", "return 0", ds_cache_contains(NULL, "k", 1) == 0);
  ds_cache_release(c, NULL);
  row_fact("ds_cache_release", "NULL ref", "do nothing", 1);
  ds_cache_destroy(c);
  ds_cache_destroy(NULL);
  row_fact("ds_cache_destroy", "NULL", "do nothing", 1);
  row("ds_cache_open_persistent", "NULL path", DS_ERR_INVALID_ARG,
      ds_cache_open_persistent(&c, ctx, NULL, 8 << 20, 0));
  row("ds_cache_open_persistent", "max_bytes below 1 MiB", DS_ERR_INVALID_ARG,
      ds_cache_open_persistent(&c, ctx, tmp_path("misuse_small"), 1000, 0));
  ds_cache_persist_options po = DS_CACHE_PERSIST_OPTIONS_INIT;
  po.struct_size = 4;
  row("ds_cache_open_persistent_ex", "struct_size 4", DS_ERR_ABI,
      ds_cache_open_persistent_ex(&c, ctx, tmp_path("misuse_abi"), &po));
  po = (ds_cache_persist_options)DS_CACHE_PERSIST_OPTIONS_INIT;
  po.max_bytes = 8 << 20;
  po.durability = 5;
  row("ds_cache_open_persistent_ex", "durability 5", DS_ERR_INVALID_ARG,
      ds_cache_open_persistent_ex(&c, ctx, tmp_path("misuse_dur"), &po));
  const char *file = tmp_path("misuse_file");
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  row("ds_cache_open_persistent", "path is a regular file", DS_ERR_IO,
      ds_cache_open_persistent(&c, ctx, file, 8 << 20, 0));
  remove(file);
  const char *dir = tmp_path("misuse_cache");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && echo junk > '%s/MANIFEST'", dir,
           dir, dir);
  assert_int_equal(system(cmd), 0);
  row("ds_cache_open_persistent", "directory with a foreign MANIFEST", DS_ERR_FORMAT,
      ds_cache_open_persistent(&c, ctx, dir, 8 << 20, 0));
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(ds_cache_open_persistent(&c, ctx, dir, 8 << 20, 0), DS_OK);
  ds_cache *second = NULL;
  row("ds_cache_open_persistent", "directory already open for writing", DS_ERR_BUSY,
      ds_cache_open_persistent(&second, ctx, dir, 8 << 20, 0));
  row("ds_cache_pin", "persistent cache", DS_ERR_UNSUPPORTED, ds_cache_pin(c, "k", 1));
  ds_cache_destroy(c);
  po.durability = DS_CACHE_SYNC_BATCHED;
  po.read_only = 1;
  assert_int_equal(ds_cache_open_persistent_ex(&c, ctx, dir, &po), DS_OK);
  row("ds_cache_put", "read-only persistent cache", DS_ERR_STATE, ds_cache_put(c, "k", 1, "v", 1));
  ds_cache_destroy(c);
  assert_int_equal(system(cmd), 0);
}

static ds_status copy_handler(void *user, const ds_batch *b) {
  (void)user;
  memcpy(b->output->data, b->input->data, ds_tensor_nbytes(b->input));
  return DS_OK;
}

static void batch_rows(ds_context *ctx) {
  ds_batcher *b = NULL;
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.ndim = 1;
  o.shape[0] = 2;
  o.output_ndim = 1;
  o.output_shape[0] = 2;
  row("ds_batcher_create", "no handler", DS_ERR_INVALID_ARG, ds_batcher_create(&b, ctx, &o));
  o.handler = copy_handler;
  o.struct_size = 8;
  row("ds_batcher_create", "struct_size 8", DS_ERR_ABI, ds_batcher_create(&b, ctx, &o));
  o.struct_size = sizeof o;
  o.max_batch_size = -1; /* 0 means the context's batch_max_size */
  row("ds_batcher_create", "max_batch_size -1", DS_ERR_INVALID_ARG, ds_batcher_create(&b, ctx, &o));
  o.max_batch_size = 4;
  o.output_ndim = 2;
  o.output_shape[1] = -1; /* -1 where the input has no dim */
  row("ds_batcher_create", "output -1 past the input's dims", DS_ERR_INVALID_ARG,
      ds_batcher_create(&b, ctx, &o));
  o.output_ndim = 1;
  o.output_shape[1] = 0;
  o.ndim = 8;
  row("ds_batcher_create", "ndim 8", DS_ERR_INVALID_ARG, ds_batcher_create(&b, ctx, &o));
  o.ndim = 1;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[3] = {1, 2, 3}, out[2];
  int32_t iin[2] = {1, 2};
  int64_t s2 = 2, s3 = 3, s22[2] = {2, 1}, strided[1] = {2};
  ds_device cpu = {DS_DEVICE_CPU, 0};
  ds_tensor ti, to, t3, tint, tstr;
  ds_tensor_init(&ti, ctx, in, DS_DTYPE_F32, 1, &s2, NULL, cpu);
  ds_tensor_init(&to, ctx, out, DS_DTYPE_F32, 1, &s2, NULL, cpu);
  ds_tensor_init(&t3, ctx, in, DS_DTYPE_F32, 1, &s3, NULL, cpu);
  ds_tensor_init(&tint, ctx, iin, DS_DTYPE_I32, 1, &s2, NULL, cpu);
  ds_tensor_init(&tstr, ctx, in, DS_DTYPE_F32, 1, &s2, strided, cpu);
  (void)s22;
  ds_batch_request *r = NULL;
  row("ds_batcher_submit", "NULL input", DS_ERR_INVALID_ARG, ds_batcher_submit(&r, b, NULL, &to, NULL));
  row("ds_batcher_submit", "dim 3 where 2 is fixed", DS_ERR_SHAPE,
      ds_batcher_submit(&r, b, &t3, &to, NULL));
  row("ds_batcher_submit", "i32 input to an f32 batcher", DS_ERR_DTYPE,
      ds_batcher_submit(&r, b, &tint, &to, NULL));
  row("ds_batcher_submit", "non-contiguous input", DS_ERR_INVALID_ARG,
      ds_batcher_submit(&r, b, &tstr, &to, NULL));
  ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.struct_size = 3;
  row("ds_batcher_submit", "struct_size 3", DS_ERR_ABI, ds_batcher_submit(&r, b, &ti, &to, &so));
  so = (ds_batch_submit_options)DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.prio = DS_PRIO_LOW;
  row("ds_batcher_submit", "prio LOW", DS_ERR_INVALID_ARG, ds_batcher_submit(&r, b, &ti, &to, &so));
  row_fact("ds_batcher_submit", "any failure", "leave *out NULL", r == NULL);
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_OK);
  assert_int_equal(ds_batch_request_wait(r, -1), DS_OK);
  row("ds_batch_request_cancel", "request already done", DS_ERR_STATE, ds_batch_request_cancel(r));
  ds_batch_request_release(r);
  r = NULL;
  row("ds_batch_request_wait", "NULL", DS_ERR_INVALID_ARG, ds_batch_request_wait(NULL, 0));
  ds_batcher_stats st;
  memset(&st, 0, sizeof st);
  row("ds_batcher_stats_get", "struct_size 0", DS_ERR_ABI, ds_batcher_stats_get(b, &st));
  row("ds_batcher_histogram", "NULL counts", DS_ERR_INVALID_ARG, ds_batcher_histogram(b, NULL, 4));
  assert_int_equal(ds_batcher_shutdown(b, 1), DS_OK);
  row("ds_batcher_submit", "after ds_batcher_shutdown", DS_ERR_SHUTDOWN,
      ds_batcher_submit(&r, b, &ti, &to, NULL));
  row("ds_batcher_shutdown", "second call", DS_OK, ds_batcher_shutdown(b, 0));
  ds_batcher_destroy(b);
  ds_batcher_destroy(NULL);
  row_fact("ds_batcher_destroy", "NULL", "do nothing", 1);
}

static void predict_rows(ds_context *ctx) {
  ds_predictor *p = NULL;
  ds_predictor_options o = DS_PREDICTOR_OPTIONS_INIT;
  o.struct_size = 7;
  row("ds_predictor_create", "struct_size 7", DS_ERR_ABI, ds_predictor_create(&p, ctx, &o));
  o = (ds_predictor_options)DS_PREDICTOR_OPTIONS_INIT;
  o.nfeatures = 0;
  row("ds_predictor_create", "0 features", DS_ERR_INVALID_ARG, ds_predictor_create(&p, ctx, &o));
  o.nfeatures = 2;
  o.target = 5;
  row("ds_predictor_create", "target index past the features", DS_ERR_INVALID_ARG,
      ds_predictor_create(&p, ctx, &o));
  o.target = 0;
  o.window = 4;
  o.hidden = 4;
  assert_int_equal(ds_predictor_create(&p, ctx, &o), DS_OK);
  float values[16], probs[16], win[8] = {0};
  row("ds_predictor_predict", "before a full window was observed", DS_ERR_UNAVAILABLE,
      ds_predictor_predict(p, values, probs));
  row("ds_predictor_forward", "NULL window", DS_ERR_INVALID_ARG,
      ds_predictor_forward(p, NULL, values, probs));
  row("ds_predictor_observe", "NULL sample", DS_ERR_INVALID_ARG, ds_predictor_observe(p, NULL));
  (void)win;
  size_t size = 0;
  char small[8];
  row("ds_predictor_save_buffer", "buffer too small", DS_ERR_FULL,
      ds_predictor_save_buffer(p, small, sizeof small, &size));
  ds_predictor *q = NULL;
  char junk[256];
  memset(junk, 0x5a, sizeof junk);
  row("ds_predictor_load_buffer", "random bytes", DS_ERR_FORMAT,
      ds_predictor_load_buffer(&q, ctx, junk, sizeof junk));
  row("ds_predictor_load", "missing file", DS_ERR_IO,
      ds_predictor_load(&q, ctx, tmp_path("no-such-model")));
  row("ds_predictor_save", "path in a missing directory", DS_ERR_IO,
      ds_predictor_save(p, tmp_path("no-such-dir/model")));
  ds_predictor_train_options to = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  float series[4 * 2] = {0};
  ds_predictor_series tr = {series, 4, NULL};
  row("ds_predictor_train", "series shorter than W + K", DS_ERR_INVALID_ARG,
      ds_predictor_train(p, &tr, 1, NULL, 0, &to, NULL));
  ds_predictor_destroy(p);
  ds_predictor_destroy(NULL);
  row_fact("ds_predictor_destroy", "NULL", "do nothing", 1);
}

static void topo_telemetry_rows(ds_context *ctx) {
  ds_context_options co = DS_CONTEXT_OPTIONS_INIT;
  co.flags = DS_CONTEXT_NO_ENV;
  ds_param_value p[] = {{DS_PARAM_STATS_FILE, 0, 0}, {DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF}};
  co.params = p;
  co.nparams = 2;
  ds_context *live = NULL; /* with the telemetry sampler */
  assert_int_equal(ds_context_create(&live, &co), DS_OK);
  ds_topology_info ti = DS_TOPOLOGY_INFO_INIT;
  row("ds_topology_get", "NULL ctx", DS_ERR_INVALID_ARG, ds_topology_get(&ti, NULL));
  ti.struct_size = 1;
  row("ds_topology_get", "struct_size 1", DS_ERR_ABI, ds_topology_get(&ti, ctx));
  ds_numa_node_info ni = DS_NUMA_NODE_INFO_INIT;
  row("ds_topology_numa_node", "index 4096", DS_ERR_NOT_FOUND, ds_topology_numa_node(&ni, ctx, 4096));
  ds_telemetry_sample s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  row("ds_telemetry_latest", "telemetry disabled", DS_ERR_UNAVAILABLE, ds_telemetry_latest(&s, ctx));
  row("ds_telemetry_latest", "NULL out", DS_ERR_INVALID_ARG, ds_telemetry_latest(NULL, live));
  s.struct_size = 6;
  row("ds_telemetry_latest", "struct_size 6", DS_ERR_ABI, ds_telemetry_latest(&s, live));
  s.struct_size = sizeof s;
  size_t n;
  row("ds_telemetry_window", "max 0", DS_ERR_INVALID_ARG, ds_telemetry_window(&s, &n, live, 0));
  row("ds_telemetry_cores", "NULL count", DS_ERR_INVALID_ARG,
      ds_telemetry_cores((float *)&s, NULL, live, 4));
  ds_context_destroy(live);
  row("ds_telemetry_sample_now", "telemetry disabled", DS_ERR_UNAVAILABLE,
      ds_telemetry_sample_now(ctx));
}

static void test_misuse_table(void **state) {
  (void)state;
  const char *path = getenv("DS_MISUSE_TABLE");
  if (path) {
    table = fopen(path, "w");
    assert_non_null(table);
    fprintf(table, "| Call | Misuse | Result |\n|---|---|---|\n");
  }
  ds_context *ctx = quiet_ctx();
  context_rows(ctx);
  stats_trace_rows(ctx);
  tensor_rows(ctx);
  sched_rows(ctx);
  cache_rows(ctx);
  batch_rows(ctx);
  predict_rows(ctx);
  topo_telemetry_rows(ctx);
  ds_context_destroy(ctx);
  if (table) fclose(table);
  printf("misuse: %d rows, %d mismatches\n", rows, mismatches);
  assert_int_equal(mismatches, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_misuse_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
