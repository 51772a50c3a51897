/* The bodies of one XXH3 function table, included once by each table's translation unit
 * after <xxhash.h> (with XXH_INLINE_ALL), so each gets the XXH3 code its compiler flags
 * select. Defines static functions only. */
#ifndef DS_CACHE_XXH3_BODY_H
#define DS_CACHE_XXH3_BODY_H

#include <string.h>

#include "xxh3.h"
#include "xxh3_fused.h"

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

/* copy_hash: xxh3_fused.h's single pass (each source byte loaded once, stored and hashed
 * from the same register) */
#define ds__xh_copy_hash ds__fx_copy_hash

#endif
