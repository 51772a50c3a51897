/* Buffer transfer bandwidth through the fabric's MPI transport (rank 1 fetches a buffer that
 * rank 0 owns, flushing its copy before each fetch) against raw MPI of the same bytes in the
 * same run: the same pull done by hand (a small MPI_Send request, then MPI_Send/MPI_Recv of the
 * data) and a one-way stream of MPI_Send/MPI_Recv. Sizes 4 KiB .. 64 MiB, median of 5
 * repetitions, interleaved. Run: mpirun -np 2 bench_fabric_mpi_transfer [--json] [--quick] */
#include "bench_common.h"

#ifdef DS_BENCH_NO_MPI
int main(void) {
  printf("bench_fabric_mpi_transfer: skipped (this build has no MPI: libopenmpi-dev)\n");
  return 0;
}
#else
#include <mpi.h>

enum { REPS = 5 };

static int iters_for(size_t n) {
  if (n <= (64u << 10)) return 400;
  if (n <= (1u << 20)) return 100;
  if (n <= (16u << 20)) return 12;
  return 4;
}

/* Rank 1's time for iters pulls of n bytes by hand; rank 0 serves them. */
static double raw_pull(int rank, char *buf, size_t n, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = bench_now_s();
  int req = 0;
  for (int i = 0; i < iters; i++) {
    if (rank == 1) {
      MPI_Send(&req, 1, MPI_INT, 0, 7, MPI_COMM_WORLD);
      MPI_Recv(buf, (int)n, MPI_BYTE, 0, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == 0) {
      MPI_Recv(&req, 1, MPI_INT, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf, (int)n, MPI_BYTE, 1, 8, MPI_COMM_WORLD);
    }
  }
  return bench_now_s() - t0;
}

/* Rank 1's time to receive iters messages of n bytes that rank 0 streams (plus one ack). */
static double raw_stream(int rank, char *buf, size_t n, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = bench_now_s();
  int ack = 0;
  for (int i = 0; i < iters; i++) {
    if (rank == 0) MPI_Send(buf, (int)n, MPI_BYTE, 1, 9, MPI_COMM_WORLD);
    if (rank == 1) MPI_Recv(buf, (int)n, MPI_BYTE, 0, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  if (rank == 1) MPI_Send(&ack, 1, MPI_INT, 0, 10, MPI_COMM_WORLD);
  if (rank == 0) MPI_Recv(&ack, 1, MPI_INT, 1, 10, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return bench_now_s() - t0;
}

/* Rank 1's time for iters fetches of buffer id through the library. */
/* Synchronises through the library (MPI_Barrier would poll busily beside the progress thread). */
static void ours_sync(ds_mpi *m) {
  static uint64_t ts;
  ds_mpi_barrier_arrive(m, ++ts);
  if (ds_mpi_barrier_wait(m, ts, -1) != DS_OK) MPI_Abort(MPI_COMM_WORLD, 1);
}

static double ours_fetch(ds_mpi *m, int rank, uint64_t id, int iters) {
  ours_sync(m);
  double t0 = bench_now_s();
  for (int i = 0; rank == 1 && i < iters; i++) {
    const void *p = NULL;
    ds_mpi_buffer_flush(m, id);
    if (ds_mpi_buffer_fetch(m, id, &p, -1) != DS_OK) {
      fprintf(stderr, "fetch failed: %s\n", ds_context_last_error(NULL));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  double t = bench_now_s() - t0;
  ours_sync(m); /* rank 0 serves meanwhile (its progress thread) */
  return t;
}

static void row(int json, int *hdr, const char *case_name, double ours, const char *anchor,
                double anchor_v) {
  bench_row r = {"fabric_mpi_xfer", case_name, "GB/s", ours, anchor, anchor_v, 0.9, "higher"};
  bench_print(&r, json, hdr);
}

static void run_size(ds_mpi *m, int rank, size_t n, uint64_t id, int json, int *hdr) {
  char *buf = malloc(n);
  memset(buf, rank + 1, n);
  ds_mpi_buffer_register(m, id, 0, rank == 0 ? buf : NULL, n);
  int iters = iters_for(n);
  double pull[REPS], stream[REPS], ours[REPS];
  for (int r = 0; r < REPS; r++) {
    pull[r] = raw_pull(rank, buf, n, iters);
    ours[r] = ours_fetch(m, rank, id, iters);
    stream[r] = raw_stream(rank, buf, n, iters);
  }
  double bytes = (double)n * iters / 1e9;
  double gp = bytes / bench_median(pull, REPS), gs = bytes / bench_median(stream, REPS);
  double go = bytes / bench_median(ours, REPS);
  if (rank == 1) {
    char c[48];
    if (n >= (1u << 20))
      snprintf(c, sizeof c, "fetch %zu MiB", n >> 20);
    else
      snprintf(c, sizeof c, "fetch %zu KiB", n >> 10);
    row(json, hdr, c, go, "raw pull (req+Send/Recv)", gp);
    row(json, hdr, c, go, "raw one-way Send/Recv", gs);
    fflush(stdout);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  ds_mpi_buffer_unregister(m, id);
  free(buf);
}

int main(int argc, char **argv) {
  int level = 0, rank = 0, size = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &level);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2 || level < MPI_THREAD_MULTIPLE) {
    if (rank == 0)
      printf("bench_fabric_mpi_transfer: needs 2 ranks and MPI_THREAD_MULTIPLE (the raw anchor "
             "runs beside the progress thread): mpirun -np 2 %s\n", argv[0]);
    MPI_Finalize();
    return 0;
  }
  int json = bench_json_mode(argc, argv), quick = 0, hdr = 0;
  for (int i = 1; i < argc; i++) quick |= !strcmp(argv[i], "--quick");
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 1}};
  ds_context *ctx = bench_context("bench_fabric_mpi_transfer", pv, 1);
  ds_mpi *m = NULL;
  if (ds_mpi_create(&m, ctx, NULL) != DS_OK) {
    fprintf(stderr, "ds_mpi_create: %s\n", ds_context_last_error(ctx));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const size_t sizes[] = {4u << 10, 64u << 10, 1u << 20, 16u << 20, 64u << 20};
  int nsizes = quick ? 3 : 5;
  for (int i = 0; i < nsizes; i++) run_size(m, rank, sizes[i], 100 + (uint64_t)i, json, &hdr);
  ds_mpi_destroy(m);
  ds_context_destroy(ctx);
  MPI_Finalize();
  return 0;
}
#endif
