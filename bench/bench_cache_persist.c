/* bench_cache_persist: the persistent cache's put and get throughput with 1 KiB, 64 KiB and
 * 1 MiB values against LMDB and RocksDB measured in the same run, all with every put synced
 * to stable storage before it returns (ours: DS_CACHE_SYNC_EVERY_PUT; LMDB: one committed
 * transaction per put, default sync; RocksDB: WriteOptions.sync = 1, WAL on), no compression
 * anywhere (values are random bytes), gets copy the value out. Median of 3 runs.
 * Our gets are timed twice: verifying each record's checksum (cache_verify_reads = 1, the
 * default) and checking only its header (0, after a reopen), to price the verification.
 * The get rows also have a CPU-time form (the getting thread's CPU microseconds per get,
 * ours with the default verification against LMDB): on a loaded machine the wall-clock rows
 * swing with the other processes, the CPU time much less.
 * Steady-state put rows (put_<size>_synced_full, 64 KiB and 1 MiB): each store is first brought
 * to its steady state by untimed synced puts, then n synced puts are timed.
 *  - ours: max_bytes = F (256 MiB for 1 MiB values, 32 MiB for 64 KiB), prefilled with 1.25 F
 *    of new keys, so the cache is full and rolls by recycling its oldest segment: a put is one
 *    pwritev over blocks the recycled file already has, and one fdatasync; every F/8 bytes a roll
 *    (sync, truncate and index file of the sealed segment, rename, directory sync);
 *  - LMDB: a fixed set of K = F / value size keys, written once and then overwritten in turn
 *    (1.25 K puts before timing), so a put's pages come from the pages its freelist holds: one
 *    committed write transaction per put, default sync;
 *  - RocksDB: the same K keys overwritten in turn, WAL on, sync = 1 (memtable flushes and
 *    compactions run in its background threads, as in its steady state).
 * Also the time to reopen a cache of 100,000 entries / 1 GB (index rebuilt from the sealed
 * segments' index files, the last segment scanned with every checksum verified) against
 * reading the same segment files with read().
 * usage: bench_cache_persist [--json] [--dir DIR] [--no-reopen] [--checksum baseline]
 * (DIR default: current directory; it must be on a real disk, not tmpfs, for the sync costs
 * to mean anything; --checksum baseline: our checksums with the baseline XXH3 build instead
 * of the AVX2 one the CPU detection picks, to price it) */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <lmdb.h>
#include <rocksdb/c.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_common.h"

#define REPS 3

typedef struct {
  size_t vlen;
  int n;
  int full_mib; /* steady-state rows: the store's size F in MiB (0: none) */
  int full_n;   /* puts timed in the steady state */
} bcase;

static const char *base_dir = ".";
static unsigned char *vals; /* n values of vlen random bytes, back to back */
static unsigned char *out;

static void rm_rf(const char *p) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  if (system(cmd) != 0) fprintf(stderr, "bench_cache_persist: could not remove %s\n", p);
}

static void path_of(char *buf, size_t cap, const char *what) {
  snprintf(buf, cap, "%s/bench_cache_persist.%d.%s", base_dir, (int)getpid(), what);
}

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* gets/s; *cpu_us (if not NULL): the thread's CPU microseconds per get */
static double time_gets(ds_cache *c, const bcase *bc, double *cpu_us) {
  double t0 = bench_now_s(), c0 = thread_cpu_s();
  for (int k = 0; k < 3 * bc->n; k++) {
    int i = (int)(((unsigned)k * 2654435761u) % (unsigned)bc->n);
    size_t len;
    if (ds_cache_get(c, &i, sizeof i, out, bc->vlen, &len) != DS_OK) return -1;
  }
  if (cpu_us) *cpu_us = (thread_cpu_s() - c0) / (3 * bc->n) * 1e6;
  return 3 * bc->n / (bench_now_s() - t0);
}

/* Returns puts/s, gets/s (verified), gets/s (header only) and CPU us per verified get in
 * r[0..3]. */
static int run_ours(ds_context *ctx, const bcase *bc, double r[4]) {
  char dir[4096];
  path_of(dir, sizeof dir, "ours");
  rm_rf(dir);
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = (uint64_t)bc->n * (bc->vlen + 4096) * 2 + (64u << 20);
  o.codec = DS_CACHE_CODEC_NONE;
  o.durability = DS_CACHE_SYNC_EVERY_PUT;
  ds_cache *c = NULL;
  if (ds_cache_open_persistent_ex(&c, ctx, dir, &o) != DS_OK) return -1;
  double t0 = bench_now_s();
  for (int i = 0; i < bc->n; i++)
    if (ds_cache_put(c, &i, sizeof i, vals + (size_t)i * bc->vlen, bc->vlen) != DS_OK) return -1;
  r[0] = bc->n / (bench_now_s() - t0);
  r[1] = time_gets(c, bc, &r[3]);
  ds_cache_destroy(c);
  ds_context_set_param(ctx, DS_PARAM_CACHE_VERIFY_READS, 0);
  ds_status st = ds_cache_open_persistent_ex(&c, ctx, dir, &o);
  ds_context_set_param(ctx, DS_PARAM_CACHE_VERIFY_READS, 1);
  if (st != DS_OK) return -1;
  r[2] = time_gets(c, bc, NULL);
  ds_cache_destroy(c);
  rm_rf(dir);
  return r[1] > 0 && r[2] > 0 ? 0 : -1;
}

/* Returns puts/s, gets/s and CPU us per get in r[0..2]. */
static int run_lmdb(const bcase *bc, double r[3]) {
  char dir[4096];
  path_of(dir, sizeof dir, "lmdb");
  rm_rf(dir);
  mkdir(dir, 0700);
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *txn;
  if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)bc->n * (bc->vlen + 4096) * 2 + (64u << 20)) ||
      mdb_env_open(env, dir, 0, 0600))
    return -1;
  mdb_txn_begin(env, NULL, 0, &txn);
  mdb_dbi_open(txn, NULL, 0, &dbi);
  mdb_txn_commit(txn);
  double t0 = bench_now_s();
  for (int i = 0; i < bc->n; i++) {
    MDB_val k = {sizeof i, &i}, v = {bc->vlen, vals + (size_t)i * bc->vlen};
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_put(txn, dbi, &k, &v, 0) || mdb_txn_commit(txn))
      return -1;
  }
  r[0] = bc->n / (bench_now_s() - t0);
  mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
  mdb_txn_reset(txn);
  t0 = bench_now_s();
  double c0 = thread_cpu_s();
  for (int k = 0; k < 3 * bc->n; k++) {
    int i = (int)(((unsigned)k * 2654435761u) % (unsigned)bc->n);
    MDB_val key = {sizeof i, &i}, v;
    mdb_txn_renew(txn);
    if (mdb_get(txn, dbi, &key, &v)) return -1;
    memcpy(out, v.mv_data, v.mv_size);
    mdb_txn_reset(txn);
  }
  r[2] = (thread_cpu_s() - c0) / (3 * bc->n) * 1e6;
  r[1] = 3 * bc->n / (bench_now_s() - t0);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  rm_rf(dir);
  return 0;
}

/* A fresh RocksDB in the folder named what (no compression), and synced write options; NULL
 * (after a message) when it cannot be opened. */
static rocksdb_t *rocksdb_fresh(const char *what, char *dir, size_t cap, rocksdb_options_t **opt,
                                rocksdb_writeoptions_t **wo) {
  path_of(dir, cap, what);
  rm_rf(dir);
  *opt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(*opt, 1);
  rocksdb_options_set_compression(*opt, rocksdb_no_compression);
  char *err = NULL;
  rocksdb_t *db = rocksdb_open(*opt, dir, &err);
  if (err) {
    fprintf(stderr, "rocksdb: %s\n", err);
    free(err);
    rocksdb_options_destroy(*opt);
    return NULL;
  }
  *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(*wo, 1);
  return db;
}

static int run_rocksdb(const bcase *bc, double r[2]) {
  char dir[4096];
  rocksdb_options_t *opt;
  rocksdb_writeoptions_t *wo;
  rocksdb_t *db = rocksdb_fresh("rocksdb", dir, sizeof dir, &opt, &wo);
  if (!db) return -1;
  char *err = NULL;
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  double t0 = bench_now_s();
  for (int i = 0; i < bc->n && !err; i++)
    rocksdb_put(db, wo, (const char *)&i, sizeof i, (const char *)vals + (size_t)i * bc->vlen,
                bc->vlen, &err);
  r[0] = bc->n / (bench_now_s() - t0);
  t0 = bench_now_s();
  for (int k = 0; k < 3 * bc->n && !err; k++) {
    int i = (int)(((unsigned)k * 2654435761u) % (unsigned)bc->n);
    size_t len;
    char *v = rocksdb_get(db, ro, (const char *)&i, sizeof i, &len, &err);
    if (v) memcpy(out, v, len);
    free(v);
  }
  r[1] = 3 * bc->n / (bench_now_s() - t0);
  rocksdb_readoptions_destroy(ro);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(db);
  rocksdb_options_destroy(opt);
  rm_rf(dir);
  if (err) {
    free(err);
    return -1;
  }
  return 0;
}

/* ---- steady state (full stores), see the top comment ---- */
static const unsigned char *val_of(const bcase *bc, int i) {
  return vals + (size_t)(i % bc->n) * bc->vlen;
}

static double run_full_ours(ds_context *ctx, const bcase *bc) {
  char dir[4096];
  path_of(dir, sizeof dir, "ours_full");
  rm_rf(dir);
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = (uint64_t)bc->full_mib << 20;
  o.codec = DS_CACHE_CODEC_NONE;
  o.durability = DS_CACHE_SYNC_EVERY_PUT;
  ds_cache *c = NULL;
  if (ds_cache_open_persistent_ex(&c, ctx, dir, &o) != DS_OK) return -1;
  int k = (int)(o.max_bytes / bc->vlen), pre = k + k / 4;
  for (int i = 0; i < pre; i++)
    if (ds_cache_put(c, &i, sizeof i, val_of(bc, i), bc->vlen) != DS_OK) return -1;
  double t0 = bench_now_s();
  for (int i = pre; i < pre + bc->full_n; i++)
    if (ds_cache_put(c, &i, sizeof i, val_of(bc, i), bc->vlen) != DS_OK) return -1;
  double r = bc->full_n / (bench_now_s() - t0);
  ds_cache_destroy(c);
  rm_rf(dir);
  return r;
}

static double run_full_lmdb(const bcase *bc) {
  char dir[4096];
  path_of(dir, sizeof dir, "lmdb_full");
  rm_rf(dir);
  mkdir(dir, 0700);
  size_t full = (size_t)bc->full_mib << 20;
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *txn;
  if (mdb_env_create(&env) || mdb_env_set_mapsize(env, full * 2 + (64u << 20)) ||
      mdb_env_open(env, dir, 0, 0600))
    return -1;
  mdb_txn_begin(env, NULL, 0, &txn);
  mdb_dbi_open(txn, NULL, 0, &dbi);
  mdb_txn_commit(txn);
  int k = (int)(full / bc->vlen), pre = k + k / 4;
  double t0 = 0;
  for (int i = 0; i < pre + bc->full_n; i++) {
    if (i == pre) t0 = bench_now_s();
    int key = i % k;
    MDB_val kv = {sizeof key, &key}, v = {bc->vlen, (void *)val_of(bc, i)};
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_put(txn, dbi, &kv, &v, 0) || mdb_txn_commit(txn))
      return -1;
  }
  double r = bc->full_n / (bench_now_s() - t0);
  mdb_env_close(env);
  rm_rf(dir);
  return r;
}

static double run_full_rocksdb(const bcase *bc) {
  char dir[4096];
  rocksdb_options_t *opt;
  rocksdb_writeoptions_t *wo;
  rocksdb_t *db = rocksdb_fresh("rocksdb_full", dir, sizeof dir, &opt, &wo);
  if (!db) return -1;
  char *err = NULL;
  int k = (int)(((size_t)bc->full_mib << 20) / bc->vlen), pre = k + k / 4;
  double t0 = 0;
  for (int i = 0; i < pre + bc->full_n && !err; i++) {
    if (i == pre) t0 = bench_now_s();
    int key = i % k;
    rocksdb_put(db, wo, (const char *)&key, sizeof key, (const char *)val_of(bc, i), bc->vlen,
                &err);
  }
  double r = bc->full_n / (bench_now_s() - t0);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(db);
  rocksdb_options_destroy(opt);
  rm_rf(dir);
  if (err) {
    free(err);
    return -1;
  }
  return r;
}

/* The steady-state put rows of one size: the three stores alternated, REPS times. */
static int bench_full(ds_context *ctx, const bcase *bc, int json, int *header) {
  double f[3][REPS];
  for (int r = 0; r < REPS; r++) {
    f[0][r] = run_full_ours(ctx, bc);
    f[1][r] = run_full_lmdb(bc);
    f[2][r] = run_full_rocksdb(bc);
    if (f[0][r] <= 0 || f[1][r] <= 0 || f[2][r] <= 0) return -1;
  }
  char name[64];
  snprintf(name, sizeof name, "put_%zuB_synced_full", bc->vlen);
  double m = bench_median(f[0], REPS);
  bench_row r1 = {"bench_cache_persist", name, "ops_per_s", m, "LMDB", bench_median(f[1], REPS),
                  1.0, "higher"};
  bench_row r2 = {"bench_cache_persist", name, "ops_per_s", m, "RocksDB",
                  bench_median(f[2], REPS), 1.0, "higher"};
  bench_print(&r1, json, header);
  bench_print(&r2, json, header);
  return 0;
}

/* Reopen of 100,000 x 10 KiB: returns seconds to open (median of 3) and to read the files. */
static int run_reopen(ds_context *ctx, double *open_s, double *read_s) {
  char dir[4096];
  path_of(dir, sizeof dir, "reopen");
  rm_rf(dir);
  ds_cache_persist_options o = DS_CACHE_PERSIST_OPTIONS_INIT;
  o.max_bytes = 2ull << 30;
  o.codec = DS_CACHE_CODEC_NONE;
  ds_cache *c = NULL;
  if (ds_cache_open_persistent_ex(&c, ctx, dir, &o) != DS_OK) return -1;
  static unsigned char v[10240];
  for (int i = 0; i < 100000; i++) {
    memcpy(v, &i, sizeof i);
    if (ds_cache_put(c, &i, sizeof i, v, sizeof v) != DS_OK) return -1;
  }
  ds_cache_destroy(c);
  double t[3], r[3];
  for (int k = 0; k < 3; k++) {
    double t0 = bench_now_s();
    if (ds_cache_open_persistent_ex(&c, ctx, dir, &o) != DS_OK) return -1;
    t[k] = bench_now_s() - t0;
    ds_cache_tier_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    ds_cache_stats(c, DS_CACHE_L3, &s);
    ds_cache_destroy(c);
    if (s.entries != 100000) return -1;
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "cat '%s'/seg-*.log > /dev/null", dir);
    t0 = bench_now_s();
    if (system(cmd) != 0) return -1;
    r[k] = bench_now_s() - t0;
  }
  *open_s = bench_median(t, 3);
  *read_s = bench_median(r, 3);
  rm_rf(dir);
  return 0;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  int baseline = 0;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--dir")) base_dir = argv[i + 1];
    if (!strcmp(argv[i], "--checksum")) baseline = !strcmp(argv[i + 1], "baseline");
  }
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  ds_param_value pv[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                         {DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_CACHE_CHECKSUM_ISA, baseline, 0}};
  o.params = pv;
  o.nparams = 3;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &o) != DS_OK) return 1;
  static const bcase cases[] = {{1024, 300, 0, 0}, {65536, 150, 32, 300}, {1 << 20, 100, 256, 100}};
  for (size_t ci = 0; ci < 3; ci++) {
    const bcase *bc = &cases[ci];
    vals = malloc((size_t)bc->n * bc->vlen);
    out = malloc(bc->vlen);
    uint64_t s = 88172645463325252ULL;
    for (size_t i = 0; i < (size_t)bc->n * bc->vlen; i++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      vals[i] = (unsigned char)s;
    }
    double ours[4][REPS], lm[3][REPS], rk[2][REPS];
    for (int r = 0; r < REPS; r++) {
      double a[4], b[3], c[2];
      if (run_ours(ctx, bc, a) || run_lmdb(bc, b) || run_rocksdb(bc, c)) {
        fprintf(stderr, "bench_cache_persist: a run failed (%s)\n", ds_context_last_error(ctx));
        return 1;
      }
      for (int k = 0; k < 2; k++) ours[k][r] = a[k], lm[k][r] = b[k], rk[k][r] = c[k];
      ours[2][r] = a[2], ours[3][r] = a[3], lm[2][r] = b[2];
    }
    static const char *const what[2] = {"put", "get"};
    for (int k = 0; k < 2; k++) {
      char name[64];
      snprintf(name, sizeof name, "%s_%zuB_synced", what[k], bc->vlen);
      double m = bench_median(ours[k], REPS);
      bench_row r1 = {"bench_cache_persist", name, "ops_per_s", m, "LMDB",
                      bench_median(lm[k], REPS), k == 0 ? 1.0 : 0.9, "higher"};
      bench_row r2 = {"bench_cache_persist", name, "ops_per_s", m, "RocksDB",
                      bench_median(rk[k], REPS), 1.0, "higher"};
      bench_print(&r1, json, &header);
      bench_print(&r2, json, &header);
    }
    char name[64];
    snprintf(name, sizeof name, "get_%zuB_header_only", bc->vlen);
    bench_row r3 = {"bench_cache_persist", name, "ops_per_s", bench_median(ours[2], REPS),
                    "LMDB", bench_median(lm[1], REPS), 0.9, "higher"};
    bench_print(&r3, json, &header);
    /* the same gets by CPU time: 0.9x the throughput is 1/0.9 the time */
    snprintf(name, sizeof name, "get_%zuB_cpu", bc->vlen);
    bench_row r4 = {"bench_cache_persist", name, "cpu_us_per_get", bench_median(ours[3], REPS),
                    "LMDB", bench_median(lm[2], REPS), 1 / 0.9, "lower"};
    bench_print(&r4, json, &header);
    if (bc->full_mib && bench_full(ctx, bc, json, &header) != 0) {
      fprintf(stderr, "bench_cache_persist: a steady-state run failed (%s)\n",
              ds_context_last_error(ctx));
      return 1;
    }
    free(vals);
    free(out);
  }
  int reopen = 1;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--no-reopen")) reopen = 0;
  double open_s, read_s;
  if (!reopen) {
    ds_context_destroy(ctx);
    return 0;
  }
  if (run_reopen(ctx, &open_s, &read_s) != 0) {
    fprintf(stderr, "bench_cache_persist: reopen run failed (%s)\n", ds_context_last_error(ctx));
    return 1;
  }
  bench_row rr = {"bench_cache_persist", "reopen_100k_1GB", "seconds", open_s,
                  "cat of the segment files", read_s, 2.0, "lower"};
  bench_print(&rr, json, &header);
  ds_context_destroy(ctx);
  return 0;
}
