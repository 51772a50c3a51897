/* bench_cache_prefetch: an epoch-style replay — a data loader reading 200 batches of 256 KiB
 * (fp32, ReLU-like, zstd in L2) in the same order every epoch, doing 1 ms of work per batch,
 * with L1 holding 10% of them — with prefetch (depth 4) against the same cache without it,
 * measured in the same run: L1 hit ratio and mean get latency over epochs 2-4. For policies lru
 * (a loop defeats it) and lruk+ (admission keeps a fixed part of the loop). Then two loaders
 * interleaved (100 batches each: one in order, one in a fixed shuffled order; the interleaving
 * shifts every epoch, as loaders at different speeds): prefetch with a stream id per loader
 * (ds_cache_get_stream) against prefetch over the gets as one sequence, and against none.
 * Median of 3 runs.
 * usage: bench_cache_prefetch [--json]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <stdint.h>
#include <time.h>

#include "bench_common.h"

#define NB 200
#define VAL (256 * 1024)
#define REPS 3

static float *data;

static void work_1ms(void) {
  double t0 = bench_now_s();
  while (bench_now_s() - t0 < 1e-3) {
  }
}

/* Returns L1 hit ratio and mean get latency (us) over epochs 1..3 (epoch 0 warms up). */
static int replay(ds_context *ctx, const char *policy, uint32_t depth, double *hit, double *lat) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = (uint64_t)NB / 10 * (VAL + 64);
  o.l2_bytes = 256u << 20;
  o.codec = DS_CACHE_CODEC_ZSTD;
  o.zstd_level = 1;
  o.policy = policy;
  o.shards = 1;
  o.prefetch_depth = depth;
  ds_cache *c = NULL;
  if (ds_cache_create(&c, ctx, &o) != DS_OK) return -1;
  for (int k = 0; k < NB; k++) {
    data[0] = (float)k;
    if (ds_cache_put(c, &k, sizeof k, data, VAL) != DS_OK) return -1;
  }
  static float out[VAL / 4];
  ds_cache_tier_stats s0, s1;
  memset(&s0, 0, sizeof s0);
  s0.struct_size = sizeof s0;
  s1 = s0;
  double total = 0;
  for (int epoch = 0; epoch < 4; epoch++) {
    if (epoch == 1) ds_cache_stats(c, DS_CACHE_L1, &s0);
    for (int k = 0; k < NB; k++) {
      size_t len;
      double t0 = bench_now_s();
      if (ds_cache_get(c, &k, sizeof k, out, VAL, &len) != DS_OK || out[0] != (float)k) return -1;
      if (epoch > 0) total += bench_now_s() - t0;
      work_1ms();
    }
  }
  ds_cache_stats(c, DS_CACHE_L1, &s1);
  double gets = 3.0 * NB;
  *hit = (double)(s1.hits - s0.hits) / gets;
  *lat = total / gets * 1e6;
  ds_cache_destroy(c);
  return 0;
}

static ds_cache *loader_cache(ds_context *ctx, uint32_t depth) {
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.l1_bytes = (uint64_t)NB / 10 * (VAL + 64);
  o.l2_bytes = 256u << 20;
  o.codec = DS_CACHE_CODEC_ZSTD;
  o.zstd_level = 1;
  o.policy = "lru";
  o.shards = 1;
  o.prefetch_depth = depth;
  ds_cache *c = NULL;
  return ds_cache_create(&c, ctx, &o) == DS_OK ? c : NULL;
}

/* Two loaders: mode 0 no prefetch, 1 prefetch over one sequence, 2 prefetch per stream.
 * Loader 0 reads keys 0..99 in order, loader 1 keys 100..199 in a shuffled order. */
static int replay_two(ds_context *ctx, int mode, double *hit, double *lat) {
  ds_cache *c = loader_cache(ctx, mode ? 4 : 0);
  if (!c) return -1;
  for (int k = 0; k < NB; k++) {
    data[0] = (float)k;
    if (ds_cache_put(c, &k, sizeof k, data, VAL) != DS_OK) return -1;
  }
  static float out[VAL / 4];
  ds_cache_tier_stats s0, s1;
  memset(&s0, 0, sizeof s0);
  s0.struct_size = sizeof s0;
  s1 = s0;
  double total = 0;
  int half = NB / 2;
  for (int epoch = 0; epoch < 4; epoch++) {
    if (epoch == 1) ds_cache_stats(c, DS_CACHE_L1, &s0);
    for (int i = 0; i < NB; i++) {
      int who = i & 1, j = i / 2;
      int k = who ? half + (((j + epoch * 7) % half) * 37 + 11) % half : j;
      size_t len;
      double t0 = bench_now_s();
      ds_status st = mode == 2 ? ds_cache_get_stream(c, (uint64_t)who, &k, sizeof k, out, VAL, &len)
                               : ds_cache_get(c, &k, sizeof k, out, VAL, &len);
      if (st != DS_OK || out[0] != (float)k) return -1;
      if (epoch > 0) total += bench_now_s() - t0;
      work_1ms();
    }
  }
  ds_cache_stats(c, DS_CACHE_L1, &s1);
  *hit = (double)(s1.hits - s0.hits) / (3.0 * NB);
  *lat = total / (3.0 * NB) * 1e6;
  ds_cache_destroy(c);
  return 0;
}

static int two_loaders(ds_context *ctx, int json, int *header) {
  double h[3][REPS], l[3][REPS];
  for (int r = 0; r < REPS; r++)
    for (int m = 0; m < 3; m++)
      if (replay_two(ctx, m, &h[m][r], &l[m][r])) return -1;
  static const char *const anchors[3] = {"no prefetch", "one sequence"};
  for (int a = 0; a < 2; a++) {
    bench_row r1 = {"bench_cache_prefetch", "two_loaders_lru_streams", "l1_hit_ratio",
                    bench_median(h[2], REPS), anchors[a], bench_median(h[a], REPS), 2.0,
                    "higher"};
    bench_row r2 = {"bench_cache_prefetch", "two_loaders_lru_streams", "get_us_mean",
                    bench_median(l[2], REPS), anchors[a], bench_median(l[a], REPS), 0.5,
                    "lower"};
    bench_print(&r1, json, header);
    bench_print(&r2, json, header);
  }
  return 0;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_context *ctx = bench_context("bench_cache_prefetch", NULL, 0);
  data = malloc(VAL);
  uint64_t s = 12345;
  for (int i = 0; i < VAL / 4; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    data[i] = (s & 1) ? (float)(s >> 40) / 16777216.0f : 0.0f;
  }
  static const char *const pols[] = {"lru", "lruk+"};
  for (int p = 0; p < 2; p++) {
    double hp[REPS], lp[REPS], hn[REPS], ln[REPS];
    for (int r = 0; r < REPS; r++)
      if (replay(ctx, pols[p], 4, &hp[r], &lp[r]) || replay(ctx, pols[p], 0, &hn[r], &ln[r])) {
        fprintf(stderr, "bench_cache_prefetch: replay failed (%s)\n", ds_context_last_error(ctx));
        return 1;
      }
    char name[64];
    snprintf(name, sizeof name, "epoch_replay_%s", pols[p]);
    bench_row r1 = {"bench_cache_prefetch", name, "l1_hit_ratio", bench_median(hp, REPS),
                    "no prefetch", bench_median(hn, REPS), 2.0, "higher"};
    bench_row r2 = {"bench_cache_prefetch", name, "get_us_mean", bench_median(lp, REPS),
                    "no prefetch", bench_median(ln, REPS), 0.5, "lower"};
    bench_print(&r1, json, &header);
    bench_print(&r2, json, &header);
  }
  if (two_loaders(ctx, json, &header)) {
    fprintf(stderr, "bench_cache_prefetch: two-loader replay failed (%s)\n",
            ds_context_last_error(ctx));
    return 1;
  }
  free(data);
  ds_context_destroy(ctx);
  return 0;
}
