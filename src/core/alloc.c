/* Allocation through the context's allocator hook. Each block carries a small header with its
 * size so the context can account live bytes and their high-water mark (exported as stats,
 * and checked for leaks at destroy) while the hook itself stays as simple as zstd's
 * customMem. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef union ds__block_hdr {
  size_t size;
  max_align_t align; /* keeps the user pointer aligned as malloc's */
} ds__block_hdr;

/* Raises the high-water mark to live; the loop only runs while live is a new maximum, so an
 * allocation normally pays one relaxed load. */
static void peak_update(ds_context *ctx, int64_t live) {
  int64_t peak = ds__load_relaxed(&ctx->mem_peak_bytes);
  while (live > peak && !ds__cas(&ctx->mem_peak_bytes, &peak, live)) {
  }
}

void *ds__alloc(ds_context *ctx, size_t size) {
  if (size > SIZE_MAX - sizeof(ds__block_hdr)) return NULL;
  ds__block_hdr *h = ctx->alloc.alloc(ctx->alloc.user, sizeof(ds__block_hdr) + size);
  if (!h) return NULL;
  h->size = size;
  peak_update(ctx, ds__fetch_add_relaxed(&ctx->mem_live_bytes, (int64_t)size) + (int64_t)size);
  ds__fetch_add_relaxed(&ctx->mem_live_blocks, 1);
  return h + 1;
}

void *ds__calloc(ds_context *ctx, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = ds__alloc(ctx, n * size);
  if (p) memset(p, 0, n * size);
  return p;
}

void ds__free(ds_context *ctx, void *p) {
  if (!p) return;
  ds__block_hdr *h = (ds__block_hdr *)p - 1;
  ds__fetch_add_relaxed(&ctx->mem_live_bytes, -(int64_t)h->size);
  ds__fetch_add_relaxed(&ctx->mem_live_blocks, -1);
  ctx->alloc.free(ctx->alloc.user, h);
}

char *ds__strdup(ds_context *ctx, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = ds__alloc(ctx, n);
  if (d) memcpy(d, s, n);
  return d;
}
