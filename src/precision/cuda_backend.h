/* Internal: the CUDA half of the precision module, shared by the nvcc-compiled side
 * (cuda/convert.cu) and the C side (cuda_glue.c). Plain C and C++-compatible types only. All
 * calls are synchronous on the calling thread's current device and the legacy default stream;
 * failures come back as a status plus a message in @p msg (the .cu cannot include the core's
 * C11 internal header). Built only with CUDA; cuda_glue.c stubs them otherwise. */
#ifndef DS_PRECISION_CUDA_BACKEND_H
#define DS_PRECISION_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

DS_EXTERN_C_BEGIN

/* Converts n elements between dtypes (ds_dtype numbers: F32, F16, BF16) in device memory with
 * the same bit-exact rounding as the CPU reference. */
ds_status ds__cuda_convert_run(void *dst, int dst_dtype, const void *src, int src_dtype, size_t n,
                               char *msg, size_t msg_size);
/* Runs the device rounding functions on the host over all 16-bit patterns and the given fp32
 * patterns, against reference callbacks (dtype 1 = F16, 2 = BF16); the number of mismatches. */
size_t ds__cuda_convert_host_check(const uint32_t *f32_patterns, size_t n,
                                   uint16_t (*ref_narrow)(uint32_t, int),
                                   uint32_t (*ref_widen)(uint16_t, int));
/* One training-kernel call (cuda/train.cu). Slots per op (dtypes are ds_dtype numbers; the
 * vectors and dtable are F32, labels/ids I32):
 *   BIAS_ACT_FWD  out y            in x, bias                      flag act
 *   BIAS_ACT_BWD  out dx, dbias    in dy, x, bias                  flag act
 *   SOFTMAX_FWD   out y            in x                            flag log
 *   SOFTMAX_BWD   out dx           in dy, y                        flag log
 *   LN_FWD        out y, mean, rstd in x, gamma, beta              eps
 *   LN_BWD        out dx, dgamma, dbeta in dy, x, mean, rstd, gamma
 *   RMS_FWD       out y, rstd      in x, gamma                     eps
 *   RMS_BWD       out dx, dgamma   in dy, x, rstd, gamma
 *   CE            out dlogits      in logits, labels               result = loss
 *   EMB_FWD       out y            in table, ids                   vocab
 *   EMB_BWD       out dtable       in dy, ids                      vocab
 *   EW            out y            in a, b (cols = n, rows = 1)    flag op, s
 *   REDUCE        -                in x (cols = n, rows = 1)       flag op, result
 * Optional slots are NULL. A label/id out of range gives DS_ERR_INVALID_ARG. */
enum {
  DS__TK_BIAS_ACT_FWD, DS__TK_BIAS_ACT_BWD, DS__TK_SOFTMAX_FWD, DS__TK_SOFTMAX_BWD,
  DS__TK_LN_FWD, DS__TK_LN_BWD, DS__TK_RMS_FWD, DS__TK_RMS_BWD, DS__TK_CE, DS__TK_EMB_FWD,
  DS__TK_EMB_BWD, DS__TK_EW, DS__TK_REDUCE, DS__TK_OPS
};
typedef struct ds__tk_args {
  int op, flag;
  int64_t rows, cols, vocab;
  void *out[3];
  int out_dt[3];
  const void *in[5];
  int in_dt[5];
  float eps, s;
  double result;
} ds__tk_args;
/* Runs @p a on the current CUDA device (pointers in device memory), synchronously. */
ds_status ds__cuda_train_run(ds__tk_args *a, char *msg, size_t msg_size);
/* Runs the same kernel code on the host, one thread standing for the whole block (pointers in
 * host memory): lets the tests check the CUDA kernels' math without a GPU. */
ds_status ds__cuda_train_host_run(ds__tk_args *a, char *msg, size_t msg_size);
/* Waits for the device; reports an asynchronous error of earlier work. */
ds_status ds__cuda_sync_run(char *msg, size_t msg_size);
/* For tests: device memory and copies (kind 0 host->device, 1 device->host). */
ds_status ds__cuda_test_alloc(void **p, size_t bytes);
void ds__cuda_test_free(void *p);
ds_status ds__cuda_test_copy(void *dst, const void *src, size_t bytes, int kind);

DS_EXTERN_C_END

#endif /* DS_PRECISION_CUDA_BACKEND_H */
