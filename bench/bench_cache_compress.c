/* bench_cache_compress: the L2 tier's compression ratio and put/get speed on fp32 activations
 * (synthetic: ReLU of N(0,1) samples, half zeros; 4 MiB per value) against the same codecs
 * called directly (lz4, zstd level 3) and Blosc (byte shuffle + zstd), measured in the same
 * run. Ours includes the cache's bookkeeping and a copy out on get. Median of 5 runs.
 * usage: bench_cache_compress [--json]   */
#define _POSIX_C_SOURCE 200809L
#include <blosc.h>
#include <deepseek.h>
#include <lz4.h>
#include <math.h>
#include <stdint.h>
#include <zstd.h>

#include "bench_common.h"

#define N (1u << 20) /* floats: 4 MiB */
#define REPS 5
#define MB (4.0 * N / 1e6)

static float *act;
static unsigned char *tmp, *back;

static void make_activations(void) {
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  for (uint32_t i = 0; i < N; i += 2) { /* Box-Muller */
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    double u1 = ((s >> 11) + 1.0) / 9007199254740993.0;
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    double u2 = (s >> 11) / 9007199254740992.0;
    double r = sqrt(-2 * log(u1));
    float a = (float)(r * cos(6.283185307179586 * u2)), b = (float)(r * sin(6.283185307179586 * u2));
    act[i] = a > 0 ? a : 0;
    act[i + 1] = b > 0 ? b : 0;
  }
}

typedef struct {
  double ratio, put_mbs, get_mbs;
} result;

static result run_ours(ds_context *ctx, int codec, uint32_t flags) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = 0;
  o.l2_bytes = 256u << 20;
  o.codec = codec;
  o.flags = flags;
  o.shards = 1;
  ds_cache *c = NULL;
  result r = {0, 0, 0};
  if (ds_cache_create(&c, ctx, &o) != DS_OK) return r;
  double tp[REPS], tg[REPS];
  for (int k = 0; k < REPS; k++) {
    double t0 = bench_now_s();
    ds_cache_put(c, "act", 3, act, 4 * N);
    tp[k] = bench_now_s() - t0;
    size_t len;
    t0 = bench_now_s();
    ds_cache_get(c, "act", 3, back, 4 * N, &len);
    tg[k] = bench_now_s() - t0;
  }
  ds_cache_tier_stats s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  ds_cache_stats(c, DS_CACHE_L2, &s);
  r.ratio = s.compression_ratio;
  r.put_mbs = MB / bench_median(tp, REPS);
  r.get_mbs = MB / bench_median(tg, REPS);
  ds_cache_destroy(c);
  return r;
}

/* kind 0: lz4, 1: zstd 3, 2: blosc shuffle + zstd */
static result run_anchor(int kind) {
  double tc[REPS], td[REPS];
  size_t clen = 0;
  size_t cap = ZSTD_compressBound(4 * N) + BLOSC_MAX_OVERHEAD;
  for (int k = 0; k < REPS; k++) {
    double t0 = bench_now_s();
    if (kind == 0) clen = (size_t)LZ4_compress_default((const char *)act, (char *)tmp, 4 * N, (int)cap);
    else if (kind == 1) clen = ZSTD_compress(tmp, cap, act, 4 * N, 3);
    else clen = (size_t)blosc_compress_ctx(5, BLOSC_SHUFFLE, 4, 4 * N, act, tmp, cap, "zstd", 0, 1);
    tc[k] = bench_now_s() - t0;
    t0 = bench_now_s();
    if (kind == 0) LZ4_decompress_safe((const char *)tmp, (char *)back, (int)clen, 4 * N);
    else if (kind == 1) ZSTD_decompress(back, 4 * N, tmp, clen);
    else blosc_decompress_ctx(tmp, back, 4 * N, 1);
    td[k] = bench_now_s() - t0;
  }
  result r = {4.0 * N / (double)clen, MB / bench_median(tc, REPS), MB / bench_median(td, REPS)};
  return r;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_context *ctx = bench_context("bench_cache_compress", NULL, 0);
  act = malloc(4 * N);
  tmp = malloc(ZSTD_compressBound(4 * N) + BLOSC_MAX_OVERHEAD);
  back = malloc(4 * N);
  make_activations();
  blosc_init();
  struct {
    const char *name, *anchor;
    int codec;
    uint32_t flags;
    int kind;
  } cases[] = {
      {"l2_lz4", "lz4 direct", DS_CACHE_CODEC_LZ4, 0, 0},
      {"l2_zstd3", "zstd-3 direct", DS_CACHE_CODEC_ZSTD, 0, 1},
      {"l2_zstd3_shuffle", "blosc shuffle+zstd-5", DS_CACHE_CODEC_ZSTD, DS_CACHE_SHUFFLE, 2},
      {"l2_bf16_shuffle_zstd3", "zstd-3 direct (lossless)", DS_CACHE_CODEC_ZSTD,
       DS_CACHE_SHUFFLE | DS_CACHE_LOSSY_BF16, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    result a = run_ours(ctx, cases[i].codec, cases[i].flags), b = run_anchor(cases[i].kind);
    bench_row rows[3] = {
        {"bench_cache_compress", cases[i].name, "ratio", a.ratio, cases[i].anchor, b.ratio, 1.0,
         "higher"},
        {"bench_cache_compress", cases[i].name, "put_MB_s", a.put_mbs, cases[i].anchor,
         b.put_mbs, 0.9, "higher"},
        {"bench_cache_compress", cases[i].name, "get_MB_s", a.get_mbs, cases[i].anchor,
         b.get_mbs, 0.9, "higher"},
    };
    for (int k = 0; k < 3; k++) bench_print(&rows[k], json, &header);
  }
  blosc_destroy();
  free(act);
  free(tmp);
  free(back);
  ds_context_destroy(ctx);
  return 0;
}
