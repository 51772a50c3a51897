/* Tests of the disk tier's XXH3 tables (src/cache/xxh3.c, xxh3_avx2.c): every table returns
 * libxxhash's XXH3_64 for random inputs of many lengths, seeds and alignments, in one shot,
 * in parts and fused with a copy; and the choice of table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h> /* the library's own XXH3 (not inlined here): the reference */

#include "cache/xxh3.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The tables to check: the baseline and the portable scalar build always, AVX2 where the CPU
 * has it. */
static int tables(const ds__xxh3_impl **t) {
  int n = 0;
  t[n++] = &ds__xxh3_baseline;
  t[n++] = &ds__xxh3_scalar;
  if (ds__xxh3_avx2_usable()) t[n++] = &ds__xxh3_avx2;
  else printf("  (no AVX2 on this CPU: only the baseline table is checked)\n");
  return n;
}

/* One input: every table, one shot / parts / fused copy (to dst at a random offset, so the
 * stores are unaligned too), against XXH3_64bits_withSeed. dst has n + 65 bytes. */
static void check_one(const ds__xxh3_impl *const *t, int nt, const unsigned char *p, size_t n,
                      uint64_t seed, unsigned char *dst0) {
  uint64_t want = seed ? XXH3_64bits_withSeed(p, n, seed) : XXH3_64bits(p, n);
  for (int i = 0; i < nt; i++) {
    if (t[i]->hash(p, n, seed) != want)
      fail_msg("%s hash differs at length %zu seed %llx", t[i]->name, n,
               (unsigned long long)seed);
    size_t a = (size_t)(rnd() % (n + 1));
    size_t b = a + (size_t)(rnd() % (n - a + 1));
    ds__xxh3_part parts[3] = {{p, a}, {p + a, b - a}, {p + b, n - b}};
    if (t[i]->hash_parts(parts, 3, seed) != want)
      fail_msg("%s parts hash differs at length %zu (split %zu/%zu)", t[i]->name, n, a, b);
    unsigned char *dst = dst0 + rnd() % 64;
    memset(dst, 0xa5, n + 1);
    if (t[i]->copy_hash(dst, p, n, seed) != want)
      fail_msg("%s copy hash differs at length %zu", t[i]->name, n);
    assert_memory_equal(dst, p, n);
    assert_int_equal(dst[n], 0xa5); /* nothing written past the end */
  }
}

static void test_same_hashes(void **state) {
  (void)state;
  const ds__xxh3_impl *t[3];
  int nt = tables(t);
  size_t cap = (2u << 20) + 64;
  unsigned char *buf = malloc(cap), *dst = malloc(cap + 65);
  assert_non_null(buf);
  assert_non_null(dst);
  for (size_t i = 0; i < cap; i++) buf[i] = (unsigned char)rnd();
  /* every length to 2 KiB (all of XXH3's size classes and stripe tails), then the block and
   * chunk boundaries and large inputs; random offsets make the loads unaligned */
  for (size_t n = 0; n <= 2048; n++)
    check_one(t, nt, buf + rnd() % 64, n, n % 3 ? rnd() : 0, dst);
  static const size_t big[] = {4095,  4096,   4097,   16383,  16384,       32767,
                               32768, 32769,  65535,  65536,  65537,       100003,
                               262144, 1048576, 1048577, (2u << 20) - 1, 2u << 20};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
    for (int s = 0; s < 2; s++) check_one(t, nt, buf + (s ? 0 : 7), big[i], s ? rnd() : 0, dst);
  for (int r = 0; r < 200; r++) { /* random lengths up to 300 KiB */
    size_t n = (size_t)(rnd() % 300000);
    check_one(t, nt, buf + rnd() % 64, n, rnd(), dst);
  }
  free(buf);
  free(dst);
}

static void test_select(void **state) {
  (void)state;
  assert_ptr_equal(ds__xxh3_select(1), &ds__xxh3_baseline);
  const ds__xxh3_impl *best = ds__xxh3_select(0);
  assert_ptr_equal(best, ds__xxh3_avx2_usable() ? &ds__xxh3_avx2 : &ds__xxh3_baseline);
  assert_non_null(best->name);
  printf("  checksum table in use: %s\n", best->name);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_hashes),
      cmocka_unit_test(test_select),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
