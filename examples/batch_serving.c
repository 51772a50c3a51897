/* A dynamic batcher in front of a model: requests of 4 floats from several threads are
 * grouped into batches of up to 16 rows; the handler sees one [rows, 4] input and fills one
 * [rows, 2] output; each request gets back its own row. */
#include <pthread.h>
#include <stdio.h>

#include "deepseek.h"

/* The "model": y = (sum of x, max of x) per row. Runs on a scheduler worker. */
static ds_status model(void *user, const ds_batch *b) {
  (void)user;
  const float *x = b->input->data;
  float *y = b->output->data;
  for (int64_t r = 0; r < b->input->shape[0]; r++) {
    float sum = 0, max = x[r * 4];
    for (int k = 0; k < 4; k++) {
      sum += x[r * 4 + k];
      max = x[r * 4 + k] > max ? x[r * 4 + k] : max;
    }
    y[r * 2] = sum;
    y[r * 2 + 1] = max;
  }
  return DS_OK;
}

typedef struct client {
  ds_batcher *b;
  int id;
} client;

static void *client_main(void *arg) {
  client *c = arg;
  for (int i = 0; i < 3; i++) {
    float x[4] = {(float)c->id, (float)i, 1, 2}, y[2];
    int64_t xs[1] = {4}, ys[1] = {2};
    ds_tensor in, out;
    ds_tensor_init(&in, NULL, x, DS_DTYPE_F32, 1, xs, NULL, (ds_device){DS_DEVICE_CPU, 0});
    ds_tensor_init(&out, NULL, y, DS_DTYPE_F32, 1, ys, NULL, (ds_device){DS_DEVICE_CPU, 0});
    ds_batch_request *req = NULL;
    ds_batch_submit_options so = DS_BATCH_SUBMIT_OPTIONS_INIT;
    so.timeout_us = 1000000; /* fail with DS_ERR_TIMEOUT if not started within 1 s */
    ds_status st = ds_batcher_submit(&req, c->b, &in, &out, &so);
    if (st == DS_OK) st = ds_batch_request_wait(req, -1); /* x and y stay alive until here */
    ds_batch_request_release(req);
    printf("client %d request %d: %s sum=%g max=%g\n", c->id, i, ds_status_str(st),
           (double)y[0], (double)y[1]);
  }
  return NULL;
}

int main(void) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = model;
  o.max_batch_size = 16;
  o.max_queue_delay_us = 500; /* wait up to 0.5 ms for a fuller batch */
  o.ndim = 1;                 /* each request: [4] floats */
  o.shape[0] = 4;
  o.output_ndim = 1; /* each result: [2] floats */
  o.output_shape[0] = 2;
  ds_batcher *b = NULL;
  if (ds_batcher_create(&b, ctx, &o) != DS_OK) {
    fprintf(stderr, "%s\n", ds_context_last_error(ctx));
    return 1;
  }
  client c[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    c[i] = (client){b, i};
    pthread_create(&th[i], NULL, client_main, &c[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  ds_batcher_stats s = {0};
  s.struct_size = sizeof s;
  ds_batcher_stats_get(b, &s);
  printf("%llu requests in %llu batches (mean %.1f), p99 latency %.0f us\n",
         (unsigned long long)s.completed, (unsigned long long)s.batches, s.mean_batch_size,
         s.latency_p99_us);
  ds_batcher_destroy(b); /* before the context */
  ds_context_destroy(ctx);
  return 0;
}
