/* Fuzz target: the config-file parser (key = value lines) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static ds_context *ctx;
  if (!ctx) {
    ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
    ds_param_value p[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0}, {DS_PARAM_STATS_FILE, 0, 0}};
    o.flags = DS_CONTEXT_NO_ENV;
    o.params = p;
    o.nparams = 2;
    if (ds_context_create(&ctx, &o) != DS_OK) return 0;
  }
  ds_status st = ds__config_parse(ctx, "fuzz", (const char *)data, size, 1);
  if (st != DS_OK && st != DS_ERR_CONFIG) __builtin_trap();
  /* Whatever was applied must be inside every parameter's bounds. */
  for (int i = 0; i < ds__param_count(); i++) {
    const ds__param_def *d = ds__param_at(i);
    int64_t v = 0;
    ds_context_get_param(ctx, d->id, &v);
    if (v < d->min || v > d->max) __builtin_trap();
  }
  return 0;
}
