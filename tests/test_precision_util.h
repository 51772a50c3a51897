/* Helpers shared by the precision tests (include after cmocka.h). */
#ifndef DS_TEST_PRECISION_UTIL_H
#define DS_TEST_PRECISION_UTIL_H

#include "deepseek.h"

/* An optimiser as the optimiser-memory and step_linear tests use it: SGD (lr
 * 0.1) or AdamW (lr 0.01), weight decay 0.01, state dtype @p state, split
 * masters when @p split. */
static inline ds_optimizer *ds_test_optimizer(ds_context *ctx, int adam,
                                              ds_dtype state, int split) {
  ds_optimizer_options oo = DS_OPTIMIZER_OPTIONS_INIT;
  oo.kind = adam ? DS_OPT_ADAMW : DS_OPT_SGD;
  oo.lr = adam ? 0.01f : 0.1f;
  oo.weight_decay = 0.01f;
  oo.state_dtype = state;
  oo.split_master = split;
  ds_optimizer *o = NULL;
  assert_int_equal(ds_optimizer_create(&o, ctx, &oo), DS_OK);
  return o;
}

#endif
