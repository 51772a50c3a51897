/* Shared by the libFuzzer targets: one quiet context for the whole run (no environment, no
 * telemetry thread, no stats file, no log lines), created on first use. */
#ifndef DS_FUZZ_UTIL_H
#define DS_FUZZ_UTIL_H

#include <stdlib.h>

#include "deepseek.h"

static inline ds_context *fuzz_ctx(void) {
  static ds_context *ctx;
  if (ctx) return ctx;
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF}};
  o.params = pv;
  o.nparams = 3;
  if (ds_context_create(&ctx, &o) != DS_OK) abort();
  return ctx;
}

#endif
