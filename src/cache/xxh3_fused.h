/* The single-pass copy-and-XXH3_64 of the disk tier's large raw records: each stripe of 64
 * bytes is loaded from the source once, stored to the destination and fed to XXH3's long-input
 * accumulators from the same registers (no re-read of the copy). Included by each XXH3 table's
 * translation unit after <xxhash.h> (with XXH_INLINE_ALL): the accumulate step is ours (it
 * also stores), the constants, the seeded secret and the final merge are the header's, so the
 * result is exactly XXH3_64bits_withSeed. The vector width follows the unit's flags: AVX2,
 * SSE2, or scalar (also forced with DS__XXH3_FUSED_SCALAR, the tested portable form).
 *
 * XXH3 for inputs over 240 bytes: 8 64-bit accumulators; per 64-byte stripe s of a block, each
 * lane i takes v = input word i, k = v ^ secret word i at byte offset 8s, acc[i ^ 1] += v and
 * acc[i] += lo32(k) * hi32(k); after 16 stripes (one 1 KiB block) every lane is scrambled
 * (acc ^= acc >> 47, ^= secret word at 128, *= PRIME32_1). The last (partial) block takes the
 * whole stripes before byte n - 1, then the stripe ending at n with the secret at 121; the
 * accumulators are merged with the secret at 11 and n * PRIME64_1. */
#ifndef DS_CACHE_XXH3_FUSED_H
#define DS_CACHE_XXH3_FUSED_H

#include <stdint.h>
#include <string.h>

#if !defined(DS__XXH3_FUSED_SCALAR) && defined(__AVX2__)
#include <immintrin.h>
#define DS__FX_AVX2 1
#elif !defined(DS__XXH3_FUSED_SCALAR) && defined(__SSE2__)
#include <emmintrin.h>
#define DS__FX_SSE2 1
#endif

#define DS__FX_STRIPE 64
#define DS__FX_BLOCK_STRIPES ((XXH_SECRET_DEFAULT_SIZE - DS__FX_STRIPE) / 8) /* 16 */
#define DS__FX_SCRAMBLE_KEY (XXH_SECRET_DEFAULT_SIZE - DS__FX_STRIPE)       /* 128 */
#define DS__FX_LAST_KEY (XXH_SECRET_DEFAULT_SIZE - DS__FX_STRIPE - 7)        /* 121 */

/* Each stripe prefetches the line this far ahead: with it the single pass runs at about
 * memcpy's speed on 1 MiB records read from memory (0.96-1.06x memcpy alone in
 * bench_cache_checksum), without it at about 0.8x (the hash's arithmetic delays the next
 * loads; 0.5-4 KiB ahead all did about as well). A prefetch never faults, so it may run past
 * the end of src. */
#define DS__FX_PREFETCH_AHEAD 2048
#if defined(__GNUC__) || defined(__clang__)
#define DS__FX_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define DS__FX_PREFETCH(p) ((void)0)
#endif

#if defined(DS__FX_AVX2)
typedef struct {
  __m256i a[2];
} ds__fx_acc;

static inline void ds__fx_load(ds__fx_acc *x, const uint64_t *acc) {
  for (int i = 0; i < 2; i++) x->a[i] = _mm256_loadu_si256((const __m256i *)(acc + 4 * i));
}
static inline void ds__fx_save(const ds__fx_acc *x, uint64_t *acc) {
  for (int i = 0; i < 2; i++) _mm256_storeu_si256((__m256i *)(acc + 4 * i), x->a[i]);
}
/* acc += swap64(v) + lo32(v ^ k) * hi32(v ^ k), per 64-bit lane */
static inline __m256i ds__fx_lane(__m256i acc, __m256i v, const unsigned char *key) {
  __m256i k = _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)key));
  __m256i prod = _mm256_mul_epu32(k, _mm256_srli_epi64(k, 32));
  __m256i swap = _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2));
  return _mm256_add_epi64(_mm256_add_epi64(acc, swap), prod);
}
static inline void ds__fx_stripe(ds__fx_acc *x, unsigned char *dst, const unsigned char *src,
                                 const unsigned char *key) {
  __m256i v0 = _mm256_loadu_si256((const __m256i *)src);
  __m256i v1 = _mm256_loadu_si256((const __m256i *)(src + 32));
  _mm256_storeu_si256((__m256i *)dst, v0);
  _mm256_storeu_si256((__m256i *)(dst + 32), v1);
  x->a[0] = ds__fx_lane(x->a[0], v0, key);
  x->a[1] = ds__fx_lane(x->a[1], v1, key + 32);
}
static inline __m256i ds__fx_scr(__m256i a, const unsigned char *key) {
  const __m256i prime = _mm256_set1_epi32((int)XXH_PRIME32_1);
  a = _mm256_xor_si256(a, _mm256_srli_epi64(a, 47));
  a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)key));
  __m256i lo = _mm256_mul_epu32(a, prime);
  __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), prime);
  return _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
}
static inline void ds__fx_scramble(ds__fx_acc *x, const unsigned char *key) {
  x->a[0] = ds__fx_scr(x->a[0], key);
  x->a[1] = ds__fx_scr(x->a[1], key + 32);
}

#elif defined(DS__FX_SSE2)
typedef struct {
  __m128i a[4];
} ds__fx_acc;

static inline void ds__fx_load(ds__fx_acc *x, const uint64_t *acc) {
  for (int i = 0; i < 4; i++) x->a[i] = _mm_loadu_si128((const __m128i *)(acc + 2 * i));
}
static inline void ds__fx_save(const ds__fx_acc *x, uint64_t *acc) {
  for (int i = 0; i < 4; i++) _mm_storeu_si128((__m128i *)(acc + 2 * i), x->a[i]);
}
static inline __m128i ds__fx_lane(__m128i acc, __m128i v, const unsigned char *key) {
  __m128i k = _mm_xor_si128(v, _mm_loadu_si128((const __m128i *)key));
  __m128i prod = _mm_mul_epu32(k, _mm_srli_epi64(k, 32));
  __m128i swap = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2));
  return _mm_add_epi64(_mm_add_epi64(acc, swap), prod);
}
static inline void ds__fx_stripe(ds__fx_acc *x, unsigned char *dst, const unsigned char *src,
                                 const unsigned char *key) {
  __m128i v[4];
  for (int i = 0; i < 4; i++) v[i] = _mm_loadu_si128((const __m128i *)(src + 16 * i));
  for (int i = 0; i < 4; i++) _mm_storeu_si128((__m128i *)(dst + 16 * i), v[i]);
  for (int i = 0; i < 4; i++) x->a[i] = ds__fx_lane(x->a[i], v[i], key + 16 * i);
}
static inline void ds__fx_scramble(ds__fx_acc *x, const unsigned char *key) {
  const __m128i prime = _mm_set1_epi32((int)XXH_PRIME32_1);
  for (int i = 0; i < 4; i++) {
    __m128i a = x->a[i];
    a = _mm_xor_si128(a, _mm_srli_epi64(a, 47));
    a = _mm_xor_si128(a, _mm_loadu_si128((const __m128i *)(key + 16 * i)));
    __m128i lo = _mm_mul_epu32(a, prime);
    __m128i hi = _mm_mul_epu32(_mm_srli_epi64(a, 32), prime);
    x->a[i] = _mm_add_epi64(lo, _mm_slli_epi64(hi, 32));
  }
}

#else /* scalar: any target */
typedef struct {
  uint64_t a[8];
} ds__fx_acc;

static inline void ds__fx_load(ds__fx_acc *x, const uint64_t *acc) {
  memcpy(x->a, acc, sizeof x->a);
}
static inline void ds__fx_save(const ds__fx_acc *x, uint64_t *acc) {
  memcpy(acc, x->a, sizeof x->a);
}
static inline void ds__fx_stripe(ds__fx_acc *x, unsigned char *dst, const unsigned char *src,
                                 const unsigned char *key) {
  uint64_t v[8];
  memcpy(v, src, sizeof v); /* the words as stored; XXH3 reads them little-endian */
  memcpy(dst, v, sizeof v);
  for (int i = 0; i < 8; i++) {
    uint64_t w = XXH_readLE64((const unsigned char *)v + 8 * i);
    uint64_t k = w ^ XXH_readLE64(key + 8 * i);
    x->a[i ^ 1] += w;
    x->a[i] += (k & 0xffffffffu) * (k >> 32);
  }
}
static inline void ds__fx_scramble(ds__fx_acc *x, const unsigned char *key) {
  for (int i = 0; i < 8; i++) {
    uint64_t a = x->a[i];
    a ^= a >> 47;
    a ^= XXH_readLE64(key + 8 * i);
    x->a[i] = a * XXH_PRIME32_1;
  }
}
#endif

/* Copies n > 240 bytes src -> dst (no overlap) and returns XXH3_64bits_withSeed(src, n, seed)
 * (of the bytes as stored to dst), reading each source byte once. */
static uint64_t ds__fx_copy_hash_long(void *dst, const void *src, size_t n, uint64_t seed) {
  XXH_ALIGN(64) unsigned char custom[XXH_SECRET_DEFAULT_SIZE];
  const unsigned char *sec = XXH3_kSecret;
  if (seed) {
    XXH3_initCustomSecret(custom, seed);
    sec = custom;
  }
  uint64_t acc[8] = XXH3_INIT_ACC;
  ds__fx_acc x;
  ds__fx_load(&x, acc);
  unsigned char *d = dst;
  const unsigned char *s = src;
  const size_t block = (size_t)DS__FX_STRIPE * DS__FX_BLOCK_STRIPES;
  size_t nb = (n - 1) / block;
  for (size_t b = 0; b < nb; b++, d += block, s += block) {
    for (size_t i = 0; i < DS__FX_BLOCK_STRIPES; i++) {
      DS__FX_PREFETCH(s + DS__FX_STRIPE * i + DS__FX_PREFETCH_AHEAD);
      ds__fx_stripe(&x, d + DS__FX_STRIPE * i, s + DS__FX_STRIPE * i, sec + 8 * i);
    }
    ds__fx_scramble(&x, sec + DS__FX_SCRAMBLE_KEY);
  }
  size_t ns = (n - 1 - nb * block) / DS__FX_STRIPE;
  for (size_t i = 0; i < ns; i++)
    ds__fx_stripe(&x, d + DS__FX_STRIPE * i, s + DS__FX_STRIPE * i, sec + 8 * i);
  /* the stripe ending at n: it also copies the tail bytes past the whole stripes (the bytes
   * it shares with the stripes before are stored again with the same values) */
  unsigned char *dl = (unsigned char *)dst + n - DS__FX_STRIPE;
  ds__fx_stripe(&x, dl, (const unsigned char *)src + n - DS__FX_STRIPE, sec + DS__FX_LAST_KEY);
  ds__fx_save(&x, acc);
  return XXH3_mergeAccs(acc, sec + XXH_SECRET_MERGEACCS_START, (uint64_t)n * XXH_PRIME64_1);
}

/* The table's copy_hash: one pass for inputs over 240 bytes (XXH3's long-input loop), a copy
 * then a one-shot hash of the copy (in L1) for the short size classes. */
static uint64_t ds__fx_copy_hash(void *dst, const void *src, size_t n, uint64_t seed) {
  if (n > 240) return ds__fx_copy_hash_long(dst, src, n, seed);
  if (n) memcpy(dst, src, n);
  return XXH3_64bits_withSeed(dst, n, seed);
}

#endif
