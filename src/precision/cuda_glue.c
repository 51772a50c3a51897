/* The CUDA path of the precision module, C side: device presence, tensor conversions and
 * training kernels through the nvcc-compiled kernels, and GEMM through cuBLAS loaded with dlopen at first use (no link
 * dependency: the library still loads and runs its CPU paths where cuBLAS, the driver or a GPU
 * is missing). One cuBLAS handle per context, used under the module mutex. */
#include <dlfcn.h>

#include "build_config.h"
#include "cuda_backend.h"
#include "precision_internal.h"
#include "topology_internal.h"

struct ds__cuda_state {
  void *handle; /* cublasHandle_t */
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
  if (!p->cuda && (p->cuda = ds__calloc(ctx, 1, sizeof *p->cuda)) != NULL &&
      ds__cublas.create(&p->cuda->handle) != 0)
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
#endif
  ds__free(ctx, c);
}
