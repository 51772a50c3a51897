/* The thread pools of OpenBLAS and oneDNN when ds_gemm runs inside a scheduler task. Both
 * libraries start their own threads per call (OpenBLAS: its pthread pool, process-wide
 * count; oneDNN and an OpenMP OpenBLAS: the calling thread's OpenMP team), so N workers each
 * calling ds_gemm would ask for N x cores threads. Inside a task we cap them at
 * DS_PARAM_PRECISION_TASK_BLAS_THREADS: per worker thread through omp_set_num_threads (found
 * with dlsym: the OpenMP runtime is there only because oneDNN/OpenBLAS brought it), and
 * process-wide for OpenBLAS's own pool (its only knob) while at least one task is inside a
 * GEMM, restoring the previous count when the last one leaves. */
#include <cblas.h>
#include <dlfcn.h>

#include "precision_internal.h"

/* Set by the scheduler (src/sched/sched.c) while a task runs on this thread. */
extern _Thread_local struct ds_task *ds__tl_task;

typedef void (*omp_set_fn)(int);
static pthread_once_t omp_once = PTHREAD_ONCE_INIT;
static omp_set_fn omp_set;

static void omp_lookup(void) { *(void **)&omp_set = dlsym(RTLD_DEFAULT, "omp_set_num_threads"); }

static pthread_mutex_t blas_mu = PTHREAD_MUTEX_INITIALIZER;
static int blas_inside;   /* tasks inside a GEMM now */
static int blas_saved;    /* OpenBLAS's count before the first of them entered */
static _Thread_local int tl_omp_threads; /* what this worker's OpenMP count was set to */

int ds__prec_blas_enter(ds_context *ctx) {
  if (!ds__tl_task) return 0;
  int n = (int)ds__param(ctx, DS_PARAM_PRECISION_TASK_BLAS_THREADS);
  if (n <= 0) return 0;
  pthread_once(&omp_once, omp_lookup);
  if (omp_set && tl_omp_threads != n) omp_set(n), tl_omp_threads = n;
  pthread_mutex_lock(&blas_mu);
  if (blas_inside++ == 0) blas_saved = openblas_get_num_threads();
  if (openblas_get_num_threads() > n) openblas_set_num_threads(n);
  pthread_mutex_unlock(&blas_mu);
  return 1;
}

void ds__prec_blas_leave(int entered) {
  if (!entered) return;
  pthread_mutex_lock(&blas_mu);
  if (--blas_inside == 0 && openblas_get_num_threads() != blas_saved)
    openblas_set_num_threads(blas_saved);
  pthread_mutex_unlock(&blas_mu);
}
