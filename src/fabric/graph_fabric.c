/* The glue between fabric graphs and fabric-core: the device view the partitioner plans on
 * (kinds, memory spaces, execution units, transfer costs, where each buffer's data is now),
 * device keys for cost models, and running one node on one device (acquire its buffers there,
 * call the implementation for the device's kind, release). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fabric_internal.h"
#include "graph_internal.h"

#define MOD "fabric"

uint64_t ds__gfab_buf_bytes(ds_buffer *buf) { return (uint64_t)ds_buffer_size(buf); }

static int kind_of(int32_t fabric_kind) {
  switch (fabric_kind) {
  case DS_FABRIC_DEVICE_CPU: return DS__GKIND_CPU;
  case DS_FABRIC_DEVICE_CUDA: return DS__GKIND_CUDA;
  case DS_FABRIC_DEVICE_OPENCL: return DS__GKIND_OPENCL;
  default: return -1; /* a registered backend: no graph implementation kind for it yet */
  }
}

static double xfer_s(void *user, int from_ms, int to_ms, uint64_t bytes) {
  return ds__fabric_transfer_cost((ds_context *)user, from_ms, to_ms, (size_t)bytes);
}

/* One device's link time, as if it could not use host bytes in place. */
static double link_s(const struct ds__fabric_device *d, uint64_t bytes, int in) {
  double bw = in ? d->bw_in : d->bw_out;
  if ((d->info.caps & DS_DEVICE_CAP_HOST_MEMORY) || bw <= 0) return 0;
  return d->latency_s + (double)bytes / bw;
}

/* Transfer time of a buffer that is always copied: out of the source's memory to the host,
 * into the destination's; one hop (the slower link) between two devices of one backend that
 * copies between its devices directly, as ds__fabric_transfer_cost prices it. */
static double copy_s(void *user, int from_ms, int to_ms, uint64_t bytes) {
  ds_context *ctx = user;
  if (from_ms == to_ms) return 0;
  int32_t s = ds__fabric_space_device(ctx, from_ms), d = ds__fabric_space_device(ctx, to_ms);
  if (s < 0 || d < 0) return 0;
  const struct ds__fabric_device *sd = &ctx->fabric->dev[s], *dd = &ctx->fabric->dev[d];
  double out = link_s(sd, bytes, 0), in = link_s(dd, bytes, 1);
  const uint32_t host = DS_DEVICE_CAP_HOST_MEMORY;
  if (sd->be == dd->be && (sd->be->ops.copy_peer || sd->be->ops.copy_peer_async) &&
      !(sd->info.caps & host) && !(dd->info.caps & host) &&
      ds__param(ctx, DS_PARAM_FABRIC_PEER_COPY))
    return out > in ? out : in;
  return out + in;
}

const char *ds__gfab_device_key(ds_context *ctx, int32_t device, char *buf, size_t cap) {
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab || device < 0 || device >= ds__fabric_ndev(fab) || device >= DS__GRAPH_MAX_DEV)
    return NULL;
  snprintf(buf, cap, "%s", fab->dev[device].info.name);
  return buf;
}

/* The memory space a buffer's data is read from first: the host replica when valid (that is
 * where the caller's bytes are), else the lowest valid space. */
static int32_t buf_home(ds_buffer *b) {
  uint64_t valid = ds__buffer_valid_spaces(b);
  if (!valid || (valid >> b->host_space & 1)) return b->host_space;
  return (int32_t)__builtin_ctzll(valid);
}

/* Whether device d computes on the host's cores: a CPU device, or an OpenCL CPU device
 * (PoCL: its kernels run on threads over the same cores the CPU workers use). */
static int on_host_cores(const ds_device_info *in) {
  return in->kind == DS_FABRIC_DEVICE_CPU || (in->caps & DS_DEVICE_CAP_HOST_CORES);
}

/* Execution units per device and the host-core pool. A device task blocks a worker while its
 * device computes, so a CPU device runs one node per worker less one per device of its own
 * hardware (a GPU). Devices on the host's cores instead hold their share of the core pool
 * (sized by the CPU devices' cores): a CPU worker 1, an OpenCL CPU device its compute units. */
static void plat_units(ds_context *ctx, struct ds__fabric *fab, struct ds__gplat *plat,
                       int32_t workers) {
  int ndev = plat->ndev, ncpu = 0, nown = 0, cores = 0;
  plat->shared = ds__param(ctx, DS_PARAM_FABRIC_PLAN_SHARED_CORES) != 0;
  for (int d = 0; d < ndev; d++) {
    const ds_device_info *in = &fab->dev[d].info;
    if (in->kind == DS_FABRIC_DEVICE_CPU) ncpu++, cores += in->compute_units;
    else if (!plat->shared || !on_host_cores(in)) nown++;
  }
  plat->host_pus = cores > 0 ? cores : workers;
  for (int d = 0; d < ndev; d++) {
    const ds_device_info *in = &fab->dev[d].info;
    struct ds__gdev *gd = &plat->dev[d];
    gd->units = 1;
    gd->host_pus = on_host_cores(in) ? 1 : 0;
    if (in->kind == DS_FABRIC_DEVICE_CPU) {
      int u = (workers - nown) / (ncpu ? ncpu : 1);
      gd->units = u > 1 ? u : 1;
    } else if (gd->host_pus) {
      gd->host_pus = in->compute_units > 0 ? in->compute_units : plat->host_pus;
    }
  }
}

ds_status ds__gfab_platform(ds_context *ctx, struct ds__gplat *plat, ds_graph *g,
                            int32_t *home, uint8_t *copy) {
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return DS_ERR_NO_MEMORY;
  int32_t workers = 1;
  ds_status st = ds_sched_workers(ctx, &workers);
  if (st != DS_OK) return st;
  memset(plat, 0, sizeof *plat);
  int ndev = ds__fabric_ndev(fab);
  if (ndev > DS__GRAPH_MAX_DEV) ndev = DS__GRAPH_MAX_DEV; /* the planner's bitmasks */
  for (int d = 0; d < ndev; d++) {
    const ds_device_info *in = &fab->dev[d].info;
    plat->dev[d].kind = kind_of(in->kind);
    plat->dev[d].memspace = in->memory_space;
    snprintf(plat->dev[d].key, sizeof plat->dev[d].key, "%s", in->name);
  }
  plat->ndev = ndev;
  plat_units(ctx, fab, plat, workers);
  plat->guard = ds__param(ctx, DS_PARAM_FABRIC_PLAN_GUARD) != 0;
  plat->nmem = fab->nspaces > 0 ? fab->nspaces : 1;
  plat->xfer_s = xfer_s;
  plat->user = ctx;
  int zero_copy = ds__param(ctx, DS_PARAM_FABRIC_ZERO_COPY) != 0;
  for (uint32_t b = 0; b < g->nbufs; b++) {
    home[b] = buf_home(g->bufs[b].buf);
    copy[b] = !zero_copy || (g->bufs[b].buf->flags & DS_BUFFER_NO_ZERO_COPY);
  }
  plat->buf_home = home;
  plat->buf_copy = copy;
  plat->copy_s = copy_s;
  return DS_OK;
}

void ds__gfab_prefetch(ds_graph *g, const struct ds__gnode *n, int32_t dev) {
  for (uint32_t a = 0; a < n->nacc; a++) {
    if (!(n->acc[a].mode & DS_ACCESS_READ)) continue;
    void *ev = NULL;
    if (ds__buffer_prefetch(n->acc[a].buf, dev, &ev) == DS_OK && ev)
      ds__fabric_event_release(g->ctx, dev, ev); /* the replica is marked pending instead */
  }
}

uint64_t ds__gfab_bytes_moved(ds_context *ctx) {
  ds_stats *s = NULL;
  double v = 0;
  if (ds_stats_snapshot(&s, ctx) == DS_OK && ds_stats_find(&v, s, "fabric.bytes_moved") != DS_OK)
    v = 0;
  ds_stats_free(s);
  return v > 0 ? (uint64_t)v : 0;
}

/* OpenCL: buffers first (the cl_mem handles), then the by-value arguments split as the kernel
 * declared; the global size from the node (unset dimensions count 1). */
static ds_status run_opencl(ds_graph *g, const struct ds__gnode *n, int32_t dev, void *kern,
                            void **mem) {
  const ds_kernel *k = n->k;
  void *args[DS__GRAPH_MAX_ACC + DS__GRAPH_MAX_ARGS];
  size_t sizes[DS__GRAPH_MAX_ACC + DS__GRAPH_MAX_ARGS], na = 0, off = 0;
  for (uint32_t i = 0; i < n->nacc; i++) args[na] = &mem[i], sizes[na++] = sizeof(void *);
  for (uint32_t i = 0; i < k->cl_nargs; i++) {
    args[na] = (void *)(n->args + off);
    sizes[na++] = k->cl_arg_sizes[i];
    off += k->cl_arg_sizes[i];
  }
  size_t global[3] = {1, 1, 1};
  uint32_t dims = 1;
  for (uint32_t d = 0; d < 3; d++)
    if (n->global[d]) global[d] = (size_t)n->global[d], dims = d + 1;
  void *ev = NULL;
  ds_status st =
      ds__fabric_launch(g->ctx, dev, kern, (void *const *)args, sizes, na, global, dims, &ev);
  if (st == DS_OK) st = ds__fabric_event_wait(g->ctx, dev, ev);
  ds__fabric_event_release(g->ctx, dev, ev);
  return st;
}

/* CUDA: the launcher enqueues on the fabric's stream of the device (made current); an event
 * recorded after it on that stream is waited for. (The default stream would not do: the
 * fabric's streams are non-blocking, so an event there would not wait for the kernel.) */
static ds_status run_cuda(ds_graph *g, const struct ds__gnode *n, int32_t dev, void **mem,
                          const size_t *sizes) {
  void *stream = ds__fabric_cuda_stream(g->ctx, dev);
  ds_status st = n->k->cuda((void *const *)mem, sizes, n->nacc, n->args, n->args_len, stream);
  if (st != DS_OK) return st;
  void *ev = NULL;
  st = ds__fabric_event_record(g->ctx, dev, &ev);
  if (st == DS_OK) st = ds__fabric_event_wait(g->ctx, dev, ev);
  ds__fabric_event_release(g->ctx, dev, ev);
  return st;
}

static ds_status run_impl(ds_graph *g, const struct ds__gnode *n, int32_t dev, int kind,
                          void *cl_kern, void **mem, const size_t *sizes) {
  switch (kind) {
  case DS__GKIND_CPU:
    return n->k->cpu((void *const *)mem, sizes, n->nacc, n->args, n->args_len);
  case DS__GKIND_OPENCL: return run_opencl(g, n, dev, cl_kern, mem);
  case DS__GKIND_CUDA: return run_cuda(g, n, dev, mem, sizes);
  default: return DS_ERR_UNSUPPORTED;
  }
}

static ds_status exec_node(ds_graph *g, const struct ds__gnode *n, int32_t dev, double *seconds);

/* Runs the node; a failure is recorded as this thread's error naming the node and device,
 * with the reason the failing call gave (or the status' text when it gave none). */
ds_status ds__gfab_exec(ds_graph *g, const struct ds__gnode *n, int32_t dev, double *seconds) {
  struct ds__tls *tls = ds__tls_get(g->ctx);
  if (tls) tls->errmsg[0] = 0; /* so a stale message is not taken for this failure's */
  ds_status st = exec_node(g, n, dev, seconds);
  if (st == DS_OK) return DS_OK;
  char label[160], reason[DS__ERRMSG_MAX];
  snprintf(reason, sizeof reason, "%s",
           tls && tls->errmsg[0] ? tls->errmsg : ds_status_str(st));
  return ds__error(g->ctx, st, MOD, "node '%s' on %s: %s", n->name,
                   ds__fabric_device_label(g->ctx, dev, label, sizeof label), reason);
}

static ds_status exec_node(ds_graph *g, const struct ds__gnode *n, int32_t dev, double *seconds) {
  const struct ds__fabric_device *fd = ds__fabric_device(g->ctx, dev);
  if (!fd) return DS_ERR_NOT_FOUND;
  int kind = kind_of(fd->info.kind);
  void *mem[DS__GRAPH_MAX_ACC], *cl_kern = NULL;
  size_t sizes[DS__GRAPH_MAX_ACC];
  uint32_t got = 0;
  ds_status st = DS_OK;
  *seconds = NAN;
  /* Built (once per device, then cached) before timing: a build is not the kernel's cost. */
  if (kind == DS__GKIND_OPENCL &&
      (st = ds__fabric_cl_kernel(g->ctx, dev, n->k->cl_source, n->k->cl_name, &cl_kern)) != DS_OK)
    return st;
  for (; got < n->nacc && st == DS_OK; got++) {
    sizes[got] = ds_buffer_size(n->acc[got].buf);
    st = ds_buffer_acquire(&mem[got], n->acc[got].buf, dev, (ds_access)n->acc[got].mode);
    if (st != DS_OK) break;
  }
  if (st == DS_OK) {
    uint64_t t0 = ds__now_ns();
    st = run_impl(g, n, dev, kind, cl_kern, mem, sizes);
    *seconds = (double)(ds__now_ns() - t0) * 1e-9;
  }
  for (uint32_t i = 0; i < got; i++) {
    ds_status rs = ds_buffer_release(n->acc[i].buf, dev);
    if (st == DS_OK) st = rs;
  }
  return st;
}
