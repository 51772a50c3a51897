/* train_fashion_mnist: trains an MLP (784-512-256-10) on Fashion-MNIST with libdeepseek and
 * serves the test set through the dynamic batcher.
 *   - data: Debian's dataset-fashion-mnist (IDX files, gzip), read with zlib;
 *   - batches are decoded (uint8 -> normalised fp32) by scheduler tasks while the previous
 *     batch trains (NORMAL priority; every 8th at LOW, as background work) and kept in a cache
 *     with a zstd-compressed tier, so later epochs read them back instead of decoding;
 *   - compute: ds_gemm + the fp32 training kernels + SGD with momentum (fp32 masters);
 *   - a checkpoint goes to a persistent cache every epoch (--checkpoint DIR, --resume);
 *   - after training, client threads send the test images one by one through a batcher.
 *   run: ./train_fashion_mnist [--epochs N] [--batch N] [--lr X] [--limit N] [--data DIR]
 *                              [--checkpoint DIR] [--resume] [--trace FILE] [--mixed]
 *   --mixed: the hidden layers run with bf16 weights under the DynamicPrecision policy. */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define IMG 784
#define H1 512
#define H2 256
#define NCLS 10
#define CLIENTS 4

typedef struct args {
  int epochs, batch, limit, resume, mixed;
  float lr;
  const char *data, *ckpt, *trace;
} args;

typedef struct dataset {
  uint8_t *img;
  int32_t *lab;
  int n;
} dataset;

/* One decoded batch: the task fills x (batch x 784 floats) from the cache or the raw images. */
typedef struct loader {
  ds_context *ctx;
  ds_cache *cache;
  const dataset *ds;
  const int *order; /* image indices, fixed at start: batch b is order[b*bs .. ) */
  int bs, b, rows;
  float *x;
  ds_task *task;
} loader;

typedef struct model {
  ds_context *ctx;
  ds_optimizer *opt;
  ds_precision_policy *pol; /* --mixed: DynamicPrecision over the hidden layers */
  ds_dtype wdt[3];          /* the dtype each layer's weights run in now */
  uint64_t step, switches;
  float *shadow; /* fp32 reference output of a layer on check steps */
  int bs;        /* rows of the work buffers */
  float *z1, *a1, *z2, *a2, *lg, *dlg, *d2, *d1;
  float *gw1, *gb1, *gw2, *gb2, *gw3, *gb3;
} model;

static const char *pname[6] = {"fc1.w", "fc1.b", "fc2.w", "fc2.b", "fc3.w", "fc3.b"};
static const int64_t psize[6] = {H1 * IMG, H1, H2 * H1, H2, NCLS * H2, NCLS};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(ds_context *ctx, ds_status st, const char *what) {
  if (st == DS_OK) return 0;
  fprintf(stderr, "train_fashion_mnist: %s: %s (%s)\n", what, ds_status_str(st),
          ctx ? ds_context_last_error(ctx) : "");
  return 1;
}

/* ---- IDX files ---------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a gzip'd IDX file: magic 0x0000080N (ubyte, N dims), N big-endian sizes, the bytes. */
static uint8_t *read_idx(const char *path, int ndim, uint32_t *count) {
  gzFile f = gzopen(path, "rb");
  if (!f) return NULL;
  uint8_t hdr[16];
  int hlen = 4 + 4 * ndim;
  uint8_t *out = NULL;
  if (gzread(f, hdr, (unsigned)hlen) == hlen && be32(hdr) == (0x800u | (uint32_t)ndim)) {
    size_t total = be32(hdr + 4);
    int ok = total <= 1000000; /* Fashion-MNIST images are 28 x 28; refuse anything else */
    for (int d = 1; d < ndim; d++) {
      ok &= be32(hdr + 4 + 4 * d) == 28;
      total *= 28;
    }
    out = ok ? malloc(total ? total : 1) : NULL;
    if (out && gzread(f, out, (unsigned)total) != (int)total) {
      free(out);
      out = NULL;
    }
    *count = be32(hdr + 4);
  }
  gzclose(f);
  return out;
}

static int load_set(dataset *ds, const char *dir, const char *prefix, int limit) {
  char pi[1024], pl[1024];
  snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
  snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
  if (access(pi, R_OK) != 0 || access(pl, R_OK) != 0) {
    fprintf(stderr,
            "train_fashion_mnist: %s not found: install the Debian package "
            "dataset-fashion-mnist, or pass --data DIR\n", pi);
    return 1;
  }
  uint32_t ni = 0, nl = 0;
  ds->img = read_idx(pi, 3, &ni);
  uint8_t *lab = read_idx(pl, 1, &nl);
  if (!ds->img || !lab || ni != nl) {
    fprintf(stderr, "train_fashion_mnist: %s or its labels: not a valid IDX file\n", pi);
    free(ds->img);
    ds->img = NULL;
    free(lab);
    return 1;
  }
  ds->n = (limit > 0 && (uint32_t)limit < ni) ? limit : (int)ni;
  ds->lab = malloc(sizeof(int32_t) * (size_t)ds->n);
  for (int i = 0; i < ds->n; i++) ds->lab[i] = lab[i];
  free(lab);
  return 0;
}

/* ---- batch loading as scheduler tasks ---------------------------------------------------- */

static void decode_rows(float *x, const dataset *ds, const int *idx, int rows) {
  for (int r = 0; r < rows; r++) {
    const uint8_t *p = ds->img + (size_t)idx[r] * IMG;
    for (int k = 0; k < IMG; k++) x[(size_t)r * IMG + k] = (p[k] / 255.0f - 0.286f) / 0.353f;
  }
}

static ds_status load_task(void *arg) {
  loader *l = arg;
  char key[32];
  int klen = snprintf(key, sizeof key, "batch:%d", l->b);
  size_t bytes = (size_t)l->rows * IMG * sizeof(float), len = 0;
  if (ds_cache_get(l->cache, key, (size_t)klen, l->x, bytes, &len) == DS_OK && len == bytes)
    return DS_OK;
  decode_rows(l->x, l->ds, l->order + (size_t)l->b * l->bs, l->rows);
  ds_cache_put(l->cache, key, (size_t)klen, l->x, bytes); /* a full cache is not an error */
  return DS_OK;
}

static ds_status loader_start(loader *l, int b, int nbatches, int n, int prio) {
  l->b = b;
  l->rows = (b == nbatches - 1) ? n - b * l->bs : l->bs;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.prio = prio;
  o.name = "load";
  return ds_task_submit(&l->task, l->ctx, load_task, l, &o);
}

/* ---- the model --------------------------------------------------------------------------- */

static ds_status gemm_dt(ds_context *ctx, float *c, int64_t m, int64_t n, const float *a,
                         int64_t ar, int64_t ac, const void *b, ds_dtype bdt, int64_t br,
                         int64_t bc, uint32_t flags) {
  ds_device cpu = {DS_DEVICE_CPU, 0};
  int64_t cs[2] = {m, n}, as[2] = {ar, ac}, bs[2] = {br, bc};
  ds_tensor tc, ta, tb;
  ds_tensor_init(&tc, ctx, c, DS_DTYPE_F32, 2, cs, NULL, cpu);
  ds_tensor_init(&ta, ctx, (void *)a, DS_DTYPE_F32, 2, as, NULL, cpu);
  ds_tensor_init(&tb, ctx, (void *)b, bdt, 2, bs, NULL, cpu);
  return ds_gemm(ctx, &tc, &ta, &tb, flags, 1.0f, 0.0f);
}

static ds_status gemm(ds_context *ctx, float *c, int64_t m, int64_t n, const float *a,
                      int64_t ar, int64_t ac, const float *b, int64_t br, int64_t bc,
                      uint32_t flags) {
  return gemm_dt(ctx, c, m, n, a, ar, ac, b, DS_DTYPE_F32, br, bc, flags);
}

/* The weights of layer l (0..2) in the dtype it runs in now: the optimiser's 16-bit working
 * copy, or the fp32 master. */
static const void *weight(model *m, int l, ds_dtype *dt) {
  void *w = NULL;
  ds_dtype wd = DS_DTYPE_F32;
  ds_optimizer_working(m->opt, pname[2 * l], &w, &wd);
  if (m->wdt[l] != DS_DTYPE_F32 && wd == m->wdt[l]) {
    *dt = wd;
    return w;
  }
  float *p = NULL;
  ds_optimizer_master(m->opt, pname[2 * l], &p);
  *dt = DS_DTYPE_F32;
  return p;
}

/* z = x W_l^T in the layer's current dtype. */
static ds_status layer_mm(model *m, float *z, const float *x, int rows, int l, int in, int out) {
  ds_dtype dt;
  const void *w = weight(m, l, &dt);
  return gemm_dt(m->ctx, z, rows, out, x, rows, in, w, dt, out, in, DS_GEMM_TRANS_B);
}

static float *param(model *m, int i) {
  float *p = NULL;
  ds_optimizer_master(m->opt, pname[i], &p);
  return p;
}

/* Forward of rows x 784 inputs into logits (rows x 10); keeps the activations for backward. */
static ds_status forward(model *m, const float *x, int rows, float *z1, float *a1, float *z2,
                         float *a2, float *lg) {
  ds_context *c = m->ctx;
  ds_status st = layer_mm(m, z1, x, rows, 0, IMG, H1);
  if (!st) st = ds_bias_act_forward(c, a1, z1, param(m, 1), rows, H1, DS_ACT_RELU);
  if (!st) st = layer_mm(m, z2, a1, rows, 1, H1, H2);
  if (!st) st = ds_bias_act_forward(c, a2, z2, param(m, 3), rows, H2, DS_ACT_RELU);
  if (!st) st = layer_mm(m, lg, a2, rows, 2, H2, NCLS);
  if (!st) st = ds_bias_act_forward(c, lg, lg, param(m, 5), rows, NCLS, DS_ACT_NONE);
  return st;
}

/* DynamicPrecision: on check steps, compare each 16-bit layer's output with an fp32 shadow
 * of the same product; the policy may move the layer to fp32 (and back later). */
static ds_status precision_check(model *m, const float *x, int rows) {
  if (!ds_precision_policy_due(m->pol, m->step)) return DS_OK;
  const float *in[2] = {x, m->a1};
  const float *out[2] = {m->z1, m->z2};
  int64_t nin[2] = {IMG, H1}, nout[2] = {H1, H2};
  ds_status st = DS_OK;
  for (int l = 0; l < 2 && !st; l++) {
    float *w = param(m, 2 * l);
    st = gemm(m->ctx, m->shadow, rows, nout[l], in[l], rows, nin[l], w, nout[l], nin[l],
              DS_GEMM_TRANS_B);
    ds_dtype next = m->wdt[l];
    float score = 0;
    if (!st)
      st = ds_precision_policy_observe(m->pol, pname[2 * l], m->step, out[l], DS_DTYPE_F32,
                                       m->shadow, rows * nout[l], &next, &score);
    if (!st && next != m->wdt[l]) {
      printf("\n  precision: %s %s -> %s at step %llu (score %.4f)\n", pname[2 * l],
             ds_dtype_name(m->wdt[l]), ds_dtype_name(next), (unsigned long long)m->step,
             (double)score);
      m->wdt[l] = next;
      m->switches++;
    }
  }
  return st;
}

/* One SGD step on a batch; *loss and *correct receive the batch's loss and right answers. */
static ds_status train_step(model *m, const float *x, const int32_t *y, int rows, float *loss,
                            int *correct) {
  ds_context *c = m->ctx;
  ds_status st = forward(m, x, rows, m->z1, m->a1, m->z2, m->a2, m->lg);
  if (!st && m->pol) st = precision_check(m, x, rows);
  m->step++;
  *correct = 0;
  for (int r = 0; r < rows && !st; r++) {
    int best = 0;
    for (int k = 1; k < NCLS; k++)
      if (m->lg[r * NCLS + k] > m->lg[r * NCLS + best]) best = k;
    *correct += best == y[r];
  }
  if (!st) st = ds_cross_entropy(c, loss, m->dlg, m->lg, y, rows, NCLS);
  /* layer 3: dW3 = dlg^T a2, db3 = sum dlg, d2 = dlg W3 */
  if (!st) st = gemm(c, m->gw3, NCLS, H2, m->dlg, rows, NCLS, m->a2, rows, H2, DS_GEMM_TRANS_A);
  if (!st) st = ds_bias_act_backward(c, m->dlg, m->gb3, m->dlg, m->lg, NULL, rows, NCLS,
                                     DS_ACT_NONE);
  ds_dtype dt;
  const void *w;
  w = weight(m, 2, &dt);
  if (!st) st = gemm_dt(c, m->d2, rows, H2, m->dlg, rows, NCLS, w, dt, NCLS, H2, 0);
  /* layer 2 */
  if (!st) st = ds_bias_act_backward(c, m->d2, m->gb2, m->d2, m->z2, param(m, 3), rows, H2,
                                     DS_ACT_RELU);
  if (!st) st = gemm(c, m->gw2, H2, H1, m->d2, rows, H2, m->a1, rows, H1, DS_GEMM_TRANS_A);
  w = weight(m, 1, &dt);
  if (!st) st = gemm_dt(c, m->d1, rows, H1, m->d2, rows, H2, w, dt, H2, H1, 0);
  /* layer 1 */
  if (!st) st = ds_bias_act_backward(c, m->d1, m->gb1, m->d1, m->z1, param(m, 1), rows, H1,
                                     DS_ACT_RELU);
  if (!st) st = gemm(c, m->gw1, H1, IMG, m->d1, rows, H1, x, rows, IMG, DS_GEMM_TRANS_A);
  float *g[6] = {m->gw1, m->gb1, m->gw2, m->gb2, m->gw3, m->gb3};
  for (int i = 0; i < 6 && !st; i++) st = ds_optimizer_step(m->opt, pname[i], g[i]);
  return st;
}

/* He-initialised weights, zero biases; or the checkpoint's values. */
static ds_status model_init(model *m, ds_context *ctx, const args *a, const float *ckpt) {
  memset(m, 0, sizeof *m);
  m->ctx = ctx;
  m->bs = a->batch;
  ds_optimizer_options o = DS_OPTIMIZER_OPTIONS_INIT;
  o.kind = DS_OPT_SGD;
  o.lr = a->lr;
  o.momentum = 0.9f;
  ds_status st = ds_optimizer_create(&m->opt, ctx, &o);
  for (int l = 0; l < 3; l++) m->wdt[l] = DS_DTYPE_F32;
  if (a->mixed && !st) { /* hidden layers in bf16, the classifier in fp32 */
    ds_precision_rule rules[] = {{"fc1.*", DS_DTYPE_BF16}, {"fc2.*", DS_DTYPE_BF16}};
    ds_precision_policy_options po = DS_PRECISION_POLICY_OPTIONS_INIT;
    po.rules = rules;
    po.nrules = 2;
    po.check_interval = 50;
    po.native_bf16 = 1; /* run bf16 even where the CPU has no native bf16 (the policy's
                           default maps bf16 to fp32 there) */
    st = ds_precision_policy_create(&m->pol, ctx, &po);
    for (int l = 0; l < 2 && !st; l++) {
      st = ds_precision_policy_dtype(m->pol, pname[2 * l], &m->wdt[l]);
      if (!st) printf("precision: %s runs in %s\n", pname[2 * l], ds_dtype_name(m->wdt[l]));
    }
  }
  srand(7);
  for (int i = 0; i < 6 && !st; i++) {
    float *init = calloc((size_t)psize[i], sizeof(float));
    if (ckpt) {
      memcpy(init, ckpt, sizeof(float) * (size_t)psize[i]);
      ckpt += psize[i];
    } else if (i % 2 == 0) {
      int64_t fan_in = psize[i] / psize[i + 1];
      float sd = sqrtf(2.0f / (float)fan_in);
      for (int64_t k = 0; k < psize[i]; k++) { /* Box-Muller */
        double u1 = (rand() + 1.0) / (RAND_MAX + 2.0), u2 = rand() / (RAND_MAX + 1.0);
        init[k] = sd * (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
      }
    }
    /* weights get a working copy in their layer's dtype (--mixed: bf16); biases stay fp32 */
    ds_dtype wd = (i % 2 == 0 && i < 4) ? m->wdt[i / 2] : DS_DTYPE_F32;
    if (!st) st = ds_optimizer_add_param(m->opt, pname[i], init, psize[i], wd);
    free(init);
  }
  size_t b = (size_t)a->batch;
  m->shadow = malloc(b * H1 * sizeof(float));
  if (!m->shadow && !st) st = DS_ERR_NO_MEMORY;
  float **bufs[14] = {&m->z1, &m->a1, &m->z2, &m->a2, &m->lg, &m->dlg, &m->d2, &m->d1,
                      &m->gw1, &m->gb1, &m->gw2, &m->gb2, &m->gw3, &m->gb3};
  size_t sz[14] = {b * H1, b * H1, b * H2, b * H2, b * NCLS, b * NCLS, b * H2, b * H1,
                   H1 * IMG, H1, H2 * H1, H2, NCLS * H2, NCLS};
  for (int i = 0; i < 14; i++) {
    *bufs[i] = malloc(sz[i] * sizeof(float));
    if (!*bufs[i] && !st) st = DS_ERR_NO_MEMORY;
  }
  return st;
}

static void model_free(model *m) {
  float *bufs[14] = {m->z1, m->a1, m->z2, m->a2, m->lg, m->dlg, m->d2, m->d1,
                     m->gw1, m->gb1, m->gw2, m->gb2, m->gw3, m->gb3};
  for (int i = 0; i < 14; i++) free(bufs[i]);
  free(m->shadow);
  ds_precision_policy_destroy(m->pol);
  ds_optimizer_destroy(m->opt);
}

/* ---- checkpoint: {epoch, all parameters} under one key of a persistent cache -------------- */

static size_t ckpt_floats(void) {
  size_t n = 0;
  for (int i = 0; i < 6; i++) n += (size_t)psize[i];
  return n;
}

static ds_status ckpt_save(ds_cache *pc, model *m, int32_t epoch) {
  size_t n = ckpt_floats(), off = 1;
  float *buf = malloc((n + 1) * sizeof(float));
  if (!buf) return DS_ERR_NO_MEMORY;
  memcpy(buf, &epoch, sizeof epoch);
  for (int i = 0; i < 6; i++) {
    memcpy(buf + off, param(m, i), sizeof(float) * (size_t)psize[i]);
    off += (size_t)psize[i];
  }
  ds_status st = ds_cache_put(pc, "mlp.ckpt", 8, buf, (n + 1) * sizeof(float));
  if (!st) st = ds_cache_flush(pc); /* durable before we say the epoch is saved */
  free(buf);
  return st;
}

/* ---- serving through the batcher --------------------------------------------------------- */

static ds_status serve_handler(void *user, const ds_batch *b) {
  model *m = user;
  int rows = (int)b->input->shape[0];
  float *z1 = malloc(sizeof(float) * (size_t)rows * H1);
  float *z2 = malloc(sizeof(float) * (size_t)rows * H2);
  ds_status st = (z1 && z2) ? forward(m, b->input->data, rows, z1, z1, z2, z2, b->output->data)
                            : DS_ERR_NO_MEMORY;
  free(z1);
  free(z2);
  return st;
}

typedef struct client {
  ds_batcher *b;
  const dataset *test;
  int first, count, correct, errors;
} client;

static void *client_main(void *arg) {
  client *c = arg;
  float x[IMG], y[NCLS];
  ds_device cpu = {DS_DEVICE_CPU, 0};
  for (int i = c->first; i < c->first + c->count; i++) {
    decode_rows(x, c->test, &i, 1);
    int64_t xs[1] = {IMG}, ys[1] = {NCLS};
    ds_tensor in, out;
    ds_tensor_init(&in, NULL, x, DS_DTYPE_F32, 1, xs, NULL, cpu);
    ds_tensor_init(&out, NULL, y, DS_DTYPE_F32, 1, ys, NULL, cpu);
    ds_batch_request *req = NULL;
    ds_status st = ds_batcher_submit(&req, c->b, &in, &out, NULL);
    if (st == DS_OK) st = ds_batch_request_wait(req, -1);
    ds_batch_request_release(req);
    if (st != DS_OK) {
      c->errors++;
      continue;
    }
    int best = 0;
    for (int k = 1; k < NCLS; k++)
      if (y[k] > y[best]) best = k;
    c->correct += best == c->test->lab[i];
  }
  return NULL;
}

static int serve(ds_context *ctx, model *m, const dataset *test, double *acc,
                 ds_batcher_stats *s) {
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = serve_handler;
  o.handler_user = m;
  o.name = "mnist";
  o.max_batch_size = 64;
  o.max_queue_delay_us = 500;
  o.ndim = 1;
  o.shape[0] = IMG;
  o.output_ndim = 1;
  o.output_shape[0] = NCLS;
  ds_batcher *b = NULL;
  if (fail(ctx, ds_batcher_create(&b, ctx, &o), "batcher")) return 1;
  client c[CLIENTS];
  pthread_t th[CLIENTS];
  int per = (test->n + CLIENTS - 1) / CLIENTS;
  for (int i = 0; i < CLIENTS; i++) {
    int first = i * per, count = test->n - first < per ? test->n - first : per;
    c[i] = (client){b, test, first, count > 0 ? count : 0, 0, 0};
    pthread_create(&th[i], NULL, client_main, &c[i]);
  }
  int correct = 0, errors = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(th[i], NULL);
    correct += c[i].correct;
    errors += c[i].errors;
  }
  s->struct_size = sizeof *s;
  ds_batcher_stats_get(b, s);
  ds_batcher_destroy(b);
  *acc = 100.0 * correct / (test->n ? test->n : 1);
  if (errors) fprintf(stderr, "train_fashion_mnist: %d serving requests failed\n", errors);
  return errors != 0;
}

/* ---- the training loop -------------------------------------------------------------------- */

static void progress(int epoch, int epochs, int done, int total, double t0, int tty) {
  double el = now_s() - t0, eta = done ? el * (total - done) / done : 0;
  int w = 30, fill = total ? w * done / total : w;
  char bar[32];
  for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
  bar[w] = 0;
  if (done < total)
    printf("%sepoch %d/%d [%s] %3d%% %.1fs ETA %.1fs", tty ? "\r" : "", epoch, epochs, bar,
           total ? 100 * done / total : 100, el, eta);
  else /* the final form of the line (the only one when stdout is not a terminal) */
    printf("%sepoch %d/%d [%s] 100%% %.1fs%s", tty ? "\r" : "", epoch, epochs, bar, el,
           tty ? "          " : ""); /* blank out the ETA */
  fflush(stdout);
}

static int train_epoch(model *m, loader ld[2], const dataset *tr, const int *order, int epoch,
                       const args *a, int tty) {
  int n = tr->n, nb = (n + a->batch - 1) / a->batch;
  int32_t *y = malloc(sizeof(int32_t) * (size_t)a->batch);
  double t0 = now_s(), loss_sum = 0;
  int correct = 0, ok = 1;
  ds_trace_begin(m->ctx, "train", "epoch");
  if (fail(m->ctx, loader_start(&ld[0], 0, nb, n, DS_PRIO_NORMAL), "submit load")) ok = 0;
  for (int b = 0; b < nb && ok; b++) {
    loader *cur = &ld[b % 2], *next = &ld[(b + 1) % 2];
    if (fail(m->ctx, ds_task_wait(cur->task, -1), "load")) ok = 0;
    ds_task_release(cur->task);
    cur->task = NULL;
    /* decode the next batch while this one trains (NORMAL; every 8th as LOW background) */
    if (ok && b + 1 < nb &&
        fail(m->ctx, loader_start(next, b + 1, nb, n, b % 8 ? DS_PRIO_NORMAL : DS_PRIO_LOW),
             "submit load"))
      ok = 0;
    if (!ok) break;
    for (int r = 0; r < cur->rows; r++) y[r] = tr->lab[order[b * a->batch + r]];
    float loss = 0;
    int c = 0;
    ds_trace_begin(m->ctx, "train", "step");
    if (fail(m->ctx, train_step(m, cur->x, y, cur->rows, &loss, &c), "train step")) ok = 0;
    ds_trace_end(m->ctx);
    loss_sum += (double)loss * cur->rows;
    correct += c;
    if (tty && (b % 20 == 0 || b == nb - 1)) progress(epoch, a->epochs, b + 1, nb, t0, tty);
  }
  for (int i = 0; i < 2; i++) { /* a failed step may leave the next load in flight */
    if (ld[i].task) ds_task_wait(ld[i].task, -1);
    ds_task_release(ld[i].task);
    ld[i].task = NULL;
  }
  ds_trace_end(m->ctx);
  free(y);
  if (!ok) return 1;
  if (!tty) progress(epoch, a->epochs, nb, nb, t0, tty);
  printf("  loss %.4f  train accuracy %.2f%%\n", loss_sum / n, 100.0 * correct / n);
  fflush(stdout); /* the epoch's line is out even if the process is killed later */
  return 0;
}

static int parse_args(args *a, int argc, char **argv) {
  *a = (args){2, 64, 0, 0, 0, 0.01f, "/usr/share/datasets/fashion-mnist", NULL, NULL};
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(s, "--resume")) { a->resume = 1; continue; }
    if (!strcmp(s, "--mixed")) { a->mixed = 1; continue; }
    if (!v) goto usage;
    i++;
    if (!strcmp(s, "--epochs")) a->epochs = atoi(v);
    else if (!strcmp(s, "--batch")) a->batch = atoi(v);
    else if (!strcmp(s, "--lr")) a->lr = strtof(v, NULL);
    else if (!strcmp(s, "--limit")) a->limit = atoi(v);
    else if (!strcmp(s, "--data")) a->data = v;
    else if (!strcmp(s, "--checkpoint")) a->ckpt = v;
    else if (!strcmp(s, "--trace")) a->trace = v;
    else goto usage;
  }
  if (a->epochs >= 1 && a->batch >= 1 && a->batch <= 4096 && a->lr > 0 && a->limit >= 0 &&
      (!a->resume || a->ckpt))
    return 0;
usage:
  fprintf(stderr, "usage: train_fashion_mnist [--epochs N] [--batch N] [--lr X] [--limit N] "
                  "[--data DIR] [--checkpoint DIR [--resume]] [--trace FILE] [--mixed]\n");
  return 1;
}

/* Opens the checkpoint cache; with --resume, reads the epoch and parameters into *params. */
static int open_ckpt(ds_context *ctx, const args *a, ds_cache **pc, float **params, int *start) {
  *start = 1;
  if (!a->ckpt) return 0;
  size_t bytes = (ckpt_floats() + 1) * sizeof(float), len = 0;
  if (fail(ctx, ds_cache_open_persistent(pc, ctx, a->ckpt, 4 * bytes, DS_CACHE_CODEC_LZ4),
           "open checkpoint")) return 1;
  if (!a->resume) return 0;
  float *buf = malloc(bytes);
  if (ds_cache_get(*pc, "mlp.ckpt", 8, buf, bytes, &len) != DS_OK || len != bytes) {
    printf("no checkpoint in %s: starting from epoch 1\n", a->ckpt);
    free(buf);
    return 0;
  }
  int32_t done;
  memcpy(&done, buf, sizeof done);
  *start = done + 1;
  *params = buf;
  printf("resumed from %s: epoch %d done, continuing at epoch %d\n", a->ckpt, done, *start);
  return 0;
}

int main(int argc, char **argv) {
  args a;
  if (parse_args(&a, argc, argv)) return 2;
  dataset tr = {0}, te = {0};
  if (load_set(&tr, a.data, "train", a.limit) || load_set(&te, a.data, "t10k", 0)) {
    free(tr.img);
    free(tr.lab);
    free(te.img);
    return 1;
  }
  ds_context *ctx = NULL;
  if (fail(NULL, ds_context_create(&ctx, NULL), "context")) return 1;
  int tty = isatty(STDOUT_FILENO), rc = 1, start = 1;
  double t0 = now_s();
  ds_cache *pc = NULL, *cache = NULL;
  float *ck = NULL;
  model m;
  memset(&m, 0, sizeof m);
  /* decoded batches: a small L1 and a zstd-compressed L2 big enough for the whole set */
  ds_cache_options co = DS_CACHE_OPTIONS_INIT;
  co.l1_bytes = 16u << 20;
  co.l2_bytes = 512u << 20;
  co.codec = DS_CACHE_CODEC_ZSTD;
  co.zstd_level = 1;
  co.flags = DS_CACHE_SHUFFLE;
  if ((a.trace && fail(ctx, ds_trace_start(ctx, a.trace), "trace")) ||
      fail(ctx, ds_cache_create(&cache, ctx, &co), "cache") ||
      open_ckpt(ctx, &a, &pc, &ck, &start) ||
      fail(ctx, model_init(&m, ctx, &a, ck ? ck + 1 : NULL), "model"))
    goto out;
  printf("Fashion-MNIST: %d training, %d test images; MLP 784-512-256-10, %s, SGD lr %g "
         "momentum 0.9, batch %d\n", tr.n, te.n,
         a.mixed ? "bf16 hidden layers (DynamicPrecision)" : "fp32", (double)a.lr, a.batch);
  /* a fixed shuffle of the images into batches, so that a decoded batch can be cached */
  int *order = malloc(sizeof(int) * (size_t)tr.n);
  for (int i = 0; i < tr.n; i++) order[i] = i;
  for (int i = tr.n - 1; i > 0; i--) {
    int j = rand() % (i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  loader ld[2];
  for (int i = 0; i < 2; i++) {
    ld[i] = (loader){ctx, cache, &tr, order, a.batch, 0, 0, NULL, NULL};
    ld[i].x = malloc(sizeof(float) * (size_t)a.batch * IMG);
  }
  int err = 0;
  for (int e = start; e <= a.epochs && !err; e++) {
    err = train_epoch(&m, ld, &tr, order, e, &a, tty);
    if (!err && pc && fail(ctx, ckpt_save(pc, &m, e), "checkpoint")) err = 1;
  }
  for (int i = 0; i < 2; i++) free(ld[i].x);
  free(order);
  if (err) goto out;
  double train_s = now_s() - t0, acc = 0;
  ds_batcher_stats bs;
  memset(&bs, 0, sizeof bs);
  if (serve(ctx, &m, &te, &acc, &bs)) goto out;
  ds_cache_tier_stats l1, l2;
  memset(&l1, 0, sizeof l1);
  memset(&l2, 0, sizeof l2);
  l1.struct_size = l2.struct_size = sizeof l1;
  ds_cache_stats(cache, DS_CACHE_L1, &l1);
  ds_cache_stats(cache, DS_CACHE_L2, &l2);
  uint64_t hits = l1.hits + l2.hits, lookups = hits + l2.misses;
  printf("test accuracy %.2f%% (%d images served by %d client threads)\n", acc, te.n, CLIENTS);
  printf("time: training %.1f s, total %.1f s\n", train_s, now_s() - t0);
  printf("batch cache: hit ratio %.2f (%llu of %llu), L2 compression %.2fx\n",
         lookups ? (double)hits / (double)lookups : 0.0, (unsigned long long)hits,
         (unsigned long long)lookups, l2.compression_ratio);
  printf("batcher: %llu requests in %llu batches (mean %.1f), latency p50 %.0f us, p99 %.0f us\n",
         (unsigned long long)bs.completed, (unsigned long long)bs.batches, bs.mean_batch_size,
         bs.latency_p50_us, bs.latency_p99_us);
  for (int l = 0; m.pol && l < 2; l++) {
    ds_precision_layer_info li;
    memset(&li, 0, sizeof li);
    if (ds_precision_policy_layer(m.pol, pname[2 * l], &li) == DS_OK)
      printf("precision: %s in %s now, %llu checks, %llu switches, last score %.4f\n",
             pname[2 * l], ds_dtype_name((ds_dtype)li.dtype), (unsigned long long)li.checks,
             (unsigned long long)li.switches, (double)li.last_score);
  }
  if (a.trace) printf("trace: %s\n", a.trace);
  rc = 0;
out:
  model_free(&m);
  free(ck);
  ds_cache_destroy(pc);
  ds_cache_destroy(cache);
  if (a.trace) ds_trace_stop(ctx);
  ds_context_destroy(ctx);
  free(tr.img);
  free(tr.lab);
  free(te.img);
  free(te.lab);
  return rc;
}
