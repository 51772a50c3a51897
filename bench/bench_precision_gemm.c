/* bench_precision_gemm: ds_gemm against its anchors in the same run, all on one thread
 * (OpenBLAS and oneDNN pinned to 1; the machine is shared), GFLOP/s, median of 5:
 *  - fp32 n^3 vs cblas_sgemm (goal >= 0.95x);
 *  - bf16 n^3 (bf16 in, fp32 out) vs oneDNN matmul called directly (>= 0.95x), and vs our fp32
 *    (reported; ~1.9x expected on AVX512-BF16 CPUs, below 1 where oneDNN has no bf16 kernel);
 *  - M = 1..64 x [4096 x 4096] weights stored [N, K] in bf16/fp16 vs cblas_sgemv (M = 1)
 *    or cblas_sgemm with the same weights in fp32 (goal >= 1.6x: half the bytes); ds_gemm
 *    takes the skinny kernel up to DS_PARAM_PRECISION_SKINNY_MAX_M (default 32), widening
 *    above, and the rows say which.
 * usage: bench_precision_gemm [--json] [--n N]   */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <deepseek.h>
#include <dnnl.h>
#include <stdint.h>
#ifdef DS_BENCH_HAVE_OPENMP
#include <omp.h>
#endif

#include "bench_common.h"

#define REPS 5

extern void openblas_set_num_threads(int n);

static ds_context *ctx;
static int json, header;

static void fill(float *p, size_t n) {
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) s = s * 1664525u + 1013904223u, p[i] = (float)(s >> 8) * 0x1p-24f - 0.5f;
}

static ds_tensor mat(void *data, ds_dtype dt, int64_t r, int64_t c) {
  ds_tensor t;
  int64_t shape[2] = {r, c};
  ds_tensor_init(&t, ctx, data, dt, 2, shape, NULL, (ds_device){DS_DEVICE_CPU, 0});
  return t;
}

typedef void (*run_fn)(void *arg);

static double gflops(run_fn fn, void *arg, double flop) {
  double t[REPS];
  fn(arg); /* warm-up (and primitive creation) */
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now_s();
    fn(arg);
    t[r] = bench_now_s() - t0;
  }
  return flop / bench_median(t, REPS) * 1e-9;
}

typedef struct prob {
  int64_t m, n, k;
  ds_tensor a, b, c;
  uint32_t flags;
  const float *af, *bf;
  float *cf;
  dnnl_primitive_t prim;
  dnnl_stream_t stream;
  dnnl_exec_arg_t args[3];
} prob;

static void run_ours(void *p) {
  prob *q = p;
  if (ds_gemm(ctx, &q->c, &q->a, &q->b, q->flags, 1.0f, 0.0f) != DS_OK) {
    fprintf(stderr, "ds_gemm: %s\n", ds_context_last_error(ctx));
    exit(1);
  }
}
static void run_sgemm(void *p) {
  prob *q = p;
  int tb = (q->flags & DS_GEMM_TRANS_B) != 0;
  if (q->m == 1 && tb)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)q->n, (int)q->k, 1.0f, q->bf, (int)q->k, q->af,
                1, 0.0f, q->cf, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)q->m, (int)q->n,
                (int)q->k, 1.0f, q->af, (int)q->k, q->bf, tb ? (int)q->k : (int)q->n, 0.0f, q->cf,
                (int)q->n);
}
static void run_dnnl(void *p) {
  prob *q = p;
  dnnl_primitive_execute(q->prim, q->stream, 3, q->args);
  dnnl_stream_wait(q->stream);
}

/* oneDNN bf16 x bf16 -> f32 matmul on (a, b, c); 0 when oneDNN cannot make one here. */
static int dnnl_setup(prob *q, dnnl_engine_t eng, void *a, void *b, float *c) {
  dnnl_memory_desc_t md[3];
  dnnl_dims_t da = {q->m, q->k}, db = {q->k, q->n}, dc = {q->m, q->n};
  dnnl_memory_desc_init_by_tag(&md[0], 2, da, dnnl_bf16, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&md[1], 2, db, dnnl_bf16, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&md[2], 2, dc, dnnl_f32, dnnl_ab);
  dnnl_matmul_desc_t d;
  dnnl_primitive_desc_t pd;
  if (dnnl_matmul_desc_init(&d, &md[0], &md[1], NULL, &md[2]) != dnnl_success ||
      dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL) != dnnl_success)
    return 0;
  dnnl_primitive_create(&q->prim, pd);
  dnnl_primitive_desc_destroy(pd);
  dnnl_memory_t m[3];
  void *h[3] = {a, b, c};
  int ids[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
  for (int i = 0; i < 3; i++) {
    dnnl_memory_create(&m[i], &md[i], eng, h[i]);
    q->args[i].arg = ids[i], q->args[i].memory = m[i];
  }
  dnnl_stream_create(&q->stream, eng, dnnl_stream_default_flags);
  return 1;
}

static void row(const char *cs, double ours, const char *anchor, double av, double goal) {
  bench_row r = {"bench_precision_gemm", cs, "GFLOP/s", ours, anchor, av, goal, "higher"};
  bench_print(&r, json, &header);
}

static void square(int64_t n) {
  size_t e = (size_t)(n * n);
  float *a = malloc(e * 4), *b = malloc(e * 4), *c = malloc(e * 4);
  uint16_t *ah = malloc(e * 2), *bh = malloc(e * 2);
  if (!a || !b || !c || !ah || !bh) exit(1);
  fill(a, e), fill(b, e);
  ds_precision_convert(ctx, ah, DS_DTYPE_BF16, a, DS_DTYPE_F32, e);
  ds_precision_convert(ctx, bh, DS_DTYPE_BF16, b, DS_DTYPE_F32, e);
  double flop = 2.0 * (double)n * (double)n * (double)n;
  prob q = {n, n, n, mat(a, DS_DTYPE_F32, n, n), mat(b, DS_DTYPE_F32, n, n),
            mat(c, DS_DTYPE_F32, n, n), 0, a, b, c, NULL, NULL, {{0, NULL}}};
  double f32_ours = gflops(run_ours, &q, flop), f32_blas = gflops(run_sgemm, &q, flop);
  char cs[64];
  snprintf(cs, sizeof cs, "f32_n%lld", (long long)n);
  row(cs, f32_ours, "cblas_sgemm", f32_blas, 0.95);
  q.a = mat(ah, DS_DTYPE_BF16, n, n), q.b = mat(bh, DS_DTYPE_BF16, n, n);
  double bf_ours = gflops(run_ours, &q, flop);
  dnnl_engine_t eng;
  dnnl_engine_create(&eng, dnnl_cpu, 0);
  snprintf(cs, sizeof cs, "bf16_n%lld", (long long)n);
  if (dnnl_setup(&q, eng, ah, bh, c)) {
    row(cs, bf_ours, "oneDNN bf16 matmul", gflops(run_dnnl, &q, flop), 0.95);
    dnnl_primitive_destroy(q.prim);
    dnnl_stream_destroy(q.stream);
    for (int i = 0; i < 3; i++) dnnl_memory_destroy(q.args[i].memory);
  } else {
    printf("# oneDNN has no bf16 matmul on this CPU: bf16 anchor row skipped\n");
  }
  row(cs, bf_ours, "ours f32", f32_ours, 1.0);
  dnnl_engine_destroy(eng);
  free(a), free(b), free(c), free(ah), free(bh);
}

static void skinny(int64_t n, int64_t k) {
  static const int64_t ms[] = {1, 4, 16, 64};
  float *w = malloc((size_t)(n * k) * 4), *x = malloc((size_t)(64 * k) * 4);
  float *y = malloc((size_t)(64 * n) * 4);
  uint16_t *wh = malloc((size_t)(n * k) * 2);
  if (!w || !x || !y || !wh) exit(1);
  fill(w, (size_t)(n * k)), fill(x, (size_t)(64 * k));
  for (int dt = 0; dt < 2; dt++) {
    ds_dtype wt = dt ? DS_DTYPE_F16 : DS_DTYPE_BF16;
    ds_precision_convert(ctx, wh, wt, w, DS_DTYPE_F32, (size_t)(n * k));
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
      int64_t m = ms[i];
      if (dt && m != 1) continue; /* fp16 weights: the bandwidth case only */
      prob q = {m, n, k, mat(x, DS_DTYPE_F32, m, k), mat(wh, wt, n, k), mat(y, DS_DTYPE_F32, m, n),
                DS_GEMM_TRANS_B, x, w, y, NULL, NULL, {{0, NULL}}};
      double flop = 2.0 * (double)(m * n * k);
      char cs[64];
      snprintf(cs, sizeof cs, "w16_m%lld_%s", (long long)m, ds_dtype_name(wt));
      int64_t max_m = 0;
      ds_context_get_param(ctx, DS_PARAM_PRECISION_SKINNY_MAX_M, &max_m);
      if (m > max_m) strncat(cs, "_widened", sizeof cs - strlen(cs) - 1);
      row(cs, gflops(run_ours, &q, flop), m == 1 ? "cblas_sgemv f32 W" : "cblas_sgemm f32 W",
          gflops(run_sgemm, &q, flop), 1.6);
    }
  }
  free(w), free(x), free(y), free(wh);
}

int main(int argc, char **argv) {
  json = bench_json_mode(argc, argv);
  int64_t n = 1024;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--n")) n = atoll(argv[i + 1]);
  openblas_set_num_threads(1);
#ifdef DS_BENCH_HAVE_OPENMP
  omp_set_num_threads(1);
#endif
  ctx = bench_context("bench_precision_gemm", NULL, 0);
  printf("# one thread; CPU kernels: %s\n", ds_precision_isa_name(ds_precision_isa_in_use(ctx)));
  square(n);
  skinny(4096, 4096);
  ds_context_destroy(ctx);
  return 0;
}
