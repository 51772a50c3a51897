/* The OpenCL backend: every device of every platform (PoCL exposes the CPU as one), one
 * context per platform and one in-order queue per device. Copies are clEnqueueWrite/ReadBuffer,
 * and clEnqueueCopyBuffer between two devices of one context; host memory
 * is used in place (CL_MEM_USE_HOST_PTR) on CPU and host-unified devices when a map of the
 * buffer proves the implementation really uses the host bytes, not a copy. */
#include <stdio.h>
#include <string.h>

#include "opencl_internal.h"

const char *ds__cl_err(cl_int err, char *buf, size_t size) {
  const char *name = err == CL_OUT_OF_RESOURCES           ? "CL_OUT_OF_RESOURCES"
                     : err == CL_OUT_OF_HOST_MEMORY       ? "CL_OUT_OF_HOST_MEMORY"
                     : err == CL_MEM_OBJECT_ALLOCATION_FAILURE ? "CL_MEM_OBJECT_ALLOCATION_FAILURE"
                     : err == CL_INVALID_VALUE            ? "CL_INVALID_VALUE"
                     : err == CL_INVALID_BUFFER_SIZE      ? "CL_INVALID_BUFFER_SIZE"
                     : err == CL_INVALID_HOST_PTR         ? "CL_INVALID_HOST_PTR"
                     : err == CL_BUILD_PROGRAM_FAILURE    ? "CL_BUILD_PROGRAM_FAILURE"
                     : err == CL_INVALID_KERNEL_NAME      ? "CL_INVALID_KERNEL_NAME"
                     : err == CL_INVALID_KERNEL_ARGS      ? "CL_INVALID_KERNEL_ARGS"
                     : err == CL_INVALID_ARG_SIZE         ? "CL_INVALID_ARG_SIZE"
                     : err == CL_INVALID_ARG_INDEX        ? "CL_INVALID_ARG_INDEX"
                     : err == CL_INVALID_WORK_DIMENSION   ? "CL_INVALID_WORK_DIMENSION"
                                                          : "OpenCL error";
  snprintf(buf, size, "%s (%d)", name, (int)err);
  return buf;
}

static ds_status ds__cl_fail(cl_int err, const char *what, char *msg, size_t msg_size) {
  char e[64];
  snprintf(msg, msg_size, "%s: %s", what, ds__cl_err(err, e, sizeof e));
  return err == CL_OUT_OF_HOST_MEMORY ? DS_ERR_NO_MEMORY
         : err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES ||
                 err == CL_INVALID_BUFFER_SIZE
             ? DS_ERR_NO_SPACE
             : DS_ERR_DEVICE;
}

static ds_status ds__cl_describe(void *user, int32_t dev, ds_device_info *info) {
  struct ds__cl_backend *be = user;
  struct ds__cl_device *d = &be->dev[dev];
  char devname[96] = "";
  cl_ulong mem = 0;
  cl_uint cu = 0;
  clGetDeviceInfo(d->id, CL_DEVICE_NAME, sizeof devname - 1, devname, NULL);
  clGetDeviceInfo(d->id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
  clGetDeviceInfo(d->id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
  info->kind = DS_FABRIC_DEVICE_OPENCL;
  info->memory_bytes = mem;
  info->compute_units = (int32_t)cu;
  info->caps = DS_DEVICE_CAP_ASYNC | DS_DEVICE_CAP_LAUNCH;
  if (d->is_cpu || d->host_unified) info->caps |= DS_DEVICE_CAP_MAP_HOST;
  if (d->is_cpu) info->caps |= DS_DEVICE_CAP_HOST_CORES;
  snprintf(info->name, sizeof info->name, "opencl:%d.%d %s", d->platform, d->index, devname);
  return DS_OK;
}

/* Maps the buffer and checks the mapping is the host bytes themselves. */
static int ds__cl_is_in_place(struct ds__cl_device *d, cl_mem m, void *host, size_t size) {
  cl_int err = CL_SUCCESS;
  void *p = clEnqueueMapBuffer(d->queue, m, CL_TRUE, CL_MAP_READ, 0, size, 0, NULL, NULL, &err);
  if (err != CL_SUCCESS || !p) return 0;
  clEnqueueUnmapMemObject(d->queue, m, p, 0, NULL, NULL);
  clFinish(d->queue);
  return p == host;
}

static ds_status ds__cl_alloc(void *user, int32_t dev, size_t size, void *host, void **mem,
                              int *aliased, char *msg, size_t msg_size) {
  struct ds__cl_backend *be = user;
  struct ds__cl_device *d = &be->dev[dev];
  cl_int err = CL_SUCCESS;
  *aliased = 0;
  if (host) {
    cl_mem m = clCreateBuffer(d->context, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, size, host,
                              &err);
    if (err == CL_SUCCESS && ds__cl_is_in_place(d, m, host, size)) {
      *mem = m;
      *aliased = 1;
      return DS_OK;
    }
    if (err == CL_SUCCESS) clReleaseMemObject(m); /* the implementation copies: not worth it */
  }
  cl_mem m = clCreateBuffer(d->context, CL_MEM_READ_WRITE, size, NULL, &err);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clCreateBuffer", msg, msg_size);
  *mem = m;
  return DS_OK;
}

static void ds__cl_free(void *user, int32_t dev, void *mem) {
  (void)user, (void)dev;
  clReleaseMemObject((cl_mem)mem);
}

static ds_status ds__cl_copy_in(void *user, int32_t dev, void *mem, size_t offset,
                                const void *host, size_t n, void **event, char *msg,
                                size_t msg_size) {
  struct ds__cl_backend *be = user;
  cl_event ev = NULL;
  cl_int err = clEnqueueWriteBuffer(be->dev[dev].queue, (cl_mem)mem, event ? CL_FALSE : CL_TRUE,
                                    offset, n, host, 0, NULL, event ? &ev : NULL);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clEnqueueWriteBuffer", msg, msg_size);
  if (event) *event = ev;
  return DS_OK;
}

static ds_status ds__cl_copy_out(void *user, int32_t dev, void *host, void *mem, size_t offset,
                                 size_t n, void **event, char *msg, size_t msg_size) {
  struct ds__cl_backend *be = user;
  cl_event ev = NULL;
  cl_int err = clEnqueueReadBuffer(be->dev[dev].queue, (cl_mem)mem, event ? CL_FALSE : CL_TRUE,
                                   offset, n, host, 0, NULL, event ? &ev : NULL);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clEnqueueReadBuffer", msg, msg_size);
  if (event) *event = ev;
  return DS_OK;
}

/* A map/unmap pair is where OpenCL makes USE_HOST_PTR memory coherent with the host. */
static ds_status ds__cl_sync_alias(void *user, int32_t dev, void *mem, size_t size, int to_host,
                                   char *msg, size_t msg_size) {
  struct ds__cl_backend *be = user;
  struct ds__cl_device *d = &be->dev[dev];
  cl_int err = CL_SUCCESS;
  void *p = clEnqueueMapBuffer(d->queue, (cl_mem)mem, CL_TRUE, to_host ? CL_MAP_READ : CL_MAP_WRITE,
                               0, size, 0, NULL, NULL, &err);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clEnqueueMapBuffer", msg, msg_size);
  err = clEnqueueUnmapMemObject(d->queue, (cl_mem)mem, p, 0, NULL, NULL);
  if (err == CL_SUCCESS) err = clFinish(d->queue);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clEnqueueUnmapMemObject", msg, msg_size);
  return DS_OK;
}

static ds_status ds__cl_event_record(void *user, int32_t dev, void **event, char *msg,
                                     size_t msg_size) {
  struct ds__cl_backend *be = user;
  cl_event ev = NULL;
  cl_int err = clEnqueueMarkerWithWaitList(be->dev[dev].queue, 0, NULL, &ev);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clEnqueueMarkerWithWaitList", msg, msg_size);
  *event = ev;
  return DS_OK;
}

static ds_status ds__cl_event_wait(void *user, void *event, char *msg, size_t msg_size) {
  (void)user;
  cl_event ev = event;
  cl_int err = clWaitForEvents(1, &ev);
  return err == CL_SUCCESS ? DS_OK : ds__cl_fail(err, "clWaitForEvents", msg, msg_size);
}

static void ds__cl_event_release(void *user, void *event) {
  (void)user;
  clReleaseEvent((cl_event)event);
}

static ds_status ds__cl_launch(void *user, int32_t dev, void *kernel, void *const *args,
                               const size_t *arg_sizes, size_t nargs, const size_t *global,
                               uint32_t dims, void **event, char *msg, size_t msg_size) {
  struct ds__cl_backend *be = user;
  struct ds__cl_device *d = &be->dev[dev];
  cl_kernel k = kernel;
  cl_event ev = NULL;
  cl_int err = CL_SUCCESS;
  pthread_mutex_lock(&d->mu); /* a cl_kernel's arguments are shared state */
  for (size_t i = 0; i < nargs && err == CL_SUCCESS; i++)
    err = clSetKernelArg(k, (cl_uint)i, arg_sizes[i], args[i]);
  if (err == CL_SUCCESS)
    err = clEnqueueNDRangeKernel(d->queue, k, dims, NULL, global, NULL, 0, NULL, &ev);
  pthread_mutex_unlock(&d->mu);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "launch", msg, msg_size);
  if (event) {
    *event = ev;
    return DS_OK;
  }
  err = clWaitForEvents(1, &ev);
  clReleaseEvent(ev);
  return err == CL_SUCCESS ? DS_OK : ds__cl_fail(err, "kernel run", msg, msg_size);
}

/* Within one context the copy is enqueued on the destination's in-order queue, after a marker
 * of the source's (the work that wrote the source comes first), so a marker recorded later on
 * the destination completes after it; with @p event NULL it is waited for here. */
static ds_status ds__cl_copy_peer(void *user, int32_t dst_dev, void *dst_mem, int32_t src_dev,
                                  void *src_mem, size_t n, void **event, char *msg,
                                  size_t msg_size) {
  struct ds__cl_backend *be = user;
  struct ds__cl_device *s = &be->dev[src_dev], *d = &be->dev[dst_dev];
  if (s->context != d->context) return DS_ERR_UNSUPPORTED;
  cl_event after = NULL, ev = NULL;
  cl_int err = clEnqueueMarkerWithWaitList(s->queue, 0, NULL, &after);
  if (err == CL_SUCCESS) clFlush(s->queue); /* the marker must reach the device to complete */
  if (err == CL_SUCCESS)
    err = clEnqueueCopyBuffer(d->queue, (cl_mem)src_mem, (cl_mem)dst_mem, 0, 0, n, 1, &after,
                              &ev);
  if (after) clReleaseEvent(after);
  if (err != CL_SUCCESS) return ds__cl_fail(err, "clEnqueueCopyBuffer", msg, msg_size);
  if (event) {
    clFlush(d->queue); /* start it now: the prefetch returns without waiting */
    *event = ev;
    return DS_OK;
  }
  err = clWaitForEvents(1, &ev);
  clReleaseEvent(ev);
  return err == CL_SUCCESS ? DS_OK : ds__cl_fail(err, "clEnqueueCopyBuffer", msg, msg_size);
}

static void ds__cl_destroy(void *user) {
  struct ds__cl_backend *be = user;
  for (int32_t i = 0; i < be->n; i++) {
    struct ds__cl_device *d = &be->dev[i];
    ds__cl_kernels_free(be, d);
    clReleaseCommandQueue(d->queue);
    clReleaseContext(d->context);
    pthread_mutex_destroy(&d->mu);
  }
  ds__free(be->ctx, be);
}

/* Opens one device: an in-order queue in @p shared, the context of all the platform's devices
 * (so buffers can be copied between them directly), or in a context of its own when there is
 * no shared one. */
static int ds__cl_open(struct ds__cl_device *d, cl_device_id id, cl_context shared, int platform,
                       int index) {
  cl_int err = CL_SUCCESS;
  cl_device_type type = 0;
  cl_bool unified = CL_FALSE;
  clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  clGetDeviceInfo(id, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified, NULL);
  d->id = id;
  if (shared && clRetainContext(shared) == CL_SUCCESS) d->context = shared;
  else d->context = clCreateContext(NULL, 1, &id, NULL, NULL, &err);
  if (err != CL_SUCCESS) return 0;
  d->queue = clCreateCommandQueue(d->context, id, 0, &err);
  if (err != CL_SUCCESS) {
    clReleaseContext(d->context);
    return 0;
  }
  d->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
  d->host_unified = unified == CL_TRUE;
  d->platform = platform, d->index = index;
  pthread_mutex_init(&d->mu, NULL);
  d->kernels = NULL;
  return 1;
}

static void ds__cl_enumerate(struct ds__cl_backend *be, int32_t room) {
  cl_platform_id plats[16];
  cl_uint np = 0;
  if (clGetPlatformIDs(16, plats, &np) != CL_SUCCESS) return;
  for (cl_uint p = 0; p < np && p < 16; p++) {
    cl_device_id ids[16];
    cl_uint nd = 0;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 16, ids, &nd) != CL_SUCCESS) continue;
    nd = nd < 16 ? nd : 16;
    cl_int err = CL_SUCCESS;
    cl_context shared = nd > 1 ? clCreateContext(NULL, nd, ids, NULL, NULL, &err) : NULL;
    if (err != CL_SUCCESS) shared = NULL; /* each device gets a context of its own */
    for (cl_uint i = 0; i < nd && be->n < room; i++)
      if (ds__cl_open(&be->dev[be->n], ids[i], shared, (int)p, (int)i)) be->n++;
    if (shared) clReleaseContext(shared); /* each device holds its own reference */
  }
}

/* Copy model: a CPU OpenCL device copies at host memcpy speed; a discrete one over PCIe. */
static void ds__cl_model(struct ds__fabric *fab, struct ds__cl_backend *be, int32_t first) {
  for (int32_t i = 0; i < be->n; i++) {
    struct ds__fabric_device *fd = &fab->dev[first + i];
    int local = be->dev[i].is_cpu || be->dev[i].host_unified;
    fd->bw_in = fd->bw_out = local ? 8e9 : 12e9;
    fd->latency_s = local ? 5e-6 : 15e-6;
  }
}

ds_status ds__fabric_opencl_probe(struct ds__fabric *fab) {
  int32_t room = DS__FABRIC_MAX_DEVICES - ds__fabric_ndev(fab);
  struct ds__cl_backend *be = ds__calloc(fab->ctx, 1, sizeof *be);
  if (!be) return ds__error(fab->ctx, DS_ERR_NO_MEMORY, "fabric", "OpenCL: out of memory");
  be->ctx = fab->ctx;
  ds__cl_enumerate(be, room);
  if (be->n == 0) {
    ds__free(fab->ctx, be);
    ds__log(fab->ctx, DS_LOG_DEBUG, "fabric", "no OpenCL device");
    return DS_OK;
  }
  ds_fabric_backend ops;
  memset(&ops, 0, sizeof ops);
  ops.struct_size = sizeof ops;
  ops.name = "opencl";
  ops.device_count = be->n;
  ops.describe = ds__cl_describe;
  ops.alloc = ds__cl_alloc;
  ops.free = ds__cl_free;
  ops.copy_in = ds__cl_copy_in;
  ops.copy_out = ds__cl_copy_out;
  ops.sync_alias = ds__cl_sync_alias;
  ops.event_record = ds__cl_event_record;
  ops.event_wait = ds__cl_event_wait;
  ops.event_release = ds__cl_event_release;
  ops.launch = ds__cl_launch;
  ops.destroy = ds__cl_destroy;
  ops.copy_peer_async = ds__cl_copy_peer;
  int32_t first = 0;
  ds_status st = ds__fabric_add_backend(fab, &ops, be, &first);
  if (st != DS_OK) {
    ds__cl_destroy(be);
    return st;
  }
  ds__cl_model(fab, be, first);
  return DS_OK;
}
