/* CUDA implementations of the point cloud graph's kernels (clear, project, merge), built into
 * fabric_point_cloud_graph when CUDA is found. The arithmetic is the C twin's, operation by
 * operation and each correctly rounded (__fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn: no fused
 * multiply-add, no approximate division), so a GPU renders the very same image.
 *
 * pc_cuda_project_host() runs the same per-point code on the host: a machine without a GPU
 * checks that this file's formula is the C one (the order of operations) against the
 * reference image; only the _rn operations themselves need the GPU. */
#include <stdint.h>
#include <string.h>

#include <cuda_runtime.h>
#include <deepseek.h>

#include "fabric_point_cloud_graph_cuda.h"

#define PC_W 1024
#define PC_H 768
#define PC_BLOCK 256

/* On the device every operation is correctly rounded and never contracted; on the host plain
 * float arithmetic is (x86-64 evaluates float in float, without FMA unless asked). */
#ifdef __CUDA_ARCH__
#define PC_MUL(a, b) __fmul_rn((a), (b))
#define PC_ADD(a, b) __fadd_rn((a), (b))
#define PC_SUB(a, b) __fsub_rn((a), (b))
#define PC_DIV(a, b) __fdiv_rn((a), (b))
#else
#define PC_MUL(a, b) ((a) * (b))
#define PC_ADD(a, b) ((a) + (b))
#define PC_SUB(a, b) ((a) - (b))
#define PC_DIV(a, b) ((a) / (b))
#endif

/* Row r of the camera applied to point q: c[4r]*q0 + c[4r+1]*q1 + c[4r+2]*q2 + c[4r+3],
 * summed left to right as the C code does. */
__host__ __device__ static inline float pc_row(const float *c, int r, const float *q) {
  const float *m = c + 4 * r;
  return PC_ADD(PC_ADD(PC_ADD(PC_MUL(m[0], q[0]), PC_MUL(m[1], q[1])), PC_MUL(m[2], q[2])), m[3]);
}

/* The pixel index point q lands on and its depth bits; -1 when it is behind the near plane or
 * outside the image. */
__host__ __device__ static inline int32_t pc_pixel(const float *q, const float *c, uint32_t *d) {
  float x = pc_row(c, 0, q), y = pc_row(c, 1, q), z = pc_row(c, 2, q);
  if (!(z > c[15])) return -1;
  float u = PC_ADD(PC_DIV(PC_MUL(c[12], x), z), c[13]);
  float v = PC_SUB(c[14], PC_DIV(PC_MUL(c[12], y), z));
  if (!(u >= 0.0f && u < (float)PC_W && v >= 0.0f && v < (float)PC_H)) return -1;
  union {
    float f;
    uint32_t u;
  } bits;
  bits.f = z; /* positive floats order like their bits */
  *d = bits.u;
  return (int32_t)v * PC_W + (int32_t)u;
}

__global__ static void pc_project_kernel(const float *p, const float *c, uint32_t *zb,
                                         uint32_t count) {
  uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  uint32_t d = 0;
  int32_t px = pc_pixel(p + 3 * (size_t)i, c, &d);
  if (px >= 0) atomicMin(&zb[px], d);
}

__global__ static void pc_clear_kernel(uint32_t *zb, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) zb[i] = 0xFFFFFFFFu;
}

__global__ static void pc_merge_kernel(uint32_t *a, const uint32_t *b, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) a[i] = min(a[i], b[i]);
}

static unsigned pc_blocks(size_t n) { return (unsigned)((n + PC_BLOCK - 1) / PC_BLOCK); }

/* The launch's own error (bad configuration, no device); the kernel runs later on the stream,
 * and the fabric waits for it through an event recorded after this returns. */
static ds_status pc_launched(void) {
  return cudaGetLastError() == cudaSuccess ? DS_OK : DS_ERR_DEVICE;
}

extern "C" ds_status pc_cuda_project(void *const *bufs, const size_t *sizes, size_t nbufs,
                                     const void *args, size_t args_len, void *stream) {
  uint32_t count = 0;
  if (nbufs != 3 || args_len != sizeof count || sizes[1] < 16 * sizeof(float) ||
      sizes[2] < sizeof(uint32_t) * PC_W * PC_H)
    return DS_ERR_INVALID_ARG;
  memcpy(&count, args, sizeof count);
  if (count > sizes[0] / (3 * sizeof(float))) return DS_ERR_INVALID_ARG;
  if (count == 0) return DS_OK;
  pc_project_kernel<<<pc_blocks(count), PC_BLOCK, 0, (cudaStream_t)stream>>>(
      (const float *)bufs[0], (const float *)bufs[1], (uint32_t *)bufs[2], count);
  return pc_launched();
}

extern "C" ds_status pc_cuda_clear(void *const *bufs, const size_t *sizes, size_t nbufs,
                                   const void *args, size_t args_len, void *stream) {
  (void)args, (void)args_len;
  if (nbufs != 1) return DS_ERR_INVALID_ARG;
  size_t n = sizes[0] / sizeof(uint32_t);
  if (n == 0) return DS_OK;
  pc_clear_kernel<<<pc_blocks(n), PC_BLOCK, 0, (cudaStream_t)stream>>>((uint32_t *)bufs[0], n);
  return pc_launched();
}

extern "C" ds_status pc_cuda_merge(void *const *bufs, const size_t *sizes, size_t nbufs,
                                   const void *args, size_t args_len, void *stream) {
  (void)args, (void)args_len;
  if (nbufs != 2 || sizes[1] < sizes[0]) return DS_ERR_INVALID_ARG;
  size_t n = sizes[0] / sizeof(uint32_t);
  if (n == 0) return DS_OK;
  pc_merge_kernel<<<pc_blocks(n), PC_BLOCK, 0, (cudaStream_t)stream>>>(
      (uint32_t *)bufs[0], (const uint32_t *)bufs[1], n);
  return pc_launched();
}

extern "C" void pc_cuda_project_host(const float *pts, uint32_t count, const float *cam,
                                     uint32_t *zb) {
  for (uint32_t i = 0; i < count; i++) {
    uint32_t d = 0;
    int32_t px = pc_pixel(pts + 3 * (size_t)i, cam, &d);
    if (px >= 0 && d < zb[px]) zb[px] = d;
  }
}
