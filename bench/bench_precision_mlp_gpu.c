/* bench_precision_mlp_gpu: one SGD-momentum training step of the 784-1024-1024-10 MLP of
 * bench_precision_mlp (ReLU, cross-entropy, batch 256 by default) on a CUDA device, built
 * only from libdeepseek's public API on CUDA tensors: ds_gemm (cuBLAS GemmEx, fp32 compute,
 * tensor cores for 16-bit operands), the *_tensor training kernels, and the update through
 * ds_elementwise_tensor / ds_precision_convert_tensor. fp32 (fp32 weights, activations and
 * gradients) against mixed (bf16 working weights converted from fp32 masters after each
 * update, bf16 weight momentum, activations, activation gradients and weight gradients);
 * the nets' steps are
 * interleaved. Reports the median step time, the speedup (issue's goal on the H200: >= 2.3x)
 * and the device bytes of each net. Every library call returns when its result is in place,
 * so at batch 256 (2.9 GFLOP a step, microseconds of tensor-core time) a step is bound by
 * the ~45 call round trips, not by arithmetic; --batch 4096 or 16384 shows the arithmetic.
 * Without a CUDA build or device it says so and exits 0 (1 with DS_REQUIRE_GPU=1); --cpu runs
 * the same calls on host tensors as a check of the step (exit 1 if the loss does not fall).
 * usage: bench_precision_mlp_gpu [--json] [--batch N] [--reps N] [--cpu]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>
#include <string.h>

#include "bench_common.h"

static int require_gpu(void) {
  const char *e = getenv("DS_REQUIRE_GPU");
  return e && !strcmp(e, "1");
}

/* --cpu runs the same calls on host buffers (CPU tensors): a check of the step's logic on a
 * machine without a GPU (the loss must go down), not a measurement. */
static int on_host;

#ifdef DS_BENCH_HAVE_CUDA
#include <cuda_runtime.h>
static int dev_count(void) {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
static void *dev_zalloc(size_t bytes) {
  void *p = NULL;
  if (cudaMalloc(&p, bytes) != cudaSuccess || cudaMemset(p, 0, bytes) != cudaSuccess) return NULL;
  return p;
}
static int dev_upload(void *dst, const void *src, size_t bytes) {
  return cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice) == cudaSuccess ? 0 : -1;
}
static void dev_free(void *p) { cudaFree(p); }
static void dev_sync(void) { cudaDeviceSynchronize(); }
#else
static int dev_count(void) { return 0; }
static void *dev_zalloc(size_t bytes) {
  (void)bytes;
  return NULL;
}
static int dev_upload(void *dst, const void *src, size_t bytes) {
  (void)dst, (void)src, (void)bytes;
  return -1;
}
static void dev_free(void *p) { (void)p; }
static void dev_sync(void) {}
#endif

static void *mem_zalloc(size_t bytes) { return on_host ? calloc(1, bytes) : dev_zalloc(bytes); }
static void mem_free(void *p) {
  if (on_host)
    free(p);
  else
    dev_free(p);
}
static void mem_sync(void) {
  if (!on_host) dev_sync();
}

static const int64_t dims[4] = {784, 1024, 1024, 10};
static int64_t B = 256;
static int reps = 21;
static ds_context *ctx;
static const float lr = 0.01f, mu = 0.9f;

static void ok(ds_status st, const char *what) {
  if (st != DS_OK) {
    fprintf(stderr, "bench_precision_mlp_gpu: %s: %s\n", what, ds_context_last_error(ctx));
    exit(1);
  }
}

static ds_tensor t2(void *d, ds_dtype dt, int64_t r, int64_t c) {
  ds_tensor t;
  int64_t s[2] = {r, c};
  ds_tensor_init(&t, ctx, d, dt, 2, s, NULL,
                 (ds_device){on_host ? DS_DEVICE_CPU : DS_DEVICE_CUDA, 0});
  return t;
}

/* One net on the device. The weight-gradient buffer is shared by the layers (each layer is
 * updated right after its gradient is ready), as in bench_precision_mlp. */
typedef struct gnet {
  ds_dtype act; /* activations, their gradients and the weight gradients */
  ds_tensor master[3], mom[3], work[3]; /* [out, in]; work == master for fp32 */
  ds_tensor bias[3], bmom[3];           /* fp32 [1, out] */
  ds_tensor h[3], logits, dlogits, labels, g[2];
  void *dw, *db; /* shared gradients: act dtype [1024, 1024], fp32 [1024] */
  uint64_t bytes;
  void *owned[32];
  int nowned;
} gnet;

static void *dmem(gnet *n, size_t bytes) {
  void *p = mem_zalloc(bytes);
  if (!p) {
    fprintf(stderr, "bench_precision_mlp_gpu: allocating %zu bytes failed\n", bytes);
    exit(1);
  }
  n->owned[n->nowned++] = p;
  n->bytes += bytes;
  return p;
}

static ds_tensor dbuf(gnet *n, ds_dtype dt, int64_t r, int64_t c) {
  return t2(dmem(n, (size_t)(r * c) * ds_dtype_size(dt)), dt, r, c);
}

static void upload(void *dst, const void *src, size_t bytes) {
  if (on_host)
    memcpy(dst, src, bytes);
  else if (dev_upload(dst, src, bytes))
    exit(1);
}

static void net_init(gnet *n, ds_dtype dt) {
  memset(n, 0, sizeof *n);
  n->act = dt;
  for (int l = 0; l < 3; l++) {
    int64_t in = dims[l], out = dims[l + 1];
    float *w = malloc((size_t)(in * out) * 4);
    if (!w) exit(1);
    for (int64_t i = 0; i < in * out; i++) w[i] = (float)((i * 2654435761u) % 1000) * 1e-4f - 0.05f;
    n->master[l] = dbuf(n, DS_DTYPE_F32, out, in);
    upload(n->master[l].data, w, (size_t)(in * out) * 4);
    free(w);
    n->mom[l] = dbuf(n, dt, out, in); /* momentum in bf16 for mixed (rounded each step) */
    n->work[l] = n->master[l];
    if (dt != DS_DTYPE_F32) {
      n->work[l] = dbuf(n, dt, out, in);
      ok(ds_precision_convert_tensor(ctx, &n->work[l], &n->master[l]), "convert weights");
    }
    n->bias[l] = dbuf(n, DS_DTYPE_F32, 1, out);
    n->bmom[l] = dbuf(n, DS_DTYPE_F32, 1, out);
    n->h[l] = dbuf(n, dt, B, in);
  }
  n->logits = dbuf(n, DS_DTYPE_F32, B, 10);
  n->dlogits = dbuf(n, dt, B, 10);
  n->labels = dbuf(n, DS_DTYPE_I32, 1, B);
  n->g[0] = dbuf(n, dt, B, 1024), n->g[1] = dbuf(n, dt, B, 1024);
  n->dw = dmem(n, 1024 * 1024 * ds_dtype_size(dt));
  n->db = dmem(n, 1024 * 4);
  float *x = malloc((size_t)(B * dims[0]) * 4);
  int32_t *lab = malloc((size_t)B * 4);
  if (!x || !lab) exit(1);
  for (int64_t i = 0; i < B * dims[0]; i++) x[i] = (float)(i % 255) / 255.0f;
  for (int64_t i = 0; i < B; i++) lab[i] = (int32_t)(i % 10);
  void *staging = mem_zalloc((size_t)(B * dims[0]) * 4); /* fp32 input; not in the step */
  if (!staging) exit(1);
  upload(staging, x, (size_t)(B * dims[0]) * 4);
  ds_tensor x32 = t2(staging, DS_DTYPE_F32, B, dims[0]);
  ok(ds_precision_convert_tensor(ctx, &n->h[0], &x32), "convert input");
  upload(n->labels.data, lab, (size_t)B * 4);
  mem_free(staging);
  free(x), free(lab);
}

static void net_free(gnet *n) {
  for (int i = 0; i < n->nowned; i++) mem_free(n->owned[i]);
}

/* SGD with momentum (torch rule after the first step: m = mu m + g; w -= lr m) through
 * elementwise calls; the gradient buffer receives -lr m (in the gradient's dtype: for mixed
 * the update, not the master, is rounded to bf16), then the master adds it and the bf16
 * working copy is refreshed from the master. */
static void sgd(ds_tensor *w, ds_tensor *m, ds_tensor *work, ds_tensor *g) {
  ok(ds_elementwise_tensor(ctx, DS_EW_SCALE, m, m, NULL, mu), "m *= mu");
  ok(ds_elementwise_tensor(ctx, DS_EW_ADD, m, m, g, 0.0f), "m += g");
  ok(ds_elementwise_tensor(ctx, DS_EW_SCALE, g, m, NULL, -lr), "g = -lr m");
  ok(ds_elementwise_tensor(ctx, DS_EW_ADD, w, w, g, 0.0f), "w += g");
  if (work->data != w->data) ok(ds_precision_convert_tensor(ctx, work, w), "refresh working");
}

static float net_step(gnet *n) {
  for (int l = 0; l < 3; l++) { /* forward: out = act(h W^T + b), in place */
    ds_tensor *out = l < 2 ? &n->h[l + 1] : &n->logits;
    ok(ds_gemm(ctx, out, &n->h[l], &n->work[l], DS_GEMM_TRANS_B, 1.0f, 0.0f), "gemm forward");
    ok(ds_bias_act_forward_tensor(ctx, out, out, &n->bias[l], l < 2 ? DS_ACT_RELU : DS_ACT_NONE),
       "bias_act");
  }
  float loss;
  ok(ds_cross_entropy_tensor(ctx, &loss, &n->dlogits, &n->logits, &n->labels), "loss");
  ds_tensor dz = n->dlogits;
  for (int l = 2; l >= 0; l--) { /* backward; each layer updated once its gradient is ready */
    int64_t in = dims[l], out = dims[l + 1];
    ds_tensor db = t2(n->db, DS_DTYPE_F32, 1, out), dw = t2(n->dw, n->act, out, in);
    ok(ds_bias_act_backward_tensor(ctx, &dz, &db, &dz, l == 2 ? &n->logits : &n->h[l + 1], NULL,
                                   l < 2 ? DS_ACT_RELU : DS_ACT_NONE), "bias_act backward");
    ok(ds_gemm(ctx, &dw, &dz, &n->h[l], DS_GEMM_TRANS_A, 1.0f, 0.0f), "gemm dW");
    ds_tensor dh = l > 0 ? t2(n->g[l & 1].data, n->act, B, in) : dz;
    if (l > 0) ok(ds_gemm(ctx, &dh, &dz, &n->work[l], 0, 1.0f, 0.0f), "gemm dh");
    sgd(&n->master[l], &n->mom[l], &n->work[l], &dw);
    sgd(&n->bias[l], &n->bmom[l], &n->bias[l], &db);
    dz = dh;
  }
  return loss;
}

/* Median step time (ms) of each net, steps interleaved; losses of the first and last step. */
static void time_nets(gnet **nets, double *ms, float *first, float *last) {
  double *t = malloc(sizeof(double) * 2 * (size_t)reps);
  if (!t) exit(1);
  for (int k = 0; k < 2; k++) { /* two warm-up steps (cuBLAS heuristics, lazy handles) */
    first[k] = net_step(nets[k]);
    net_step(nets[k]);
  }
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < 2; k++) {
      mem_sync();
      double t0 = bench_now_s();
      last[k] = net_step(nets[k]);
      mem_sync();
      t[k * reps + r] = (bench_now_s() - t0) * 1e3;
    }
  for (int k = 0; k < 2; k++) ms[k] = bench_median(t + k * reps, reps);
  free(t);
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--cpu")) on_host = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoll(argv[i + 1]);
    if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
  }
  if (B < 1 || B > 65536) B = 256;
  if (reps < 1 || reps > 1000) reps = 21;
  if (!on_host && dev_count() == 0) {
#ifdef DS_BENCH_HAVE_CUDA
    printf("# bench_precision_mlp_gpu: no CUDA device, skipped\n");
#else
    printf("# bench_precision_mlp_gpu: built without CUDA, skipped\n");
#endif
    return require_gpu();
  }
  ctx = bench_context("bench_precision_mlp_gpu", NULL, 0);
  gnet f32, mixed;
  net_init(&f32, DS_DTYPE_F32);
  net_init(&mixed, DS_DTYPE_BF16);
  gnet *nets[2] = {&f32, &mixed};
  double ms[2];
  float first[2], last[2];
  time_nets(nets, ms, first, last);
  printf("# %s, batch %lld; step fp32 %.3f ms, mixed (bf16) %.3f ms; loss first/last step "
         "fp32 %.5f/%.5f, mixed %.5f/%.5f; bytes fp32 %llu, mixed %llu\n",
         on_host ? "CPU dry run (--cpu)" : "CUDA device 0", (long long)B, ms[0], ms[1],
         first[0], last[0], first[1], last[1], (unsigned long long)f32.bytes,
         (unsigned long long)mixed.bytes);
  /* both nets learn: the same data every step, so the loss must fall */
  int learned = last[0] < first[0] && last[1] < first[1] && last[1] < 1.2f * last[0];
  char cs[48], cb[48];
  const char *pre = on_host ? "cpu_dry_run_" : "";
  snprintf(cs, sizeof cs, "%sstep_time_b%lld", pre, (long long)B);
  snprintf(cb, sizeof cb, "%sdevice_bytes_b%lld", pre, (long long)B);
  bench_row rows[] = {
      {"bench_precision_mlp_gpu", cs, "speedup", ms[0] / ms[1], "fp32 step = 1", 1.0, 2.3,
       "higher"},
      {"bench_precision_mlp_gpu", cb, "bytes", (double)mixed.bytes, "fp32 bytes",
       (double)f32.bytes, 0.65, "lower"},
  };
  for (int i = 0; i < 2; i++) bench_print(&rows[i], json, &header);
  net_free(&f32);
  net_free(&mixed);
  ds_context_destroy(ctx);
  if (!learned) fprintf(stderr, "bench_precision_mlp_gpu: the loss did not fall\n");
  return learned ? 0 : 1;
}
