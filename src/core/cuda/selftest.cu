// The nvcc-compiled half of the CUDA self-test: fills 64 MiB on the device, streams over it a
// few times (one read and one write per element), copies it back and checks every element, and
// times the streaming kernels with CUDA events. Exposes one extern "C" function with plain types
// (cuda_selftest.h); the C side turns its result into a context error.
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_selftest.h"

namespace {

constexpr size_t kBytes = 64u << 20;
constexpr size_t kCount = kBytes / sizeof(uint32_t);
constexpr int kPasses = 10;
// An odd constant: each pass adds it, so after k passes element i holds i + k * kStep (mod 2^32),
// which the host checks exactly, and any lost or repeated store shows.
constexpr uint32_t kStep = 0x9E3779B9u;
constexpr int kThreads = 256;

__global__ void fill(uint32_t *a, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    a[i] = (uint32_t)i;
}

__global__ void step(uint32_t *a, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    a[i] += kStep;
}

// Everything one run allocates, released on every path.
struct Run {
  uint32_t *dev = nullptr;
  uint32_t *host = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  ~Run() {
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    cudaFree(dev);
    free(host);
  }
};

ds_status fail(char *msg, size_t size, const char *what, cudaError_t err) {
  snprintf(msg, size, "%s: %s", what, cudaGetErrorString(err));
  return DS_ERR_DEVICE;
}

#define DS_CU(call, what)                                          \
  do {                                                             \
    cudaError_t e_ = (call);                                       \
    if (e_ != cudaSuccess) return fail(msg, msg_size, what, e_);   \
  } while (0)

// Launches the fill, one untimed pass, then kPasses timed passes; stores the elapsed time.
ds_status launch(Run &r, float *ms, char *msg, size_t msg_size) {
  int blocks = 0;
  DS_CU(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, step, kThreads, 0), "occupancy");
  int dev = 0, sms = 0;
  DS_CU(cudaGetDevice(&dev), "cudaGetDevice");
  DS_CU(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "SM count");
  unsigned grid = (unsigned)(blocks * sms > 0 ? blocks * sms : 1);
  fill<<<grid, kThreads>>>(r.dev, kCount);
  step<<<grid, kThreads>>>(r.dev, kCount);  // warms up clocks and caches; not timed
  DS_CU(cudaGetLastError(), "kernel launch");
  DS_CU(cudaEventRecord(r.start), "cudaEventRecord");
  for (int k = 0; k < kPasses; k++) step<<<grid, kThreads>>>(r.dev, kCount);
  DS_CU(cudaEventRecord(r.stop), "cudaEventRecord");
  DS_CU(cudaGetLastError(), "kernel launch");
  DS_CU(cudaEventSynchronize(r.stop), "kernel execution");
  DS_CU(cudaEventElapsedTime(ms, r.start, r.stop), "cudaEventElapsedTime");
  return DS_OK;
}

ds_status verify(const uint32_t *host, char *msg, size_t msg_size) {
  const uint32_t add = (uint32_t)(kPasses + 1) * kStep;
  for (size_t i = 0; i < kCount; i++) {
    uint32_t want = (uint32_t)i + add;
    if (host[i] != want) {
      snprintf(msg, msg_size, "element %zu is 0x%08x, expected 0x%08x", i, host[i], want);
      return DS_ERR_DEVICE;
    }
  }
  return DS_OK;
}

}  // namespace

extern "C" ds_status ds__cuda_selftest_run(int device, double *gbps, char *msg,
                                           size_t msg_size) {
  if (gbps) *gbps = 0.0;
  int n = 0;
  // No driver or no GPU both land here, and are not errors of the self-test itself.
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();  // clear the sticky error so later runtime calls are not confused
    snprintf(msg, msg_size, "no CUDA device on this machine");
    return DS_ERR_UNAVAILABLE;
  }
  if (device < 0 || device >= n) {
    snprintf(msg, msg_size, "no CUDA device %d (%d found)", device, n);
    return DS_ERR_NOT_FOUND;
  }
  DS_CU(cudaSetDevice(device), "cudaSetDevice");
  Run r;
  r.host = (uint32_t *)malloc(kBytes);
  if (!r.host) {
    snprintf(msg, msg_size, "cannot allocate %zu host bytes", kBytes);
    return DS_ERR_NO_MEMORY;
  }
  DS_CU(cudaMalloc((void **)&r.dev, kBytes), "cudaMalloc");
  DS_CU(cudaEventCreate(&r.start), "cudaEventCreate");
  DS_CU(cudaEventCreate(&r.stop), "cudaEventCreate");
  float ms = 0.0f;
  ds_status st = launch(r, &ms, msg, msg_size);
  if (st != DS_OK) return st;
  DS_CU(cudaMemcpy(r.host, r.dev, kBytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  if ((st = verify(r.host, msg, msg_size)) != DS_OK) return st;
  // Each pass reads and writes every byte once.
  if (gbps && ms > 0.0f) *gbps = 2.0 * kBytes * kPasses / (ms * 1e-3) / 1e9;
  return DS_OK;
}
