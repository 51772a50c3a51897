/* The bodies of one XXH3 function table, included once by each table's translation unit
 * after <xxhash.h> (with XXH_INLINE_ALL), so each gets the XXH3 code its compiler flags
 * select. Defines static functions only. */
#ifndef DS_CACHE_XXH3_BODY_H
#define DS_CACHE_XXH3_BODY_H

#include <string.h>

#include "xxh3.h"

/* Chunk of the fused copy: large enough that the streaming state's per-call cost is
 * negligible, small enough that the copied bytes are still in L1/L2 when hashed. */
#define DS__XXH3_CHUNK 32768

static uint64_t ds__xh_hash(const void *p, size_t n, uint64_t seed) {
  return XXH3_64bits_withSeed(p, n, seed);
}

static uint64_t ds__xh_hash_parts(const ds__xxh3_part *parts, size_t np, uint64_t seed) {
  XXH3_state_t st;
  XXH3_INITSTATE(&st);
  XXH3_64bits_reset_withSeed(&st, seed);
  for (size_t i = 0; i < np; i++)
    if (parts[i].n) XXH3_64bits_update(&st, parts[i].p, parts[i].n);
  return XXH3_64bits_digest(&st);
}

static uint64_t ds__xh_copy_hash(void *dst, const void *src, size_t n, uint64_t seed) {
  if (n <= DS__XXH3_CHUNK) { /* one shot: cheaper than a streaming state */
    if (n) memcpy(dst, src, n);
    return XXH3_64bits_withSeed(dst, n, seed);
  }
  XXH3_state_t st;
  XXH3_INITSTATE(&st);
  XXH3_64bits_reset_withSeed(&st, seed);
  unsigned char *d = dst;
  const unsigned char *s = src;
  for (size_t o = 0; o < n; o += DS__XXH3_CHUNK) {
    size_t k = n - o < DS__XXH3_CHUNK ? n - o : DS__XXH3_CHUNK;
    memcpy(d + o, s + o, k);
    XXH3_64bits_update(&st, d + o, k);
  }
  return XXH3_64bits_digest(&st);
}

#endif
