/* The CUDA runtime side of the fabric's CUDA backend: device memory, pinned mapped host memory
 * (cudaHostRegister, for zero-copy), copies on a per-device stream, and events. */
#include <cuda_runtime.h>
#include <stdio.h>

#include "cuda_fabric.h"

static ds_status fail(cudaError_t e, const char *what, char *msg, size_t msg_size) {
  snprintf(msg, msg_size, "%s: %s", what, cudaGetErrorString(e));
  (void)cudaGetLastError(); /* clear the sticky non-fatal error */
  return e == cudaErrorMemoryAllocation ? DS_ERR_NO_SPACE : DS_ERR_DEVICE;
}

int ds__fcuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

ds_status ds__fcuda_describe(int dev, char *name, size_t name_size, uint64_t *mem, int *sms,
                             int *can_map, int *integrated, int *unified) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) return DS_ERR_DEVICE;
  snprintf(name, name_size, "%s", p.name);
  *mem = (uint64_t)p.totalGlobalMem;
  *sms = p.multiProcessorCount;
  *can_map = p.canMapHostMemory;
  *integrated = p.integrated;
  *unified = p.unifiedAddressing;
  return DS_OK;
}

ds_status ds__fcuda_stream_create(int dev, void **stream, char *msg, size_t msg_size) {
  cudaStream_t s = NULL;
  cudaError_t e = cudaSetDevice(dev);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  if (e != cudaSuccess) return fail(e, "cudaStreamCreate", msg, msg_size);
  *stream = s;
  return DS_OK;
}

void ds__fcuda_stream_destroy(int dev, void *stream) {
  if (cudaSetDevice(dev) == cudaSuccess) cudaStreamDestroy((cudaStream_t)stream);
}

ds_status ds__fcuda_alloc(int dev, size_t size, void *host, void **mem, int *aliased, char *msg,
                          size_t msg_size) {
  *aliased = 0;
  cudaError_t e = cudaSetDevice(dev);
  if (e != cudaSuccess) return fail(e, "cudaSetDevice", msg, msg_size);
  if (host) {
    e = cudaHostRegister(host, size, cudaHostRegisterMapped);
    void *d = NULL;
    if (e == cudaSuccess) e = cudaHostGetDevicePointer(&d, host, 0);
    if (e == cudaSuccess) {
      *mem = d;
      *aliased = 1;
      return DS_OK;
    }
    (void)cudaGetLastError(); /* fall back to device memory */
  }
  e = cudaMalloc(mem, size);
  return e == cudaSuccess ? DS_OK : fail(e, "cudaMalloc", msg, msg_size);
}

void ds__fcuda_free(int dev, void *mem) {
  if (cudaSetDevice(dev) != cudaSuccess) return;
  cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, mem) == cudaSuccess && a.type == cudaMemoryTypeHost)
    cudaHostUnregister(a.hostPointer);
  else
    cudaFree(mem);
  (void)cudaGetLastError();
}

ds_status ds__fcuda_copy(int dev, void *stream, void *dst, const void *src, size_t n,
                         int to_device, void **event, char *msg, size_t msg_size) {
  cudaStream_t s = (cudaStream_t)stream;
  cudaError_t e = cudaSetDevice(dev);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(dst, src, n, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, s);
  if (e != cudaSuccess) return fail(e, "cudaMemcpyAsync", msg, msg_size);
  if (!event) {
    e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? DS_OK : fail(e, "cudaStreamSynchronize", msg, msg_size);
  }
  return ds__fcuda_event_record(dev, stream, event, msg, msg_size);
}

ds_status ds__fcuda_event_record(int dev, void *stream, void **event, char *msg, size_t msg_size) {
  cudaEvent_t ev = NULL;
  cudaError_t e = cudaSetDevice(dev);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventRecord(ev, (cudaStream_t)stream);
  if (e != cudaSuccess) {
    if (ev) cudaEventDestroy(ev);
    return fail(e, "cudaEventRecord", msg, msg_size);
  }
  *event = ev;
  return DS_OK;
}

ds_status ds__fcuda_event_wait(void *event, char *msg, size_t msg_size) {
  cudaError_t e = cudaEventSynchronize((cudaEvent_t)event);
  return e == cudaSuccess ? DS_OK : fail(e, "cudaEventSynchronize", msg, msg_size);
}

void ds__fcuda_event_release(void *event) { cudaEventDestroy((cudaEvent_t)event); }

ds_status ds__fcuda_device_sync(int dev, char *msg, size_t msg_size) {
  cudaError_t e = cudaSetDevice(dev);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  return e == cudaSuccess ? DS_OK : fail(e, "cudaDeviceSynchronize", msg, msg_size);
}

ds_status ds__fcuda_copy_peer(int dst_dev, void *dst_stream, void *dst, int src_dev,
                              void *src_stream, const void *src, size_t n, void **event,
                              char *msg, size_t msg_size) {
  cudaStream_t ds = (cudaStream_t)dst_stream;
  cudaEvent_t after = NULL; /* what was queued on the source's stream comes first */
  cudaError_t e = cudaSetDevice(src_dev);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&after, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventRecord(after, (cudaStream_t)src_stream);
  if (e == cudaSuccess) e = cudaSetDevice(dst_dev);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(ds, after, 0);
  if (after) cudaEventDestroy(after); /* freed once the wait no longer needs it */
  if (e == cudaSuccess) e = cudaMemcpyPeerAsync(dst, dst_dev, src, src_dev, n, ds);
  if (e != cudaSuccess) return fail(e, "cudaMemcpyPeerAsync", msg, msg_size);
  if (event) return ds__fcuda_event_record(dst_dev, dst_stream, event, msg, msg_size);
  e = cudaStreamSynchronize(ds);
  return e == cudaSuccess ? DS_OK : fail(e, "cudaMemcpyPeerAsync", msg, msg_size);
}

void ds__fcuda_enable_peers(int n) {
  for (int a = 0; a < n; a++)
    for (int b = 0; b < n; b++) {
      int can = 0;
      if (a == b || cudaDeviceCanAccessPeer(&can, a, b) != cudaSuccess || !can) continue;
      if (cudaSetDevice(a) == cudaSuccess) cudaDeviceEnablePeerAccess(b, 0);
      (void)cudaGetLastError(); /* "already enabled" is not an error here */
    }
}

ds_status ds__fcuda_set_device(int dev) {
  return cudaSetDevice(dev) == cudaSuccess ? DS_OK : DS_ERR_DEVICE;
}
