// CUDA training kernels (bias + activation, softmax, LayerNorm, RMSNorm, cross-entropy,
// embedding, elementwise, reductions), forward and backward, on fp32/fp16/bf16 activations.
// The formulas are the CPU kernels' (kernels_*.c): fp32 math, row statistics in fp64, loads
// widened exactly and stores rounded once with rounding.cuh. Each row-wise kernel is written
// once over a "team" (the threads sharing a row): on the device a thread block reducing
// through shuffles and shared memory, on the host one thread doing the whole row, so the
// host entry point runs the very same code and the tests check it without a GPU. Per-column
// sums (dbias, dgamma, dbeta) are a second pass, one thread per column summing the rows in
// order, as the CPU does.
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "rounding.cuh"

namespace {

constexpr int kBlock = 256; // threads per row block (8 warps)
constexpr int kEwChunk = 4096; // elements per block of the flat elementwise ops
constexpr int kReduceBlocks = 512;
constexpr float kGeluC = 0.7978845608028654f, kGeluA = 0.044715f;
enum { kActNone, kActRelu, kActGelu, kActSilu };
enum { kEwAdd, kEwMul, kEwScale };
enum { kSum, kAmax, kAllFinite };

__host__ __device__ float u2f(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}
__host__ __device__ uint32_t f2u(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// Element i of a buffer of dtype dt, widened exactly; store rounds to nearest even.
__host__ __device__ float ld(const void *p, int dt, int64_t i) {
  if (dt == kF32) return ((const float *)p)[i];
  return u2f(widen(((const uint16_t *)p)[i], dt));
}
__host__ __device__ void st(void *p, int dt, int64_t i, float v) {
  if (dt == kF32)
    ((float *)p)[i] = v;
  else
    ((uint16_t *)p)[i] = narrow(f2u(v), dt);
}
__host__ __device__ float vec(const void *p, int64_t i, float dflt) {
  return p ? ((const float *)p)[i] : dflt;
}

// Slot s of a call's inputs, element k; and element k of its first output.
__host__ __device__ float in(const ds__tk_args &a, int s, int64_t k) {
  return ld(a.in[s], a.in_dt[s], k);
}
__host__ __device__ void out0(const ds__tk_args &a, int64_t k, float v) {
  st(a.out[0], a.out_dt[0], k, v);
}

__host__ __device__ float act_f(float v, int act) {
  switch (act) {
  case kActRelu: return v > 0.0f ? v : 0.0f;
  case kActGelu: return 0.5f * v * (1.0f + tanhf(kGeluC * (v + kGeluA * v * v * v)));
  case kActSilu: return v / (1.0f + expf(-v));
  default: return v;
  }
}
__host__ __device__ float act_grad(float v, int act) {
  switch (act) {
  case kActRelu: return v > 0.0f ? 1.0f : 0.0f;
  case kActGelu: {
    float t = tanhf(kGeluC * (v + kGeluA * v * v * v));
    return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * v * v);
  }
  case kActSilu: {
    float s = 1.0f / (1.0f + expf(-v));
    return s * (1.0f + v * (1.0f - s));
  }
  default: return 1.0f;
  }
}

// The host team: one thread owns the whole row, reductions are the identity.
struct HostTeam {
  int tid() const { return 0; }
  int size() const { return 1; }
  double sum(double v) { return v; }
  float max(float v) { return v; }
};

#ifdef __CUDACC__
// The device team: the thread block; reductions go through warp shuffles and shared memory
// and every thread gets the result.
struct DevTeam {
  double *sh; // kBlock / 32 + 1 slots
  __device__ int tid() const { return (int)threadIdx.x; }
  __device__ int size() const { return (int)blockDim.x; }
  __device__ double sum(double v) {
    for (int o = 16; o; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads(); // earlier readers of sh are done
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
      double s = 0;
      for (unsigned w = 0; w < blockDim.x / 32; w++) s += sh[w];
      sh[kBlock / 32] = s;
    }
    __syncthreads();
    return sh[kBlock / 32];
  }
  __device__ float max(float v) {
    for (int o = 16; o; o >>= 1) {
      float u = __shfl_down_sync(0xffffffffu, v, o);
      v = u > v ? u : v;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
      float m = (float)sh[0];
      for (unsigned w = 1; w < blockDim.x / 32; w++) m = (float)sh[w] > m ? (float)sh[w] : m;
      sh[kBlock / 32] = m;
    }
    __syncthreads();
    return (float)sh[kBlock / 32];
  }
};
#endif

// Row maximum as the CPU computes it (start from element 0, NaN-blind comparisons).
#pragma nv_exec_check_disable
template <class T> __host__ __device__ float row_max(T &t, const void *x, int dt, int64_t base,
                                                     int64_t cols) {
  float mx = ld(x, dt, base);
  for (int64_t j = t.tid(); j < cols; j += t.size()) {
    float v = ld(x, dt, base + j);
    mx = v > mx ? v : mx;
  }
  return t.max(mx);
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void softmax_fwd(T &t, const ds__tk_args &a, int64_t i) {
  int64_t c = a.cols, b = i * c;
  float mx = row_max(t, a.in[0], a.in_dt[0], b, c);
  double s = 0;
  for (int64_t j = t.tid(); j < c; j += t.size()) s += exp((double)in(a, 0, b + j) - mx);
  double sum = t.sum(s), lse = log(sum);
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    double z = (double)in(a, 0, b + j) - mx;
    out0(a, b + j, (float)(a.flag ? z - lse : exp(z) / sum));
  }
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void softmax_bwd(T &t, const ds__tk_args &a, int64_t i) {
  int64_t c = a.cols, b = i * c;
  double s = 0;
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    double g = in(a, 0, b + j);
    s += a.flag ? g : g * in(a, 1, b + j);
  }
  s = t.sum(s);
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    float g = in(a, 0, b + j), y = in(a, 1, b + j);
    out0(a, b + j, (float)(a.flag ? g - exp((double)y) * s : y * ((double)g - s)));
  }
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void ln_fwd(T &t, const ds__tk_args &a, int64_t i) {
  int64_t c = a.cols, b = i * c;
  double s = 0, s2 = 0;
  for (int64_t j = t.tid(); j < c; j += t.size()) s += in(a, 0, b + j);
  double mu = t.sum(s) / (double)c;
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    double d = (double)in(a, 0, b + j) - mu;
    s2 += d * d;
  }
  double r = 1.0 / sqrt(t.sum(s2) / (double)c + a.eps);
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    double v = ((double)in(a, 0, b + j) - mu) * r;
    out0(a, b + j, (float)(v * vec(a.in[1], j, 1.0f) + vec(a.in[2], j, 0.0f)));
  }
  if (t.tid() == 0 && a.out[1]) ((float *)a.out[1])[i] = (float)mu;
  if (t.tid() == 0 && a.out[2]) ((float *)a.out[2])[i] = (float)r;
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void ln_bwd(T &t, const ds__tk_args &a, int64_t i) {
  int64_t c = a.cols, b = i * c;
  double mu = ((const float *)a.in[2])[i], r = ((const float *)a.in[3])[i], sd = 0, sdx = 0;
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    float g = in(a, 0, b + j);
    double xh = ((double)in(a, 1, b + j) - mu) * r, d = (double)g * vec(a.in[4], j, 1.0f);
    sd += d, sdx += d * xh;
  }
  sd = t.sum(sd) / (double)c, sdx = t.sum(sdx) / (double)c;
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    float g = in(a, 0, b + j);
    double xh = ((double)in(a, 1, b + j) - mu) * r, d = (double)g * vec(a.in[4], j, 1.0f);
    out0(a, b + j, (float)(r * (d - sd - xh * sdx)));
  }
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void rms_fwd(T &t, const ds__tk_args &a, int64_t i) {
  int64_t c = a.cols, b = i * c;
  double s2 = 0;
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    double v = in(a, 0, b + j);
    s2 += v * v;
  }
  double r = 1.0 / sqrt(t.sum(s2) / (double)c + a.eps);
  for (int64_t j = t.tid(); j < c; j += t.size())
    out0(a, b + j, (float)((double)in(a, 0, b + j) * r * vec(a.in[1], j, 1.0f)));
  if (t.tid() == 0 && a.out[1]) ((float *)a.out[1])[i] = (float)r;
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void rms_bwd(T &t, const ds__tk_args &a, int64_t i) {
  int64_t c = a.cols, b = i * c;
  double r = ((const float *)a.in[2])[i], sdx = 0;
  for (int64_t j = t.tid(); j < c; j += t.size())
    sdx += (double)in(a, 0, b + j) * vec(a.in[3], j, 1.0f) * in(a, 1, b + j);
  sdx = t.sum(sdx) / (double)c;
  for (int64_t j = t.tid(); j < c; j += t.size()) {
    double d = (double)in(a, 0, b + j) * vec(a.in[3], j, 1.0f);
    double x = in(a, 1, b + j);
    out0(a, b + j, (float)(r * d - x * r * r * r * sdx));
  }
}

// Cross-entropy of row i: its loss term goes to row_loss[i] (summed in order afterwards).
#pragma nv_exec_check_disable
template <class T> __host__ __device__ void ce_row(T &t, const ds__tk_args &a, int64_t i,
                                                   double *row_loss, int *bad) {
  int64_t c = a.cols, b = i * c;
  int32_t lab = ((const int32_t *)a.in[1])[i];
  if (lab < 0 || lab >= c) {
    if (t.tid() == 0) *bad = 1;
    return;
  }
  float mx = row_max(t, a.in[0], a.in_dt[0], b, c);
  double s = 0;
  for (int64_t j = t.tid(); j < c; j += t.size()) s += exp((double)in(a, 0, b + j) - mx);
  double lse = mx + log(t.sum(s));
  if (t.tid() == 0) row_loss[i] = lse - in(a, 0, b + lab);
  if (a.out[0])
    for (int64_t j = t.tid(); j < c; j += t.size())
      out0(a, b + j,
         (float)((exp((double)in(a, 0, b + j) - lse) - (j == lab)) / (double)a.rows));
}

// The elementwise ops of row i (bias_act, embedding) or of flat chunk i (EW).
__host__ __device__ void elem(const ds__tk_args &a, int64_t i, int64_t j, int *bad) {
  int64_t c = a.cols, k = i * c + j;
  switch (a.op) {
  case DS__TK_BIAS_ACT_FWD:
    out0(a, k, act_f(in(a, 0, k) + vec(a.in[1], j, 0.0f), a.flag));
    return;
  case DS__TK_BIAS_ACT_BWD: {
    float v = in(a, 1, k) + vec(a.in[2], j, 0.0f);
    out0(a, k, in(a, 0, k) * act_grad(v, a.flag));
    return;
  }
  case DS__TK_EMB_FWD:
  case DS__TK_EMB_BWD: {
    int32_t id = ((const int32_t *)a.in[1])[i];
    if (id < 0 || id >= a.vocab) {
      *bad = 1;
      return;
    }
    if (a.op == DS__TK_EMB_FWD) {
      out0(a, k, in(a, 0, (int64_t)id * c + j));
      return;
    }
    float *d = (float *)a.out[0] + (int64_t)id * c + j;
#ifdef __CUDA_ARCH__
    atomicAdd(d, in(a, 0, k));
#else
    *d += in(a, 0, k);
#endif
    return;
  }
  default: break;
  }
}

__host__ __device__ void ew(const ds__tk_args &a, int64_t k) {
  float x = in(a, 0, k);
  float v = a.flag == kEwScale ? a.s * x
          : a.flag == kEwAdd   ? x + in(a, 1, k)
                               : x * in(a, 1, k);
  out0(a, k, v);
}

// Column j's parameter gradients, summed over the rows in order in fp32 as the CPU does.
__host__ __device__ void col_sums(const ds__tk_args &a, int64_t j) {
  int64_t c = a.cols;
  float s0 = 0.0f, s1 = 0.0f;
  for (int64_t i = 0; i < a.rows; i++) {
    int64_t k = i * c + j;
    float g = in(a, 0, k);
    if (a.op == DS__TK_BIAS_ACT_BWD) {
      s0 += g * act_grad(in(a, 1, k) + vec(a.in[2], j, 0.0f), a.flag);
    } else if (a.op == DS__TK_LN_BWD) {
      double mu = ((const float *)a.in[2])[i], r = ((const float *)a.in[3])[i];
      s0 += (float)(g * (((double)in(a, 1, k) - mu) * r));
      s1 += g;
    } else { // RMS_BWD
      s0 += (float)((double)g * in(a, 1, k) * ((const float *)a.in[2])[i]);
    }
  }
  if (a.out[1]) ((float *)a.out[1])[j] = s0;
  if (a.op == DS__TK_LN_BWD && a.out[2]) ((float *)a.out[2])[j] = s1;
}

// Reduction partial of elements start, start + stride, ...
struct Partial {
  double sum;
  float amax;
  int bad, nan;
};
__host__ __device__ Partial reduce_part(const ds__tk_args &a, int64_t start, int64_t stride) {
  Partial p = {0.0, 0.0f, 0, 0};
  for (int64_t k = start; k < a.cols; k += stride) {
    float v = in(a, 0, k), av = fabsf(v);
    p.sum += v;
    p.amax = av > p.amax ? av : p.amax;
    p.bad |= !(av <= 3.40282347e38f);
    p.nan |= v != v;
  }
  return p;
}

void combine(ds__tk_args *a, const Partial *p, int n) {
  Partial r = {0.0, 0.0f, 0, 0};
  for (int i = 0; i < n; i++) {
    r.sum += p[i].sum;
    r.amax = p[i].amax > r.amax ? p[i].amax : r.amax;
    r.bad |= p[i].bad, r.nan |= p[i].nan;
  }
  a->result = a->flag == kSum ? r.sum : a->flag == kAmax ? (r.nan ? (double)NAN : r.amax) : !r.bad;
}

int has_col_pass(const ds__tk_args &a) {
  return (a.op == DS__TK_BIAS_ACT_BWD && a.out[1]) ||
         (a.op == DS__TK_LN_BWD && (a.out[1] || a.out[2])) || (a.op == DS__TK_RMS_BWD && a.out[1]);
}

#pragma nv_exec_check_disable
template <class T> __host__ __device__ void row_op(T &t, const ds__tk_args &a, int64_t i,
                                                   double *row_loss, int *bad) {
  switch (a.op) {
  case DS__TK_SOFTMAX_FWD: softmax_fwd(t, a, i); return;
  case DS__TK_SOFTMAX_BWD: softmax_bwd(t, a, i); return;
  case DS__TK_LN_FWD: ln_fwd(t, a, i); return;
  case DS__TK_LN_BWD: ln_bwd(t, a, i); return;
  case DS__TK_RMS_FWD: rms_fwd(t, a, i); return;
  case DS__TK_RMS_BWD: rms_bwd(t, a, i); return;
  case DS__TK_CE: ce_row(t, a, i, row_loss, bad); return;
  case DS__TK_EW: {
    int64_t end = (i + 1) * kEwChunk < a.cols ? (i + 1) * kEwChunk : a.cols;
    for (int64_t k = i * kEwChunk + t.tid(); k < end; k += t.size()) ew(a, k);
    return;
  }
  default:
    for (int64_t j = t.tid(); j < a.cols; j += t.size()) elem(a, i, j, bad);
    return;
  }
}

__host__ __device__ int64_t row_count(const ds__tk_args &a) {
  return a.op == DS__TK_EW ? (a.cols + kEwChunk - 1) / kEwChunk : a.rows;
}

#ifdef __CUDACC__
__global__ void rows_kernel(ds__tk_args a, double *row_loss, int *bad) {
  __shared__ double sh[kBlock / 32 + 1];
  DevTeam t{sh};
  int64_t n = row_count(a);
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) row_op(t, a, i, row_loss, bad);
}

__global__ void cols_kernel(ds__tk_args a) {
  for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < a.cols;
       j += (int64_t)gridDim.x * blockDim.x)
    col_sums(a, j);
}

__global__ void reduce_kernel(ds__tk_args a, Partial *out) {
  int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  out[tid] = reduce_part(a, tid, (int64_t)gridDim.x * blockDim.x);
}
#endif

ds_status report(cudaError_t e, const char *what, char *msg, size_t msg_size) {
  if (e == cudaSuccess) return DS_OK;
  snprintf(msg, msg_size, "%s: %s", what, cudaGetErrorString(e));
  return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ? DS_ERR_UNAVAILABLE
                                                                    : DS_ERR_DEVICE;
}

ds_status bad_index(const ds__tk_args *a, char *msg, size_t msg_size) {
  snprintf(msg, msg_size, "%s out of range", a->op == DS__TK_CE ? "a label" : "an id");
  return DS_ERR_INVALID_ARG;
}

double sum_rows(const double *row_loss, int64_t rows) {
  double total = 0;
  for (int64_t i = 0; i < rows; i++) total += row_loss[i];
  return rows ? total / (double)rows : 0.0;
}

// Device scratch of one call: per-row losses or reduction partials, and the bad-index flag.
struct DevScratch {
  void *buf = nullptr;
  int *bad = nullptr;
  ~DevScratch() { cudaFree(buf), cudaFree(bad); }
};

ds_status run_device(ds__tk_args *a, char *msg, size_t msg_size) {
  DevScratch s;
  size_t nbuf = a->op == DS__TK_CE ? (size_t)a->rows * sizeof(double)
              : a->op == DS__TK_REDUCE ? (size_t)kReduceBlocks * kBlock * sizeof(Partial) : 0;
  ds_status rc;
  if (nbuf && (rc = report(cudaMalloc(&s.buf, nbuf), "scratch", msg, msg_size))) return rc;
  if ((rc = report(cudaMalloc((void **)&s.bad, sizeof(int)), "scratch", msg, msg_size)) ||
      (rc = report(cudaMemset(s.bad, 0, sizeof(int)), "scratch", msg, msg_size)))
    return rc;
  if (a->op == DS__TK_REDUCE) {
    reduce_kernel<<<kReduceBlocks, kBlock>>>(*a, (Partial *)s.buf);
  } else {
    int64_t n = row_count(*a);
    unsigned grid = (unsigned)(n < 65535 * 16 ? n : 65535 * 16);
    if (grid) rows_kernel<<<grid, kBlock>>>(*a, (double *)s.buf, s.bad);
    if (grid && has_col_pass(*a))
      cols_kernel<<<(unsigned)((a->cols + kBlock - 1) / kBlock), kBlock>>>(*a);
  }
  if ((rc = report(cudaGetLastError(), "launch", msg, msg_size)) ||
      (rc = report(cudaDeviceSynchronize(), "kernel", msg, msg_size)))
    return rc;
  int bad = 0;
  if ((rc = report(cudaMemcpy(&bad, s.bad, sizeof bad, cudaMemcpyDeviceToHost), "copy", msg,
                   msg_size)))
    return rc;
  if (bad) return bad_index(a, msg, msg_size);
  if (a->op == DS__TK_REDUCE) {
    Partial *p = (Partial *)malloc(nbuf);
    if (!p) return DS_ERR_NO_MEMORY;
    rc = report(cudaMemcpy(p, s.buf, nbuf, cudaMemcpyDeviceToHost), "copy", msg, msg_size);
    if (!rc) combine(a, p, kReduceBlocks * kBlock);
    free(p);
  } else if (a->op == DS__TK_CE) {
    double *l = (double *)malloc(nbuf ? nbuf : 1);
    if (!l) return DS_ERR_NO_MEMORY;
    rc = report(cudaMemcpy(l, s.buf, nbuf, cudaMemcpyDeviceToHost), "copy", msg, msg_size);
    if (!rc) a->result = sum_rows(l, a->rows);
    free(l);
  }
  return rc;
}

} // namespace

extern "C" ds_status ds__cuda_train_run(ds__tk_args *a, char *msg, size_t msg_size) {
  return run_device(a, msg, msg_size);
}

extern "C" ds_status ds__cuda_train_host_run(ds__tk_args *a, char *msg, size_t msg_size) {
  HostTeam t;
  int bad = 0;
  if (a->op == DS__TK_REDUCE) {
    Partial p = reduce_part(*a, 0, 1);
    combine(a, &p, 1);
    return DS_OK;
  }
  double *row_loss = nullptr;
  if (a->op == DS__TK_CE && !(row_loss = (double *)calloc((size_t)a->rows + 1, sizeof(double))))
    return DS_ERR_NO_MEMORY;
  int64_t n = row_count(*a);
  for (int64_t i = 0; i < n; i++) row_op(t, *a, i, row_loss, &bad);
  if (!bad && has_col_pass(*a))
    for (int64_t j = 0; j < a->cols; j++) col_sums(*a, j);
  if (!bad && a->op == DS__TK_CE) a->result = sum_rows(row_loss, a->rows);
  free(row_loss);
  return bad ? bad_index(a, msg, msg_size) : DS_OK;
}
