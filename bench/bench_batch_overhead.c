/* The dynamic batcher's own cost per request: requests of one float through a batcher whose
 * handler does nothing, from 1 and 4 submitting threads, with completion callbacks or with
 * handles waited on. Anchor: calling the handler directly once per request (what a caller
 * without a batcher does). Goal: at most 2 µs per request. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_common.h"
#include "deepseek.h"

#define NREQ 100000
#define REPS 5

static ds_status empty_handler(void *user, const ds_batch *b) {
  (void)user;
  (void)b;
  return DS_OK;
}

typedef struct shared {
  ds_batcher *b;
  float in[1], out[1];
  volatile long done;
  pthread_mutex_t mu;
} shared;

static void on_done(void *user, ds_batch_request *r, ds_status st) {
  (void)r;
  if (st == DS_OK) __atomic_fetch_add(&((shared *)user)->done, 1, __ATOMIC_RELAXED);
}

typedef struct submitter {
  shared *s;
  int n, handles;
} submitter;

static void *submit_main(void *arg) {
  submitter *w = arg;
  ds_tensor in, out;
  int64_t shape[1] = {1};
  ds_tensor_init(&in, NULL, w->s->in, DS_DTYPE_F32, 1, shape, NULL, (ds_device){0, 0});
  ds_tensor_init(&out, NULL, w->s->out, DS_DTYPE_F32, 1, shape, NULL, (ds_device){0, 0});
  ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
  ds_batch_request **h = w->handles ? malloc((size_t)w->n * sizeof *h) : NULL;
  if (!w->handles) {
    so.on_done = on_done;
    so.user = w->s;
  }
  for (int i = 0; i < w->n; i++)
    if (ds_batcher_submit(h ? &h[i] : NULL, w->s->b, &in, &out, &so) != DS_OK) abort();
  for (int i = 0; h && i < w->n; i++) {
    if (ds_batch_request_wait(h[i], -1) != DS_OK) abort();
    ds_batch_request_release(h[i]);
    __atomic_fetch_add(&w->s->done, 1, __ATOMIC_RELAXED);
  }
  free(h);
  return NULL;
}

/* µs per request for NREQ requests from nthreads submitters. */
static double ours(ds_context *ctx, int nthreads, int handles) {
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = empty_handler;
  o.max_batch_size = 64;
  o.ndim = 1;
  o.shape[0] = 1;
  o.output_ndim = 1;
  o.output_shape[0] = 1;
  shared s = {0};
  if (ds_batcher_create(&s.b, ctx, &o) != DS_OK) abort();
  submitter w[8];
  pthread_t th[8];
  double t0 = bench_now_s();
  for (int t = 0; t < nthreads; t++) {
    w[t] = (submitter){&s, NREQ / nthreads, handles};
    pthread_create(&th[t], NULL, submit_main, &w[t]);
  }
  for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
  while (__atomic_load_n(&s.done, __ATOMIC_RELAXED) < NREQ) { /* without taking a core */
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  double t1 = bench_now_s();
  ds_batcher_destroy(s.b);
  return (t1 - t0) * 1e6 / NREQ;
}

/* µs per direct handler call on a one-row batch. */
static double anchor(void) {
  float in[1] = {0}, out[1];
  int64_t shape[2] = {1, 1};
  ds_tensor ti, to;
  ds_tensor_init(&ti, NULL, in, DS_DTYPE_F32, 2, shape, NULL, (ds_device){0, 0});
  ds_tensor_init(&to, NULL, out, DS_DTYPE_F32, 2, shape, NULL, (ds_device){0, 0});
  int64_t shapes[1] = {1};
  ds_batch b = {&ti, &to, 1, DS_PRIO_NORMAL, shapes};
  ds_batch_handler_fn volatile fn = empty_handler;
  double t0 = bench_now_s();
  for (int i = 0; i < NREQ; i++) fn(NULL, &b);
  return (bench_now_s() - t0) * 1e6 / NREQ;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;
  int32_t workers = 0;
  ds_sched_workers(ctx, &workers);
  struct {
    const char *name;
    int threads, handles;
  } cases[] = {{"1_submitter_callback", 1, 0},
               {"4_submitters_callback", 4, 0},
               {"1_submitter_handles", 1, 1}};
  if (!json) printf("workers: %d, %d requests per repetition, median of %d\n", (int)workers,
                    NREQ, REPS);
  double a[REPS];
  for (int r = 0; r < REPS; r++) a[r] = anchor();
  double am = bench_median(a, REPS);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double v[REPS];
    for (int r = 0; r < REPS; r++) v[r] = ours(ctx, cases[c].threads, cases[c].handles);
    bench_row row = {"bench_batch_overhead", cases[c].name, "us_per_req", bench_median(v, REPS),
                     "direct handler call", am, 2.0 / am, "lower"};
    bench_print(&row, json, &header);
  }
  if (!json) printf("goal: ours <= 2 us per request (the goal column is 2 us / anchor)\n");
  ds_context_destroy(ctx);
  return 0;
}
