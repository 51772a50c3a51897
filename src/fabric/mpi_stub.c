/* The MPI transport's functions in a build without MPI: each says how to get it. */
#include "build_config.h"

#if !DS_HAVE_MPI
#include "internal.h"
#include "deepseek/fabric_mpi.h"

static ds_status ds__no_mpi(const ds_context *ctx, const char *fn) {
  return ds__error(ctx, DS_ERR_UNSUPPORTED, "mpi",
                   "%s: this build has no MPI (install libopenmpi-dev and openmpi-bin, then "
                   "reconfigure with DS_WITH_MPI=AUTO or ON)", fn);
}

ds_status ds_mpi_create(ds_mpi **out, ds_context *ctx, const ds_mpi_options *opts) {
  (void)opts;
  if (out) *out = NULL;
  return ds__no_mpi(ctx, "ds_mpi_create");
}

void ds_mpi_destroy(ds_mpi *m) { (void)m; }
int32_t ds_mpi_rank(const ds_mpi *m) { (void)m; return -1; }
int32_t ds_mpi_size(const ds_mpi *m) { (void)m; return -1; }
int32_t ds_mpi_thread_level(const ds_mpi *m) { (void)m; return -1; }
int ds_mpi_rank_alive(ds_mpi *m, int32_t rank) { (void)m, (void)rank; return 0; }

ds_status ds_mpi_buffer_register(ds_mpi *m, uint64_t id, int32_t owner, void *ptr, size_t size) {
  (void)m, (void)id, (void)owner, (void)ptr, (void)size;
  return ds__no_mpi(NULL, "ds_mpi_buffer_register");
}

ds_status ds_mpi_buffer_attach(ds_mpi *m, uint64_t id, int32_t owner, ds_buffer *buf) {
  (void)m, (void)id, (void)owner, (void)buf;
  return ds__no_mpi(NULL, "ds_mpi_buffer_attach");
}

ds_status ds_mpi_buffer_unregister(ds_mpi *m, uint64_t id) {
  (void)m, (void)id;
  return ds__no_mpi(NULL, "ds_mpi_buffer_unregister");
}

ds_status ds_mpi_buffer_fetch(ds_mpi *m, uint64_t id, const void **data, int64_t timeout_ms) {
  (void)m, (void)id, (void)timeout_ms;
  if (data) *data = NULL;
  return ds__no_mpi(NULL, "ds_mpi_buffer_fetch");
}

ds_status ds_mpi_buffer_flush(ds_mpi *m, uint64_t id) {
  (void)m, (void)id;
  return ds__no_mpi(NULL, "ds_mpi_buffer_flush");
}

ds_status ds_mpi_buffer_send(ds_mpi *m, uint64_t id, int32_t to, int64_t timeout_ms) {
  (void)m, (void)id, (void)to, (void)timeout_ms;
  return ds__no_mpi(NULL, "ds_mpi_buffer_send");
}

ds_status ds_mpi_buffer_recv(ds_mpi *m, uint64_t id, const void **data, int64_t timeout_ms) {
  (void)m, (void)id, (void)timeout_ms;
  if (data) *data = NULL;
  return ds__no_mpi(NULL, "ds_mpi_buffer_recv");
}

ds_status ds_mpi_task_register(ds_mpi *m, const char *name, ds_mpi_task_fn fn, void *user) {
  (void)m, (void)name, (void)fn, (void)user;
  return ds__no_mpi(NULL, "ds_mpi_task_register");
}

ds_status ds_mpi_task_submit(ds_task **out, ds_mpi *m, const char *name, const void *args,
                             size_t args_len, void *result, size_t result_cap,
                             size_t *result_len, const ds_mpi_submit_options *opts) {
  (void)m, (void)name, (void)args, (void)args_len, (void)result, (void)result_cap;
  (void)result_len, (void)opts;
  if (out) *out = NULL;
  return ds__no_mpi(NULL, "ds_mpi_task_submit");
}

ds_status ds_mpi_task_counts(ds_mpi *m, uint64_t *migrated_out, uint64_t *run_for_others) {
  (void)m, (void)migrated_out, (void)run_for_others;
  return ds__no_mpi(NULL, "ds_mpi_task_counts");
}

ds_status ds_mpi_barrier_arrive(ds_mpi *m, uint64_t ts) {
  (void)m, (void)ts;
  return ds__no_mpi(NULL, "ds_mpi_barrier_arrive");
}

ds_status ds_mpi_barrier_wait(ds_mpi *m, uint64_t ts, int64_t timeout_ms) {
  (void)m, (void)ts, (void)timeout_ms;
  return ds__no_mpi(NULL, "ds_mpi_barrier_wait");
}

ds_status ds_mpi_barrier_bridge(ds_mpi *m, ds_fabric_barrier *b, uint32_t first) {
  (void)m, (void)b, (void)first;
  return ds__no_mpi(NULL, "ds_mpi_barrier_bridge");
}

ds_status ds_mpi_buffer_written(ds_mpi *m, uint64_t id) {
  (void)m, (void)id;
  return ds__no_mpi(NULL, "ds_mpi_buffer_written");
}

ds_status ds_mpi_graph_run(ds_mpi *m, ds_graph *g, const ds_mpi_graph_options *opts,
                           ds_mpi_graph_info *info) {
  (void)m, (void)g, (void)opts, (void)info;
  return ds__no_mpi(NULL, "ds_mpi_graph_run");
}
#else
typedef int ds__mpi_stub_unused; /* ISO C: a translation unit must not be empty */
#endif
