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

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_PRECISION_H */
