/* fabric_mpi_offload: the same program on every rank (run it with mpirun -np 2 or more).
 * Rank 0 owns a table of numbers; every rank asks for its sum with an owner-computes task (it
 * runs on rank 0, next to the data), fetches a copy of the table (rank 1 then receives a
 * changed table that rank 0 pushes to it), and submits LOW-priority
 * background tasks that the scheduler may migrate to less loaded ranks. Results come back as
 * bytes the task function wrote. Build against libdeepseek; without MPI it says so. */
#include <deepseek.h>
#include <stdio.h>
#include <string.h>

enum { TABLE_ID = 1, N = 4096 };

/* A task function: arguments and result are plain bytes, so it can run on any rank. With an
 * owner-computes submit, call->data is the buffer's memory on its owner. */
static ds_status sum_table(void *user, ds_mpi_call *call) {
  (void)user;
  const int32_t *v = call->data;
  int64_t sum = 0;
  for (size_t i = 0; v && i < call->data_len / sizeof *v; i++) sum += v[i];
  memcpy(call->result, &sum, sizeof sum);
  call->result_len = sizeof sum;
  return DS_OK;
}

static ds_status square(void *user, ds_mpi_call *call) {
  (void)user;
  int64_t x;
  memcpy(&x, call->args, sizeof x);
  int64_t y[2] = {x * x, call->rank}; /* the square, and which rank computed it */
  memcpy(call->result, y, sizeof y);
  call->result_len = sizeof y;
  return DS_OK;
}

int main(void) {
  ds_context *ctx = NULL;
  ds_mpi *m = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;
  if (ds_mpi_create(&m, ctx, NULL) != DS_OK) { /* collective: every rank calls it */
    fprintf(stderr, "%s\n", ds_context_last_error(ctx));
    ds_context_destroy(ctx);
    return 1;
  }
  int rank = ds_mpi_rank(m);
  /* Every rank registers the same names and buffers; only the owner passes memory. */
  static int32_t table[N];
  for (int i = 0; i < N; i++) table[i] = i;
  ds_mpi_task_register(m, "sum_table", sum_table, NULL);
  ds_mpi_task_register(m, "square", square, NULL);
  ds_mpi_buffer_register(m, TABLE_ID, 0, rank == 0 ? table : NULL, sizeof table);
  /* Requests to a rank that has not registered a name yet fail (DS_ERR_NOT_FOUND): wait until
   * every rank has passed timestamp 1, i.e. has registered everything. */
  ds_mpi_barrier_arrive(m, 1);
  ds_mpi_barrier_wait(m, 1, -1);

  /* Owner-computes: runs on rank 0 whichever rank submits it. */
  ds_mpi_submit_options on_owner = DS_MPI_SUBMIT_OPTIONS_INIT;
  on_owner.buffer = TABLE_ID;
  int64_t sum = 0;
  ds_task *t = NULL;
  ds_mpi_task_submit(&t, m, "sum_table", NULL, 0, &sum, sizeof sum, NULL, &on_owner);
  ds_status st = ds_task_wait(t, -1);
  ds_task_release(t);
  printf("rank %d: sum on the owner = %lld (%s)\n", rank, (long long)sum, ds_status_str(st));

  /* A cached copy: transferred once, until flushed. */
  const void *copy = NULL;
  st = ds_mpi_buffer_fetch(m, TABLE_ID, &copy, -1);
  printf("rank %d: copy fetched (%s), last entry %d\n", rank, ds_status_str(st),
         copy ? ((const int32_t *)copy)[N - 1] : -1);

  /* A push: when the owner knows who reads next, it sends and that rank receives (no
   * request, one MPI message: the cost of a hand-written MPI_Send/MPI_Recv). Here rank 0
   * changes the table and pushes it to rank 1, after every rank has passed timestamp 2 (so
   * nobody still reads the old table). */
  ds_mpi_barrier_arrive(m, 2);
  ds_mpi_barrier_wait(m, 2, -1);
  if (ds_mpi_size(m) > 1) {
    if (rank == 0) {
      table[0] = -1;
      st = ds_mpi_buffer_send(m, TABLE_ID, 1, -1);
    } else if (rank == 1) {
      st = ds_mpi_buffer_recv(m, TABLE_ID, &copy, -1);
      printf("rank 1: pushed copy (%s), first entry %d\n", ds_status_str(st),
             copy ? ((const int32_t *)copy)[0] : 0);
    }
  }

  /* Background work: LOW tasks run here unless this rank is overloaded and another is not. */
  ds_task_group *g = NULL;
  ds_task_group_create(&g, ctx);
  ds_task_options low = DS_TASK_OPTIONS_INIT;
  low.prio = DS_PRIO_LOW;
  low.group = g;
  ds_mpi_submit_options anywhere = DS_MPI_SUBMIT_OPTIONS_INIT;
  anywhere.task = &low;
  int64_t out[8][2];
  for (int64_t i = 0; i < 8; i++)
    ds_mpi_task_submit(NULL, m, "square", &i, sizeof i, out[i], sizeof out[i], NULL, &anywhere);
  st = ds_task_group_wait(g, -1);
  ds_task_group_destroy(g);
  for (int i = 0; i < 8; i++)
    printf("rank %d: %d^2 = %lld (computed on rank %lld)\n", rank, i, (long long)out[i][0],
           (long long)out[i][1]);

  ds_mpi_destroy(m); /* collective: waits for the other ranks */
  ds_context_destroy(ctx);
  return st == DS_OK ? 0 : 1;
}
