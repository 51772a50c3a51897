/* The stats registry of a context: named counters and gauges that modules register once and
 * update without a lock, the core's own gauges, snapshots for callers, and publishing into the
 * stats file (whose format and reader live in stats_file.c). */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "stats_internal.h"

static double ds__bits_to_double(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static uint64_t ds__double_to_bits(double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  return bits;
}

static int ds__stat_find(const struct ds__stats *s, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(s->entries[i].name, name) == 0) return i;
  return -1;
}

int ds__stat_register(ds_context *ctx, const char *name, ds_stat_kind kind) {
  struct ds__stats *s = ctx ? ctx->stats : NULL;
  if (!s || !name || !*name) return -1;
  if (strlen(name) >= DS__STAT_NAME_MAX) {
    /* Truncating could merge two stats into one; refuse instead. */
    ds__log(ctx, DS_LOG_WARN, "stats", "stat name '%s' is longer than %d bytes; not registered",
            name, DS__STAT_NAME_MAX - 1);
    return -1;
  }
  pthread_mutex_lock(&s->mu);
  int n = ds__load_relaxed(&s->count);
  int id = ds__stat_find(s, n, name);
  if (id < 0 && n < DS__STATS_CAPACITY) {
    struct ds__stat_entry *e = &s->entries[n];
    strcpy(e->name, name);
    e->kind = kind == DS_STAT_GAUGE ? DS_STAT_GAUGE : DS_STAT_COUNTER;
    /* A gauge nobody has set yet is unknown, not zero: NaN, as telemetry's unavailable values. */
    ds__store_relaxed(&e->bits, ds__double_to_bits(e->kind == DS_STAT_GAUGE ? NAN : 0.0));
    ds__store(&s->count, n + 1); /* readers that see the new count see the filled entry */
    id = n;
  }
  pthread_mutex_unlock(&s->mu);
  if (id < 0)
    ds__log(ctx, DS_LOG_WARN, "stats", "registry full (%d stats); '%s' not registered",
            DS__STATS_CAPACITY, name);
  return id;
}

static struct ds__stat_entry *ds__stat_entry(ds_context *ctx, int id) {
  struct ds__stats *s = ctx ? ctx->stats : NULL;
  if (!s || id < 0 || id >= ds__load(&s->count)) return NULL;
  return &s->entries[id];
}

void ds__stat_add(ds_context *ctx, int id, double delta) {
  struct ds__stat_entry *e = ds__stat_entry(ctx, id);
  if (!e) return;
  uint64_t old = ds__load_relaxed(&e->bits);
  double v;
  do { /* a gauge nobody has set yet (NaN) counts from 0 */
    v = ds__bits_to_double(old);
  } while (!ds__cas(&e->bits, &old, ds__double_to_bits((isnan(v) ? 0.0 : v) + delta)));
}

void ds__stat_set(ds_context *ctx, int id, double value) {
  struct ds__stat_entry *e = ds__stat_entry(ctx, id);
  if (e) ds__store_relaxed(&e->bits, ds__double_to_bits(value));
}

/* The core's gauges are sampled rather than pushed: refreshed before each snapshot and publish. */
static void ds__stats_refresh_core(ds_context *ctx) {
  struct ds__stats *s = ctx->stats;
  ds__stat_set(ctx, s->id_live_bytes, (double)ds__load_relaxed(&ctx->mem_live_bytes));
  ds__stat_set(ctx, s->id_live_blocks, (double)ds__load_relaxed(&ctx->mem_live_blocks));
  ds__stat_set(ctx, s->id_peak_bytes, (double)ds__load_relaxed(&ctx->mem_peak_bytes));
  ds__stat_set(ctx, s->id_uptime, (double)(ds__now_ns() - s->start_ns) / 1e9);
}

void ds__stats_publish(ds_context *ctx) {
  struct ds__stats *s = ctx ? ctx->stats : NULL;
  if (!s || !s->file) return;
  ds__stats_refresh_core(ctx);
  pthread_mutex_lock(&s->mu); /* the file's sequence lock allows one writer */
  ds__stats_file_write(s->file, s->entries, ds__load_relaxed(&s->count));
  pthread_mutex_unlock(&s->mu);
}

ds_status ds__stats_create(ds_context *ctx) {
  struct ds__stats *s = ds__calloc(ctx, 1, sizeof *s);
  if (!s) return ds__error(ctx, DS_ERR_NO_MEMORY, "stats", "cannot allocate the stats registry");
  pthread_mutex_init(&s->mu, NULL);
  s->start_ns = ds__now_ns();
  ctx->stats = s;
  s->id_live_bytes = ds__stat_register(ctx, "core.mem.live_bytes", DS_STAT_GAUGE);
  s->id_live_blocks = ds__stat_register(ctx, "core.mem.live_blocks", DS_STAT_GAUGE);
  s->id_uptime = ds__stat_register(ctx, "core.uptime_s", DS_STAT_GAUGE);
  s->id_peak_bytes = ds__stat_register(ctx, "core.mem.peak_bytes", DS_STAT_GAUGE);
  if (ds__param(ctx, DS_PARAM_STATS_FILE)) {
    s->file = ds__stats_file_create(ctx);
    ds__stats_publish(ctx); /* a reader never finds an empty file from a live context */
  }
  return DS_OK;
}

void ds__stats_destroy(ds_context *ctx) {
  struct ds__stats *s = ctx->stats;
  if (!s) return;
  ds__stats_file_destroy(ctx, s->file);
  pthread_mutex_destroy(&s->mu);
  ds__free(ctx, s);
  ctx->stats = NULL;
}

const char *ds_stats_file_path(const ds_context *ctx) {
  return ctx && ctx->stats && ctx->stats->file ? ds__stats_file_path_of(ctx->stats->file) : NULL;
}

/* ---- snapshots ---- */

ds_stats *ds__stats_alloc(size_t count) {
  size_t bytes = sizeof(ds_stats) + count * (sizeof(ds_stat) + DS__STAT_NAME_MAX);
  ds_stats *s = calloc(1, bytes);
  if (!s) return NULL;
  s->count = count;
  s->stats = (ds_stat *)(s + 1);
  s->names = (char *)(s->stats + count);
  for (size_t i = 0; i < count; i++) s->stats[i].name = s->names + i * DS__STAT_NAME_MAX;
  return s;
}

ds_status ds_stats_snapshot(ds_stats **out, ds_context *ctx) {
  if (!out || !ctx || !ctx->stats)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "stats", "ds_stats_snapshot: %s is NULL",
                     !out ? "out" : "ctx");
  *out = NULL;
  struct ds__stats *reg = ctx->stats;
  ds__stats_refresh_core(ctx);
  int n = ds__load(&reg->count);
  ds_stats *s = ds__stats_alloc((size_t)n);
  if (!s) return ds__error(ctx, DS_ERR_NO_MEMORY, "stats", "cannot allocate a snapshot of %d stats", n);
  s->pid = (int64_t)getpid();
  snprintf(s->label, sizeof s->label, "%s", ctx->name);
  for (int i = 0; i < n; i++) {
    memcpy(s->names + (size_t)i * DS__STAT_NAME_MAX, reg->entries[i].name, DS__STAT_NAME_MAX);
    s->stats[i].kind = reg->entries[i].kind;
    s->stats[i].value = ds__bits_to_double(ds__load_relaxed(&reg->entries[i].bits));
  }
  *out = s;
  return DS_OK;
}

size_t ds_stats_count(const ds_stats *s) { return s ? s->count : 0; }

ds_status ds_stats_at(ds_stat *out, const ds_stats *s, size_t index) {
  if (!out) return DS_ERR_INVALID_ARG;
  if (!s || index >= s->count) return DS_ERR_NOT_FOUND;
  *out = s->stats[index];
  return DS_OK;
}

ds_status ds_stats_find(double *out, const ds_stats *s, const char *name) {
  if (!out || !name) return DS_ERR_INVALID_ARG;
  if (!s) return DS_ERR_NOT_FOUND;
  for (size_t i = 0; i < s->count; i++) {
    if (strcmp(s->stats[i].name, name) == 0) {
      *out = s->stats[i].value;
      return DS_OK;
    }
  }
  return DS_ERR_NOT_FOUND;
}

int64_t ds_stats_pid(const ds_stats *s) { return s ? s->pid : 0; }

const char *ds_stats_label(const ds_stats *s) { return s ? s->label : NULL; }

void ds_stats_free(ds_stats *s) { free(s); }
