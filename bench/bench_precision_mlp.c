/* bench_precision_mlp: one SGD training step of a 784-1024-1024-10 MLP (ReLU, cross-entropy,
 * batch 256) built from libdeepseek's kernels, fp32 against mixed precision (bf16 working
 * weights from fp32 masters, bf16 stored activations, fp32 accumulation and gradients), in
 * the same run on one thread: median step time and the bytes of weights, optimiser state,
 * gradients and activations. Goals from the issue: mixed >= 1.5x faster, >= 35% less memory;
 * on a CPU without bf16 arithmetic expect neither (16-bit operands are widened to fp32).
 * usage: bench_precision_mlp [--json]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>

#include "bench_common.h"

#define B 256
#define REPS 5
static const int64_t dims[4] = {784, 1024, 1024, 10};

extern void openblas_set_num_threads(int n);

static ds_context *ctx;
static uint64_t bytes;

static void *xalloc(size_t n) {
  void *p = calloc(1, n);
  if (!p) exit(1);
  bytes += n;
  return p;
}

static void ok(ds_status st, const char *what) {
  if (st != DS_OK) {
    fprintf(stderr, "bench_precision_mlp: %s: %s\n", what, ds_context_last_error(ctx));
    exit(1);
  }
}

static ds_tensor t2(void *d, ds_dtype dt, int64_t r, int64_t c) {
  ds_tensor t;
  int64_t s[2] = {r, c};
  ds_tensor_init(&t, ctx, d, dt, 2, s, NULL, (ds_device){DS_DEVICE_CPU, 0});
  return t;
}

static void gemm(void *c, int64_t m, int64_t n, const void *a, ds_dtype ta, int64_t ar,
                 int64_t ac, const void *b, ds_dtype tb, int64_t br, int64_t bc, uint32_t f) {
  ds_tensor tc = t2(c, DS_DTYPE_F32, m, n), tA = t2((void *)a, ta, ar, ac);
  ds_tensor tB = t2((void *)b, tb, br, bc);
  ok(ds_gemm(ctx, &tc, &tA, &tB, f, 1.0f, 0.0f), "gemm");
}

typedef struct net {
  ds_dtype act; /* dtype activations are stored in for the GEMMs */
  ds_optimizer *opt;
  void *x, *h[3];         /* layer inputs: x, h1, h2 (in act dtype) */
  float *z[3], *y[3];     /* pre-activations and fp32 outputs */
  float *dz[3], *dh[3], *dw[3], *db[3];
  int32_t *labels;
} net;

static const char *wname[3] = {"w1", "w2", "w3"}, *bname[3] = {"b1", "b2", "b3"};

static void net_init(net *n, ds_dtype wdt, ds_dtype act) {
  size_t es = ds_dtype_size(act);
  n->act = act;
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.lr = 0.01f;
  ok(ds_optimizer_create(&n->opt, ctx, &oo), "optimizer");
  for (int l = 0; l < 3; l++) {
    int64_t in = dims[l], out = dims[l + 1];
    float *w = malloc((size_t)(in * out) * 4), *b = calloc((size_t)out, 4);
    if (!w || !b) exit(1);
    for (int64_t i = 0; i < in * out; i++) w[i] = (float)((i * 2654435761u) % 1000) * 1e-4f - 0.05f;
    ok(ds_optimizer_add_param(n->opt, wname[l], w, in * out, wdt), "param");
    ok(ds_optimizer_add_param(n->opt, bname[l], b, out, DS_DTYPE_F32), "param");
    free(w), free(b);
    n->h[l] = xalloc((size_t)(B * in) * es);
    n->z[l] = xalloc((size_t)(B * out) * 4);
    n->y[l] = xalloc((size_t)(B * out) * 4);
    n->dz[l] = xalloc((size_t)(B * out) * 4);
    n->dh[l] = l ? xalloc((size_t)(B * in) * 4) : NULL; /* no gradient for the input */
    n->dw[l] = xalloc((size_t)(in * out) * 4);
    n->db[l] = xalloc((size_t)out * 4);
  }
  float *x = malloc((size_t)(B * dims[0]) * 4);
  if (!x) exit(1);
  for (int64_t i = 0; i < B * dims[0]; i++) x[i] = (float)(i % 255) / 255.0f;
  ok(ds_precision_convert(ctx, n->h[0], act, x, DS_DTYPE_F32, (size_t)(B * dims[0])), "convert");
  free(x);
  n->labels = xalloc(B * sizeof(int32_t));
  for (int i = 0; i < B; i++) n->labels[i] = i % 10;
}

static void net_step(net *n) {
  void *w[3], *bias[3];
  ds_dtype wdt = DS_DTYPE_F32;
  for (int l = 0; l < 3; l++) {
    ds_optimizer_working(n->opt, wname[l], &w[l], &wdt);
    ds_optimizer_working(n->opt, bname[l], &bias[l], NULL);
  }
  for (int l = 0; l < 3; l++) { /* forward */
    int64_t in = dims[l], out = dims[l + 1];
    gemm(n->z[l], B, out, n->h[l], n->act, B, in, w[l], wdt, out, in, DS_GEMM_TRANS_B);
    ok(ds_bias_act_forward(ctx, n->y[l], n->z[l], bias[l], B, out, l < 2 ? DS_ACT_RELU : DS_ACT_NONE),
       "bias_act");
    if (l < 2) ok(ds_precision_convert(ctx, n->h[l + 1], n->act, n->y[l], DS_DTYPE_F32, (size_t)(B * out)), "store");
  }
  float loss;
  ok(ds_cross_entropy(ctx, &loss, n->dz[2], n->y[2], n->labels, B, 10), "loss");
  for (int l = 2; l >= 0; l--) { /* backward */
    int64_t in = dims[l], out = dims[l + 1];
    float *g = l == 2 ? n->dz[2] : n->dh[l + 1];
    ok(ds_bias_act_backward(ctx, n->dz[l], n->db[l], g, n->z[l], bias[l], B, out,
                            l < 2 ? DS_ACT_RELU : DS_ACT_NONE), "bias_act_backward");
    gemm(n->dw[l], out, in, n->dz[l], DS_DTYPE_F32, B, out, n->h[l], n->act, B, in, DS_GEMM_TRANS_A);
    if (l > 0) gemm(n->dh[l], B, in, n->dz[l], DS_DTYPE_F32, B, out, w[l], wdt, out, in, 0);
  }
  for (int l = 0; l < 3; l++) {
    ok(ds_optimizer_step(n->opt, wname[l], n->dw[l]), "step");
    ok(ds_optimizer_step(n->opt, bname[l], n->db[l]), "step");
  }
}

static double time_net(net *n) {
  double t[REPS];
  net_step(n);
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    net_step(n);
    t[r] = bench_now_s() - t0;
  }
  return bench_median(t, REPS) * 1e3;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  openblas_set_num_threads(1);
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
  o.params = pv;
  o.nparams = 2;
  if (ds_context_create(&ctx, &o) != DS_OK) return 1;
  net f32, mixed;
  bytes = 0;
  net_init(&f32, DS_DTYPE_F32, DS_DTYPE_F32);
  uint64_t act32 = bytes;
  bytes = 0;
  net_init(&mixed, DS_DTYPE_BF16, DS_DTYPE_BF16);
  uint64_t actmx = bytes;
  ds_optimizer_memory m32, mmx;
  ds_optimizer_memory_get(f32.opt, &m32);
  ds_optimizer_memory_get(mixed.opt, &mmx);
  double t32 = time_net(&f32), tmx = time_net(&mixed);
  printf("# one thread; fp32 step %.1f ms, mixed (bf16) step %.1f ms\n", t32, tmx);
  bench_row rows[] = {
      {"bench_precision_mlp", "step_time_mixed", "speedup", t32 / tmx, "fp32 step = 1", 1.0, 1.5,
       "higher"},
      {"bench_precision_mlp", "bytes_mixed", "bytes", (double)(mmx.total_bytes + actmx), "fp32 bytes",
       (double)(m32.total_bytes + act32), 0.65, "lower"},
  };
  for (size_t i = 0; i < 2; i++) bench_print(&rows[i], json, &header);
  printf("# bytes fp32: optimiser %llu (masters+state), buffers %llu; mixed: optimiser %llu "
         "(+%llu bf16 copies), buffers %llu\n",
         (unsigned long long)m32.total_bytes, (unsigned long long)act32,
         (unsigned long long)mmx.total_bytes, (unsigned long long)mmx.working_bytes,
         (unsigned long long)actmx);
  ds_optimizer_destroy(f32.opt);
  ds_optimizer_destroy(mixed.opt);
  ds_context_destroy(ctx);
  return 0;
}
