/* fabric_mpi_graph: one fabric graph run across MPI ranks (mpirun -np 2 or more). Every rank
 * builds the same graph over its own buffers and attaches each buffer under the same id with
 * the same owner rank. ds_mpi_graph_run then runs each node on the rank that owns what it
 * writes (owner-computes) and moves the data it reads from the rank that last wrote it.
 * Here: part[r] = r + 1, doubled on its owner r; then total = the sum of all parts on rank 0. */
#include <deepseek.h>
#include <stdio.h>

enum { N = 1024 }; /* floats per buffer */

static ds_status twice(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                       size_t args_len) {
  (void)nbufs, (void)args, (void)args_len;
  float *x = bufs[0];
  for (size_t i = 0; i < sizes[0] / sizeof *x; i++) x[i] *= 2;
  return DS_OK;
}

static ds_status sum(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                     size_t args_len) { /* the last buffer = the sum of the others */
  (void)args, (void)args_len;
  float *out = bufs[nbufs - 1];
  for (size_t i = 0; i < sizes[0] / sizeof *out; i++) {
    out[i] = 0;
    for (size_t b = 0; b + 1 < nbufs; b++) out[i] += ((const float *)bufs[b])[i];
  }
  return DS_OK;
}

static int check(ds_status st, ds_context *ctx, const char *what) {
  if (st != DS_OK) fprintf(stderr, "%s: %s\n", what, ds_context_last_error(ctx));
  return st == DS_OK;
}

int main(void) {
  ds_context *ctx = NULL;
  ds_mpi *m = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;
  if (!check(ds_mpi_create(&m, ctx, NULL), ctx, "ds_mpi_create")) return ds_context_destroy(ctx), 0;
  int rank = ds_mpi_rank(m), size = ds_mpi_size(m), ok = 1;
  enum { MAXR = 15 };
  if (size > MAXR) size = MAXR; /* keep the example's arrays small: extra ranks just idle */
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ds_kernel *k_twice = NULL, *k_sum = NULL;
  ko.name = "twice", ko.cpu = twice;
  ok &= check(ds_kernel_create(&k_twice, ctx, &ko), ctx, "kernel");
  ko.name = "sum", ko.cpu = sum;
  ok &= check(ds_kernel_create(&k_sum, ctx, &ko), ctx, "kernel");
  /* Buffers: part[r] owned by rank r (only the owner's contents matter), total by rank 0. */
  ds_buffer *part[MAXR] = {0}, *total = NULL;
  int32_t cpu = 0;
  ds_fabric_device_find(&cpu, ctx, DS_FABRIC_DEVICE_CPU, 0);
  for (int r = 0; ok && r < size; r++) {
    float *p = NULL;
    ok &= check(ds_buffer_create(&part[r], ctx, N * sizeof(float), NULL), ctx, "buffer");
    ok = ok && check(ds_buffer_acquire((void **)&p, part[r], cpu, DS_ACCESS_WRITE), ctx, "acquire");
    for (int i = 0; ok && i < N; i++) p[i] = (float)(r + 1);
    if (ok) ds_buffer_release(part[r], cpu);
    ok = ok && check(ds_mpi_buffer_attach(m, 1 + (uint64_t)r, r, part[r]), ctx, "attach");
  }
  ok = ok && check(ds_buffer_create(&total, ctx, N * sizeof(float), NULL), ctx, "buffer") &&
       check(ds_mpi_buffer_attach(m, 100, 0, total), ctx, "attach");
  /* The same graph on every rank: no placement, so each node runs where its output lives. */
  ds_graph *g = NULL;
  ds_graph_access acc[MAXR + 1];
  ok = ok && check(ds_graph_create(&g, ctx), ctx, "graph");
  for (int r = 0; ok && r < size; r++) {
    acc[r] = (ds_graph_access){part[r], DS_ACCESS_RW};
    ok &= check(ds_graph_add(NULL, g, k_twice, &acc[r], 1, NULL), ctx, "add");
    acc[r].mode = DS_ACCESS_READ; /* for the sum below */
  }
  acc[size] = (ds_graph_access){total, DS_ACCESS_WRITE};
  ok = ok && check(ds_graph_add(NULL, g, k_sum, acc, (size_t)size + 1, NULL), ctx, "add");
  ds_mpi_graph_info info = {sizeof info, 0, 0, 0, 0, 0, 0.0};
  ok = ok && check(ds_mpi_graph_run(m, g, NULL, &info), ctx, "ds_mpi_graph_run");
  if (ok)
    printf("rank %d: ran %u node(s), received %u buffer(s)\n", rank, info.nodes_here, info.recvs);
  /* Any rank can read the result: a fetch brings rank 0's total here. */
  const float *t = NULL;
  if (ok && check(ds_mpi_buffer_fetch(m, 100, (const void **)&t, -1), ctx, "fetch"))
    printf("rank %d: total[0] = %g (expected %d)\n", rank, t[0], size * (size + 1));
  ds_graph_destroy(g);
  ds_mpi_destroy(m); /* collective: also unregisters the buffers */
  for (int r = 0; r < size; r++) ds_buffer_destroy(part[r]);
  ds_buffer_destroy(total);
  ds_kernel_destroy(k_twice);
  ds_kernel_destroy(k_sum);
  ds_context_destroy(ctx);
  return ok ? 0 : 1;
}
