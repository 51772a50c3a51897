// The CUDA half of the timestamp barrier (see ../barrier_cuda.h): host functions on a stream
// publish progress; cuStreamWaitValue64 on a mapped host word makes a stream wait for T. The
// driver entry point comes through the runtime (no link against libcuda), so a machine without
// a driver or GPU gets "not present" instead of a load failure.
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>

#include "../barrier_cuda.h"

typedef CUresult (*wait_value64_fn)(CUstream, CUdeviceptr, cuuint64_t, unsigned int);

static int fail(cudaError_t e, const char *what, char *msg, size_t n) {
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    snprintf(msg, n, "%s: no CUDA device (%s)", what, cudaGetErrorString(e));
    return 1;
  }
  snprintf(msg, n, "%s: %s", what, cudaGetErrorString(e));
  return 2;
}

static int host_func(void *stream, void (*fn)(void *), void *arg, char *msg, size_t n) {
  cudaError_t e = cudaLaunchHostFunc((cudaStream_t)stream, fn, arg);
  return e == cudaSuccess ? 0 : fail(e, "cudaLaunchHostFunc", msg, n);
}

static int alloc_word(uint64_t **host, uint64_t *dev_addr, char *msg, size_t n) {
  void *h = NULL, *d = NULL;
  cudaError_t e = cudaHostAlloc(&h, sizeof(uint64_t), cudaHostAllocMapped);
  if (e != cudaSuccess) return fail(e, "cudaHostAlloc", msg, n);
  *(volatile uint64_t *)h = 0;
  e = cudaHostGetDevicePointer(&d, h, 0);
  if (e != cudaSuccess) {
    cudaFreeHost(h);
    return fail(e, "cudaHostGetDevicePointer", msg, n);
  }
  *host = (uint64_t *)h;
  *dev_addr = (uint64_t)(uintptr_t)d;
  return 0;
}

static void free_word(uint64_t *host) {
  if (host) cudaFreeHost(host);
}

static wait_value64_fn lookup_wait(char *msg, size_t n) {
  static wait_value64_fn fn; // racy first lookup is benign: every thread stores the same value
  if (fn) return fn;
  void *p = NULL;
  cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
  cudaError_t e = cudaGetDriverEntryPointByVersion("cuStreamWaitValue64", &p, 12000,
                                                   cudaEnableDefault, &q);
  if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !p) {
    snprintf(msg, n, "cuStreamWaitValue64 unavailable (%s)",
             e != cudaSuccess ? cudaGetErrorString(e) : "symbol not found");
    return NULL;
  }
  fn = (wait_value64_fn)p;
  return fn;
}

static int wait_geq(void *stream, uint64_t dev_addr, uint64_t value, char *msg, size_t n) {
  wait_value64_fn fn = lookup_wait(msg, n);
  if (!fn) return 1;
  CUresult r = fn((CUstream)stream, (CUdeviceptr)dev_addr, value, CU_STREAM_WAIT_VALUE_GEQ);
  if (r == CUDA_ERROR_NOT_SUPPORTED) {
    snprintf(msg, n, "cuStreamWaitValue64: stream memory operations not supported");
    return 1;
  }
  if (r != CUDA_SUCCESS) {
    snprintf(msg, n, "cuStreamWaitValue64: CUresult %d", (int)r);
    return 2;
  }
  return 0;
}

static const struct ds__barrier_cuda_ops ops = {host_func, alloc_word, free_word, wait_geq};

extern "C" const struct ds__barrier_cuda_ops *ds__barrier_cuda_ops_get(void) { return &ops; }
