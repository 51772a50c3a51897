/* Tests of the dynamic batcher: options, each request's own numbers under concurrent
 * submitters (handles and callbacks, exactly once), dispatch on full / preferred / delay,
 * padding and length buckets, allowed batch sizes, bad input, timeouts, full queue (reject and
 * delay), cancellation, URGENT requests, shutdown (drain and fail), stats.
 * Timing bounds are loose: the machine may have 2 loaded cores and the build be sanitized. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static ds_context *new_ctx(int workers) {
  ds_param_value pv[3] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                          {DS_PARAM_STATS_FILE, 0, 0},
                          {DS_PARAM_SCHED_WORKERS, 0, workers}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = 3;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &o), DS_OK);
  return ctx;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A gate handlers can be held at: closed until opened. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open, waiting;
} gate;

static gate g_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0};

static void gate_set(int open) {
  pthread_mutex_lock(&g_gate.mu);
  g_gate.open = open;
  pthread_cond_broadcast(&g_gate.cv);
  pthread_mutex_unlock(&g_gate.mu);
}

static void gate_pass(void) {
  pthread_mutex_lock(&g_gate.mu);
  g_gate.waiting++;
  while (!g_gate.open) pthread_cond_wait(&g_gate.cv, &g_gate.mu);
  g_gate.waiting--;
  pthread_mutex_unlock(&g_gate.mu);
}

static void gate_wait_holders(int n) {
  for (int i = 0; i < 5000; i++) {
    pthread_mutex_lock(&g_gate.mu);
    int w = g_gate.waiting;
    pthread_mutex_unlock(&g_gate.mu);
    if (w >= n) return;
    sleep_ms(1);
  }
  fail_msg("handler never reached the gate");
}

/* What handlers saw, for the assertions. */
static struct {
  pthread_mutex_t mu;
  int batches, max_rows, max_n, urgent_batches, bad_padding;
  int64_t last_len[64];
  int rows_seen[64];
} g_seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, {0}, {0}};

static void seen_reset(void) {
  pthread_mutex_lock(&g_seen.mu);
  g_seen.batches = g_seen.max_rows = g_seen.max_n = g_seen.urgent_batches = 0;
  g_seen.bad_padding = 0;
  memset(g_seen.rows_seen, 0, sizeof g_seen.rows_seen);
  pthread_mutex_unlock(&g_seen.mu);
}

/* out = 2 * in + 1 element-wise (output shape = input shape); checks that padding is zero;
 * requests whose first element is negative hold the batch at the gate. */
static ds_status affine(void *user, const ds_batch *bt) {
  (void)user;
  const float *in = bt->input->data;
  float *out = bt->output->data;
  int64_t rows = bt->input->shape[0], row = ds_tensor_numel(bt->input) / rows;
  int nd = bt->input->ndim - 1;
  int hold = 0;
  for (int i = 0; i < bt->nrequests; i++)
    if (in[i * row] < 0) hold = 1;
  if (hold) gate_pass();
  int bad = 0;
  for (int i = 0; i < bt->nrequests && nd == 2; i++) {
    int64_t len = bt->shapes[i * nd], cols = bt->input->shape[2];
    for (int64_t k = len * cols; k < row; k++) bad |= in[i * row + k] != 0.0f;
  }
  for (int64_t k = 0; k < rows * row; k++) out[k] = 2.0f * in[k] + 1.0f;
  pthread_mutex_lock(&g_seen.mu);
  g_seen.batches++;
  g_seen.bad_padding += bad;
  if (rows > g_seen.max_rows) g_seen.max_rows = (int)rows;
  if (bt->nrequests > g_seen.max_n) g_seen.max_n = bt->nrequests;
  if (bt->prio == DS_PRIO_URGENT) g_seen.urgent_batches++;
  if (rows < 64) g_seen.rows_seen[rows]++;
  if (nd >= 1 && bt->nrequests > 0 && bt->nrequests < 64)
    g_seen.last_len[bt->nrequests] = bt->input->shape[1];
  pthread_mutex_unlock(&g_seen.mu);
  return DS_OK;
}

static ds_batcher_options vec_opts(int64_t cols, int max_batch, int64_t delay_us) {
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = affine;
  o.max_batch_size = max_batch;
  o.max_queue_delay_us = delay_us;
  o.ndim = 1;
  o.shape[0] = cols;
  o.output_ndim = 1;
  o.output_shape[0] = cols;
  return o;
}

static void vec(ds_tensor *t, float *data, int64_t cols) {
  int64_t shape[1] = {cols};
  assert_int_equal(ds_tensor_init(t, NULL, data, DS_DTYPE_F32, 1, shape, NULL,
                                  (ds_device){DS_DEVICE_CPU, 0}),
                   DS_OK);
}

static void seq(ds_tensor *t, float *data, int64_t len, int64_t cols) {
  int64_t shape[2] = {len, cols};
  assert_int_equal(ds_tensor_init(t, NULL, data, DS_DTYPE_F32, 2, shape, NULL,
                                  (ds_device){DS_DEVICE_CPU, 0}),
                   DS_OK);
}

static ds_batcher_stats get_stats(ds_batcher *b) {
  ds_batcher_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  assert_int_equal(ds_batcher_stats_get(b, &s), DS_OK);
  return s;
}

/* ---------------------------------------------------------------- options */

static void test_create_bad_options(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  ds_batcher *b = (ds_batcher *)1;
  ds_batcher_options o = vec_opts(4, 8, 0);
  assert_int_equal(ds_batcher_create(&b, NULL, &o), DS_ERR_INVALID_ARG);
  assert_null(b);
  assert_int_equal(ds_batcher_create(&b, ctx, NULL), DS_ERR_INVALID_ARG);
  o.struct_size = 8;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_ABI);
  o = vec_opts(4, 8, 0);
  o.handler = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o = vec_opts(4, -1, 0);
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o = vec_opts(4, 8, -2);
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o = vec_opts(0, 8, 0);
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  int32_t allowed[2] = {4, 6}, pref[1] = {9};
  o = vec_opts(4, 8, 0);
  o.allowed_batch_sizes = allowed;
  o.nallowed = 2; /* last is not max_batch_size */
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  assert_non_null(strstr(ds_context_last_error(ctx), "max_batch_size"));
  o = vec_opts(4, 8, 0);
  o.preferred_batch_sizes = pref;
  o.npreferred = 1; /* above max */
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o = vec_opts(4, 8, 0);
  o.output_ndim = 2;
  o.output_shape[1] = -1; /* no input dim 1 */
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_ERR_INVALID_ARG);
  o = vec_opts(4, 8, 0);
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  ds_batcher_destroy(b);
  ds_batcher_destroy(NULL);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- numbers, concurrency */

#define NTHREADS 6
#define PER_THREAD 400
#define COLS 5

typedef struct client {
  ds_batcher *b;
  int id;
  ds__atomic_int *done_count; /* per request: callbacks seen */
  float in[PER_THREAD][COLS], out[PER_THREAD][COLS];
  int bad;
} client;

static void on_done_count(void *user, ds_batch_request *req, ds_status st) {
  (void)req;
  if (st == DS_OK) ds__fetch_add((ds__atomic_int *)user, 1);
  else ds__fetch_add((ds__atomic_int *)user, 1000);
}

static void *client_main(void *arg) {
  client *c = arg;
  ds_batch_request *handles[PER_THREAD] = {0};
  for (int i = 0; i < PER_THREAD; i++) {
    for (int k = 0; k < COLS; k++) c->in[i][k] = (float)(c->id * 100000 + i * 10 + k);
    ds_tensor in, out;
    vec(&in, c->in[i], COLS);
    vec(&out, c->out[i], COLS);
    ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
    so.on_done = on_done_count;
    so.user = &c->done_count[c->id * PER_THREAD + i];
    /* even requests keep a handle, odd ones are fire-and-forget with the callback only */
    if (ds_batcher_submit(i % 2 ? NULL : &handles[i], c->b, &in, &out, &so) != DS_OK) c->bad++;
  }
  for (int i = 0; i < PER_THREAD; i += 2) {
    if (ds_batch_request_wait(handles[i], -1) != DS_OK) c->bad++;
    ds_batch_request_release(handles[i]);
  }
  return NULL;
}

static void run_clients(int64_t delay_us, int max_inflight) {
  ds_context *ctx = new_ctx(2);
  ds_batcher_options o = vec_opts(COLS, 16, delay_us);
  o.max_inflight = max_inflight;
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  static client cl[NTHREADS];
  static ds__atomic_int counts[NTHREADS * PER_THREAD];
  memset(cl, 0, sizeof cl);
  for (int i = 0; i < NTHREADS * PER_THREAD; i++) ds__store_relaxed(&counts[i], 0);
  pthread_t th[NTHREADS];
  for (int t = 0; t < NTHREADS; t++) {
    cl[t].b = b;
    cl[t].id = t;
    cl[t].done_count = counts;
    pthread_create(&th[t], NULL, client_main, &cl[t]);
  }
  for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
  ds_batcher_destroy(b); /* drains the fire-and-forget ones */
  for (int t = 0; t < NTHREADS; t++) {
    assert_int_equal(cl[t].bad, 0);
    for (int i = 0; i < PER_THREAD; i++)
      for (int k = 0; k < COLS; k++)
        if (cl[t].out[i][k] != 2.0f * cl[t].in[i][k] + 1.0f)
          fail_msg("client %d request %d col %d: %g", t, i, k, (double)cl[t].out[i][k]);
  }
  for (int i = 0; i < NTHREADS * PER_THREAD; i++) assert_int_equal(ds__load(&counts[i]), 1);
  ds_context_destroy(ctx);
}

static void test_concurrent_no_delay(void **state) {
  (void)state;
  run_clients(0, 0);
}

static void test_concurrent_with_delay(void **state) {
  (void)state;
  run_clients(300, 1);
}

/* ---------------------------------------------------------------- dispatch rules */

static ds_status submit_vec(ds_batch_request **r, ds_batcher *b, float *in, float *out,
                            int prio, int64_t timeout_us) {
  ds_tensor ti, to;
  vec(&ti, in, 1);
  vec(&to, out, 1);
  ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.prio = prio;
  so.timeout_us = timeout_us;
  return ds_batcher_submit(r, b, &ti, &to, &so);
}

static void test_full_preferred_and_delay(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  seen_reset();
  /* full: 4 of max 4 go out at once although the delay is 60 s */
  ds_batcher_options o = vec_opts(1, 4, 60000000);
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8] = {0};
  ds_batch_request *r[8];
  for (int i = 0; i < 4; i++) assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], 20000000), DS_OK);
    assert_true(out[i] == 2 * in[i] + 1);
    ds_batch_request_release(r[i]);
  }
  assert_int_equal(g_seen.max_n, 4);
  /* a lone request waits for the delay: not done after 50 ms */
  assert_int_equal(submit_vec(&r[4], b, &in[4], &out[4], 1, 0), DS_OK);
  assert_int_equal(ds_batch_request_wait(r[4], 50000), DS_ERR_BUSY);
  ds_batch_request_release(r[4]);
  ds_batcher_destroy(b); /* drains it without waiting 60 s */
  assert_true(out[4] == 11);

  /* preferred size 2: two requests go out at once */
  int32_t pref[1] = {2};
  o = vec_opts(1, 8, 60000000);
  o.preferred_batch_sizes = pref;
  o.npreferred = 1;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  for (int i = 5; i < 7; i++) assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  for (int i = 5; i < 7; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], 20000000), DS_OK);
    ds_batch_request_release(r[i]);
  }
  ds_batcher_destroy(b);

  /* a short delay: the lone request goes out after it, not before */
  o = vec_opts(1, 8, 30000);
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  uint64_t t0 = ds__now_ns();
  assert_int_equal(submit_vec(&r[7], b, &in[7], &out[7], 1, 0), DS_OK);
  assert_int_equal(ds_batch_request_wait(r[7], 20000000), DS_OK);
  assert_true(ds__now_ns() - t0 >= 29000000u);
  assert_true(out[7] == 17);
  ds_batch_request_release(r[7]);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* The timer skips a due head while the slot is busy; the batch that then takes it must wake
 * the timer for the requests it leaves behind (this hung before it did). */
static void test_timer_after_busy_slot(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  gate_set(0);
  ds_batcher_options o = vec_opts(1, 2, 20000);
  o.max_inflight = 1;
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[4] = {-1, 1, 2, 3}, out[4] = {0};
  ds_batch_request *r[4];
  assert_int_equal(submit_vec(&r[0], b, &in[0], &out[0], 1, 0), DS_OK);
  gate_wait_holders(1); /* sent alone after the delay, held */
  assert_int_equal(submit_vec(&r[1], b, &in[1], &out[1], 1, 0), DS_OK);
  assert_int_equal(submit_vec(&r[2], b, &in[2], &out[2], 1, 0), DS_OK);
  sleep_ms(40); /* both due; no slot */
  assert_int_equal(submit_vec(&r[3], b, &in[3], &out[3], 1, 0), DS_OK);
  gate_set(1); /* the finishing batch takes 1 and 2 (full) and leaves 3, not yet due */
  for (int i = 0; i < 4; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], 10000000), DS_OK);
    assert_true(out[i] == 2 * in[i] + 1);
    ds_batch_request_release(r[i]);
  }
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- padding and buckets */

static ds_batcher_options seq_opts(int max_batch, int64_t delay_us) {
  ds_batcher_options o = vec_opts(0, max_batch, delay_us);
  o.ndim = 2;
  o.shape[0] = -1;
  o.shape[1] = 3;
  o.max_shape[0] = 16;
  o.output_ndim = 2;
  o.output_shape[0] = -1;
  o.output_shape[1] = 3;
  return o;
}

static void submit_seqs(ds_batcher *b, const int64_t *lens, int n, float in[][48],
                        float out[][48], ds_batch_request **r) {
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < 48; k++) {
      in[i][k] = (float)(i * 100 + k + 1);
      out[i][k] = -7;
    }
    ds_tensor ti, to;
    seq(&ti, in[i], lens[i], 3);
    seq(&to, out[i], lens[i], 3);
    assert_int_equal(ds_batcher_submit(&r[i], b, &ti, &to, NULL), DS_OK);
  }
}

static void check_seqs(const int64_t *lens, int n, float in[][48], float out[][48],
                       ds_batch_request **r) {
  for (int i = 0; i < n; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], 20000000), DS_OK);
    ds_batch_request_release(r[i]);
    for (int k = 0; k < 48; k++) {
      float want = k < lens[i] * 3 ? 2 * in[i][k] + 1 : -7; /* nothing past its own length */
      if (out[i][k] != want) fail_msg("req %d elem %d: %g, want %g", i, k, (double)out[i][k],
                                      (double)want);
    }
  }
}

static void test_padding(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  seen_reset();
  ds_batcher_options o = seq_opts(3, 60000000);
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  int64_t lens[3] = {1, 5, 2};
  float in[3][48], out[3][48];
  ds_batch_request *r[3];
  submit_seqs(b, lens, 3, in, out, r);
  check_seqs(lens, 3, in, out, r);
  assert_int_equal(g_seen.batches, 1);
  assert_int_equal(g_seen.last_len[3], 5); /* padded to the longest */
  assert_int_equal(g_seen.bad_padding, 0);
  ds_batcher_stats s = get_stats(b);
  assert_true(fabs(s.padding_waste - (45.0 - 24.0) / 45.0) < 1e-9);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

static void test_length_buckets(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  seen_reset();
  ds_batcher_options o = seq_opts(2, 60000000);
  int64_t bounds[1] = {4};
  o.bucket_bounds = bounds;
  o.nbuckets = 1;
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  /* interleaved short and long: without buckets {2,9} and {3,8} would be batched */
  int64_t lens[4] = {2, 9, 3, 8};
  float in[4][48], out[4][48];
  ds_batch_request *r[4];
  submit_seqs(b, lens, 4, in, out, r);
  check_seqs(lens, 4, in, out, r);
  assert_int_equal(g_seen.batches, 2);
  ds_batcher_stats s = get_stats(b);
  /* {2,3} padded to 3 and {9,8} to 9: 6 + 18 elements of rows, 5 + 17 real (x3 cols) */
  assert_true(fabs(s.padding_waste - 2.0 / 24.0) < 1e-9);
  assert_int_equal(g_seen.bad_padding, 0);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

static void test_allowed_batch_sizes(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  seen_reset();
  int32_t allowed[2] = {4, 8};
  ds_batcher_options o = vec_opts(1, 8, 0);
  o.allowed_batch_sizes = allowed;
  o.nallowed = 2;
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[20], out[20];
  ds_batch_request *r[20];
  for (int i = 0; i < 20; i++) {
    in[i] = (float)i;
    assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  }
  for (int i = 0; i < 20; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], -1), DS_OK);
    assert_true(out[i] == 2 * in[i] + 1);
    ds_batch_request_release(r[i]);
  }
  for (int rows = 0; rows < 64; rows++)
    if (g_seen.rows_seen[rows]) assert_true(rows == 4 || rows == 8);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- bad input */

static void test_bad_input(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  ds_batcher_options o = seq_opts(4, 20000);
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[48] = {0}, out[48];
  for (int k = 0; k < 48; k++) in[k] = (float)k;
  ds_tensor ti, to;
  ds_batch_request *r = (ds_batch_request *)1;
  seq(&ti, in, 2, 4); /* 4 columns, 3 expected */
  seq(&to, out, 2, 3);
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_ERR_SHAPE);
  assert_null(r);
  assert_non_null(strstr(ds_context_last_error(ctx), "dim 1"));
  seq(&ti, in, 17, 3); /* longer than max_shape 16 */
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_ERR_SHAPE);
  seq(&ti, in, 2, 3);
  seq(&to, out, 3, 3); /* output length must follow the input's */
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_ERR_SHAPE);
  seq(&to, out, 2, 3);
  ti.dtype = DS_DTYPE_F16;
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_ERR_DTYPE);
  ti.dtype = DS_DTYPE_F32;
  ti.strides[0] = 6; /* not contiguous */
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_ERR_INVALID_ARG);
  ti.strides[0] = 3;
  ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.prio = DS_PRIO_LOW;
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, &so), DS_ERR_INVALID_ARG);
  so = (ds_batch_submit_options)DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.struct_size = 4;
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, &so), DS_ERR_ABI);
  assert_int_equal(ds_batcher_submit(&r, b, NULL, &to, NULL), DS_ERR_INVALID_ARG);
  /* a good request after all that runs normally, alone in its batch */
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_OK);
  assert_int_equal(ds_batch_request_wait(r, -1), DS_OK);
  for (int k = 0; k < 6; k++) assert_true(out[k] == 2 * in[k] + 1);
  ds_batch_request_release(r);
  ds_batcher_stats s = get_stats(b);
  assert_int_equal(s.invalid, 8);
  assert_int_equal(s.submitted, 1);
  assert_int_equal(s.batches, 1);
  assert_int_equal(ds_batcher_shutdown(b, 1), DS_OK);
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, NULL), DS_ERR_SHUTDOWN);
  assert_non_null(strstr(ds_context_last_error(ctx), "shutdown"));
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- timeouts, full queue, cancel */

/* A batcher with one batch slot whose first batch is held at the gate. */
static ds_batcher *held_batcher(ds_context *ctx, int max_queue, int policy, float *hold_in,
                                float *hold_out, ds_batch_request **held) {
  gate_set(0);
  ds_batcher_options o = vec_opts(1, 1, 0);
  o.max_inflight = 1;
  o.max_queue_size = max_queue;
  o.full_policy = policy;
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  *hold_in = -1;
  assert_int_equal(submit_vec(held, b, hold_in, hold_out, 1, 0), DS_OK);
  gate_wait_holders(1);
  return b;
}

static void test_timeout(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  float hin, hout, in = 3, out = 0;
  ds_batch_request *held, *r;
  ds_batcher *b = held_batcher(ctx, 0, DS_BATCH_REJECT, &hin, &hout, &held);
  assert_int_equal(submit_vec(&r, b, &in, &out, 1, 20000), DS_OK);
  assert_int_equal(ds_batch_request_wait(r, 20000000), DS_ERR_TIMEOUT);
  assert_true(out == 0); /* never ran */
  assert_int_equal(ds_batch_request_cancel(r), DS_ERR_STATE);
  ds_batch_request_release(r);
  gate_set(1);
  assert_int_equal(ds_batch_request_wait(held, -1), DS_OK);
  assert_true(hout == -1);
  ds_batch_request_release(held);
  ds_batcher_stats s = get_stats(b);
  assert_int_equal(s.timed_out, 1);
  assert_int_equal(s.completed, 1);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

static void test_queue_full_reject(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  float hin, hout, in[3] = {1, 2, 3}, out[3] = {0};
  ds_batch_request *held, *r[3];
  ds_batcher *b = held_batcher(ctx, 2, DS_BATCH_REJECT, &hin, &hout, &held);
  assert_int_equal(submit_vec(&r[0], b, &in[0], &out[0], 1, 0), DS_OK);
  assert_int_equal(submit_vec(&r[1], b, &in[1], &out[1], 1, 0), DS_OK);
  assert_int_equal(submit_vec(&r[2], b, &in[2], &out[2], 1, 0), DS_ERR_NO_SPACE);
  assert_null(r[2]);
  gate_set(1);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], -1), DS_OK);
    assert_true(out[i] == 2 * in[i] + 1);
    ds_batch_request_release(r[i]);
  }
  ds_batch_request_release(held);
  ds_batcher_stats s = get_stats(b);
  assert_int_equal(s.rejected, 1);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

typedef struct delayed {
  ds_batcher *b;
  float in, out;
  ds_status st;
  ds__atomic_int returned;
} delayed;

static void *delayed_submit(void *arg) {
  delayed *d = arg;
  ds_batch_request *r = NULL;
  d->st = submit_vec(&r, d->b, &d->in, &d->out, 1, 0);
  ds__store(&d->returned, 1);
  if (r) {
    d->st = ds_batch_request_wait(r, -1);
    ds_batch_request_release(r);
  }
  return NULL;
}

static void test_queue_full_delay(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  float hin, hout, in = 5, out = 0;
  ds_batch_request *held, *r;
  ds_batcher *b = held_batcher(ctx, 1, DS_BATCH_DELAY, &hin, &hout, &held);
  assert_int_equal(submit_vec(&r, b, &in, &out, 1, 0), DS_OK);
  /* full: a submit with a timeout gives up with DS_ERR_TIMEOUT */
  float in2 = 6, out2 = 0;
  ds_batch_request *r2;
  assert_int_equal(submit_vec(&r2, b, &in2, &out2, 1, 20000), DS_ERR_TIMEOUT);
  /* one without blocks until the gate opens */
  delayed d = {b, 7, 0, DS_ERR_STATE, 0};
  pthread_t th;
  pthread_create(&th, NULL, delayed_submit, &d);
  sleep_ms(50);
  assert_int_equal(ds__load(&d.returned), 0);
  gate_set(1);
  pthread_join(th, NULL);
  assert_int_equal(d.st, DS_OK);
  assert_true(d.out == 15);
  assert_int_equal(ds_batch_request_wait(r, -1), DS_OK);
  assert_true(out == 11);
  ds_batch_request_release(r);
  ds_batch_request_release(held);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

static void test_cancel(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  float hin, hout, in = 5, out = 0;
  ds_batch_request *held, *r;
  ds_batcher *b = held_batcher(ctx, 0, DS_BATCH_REJECT, &hin, &hout, &held);
  ds__atomic_int calls = 0;
  ds_tensor ti, to;
  vec(&ti, &in, 1);
  vec(&to, &out, 1);
  ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
  so.on_done = on_done_count;
  so.user = &calls;
  assert_int_equal(ds_batcher_submit(&r, b, &ti, &to, &so), DS_OK);
  assert_int_equal(ds_batch_request_cancel(held), DS_ERR_BUSY); /* its batch runs */
  assert_int_equal(ds_batch_request_cancel(r), DS_OK);
  assert_int_equal(ds_batch_request_wait(r, 0), DS_ERR_CANCELLED);
  assert_int_equal(ds_batch_request_cancel(r), DS_ERR_STATE);
  assert_int_equal(ds__load(&calls), 1000); /* once, with a failure status */
  ds_batch_request_release(r);
  gate_set(1);
  assert_int_equal(ds_batch_request_wait(held, -1), DS_OK);
  ds_batch_request_release(held);
  assert_true(out == 0);
  assert_int_equal(ds_batch_request_cancel(NULL), DS_ERR_INVALID_ARG);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- URGENT */

static void test_urgent_jumps_queue(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(3);
  seen_reset();
  float hin, hout, in[4] = {1, 2, 3, 4}, out[4] = {0};
  ds_batch_request *held, *r[4];
  ds_batcher *b = held_batcher(ctx, 0, DS_BATCH_REJECT, &hin, &hout, &held);
  for (int i = 0; i < 3; i++) assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  /* the one slot is held: NORMAL ones wait, the URGENT one runs on the extra slot */
  assert_int_equal(submit_vec(&r[3], b, &in[3], &out[3], DS_PRIO_URGENT, 0), DS_OK);
  assert_int_equal(ds_batch_request_wait(r[3], 20000000), DS_OK);
  assert_true(out[3] == 9);
  assert_int_equal(g_seen.urgent_batches, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(ds_batch_request_wait(r[i], 0), DS_ERR_BUSY);
  gate_set(1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], -1), DS_OK);
    ds_batch_request_release(r[i]);
  }
  ds_batch_request_release(r[3]);
  ds_batch_request_release(held);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- shutdown */

typedef struct shut {
  ds_batcher *b;
  int drain;
} shut;

static void *shutdown_main(void *arg) {
  shut *s = arg;
  ds_batcher_shutdown(s->b, s->drain);
  return NULL;
}

static void test_shutdown_fails_queued_once(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  float hin, hout, in[6], out[6] = {0};
  ds_batch_request *held;
  ds_batcher *b = held_batcher(ctx, 0, DS_BATCH_REJECT, &hin, &hout, &held);
  ds__atomic_int calls[6];
  for (int i = 0; i < 6; i++) {
    in[i] = (float)i;
    ds__store_relaxed(&calls[i], 0);
    ds_tensor ti, to;
    vec(&ti, &in[i], 1);
    vec(&to, &out[i], 1);
    ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
    so.on_done = on_done_count;
    so.user = &calls[i];
    assert_int_equal(ds_batcher_submit(NULL, b, &ti, &to, &so), DS_OK);
  }
  shut s = {b, 0};
  pthread_t th;
  pthread_create(&th, NULL, shutdown_main, &s);
  for (int i = 0; i < 5000; i++) { /* the queued ones fail while the held batch still runs */
    int all = 1;
    for (int k = 0; k < 6; k++) all &= ds__load(&calls[k]) == 1000;
    if (all) break;
    sleep_ms(1);
  }
  assert_int_equal(ds_batch_request_wait(held, 0), DS_ERR_BUSY);
  gate_set(1);
  pthread_join(th, NULL);
  assert_int_equal(ds_batch_request_wait(held, 0), DS_OK); /* shutdown waited for it */
  for (int i = 0; i < 6; i++) {
    assert_int_equal(ds__load(&calls[i]), 1000);
    assert_true(out[i] == 0);
  }
  ds_batch_request_release(held);
  ds_batcher_stats st = get_stats(b);
  assert_int_equal(st.cancelled, 6);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

static void test_destroy_drains(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  ds_batcher_options o = vec_opts(1, 4, 60000000);
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[10], out[10] = {0};
  ds_batch_request *r[10];
  for (int i = 0; i < 10; i++) {
    in[i] = (float)i;
    assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  }
  uint64_t t0 = ds__now_ns();
  ds_batcher_destroy(b); /* two batches of 4 ran at once; the last 2 run now, not in 60 s */
  assert_true(ds__now_ns() - t0 < 30000000000u);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], 0), DS_OK); /* handles outlive the batcher */
    assert_true(out[i] == 2 * in[i] + 1);
    ds_batch_request_release(r[i]);
  }
  ds_context_destroy(ctx);
}

/* Everything at once: submitters with timeouts and URGENT requests, a canceller, and a
 * shutdown without drain in the middle. Every accepted request completes exactly once, with
 * its own numbers when it succeeded. */
#define MIX_THREADS 4
#define MIX_PER 300

typedef struct mix_req {
  float in[3], out[3];
  ds__atomic_int calls;
  ds_status st;
  ds_batch_request *h;
  int accepted;
} mix_req;

static void mix_done(void *user, ds_batch_request *req, ds_status st) {
  (void)req;
  mix_req *m = user;
  m->st = st;
  ds__fetch_add(&m->calls, 1);
}

typedef struct mix_thread {
  ds_batcher *b;
  mix_req *reqs;
  int id;
} mix_thread;

static void *mix_main(void *arg) {
  mix_thread *t = arg;
  for (int i = 0; i < MIX_PER; i++) {
    mix_req *m = &t->reqs[i];
    for (int k = 0; k < 3; k++) m->in[k] = (float)(t->id * 10000 + i * 3 + k);
    ds_tensor ti, to;
    vec(&ti, m->in, 3);
    vec(&to, m->out, 3);
    ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
    so.prio = i % 7 == 0 ? DS_PRIO_URGENT : DS_PRIO_NORMAL;
    so.timeout_us = i % 3 == 0 ? 200 : 0;
    so.on_done = mix_done;
    so.user = m;
    m->accepted = ds_batcher_submit(&m->h, t->b, &ti, &to, &so) == DS_OK;
    if (m->accepted && i % 5 == 0) ds_batch_request_cancel(m->h);
  }
  return NULL;
}

static void test_mixed_exactly_once(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  ds_batcher_options o = vec_opts(3, 8, 300);
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  static mix_req reqs[MIX_THREADS][MIX_PER];
  memset(reqs, 0, sizeof reqs);
  mix_thread mt[MIX_THREADS];
  pthread_t th[MIX_THREADS];
  for (int t = 0; t < MIX_THREADS; t++) {
    mt[t] = (mix_thread){b, reqs[t], t};
    pthread_create(&th[t], NULL, mix_main, &mt[t]);
  }
  sleep_ms(2);
  assert_int_equal(ds_batcher_shutdown(b, 0), DS_OK); /* while they still submit */
  for (int t = 0; t < MIX_THREADS; t++) pthread_join(th[t], NULL);
  int ok = 0, accepted = 0;
  for (int t = 0; t < MIX_THREADS; t++)
    for (int i = 0; i < MIX_PER; i++) {
      mix_req *m = &reqs[t][i];
      if (!m->accepted) {
        assert_int_equal(ds__load(&m->calls), 0);
        continue;
      }
      accepted++;
      assert_int_equal(ds_batch_request_wait(m->h, -1), m->st);
      assert_int_equal(ds__load(&m->calls), 1);
      assert_true(m->st == DS_OK || m->st == DS_ERR_TIMEOUT || m->st == DS_ERR_CANCELLED ||
                  m->st == DS_ERR_SHUTDOWN);
      if (m->st == DS_OK) {
        ok++;
        for (int k = 0; k < 3; k++) assert_true(m->out[k] == 2 * m->in[k] + 1);
      } else {
        for (int k = 0; k < 3; k++) assert_true(m->out[k] == 0);
      }
      ds_batch_request_release(m->h);
    }
  ds_batcher_stats s = get_stats(b);
  assert_int_equal(s.submitted, (uint64_t)accepted);
  assert_int_equal(s.completed, (uint64_t)ok);
  assert_int_equal(s.completed + s.timed_out + s.cancelled + s.failed, (uint64_t)accepted);
  assert_int_equal(s.invalid + s.submitted, MIX_THREADS * MIX_PER);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- stats */

static ds_status failing(void *user, const ds_batch *bt) {
  (void)user;
  (void)bt;
  return DS_ERR_IO;
}

static void test_stats_and_handler_error(void **state) {
  (void)state;
  ds_context *ctx = new_ctx(2);
  ds_batcher_options o = vec_opts(1, 4, 1000);
  o.name = "t";
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[12], out[12];
  ds_batch_request *r[12];
  for (int i = 0; i < 12; i++) {
    in[i] = (float)i;
    assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  }
  for (int i = 0; i < 12; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], -1), DS_OK);
    ds_batch_request_release(r[i]);
  }
  ds_batcher_stats s = get_stats(b);
  assert_int_equal(s.completed, 12);
  assert_true(s.batches >= 3 && s.batches <= 12);
  assert_true(fabs(s.mean_batch_size - 12.0 / (double)s.batches) < 1e-9);
  assert_true(s.fill_ratio > 0 && s.fill_ratio <= 1);
  assert_false(isnan(s.latency_p50_us));
  assert_true(s.latency_p99_us >= s.latency_p50_us);
  assert_true(s.queue_delay_p99_us >= s.queue_delay_p50_us);
  uint64_t hist[5];
  assert_int_equal(ds_batcher_histogram(b, hist, 5), DS_OK);
  uint64_t nb = 0, nr = 0;
  for (int i = 0; i < 5; i++) {
    nb += hist[i];
    nr += hist[i] * (uint64_t)i;
  }
  assert_int_equal(nb, s.batches);
  assert_int_equal(nr, 12);
  /* the context's stats carry the same figures */
  ds_stats *snap = NULL;
  double v = 0;
  assert_int_equal(ds_stats_snapshot(&snap, ctx), DS_OK);
  assert_int_equal(ds_stats_find(&v, snap, "batch.t.completed"), DS_OK);
  assert_true(v == 12);
  ds_stats_free(snap);
  ds_batcher_destroy(b);

  o = vec_opts(1, 4, 0);
  o.handler = failing;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  assert_int_equal(submit_vec(&r[0], b, &in[0], &out[0], 1, 0), DS_OK);
  assert_int_equal(ds_batch_request_wait(r[0], -1), DS_ERR_IO);
  ds_batch_request_release(r[0]);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

/* ---------------------------------------------------------------- tunables */

/* max_batch_size 0, max_queue_delay_us -1 and max_inflight 0 take the context's batch_*
 * tunables; explicit values win over them. */
static void test_tunables(void **state) {
  (void)state;
  ds_param_value pv[5] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                          {DS_PARAM_STATS_FILE, 0, 0},
                          {DS_PARAM_BATCH_MAX_SIZE, 0, 3},
                          {DS_PARAM_BATCH_MAX_DELAY_US, 0, 150000},
                          {DS_PARAM_BATCH_MAX_INFLIGHT, 0, 1}};
  ds_context_options co = DS_CONTEXT_OPTIONS_INIT;
  co.flags = DS_CONTEXT_NO_ENV;
  co.params = pv;
  co.nparams = 5;
  ds_context *ctx = NULL;
  assert_int_equal(ds_context_create(&ctx, &co), DS_OK);
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  assert_int_equal(o.max_batch_size, 0);
  assert_int_equal(o.max_queue_delay_us, -1);
  o = vec_opts(1, 0, -1);
  ds_batcher *b = NULL;
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  float in[6] = {0}, out[6];
  ds_batch_request *r[6];
  for (int i = 0; i < 6; i++)
    assert_int_equal(submit_vec(&r[i], b, &in[i], &out[i], 1, 0), DS_OK);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(ds_batch_request_wait(r[i], -1), DS_OK);
    ds_batch_request_release(r[i]);
  }
  uint64_t hist[5]; /* no batch above the tunable's max of 3 (sizes >= 4 land in hist[4]) */
  assert_int_equal(ds_batcher_histogram(b, hist, 5), DS_OK);
  assert_int_equal(hist[4], 0);
  assert_int_equal(hist[1] + 2 * hist[2] + 3 * hist[3], 6);
  ds_batcher_stats s = get_stats(b);
  assert_true(fabs(s.fill_ratio - s.mean_batch_size / 3) < 1e-9);
  /* one request alone waits the tunable's 150 ms for company */
  double t0 = (double)ds__now_ns() / 1e9;
  assert_int_equal(submit_vec(&r[0], b, &in[0], &out[0], 1, 0), DS_OK);
  assert_int_equal(ds_batch_request_wait(r[0], -1), DS_OK);
  ds_batch_request_release(r[0]);
  assert_true((double)ds__now_ns() / 1e9 - t0 >= 0.14);
  ds_batcher_destroy(b);
  o = vec_opts(1, 8, 0); /* explicit: the tunables do not apply */
  assert_int_equal(ds_batcher_create(&b, ctx, &o), DS_OK);
  assert_int_equal(submit_vec(&r[0], b, &in[0], &out[0], 1, 0), DS_OK);
  assert_int_equal(ds_batch_request_wait(r[0], -1), DS_OK);
  ds_batch_request_release(r[0]);
  s = get_stats(b);
  assert_true(fabs(s.fill_ratio - 1.0 / 8) < 1e-9);
  ds_batcher_destroy(b);
  ds_context_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_bad_options),
      cmocka_unit_test(test_tunables),
      cmocka_unit_test(test_concurrent_no_delay),
      cmocka_unit_test(test_concurrent_with_delay),
      cmocka_unit_test(test_full_preferred_and_delay),
      cmocka_unit_test(test_timer_after_busy_slot),
      cmocka_unit_test(test_padding),
      cmocka_unit_test(test_length_buckets),
      cmocka_unit_test(test_allowed_batch_sizes),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_queue_full_reject),
      cmocka_unit_test(test_queue_full_delay),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_urgent_jumps_queue),
      cmocka_unit_test(test_shutdown_fails_queued_once),
      cmocka_unit_test(test_destroy_drains),
      cmocka_unit_test(test_mixed_exactly_once),
      cmocka_unit_test(test_stats_and_handler_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
