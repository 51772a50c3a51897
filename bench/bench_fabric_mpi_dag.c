/* The fabric's tiled DAG across MPI ranks: C += A*B with NT x NT tiles of TS x TS floats, one
 * graph node per (i, j, k), every tile a fabric buffer attached to the MPI endpoint and owned
 * block-cyclically (tile (r, c) on rank (r + c) % ranks). ds_mpi_graph_run places each node on
 * the owner of the C tile it writes and moves the A and B tiles it needs. Timed on rank 0 from
 * a barrier before the run to a barrier after it, against the same DAG run by ds_graph_run on
 * rank 0 alone, with the same workers per rank and with as many workers as all ranks have
 * together. The distributed C (fetched tile by tile on rank 0) is checked against the
 * single-rank result. Medians of --reps runs (default 5) after one warm-up.
 * Run: mpirun -np 2 bench_fabric_mpi_dag [--json] [--tiles N] [--tile-size N] [--workers N]
 *      [--mpi-spin-us N] (the progress threads' polling after activity; default the tunable's) */
#include "bench_common.h"

#ifdef DS_BENCH_NO_MPI
int main(void) {
  printf("bench_fabric_mpi_dag: skipped (this build has no MPI: libopenmpi-dev)\n");
  return 0;
}
#else
#include <math.h>
#include <mpi.h>

static int NT = 4, TS = 128, REPS = 5, WORKERS = 1, SPIN_US = -1;

static ds_status tile_gemm(void *const *bufs, const size_t *sizes, size_t nbufs,
                           const void *args, size_t args_len) {
  (void)sizes, (void)args, (void)args_len;
  if (nbufs != 3) return DS_ERR_INVALID_ARG;
  const float *restrict a = bufs[0], *restrict b = bufs[1];
  float *restrict c = bufs[2];
  int n = TS;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < n; k++) {
      float x = a[i * n + k];
      for (int j = 0; j < n; j++) c[i * n + j] += x * b[k * n + j];
    }
  return DS_OK;
}

static void die(const char *what, ds_context *ctx) {
  fprintf(stderr, "bench_fabric_mpi_dag: %s: %s\n", what, ds_context_last_error(ctx));
  MPI_Abort(MPI_COMM_WORLD, 1);
}

/* One set of tiles and the DAG over them. */
typedef struct dag {
  ds_context *ctx;
  ds_kernel *k;
  ds_buffer **a, **b, **c;
  ds_graph *g;
  int32_t cpu;
} dag;

static float value_of(int which, int r, int c, int i, int j) {
  unsigned s = (unsigned)(which * 7919 + r * 131 + c * 17 + i * 3 + j * 5);
  s = s * 1103515245u + 12345u;
  return (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void fill(dag *d, ds_buffer *buf, int which, int r, int c, int garbage) {
  float *p = NULL;
  if (ds_buffer_acquire((void **)&p, buf, d->cpu, DS_ACCESS_WRITE) != DS_OK) die("acquire", d->ctx);
  for (int i = 0; i < TS; i++)
    for (int j = 0; j < TS; j++)
      p[i * TS + j] = garbage ? NAN : which == 2 ? 0.0f : value_of(which, r, c, i, j);
  ds_buffer_release(buf, d->cpu);
}

static int owner(int r, int c, int size) { return (r + c) % size; }

/* Builds the tiles and the DAG. With m: tiles attached (ids 1000/2000/3000 + index), owners'
 * A and B tiles filled and other ranks' copies poisoned (a missing transfer shows as NaN). */
static void dag_build(dag *d, ds_context *ctx, ds_mpi *m) {
  int nt2 = NT * NT, rank = m ? ds_mpi_rank(m) : 0, size = m ? ds_mpi_size(m) : 1;
  size_t bytes = (size_t)TS * (size_t)TS * sizeof(float);
  d->ctx = ctx;
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "tile_gemm";
  ko.cpu = tile_gemm;
  if (ds_kernel_create(&d->k, ctx, &ko) != DS_OK) die("kernel", ctx);
  if (ds_fabric_device_find(&d->cpu, ctx, DS_FABRIC_DEVICE_CPU, 0) != DS_OK) die("cpu", ctx);
  d->a = calloc((size_t)nt2, sizeof *d->a);
  d->b = calloc((size_t)nt2, sizeof *d->b);
  d->c = calloc((size_t)nt2, sizeof *d->c);
  for (int t = 0; t < nt2; t++) {
    int r = t / NT, c = t % NT, own = owner(r, c, size) == rank;
    if (ds_buffer_create(&d->a[t], ctx, bytes, NULL) != DS_OK ||
        ds_buffer_create(&d->b[t], ctx, bytes, NULL) != DS_OK ||
        ds_buffer_create(&d->c[t], ctx, bytes, NULL) != DS_OK)
      die("buffers", ctx);
    fill(d, d->a[t], 0, r, c, !own);
    fill(d, d->b[t], 1, r, c, !own);
    if (m && (ds_mpi_buffer_attach(m, 1000 + (uint64_t)t, owner(r, c, size), d->a[t]) != DS_OK ||
              ds_mpi_buffer_attach(m, 2000 + (uint64_t)t, owner(r, c, size), d->b[t]) != DS_OK ||
              ds_mpi_buffer_attach(m, 3000 + (uint64_t)t, owner(r, c, size), d->c[t]) != DS_OK))
      die("attach", ctx);
  }
  if (ds_graph_create(&d->g, ctx) != DS_OK) die("graph", ctx);
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++)
      for (int k = 0; k < NT; k++) {
        ds_graph_access acc[3] = {{d->a[i * NT + k], DS_ACCESS_READ},
                                  {d->b[k * NT + j], DS_ACCESS_READ},
                                  {d->c[i * NT + j], DS_ACCESS_RW}};
        if (ds_graph_add(NULL, d->g, d->k, acc, 3, NULL) != DS_OK) die("graph add", ctx);
      }
}

static void dag_free(dag *d, ds_mpi *m) {
  ds_graph_destroy(d->g);
  for (int t = 0; t < NT * NT; t++) {
    if (m) {
      ds_mpi_buffer_unregister(m, 1000 + (uint64_t)t);
      ds_mpi_buffer_unregister(m, 2000 + (uint64_t)t);
      ds_mpi_buffer_unregister(m, 3000 + (uint64_t)t);
    }
    ds_buffer_destroy(d->a[t]);
    ds_buffer_destroy(d->b[t]);
    ds_buffer_destroy(d->c[t]);
  }
  free(d->a);
  free(d->b);
  free(d->c);
  ds_kernel_destroy(d->k);
}

/* Zeroes the C tiles this rank owns (all of them without m). */
static void reset_c(dag *d, ds_mpi *m) {
  int rank = m ? ds_mpi_rank(m) : 0, size = m ? ds_mpi_size(m) : 1;
  for (int t = 0; t < NT * NT; t++)
    if (owner(t / NT, t % NT, size) == rank) fill(d, d->c[t], 2, 0, 0, 0);
}

static void sync_ranks(ds_mpi *m) { /* through the library: see docs/mpi.md */
  static uint64_t ts;
  ds_mpi_barrier_arrive(m, ++ts);
  if (ds_mpi_barrier_wait(m, ts, -1) != DS_OK) die("barrier", NULL);
}

static ds_plan_options cpu_plan(dag *d) {
  ds_plan_options po = DS_PLAN_OPTIONS_INIT;
  po.policy = DS_PLAN_DEVICE; /* the CPU only: the ranks' OpenCL devices share these cores */
  po.device = d->cpu;
  return po;
}

/* Rank 0's time for the whole DAG on rank 0 alone (other ranks wait at the barrier). */
static double time_single(ds_mpi *m, dag *d) {
  if (ds_mpi_rank(m) == 0) reset_c(d, NULL);
  sync_ranks(m);
  double t0 = bench_now_s();
  if (ds_mpi_rank(m) == 0) {
    ds_plan_options po = cpu_plan(d);
    ds_plan *p = NULL;
    if (ds_graph_plan(&p, d->g, &po) != DS_OK || ds_graph_run(d->g, p, NULL) != DS_OK)
      die("single-rank run", d->ctx);
    ds_plan_destroy(p);
  }
  sync_ranks(m);
  return bench_now_s() - t0;
}

static double time_distributed(ds_mpi *m, dag *d, ds_mpi_graph_info *info) {
  reset_c(d, m);
  sync_ranks(m);
  double t0 = bench_now_s();
  ds_plan_options po = cpu_plan(d);
  ds_mpi_graph_options go = DS_MPI_GRAPH_OPTIONS_INIT;
  go.plan = &po;
  if (ds_mpi_graph_run(m, d->g, &go, info) != DS_OK) die("distributed run", d->ctx);
  sync_ranks(m);
  return bench_now_s() - t0;
}

/* Rank 0: largest |C - C_single| over max |C_single|, fetching other ranks' tiles. */
static double check(ds_mpi *m, dag *dist, dag *single) {
  double err = 0, mag = 1e-30;
  size_t n = (size_t)TS * (size_t)TS;
  for (int t = 0; t < NT * NT; t++) {
    const float *x = NULL, *ref = NULL;
    if (ds_mpi_buffer_fetch(m, 3000 + (uint64_t)t, (const void **)&x, -1) != DS_OK)
      die("fetch", dist->ctx);
    if (ds_buffer_acquire((void **)&ref, single->c[t], single->cpu, DS_ACCESS_READ) != DS_OK)
      die("acquire", single->ctx);
    for (size_t i = 0; i < n; i++) {
      double e = fabs((double)x[i] - (double)ref[i]);
      if (!(e <= err)) err = isnan(e) ? INFINITY : e;
      if (fabs((double)ref[i]) > mag) mag = fabs((double)ref[i]);
    }
    ds_buffer_release(single->c[t], single->cpu);
  }
  return err / mag;
}

static void parse(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--tiles")) NT = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--tile-size")) TS = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--reps")) REPS = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--workers")) WORKERS = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--mpi-spin-us")) SPIN_US = atoi(argv[i + 1]);
  }
  if (NT < 1 || TS < 1 || REPS < 1 || REPS > 50 || WORKERS < 1) {
    fprintf(stderr, "bench_fabric_mpi_dag: bad options\n");
    exit(2);
  }
}

static ds_context *make_ctx(int workers) {
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, workers}, {DS_PARAM_SCHED_BIND, 0, 0},
                         {DS_PARAM_MPI_SPIN_US, 0, SPIN_US}};
  return bench_context("bench_fabric_mpi_dag", pv, SPIN_US >= 0 ? 3 : 2);
}

int main(int argc, char **argv) {
  int level = 0, rank = 0, size = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  parse(argc, argv);
  int json = bench_json_mode(argc, argv), hdr = 0;
  ds_context *ctx = make_ctx(WORKERS), *ctx_all = rank == 0 ? make_ctx(WORKERS * size) : NULL;
  ds_mpi *m = NULL;
  if (ds_mpi_create(&m, ctx, NULL) != DS_OK) die("ds_mpi_create", ctx);
  dag dist, single, single_all;
  dag_build(&dist, ctx, m);
  if (rank == 0) {
    dag_build(&single, ctx, NULL);
    dag_build(&single_all, ctx_all, NULL);
  }
  double td[50], t1[50], ta[50];
  ds_mpi_graph_info info = {sizeof info, 0, 0, 0, 0, 0, 0.0};
  for (int r = -1; r < REPS; r++) { /* r = -1: warm-up */
    double a = time_distributed(m, &dist, &info);
    double b = time_single(m, &single);
    double c = 0;
    sync_ranks(m);
    if (rank == 0) {
      reset_c(&single_all, NULL);
      double t0 = bench_now_s();
      ds_plan_options po = cpu_plan(&single_all);
      ds_plan *p = NULL;
      if (ds_graph_plan(&p, single_all.g, &po) != DS_OK || ds_graph_run(single_all.g, p, NULL) != DS_OK)
        die("single-rank run", ctx_all);
      ds_plan_destroy(p);
      c = bench_now_s() - t0;
    }
    sync_ranks(m);
    if (r >= 0) td[r] = a, t1[r] = b, ta[r] = c;
  }
  double err = rank == 0 ? check(m, &dist, &single) : 0;
  sync_ranks(m); /* the owners serve the fetches meanwhile */
  printf("rank %d: ran %u of %d nodes, %u sends (%.1f MiB), %u receives (%.1f MiB)\n", rank,
         info.nodes_here, NT * NT * NT, info.sends, (double)info.bytes_sent / 1048576.0,
         info.recvs, (double)info.bytes_received / 1048576.0);
  fflush(stdout);
  sync_ranks(m);
  if (rank == 0) {
    char c1[64], c2[64], a1[64], a2[64];
    snprintf(c1, sizeof c1, "gemm %dx%d tiles of %d, %d ranks", NT, NT, TS, size);
    snprintf(c2, sizeof c2, "%s", c1);
    snprintf(a1, sizeof a1, "1 rank, %d worker(s)", WORKERS);
    snprintf(a2, sizeof a2, "1 rank, %d worker(s)", WORKERS * size);
    double md = bench_median(td, REPS), m1 = bench_median(t1, REPS), ma = bench_median(ta, REPS);
    bench_row r1 = {"fabric_mpi_dag", c1, "seconds", md, a1, m1, 1.0 / size, "lower"};
    bench_row r2 = {"fabric_mpi_dag", c2, "seconds", md, a2, ma, 1.0, "lower"};
    bench_print(&r1, json, &hdr);
    bench_print(&r2, json, &hdr);
    if (!json) printf("check: max |C - C_1rank| / max |C_1rank| = %.3g (%s)\n", err,
                      err <= 1e-5 ? "ok" : "WRONG");
    if (!(err <= 1e-5)) MPI_Abort(MPI_COMM_WORLD, 1);
    dag_free(&single, NULL);
    dag_free(&single_all, NULL);
  }
  sync_ranks(m);
  dag_free(&dist, m);
  ds_mpi_destroy(m);
  ds_context_destroy(ctx);
  ds_context_destroy(ctx_all);
  MPI_Finalize();
  return 0;
}
#endif
