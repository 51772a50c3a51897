/* Internal: loading cache access traces (the formats of the shared cachetrace data) into a key
 * array with next-access times, for the trace simulator and the policy tests. */
#ifndef DS_CACHE_CACHETRACE_H
#define DS_CACHE_CACHETRACE_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef struct ds__cachetrace {
  char name[64];   /* trace name as in reference_miss_ratios.csv (file name without suffixes) */
  uint64_t *keys;
  int64_t *next;   /* index of the next request for the same key, -1 for none */
  size_t n;
  uint64_t unique;
} ds__cachetrace;

/* Loads path by its suffix: .oracleGeneral.bin (24-byte records), .csv (cloudPhysics: header
 * then version,time,op,size,lbn; key = lbn), .gz (text, one key per line, '*' lines skipped,
 * CRLF accepted), .xz (text "time key size", key = column 2; DS_ERR_UNSUPPORTED when built
 * without liblzma), anything else as plain text with the key in the first column.
 * Returns DS_OK, DS_ERR_IO, DS_ERR_FORMAT, DS_ERR_UNSUPPORTED or DS_ERR_NO_MEMORY. */
ds_status ds__cachetrace_load(ds__cachetrace *t, ds_context *ctx, const char *path);
/* The same from bytes already in memory (decompressed: path only names the trace and picks
 * the format by its suffix, a .gz or .xz one as the text inside). Returns DS_OK,
 * DS_ERR_INVALID_ARG, DS_ERR_FORMAT or DS_ERR_NO_MEMORY. */
ds_status ds__cachetrace_parse(ds__cachetrace *t, ds_context *ctx, const char *path,
                               const void *data, size_t n);
void ds__cachetrace_free(ds__cachetrace *t, ds_context *ctx);
/* Trace name derived from a path ("lirs/loop.trace.gz" -> "loop"). */
void ds__cachetrace_name(char *out, size_t cap, const char *path);

#endif
