/* libdeepseek: the load predictor (LSTM encoder + attention + dense head over a sliding window
 * of telemetry), its training, its model file and its online adaptation. */
#ifndef DEEPSEEK_PREDICT_H
#define DEEPSEEK_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

/** @defgroup predict Load predictor
 *  A predictor maps the last W samples of F features (e.g. CPU, memory pressure, queue depth,
 *  network latency) to the target feature at horizons 1..K steps ahead and to the probability
 *  that the target exceeds the overload threshold at each of those horizons.
 *
 *  Model: an LSTM encoder (1 or 2 layers, hidden size H, gates ordered i, f, g, o as in
 *  PyTorch), Luong "general" scaled dot-product attention over the top layer's W states with
 *  the last state as query (score_t = (Wq h_W) . h_t / sqrt(H)), and a linear head on
 *  [attention context; h_W] giving K values (added to the last observed target: the network
 *  predicts the change) and K overload logits (each also fed the last observed target through
 *  one learned weight, since overload persists). Inputs are normalised per feature with the
 *  mean and standard deviation of the training data, stored with the model.
 *
 *  Threading: one thread per predictor for every function, except that online adaptation runs
 *  on the context's LOW-priority executor and swaps the weights under the predictor's lock, so
 *  ds_predictor_predict() may run while a fine-tune is in progress. Separate predictors never
 *  interact. The scheduler drives a predictor through ds_predictor_observe() and
 *  ds_predictor_predict(); nothing else is needed for that.
 *  @{ */

/** Shape of a predictor. */
typedef struct ds_predictor_options {
  uint32_t struct_size;     /**< sizeof(ds_predictor_options) */
  uint32_t nfeatures;       /**< F, 1..64. Default 4 */
  uint32_t window;          /**< W, samples looked at, 1..4096. Default 32 */
  uint32_t hidden;          /**< H, 1..512. Default 32 */
  uint32_t layers;          /**< LSTM layers, 1..2. Default 1 */
  uint32_t horizons;        /**< K, steps predicted (1..K), 1..64. Default 10 */
  uint32_t target;          /**< index of the predicted feature, < nfeatures. Default 0 */
  float overload_threshold; /**< in the target's raw units. Default 0.8 (80% of a 0..1 gauge) */
  uint64_t seed;            /**< weight initialisation. Default 1 */
} ds_predictor_options;
#define DS_PREDICTOR_OPTIONS_INIT \
  { sizeof(ds_predictor_options), 4, 32, 32, 1, 10, 0, 0.8f, 1 }

/** One training or validation series: @c nsteps rows of nfeatures raw floats, row-major.
 *  @c valid (may be NULL: all valid) marks rows that hold a real measurement rather than a
 *  gap filled by the caller; a window is trained on only when its first target row is valid. */
typedef struct ds_predictor_series {
  const float *data;
  size_t nsteps;
  const uint8_t *valid;
} ds_predictor_series;

/** Training settings (AdamW, global-norm clipping, early stopping on validation loss). */
typedef struct ds_predictor_train_options {
  uint32_t struct_size;       /**< sizeof(ds_predictor_train_options) */
  uint32_t max_epochs;        /**< Default 20 */
  uint32_t patience;          /**< epochs without validation improvement before stopping. 3 */
  uint32_t batch;             /**< windows per optimizer step. Default 32 */
  uint32_t windows_per_epoch; /**< windows drawn per epoch; 0 = every window once. 4096 */
  uint32_t max_val_windows;   /**< validation windows (evenly spaced). Default 2048 */
  float lr;                   /**< Default 3e-3 */
  float weight_decay;         /**< AdamW decoupled decay on weight matrices. Default 1e-4 */
  float clip_norm;            /**< global gradient norm limit; 0 = none. Default 1 */
  float overload_weight;      /**< weight of the overload cross-entropy in the loss. 0.5 */
  uint64_t seed;              /**< window sampling order. Default 1 */
  uint32_t normalize;         /**< 1: recompute normalisation from the training data. 1 */
  uint32_t loss;              /**< DS_PREDICT_LOSS_*. Default DS_PREDICT_LOSS_SQUARED */
} ds_predictor_train_options;
#define DS_PREDICTOR_TRAIN_OPTIONS_INIT \
  { sizeof(ds_predictor_train_options), 20, 3, 32, 4096, 2048, 3e-3f, 1e-4f, 1.0f, 0.5f, 1, 1, 0 }

/** ds_predictor_train_options.loss: the value part of the loss. Squared error trains for the
 *  conditional mean (best RMSE), absolute error for the conditional median (best MAE). */
#define DS_PREDICT_LOSS_SQUARED 0u
#define DS_PREDICT_LOSS_ABSOLUTE 1u

/** What training did. */
typedef struct ds_predictor_train_report {
  uint32_t struct_size; /**< sizeof(ds_predictor_train_report) */
  uint32_t epochs;      /**< epochs run */
  uint32_t best_epoch;  /**< epoch whose weights were kept (1-based; 0: the initial ones) */
  uint32_t reserved;
  double best_val_loss;   /**< validation loss (value loss + weighted cross-entropy) */
  double last_train_loss; /**< mean training loss of the last epoch */
  uint64_t steps;         /**< optimizer steps */
} ds_predictor_train_report;

typedef struct ds_predictor ds_predictor;

DS_EXTERN_C_BEGIN
/** Creates an untrained predictor (PyTorch-style uniform initialisation from the seed,
 *  identity normalisation; it predicts "no change" until trained). Destroy it before @p ctx. It reads the online-adaptation tunables DS_PARAM_PREDICT_ONLINE_*
 *  of @p ctx. @return DS_OK; DS_ERR_INVALID_ARG (NULL, or a size out of range);
 *  DS_ERR_ABI (struct_size); DS_ERR_NO_MEMORY. @p opts NULL means the defaults.
 *  Thread-safe. The caller owns *out and frees it with ds_predictor_destroy(). */
DS_API ds_status ds_predictor_create(ds_predictor **out, ds_context *ctx,
                                     const ds_predictor_options *opts);

/** Waits for an online fine-tune in progress, then frees @p p. NULL is a no-op. */
DS_API void ds_predictor_destroy(ds_predictor *p);

/** The shape @p p was created (or loaded) with, into @p out (set out->struct_size first).
 *  @return DS_OK, DS_ERR_INVALID_ARG, DS_ERR_ABI. */
DS_API ds_status ds_predictor_get_options(ds_predictor_options *out, const ds_predictor *p);

/** Trains @p p with backpropagation through time on windows of the @p ntrain training series,
 *  keeping the weights of the epoch with the lowest loss on the @p nval validation series
 *  (with @p nval 0, the last epoch's). Deterministic: the same data, options and seeds give
 *  bit-identical weights. @p opts NULL means the defaults; @p report may be NULL.
 *  @return DS_OK; DS_ERR_INVALID_ARG (no training window: every series shorter than W + K,
 *  NULL data, non-finite values); DS_ERR_ABI; DS_ERR_NO_MEMORY. One thread per predictor. */
DS_API ds_status ds_predictor_train(ds_predictor *p, const ds_predictor_series *train,
                                    size_t ntrain, const ds_predictor_series *val, size_t nval,
                                    const ds_predictor_train_options *opts,
                                    ds_predictor_train_report *report);

/** Predicts from an explicit window of W rows of F raw floats (oldest first): @p values
 *  receives the target at horizons 1..K (raw units), @p probs (may be NULL) the overload
 *  probabilities. No allocation. @return DS_OK, DS_ERR_INVALID_ARG. One thread per predictor
 *  (safe alongside online adaptation). */
DS_API ds_status ds_predictor_forward(ds_predictor *p, const float *window, float *values,
                                      float *probs);

/** Appends one sample of F raw floats to the predictor's sliding window (and to the online
 *  history). A non-finite value repeats that feature's previous value. Every
 *  DS_PARAM_PREDICT_ONLINE_INTERVAL samples (when not 0, and the history is full) it submits a
 *  fine-tune to the context's executor at LOW priority, unless one is still running.
 *  @return DS_OK, DS_ERR_INVALID_ARG. No allocation. One thread per predictor. */
DS_API ds_status ds_predictor_observe(ds_predictor *p, const float *sample);

/** As ds_predictor_forward() on the last W observed samples. @return DS_OK;
 *  DS_ERR_UNAVAILABLE until W samples have been observed; DS_ERR_INVALID_ARG. */
DS_API ds_status ds_predictor_predict(ds_predictor *p, float *values, float *probs);

/** Serialises @p p (see the model file format in docs/architecture.md) into @p buf of
 *  @p cap bytes; @p size receives the bytes needed. @p buf NULL only sizes. @return DS_OK;
 *  DS_ERR_FULL (cap too small; *size says how much); DS_ERR_INVALID_ARG. */
DS_API ds_status ds_predictor_save_buffer(const ds_predictor *p, void *buf, size_t cap,
                                          size_t *size);

/** Creates a predictor from a serialised model. @return DS_OK; DS_ERR_FORMAT (truncated,
 *  corrupted, other version or byte order, checksum mismatch, shape out of range, non-finite
 *  weights: never a crash); DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_predictor_load_buffer(ds_predictor **out, ds_context *ctx, const void *buf,
                                          size_t size);

/** ds_predictor_save_buffer() to a file (written to PATH.tmp, then renamed).
 *  @return DS_OK, DS_ERR_IO, DS_ERR_INVALID_ARG, DS_ERR_NO_MEMORY. */
DS_API ds_status ds_predictor_save(const ds_predictor *p, const char *path);

/** ds_predictor_load_buffer() from a file. @return as it, and DS_ERR_IO (cannot read). */
DS_API ds_status ds_predictor_load(ds_predictor **out, ds_context *ctx, const char *path);

/** Blocks until no online fine-tune is queued or running; returns how many fine-tunes have
 *  completed and how many of them replaced the weights (a fine-tune replaces them only when
 *  it lowers the loss on the newest 25% of the history, which it does not train on).
 *  Either pointer may be NULL. Thread-safe. */
DS_API void ds_predictor_online_wait(ds_predictor *p, uint64_t *runs, uint64_t *accepted);
DS_EXTERN_C_END

/** @} */
#endif /* DEEPSEEK_PREDICT_H */
