/* The disk tier's XXH3 checksums (records, their seeds, index files) through a table of
 * functions chosen once per process by CPU feature detection: the AVX2 build of XXH3
 * (xxh3_avx2.c) where the CPU has AVX2, else the baseline x86-64 (SSE2) build (xxh3.c); a
 * scalar build (xxh3_scalar.c) is only there to be tested.
 * Every table returns exactly the XXH3_64 values of libxxhash. */
#ifndef DS_CACHE_XXH3_H
#define DS_CACHE_XXH3_H

#include <stddef.h>
#include <stdint.h>

/* One piece of a hashed byte stream. */
typedef struct ds__xxh3_part {
  const void *p;
  size_t n;
} ds__xxh3_part;

typedef struct ds__xxh3_impl {
  const char *name; /* "avx2", "baseline"; NULL: not built for this target */
  /* XXH3_64bits_withSeed(p, n, seed) (seed 0 = XXH3_64bits) */
  uint64_t (*hash)(const void *p, size_t n, uint64_t seed);
  /* the same over the concatenation of np parts (streaming) */
  uint64_t (*hash_parts)(const ds__xxh3_part *parts, size_t np, uint64_t seed);
  /* copies n bytes src -> dst (no overlap) and returns their hash, in one pass: over 240
   * bytes each source stripe is loaded once, stored to dst and fed to the hash from the same
   * registers (xxh3_fused.h); shorter ones are copied, then hashed from dst */
  uint64_t (*copy_hash)(void *dst, const void *src, size_t n, uint64_t seed);
} ds__xxh3_impl;

extern const ds__xxh3_impl ds__xxh3_baseline;
extern const ds__xxh3_impl ds__xxh3_avx2; /* only when ds__xxh3_avx2_usable() */
extern const ds__xxh3_impl ds__xxh3_scalar; /* portable build: never selected, tested */

/* 1 when the AVX2 table is built and the CPU (and OS) support AVX2. Thread-safe. */
int ds__xxh3_avx2_usable(void);
/* The table to use: the fastest usable one, or the baseline when force_baseline is set
 * (tunable cache_checksum_isa = baseline). Thread-safe. */
const ds__xxh3_impl *ds__xxh3_select(int force_baseline);

#endif
