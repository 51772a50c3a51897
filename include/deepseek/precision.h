/* libdeepseek: mixed-precision kernels (fp32/fp16/bf16 conversion, GEMM) on CPU. */
#ifndef DEEPSEEK_PRECISION_H
#define DEEPSEEK_PRECISION_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"
#include "deepseek/tensor.h"

/** @defgroup precision Precision
 *  Conversions between fp32, fp16 (IEEE binary16) and bf16 (bfloat16), and GEMM with fp32
 *  accumulation on ds_tensor operands.
 *
 *  Numerics (every backend gives bit-identical conversion results):
 *  - fp32 -> fp16 / bf16 rounds to nearest, ties to even, including into the subnormal range
 *    of the target; values at or beyond the target's overflow threshold become ±Inf.
 *  - fp16 / bf16 -> fp32 is exact.
 *  - Inf stays Inf of the same sign. A NaN stays a NaN of the same sign and comes out quiet
 *    (the quiet bit is set; the upper payload bits that fit are kept). So every non-NaN fp16
 *    and bf16 bit pattern survives a round trip through fp32 bit for bit.
 *  - Denormal inputs are never flushed to zero, whatever MXCSR says.
 *
 *  Kernels run on the CPU. The vector code (AVX-512F, or AVX2 + F16C) is chosen once per
 *  context by CPU feature detection; DS_PARAM_PRECISION_ISA can force a lower level.
 *  All functions here are thread-safe on a shared context.
 *  @{ */

/** Instruction-set levels of the CPU kernels (values of DS_PARAM_PRECISION_ISA). */
typedef enum ds_precision_isa {
  DS_PRECISION_ISA_AUTO = 0,   /**< the best this CPU supports */
  DS_PRECISION_ISA_SCALAR = 1, /**< portable C, the reference */
  DS_PRECISION_ISA_AVX2 = 2,   /**< AVX2 + F16C + FMA */
  DS_PRECISION_ISA_AVX512 = 3  /**< AVX-512F + BW */
} ds_precision_isa;

/** Bit flags of ds_gemm(). */
#define DS_GEMM_TRANS_A 0x1u /**< use A transposed: A is stored [K, M] */
#define DS_GEMM_TRANS_B 0x2u /**< use B transposed: B is stored [N, K] (weights as [out, in]) */

DS_EXTERN_C_BEGIN

/** Converts @p n elements from @p src (of @p src_dtype) into @p dst (of @p dst_dtype). Both
 *  dtypes must be DS_DTYPE_F32, DS_DTYPE_F16 or DS_DTYPE_BF16 (same dtype = copy; f16 <-> bf16
 *  goes through fp32, rounding once). Buffers are contiguous, host memory, need no alignment
 *  and must not overlap (unless identical with equal dtypes).
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL ctx, or NULL buffer with n > 0); DS_ERR_DTYPE.
 *  Thread-safe. */
DS_API ds_status ds_precision_convert(ds_context *ctx, void *dst, ds_dtype dst_dtype,
                                      const void *src, ds_dtype src_dtype, size_t n);

/** The kernel level this context uses (after DS_PARAM_PRECISION_ISA and CPU detection).
 *  Thread-safe. */
DS_API ds_precision_isa ds_precision_isa_in_use(ds_context *ctx);
/** "scalar", "avx2", "avx512" or "auto". Static storage. */
DS_API const char *ds_precision_isa_name(ds_precision_isa isa);

/** C = alpha * op(A) * op(B) + beta * C, accumulated in fp32.
 *
 *  Shapes: op(A) is [M, K], op(B) is [K, N], C is [M, N]; with DS_GEMM_TRANS_A, A is stored
 *  [K, M]; with DS_GEMM_TRANS_B, B is stored [N, K]. Batched: C may be 3-D [batch, M, N];
 *  then A and B are 3-D with the same batch, or 2-D (shared by every batch entry). Each
 *  operand's last stride must be 1 and its row stride at least its number of columns; the
 *  batch stride is free (0 broadcasts). dtypes: A, B, C each f32, f16 or bf16, mixed freely.
 *  When beta is 0, C is not read (NaN in C does not propagate).
 *
 *  Paths: all-fp32 goes to OpenBLAS sgemm. M <= 64 with a 16-bit B goes to the skinny kernel
 *  that reads the 16-bit weights directly. 16-bit A and B with M > 64 go to a oneDNN matmul
 *  (primitives cached by shape) when this CPU has a native oneDNN kernel for the dtype, else
 *  they are widened to fp32 and go to sgemm. The error of an element of C is bounded by
 *  about K * 2^-23 * sum|a_ik * b_kj| (fp32 accumulation) plus, for a 16-bit C, half an ulp
 *  of the output format (2^-11 relative for fp16, 2^-8 for bf16; 2^-25 absolute in the fp16
 *  subnormal range).
 *
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL arguments, unknown flags, non-unit last stride,
 *  row stride too small, ndim not 2 or 3); DS_ERR_SHAPE (dimensions disagree; the message
 *  gives all three shapes); DS_ERR_DTYPE (an operand is not f32/f16/bf16);
 *  DS_ERR_UNSUPPORTED (an operand not in CPU memory); DS_ERR_NO_MEMORY.
 *  Thread-safe; concurrent calls may share A and B, not C. */
DS_API ds_status ds_gemm(ds_context *ctx, ds_tensor *c, const ds_tensor *a, const ds_tensor *b,
                         uint32_t flags, float alpha, float beta);

/** @name Training kernels (CPU, fp32)
 *  Forward and backward kernels on contiguous row-major fp32 buffers of @p rows x @p cols
 *  (the layout of a [batch, features] activation). Reductions inside a row (softmax sums,
 *  norm statistics, losses) accumulate in fp64, so each result is within a few fp32 ulps of
 *  the fp64 reference (the tests check 1e-5 relative on typical data). 16-bit activations
 *  are widened with ds_precision_convert() first. All of them: DS_OK; DS_ERR_INVALID_ARG
 *  (NULL ctx or required buffer, negative sizes, a label or id out of range).
 *  Output buffers may alias their matching input (in-place) unless stated otherwise.
 *  Thread-safe (calls on disjoint outputs may run concurrently).
 *  @{ */

/** Activations of ds_bias_act_forward(). GELU is the tanh approximation
 *  0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); SiLU is x sigmoid(x). */
typedef enum ds_activation {
  DS_ACT_NONE = 0,
  DS_ACT_RELU = 1,
  DS_ACT_GELU = 2,
  DS_ACT_SILU = 3
} ds_activation;

/** y = act(x + bias), bias (length cols, may be NULL) broadcast over rows. */
DS_API ds_status ds_bias_act_forward(ds_context *ctx, float *y, const float *x, const float *bias,
                                     int64_t rows, int64_t cols, ds_activation act);
/** dx = dy * act'(x + bias); dbias (may be NULL) = sum over rows of dx (overwritten).
 *  @p x and @p bias are the forward inputs. @p dx may alias @p dy. */
DS_API ds_status ds_bias_act_backward(ds_context *ctx, float *dx, float *dbias, const float *dy,
                                      const float *x, const float *bias, int64_t rows,
                                      int64_t cols, ds_activation act);

/** Row-wise softmax (log_softmax = 0) or log-softmax (1), max-subtracted. */
DS_API ds_status ds_softmax_forward(ds_context *ctx, float *y, const float *x, int64_t rows,
                                    int64_t cols, int log_softmax);
/** Backward of ds_softmax_forward from its output @p y: softmax dx = y (dy - sum(dy y));
 *  log-softmax dx = dy - exp(y) sum(dy). */
DS_API ds_status ds_softmax_backward(ds_context *ctx, float *dx, const float *dy, const float *y,
                                     int64_t rows, int64_t cols, int log_softmax);

/** LayerNorm over each row: y = (x - mean) rstd gamma + beta, rstd = 1/sqrt(var + eps) with the
 *  biased variance. gamma/beta (length cols) may be NULL (1 and 0). mean and rstd (length rows)
 *  receive the statistics for the backward pass (may be NULL when not training). */
DS_API ds_status ds_layernorm_forward(ds_context *ctx, float *y, float *mean, float *rstd,
                                      const float *x, const float *gamma, const float *beta,
                                      int64_t rows, int64_t cols, float eps);
/** dx, and dgamma/dbeta (may be NULL; overwritten, summed over rows), from the forward input
 *  @p x and its @p mean and @p rstd. */
DS_API ds_status ds_layernorm_backward(ds_context *ctx, float *dx, float *dgamma, float *dbeta,
                                       const float *dy, const float *x, const float *mean,
                                       const float *rstd, const float *gamma, int64_t rows,
                                       int64_t cols);
/** RMSNorm: y = x rstd gamma, rstd = 1/sqrt(mean(x^2) + eps); gamma and rstd as above. */
DS_API ds_status ds_rmsnorm_forward(ds_context *ctx, float *y, float *rstd, const float *x,
                                    const float *gamma, int64_t rows, int64_t cols, float eps);
DS_API ds_status ds_rmsnorm_backward(ds_context *ctx, float *dx, float *dgamma, const float *dy,
                                     const float *x, const float *rstd, const float *gamma,
                                     int64_t rows, int64_t cols);

/** Mean cross-entropy of @p rows rows of @p logits (cols classes) against @p labels (each in
 *  [0, cols)): *loss = mean over rows of logsumexp(row) - row[label]. When @p dlogits is not
 *  NULL it receives d(loss)/d(logits) = (softmax(row) - onehot(label)) / rows (may alias
 *  @p logits). */
DS_API ds_status ds_cross_entropy(ds_context *ctx, float *loss, float *dlogits,
                                  const float *logits, const int32_t *labels, int64_t rows,
                                  int64_t cols);

/** y[i, :] = table[ids[i], :] for i < n; table is [vocab, dim]. */
DS_API ds_status ds_embedding_forward(ds_context *ctx, float *y, const float *table,
                                      const int32_t *ids, int64_t n, int64_t vocab, int64_t dim);
/** dtable[ids[i], :] += dy[i, :] (accumulates: zero dtable first). Not thread-safe on a shared
 *  dtable. */
DS_API ds_status ds_embedding_backward(ds_context *ctx, float *dtable, const float *dy,
                                       const int32_t *ids, int64_t n, int64_t vocab, int64_t dim);

/** Elementwise operations of ds_elementwise(). Backward: add da = db = dy; mul da = dy b,
 *  db = dy a (two DS_EW_MUL calls); scale da = s dy (DS_EW_SCALE). */
typedef enum ds_elementwise_op {
  DS_EW_ADD = 0,  /**< y = a + b */
  DS_EW_MUL = 1,  /**< y = a * b */
  DS_EW_SCALE = 2 /**< y = s * a (b unused, may be NULL) */
} ds_elementwise_op;
DS_API ds_status ds_elementwise(ds_context *ctx, ds_elementwise_op op, float *y, const float *a,
                                const float *b, float s, int64_t n);

/** Reductions of ds_reduce(). */
typedef enum ds_reduce_op {
  DS_REDUCE_SUM = 0,       /**< sum, accumulated in fp64 */
  DS_REDUCE_AMAX = 1,      /**< max |x|; NaN if any element is NaN */
  DS_REDUCE_ALL_FINITE = 2 /**< 1 if no element is Inf or NaN, else 0 */
} ds_reduce_op;
/** *out = op over @p n elements of @p x (dtype f32, f16 or bf16); 0 elements give 0 (sum,
 *  amax) or 1 (all-finite). @return also DS_ERR_DTYPE. */
DS_API ds_status ds_reduce(ds_context *ctx, double *out, ds_reduce_op op, const void *x,
                           ds_dtype dtype, int64_t n);
/** @} */

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_PRECISION_H */
