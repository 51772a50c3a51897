/* train_fashion_mnist: trains an MLP (784-512-256-10), or with --model vit a small vision
 * transformer (train_fashion_mnist_vit.c), on Fashion-MNIST with libdeepseek and serves the
 * test set through the dynamic batcher. This file is the driver and the MLP.
 *   - data: Debian's dataset-fashion-mnist (IDX files, gzip), read with zlib;
 *   - batches are decoded (uint8 -> normalised fp32) by scheduler tasks while the previous
 *     batch trains (NORMAL priority; every 8th at LOW, as background work) and kept in a cache
 *     with a zstd-compressed tier, so later epochs read them back instead of decoding;
 *   - compute: each training step is an URGENT scheduler task (ahead of queued data work);
 *     MLP: ds_gemm + the fp32 training kernels + SGD with momentum (fp32 masters);
 *   - a checkpoint goes to a persistent cache every epoch (--checkpoint DIR, --resume);
 *   - after training, client threads send the test images one by one through a batcher.
 *   - after each epoch the test set is evaluated; --plot FILE.png draws the loss and accuracy
 *     curves with gnuplot (Debian: gnuplot-nox; without it only FILE.png.csv is written).
 *   run: ./train_fashion_mnist [--model mlp|vit] [--depth N] [--epochs N] [--batch N] [--lr X]
 *                              [--limit N] [--test-limit N] [--data DIR] [--checkpoint DIR]
 *                              [--resume] [--trace FILE] [--plot FILE.png] [--mixed] [--augment]
 *   --gradcheck: checks the transformer's backward pass against finite differences, and exits.
 *   --augment: random horizontal flips, as a scheduler task after each batch's load task.
 *   --limit / --test-limit: use only the first N training / test images.
 *   --mixed: MLP: the hidden layers run with bf16 weights under the DynamicPrecision policy;
 *            ViT: bf16 is used even on a CPU without native bf16. */
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

#include "train_fashion_mnist.h"

#define IMG TFM_IMG
#define H1 512
#define H2 256
#define NCLS 10
#define CLIENTS 4

typedef tfm_args args;

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
  int bs, b, rows, augment, epoch;
  float *x;
  ds_task *task; /* the last task of the batch: augment when on, else load */
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

/* Augmentation (--augment): a horizontal flip of about half of the images, chosen from the
 * epoch and batch, applied to the batch buffer after the cache has kept the plain copy. */
static ds_status augment_task(void *arg) {
  loader *l = arg;
  uint32_t h = 2654435761u * (uint32_t)(l->epoch * 100003 + l->b + 1);
  for (int r = 0; r < l->rows; r++) {
    h ^= h << 13;
    h ^= h >> 17;
    h ^= h << 5;
    if (!(h & 1)) continue;
    float *img = l->x + (size_t)r * IMG;
    for (int y = 0; y < 28; y++)
      for (int x = 0; x < 14; x++) {
        float t = img[y * 28 + x];
        img[y * 28 + x] = img[y * 28 + 27 - x];
        img[y * 28 + 27 - x] = t;
      }
  }
  return DS_OK;
}

/* Submits batch b's load task (at @p prio) and, with --augment, its augmentation task after it
 * (NORMAL: it is needed as soon as the batch is). l->task is the one to wait for. */
static ds_status loader_start(loader *l, int b, int nbatches, int n, int prio) {
  l->b = b;
  l->rows = (b == nbatches - 1) ? n - b * l->bs : l->bs;
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.prio = prio;
  o.name = "load";
  ds_status st = ds_task_submit(&l->task, l->ctx, load_task, l, &o);
  if (st || !l->augment) return st;
  ds_task *load = l->task;
  ds_task_options ao = DS_TASK_OPTIONS_INIT;
  ao.name = "augment";
  ao.deps = &load;
  ao.ndeps = 1;
  st = ds_task_submit(&l->task, l->ctx, augment_task, l, &ao);
  if (st) ds_task_wait(load, -1); /* the buffer must be free again before we return */
  ds_task_release(load);
  return st;
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

/* ---- the MLP as the driver sees it ------------------------------------------------------- */

static ds_status mlp_step(void *impl, const float *x, const int32_t *y, int rows, float *loss,
                          int *correct) {
  return train_step(impl, x, y, rows, loss, correct);
}

/* Inference with buffers of its own: the batcher runs it on several workers at once. */
static ds_status mlp_infer(void *impl, const float *x, int rows, float *logits) {
  float *z1 = malloc(sizeof(float) * (size_t)rows * H1);
  float *z2 = malloc(sizeof(float) * (size_t)rows * H2);
  ds_status st = (z1 && z2) ? forward(impl, x, rows, z1, z1, z2, z2, logits) : DS_ERR_NO_MEMORY;
  free(z1);
  free(z2);
  return st;
}

static int64_t mlp_psize(void *impl, int i) {
  (void)impl;
  return psize[i];
}

static float *mlp_param(void *impl, int i) { return param(impl, i); }

static void mlp_report(void *impl) {
  model *m = impl;
  for (int l = 0; m->pol && l < 2; l++) {
    ds_precision_layer_info li;
    memset(&li, 0, sizeof li);
    if (ds_precision_policy_layer(m->pol, pname[2 * l], &li) == DS_OK)
      printf("precision: %s in %s now, %llu checks, %llu switches, last score %.4f\n",
             pname[2 * l], ds_dtype_name((ds_dtype)li.dtype), (unsigned long long)li.checks,
             (unsigned long long)li.switches, (double)li.last_score);
  }
  uint64_t bytes[DS_DTYPE_COUNT] = {0};
  ds_optimizer_memory om = {.struct_size = sizeof(ds_optimizer_memory)};
  if (ds_optimizer_memory_get(m->opt, &om) == DS_OK)
    bytes[DS_DTYPE_F32] += om.master_bytes + om.state_bytes;
  for (int i = 0; i < 6; i++) {
    void *w = NULL;
    ds_dtype wd = DS_DTYPE_F32;
    ds_optimizer_working(m->opt, pname[i], &w, &wd);
    if (wd != DS_DTYPE_F32) bytes[wd] += (uint64_t)psize[i] * ds_dtype_size(wd);
    bytes[DS_DTYPE_F32] += (uint64_t)psize[i] * 4; /* gradients */
  }
  /* activations and their gradients, and the shadow buffer */
  bytes[DS_DTYPE_F32] += (uint64_t)m->bs * (3 * H1 + 3 * H2 + 2 * NCLS + H1) * 4;
  tfm_print_memory(bytes);
}

static void mlp_destroy(void *impl) {
  model_free(impl);
  free(impl);
}

static ds_status mlp_create(tfm_net *out, ds_context *ctx, const args *a, const float *ckpt) {
  model *m = malloc(sizeof *m);
  if (!m) return DS_ERR_NO_MEMORY;
  ds_status st = model_init(m, ctx, a, ckpt);
  if (st) {
    mlp_destroy(m);
    return st;
  }
  static char banner[128];
  snprintf(banner, sizeof banner, "MLP 784-512-256-10, %s, SGD lr %g momentum 0.9",
           a->mixed ? "bf16 hidden layers (DynamicPrecision)" : "fp32", (double)a->lr);
  *out = (tfm_net){m, banner, "mlp.ckpt", 6, mlp_psize, mlp_param, mlp_step, mlp_infer,
                   mlp_report, mlp_destroy};
  return DS_OK;
}

void tfm_print_memory(const uint64_t bytes[DS_DTYPE_COUNT]) {
  printf("memory by dtype:");
  for (int d = 0; d < DS_DTYPE_COUNT; d++)
    if (bytes[d]) printf(" %s %.2f MiB", ds_dtype_name((ds_dtype)d), (double)bytes[d] / 1048576.0);
  printf(" (fp32: masters, optimizer state, gradients, activations; 16-bit: working weights)\n");
}

/* ---- checkpoint: {epoch, all parameters} under one key of a persistent cache -------------- */

static size_t ckpt_floats(const tfm_net *net) {
  size_t n = 0;
  for (int i = 0; i < net->nparams; i++) n += (size_t)net->psize(net->impl, i);
  return n;
}

static ds_status ckpt_save(ds_cache *pc, const tfm_net *net, int32_t epoch) {
  size_t n = ckpt_floats(net), off = 1;
  float *buf = malloc((n + 1) * sizeof(float));
  if (!buf) return DS_ERR_NO_MEMORY;
  memcpy(buf, &epoch, sizeof epoch);
  for (int i = 0; i < net->nparams; i++) {
    size_t k = (size_t)net->psize(net->impl, i);
    memcpy(buf + off, net->param(net->impl, i), sizeof(float) * k);
    off += k;
  }
  ds_status st = ds_cache_put(pc, net->ckpt_key, strlen(net->ckpt_key), buf,
                              (n + 1) * sizeof(float));
  if (!st) st = ds_cache_flush(pc); /* durable before we say the epoch is saved */
  free(buf);
  return st;
}

/* ---- serving through the batcher --------------------------------------------------------- */

static ds_status serve_handler(void *user, const ds_batch *b) {
  tfm_net *net = user;
  return net->infer(net->impl, b->input->data, (int)b->input->shape[0], b->output->data);
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

static int serve(ds_context *ctx, tfm_net *net, const dataset *test, double *acc,
                 ds_batcher_stats *s) {
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  o.handler = serve_handler;
  o.handler_user = net;
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

/* One training step as an URGENT scheduler task: it goes ahead of queued data work. */
typedef struct step_job {
  ds_context *ctx;
  tfm_net *net;
  const float *x;
  const int32_t *y;
  int rows, correct;
  float loss;
  char err[256]; /* the worker's error detail, for the main thread's message */
} step_job;

static ds_status step_task(void *arg) {
  step_job *j = arg;
  ds_trace_begin(j->ctx, "train", "step");
  ds_status st = j->net->step(j->net->impl, j->x, j->y, j->rows, &j->loss, &j->correct);
  ds_trace_end(j->ctx);
  if (st) snprintf(j->err, sizeof j->err, "%s", ds_context_last_error(j->ctx));
  return st;
}

static ds_status run_step(step_job *j) {
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.prio = DS_PRIO_URGENT;
  o.name = "step";
  ds_task *t = NULL;
  j->err[0] = 0;
  ds_status st = ds_task_submit(&t, j->ctx, step_task, j, &o);
  if (!st) st = ds_task_wait(t, -1);
  ds_task_release(t);
  if (st && j->err[0]) fprintf(stderr, "train_fashion_mnist: step: %s\n", j->err);
  return st;
}

/* One epoch; *loss_out and *acc_out receive the mean training loss and accuracy (%). */
static int train_epoch(ds_context *ctx, tfm_net *net, loader ld[2], const dataset *tr,
                       const int *order, int epoch, const args *a, int tty, double *loss_out,
                       double *acc_out) {
  int n = tr->n, nb = (n + a->batch - 1) / a->batch;
  int32_t *y = malloc(sizeof(int32_t) * (size_t)a->batch);
  double t0 = now_s(), loss_sum = 0;
  int correct = 0, ok = 1;
  ds_trace_begin(ctx, "train", "epoch");
  if (fail(ctx, loader_start(&ld[0], 0, nb, n, DS_PRIO_NORMAL), "submit load")) ok = 0;
  for (int b = 0; b < nb && ok; b++) {
    loader *cur = &ld[b % 2], *next = &ld[(b + 1) % 2];
    if (fail(ctx, ds_task_wait(cur->task, -1), "load")) ok = 0;
    ds_task_release(cur->task);
    cur->task = NULL;
    /* decode the next batch while this one trains (NORMAL; every 8th as LOW background) */
    if (ok && b + 1 < nb &&
        fail(ctx, loader_start(next, b + 1, nb, n, b % 8 ? DS_PRIO_NORMAL : DS_PRIO_LOW),
             "submit load"))
      ok = 0;
    if (!ok) break;
    for (int r = 0; r < cur->rows; r++) y[r] = tr->lab[order[b * a->batch + r]];
    step_job job = {ctx, net, cur->x, y, cur->rows, 0, 0.0f, ""};
    if (fail(ctx, run_step(&job), "train step")) ok = 0;
    loss_sum += (double)job.loss * cur->rows;
    correct += job.correct;
    if (tty && (b % 20 == 0 || b == nb - 1)) progress(epoch, a->epochs, b + 1, nb, t0, tty);
  }
  for (int i = 0; i < 2; i++) { /* a failed step may leave the next load in flight */
    if (ld[i].task) ds_task_wait(ld[i].task, -1);
    ds_task_release(ld[i].task);
    ld[i].task = NULL;
  }
  ds_trace_end(ctx);
  free(y);
  if (!ok) return 1;
  if (!tty) progress(epoch, a->epochs, nb, nb, t0, tty);
  *loss_out = loss_sum / n;
  *acc_out = 100.0 * correct / n;
  printf("  loss %.4f  train accuracy %.2f%%", *loss_out, *acc_out);
  return 0;
}

/* Test accuracy (%) of the model as it is now, in chunks through net->infer. */
static ds_status evaluate(tfm_net *net, const dataset *te, double *acc) {
  enum { CHUNK = 500 };
  float *x = malloc(sizeof(float) * CHUNK * IMG), *lg = malloc(sizeof(float) * CHUNK * NCLS);
  int idx[CHUNK], correct = 0;
  ds_status st = (x && lg) ? DS_OK : DS_ERR_NO_MEMORY;
  for (int first = 0; first < te->n && !st; first += CHUNK) {
    int rows = te->n - first < CHUNK ? te->n - first : CHUNK;
    for (int r = 0; r < rows; r++) idx[r] = first + r;
    decode_rows(x, te, idx, rows);
    st = net->infer(net->impl, x, rows, lg);
    for (int r = 0; r < rows && !st; r++) {
      int best = 0;
      for (int k = 1; k < NCLS; k++)
        if (lg[r * NCLS + k] > lg[r * NCLS + best]) best = k;
      correct += best == te->lab[first + r];
    }
  }
  free(x);
  free(lg);
  *acc = 100.0 * correct / (te->n ? te->n : 1);
  return st;
}

/* The curves: PATH.csv always; PATH itself (PNG) when gnuplot is installed. */
static void plot_curves(const char *path, const double *curve, int first, int last) {
  char csv[1024], cmd[1200];
  snprintf(csv, sizeof csv, "%s.csv", path);
  FILE *f = fopen(csv, "w");
  if (!f) {
    fprintf(stderr, "train_fashion_mnist: cannot write %s\n", csv);
    return;
  }
  fprintf(f, "epoch,train_loss,train_accuracy,test_accuracy\n");
  for (int e = first; e <= last; e++)
    fprintf(f, "%d,%.5f,%.3f,%.3f\n", e, curve[3 * e], curve[3 * e + 1], curve[3 * e + 2]);
  fclose(f);
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
    printf("plot: gnuplot not installed (Debian package gnuplot-nox): curves in %s only\n", csv);
    return;
  }
  snprintf(cmd, sizeof cmd, "gnuplot > /dev/null 2>&1");
  FILE *g = popen(cmd, "w");
  if (!g) return;
  fprintf(g,
          "set terminal png noenhanced size 900,450\nset output '%s'\nset datafile separator ','\n"
          "set key autotitle columnhead below\nset multiplot layout 1,2\nset xlabel 'epoch'\n"
          "set title 'training loss'\nplot '%s' using 1:2 with linespoints\n"
          "set title 'accuracy (%%)'\nplot '%s' using 1:3 with linespoints, '' using 1:4 with "
          "linespoints\nunset multiplot\n", path, csv, csv);
  int rc = pclose(g);
  printf(rc == 0 ? "plot: %s\n" : "plot: gnuplot failed; curves in %s.csv\n", path);
}

static int parse_args(args *a, int argc, char **argv) {
  *a = (args){.epochs = 2, .batch = 64, .depth = 2, .data = "/usr/share/datasets/fashion-mnist"};
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(s, "--resume")) { a->resume = 1; continue; }
    if (!strcmp(s, "--mixed")) { a->mixed = 1; continue; }
    if (!strcmp(s, "--augment")) { a->augment = 1; continue; }
    if (!strcmp(s, "--gradcheck")) { a->gradcheck = 1; continue; }
    if (!v) goto usage;
    i++;
    if (!strcmp(s, "--epochs")) a->epochs = atoi(v);
    else if (!strcmp(s, "--batch")) a->batch = atoi(v);
    else if (!strcmp(s, "--lr")) a->lr = strtof(v, NULL);
    else if (!strcmp(s, "--limit")) a->limit = atoi(v);
    else if (!strcmp(s, "--test-limit")) a->test_limit = atoi(v);
    else if (!strcmp(s, "--data")) a->data = v;
    else if (!strcmp(s, "--checkpoint")) a->ckpt = v;
    else if (!strcmp(s, "--trace")) a->trace = v;
    else if (!strcmp(s, "--plot")) a->plot = v;
    else if (!strcmp(s, "--depth")) a->depth = atoi(v);
    else if (!strcmp(s, "--model") && !strcmp(v, "vit")) a->vit = 1;
    else if (!strcmp(s, "--model") && !strcmp(v, "mlp")) a->vit = 0;
    else goto usage;
  }
  if (a->lr == 0.0f) a->lr = a->vit ? 0.002f : 0.01f; /* AdamW for the ViT, SGD for the MLP */
  if (a->epochs >= 1 && a->epochs <= 1000 && a->batch >= 1 && a->batch <= 4096 && a->lr > 0 &&
      a->limit >= 0 && a->test_limit >= 0 && a->depth >= 1 && a->depth <= 12 &&
      (!a->resume || a->ckpt))
    return 0;
usage:
  fprintf(stderr, "usage: train_fashion_mnist [--model mlp|vit] [--depth N] [--epochs N] "
                  "[--batch N] [--lr X] [--limit N] [--test-limit N] [--data DIR] "
                  "[--checkpoint DIR [--resume]] [--trace FILE] [--plot FILE.png] [--mixed] "
                  "[--augment]\n");
  return 1;
}

/* Opens the checkpoint cache; with --resume, reads the epoch and parameters into *params. */
static int open_ckpt(ds_context *ctx, const args *a, size_t nfloats, const char *key,
                     ds_cache **pc, float **params, int *start) {
  *start = 1;
  if (!a->ckpt) return 0;
  size_t bytes = (nfloats + 1) * sizeof(float), len = 0;
  if (fail(ctx, ds_cache_open_persistent(pc, ctx, a->ckpt, 4 * bytes + (1u << 20),
                                         DS_CACHE_CODEC_LZ4), "open checkpoint"))
    return 1;
  if (!a->resume) return 0;
  float *buf = malloc(bytes);
  if (!buf || ds_cache_get(*pc, key, strlen(key), buf, bytes, &len) != DS_OK || len != bytes) {
    printf("no checkpoint of this model in %s: starting from epoch 1\n", a->ckpt);
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

/* Builds the chosen model, from checkpoint values when @p ckpt is not NULL. */
static ds_status make_net(tfm_net *net, ds_context *ctx, const args *a, const float *ckpt) {
  return a->vit ? tfm_vit_create(net, ctx, a, ckpt) : mlp_create(net, ctx, a, ckpt);
}

/* Trains epochs start..epochs, checkpointing and evaluating after each. */
static int train_all(ds_context *ctx, tfm_net *net, ds_cache *cache, ds_cache *pc,
                     const dataset *tr, const dataset *te, const args *a, int start, int tty) {
  /* a fixed shuffle of the images into batches, so that a decoded batch can be cached */
  int *order = malloc(sizeof(int) * (size_t)tr->n);
  double *curve = calloc((size_t)a->epochs + 1, 3 * sizeof(double));
  loader ld[2];
  int err = !order || !curve;
  for (int i = 0; i < tr->n && !err; i++) order[i] = i;
  for (int i = tr->n - 1; i > 0 && !err; i--) {
    int j = rand() % (i + 1), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (int i = 0; i < 2; i++) {
    ld[i] = (loader){ctx, cache, tr, order, a->batch, 0, 0, a->augment, 0, NULL, NULL};
    ld[i].x = malloc(sizeof(float) * (size_t)a->batch * IMG);
    err |= !ld[i].x;
  }
  for (int e = start; e <= a->epochs && !err; e++) {
    double *c = curve + 3 * e;
    ld[0].epoch = ld[1].epoch = e;
    err = train_epoch(ctx, net, ld, tr, order, e, a, tty, &c[0], &c[1]);
    if (!err) err = fail(ctx, evaluate(net, te, &c[2]), "evaluate");
    if (!err) printf("  test %.2f%%\n", c[2]);
    fflush(stdout); /* the epoch's line is out even if the process is killed later */
    if (!err && pc && fail(ctx, ckpt_save(pc, net, e), "checkpoint")) err = 1;
  }
  if (!err && a->plot && start <= a->epochs) plot_curves(a->plot, curve, start, a->epochs);
  for (int i = 0; i < 2; i++) free(ld[i].x);
  free(order);
  free(curve);
  return err;
}

static void summary(ds_cache *cache, tfm_net *net, const dataset *te, double acc,
                    double train_s, double total_s, const ds_batcher_stats *bs,
                    const args *a) {
  ds_cache_tier_stats l1, l2;
  memset(&l1, 0, sizeof l1);
  memset(&l2, 0, sizeof l2);
  l1.struct_size = l2.struct_size = sizeof l1;
  ds_cache_stats(cache, DS_CACHE_L1, &l1);
  ds_cache_stats(cache, DS_CACHE_L2, &l2);
  uint64_t hits = l1.hits + l2.hits, lookups = hits + l2.misses;
  printf("test accuracy %.2f%% (%d images served by %d client threads)\n", acc, te->n, CLIENTS);
  printf("time: training %.1f s, total %.1f s\n", train_s, total_s);
  printf("batch cache: hit ratio %.2f (%llu of %llu), L2 compression %.2fx\n",
         lookups ? (double)hits / (double)lookups : 0.0, (unsigned long long)hits,
         (unsigned long long)lookups, l2.compression_ratio);
  printf("batcher: %llu requests in %llu batches (mean %.1f), latency p50 %.0f us, p99 %.0f us\n",
         (unsigned long long)bs->completed, (unsigned long long)bs->batches,
         bs->mean_batch_size, bs->latency_p50_us, bs->latency_p99_us);
  net->report(net->impl);
  if (a->trace) printf("trace: %s\n", a->trace);
}

int main(int argc, char **argv) {
  args a;
  if (parse_args(&a, argc, argv)) return 2;
  if (a.gradcheck) { /* a self-test of the transformer's backward pass; needs no data */
    ds_context *gctx = NULL;
    if (fail(NULL, ds_context_create(&gctx, NULL), "context")) return 1;
    int bad = tfm_vit_gradcheck(gctx);
    ds_context_destroy(gctx);
    return bad;
  }
  dataset tr = {0}, te = {0};
  if (load_set(&tr, a.data, "train", a.limit) || load_set(&te, a.data, "t10k", a.test_limit)) {
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
  tfm_net net = {0};
  /* decoded batches: a small L1 and a zstd-compressed L2 big enough for the whole set */
  ds_cache_options co = DS_CACHE_OPTIONS_INIT;
  co.l1_bytes = 16u << 20;
  co.l2_bytes = 512u << 20;
  co.codec = DS_CACHE_CODEC_ZSTD;
  co.zstd_level = 1;
  co.flags = DS_CACHE_SHUFFLE;
  if ((a.trace && fail(ctx, ds_trace_start(ctx, a.trace), "trace")) ||
      fail(ctx, ds_cache_create(&cache, ctx, &co), "cache") ||
      fail(ctx, make_net(&net, ctx, &a, NULL), "model"))
    goto out;
  if (a.resume || a.ckpt) { /* the checkpoint's size depends on the model */
    size_t nfloats = ckpt_floats(&net);
    if (open_ckpt(ctx, &a, nfloats, net.ckpt_key, &pc, &ck, &start)) goto out;
    if (ck) {
      net.destroy(net.impl);
      net.impl = NULL;
      if (fail(ctx, make_net(&net, ctx, &a, ck + 1), "model")) goto out;
    }
  }
  printf("Fashion-MNIST: %d training, %d test images; %s, batch %d\n", tr.n, te.n, net.name,
         a.batch);
  if (train_all(ctx, &net, cache, pc, &tr, &te, &a, start, tty)) goto out;
  double train_s = now_s() - t0, acc = 0;
  ds_batcher_stats bs;
  memset(&bs, 0, sizeof bs);
  if (serve(ctx, &net, &te, &acc, &bs)) goto out;
  summary(cache, &net, &te, acc, train_s, now_s() - t0, &bs, &a);
  rc = 0;
out:
  if (net.impl) net.destroy(net.impl);
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
