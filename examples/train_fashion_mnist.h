/* train_fashion_mnist.h: what the demo's driver (train_fashion_mnist.c: data, tasks, cache,
 * checkpoint, serving, summary) needs from a model (the MLP there, the vision transformer in
 * train_fashion_mnist_vit.c). */
#ifndef TRAIN_FASHION_MNIST_H
#define TRAIN_FASHION_MNIST_H

#include <deepseek.h>

#define TFM_IMG 784
#define TFM_NCLS 10

typedef struct tfm_args {
  int epochs, batch, limit, test_limit, resume, mixed, vit, depth, augment, gradcheck;
  float lr;
  const char *data, *ckpt, *trace, *plot;
} tfm_args;

/* A model as the driver sees it: parameters by index (fp32 masters, for checkpoints), one
 * training step, inference (thread-safe: the batcher calls it from several workers), and a
 * report for the final summary. */
typedef struct tfm_net {
  void *impl;
  const char *name;     /* one line for the banner */
  const char *ckpt_key; /* key of the checkpoint in the persistent cache */
  int nparams;
  int64_t (*psize)(void *impl, int i);
  float *(*param)(void *impl, int i);
  ds_status (*step)(void *impl, const float *x, const int32_t *y, int rows, float *loss,
                    int *correct);
  ds_status (*infer)(void *impl, const float *x, int rows, float *logits);
  void (*report)(void *impl); /* precision state, memory by dtype */
  void (*destroy)(void *impl);
} tfm_net;

/* The vision transformer on 7x7 patches; @p ckpt (may be NULL) holds the parameters in
 * index order. */
ds_status tfm_vit_create(tfm_net *out, ds_context *ctx, const tfm_args *a, const float *ckpt);

/* Checks the transformer's backward pass against finite differences; 0 when it agrees. */
int tfm_vit_gradcheck(ds_context *ctx);

/* Prints "memory by dtype: …" from per-dtype byte counts (index: ds_dtype). */
void tfm_print_memory(const uint64_t bytes[DS_DTYPE_COUNT]);

#endif
