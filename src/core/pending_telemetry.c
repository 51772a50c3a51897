/* PLACEHOLDER, removed when telemetry.c lands. */
#include "internal.h"
ds_status ds__telemetry_create(ds_context *ctx) { (void)ctx; return DS_OK; }
void ds__telemetry_destroy(ds_context *ctx) { (void)ctx; }
void ds__telemetry_set_queue_depth_fn(ds_context *ctx, double (*fn)(void *user), void *user) { (void)ctx; (void)fn; (void)user; }
