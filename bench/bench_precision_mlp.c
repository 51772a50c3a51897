/* bench_precision_mlp: one training step (SGD-momentum, or AdamW with --opt adamw) of a
 * 784-1024-1024-10 MLP (ReLU, cross-entropy, batch 256 by default) built from libdeepseek's
 * kernels, fp32 against mixed precision, in the same run on one thread. All nets have the
 * same structure, so only the dtypes differ: GEMM outputs land in the activation buffer and
 * bias + ReLU runs in place; backward reads ReLU's mask from the stored output (relu(z) > 0
 * iff z > 0, so no pre-activation is kept). Nets:
 *  - fp32: the plain fp32 step: fp32 weights, optimiser state, activations, and a weight
 *    gradient buffer (one, shared by the layers: each layer steps as soon as its gradient is
 *    ready, already less than the per-parameter .grad arrays PyTorch keeps).
 *  - mixed: bf16 working weights that are the high halves of split fp32 masters (no separate
 *    copy), bf16 optimiser state (stochastic rounding), bf16 activations and activation
 *    gradients (the *_tensor kernels compute in fp32 and round once), and no weight gradient
 *    buffer: ds_optimizer_step_linear computes dW in fp32 row tiles and applies each at once
 *    (allowed because the bf16 step runs without a loss scaler; the tile is in the
 *    optimiser's memory report).
 *  - act16: the same but fp32 weights (master = working, same bytes as a split master): what
 *    pays off on a CPU without bf16 arithmetic, where ds_gemm widens 16-bit weights again.
 * Each net has its own context, so everything the library allocates for it is measured:
 * the context's high-water mark after the steps (core.mem.peak_bytes) less its live bytes
 * before the optimiser was made. Beyond the optimiser's report that is ds_gemm's widening
 * scratch, the blocks the 16-bit tensor kernels convert through (freed before they return,
 * so only the peak sees them) and bookkeeping. Reports the median step time, the bytes
 * by dtype and role, and the loss of each of the 8 steps, checking that the loss drop of
 * mixed and act16 stays within 25% of fp32's (exit 1 if not). Goals from the issue:
 * mixed >= 1.5x faster, >= 35% less memory.
 * usage: bench_precision_mlp [--json] [--batch N] [--opt sgd|adamw]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench_common.h"

#define REPS 7
static const int64_t dims[4] = {784, 1024, 1024, 10};
static int64_t B = 256;

extern void openblas_set_num_threads(int n);

static ds_context *ctx; /* the context of the net being built or stepped */
static int adamw;

/* Buffer bytes by dtype (index: ds_dtype F32, F16, BF16). */
typedef struct bytes_by_dtype {
  uint64_t act[3]; /* activations and their gradients */
  uint64_t grad;   /* weight-gradient buffer */
  uint64_t scratch; /* the library's peak beyond the optimiser's report (see above) */
} bytes_by_dtype;

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

typedef struct net {
  ds_context *ctx;
  ds_dtype act;          /* dtype of activations and activation gradients */
  int tiled;             /* weight gradients consumed in tiles (no dw buffer) */
  ds_optimizer *opt;
  ds_tensor h[3];        /* layer inputs: x, h1, h2 (act) */
  ds_tensor logits, dlogits, labels;
  ds_tensor g[2];        /* activation gradients [B, 1024], used in turn (act) */
  void *dw;              /* shared fp32 weight gradient (NULL when tiled) */
  float *db;             /* shared bias gradient (fp32) */
  int64_t live0;         /* the context's live bytes before the optimiser */
  bytes_by_dtype bytes;
  void *owned[16];
  int nowned;
} net;

static const char *wname[3] = {"w1", "w2", "w3"}, *bname[3] = {"b1", "b2", "b3"};

static ds_tensor buf(net *n, ds_dtype dt, int64_t r, int64_t c) {
  size_t sz = (size_t)(r * c) * ds_dtype_size(dt);
  void *p = calloc(1, sz);
  if (!p) exit(1);
  n->owned[n->nowned++] = p;
  if (dt == DS_DTYPE_I32) n->bytes.act[0] += sz; /* labels: count with the fp32 side */
  else n->bytes.act[dt] += sz;
  return t2(p, dt, r, c);
}

static int64_t mem_stat(ds_context *c, const char *name) {
  ds_stats *st = NULL;
  double v = 0;
  ok(ds_stats_snapshot(&st, c), "stats");
  ok(ds_stats_find(&v, st, name), "stats");
  ds_stats_free(st);
  return (int64_t)v;
}

static void net_init(net *n, ds_dtype wdt, ds_dtype act) {
  memset(n, 0, sizeof *n);
  n->ctx = ctx = bench_context("bench_precision_mlp", NULL, 0);
  n->act = act;
  n->tiled = act != DS_DTYPE_F32;
  n->live0 = mem_stat(ctx, "core.mem.live_bytes");
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.kind = adamw ? DS_OPT_ADAMW : DS_OPT_SGD;
  /* AdamW at 1e-4: at 1e-3 its first steps (about lr * sign(g) per weight) make even the
   * fp32 loss jump between 2.25 and 3.4 on this data, and no two curves can be compared */
  oo.lr = adamw ? 1e-4f : 0.01f;
  if (act != DS_DTYPE_F32) oo.state_dtype = DS_DTYPE_BF16, oo.split_master = 1;
  ok(ds_optimizer_create(&n->opt, ctx, &oo), "optimizer");
  for (int l = 0; l < 3; l++) {
    int64_t in = dims[l], out = dims[l + 1];
    float *w = malloc((size_t)(in * out) * 4), *b = calloc((size_t)out, 4);
    if (!w || !b) exit(1);
    for (int64_t i = 0; i < in * out; i++) w[i] = (float)((i * 2654435761u) % 1000) * 1e-4f - 0.05f;
    ok(ds_optimizer_add_param(n->opt, wname[l], w, in * out, wdt), "param");
    ok(ds_optimizer_add_param(n->opt, bname[l], b, out, DS_DTYPE_F32), "param");
    free(w), free(b);
    n->h[l] = buf(n, act, B, in);
  }
  n->logits = buf(n, DS_DTYPE_F32, B, 10);
  n->dlogits = buf(n, act, B, 10);
  n->labels = buf(n, DS_DTYPE_I32, 1, B);
  n->g[0] = buf(n, act, B, 1024), n->g[1] = buf(n, act, B, 1024);
  n->dw = n->tiled ? NULL : calloc(1024 * 1024, 4), n->db = calloc(1024, 4);
  if ((!n->tiled && !n->dw) || !n->db) exit(1);
  n->bytes.grad = (n->tiled ? 0 : 1024 * 1024 * 4) + 1024 * 4;
  float *x = malloc((size_t)(B * dims[0]) * 4);
  if (!x) exit(1);
  for (int64_t i = 0; i < B * dims[0]; i++) x[i] = (float)(i % 255) / 255.0f;
  ok(ds_precision_convert(ctx, n->h[0].data, act, x, DS_DTYPE_F32, (size_t)(B * dims[0])),
     "convert");
  free(x);
  for (int i = 0; i < B; i++) ((int32_t *)n->labels.data)[i] = i % 10;
}

static void net_free(net *n) {
  ds_optimizer_destroy(n->opt);
  ds_context_destroy(n->ctx);
  for (int i = 0; i < n->nowned; i++) free(n->owned[i]);
  free(n->dw), free(n->db);
}

static void weights(net *n, int l, ds_tensor *w, ds_tensor *b) {
  void *wp, *bp;
  ds_dtype wdt;
  ok(ds_optimizer_working(n->opt, wname[l], &wp, &wdt), "working");
  ok(ds_optimizer_working(n->opt, bname[l], &bp, NULL), "working");
  *w = t2(wp, wdt, dims[l + 1], dims[l]); /* [out, in] */
  *b = t2(bp, DS_DTYPE_F32, 1, dims[l + 1]);
}

static float net_step(net *n) {
  ds_tensor w, b;
  ctx = n->ctx;
  for (int l = 0; l < 3; l++) { /* forward: out = act(h W^T + b), in place */
    weights(n, l, &w, &b);
    ds_tensor *out = l < 2 ? &n->h[l + 1] : &n->logits;
    ok(ds_gemm(ctx, out, &n->h[l], &w, DS_GEMM_TRANS_B, 1.0f, 0.0f), "gemm forward");
    ok(ds_bias_act_forward_tensor(ctx, out, out, &b, l < 2 ? DS_ACT_RELU : DS_ACT_NONE),
       "bias_act");
  }
  float loss;
  ok(ds_cross_entropy_tensor(ctx, &loss, &n->dlogits, &n->logits, &n->labels), "loss");
  ds_tensor dz = n->dlogits;
  for (int l = 2; l >= 0; l--) { /* backward */
    int64_t in = dims[l], out = dims[l + 1];
    weights(n, l, &w, &b);
    ds_tensor db = t2(n->db, DS_DTYPE_F32, 1, out);
    /* dz = dy * act'(z); the mask of ReLU from its stored output */
    ok(ds_bias_act_backward_tensor(ctx, &dz, &db, &dz, l == 2 ? &n->logits : &n->h[l + 1], NULL,
                                   l < 2 ? DS_ACT_RELU : DS_ACT_NONE), "bias_act backward");
    ds_tensor dh = l > 0 ? t2(n->g[l & 1].data, n->act, B, in) : dz;
    if (l > 0) ok(ds_gemm(ctx, &dh, &dz, &w, 0, 1.0f, 0.0f), "gemm dh"); /* old weights */
    if (n->tiled) {
      ok(ds_optimizer_step_linear(n->opt, wname[l], &dz, &n->h[l], 0), "step_linear");
    } else {
      ds_tensor dw = t2(n->dw, DS_DTYPE_F32, out, in);
      ok(ds_gemm(ctx, &dw, &dz, &n->h[l], DS_GEMM_TRANS_A, 1.0f, 0.0f), "gemm dW");
      ok(ds_optimizer_step(n->opt, wname[l], n->dw), "step");
    }
    ok(ds_optimizer_step(n->opt, bname[l], n->db), "step");
    dz = dh;
  }
  return loss;
}

/* This thread's CPU time: the step runs on this one thread (OpenBLAS pinned to one), so it
 * is the step's cost even when other processes share the cores, which wall time is not. */
static double cpu_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median step time (wall and CPU) of each net, the nets' steps interleaved so a change of
 * machine load hits all of them alike (the first step of each is a warm-up). */
static void time_nets(net **nets, int n, double *ms, double *cpu_ms, float (*loss)[REPS + 1]) {
  double t[3][REPS], c[3][REPS];
  for (int k = 0; k < n; k++) loss[k][0] = net_step(nets[k]);
  for (int r = 0; r < REPS; r++)
    for (int k = 0; k < n; k++) {
      double t0 = bench_now_s(), c0 = cpu_now_s();
      loss[k][r + 1] = net_step(nets[k]);
      c[k][r] = cpu_now_s() - c0;
      t[k][r] = bench_now_s() - t0;
    }
  for (int k = 0; k < n; k++) {
    ms[k] = bench_median(t[k], REPS) * 1e3;
    cpu_ms[k] = bench_median(c[k], REPS) * 1e3;
    ds_optimizer_memory m = {.struct_size = sizeof(ds_optimizer_memory)};
    ds_optimizer_memory_get(nets[k]->opt, &m);
    nets[k]->bytes.scratch =
        (uint64_t)(mem_stat(nets[k]->ctx, "core.mem.peak_bytes") - nets[k]->live0) -
        m.total_bytes;
  }
}

/* Prints each net's loss per step; 1 when a 16-bit net's loss is not finite or its drop
 * over the steps differs from fp32's by more than 25% (the loss itself moves little in 8
 * steps, so comparing losses would hide a broken update). */
static int loss_curve(float (*loss)[REPS + 1]) {
  int bad = 0;
  printf("# loss per step (fp32 / mixed / act16):");
  for (int s = 0; s <= REPS; s++) {
    printf(" %.5f/%.5f/%.5f", loss[0][s], loss[1][s], loss[2][s]);
    for (int k = 1; k < 3; k++) bad |= !isfinite(loss[k][s]);
  }
  float d32 = loss[0][0] - loss[0][REPS];
  for (int k = 1; k < 3; k++) bad |= !(fabsf(loss[k][0] - loss[k][REPS] - d32) <= 0.25f * d32);
  printf("\n# loss drop over %d steps: fp32 %.5f, mixed %.5f, act16 %.5f\n", REPS, d32,
         loss[1][0] - loss[1][REPS], loss[2][0] - loss[2][REPS]);
  if (bad)
    fprintf(stderr, "bench_precision_mlp: a 16-bit loss drop left fp32's by more than 25%%\n");
  return bad;
}

/* Everything the step holds: optimiser, buffers and the library's scratch. */
static uint64_t total(const net *n, const ds_optimizer_memory *m) {
  return m->total_bytes + n->bytes.act[0] + n->bytes.act[1] + n->bytes.act[2] + n->bytes.grad +
         n->bytes.scratch;
}

static void print_bytes(const char *name, const net *n, const ds_optimizer_memory *m) {
  unsigned long long v[] = {m->total_bytes,   m->master_bytes,   m->state_bytes,
                            m->working_bytes, m->scratch_bytes,  m->f32_bytes,
                            m->bf16_bytes,    m->low16_bytes,    n->bytes.act[0],
                            n->bytes.act[1] + n->bytes.act[2],  n->bytes.grad,
                            n->bytes.scratch, total(n, m)};
  printf("# %-5s bytes: optimiser %llu (masters %llu, state %llu, separate working copies %llu,"
         " gradient tile %llu; by dtype f32 %llu, bf16 %llu, low halves %llu); activations+their"
         " grads fp32 %llu, 16-bit %llu; weight+bias gradient buffers %llu; library scratch at its peak %llu;"
         " total %llu\n", name, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10],
         v[11], v[12]);
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--batch")) B = atoll(argv[i + 1]);
    if (!strcmp(argv[i], "--opt")) adamw = !strcmp(argv[i + 1], "adamw");
  }
  if (B < 1 || B > 65536) B = 256;
  openblas_set_num_threads(1);
  net f32, mixed, act16;
  net_init(&f32, DS_DTYPE_F32, DS_DTYPE_F32);
  net_init(&mixed, DS_DTYPE_BF16, DS_DTYPE_BF16);
  net_init(&act16, DS_DTYPE_F32, DS_DTYPE_BF16);
  net *nets[3] = {&f32, &mixed, &act16};
  double ms[3], cpu[3];
  float loss[3][REPS + 1];
  time_nets(nets, 3, ms, cpu, loss);
  /* after the steps: the tiles are allocated then */
  ds_optimizer_memory m32 = {.struct_size = sizeof(ds_optimizer_memory)};
  ds_optimizer_memory mmx = {.struct_size = sizeof(ds_optimizer_memory)};
  ds_optimizer_memory m16 = {.struct_size = sizeof(ds_optimizer_memory)};
  ds_optimizer_memory_get(f32.opt, &m32);
  ds_optimizer_memory_get(mixed.opt, &mmx);
  ds_optimizer_memory_get(act16.opt, &m16);
  double t32 = ms[0], tmx = ms[1], t16 = ms[2];
  float l32 = loss[0][0], lmx = loss[1][0], l16 = loss[2][0];
  printf("# one thread, batch %lld, %s; step fp32 %.1f ms, mixed (bf16 weights) %.1f ms, "
         "act16 (fp32 weights) %.1f ms (CPU time %.1f / %.1f / %.1f ms); first-step loss "
         "%.5f / %.5f / %.5f\n", (long long)B, adamw ? "AdamW" : "SGD-momentum", t32, tmx, t16,
         cpu[0], cpu[1], cpu[2], l32, lmx, l16);
  uint64_t b32 = total(&f32, &m32), bmx = total(&mixed, &mmx), b16 = total(&act16, &m16);
  uint64_t a32 = f32.bytes.act[0], amx = mixed.bytes.act[0] + mixed.bytes.act[2];
  const char *o = adamw ? "adamw" : "sgd";
  char c[7][48];
  snprintf(c[0], 48, "step_time_mixed_%s", o), snprintf(c[1], 48, "step_time_act16_%s", o);
  snprintf(c[2], 48, "bytes_mixed_%s", o), snprintf(c[3], 48, "bytes_act16_%s", o);
  snprintf(c[4], 48, "activation_bytes_mixed_%s", o);
  snprintf(c[5], 48, "cpu_time_mixed_%s", o), snprintf(c[6], 48, "cpu_time_act16_%s", o);
  bench_row rows[] = {
      {"bench_precision_mlp", c[0], "speedup", t32 / tmx, "fp32 step = 1", 1.0, 1.5, "higher"},
      {"bench_precision_mlp", c[1], "speedup", t32 / t16, "fp32 step = 1", 1.0, 1.5, "higher"},
      {"bench_precision_mlp", c[5], "speedup", cpu[0] / cpu[1], "fp32 CPU time = 1", 1.0, 1.5,
       "higher"},
      {"bench_precision_mlp", c[6], "speedup", cpu[0] / cpu[2], "fp32 CPU time = 1", 1.0, 1.5,
       "higher"},
      {"bench_precision_mlp", c[2], "bytes", (double)bmx, "fp32 bytes", (double)b32, 0.65,
       "lower"},
      {"bench_precision_mlp", c[3], "bytes", (double)b16, "fp32 bytes", (double)b32, 0.65,
       "lower"},
      {"bench_precision_mlp", c[4], "bytes", (double)amx, "fp32 activation bytes", (double)a32,
       0.65, "lower"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) bench_print(&rows[i], json, &header);
  print_bytes("fp32", &f32, &m32);
  print_bytes("mixed", &mixed, &mmx);
  print_bytes("act16", &act16, &m16);
  int bad = loss_curve(loss);
  net_free(&f32);
  net_free(&mixed);
  net_free(&act16);
  return bad;
}
