/* bench_cache_checksum: speed of the disk tier's record checksums (XXH3_64 with a seed)
 * through the table the CPU detection picks (src/cache/xxh3.h: AVX2 where the CPU has it)
 * against libxxhash's XXH3_64bits_withSeed, the anchor, on 1 KiB, 64 KiB and 1 MiB inputs
 * that stay in the cache (hash) and on a 64 MiB walk over 1 MiB records (the size a get
 * meets after the page cache: hash and copy-plus-hash, the fused form a get of a large raw
 * record uses, against memcpy followed by the library's hash). GB/s, median of 9 rounds,
 * ours and the anchor alternating in each round.
 * usage: bench_cache_checksum [--json] */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <xxhash.h>

#include "bench_common.h"
#include "cache/xxh3.h"

#define ROUNDS 9
#define WALK (64u << 20)

static volatile uint64_t sink;

enum { OURS_HASH, LIB_HASH, OURS_COPY_HASH, LIB_COPY_HASH };

/* GB/s of hashing (and copying to dst) n bytes at p, repeated to 64 MiB (walk: consecutive
 * records, so the reads come from memory). */
static double rate(const ds__xxh3_impl *t, int mode, const unsigned char *p, size_t n,
                   int walk, unsigned char *dst) {
  size_t reps = WALK / n;
  double t0 = bench_now_s();
  uint64_t acc = 0;
  for (size_t r = 0; r < reps; r++) {
    const unsigned char *q = walk ? p + r * n : p;
    switch (mode) {
    case OURS_HASH: acc += t->hash(q, n, r); break;
    case LIB_HASH: acc += XXH3_64bits_withSeed(q, n, r); break;
    case OURS_COPY_HASH: acc += t->copy_hash(dst, q, n, r); break;
    default:
      memcpy(dst, q, n);
      acc += XXH3_64bits_withSeed(dst, n, r);
    }
  }
  sink += acc;
  return (double)reps * (double)n / (bench_now_s() - t0) / 1e9;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  const ds__xxh3_impl *ours = ds__xxh3_select(0);
  unsigned char *buf = malloc(WALK), *dst = malloc(1u << 20);
  if (!buf || !dst) return 1;
  for (size_t i = 0; i < WALK; i++) buf[i] = (unsigned char)(i * 2654435761u >> 13);
  static const size_t sizes[] = {1024, 65536, 1u << 20};
  if (!json) printf("checksum table in use: %s\n", ours->name);
  for (int c = 0; c < 5; c++) {
    int walk = c >= 3, copy = c == 4;
    size_t n = walk ? 1u << 20 : sizes[c];
    double a[ROUNDS], b[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
      a[r] = rate(ours, copy ? OURS_COPY_HASH : OURS_HASH, buf, n, walk, dst);
      b[r] = rate(ours, copy ? LIB_COPY_HASH : LIB_HASH, buf, n, walk, dst);
    }
    char name[64];
    static const char *const names[5] = {"hash_1KiB", "hash_64KiB", "hash_1MiB",
                                         "hash_1MiB_from_mem", "copy_hash_1MiB_mem"};
    snprintf(name, sizeof name, "%s_%s", names[c], ours->name);
    bench_row row = {"bench_cache_checksum", name, "GB_per_s", bench_median(a, ROUNDS),
                     copy ? "memcpy + libxxhash XXH3" : "libxxhash XXH3", bench_median(b, ROUNDS),
                     1.0, "higher"};
    bench_print(&row, json, &header);
  }
  free(buf);
  free(dst);
  return 0;
}
