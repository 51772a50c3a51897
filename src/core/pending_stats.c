/* PLACEHOLDER, removed when stats.c lands. */
#include "internal.h"
ds_status ds__stats_create(ds_context *ctx) { (void)ctx; return DS_OK; }
void ds__stats_destroy(ds_context *ctx) { (void)ctx; }
int ds__stat_register(ds_context *ctx, const char *name, ds_stat_kind kind) { (void)ctx; (void)name; (void)kind; return -1; }
void ds__stat_add(ds_context *ctx, int id, double delta) { (void)ctx; (void)id; (void)delta; }
void ds__stat_set(ds_context *ctx, int id, double value) { (void)ctx; (void)id; (void)value; }
void ds__stats_publish(ds_context *ctx) { (void)ctx; }
