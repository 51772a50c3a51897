/* Buffer transfer bandwidth through the fabric's MPI transport against raw MPI of the same
 * bytes and the same messages, in the same run, each timed on rank 1 the same way:
 *  - "push": rank 0 (the owner) ds_mpi_buffer_send()s the buffer, rank 1 ds_mpi_buffer_recv()s
 *    it (one data message each, no request), vs the raw one-way stream MPI_Send/MPI_Recv;
 *  - "fetch": rank 1 flushes its copy and ds_mpi_buffer_fetch()es it (a request to the owner,
 *    whose progress thread answers with the data), vs the same pull by hand (a small MPI_Send
 *    request, then MPI_Send/MPI_Recv of the data).
 * Each timing: iters transfers after an MPI_Barrier, then an ack from rank 1 (so rank 1's time
 * covers every transfer): a one-int MPI_Send, or for fetches an arrival at the endpoint's
 * barrier, on which rank 0 sleeps while its progress thread serves. Sizes 4 KiB .. 64 MiB; 7 repetitions of up to 8 blocks,
 * anchor and ours alternating block by block (which goes first alternates too); medians of
 * the repetitions.
 * Run: mpirun -np 2 bench_fabric_mpi_transfer [--json] [--quick] */
#include "bench_common.h"

#ifdef DS_BENCH_NO_MPI
int main(void) {
  printf("bench_fabric_mpi_transfer: skipped (this build has no MPI: libopenmpi-dev)\n");
  return 0;
}
#else
#include <mpi.h>
#include <time.h>

enum { REPS = 7 };

/* Transfers per timing: about 20-100 ms of data each, so that one descheduling on a loaded
 * machine moves a timing by little. */
static int iters_for(size_t n) {
  if (n <= (4u << 10)) return 4000;
  if (n <= (64u << 10)) return 2000;
  if (n <= (1u << 20)) return 200;
  if (n <= (16u << 20)) return 16;
  return 4;
}

/* Rank 1 tells rank 0 it is done (the last message of every timing). */
static void ack(int rank) {
  int a = 0;
  if (rank == 1) MPI_Send(&a, 1, MPI_INT, 0, 10, MPI_COMM_WORLD);
  if (rank == 0) MPI_Recv(&a, 1, MPI_INT, 1, 10, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
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
  ack(rank);
  return bench_now_s() - t0;
}

/* Rank 1's time to receive iters messages of n bytes that rank 0 streams (plus one ack). */
static double raw_stream(int rank, char *buf, size_t n, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = bench_now_s();
  for (int i = 0; i < iters; i++) {
    if (rank == 0) MPI_Send(buf, (int)n, MPI_BYTE, 1, 9, MPI_COMM_WORLD);
    if (rank == 1) MPI_Recv(buf, (int)n, MPI_BYTE, 0, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  ack(rank);
  return bench_now_s() - t0;
}

static void fail(const char *what) {
  fprintf(stderr, "%s failed: %s\n", what, ds_context_last_error(NULL));
  MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Rank 1's time to receive iters pushes of buffer id from rank 0 (plus the ack). */
static double ours_push(ds_mpi *m, int rank, uint64_t id, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = bench_now_s();
  for (int i = 0; i < iters; i++) {
    const void *p = NULL;
    if (rank == 0 && ds_mpi_buffer_send(m, id, 1, -1) != DS_OK) fail("ds_mpi_buffer_send");
    if (rank == 1 && ds_mpi_buffer_recv(m, id, &p, -1) != DS_OK) fail("ds_mpi_buffer_recv");
  }
  ack(rank);
  return bench_now_s() - t0;
}

/* Rank 0 waits for the ack asleep: its progress thread, not its main thread, serves the
 * fetches, and on a machine with few cores a spinning MPI_Recv would take its core (and a
 * thread polling with short naps would preempt the progress thread at each of them). The ack
 * is an arrival at the endpoint's barrier, on which rank 0 sleeps until its progress thread
 * receives it; rank 1 only arrives. */
static void ack_idle(ds_mpi *m, int rank) {
  static uint64_t ts;
  ds_mpi_barrier_arrive(m, ++ts);
  if (rank == 0 && ds_mpi_barrier_wait(m, ts, -1) != DS_OK) fail("ds_mpi_barrier_wait");
}

/* Rank 1's time for iters fetches of buffer id (rank 0's progress thread serves them). */
static double ours_fetch(ds_mpi *m, int rank, uint64_t id, int iters) {
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = bench_now_s();
  for (int i = 0; rank == 1 && i < iters; i++) {
    const void *p = NULL;
    ds_mpi_buffer_flush(m, id);
    if (ds_mpi_buffer_fetch(m, id, &p, -1) != DS_OK) fail("ds_mpi_buffer_fetch");
  }
  ack_idle(m, rank);
  return bench_now_s() - t0;
}

static void row(int json, int *hdr, const char *case_name, double ours, const char *anchor,
                double anchor_v) {
  bench_row r = {"fabric_mpi_xfer", case_name, "GB/s", ours, anchor, anchor_v, 0.9, "higher"};
  bench_print(&r, json, hdr);
}

static void case_name(char *c, size_t cap, const char *what, size_t n) {
  if (n >= (1u << 20))
    snprintf(c, cap, "%s %zu MiB", what, n >> 20);
  else
    snprintf(c, cap, "%s %zu KiB", what, n >> 10);
}

static void run_size(ds_mpi *m, int rank, size_t n, uint64_t id, int json, int *hdr) {
  char *buf = malloc(n), *land = malloc(n); /* both touched: no first-touch faults timed */
  memset(buf, rank + 1, n);
  memset(land, 0, n);
  if (ds_mpi_buffer_register(m, id, 0, rank == 0 ? buf : land, n) != DS_OK)
    fail("ds_mpi_buffer_register");
  int iters = iters_for(n), blocks = iters >= 64 ? 8 : 1, per = iters / blocks;
  iters = per * blocks;
  double pull[REPS] = {0}, stream[REPS] = {0}, fetch[REPS] = {0}, push[REPS] = {0};
  /* Each repetition is made of blocks, anchor and ours alternating block by block (and which
   * goes first alternating too), so that both see the same background load. */
  for (int r = 0; r < REPS; r++)
    for (int k = 0; k < blocks; k++) {
      if ((r + k) % 2) {
        fetch[r] += ours_fetch(m, rank, id, per);
        pull[r] += raw_pull(rank, buf, n, per);
        push[r] += ours_push(m, rank, id, per);
        stream[r] += raw_stream(rank, buf, n, per);
      } else {
        pull[r] += raw_pull(rank, buf, n, per);
        fetch[r] += ours_fetch(m, rank, id, per);
        stream[r] += raw_stream(rank, buf, n, per);
        push[r] += ours_push(m, rank, id, per);
      }
    }
  double bytes = (double)n * iters / 1e9;
  double gp = bytes / bench_median(pull, REPS), gs = bytes / bench_median(stream, REPS);
  double gf = bytes / bench_median(fetch, REPS), gu = bytes / bench_median(push, REPS);
  if (rank == 1) {
    char c[48];
    case_name(c, sizeof c, "push", n);
    row(json, hdr, c, gu, "raw one-way Send/Recv", gs);
    case_name(c, sizeof c, "fetch", n);
    row(json, hdr, c, gf, "raw pull (req+Send/Recv)", gp);
    fflush(stdout);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  ds_mpi_buffer_unregister(m, id);
  free(buf);
  free(land);
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
