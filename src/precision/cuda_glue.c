/* The CUDA path of the precision module, C side: device presence, tensor conversions and
 * training kernels through the nvcc-compiled kernels, and GEMM through cuBLAS loaded with
 * dlopen at first use (no link dependency: the library still loads and runs its CPU paths
 * where cuBLAS, the driver or a GPU is missing), and softmax through cuDNN loaded likewise. One cuBLAS and one cuDNN handle per
 * context, used under the module mutex. */
#include <dlfcn.h>

#include "build_config.h"
#include "cuda_backend.h"
#include "precision_internal.h"
#include "topology_internal.h"

struct ds__cuda_state {
  void *handle; /* cublasHandle_t */
  void *cudnn;  /* cudnnHandle_t, created on the first cuDNN softmax */
  void *desc[3]; /* cudnnTensorDescriptor_t: x/dy, y, dx */
};

#if DS_HAVE_CUDA
/* cuBLAS ABI numbers (cublas_api.h, library_types.h), stable across cuBLAS 11-13. */
enum { CUBLAS_OP_N_ = 0, CUBLAS_OP_T_ = 1, CUBLAS_COMPUTE_32F_ = 68, CUBLAS_GEMM_DEFAULT_ = -1 };
enum { CUDA_R_32F_ = 0, CUDA_R_16F_ = 2, CUDA_R_16BF_ = 14 };

typedef int (*cublas_create_fn)(void **handle);
typedef int (*cublas_destroy_fn)(void *handle);
typedef int (*cublas_gemm_fn)(void *h, int ta, int tb, int m, int n, int k, const void *alpha,
                              const void *a, int at, int lda, long long sa, const void *b, int bt,
                              int ldb, long long sb, const void *beta, void *c, int ct, int ldc,
                              long long sc, int batch, int compute, int algo);

static struct {
  pthread_once_t once;
  void *lib;
  cublas_create_fn create;
  cublas_destroy_fn destroy;
  cublas_gemm_fn gemm;
} ds__cublas = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL};

static void ds__cublas_load(void) {
  static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !ds__cublas.lib; i++)
    ds__cublas.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!ds__cublas.lib) return;
  *(void **)&ds__cublas.create = dlsym(ds__cublas.lib, "cublasCreate_v2");
  *(void **)&ds__cublas.destroy = dlsym(ds__cublas.lib, "cublasDestroy_v2");
  *(void **)&ds__cublas.gemm = dlsym(ds__cublas.lib, "cublasGemmStridedBatchedEx");
  if (!ds__cublas.create || !ds__cublas.destroy || !ds__cublas.gemm) ds__cublas.gemm = NULL;
}

/* cuDNN (9.x ABI: cudnn_graph.h, cudnn_ops.h), for softmax / log-softmax, the training
 * kernels it offers; loaded the same way. */
enum { CUDNN_DATA_FLOAT_ = 0, CUDNN_DATA_HALF_ = 2, CUDNN_DATA_BFLOAT16_ = 9, CUDNN_NCHW_ = 0 };
enum { CUDNN_SOFTMAX_ACCURATE_ = 1, CUDNN_SOFTMAX_LOG_ = 2, CUDNN_SOFTMAX_MODE_INSTANCE_ = 0 };
typedef int (*cudnn_handle_fn)(void **h);
typedef int (*cudnn_set4d_fn)(void *d, int fmt, int type, int n, int c, int h, int w);
typedef int (*cudnn_sm_fwd_fn)(void *h, int algo, int mode, const void *alpha, void *xd,
                               const void *x, const void *beta, void *yd, void *y);
typedef int (*cudnn_sm_bwd_fn)(void *h, int algo, int mode, const void *alpha, void *yd,
                               const void *y, void *dyd, const void *dy, const void *beta,
                               void *dxd, void *dx);

static struct {
  pthread_once_t once;
  void *lib;
  cudnn_handle_fn create, destroy, create_desc, destroy_desc;
  cudnn_set4d_fn set4d;
  cudnn_sm_fwd_fn fwd;
  cudnn_sm_bwd_fn bwd;
} ds__cudnn = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

static void ds__cudnn_load(void) {
  static const char *const names[] = {"libcudnn.so.9", "libcudnn.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !ds__cudnn.lib; i++)
    ds__cudnn.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!ds__cudnn.lib) return;
  *(void **)&ds__cudnn.create = dlsym(ds__cudnn.lib, "cudnnCreate");
  *(void **)&ds__cudnn.destroy = dlsym(ds__cudnn.lib, "cudnnDestroy");
  *(void **)&ds__cudnn.create_desc = dlsym(ds__cudnn.lib, "cudnnCreateTensorDescriptor");
  *(void **)&ds__cudnn.destroy_desc = dlsym(ds__cudnn.lib, "cudnnDestroyTensorDescriptor");
  *(void **)&ds__cudnn.set4d = dlsym(ds__cudnn.lib, "cudnnSetTensor4dDescriptor");
  *(void **)&ds__cudnn.fwd = dlsym(ds__cudnn.lib, "cudnnSoftmaxForward");
  *(void **)&ds__cudnn.bwd = dlsym(ds__cudnn.lib, "cudnnSoftmaxBackward");
  if (!ds__cudnn.create || !ds__cudnn.destroy || !ds__cudnn.create_desc ||
      !ds__cudnn.destroy_desc || !ds__cudnn.set4d || !ds__cudnn.bwd)
    ds__cudnn.fwd = NULL;
}

static int cudnn_type(int t) {
  return t == DS_DTYPE_F16 ? CUDNN_DATA_HALF_ : t == DS_DTYPE_BF16 ? CUDNN_DATA_BFLOAT16_
                                                                  : CUDNN_DATA_FLOAT_;
}

/* The context's cuDNN handle and descriptors (under p->mu); NULL when cuDNN is missing. */
static struct ds__cuda_state *cudnn_state(ds_context *ctx, struct ds__precision *p) {
  if (!p->cuda && !(p->cuda = ds__calloc(ctx, 1, sizeof *p->cuda))) return NULL;
  struct ds__cuda_state *c = p->cuda;
  if (!c->cudnn) {
    if (ds__cudnn.create(&c->cudnn) != 0) return c->cudnn = NULL;
    for (int i = 0; i < 3; i++)
      if (ds__cudnn.create_desc(&c->desc[i]) != 0) c->desc[i] = NULL;
  }
  return c->desc[0] && c->desc[1] && c->desc[2] ? c : NULL;
}

/* Softmax / log-softmax forward or backward through cuDNN (mode INSTANCE over a
 * [rows, cols, 1, 1] tensor, fp32 compute). DS_ERR_UNSUPPORTED when it does not apply
 * (turned off, cuDNN missing, operands of different dtypes, sizes over int): the caller then
 * runs its own kernel. */
static ds_status softmax_cudnn(ds_context *ctx, const ds__tk_args *a) {
  int fwd = a->op == DS__TK_SOFTMAX_FWD, t = a->in_dt[0];
  if (!ds__param(ctx, DS_PARAM_PRECISION_CUDNN) || a->out_dt[0] != t ||
      (!fwd && a->in_dt[1] != t) || a->rows > INT32_MAX || a->cols > INT32_MAX)
    return DS_ERR_UNSUPPORTED;
  pthread_once(&ds__cudnn.once, ds__cudnn_load);
  struct ds__precision *p = ds__precision_get(ctx);
  if (!ds__cudnn.fwd || !p) return DS_ERR_UNSUPPORTED;
  pthread_mutex_lock(&p->mu);
  struct ds__cuda_state *c = cudnn_state(ctx, p);
  int rc = -1, algo = a->flag ? CUDNN_SOFTMAX_LOG_ : CUDNN_SOFTMAX_ACCURATE_;
  float one = 1.0f, zero = 0.0f;
  if (c && ds__cudnn.set4d(c->desc[0], CUDNN_NCHW_, cudnn_type(t), (int)a->rows, (int)a->cols,
                           1, 1) == 0)
    rc = fwd ? ds__cudnn.fwd(c->cudnn, algo, CUDNN_SOFTMAX_MODE_INSTANCE_, &one, c->desc[0],
                             a->in[0], &zero, c->desc[0], a->out[0])
             : ds__cudnn.bwd(c->cudnn, algo, CUDNN_SOFTMAX_MODE_INSTANCE_, &one, c->desc[0],
                             a->in[1], c->desc[0], a->in[0], &zero, c->desc[0], a->out[0]);
  pthread_mutex_unlock(&p->mu);
  /* no handle, or a case this cuDNN does not support (statuses 2000-3999: bad or unsupported
   * parameters, e.g. a dtype on this GPU): our own kernel takes it */
  if (!c || (rc >= 2000 && rc < 4000)) return DS_ERR_UNSUPPORTED;
  if (rc != 0)
    return ds__error(ctx, DS_ERR_DEVICE, "precision", "softmax on CUDA: cuDNN status %d", rc);
  char msg[256] = "";
  ds_status s = ds__cuda_sync_run(msg, sizeof msg); /* cuDNN queued it on the default stream */
  if (s != DS_OK) return ds__error(ctx, s, "precision", "softmax on CUDA (cuDNN): %s", msg);
  ds__stat_add(ctx, p->stat_cudnn, 1.0);
  return DS_OK;
}

static int cuda_type(ds_dtype t) {
  return t == DS_DTYPE_F16 ? CUDA_R_16F_ : t == DS_DTYPE_BF16 ? CUDA_R_16BF_ : CUDA_R_32F_;
}
#endif

int ds__cuda_present(ds_context *ctx) {
#if DS_HAVE_CUDA
  return ds__cuda_driver_devices(ctx, NULL) > 0;
#else
  (void)ctx;
  return 0;
#endif
}

static ds_status no_device(ds_context *ctx, const char *what) {
#if DS_HAVE_CUDA
  return ds__error(ctx, DS_ERR_UNAVAILABLE, "precision", "%s: no CUDA device on this machine",
                   what);
#else
  return ds__error(ctx, DS_ERR_UNSUPPORTED, "precision", "%s: built without CUDA", what);
#endif
}

ds_status ds__cuda_convert(ds_context *ctx, void *dst, ds_dtype dt, const void *src, ds_dtype st,
                           size_t n) {
  if (!ds__cuda_present(ctx)) return no_device(ctx, "convert");
#if DS_HAVE_CUDA
  char msg[256] = "";
  ds_status s = ds__cuda_convert_run(dst, (int)dt, src, (int)st, n, msg, sizeof msg);
  return s == DS_OK ? DS_OK : ds__error(ctx, s, "precision", "convert on CUDA: %s", msg);
#else
  (void)dst, (void)dt, (void)src, (void)st, (void)n;
  return DS_ERR_UNSUPPORTED;
#endif
}

ds_status ds__gemm_cuda(ds_context *ctx, const ds__gemm_2d *g, int64_t batch, int64_t sa,
                        int64_t sb, int64_t sc) {
  if (!ds__cuda_present(ctx)) return no_device(ctx, "gemm");
#if DS_HAVE_CUDA
  if (g->ta != g->tb || (g->tc != g->ta && g->tc != DS_DTYPE_F32))
    return ds__error(ctx, DS_ERR_DTYPE, "precision",
                     "gemm on CUDA: A and B must share a dtype and C be that dtype or f32 "
                     "(A %s, B %s, C %s)", ds_dtype_name(g->ta), ds_dtype_name(g->tb),
                     ds_dtype_name(g->tc));
  pthread_once(&ds__cublas.once, ds__cublas_load);
  if (!ds__cublas.gemm)
    return ds__error(ctx, DS_ERR_UNAVAILABLE, "precision", "gemm on CUDA: cannot load cuBLAS");
  struct ds__precision *p = ds__precision_get(ctx);
  if (!p) return ds__error(ctx, DS_ERR_NO_MEMORY, "precision", "gemm: no memory for state");
  pthread_mutex_lock(&p->mu);
  if (!p->cuda) p->cuda = ds__calloc(ctx, 1, sizeof *p->cuda); /* may hold cuDNN already */
  if (p->cuda && !p->cuda->handle && ds__cublas.create(&p->cuda->handle) != 0)
    p->cuda->handle = NULL;
  int rc = -1;
  if (p->cuda && p->cuda->handle) /* row-major C = A B is column-major C^T = B^T A^T */
    rc = ds__cublas.gemm(p->cuda->handle, g->trans_b ? CUBLAS_OP_T_ : CUBLAS_OP_N_,
                         g->trans_a ? CUBLAS_OP_T_ : CUBLAS_OP_N_, (int)g->n, (int)g->m,
                         (int)g->k, &g->alpha, g->b, cuda_type(g->tb), (int)g->ldb, sb, g->a,
                         cuda_type(g->ta), (int)g->lda, sa, &g->beta, g->c, cuda_type(g->tc),
                         (int)g->ldc, sc, (int)batch, CUBLAS_COMPUTE_32F_, CUBLAS_GEMM_DEFAULT_);
  pthread_mutex_unlock(&p->mu);
  if (rc != 0)
    return ds__error(ctx, DS_ERR_DEVICE, "precision", "gemm on CUDA: cuBLAS status %d", rc);
  char msg[256] = "";
  ds_status s = ds__cuda_sync_run(msg, sizeof msg);
  return s == DS_OK ? DS_OK : ds__error(ctx, s, "precision", "gemm on CUDA: %s", msg);
#else
  (void)g, (void)batch, (void)sa, (void)sb, (void)sc;
  return DS_ERR_UNSUPPORTED;
#endif
}

ds_status ds__cuda_train(ds_context *ctx, struct ds__tk_args *a, const char *what) {
  if (!ds__cuda_present(ctx)) return no_device(ctx, what);
#if DS_HAVE_CUDA
  if (a->op == DS__TK_SOFTMAX_FWD || a->op == DS__TK_SOFTMAX_BWD) {
    ds_status sc = softmax_cudnn(ctx, a);
    if (sc != DS_ERR_UNSUPPORTED) return sc;
  }
  char msg[256] = "";
  ds_status s = ds__cuda_train_run(a, msg, sizeof msg);
  return s == DS_OK ? DS_OK : ds__error(ctx, s, "precision", "%s on CUDA: %s", what, msg);
#else
  (void)a;
  return DS_ERR_UNSUPPORTED;
#endif
}

void ds__cuda_state_destroy(ds_context *ctx, struct ds__cuda_state *c) {
  if (!c) return;
#if DS_HAVE_CUDA
  if (c->handle && ds__cublas.destroy) ds__cublas.destroy(c->handle);
  for (int i = 0; i < 3; i++)
    if (c->desc[i]) ds__cudnn.destroy_desc(c->desc[i]);
  if (c->cudnn) ds__cudnn.destroy(c->cudnn);
#endif
  ds__free(ctx, c);
}
