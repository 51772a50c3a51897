/* Internal: the persistent disk tier (disk.c) as used by the cache API. */
#ifndef DS_CACHE_DISK_H
#define DS_CACHE_DISK_H

#include "cache_internal.h"
#include "xxh3.h"

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

/* ---- segment index files (disk_index.c) ---- */
typedef struct ds__idx_ent {
  uint64_t off, vlen; /* record offset in its segment; value length */
  uint32_t slen;      /* stored length */
  uint16_t klen;
  uint8_t type, enc;  /* record type (1 put, 2 delete) and encoding */
} ds__idx_ent;

/* The entries of the segment being written, in record order. */
typedef struct ds__idxbuf {
  unsigned char *data;
  size_t len, cap;
  uint64_t count;
  int bad; /* an append ran out of memory: no index file for this segment */
} ds__idxbuf;

void ds__idxbuf_add(ds_context *ctx, ds__idxbuf *b, const ds__idx_ent *e, const void *key);
void ds__idxbuf_reset(ds__idxbuf *b);
void ds__idxbuf_free(ds_context *ctx, ds__idxbuf *b);
/* Writes seg-<id>.idx of a sealed segment of seg_size bytes (write, fsync, rename); a failure
 * is logged and leaves no index file (the segment is then scanned at open). *file_bytes: its
 * size on disk (0 when not written). */
ds_status ds__idx_write(ds_context *ctx, const ds__xxh3_impl *xh, const char *dir, uint32_t id,
                        uint64_t seg_size, const ds__idxbuf *b, uint64_t *file_bytes);
typedef ds_status (*ds__idx_fn)(void *user, const ds__idx_ent *e, const void *key);
/* Calls fn for every entry of seg-<id>.idx, in record order, when the file is whole and
 * describes the segment of seg_size bytes; DS_ERR_NOT_FOUND (no file) or DS_ERR_FORMAT
 * (damaged or stale: logged) before any call otherwise. *file_bytes: its size. */
ds_status ds__idx_load(ds_context *ctx, const ds__xxh3_impl *xh, const char *dir, uint32_t id,
                       uint64_t seg_size, ds__idx_fn fn, void *user, uint64_t *file_bytes);
void ds__idx_unlink(const char *dir, uint32_t id);

#endif
