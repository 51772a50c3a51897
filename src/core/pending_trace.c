/* PLACEHOLDER, removed when trace.c lands. */
#include "internal.h"
ds_status ds__trace_create(ds_context *ctx) { (void)ctx; return DS_OK; }
void ds__trace_destroy(ds_context *ctx) { (void)ctx; }
