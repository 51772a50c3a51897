/* Internal: the persistent disk tier (disk.c) as used by the cache API. */
#ifndef DS_CACHE_DISK_H
#define DS_CACHE_DISK_H

#include "cache_internal.h"

typedef struct ds__disk ds__disk;

ds_status ds__disk_open(ds__disk **out, ds_context *ctx, const char *path,
                        const ds_cache_persist_options *o);
void ds__disk_close(ds__disk *d);
ds_status ds__disk_put(ds__disk *d, const void *key, size_t klen, const void *val, size_t vlen);
/* Copies into buf (cap bytes), or with alloc_out != NULL into a new ds__alloc buffer. */
ds_status ds__disk_get(ds__disk *d, const void *key, size_t klen, void *buf, size_t cap,
                       size_t *len, void **alloc_out);
ds_status ds__disk_remove(ds__disk *d, const void *key, size_t klen);
int ds__disk_contains(ds__disk *d, const void *key, size_t klen);
ds_status ds__disk_flush(ds__disk *d);
/* L3 counters in the memory tiers' shape (key_bytes = record overhead), plus corrupt/io. */
void ds__disk_stats(ds__disk *d, ds__tier_counters *t, uint64_t *corrupt, uint64_t *io_errors);

#endif
