/* cache_tiers: keep tensors in a GPU tier (when there is a GPU) and two memory tiers, read
 * them back as a data loader stream with prefetch, then keep one in a persistent disk cache.
 * build: part of the project (examples/); run: ./cache_tiers [DIR]  (DIR default: ./cache_demo) */
#include <deepseek.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) {
    fprintf(stderr, "context: %s\n", ds_context_last_error(NULL));
    return 1;
  }

  /* 1. Memory tiers: 1 MiB uncompressed (L1) in front of 8 MiB zstd-compressed (L2), behind
   *    2 MiB of GPU memory: puts land on the GPU and move down when it is full. Without a CUDA
   *    GPU there is no GPU tier (gpu_device -1), not an error. */
  ds_cache_options o = DS_CACHE_OPTIONS_INIT;
  o.gpu_bytes = 2 << 20;
  o.gpu_device = -1;       /* the first CUDA GPU; any fabric device index with its own memory */
  o.prefetch_depth = 2;    /* predict each stream's next keys, move them up ahead of the read */
  o.l1_bytes = 1 << 20;
  o.l2_bytes = 8 << 20;
  o.codec = DS_CACHE_CODEC_ZSTD;
  o.flags = DS_CACHE_SHUFFLE; /* add DS_CACHE_LOSSY_BF16 to keep fp32 as bf16 in L2 */
  ds_cache *mem = NULL;
  if (ds_cache_create(&mem, ctx, &o) != DS_OK) goto fail;

  static float batch[16384]; /* 64 KiB "activations" */
  for (int i = 0; i < 16384; i++) batch[i] = (i % 3) ? 0.0f : (float)i * 0.25f;
  for (int step = 0; step < 64; step++) { /* 4 MiB in all: most of it moves down to L2 */
    char key[32];
    snprintf(key, sizeof key, "act/layer3/step%d", step);
    if (ds_cache_put(mem, key, strlen(key), batch, sizeof batch) != DS_OK) goto fail;
  }
  size_t len = 0;
  for (int step = 0; step < 64; step += 2) { /* a loader reading every other step: stream 1 */
    char key[32];
    snprintf(key, sizeof key, "act/layer3/step%d", step);
    if (ds_cache_get_stream(mem, 1, key, strlen(key), batch, sizeof batch, &len) != DS_OK)
      goto fail;
  }

  /* Zero-copy read: the pointer stays valid (the entry is not evicted) until released. */
  const void *data;
  ds_cache_ref *ref;
  if (ds_cache_get_ref(mem, "act/layer3/step1", 16, &data, &len, &ref) == DS_OK) {
    printf("step1: %zu bytes, first value %g\n", len, (double)((const float *)data)[0]);
    ds_cache_release(mem, ref);
  }
  for (int tier = DS_CACHE_L1; tier <= DS_CACHE_GPU; tier++) {
    ds_cache_tier_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    if (tier == DS_CACHE_L3 || ds_cache_stats(mem, tier, &s) != DS_OK) continue; /* no GPU */
    printf("%s: %llu entries, %llu bytes, ratio %.2f, hits %llu, evictions %llu, declined %llu\n",
           tier == DS_CACHE_GPU ? "GPU" : tier == DS_CACHE_L1 ? "L1" : "L2",
           (unsigned long long)s.entries, (unsigned long long)s.bytes, s.compression_ratio,
           (unsigned long long)s.hits, (unsigned long long)s.evictions,
           (unsigned long long)s.rejected);
  }
  ds_cache_destroy(mem);

  /* 2. Persistent cache: survives the process; 64 MiB of segment files at most. */
  const char *dir = argc > 1 ? argv[1] : "cache_demo";
  ds_cache *disk = NULL;
  if (ds_cache_open_persistent(&disk, ctx, dir, 64 << 20, DS_CACHE_CODEC_LZ4) != DS_OK) goto fail;
  if (ds_cache_get(disk, "checkpoint", 10, batch, sizeof batch, &len) == DS_OK)
    printf("found the checkpoint of a previous run (%zu bytes)\n", len);
  else if (ds_cache_put(disk, "checkpoint", 10, batch, sizeof batch) != DS_OK)
    goto fail;
  ds_cache_flush(disk); /* durable now (batched mode syncs every second anyway) */
  ds_cache_destroy(disk);
  ds_context_destroy(ctx);
  return 0;
fail:
  fprintf(stderr, "cache: %s\n", ds_context_last_error(ctx));
  ds_context_destroy(ctx);
  return 1;
}
