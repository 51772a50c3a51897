/* A stand-in for NVML (libnvidia-ml.so.1) for test_telemetry_gpu: the six entry points the
 * library's telemetry looks up, answering for two devices with fixed figures (device 0: 30 %
 * busy, 1 GiB of 4 GiB used; device 1: 70 %, 3 GiB of 4 GiB), so the per-GPU stats can be
 * checked on a machine without a GPU. Types are the ABI's: an int status, opaque handles,
 * structs of unsigned ints / unsigned long longs. */
#include <stdint.h>

typedef struct { unsigned int gpu, memory; } fake_util;
typedef struct { unsigned long long total, free, used; } fake_mem;

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }

int nvmlDeviceGetCount_v2(unsigned int *n) {
  *n = 2;
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **dev) {
  if (i >= 2) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
  *dev = (void *)(uintptr_t)(i + 1);
  return 0;
}

int nvmlDeviceGetUtilizationRates(void *dev, fake_util *u) {
  u->gpu = (uintptr_t)dev == 1 ? 30 : 70;
  u->memory = 0;
  return 0;
}

int nvmlDeviceGetMemoryInfo(void *dev, fake_mem *m) {
  m->total = 4ull << 30;
  m->used = ((uintptr_t)dev == 1 ? 1ull : 3ull) << 30;
  m->free = m->total - m->used;
  return 0;
}
