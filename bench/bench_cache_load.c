/* bench_cache_load: (1) latency of loading a 4 MiB tensor from each tier (L1, L2 lz4, L3 disk)
 * against reading it from a plain file (open + read + close, page cache warm), p50 and p99 of
 * 50 loads; (2) checkpoint save and restore of a 256 MiB model state as 64 x 4 MiB entries of a
 * persistent cache (synced by ds_cache_flush) against write + fsync and read of one file.
 * Values are fp32 ReLU-like data. Files go to --dir (default: current directory).
 * usage: bench_cache_load [--json] [--dir DIR]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "bench_common.h"

#define MIB (1u << 20)
#define TENSOR (4 * MIB)
#define LOADS 50
#define CKPT_PARTS 64

static const char *base_dir = ".";
static unsigned char *tensor, *out;

static void path_of(char *buf, size_t cap, const char *what) {
  snprintf(buf, cap, "%s/bench_cache_load.%d.%s", base_dir, (int)getpid(), what);
}

static double pct(double *v, int n, double q) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return v[(int)(q * (n - 1))];
}

static int file_load(const char *path, double *ms) {
  for (int i = 0; i < LOADS; i++) {
    double t0 = bench_now_s();
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, out, TENSOR) != TENSOR) return -1;
    close(fd);
    ms[i] = (bench_now_s() - t0) * 1e3;
  }
  return 0;
}

static int cache_load(ds_cache *c, double *ms) {
  for (int i = 0; i < LOADS; i++) {
    size_t len;
    double t0 = bench_now_s();
    if (ds_cache_get(c, "w", 1, out, TENSOR, &len) != DS_OK) return -1;
    ms[i] = (bench_now_s() - t0) * 1e3;
  }
  return 0;
}

static void print_latency(const char *tier, double *ours, double *file, int json, int *hdr) {
  char name[64];
  snprintf(name, sizeof name, "load_4MiB_%s", tier);
  double f50 = pct(file, LOADS, 0.5), f99 = pct(file, LOADS, 0.99);
  bench_row a = {"bench_cache_load", name, "p50_ms", pct(ours, LOADS, 0.5), "file read", f50, 1.0,
                 "lower"};
  bench_row b = {"bench_cache_load", name, "p99_ms", pct(ours, LOADS, 0.99), "file read", f99, 1.0,
                 "lower"};
  bench_print(&a, json, hdr);
  bench_print(&b, json, hdr);
}

static int latency(ds_context *ctx, int json, int *hdr) {
  char file[4096], dir[4096];
  path_of(file, sizeof file, "tensor");
  path_of(dir, sizeof dir, "l3");
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, tensor, TENSOR) != TENSOR) return -1;
  close(fd);
  double fms[LOADS], ms[LOADS];
  if (file_load(file, fms)) return -1;
  for (int tier = 1; tier <= 3; tier++) {
    double f2[LOADS];
    memcpy(f2, fms, sizeof f2);
    ds_cache *c = NULL;
    if (tier < 3) {
      ds_cache_options o = DS_CACHE_OPTIONS_INIT;
      o.l1_bytes = tier == 1 ? 64 * MIB : 0;
      o.l2_bytes = tier == 2 ? 64 * MIB : 0;
      o.shards = 1; /* one 4 MiB value needs more than a 4 MiB shard */
      if (ds_cache_create(&c, ctx, &o) != DS_OK) return -1;
    } else if (ds_cache_open_persistent(&c, ctx, dir, 64 * MIB, DS_CACHE_CODEC_LZ4) != DS_OK) {
      return -1;
    }
    if (ds_cache_put(c, "w", 1, tensor, TENSOR) != DS_OK || cache_load(c, ms)) return -1;
    ds_cache_destroy(c);
    print_latency(tier == 1 ? "L1" : tier == 2 ? "L2_lz4" : "L3_disk_lz4", ms, f2, json, hdr);
  }
  unlink(file);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

static int checkpoint(ds_context *ctx, int json, int *hdr) {
  char file[4096], dir[4096];
  path_of(file, sizeof file, "ckpt");
  path_of(dir, sizeof dir, "ckptcache");
  /* anchor: one file, write + fsync, then read back */
  double t0 = bench_now_s();
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  for (int p = 0; p < CKPT_PARTS; p++)
    if (write(fd, tensor, TENSOR) != TENSOR) return -1;
  if (fsync(fd) != 0) return -1;
  close(fd);
  double w_file = bench_now_s() - t0;
  t0 = bench_now_s();
  fd = open(file, O_RDONLY);
  for (int p = 0; p < CKPT_PARTS; p++)
    if (read(fd, out, TENSOR) != TENSOR) return -1;
  close(fd);
  double r_file = bench_now_s() - t0;
  unlink(file);
  /* ours: 64 entries in a persistent cache, flushed */
  ds_cache *c = NULL;
  t0 = bench_now_s();
  if (ds_cache_open_persistent(&c, ctx, dir, 1024ull * MIB, DS_CACHE_CODEC_LZ4) != DS_OK) return -1;
  for (int p = 0; p < CKPT_PARTS; p++)
    if (ds_cache_put(c, &p, sizeof p, tensor, TENSOR) != DS_OK) return -1;
  if (ds_cache_flush(c) != DS_OK) return -1;
  ds_cache_destroy(c);
  double w_ours = bench_now_s() - t0;
  t0 = bench_now_s();
  if (ds_cache_open_persistent(&c, ctx, dir, 1024ull * MIB, DS_CACHE_CODEC_LZ4) != DS_OK) return -1;
  for (int p = 0; p < CKPT_PARTS; p++) {
    size_t len;
    if (ds_cache_get(c, &p, sizeof p, out, TENSOR, &len) != DS_OK) return -1;
  }
  ds_cache_destroy(c);
  double r_ours = bench_now_s() - t0;
  bench_row a = {"bench_cache_load", "checkpoint_256MiB", "save_s", w_ours, "write+fsync", w_file,
                 1.0, "lower"};
  bench_row b = {"bench_cache_load", "checkpoint_256MiB", "restore_s", r_ours, "read", r_file, 1.0,
                 "lower"};
  bench_print(&a, json, hdr);
  bench_print(&b, json, hdr);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--dir")) base_dir = argv[i + 1];
  ds_context *ctx = bench_context("bench_cache_load", NULL, 0);
  tensor = malloc(TENSOR);
  out = malloc(TENSOR);
  uint64_t s = 7;
  float *f = (float *)tensor;
  for (uint32_t i = 0; i < TENSOR / 4; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    f[i] = (s & 1) ? (float)(s >> 40) / 16777216.0f : 0.0f;
  }
  int rc = latency(ctx, json, &header) || checkpoint(ctx, json, &header);
  if (rc) fprintf(stderr, "bench_cache_load: failed (%s)\n", ds_context_last_error(ctx));
  free(tensor);
  free(out);
  ds_context_destroy(ctx);
  return rc;
}
