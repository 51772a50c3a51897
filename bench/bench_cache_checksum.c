/* bench_cache_checksum: speed of the disk tier's record checksums (XXH3_64 with a seed)
 * through the table the CPU detection picks (src/cache/xxh3.h: AVX2 where the CPU has it)
 * against libxxhash's XXH3_64bits_withSeed, the anchor, on 1 KiB, 64 KiB and 1 MiB inputs
 * that stay in the cache (hash) and on a 64 MiB walk over 1 MiB records (the size a get
 * meets after the page cache: hash and copy-plus-hash, the fused form a get of a large raw
 * record uses, against memcpy followed by the library's hash, and against memcpy alone: an
 * LMDB get's work, goal 0.9). GB/s, median of 9 rounds,
 * ours and the anchor alternating in each round.
 * usage: bench_cache_checksum [--json] */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <unistd.h>
#include <xxhash.h>

#include "bench_common.h"
#include "cache/xxh3.h"

#define ROUNDS 9
#define WALK (64u << 20)

static volatile uint64_t sink;

enum { OURS_HASH, LIB_HASH, OURS_COPY_HASH, LIB_COPY_HASH, COPY_ONLY };

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
    case COPY_ONLY: /* what an LMDB get does: one memcpy out of the map */
      memcpy(dst, q, n);
      acc += dst[r & (n - 1)];
      break;
    default:
      memcpy(dst, q, n);
      acc += XXH3_64bits_withSeed(dst, n, r);
    }
  }
  sink += acc;
  return (double)reps * (double)n / (bench_now_s() - t0) / 1e9;
}

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU microseconds per 1 MiB get: r[0] header only, r[1] verified with the table in use,
 * r[2] verified with the baseline table. 0 on success. */
static int get_costs(const char *base, unsigned char *vals, unsigned char *out, double r[3]) {
  enum { N = 30, ROUNDS_GET = 15 };
  const size_t n = 1u << 20;
  ds_context *ctx = bench_context("bench_cache_checksum", NULL, 0);
  char dir[4096], cmd[4200];
  snprintf(dir, sizeof dir, "%s/bench_cache_checksum.%d", base, (int)getpid());
  ds_cache_persist_options po = DS_CACHE_PERSIST_OPTIONS_INIT;
  po.max_bytes = (uint64_t)N * n * 2 + (64u << 20);
  po.codec = DS_CACHE_CODEC_NONE;
  ds_cache *c = NULL;
  int rc = ds_cache_open_persistent_ex(&c, ctx, dir, &po) != DS_OK;
  for (int i = 0; i < N && !rc; i++) rc = ds_cache_put(c, &i, sizeof i, vals + i * n, n) != DS_OK;
  ds_cache_destroy(c);
  double t[3][ROUNDS_GET];
  for (int k = 0; k < ROUNDS_GET && !rc; k++)
    for (int m = 0; m < 3 && !rc; m++) {
      ds_context_set_param(ctx, DS_PARAM_CACHE_VERIFY_READS, m ? 2 : 0);
      ds_context_set_param(ctx, DS_PARAM_CACHE_CHECKSUM_ISA, m == 2);
      if ((rc = ds_cache_open_persistent_ex(&c, ctx, dir, &po) != DS_OK)) break;
      double t0 = thread_cpu_s();
      size_t len;
      for (int g = 0; g < 3 * N && !rc; g++) {
        int i = g % N;
        rc = ds_cache_get(c, &i, sizeof i, out, n, &len) != DS_OK;
      }
      t[m][k] = (thread_cpu_s() - t0) / (3 * N) * 1e6;
      ds_cache_destroy(c);
    }
  if (rc) fprintf(stderr, "bench_cache_checksum: %s\n", ds_context_last_error(ctx));
  for (int m = 0; m < 3 && !rc; m++) r[m] = bench_median(t[m], ROUNDS_GET);
  ds_context_destroy(ctx);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "bench_cache_checksum: could not remove %s\n", dir);
  return rc;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  const char *base = ".";
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--dir")) base = argv[i + 1];
  const ds__xxh3_impl *ours = ds__xxh3_select(0);
  unsigned char *buf = malloc(WALK), *dst = malloc(1u << 20);
  if (!buf || !dst) return 1;
  for (size_t i = 0; i < WALK; i++) buf[i] = (unsigned char)(i * 2654435761u >> 13);
  static const size_t sizes[] = {1024, 65536, 1u << 20};
  if (!json) printf("checksum table in use: %s\n", ours->name);
  for (int c = 0; c < 6; c++) {
    int walk = c >= 3, copy = c >= 4;
    size_t n = walk ? 1u << 20 : sizes[c];
    double a[ROUNDS], b[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
      a[r] = rate(ours, copy ? OURS_COPY_HASH : OURS_HASH, buf, n, walk, dst);
      b[r] = rate(ours, c == 5 ? COPY_ONLY : copy ? LIB_COPY_HASH : LIB_HASH, buf, n, walk, dst);
    }
    char name[64];
    static const char *const names[6] = {"hash_1KiB",          "hash_64KiB",
                                         "hash_1MiB",          "hash_1MiB_from_mem",
                                         "copy_hash_1MiB_mem", "copy_hash_1MiB_mem_vs_copy"};
    static const char *const anchors[3] = {"libxxhash XXH3", "memcpy + libxxhash XXH3",
                                           "memcpy alone"};
    snprintf(name, sizeof name, "%s_%s", names[c], ours->name);
    bench_row row = {"bench_cache_checksum", name, "GB_per_s", bench_median(a, ROUNDS),
                     anchors[c == 5 ? 2 : copy], bench_median(b, ROUNDS), c == 5 ? 0.9 : 1.0,
                     "higher"};
    bench_print(&row, json, &header);
  }
  double g[3];
  if (get_costs(base, buf, dst, g)) return 1;
  char name[64];
  snprintf(name, sizeof name, "get_1MiB_verified_%s", ours->name);
  bench_row v = {"bench_cache_checksum", name, "cpu_us", g[1], "baseline XXH3 table", g[2],
                 1.0, "lower"};
  bench_row h = {"bench_cache_checksum", "get_1MiB_header_only", "cpu_us", g[0],
                 "verified, baseline table", g[2], 1.0, "lower"};
  bench_print(&v, json, &header);
  bench_print(&h, json, &header);
  free(buf);
  free(dst);
  return 0;
}
