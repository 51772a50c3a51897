/* libdeepseek: mixed-precision kernels (fp32/fp16/bf16 conversion, GEMM, training kernels) on
 * CPU and CUDA, the DynamicPrecision policy, loss scaling and optimisers. */
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

/** Converts the contiguous tensor @p src into the contiguous tensor @p dst (same number of
 *  elements; shapes may differ), with the rounding above. Both in host memory (CPU or
 *  CUDA_HOST), or both on the same CUDA device (CUDA kernels with bit-identical results).
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL, not contiguous); DS_ERR_SHAPE (element counts
 *  differ); DS_ERR_DTYPE; DS_ERR_UNSUPPORTED (other devices, mixed devices, or CUDA tensors in
 *  a build without CUDA); DS_ERR_UNAVAILABLE (CUDA tensors but no CUDA device); DS_ERR_DEVICE.
 *  Thread-safe. */
DS_API ds_status ds_precision_convert_tensor(ds_context *ctx, ds_tensor *dst,
                                             const ds_tensor *src);

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
 *  Paths: all-fp32 goes to OpenBLAS sgemm. M <= DS_PARAM_PRECISION_SKINNY_MAX_M (default 32,
 *  at most 64) with a 16-bit B goes to the skinny kernel that reads the 16-bit weights
 *  directly. 16-bit A and B with M > 64 go to a oneDNN matmul
 *  (primitives cached by shape) when this CPU has a native oneDNN kernel for the dtype, else
 *  they are widened to fp32 and go to sgemm. The error of an element of C is bounded by
 *  about K * 2^-23 * sum|a_ik * b_kj| (fp32 accumulation) plus, for a 16-bit C, half an ulp
 *  of the output format (2^-11 relative for fp16, 2^-8 for bf16; 2^-25 absolute in the fp16
 *  subnormal range).
 *
 *  CUDA: when all three operands are on one CUDA device (DS_DEVICE_CUDA or CUDA_MANAGED) the
 *  problem goes to cuBLAS (cublasGemmStridedBatchedEx, fp32 compute, tensor cores; cuBLAS is
 *  loaded with dlopen on first use). There A and B must share a dtype and C must be that dtype
 *  or f32. The call returns when the result is in C.
 *
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL arguments, unknown flags, non-unit last stride,
 *  row stride too small, ndim not 2 or 3); DS_ERR_SHAPE (dimensions disagree; the message
 *  gives all three shapes); DS_ERR_DTYPE (an operand is not f32/f16/bf16, or a dtype mix
 *  cuBLAS lacks); DS_ERR_UNSUPPORTED (operands on different devices, or CUDA operands in a
 *  build without CUDA); DS_ERR_UNAVAILABLE (CUDA operands, no CUDA device or no cuBLAS);
 *  DS_ERR_DEVICE (a CUDA error); DS_ERR_NO_MEMORY.
 *  Thread-safe; concurrent calls may share A and B, not C. Called inside a scheduler task,
 *  the OpenBLAS/oneDNN threads it uses are capped at DS_PARAM_PRECISION_TASK_BLAS_THREADS
 *  (default 1) so concurrent GEMM tasks do not oversubscribe the cores. */
DS_API ds_status ds_gemm(ds_context *ctx, ds_tensor *c, const ds_tensor *a, const ds_tensor *b,
                         uint32_t flags, float alpha, float beta);

/** @name Training kernels (CPU, fp32)
 *  Forward and backward kernels on contiguous row-major fp32 buffers of @p rows x @p cols
 *  (the layout of a [batch, features] activation). Reductions inside a row (softmax sums,
 *  norm statistics, losses) accumulate in fp64, so each result is within a few fp32 ulps of
 *  the fp64 reference (the tests check 1e-5 relative on typical data). (For 16-bit
 *  activations or CUDA memory use the *_tensor forms below.) All of them: DS_OK; DS_ERR_INVALID_ARG
 *  (NULL ctx or required buffer, negative sizes, a label or id out of range).
 *  Output buffers may alias their matching input (in-place) unless stated otherwise.
 *  The *_tensor forms below take 16-bit activations directly and run on CUDA too.
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

/** @name Training kernels on tensors (fp32, fp16, bf16; CPU or CUDA)
 *  The kernels above on ds_tensor operands, with 16-bit activations and the same numerics:
 *  every value is widened to fp32 on load (exactly), computed as the fp32 kernel computes it
 *  (row statistics and sums in fp64 on the CPU and on CUDA), and rounded once to the output's
 *  dtype on store (to nearest, ties to even). So a 16-bit output is the fp32 result rounded:
 *  within half an ulp of the output format of it (2^-11 relative for fp16, 2^-8 for bf16)
 *  plus the fp32 kernel's own error, and a 16-bit input costs nothing beyond its own
 *  rounding. The tests check each kernel and dtype against an fp64 reference within
 *  (2^-11 | 2^-8) relative-to-row-scale bounds.
 *
 *  Operands:
 *  - row tensors (x, y, dx, dy, logits, dlogits, table, the embedding output): contiguous,
 *    dtype F32, F16 or BF16 (each its own), viewed as [rows, cols] with cols the last
 *    dimension; all row tensors of one call have the same rows and cols (the embedding: rows
 *    of ids and table's cols).
 *  - vectors (bias, gamma, beta and their gradients, mean, rstd): contiguous F32, of cols
 *    elements (rows for mean and rstd); optional ones may be NULL as above.
 *  - labels and ids: contiguous I32 of rows elements.
 *  All operands in host memory (CPU or CUDA_HOST), or all on one CUDA device (DS_DEVICE_CUDA
 *  or CUDA_MANAGED), where the CUDA kernels run (same formulas, fp32 math with fp64 row
 *  statistics; results agree with the CPU within the bounds above) and the call returns when
 *  the result is in place. An output may be its matching input (same tensor) as above.
 *
 *  All of them: DS_OK; DS_ERR_INVALID_ARG (NULL ctx or required tensor, not contiguous, a
 *  label or id out of range, unknown op or activation); DS_ERR_SHAPE (sizes disagree; the
 *  message gives the shapes); DS_ERR_DTYPE (a dtype other than the above);
 *  DS_ERR_UNSUPPORTED (mixed devices, another device type, or CUDA tensors in a build
 *  without CUDA); DS_ERR_UNAVAILABLE (CUDA tensors but no CUDA device); DS_ERR_DEVICE (a
 *  CUDA error); DS_ERR_NO_MEMORY (the CPU path widens 16-bit rows in blocks of about 32 KiB
 *  of fp32). Thread-safety as the fp32 kernels.
 *  @{ */
DS_API ds_status ds_bias_act_forward_tensor(ds_context *ctx, ds_tensor *y, const ds_tensor *x,
                                            const ds_tensor *bias, ds_activation act);
DS_API ds_status ds_bias_act_backward_tensor(ds_context *ctx, ds_tensor *dx, ds_tensor *dbias,
                                             const ds_tensor *dy, const ds_tensor *x,
                                             const ds_tensor *bias, ds_activation act);
DS_API ds_status ds_softmax_forward_tensor(ds_context *ctx, ds_tensor *y, const ds_tensor *x,
                                           int log_softmax);
DS_API ds_status ds_softmax_backward_tensor(ds_context *ctx, ds_tensor *dx, const ds_tensor *dy,
                                            const ds_tensor *y, int log_softmax);
DS_API ds_status ds_layernorm_forward_tensor(ds_context *ctx, ds_tensor *y, ds_tensor *mean,
                                             ds_tensor *rstd, const ds_tensor *x,
                                             const ds_tensor *gamma, const ds_tensor *beta,
                                             float eps);
DS_API ds_status ds_layernorm_backward_tensor(ds_context *ctx, ds_tensor *dx, ds_tensor *dgamma,
                                              ds_tensor *dbeta, const ds_tensor *dy,
                                              const ds_tensor *x, const ds_tensor *mean,
                                              const ds_tensor *rstd, const ds_tensor *gamma);
DS_API ds_status ds_rmsnorm_forward_tensor(ds_context *ctx, ds_tensor *y, ds_tensor *rstd,
                                           const ds_tensor *x, const ds_tensor *gamma, float eps);
DS_API ds_status ds_rmsnorm_backward_tensor(ds_context *ctx, ds_tensor *dx, ds_tensor *dgamma,
                                            const ds_tensor *dy, const ds_tensor *x,
                                            const ds_tensor *rstd, const ds_tensor *gamma);
/** @p loss is host memory whatever the device; @p dlogits may be NULL. */
DS_API ds_status ds_cross_entropy_tensor(ds_context *ctx, float *loss, ds_tensor *dlogits,
                                         const ds_tensor *logits, const ds_tensor *labels);
/** @p y is [n, dim] for n ids; @p table is [vocab, dim]. */
DS_API ds_status ds_embedding_forward_tensor(ds_context *ctx, ds_tensor *y, const ds_tensor *table,
                                             const ds_tensor *ids);
/** @p dtable must be F32 (gradients accumulate there; zero it first). Not thread-safe on a
 *  shared dtable; on CUDA the adds are atomic, so their order (and the last bits) may vary. */
DS_API ds_status ds_embedding_backward_tensor(ds_context *ctx, ds_tensor *dtable,
                                              const ds_tensor *dy, const ds_tensor *ids);
/** Elementwise over equal element counts (shapes may differ); @p b unused by DS_EW_SCALE. */
DS_API ds_status ds_elementwise_tensor(ds_context *ctx, ds_elementwise_op op, ds_tensor *y,
                                       const ds_tensor *a, const ds_tensor *b, float s);
/** *@p out (host) = op over all elements of @p x, as ds_reduce(). */
DS_API ds_status ds_reduce_tensor(ds_context *ctx, double *out, ds_reduce_op op,
                                  const ds_tensor *x);
/** @} */

/** @name DynamicPrecision policy
 *  Chooses a dtype per layer from rules and switches it when numerics degrade.
 *
 *  Rules map glob patterns (fnmatch(3), e.g. "*attention*") on layer names to a dtype; the
 *  first matching rule wins and a layer no rule matches runs in fp32. The per-device map then
 *  applies: where bf16 is not native (a CPU without AVX512-BF16 or a GPU of compute capability
 *  below 8.0, decided once at creation for the options' device, or forced with
 *  native_bf16 = 0), a bf16 rule becomes @c bf16_fallback (fp32 or fp16); the
 *  choice is logged and reported by ds_precision_policy_layer().
 *
 *  Stability score, in [0, 1], of one check of a layer: on a sampled slice of the layer's
 *  output, with @c low the result computed in the layer's current dtype and @c shadow the
 *  same computation in fp32,
 *      score = (finite fraction of low) x max(0, cos(low_f, shadow_f))
 *  where the cosine is taken over the elements finite in both; it is 1 when both of those
 *  vectors are zero and 0 when exactly one is, or when no element is finite.
 *
 *  Switching, per layer, each time ds_precision_policy_observe() reports a check (call it
 *  every @c check_interval steps; ds_precision_policy_due() says when):
 *  - score < fallback_threshold: promote one level up the chain fp16 -> bf16 -> fp32 (bf16
 *    skipped where it is not native); the clean count restarts.
 *  - else the check is clean; after @c demote_after consecutive clean checks above the
 *    layer's rule dtype, demote one level back toward it (hysteresis) and restart the count.
 *  Every switch is logged (info) with layer, step, levels, score and reason, kept in the
 *  layer's history (ds_precision_policy_history()), counted in the stat
 *  "precision.policy.switches", and the layer's dtype is the gauge
 *  "precision.layer.<name>" (a ds_dtype number; names longer than 47 bytes are not
 *  published). A policy is thread-safe.
 *  @{ */

typedef struct ds_precision_policy ds_precision_policy;

/** One rule: layers whose name matches @c pattern run in @c dtype (F32, F16 or BF16). */
typedef struct ds_precision_rule {
  const char *pattern;
  int32_t dtype;
} ds_precision_rule;

typedef struct ds_precision_policy_options {
  uint32_t struct_size;           /**< sizeof(ds_precision_policy_options) */
  const ds_precision_rule *rules; /**< copied at creation */
  size_t nrules;
  float fallback_threshold;       /**< in [0, 1]; default 0.99 */
  uint32_t check_interval;        /**< steps between checks, >= 1; default 100 */
  uint32_t demote_after;          /**< clean checks before a demotion, >= 1; default 10 */
  int32_t native_bf16;            /**< -1 detect (default), 0 no, 1 yes */
  int32_t bf16_fallback;          /**< DS_DTYPE_F32 (default) or DS_DTYPE_F16 */
  ds_device device;               /**< where the layers run, for native_bf16 = -1: the CPU
                                       (AVX512-BF16) or a CUDA device (compute capability
                                       >= 8.0); default the CPU */
} ds_precision_policy_options;

#define DS_PRECISION_POLICY_OPTIONS_INIT \
  {sizeof(ds_precision_policy_options), NULL, 0, 0.99f, 100, 10, -1, DS_DTYPE_F32, {0, 0}}

/** Why a layer's dtype changed. */
typedef enum ds_precision_reason {
  DS_PRECISION_PROMOTED_UNSTABLE = 1, /**< score below the threshold */
  DS_PRECISION_DEMOTED_STABLE = 2     /**< demote_after clean checks */
} ds_precision_reason;

/** One switch in a layer's history. */
typedef struct ds_precision_switch {
  uint64_t step;
  int32_t from, to; /**< ds_dtype */
  int32_t reason;   /**< ds_precision_reason */
  float score;
} ds_precision_switch;

/** A layer's state. */
typedef struct ds_precision_layer_info {
  int32_t rule_dtype;   /**< what the matching rule asked for */
  int32_t base_dtype;   /**< after the per-device map */
  int32_t dtype;        /**< now */
  uint32_t clean_checks;
  uint64_t checks, switches;
  float last_score;
} ds_precision_layer_info;

/** Creates a policy. @return DS_OK; DS_ERR_INVALID_ARG (NULL out/ctx, a NULL pattern, a rule
 *  dtype that is not F32/F16/BF16, threshold outside [0, 1], zero interval or demote_after,
 *  bad bf16_fallback); DS_ERR_ABI; DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_precision_policy_create(ds_precision_policy **out, ds_context *ctx,
                                            const ds_precision_policy_options *opts);
/** Destroys @p p (NULL: no-op). Lifecycle: no call on @p p may be running. */
DS_API void ds_precision_policy_destroy(ds_precision_policy *p);

/** The dtype @p layer runs in now (the layer is registered on first use).
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_precision_policy_dtype(ds_precision_policy *p, const char *layer,
                                           ds_dtype *out);
/** 1 when @p step is a check step (a multiple of check_interval), else 0. */
DS_API int ds_precision_policy_due(const ds_precision_policy *p, uint64_t step);

/** The stability score defined above, of @p n elements of @p low (dtype F32, F16 or BF16)
 *  against @p shadow (fp32). @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_DTYPE. */
DS_API ds_status ds_precision_stability_score(ds_context *ctx, float *score, const void *low,
                                              ds_dtype low_dtype, const float *shadow, int64_t n);

/** Reports one check of @p layer at @p step: computes the score of (@p low, @p shadow) and
 *  applies the switching rules. *@p new_dtype (may be NULL) receives the dtype for the next
 *  steps, *@p score (may be NULL) the score. When the layer runs in fp32 the caller may pass
 *  its fp32 output as both @p low and @p shadow (the check is clean when finite).
 *  @return as ds_precision_stability_score(), plus DS_ERR_NO_MEMORY. */
DS_API ds_status ds_precision_policy_observe(ds_precision_policy *p, const char *layer,
                                             uint64_t step, const void *low, ds_dtype low_dtype,
                                             const float *shadow, int64_t n, ds_dtype *new_dtype,
                                             float *score);
/** Same as observe with a score the caller computed itself (e.g. on a GPU).
 *  @return DS_OK; DS_ERR_INVALID_ARG (score NaN or outside [0, 1]); DS_ERR_NO_MEMORY. */
DS_API ds_status ds_precision_policy_report(ds_precision_policy *p, const char *layer,
                                            uint64_t step, float score, ds_dtype *new_dtype);

/** State of @p layer. @return DS_OK; DS_ERR_NOT_FOUND (never used); DS_ERR_INVALID_ARG. */
DS_API ds_status ds_precision_policy_layer(ds_precision_policy *p, const char *layer,
                                           ds_precision_layer_info *out);
/** Copies up to @p cap of @p layer's switches, oldest first (the last 64 are kept), into
 *  @p out and their number into *@p n. @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_precision_policy_history(ds_precision_policy *p, const char *layer,
                                             ds_precision_switch *out, size_t cap, size_t *n);
/** @} */

/** @name Loss scaling
 *  Dynamic loss scaling with the semantics of PyTorch's GradScaler: the scale starts at
 *  init_scale; each update() after a step whose gradients held Inf/NaN skips the step and
 *  multiplies the scale by backoff_factor; after growth_interval consecutive clean steps it
 *  multiplies by growth_factor (only if the result is finite) and the count restarts.
 *  Extensions, off by default so the sequence equals GradScaler's: hysteresis (back off only
 *  after that many consecutive overflowing steps; those steps are still skipped) and
 *  min_scale (the scale never drops below it). One thread per scaler.
 *  @{ */

typedef struct ds_loss_scaler ds_loss_scaler;

typedef struct ds_loss_scaler_options {
  uint32_t struct_size;     /**< sizeof(ds_loss_scaler_options) */
  float init_scale;         /**< > 0; default 65536 */
  float growth_factor;      /**< > 1; default 2 */
  float backoff_factor;     /**< in (0, 1); default 0.5 */
  uint32_t growth_interval; /**< >= 1; default 2000 */
  uint32_t hysteresis;      /**< >= 1; default 1 (GradScaler) */
  float min_scale;          /**< >= 0; default 0 (none) */
} ds_loss_scaler_options;

#define DS_LOSS_SCALER_OPTIONS_INIT \
  {sizeof(ds_loss_scaler_options), 65536.0f, 2.0f, 0.5f, 2000, 1, 0.0f}

/** @return DS_OK; DS_ERR_INVALID_ARG (a value out of range); DS_ERR_ABI; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_loss_scaler_create(ds_loss_scaler **out, ds_context *ctx,
                                       const ds_loss_scaler_options *opts);
DS_API void ds_loss_scaler_destroy(ds_loss_scaler *s);
/** The scale to multiply the loss by for the current step. */
DS_API float ds_loss_scaler_scale(const ds_loss_scaler *s);
/** Fused unscale and finite check, one pass: dst[i] = grads[i] / scale as fp32 (@p dst may be
 *  @p grads when the dtype is F32; NULL: only the check, for gradients that
 *  ds_optimizer_step_scaled() unscales itself), and a non-finite result marks the current
 *  step as overflowed (kept until update()). *@p found_inf (may be NULL) gets 1 if this call saw one.
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_DTYPE. */
DS_API ds_status ds_loss_scaler_unscale(ds_loss_scaler *s, float *dst, const void *grads,
                                        ds_dtype dtype, int64_t n, int *found_inf);
/** Ends the step: applies the rules above to the overflow flag gathered by unscale() (or'ed
 *  with @p found_inf, for checks made elsewhere), clears it, and sets *@p skip_step (may be
 *  NULL) to 1 when the optimizer must skip this step. @return DS_OK; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_loss_scaler_update(ds_loss_scaler *s, int found_inf, int *skip_step);
/** @} */

/** @name Optimisers with fp32 master weights
 *  SGD with momentum and AdamW, with PyTorch's update rules (torch.optim.SGD with dampening 0,
 *  no Nesterov; torch.optim.AdamW). Each parameter is registered by name: the optimiser owns
 *  its fp32 master copy, its state (momentum, or Adam's m and v) and a working copy in the
 *  layer's dtype (f16/bf16; for f32 the working copy is the master itself) that the forward
 *  and backward passes read. A step updates the master from a gradient (fp32, or 16-bit and
 *  scaled by the loss scale: the unscale is fused into the update pass) and refreshes the
 *  working copy in the same pass. The update math is fp32 whatever the storage.
 *
 *  Storage options, for memory (bytes per parameter, SGD-momentum / AdamW; fp32: 8 / 12):
 *  - default: fp32 master, fp32 state, a separate 16-bit working copy rounded to nearest
 *    even (10 / 14 bytes for a 16-bit parameter: more than fp32).
 *  - @c split_master = 1: a bf16 parameter keeps its fp32 master as two 16-bit planes, the
 *    high halves (which are the bf16 working copy: the master truncated toward zero, error
 *    below 1 bf16 ulp, 2^-7 relative, instead of half an ulp) and the low halves. The master
 *    is still exact fp32 (hi << 16 | lo) and the working copy costs nothing (4 + state bytes).
 *    There is no contiguous fp32 master then: read it with ds_optimizer_master_read().
 *  - @c state_dtype = DS_DTYPE_BF16: momentum / m / v in bf16 (2 bytes each), widened to
 *    fp32 for the update and stored back with stochastic rounding (16 random bits from a hash
 *    of the parameter, element and step are added below the kept bits, then truncated: the
 *    stored value's expectation is the fp32 value, and runs are reproducible). Round to
 *    nearest would lose every update smaller than half a bf16 ulp (2^-9 relative): AdamW's v
 *    with beta2 = 0.999 moves 0.1% a step, so it would never decay; stochastic rounding keeps
 *    such updates on average. The cost is noise of up to 1 bf16 ulp (2^-8 relative) in each
 *    state element; the tests check that SGD-momentum and AdamW reach the fp32-state loss on a
 *    small least-squares problem.
 *  Both together: 6 / 8 bytes per bf16 parameter (25% / 33% less than fp32).
 *  One thread per optimiser.
 *  @{ */

typedef struct ds_optimizer ds_optimizer;

typedef enum ds_optimizer_kind { DS_OPT_SGD = 0, DS_OPT_ADAMW = 1 } ds_optimizer_kind;

typedef struct ds_optimizer_options {
  uint32_t struct_size; /**< sizeof(ds_optimizer_options) */
  int32_t kind;         /**< ds_optimizer_kind; default SGD */
  float lr;             /**< > 0; default 0.01 */
  float momentum;       /**< SGD, in [0, 1); default 0.9 */
  float beta1, beta2;   /**< AdamW, in [0, 1); default 0.9, 0.999 */
  float eps;            /**< AdamW, > 0; default 1e-8 */
  float weight_decay;   /**< >= 0 (SGD: added to the gradient; AdamW: decoupled); default 0 */
  int32_t state_dtype;  /**< DS_DTYPE_F32 (default) or DS_DTYPE_BF16 (stochastic rounding) */
  int32_t split_master; /**< 1: bf16 parameters keep the master as hi/lo 16-bit planes, the
                             high plane being the working copy; default 0 */
} ds_optimizer_options;

#define DS_OPTIMIZER_OPTIONS_INIT                                                        \
  {sizeof(ds_optimizer_options), DS_OPT_SGD, 0.01f, 0.9f, 0.9f, 0.999f, 1e-8f, 0.0f,   \
   DS_DTYPE_F32, 0}

/** Bytes the optimiser holds for parameter data and its gradient tile (its name strings and
 *  bookkeeping are not counted), by role and by dtype; the roles and the dtypes each add up
 *  to @c total_bytes. @c master_bytes counts 4 per parameter (fp32, or the two planes of a
 *  split master); @c working_bytes only separate 16-bit copies; @c scratch_bytes the fp32
 *  gradient tile that ds_optimizer_step_linear() keeps (counted in @c f32_bytes).
 *  @c fp32_equivalent is what the same parameters would take all in fp32 (master =
 *  working, fp32 state); @c saved_fraction = 1 - (total - scratch) / fp32_equivalent
 *  (negative when mixed precision costs more, as with separate 16-bit copies next to fp32
 *  masters and state). */
typedef struct ds_optimizer_memory {
  uint32_t struct_size; /**< sizeof(ds_optimizer_memory), set by the caller */
  uint64_t master_bytes, state_bytes, working_bytes, total_bytes, fp32_equivalent;
  double saved_fraction;
  uint64_t f32_bytes;   /**< fp32 masters and state */
  uint64_t bf16_bytes;  /**< bf16 working copies (the high planes of split masters) and state */
  uint64_t f16_bytes;   /**< fp16 working copies */
  uint64_t low16_bytes; /**< the low 16-bit planes of split masters */
  uint64_t scratch_bytes; /**< the gradient tile of ds_optimizer_step_linear() (fp32) */
} ds_optimizer_memory;

/** @return DS_OK; DS_ERR_INVALID_ARG (a value out of range); DS_ERR_DTYPE (state_dtype not
 *  F32 or BF16); DS_ERR_ABI; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_optimizer_create(ds_optimizer **out, ds_context *ctx,
                                     const ds_optimizer_options *opts);
DS_API void ds_optimizer_destroy(ds_optimizer *o);
/** Registers @p n parameters called @p name, initialised from @p init (fp32, copied), with a
 *  working copy in @p working_dtype (F32, F16 or BF16). @return DS_OK; DS_ERR_INVALID_ARG
 *  (NULL, n <= 0, name already registered); DS_ERR_DTYPE; DS_ERR_NO_MEMORY. */
DS_API ds_status ds_optimizer_add_param(ds_optimizer *o, const char *name, const float *init,
                                        int64_t n, ds_dtype working_dtype);
/** The working copy of @p name (owned by the optimiser, valid until destroy) and its dtype.
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_optimizer_working(ds_optimizer *o, const char *name, void **data,
                                      ds_dtype *dtype);
/** The fp32 master array of @p name. @return as ds_optimizer_working(), plus
 *  DS_ERR_UNSUPPORTED for a split master (no fp32 array: use ds_optimizer_master_read()). */
DS_API ds_status ds_optimizer_master(ds_optimizer *o, const char *name, float **data);
/** Copies the fp32 master of @p name (its n elements, exact for every layout) into @p dst.
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_optimizer_master_read(ds_optimizer *o, const char *name, float *dst);
/** One update of @p name from its fp32 gradient @p grad (n elements, already unscaled, not
 *  overlapping the optimiser's arrays), then the working copy is refreshed. Same as ds_optimizer_step_scaled(o, name, grad,
 *  DS_DTYPE_F32, 1). @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_optimizer_step(ds_optimizer *o, const char *name, const float *grad);
/** One update of @p name from @p grad / @p grad_scale, @p grad being n elements of
 *  @p grad_dtype (F32, F16 or BF16; e.g. the 16-bit weight gradient of a loss multiplied by
 *  the loss scaler's scale, which ds_loss_scaler_unscale() with a NULL dst has checked for
 *  Inf/NaN: skip the step when it found one). Widening and unscaling happen block by block
 *  inside the update pass. @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG (NULL,
 *  grad_scale not finite and > 0); DS_ERR_DTYPE. */
DS_API ds_status ds_optimizer_step_scaled(ds_optimizer *o, const char *name, const void *grad,
                                          ds_dtype grad_dtype, float grad_scale);
/** One update of the weight @p name of a linear layer y = x W^T (W row-major [out, in], so
 *  the parameter has out * in elements) from its gradient dW = dy^T x, consumed in row
 *  tiles: rows [r, r + tile_rows) of dW are computed by ds_gemm into an fp32 tile and
 *  applied to the master, state and working copy at once, so no whole-layer gradient buffer
 *  exists (the tile, tile_rows x in fp32, is kept for the next call and reported in
 *  ds_optimizer_memory::scratch_bytes). The update is bit-identical to ds_optimizer_step()
 *  on a whole fp32 dW assembled from the same row-block ds_gemm calls; against one
 *  whole-product ds_gemm it differs by the GEMM's rounding (OpenBLAS rounds a row
 *  differently with the call's M).
 *  - NOT for a loss-scaled (fp16) step: the update starts before the whole gradient exists,
 *    so a non-finite gradient cannot skip the step as GradScaler semantics require. Use it
 *    where no loss scaler is needed (fp32, or bf16, which has fp32's range).
 *  - The working copy changes during the call: compute dx = dy W before it.
 *  @param dy [B, out] host tensor, f32/f16/bf16, last stride 1 (any row stride).
 *  @param x  [B, in] host tensor, f32/f16/bf16, last stride 1; neither may overlap the
 *            optimiser's arrays.
 *  @param tile_rows rows of dW per tile; 0 = about 512 KiB of fp32 (at least 65 rows, so
 *            ds_gemm takes its widened path and allocates no transient copies).
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG (NULL, tile_rows < 0);
 *  DS_ERR_SHAPE (not 2-D, batches differ, out * in != the parameter's size); ds_gemm's
 *  errors (DS_ERR_DTYPE, DS_ERR_UNSUPPORTED for device memory), which come from the first
 *  tile, before anything is updated; DS_ERR_NO_MEMORY. Not thread-safe on one optimiser. */
DS_API ds_status ds_optimizer_step_linear(ds_optimizer *o, const char *name, const ds_tensor *dy,
                                          const ds_tensor *x, int64_t tile_rows);
/** Memory accounting into @p out, whose struct_size the caller sets to
 *  sizeof(ds_optimizer_memory). @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_ABI (unknown
 *  struct_size). */
DS_API ds_status ds_optimizer_memory_get(const ds_optimizer *o, ds_optimizer_memory *out);
/** @} */

DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_PRECISION_H */
