/* Serving a 2-layer MLP (256 -> 1024 ReLU -> 16, fp32, both layers through ds_gemm) under an
 * open-loop Poisson load from 16 client threads at several rates, three ways:
 *   (a) no batching: one handler call per request (the batcher with max_batch_size 1),
 *   (b) fixed batch size with a fixed timeout (TF Serving style): batches of 32 rows (padded
 *       up with allowed_batch_sizes {32}), sent when full or 2 ms after the oldest request,
 *   (c) ours: dynamic batching up to 32 without delay (a batch forms from what waits while
 *       the batch slots are busy).
 * Each run offers load for `duration` seconds; throughput is the requests completed within
 * that window per second; latency is completion minus scheduled arrival (p50/p99 of the
 * requests completed by 0.5 s after the window; the rest are failed by a shutdown and not
 * counted). Rates are multiples of (a)'s estimated capacity (workers / single-row cost); the
 * summary rows compare the modes at the highest rate ours sustained (served >= 95 % of it).
 * Goal: where (a) is saturated, ours serves >= 3x (a)'s throughput with a lower p99. The 16
 * clients share the machine with the server: far beyond the server's capacity (3-4x here on
 * 2 cores) they fall behind, submit without sleeping and starve the workers, so every mode
 * collapses; the rates stop at 3x. Options: --json, --quick. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "deepseek.h"

#define IN 256
#define HID 1024
#define OUT 16
#define CLIENTS 16
#define MAXB 32

static ds_context *ctx;
static float *w1, *w2;
static double duration = 1.5;

static ds_tensor t2(void *d, int64_t r, int64_t c) {
  ds_tensor t;
  int64_t s[2] = {r, c};
  ds_tensor_init(&t, ctx, d, DS_DTYPE_F32, 2, s, NULL, (ds_device){DS_DEVICE_CPU, 0});
  return t;
}

/* The model: out = relu(x W1) W2 for the batch's rows. */
static ds_status mlp(void *user, const ds_batch *b) {
  (void)user;
  int64_t m = b->input->shape[0];
  float *h = malloc((size_t)m * HID * sizeof *h);
  if (!h) return DS_ERR_NO_MEMORY;
  ds_tensor x = t2(b->input->data, m, IN), tw1 = t2(w1, IN, HID), th = t2(h, m, HID);
  ds_tensor tw2 = t2(w2, HID, OUT), y = t2(b->output->data, m, OUT);
  ds_status st = ds_gemm(ctx, &th, &x, &tw1, 0, 1.0f, 0.0f);
  for (int64_t i = 0; st == DS_OK && i < m * HID; i++) h[i] = h[i] > 0 ? h[i] : 0;
  if (st == DS_OK) st = ds_gemm(ctx, &y, &th, &tw2, 0, 1.0f, 0.0f);
  free(h);
  return st;
}

typedef struct record {
  double t_arrival, latency; /* latency < 0: not completed OK */
} record;

typedef struct client {
  ds_batcher *b;
  double rate, t0;
  unsigned seed;
  int n, cap;
  float in[IN];
  float *out; /* cap x OUT */
  record *rec;
  double end; /* completions after this do not count */
} client;

static void on_done(void *user, ds_batch_request *r, ds_status st) {
  (void)r;
  record *rec = user;
  double now = bench_now_s();
  rec->latency = st == DS_OK ? now - rec->t_arrival : -1;
}

static void sleep_until(double t) {
  struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void *client_main(void *arg) {
  client *c = arg;
  double t = c->t0;
  int64_t s1[1] = {IN}, s2[1] = {OUT};
  ds_tensor in;
  ds_tensor_init(&in, NULL, c->in, DS_DTYPE_F32, 1, s1, NULL, (ds_device){0, 0});
  while (c->n < c->cap) {
    double u = (rand_r(&c->seed) + 1.0) / ((double)RAND_MAX + 2.0);
    t += -log(u) / c->rate;
    if (t >= c->t0 + duration) break;
    sleep_until(t);
    record *rec = &c->rec[c->n];
    rec->t_arrival = t;
    rec->latency = -1;
    ds_tensor out;
    ds_tensor_init(&out, NULL, c->out + (size_t)c->n * OUT, DS_DTYPE_F32, 1, s2, NULL,
                   (ds_device){0, 0});
    ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
    so.on_done = on_done;
    so.user = rec;
    c->n++;
    if (ds_batcher_submit(NULL, c->b, &in, &out, &so) != DS_OK) rec->latency = -1;
  }
  return NULL;
}

typedef struct result {
  double throughput, p50_ms, p99_ms, mean_batch;
} result;

static ds_batcher *make(int mode) {
  static const int32_t allowed[1] = {MAXB};
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = mlp;
  o.ndim = 1;
  o.shape[0] = IN;
  o.output_ndim = 1;
  o.output_shape[0] = OUT;
  o.max_batch_size = mode == 0 ? 1 : MAXB;
  if (mode == 1) {
    o.max_queue_delay_us = 2000;
    o.allowed_batch_sizes = allowed;
    o.nallowed = 1;
  }
  ds_batcher *b = NULL;
  if (ds_batcher_create(&b, ctx, &o) != DS_OK) {
    fprintf(stderr, "bench_batch_serving: %s\n", ds_context_last_error(ctx));
    exit(1);
  }
  return b;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static result run(int mode, double rate) {
  static client cl[CLIENTS];
  ds_batcher *b = make(mode);
  double t0 = bench_now_s() + 0.01;
  pthread_t th[CLIENTS];
  int cap = (int)(rate / CLIENTS * duration * 1.5) + 64;
  for (int i = 0; i < CLIENTS; i++) {
    cl[i] = (client){b, rate / CLIENTS, t0, 1234u + (unsigned)i * 77u, 0, cap, {0}, NULL, NULL,
                     0};
    for (int k = 0; k < IN; k++) cl[i].in[k] = (float)((k * 7 + i) % 13) / 13.0f - 0.5f;
    cl[i].out = malloc((size_t)cap * OUT * sizeof(float));
    cl[i].rec = malloc((size_t)cap * sizeof(record));
    pthread_create(&th[i], NULL, client_main, &cl[i]);
  }
  for (int i = 0; i < CLIENTS; i++) pthread_join(th[i], NULL);
  double end = t0 + duration + 0.5;
  sleep_until(end);
  ds_batcher_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  ds_batcher_stats_get(b, &s);
  ds_batcher_shutdown(b, 0); /* what is still queued fails: not counted */
  ds_batcher_destroy(b);
  size_t total = 0, ok = 0, in_window = 0;
  for (int i = 0; i < CLIENTS; i++) total += (size_t)cl[i].n;
  double *lat = malloc((total + 1) * sizeof *lat);
  for (int i = 0; i < CLIENTS; i++) {
    for (int k = 0; k < cl[i].n; k++) {
      record *r = &cl[i].rec[k];
      if (r->latency < 0 || r->t_arrival + r->latency > end) continue;
      lat[ok++] = r->latency;
      in_window += r->t_arrival + r->latency <= t0 + duration;
    }
    free(cl[i].out);
    free(cl[i].rec);
  }
  qsort(lat, ok, sizeof *lat, cmp);
  result res = {(double)in_window / duration, ok ? lat[ok / 2] * 1e3 : NAN,
                ok ? lat[(size_t)(0.99 * (double)(ok - 1))] * 1e3 : NAN, s.mean_batch_size};
  free(lat);
  return res;
}

/* Seconds per single-row MLP call, to size the rates. */
static double single_cost(void) {
  float in[IN] = {0}, out[OUT];
  int64_t shape[2] = {1, IN}, oshape[2] = {1, OUT};
  ds_tensor ti, to;
  ds_tensor_init(&ti, NULL, in, DS_DTYPE_F32, 2, shape, NULL, (ds_device){0, 0});
  ds_tensor_init(&to, NULL, out, DS_DTYPE_F32, 2, oshape, NULL, (ds_device){0, 0});
  int64_t shapes[1] = {IN};
  ds_batch b = {&ti, &to, 1, DS_PRIO_NORMAL, shapes};
  for (int i = 0; i < 20; i++) mlp(NULL, &b);
  double best = 1e9; /* the least disturbed of 5 (the machine may be shared) */
  for (int r = 0; r < 5; r++) {
    double t0 = bench_now_s();
    for (int i = 0; i < 100; i++) mlp(NULL, &b);
    double t = (bench_now_s() - t0) / 100;
    best = t < best ? t : best;
  }
  return best;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--quick")) duration = 0.5;
  /* One BLAS thread per handler call: the batcher's workers are the parallelism. OpenBLAS
   * (OpenMP build) reads this at load time and per thread, so set it and start again. */
  if (!getenv("OMP_NUM_THREADS")) {
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
  }
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;
  int32_t workers = 0;
  ds_sched_workers(ctx, &workers);
  w1 = malloc(IN * HID * sizeof *w1);
  w2 = malloc(HID * OUT * sizeof *w2);
  for (int i = 0; i < IN * HID; i++) w1[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
  for (int i = 0; i < HID * OUT; i++) w2[i] = (float)((i * 53) % 97) / 97.0f - 0.5f;
  double cap_a = workers / single_cost();
  if (!json)
    printf("workers: %d, single-row MLP %.1f us, (a) capacity ~%.0f req/s; %.1f s per run\n",
           (int)workers, 1e6 / cap_a * workers, cap_a, duration);
  const double mult[] = {0.5, 1, 2, 3};
  const char *names[3] = {"a_no_batching", "b_fixed32_2ms", "c_ours_dynamic"};
  if (!json) printf("%-16s %10s %12s %9s %9s %10s\n", "mode", "offered/s", "served/s", "p50_ms",
                    "p99_ms", "mean_batch");
  result res[4][3], *top = NULL;
  double top_rate = 0;
  for (size_t r = 0; r < sizeof mult / sizeof mult[0]; r++) {
    for (int m = 0; m < 3; m++) {
      res[r][m] = run(m, mult[r] * cap_a);
      if (!json)
        printf("%-16s %10.0f %12.0f %9.2f %9.2f %10.1f\n", names[m], mult[r] * cap_a,
               res[r][m].throughput, res[r][m].p50_ms, res[r][m].p99_ms, res[r][m].mean_batch);
    }
    if (res[r][2].throughput >= 0.95 * mult[r] * cap_a) { /* ours kept up with the load */
      top = res[r];
      top_rate = mult[r] * cap_a;
    }
  }
  /* rows: at the highest rate ours sustained, ours against (a) and (b) */
  for (int m = 0; top && m < 2; m++) {
    char c1[64];
    snprintf(c1, sizeof c1, "%.0f_per_s_vs_%c", top_rate, names[m][0]);
    bench_row thr = {"bench_batch_serving", c1, "req_per_s", top[2].throughput, names[m],
                     top[m].throughput, m == 0 ? 3.0 : 1.0, "higher"};
    bench_row p99 = {"bench_batch_serving", c1, "p99_ms", top[2].p99_ms, names[m],
                     top[m].p99_ms, 1.0, "lower"};
    bench_print(&thr, json, &header);
    bench_print(&p99, json, &header);
  }
  free(w1);
  free(w2);
  ds_context_destroy(ctx);
  return 0;
}
