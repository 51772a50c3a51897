/* Internal to the stats module: the registry held by the context (stats.c), the snapshot object
 * handed to callers, and the stats file interface (stats_file.c). */
#ifndef DS_CORE_STATS_INTERNAL_H
#define DS_CORE_STATS_INTERNAL_H

#include "internal.h"

#define DS__STATS_CAPACITY 512
#define DS__STAT_NAME_MAX 64 /* 63 bytes + NUL, in the registry, snapshots and the file */

struct ds__stat_entry {
  char name[DS__STAT_NAME_MAX]; /* immutable once the entry is counted */
  int32_t kind;                 /* a ds_stat_kind */
  ds__atomic_u64 bits;          /* the double's bit pattern, so updates need no lock */
};

struct ds__stats_file;

struct ds__stats {
  pthread_mutex_t mu;   /* serialises registration and publishing */
  ds__atomic_int count; /* entries [0, count) are valid; release-stored after an entry is filled */
  int id_live_bytes, id_live_blocks, id_uptime, id_peak_bytes;
  uint64_t start_ns;
  struct ds__stats_file *file; /* NULL when there is no stats file */
  struct ds__stat_entry entries[DS__STATS_CAPACITY];
};

/* A snapshot: one malloc() block holding this header, the ds_stat array and the names. Plain
 * malloc, not the context allocator: snapshots may outlive their context, and the ones read
 * from a file have no context at all. */
struct ds_stats {
  size_t count;
  int64_t pid;
  char label[DS__STAT_NAME_MAX];
  ds_stat *stats; /* count entries, each name pointing into names */
  char *names;    /* count slots of DS__STAT_NAME_MAX bytes, in the same block */
};

/* A snapshot for count stats with names preset to empty strings; NULL if out of memory. */
ds_stats *ds__stats_alloc(size_t count);

/* Creates the context's stats file, or returns NULL (with a warning logged) when it cannot or
 * must not: a missing file never fails context creation. */
struct ds__stats_file *ds__stats_file_create(ds_context *ctx);
/* Removes the file and unmaps it. NULL is a no-op. */
void ds__stats_file_destroy(ds_context *ctx, struct ds__stats_file *f);
/* Copies entries [0, n) into the file under its sequence lock. One writer at a time. */
void ds__stats_file_write(struct ds__stats_file *f, const struct ds__stat_entry *e, int n);
const char *ds__stats_file_path_of(const struct ds__stats_file *f);

#endif /* DS_CORE_STATS_INTERNAL_H */
