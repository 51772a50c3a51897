/* Fuzz target: the persistent cache's on-disk formats, as ds_cache_open_persistent reads them
 * at reopen. An input starting with 'M' is a MANIFEST (the rest of the input); any other input
 * is the one segment file of a cache directory with a valid MANIFEST. A segment is opened
 * twice: as given (mutations mostly break checksums, exercising resynchronisation and
 * skipping), then with the checksum of every plausible record header recomputed, so record
 * fields (encoding, lengths) reach the index and the decoders. After each open, every key
 * found after a record magic is read back (get, get_ref, contains, remove) and one value is
 * put, so a damaged segment must leave a usable cache. Seeds in fuzz/corpus/cache_segment/
 * are real segments (DSR1: written by an earlier version), one per codec (lz4, zstd with a
 * delete record, none), each written by
 * ds_cache_open_persistent and ds_cache_put of three values and an empty one, plus a MANIFEST;
 * recycled.seg is a recycled segment's shape: two DSR2 records, the end marker, then records of
 * another generation (checksums zero: the second pass makes them valid).
 * An input starting with 'I' is {u32 segment length, segment, index entries}: the segment
 * (record checksums recomputed) is sealed segment 1 with those entries as its index file
 * (header and checksum made valid, so the entries reach the parser and the index), followed by
 * an empty segment 2; seed index_seed is a real one (three puts and a delete). */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 32
/* record magics: "DSR1" (earlier versions) and "DSR2" (generation and segment-id seed) */
static int is_magic(const uint8_t *p) { return !memcmp(p, "DSR1", 4) || !memcmp(p, "DSR2", 4); }

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (n && fwrite(p, 1, n, f) != n) abort();
  fclose(f);
}

static void clear_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  char path[512];
  while ((de = readdir(d)))
    if (de->d_name[0] != '.') {
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      unlink(path);
    }
  closedir(d);
}

/* The record checksum as the writer computes it (see src/cache/disk.c): the seed's seed is
 * the segment id for DSR2 (the segment here is always 1), 0 for DSR1. */
static void fix_sums(uint8_t *seg, size_t size) {
  for (size_t off = 0; off + HDR <= size; off++) {
    if (!is_magic(seg + off)) continue;
    uint32_t klen, slen;
    memcpy(&klen, seg + off + 8, 4);
    memcpy(&slen, seg + off + 12, 4);
    if (klen == 0 || klen > 65535 || off + HDR + (uint64_t)klen + slen > size) continue;
    memset(seg + off + 24, 0, 8);
    uint64_t seed = XXH3_64bits_withSeed(seg + off, HDR + (size_t)klen, seg[off + 3] == '2');
    uint64_t sum = XXH3_64bits_withSeed(seg + off + HDR + klen, slen, seed);
    memcpy(seg + off + 24, &sum, 8);
  }
}

/* Reads back every key that follows a record magic in seg; any status is fine, a crash,
 * leak or sanitizer report is not. */
static void exercise(ds_cache *c, const uint8_t *seg, size_t size) {
  static uint8_t buf[1 << 20];
  for (size_t off = 0; off + HDR <= size; off++) {
    if (!is_magic(seg + off)) continue;
    uint32_t klen;
    memcpy(&klen, seg + off + 8, 4);
    if (klen == 0 || klen > 65535 || off + HDR + klen > size) continue;
    const uint8_t *key = seg + off + HDR;
    size_t len = 0;
    ds_status st = ds_cache_get(c, key, klen, buf, sizeof buf, &len);
    if (st == DS_OK && len > sizeof buf) __builtin_trap();
    if (st == DS_OK || (st == DS_ERR_FULL && len <= (4u << 20))) {
      const void *p = NULL;
      ds_cache_ref *ref = NULL;
      if (ds_cache_get_ref(c, key, klen, &p, &len, &ref) == DS_OK) {
        if (len && !p) __builtin_trap();
        ds_cache_release(c, ref);
      }
    }
    if (ds_cache_contains(c, key, klen)) ds_cache_remove(c, key, klen);
  }
  ds_cache_put(c, "fuzz", 4, "value", 5);
}

static void open_and_exercise(const char *dir, const uint8_t *seg, size_t size) {
  ds_cache *c = NULL;
  if (ds_cache_open_persistent(&c, fuzz_ctx(), dir, 64u << 20, DS_CACHE_CODEC_LZ4) == DS_OK) {
    exercise(c, seg, size);
    ds_cache_destroy(c);
  }
}

/* Segment 1 with an index file of the given entries (see the header comment). */
static void index_case(const char *dir, const uint8_t *data, size_t size) {
  uint32_t seglen = 0;
  if (size < 4) return;
  memcpy(&seglen, data, 4);
  data += 4, size -= 4;
  if (seglen > size) seglen = (uint32_t)size;
  uint8_t *seg = malloc(seglen ? seglen : 1), *idx = malloc(32 + (size - seglen) + 8);
  if (!seg || !idx) abort();
  if (seglen) memcpy(seg, data, seglen);
  fix_sums(seg, seglen);
  const uint8_t *ents = data + seglen;
  uint64_t elen = size - seglen, count = 0, seg_size = seglen;
  for (uint64_t off = 0; off + 24 <= elen; count++) { /* as many entries as the reader sees */
    uint16_t klen;
    memcpy(&klen, ents + off + 20, 2);
    off += 24 + (uint64_t)klen;
  }
  uint32_t magic = 0x31495344u, id = 1;
  memcpy(idx, &magic, 4);
  memcpy(idx + 4, &id, 4);
  memcpy(idx + 8, &seg_size, 8);
  memcpy(idx + 16, &count, 8);
  memcpy(idx + 24, &elen, 8);
  if (elen) memcpy(idx + 32, ents, elen);
  uint64_t sum = XXH3_64bits(idx, 32 + elen);
  memcpy(idx + 32 + elen, &sum, 8);
  write_file(dir, "MANIFEST", "dscache 1\n", 10);
  write_file(dir, "seg-00000001.log", seg, seglen);
  write_file(dir, "seg-00000001.idx", idx, 32 + elen + 8);
  write_file(dir, "seg-00000002.log", "", 0);
  open_and_exercise(dir, seg, seglen);
  free(seg);
  free(idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char dir[64];
  if (!dir[0]) { /* tmpfs when there is one: the cache fsyncs at close */
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/ds_fuzz_cache.%d", base, (int)getpid());
    mkdir(dir, 0700);
  }
  clear_dir(dir);
  if (size > 0 && data[0] == 'I') { /* a sealed segment and its index file */
    index_case(dir, data + 1, size - 1);
    clear_dir(dir);
    return 0;
  }
  if (size > 0 && data[0] == 'M') { /* a MANIFEST */
    write_file(dir, "MANIFEST", data + 1, size - 1);
    open_and_exercise(dir, NULL, 0);
    clear_dir(dir);
    return 0;
  }
  write_file(dir, "MANIFEST", "dscache 1\n", 10);
  write_file(dir, "seg-00000001.log", data, size);
  open_and_exercise(dir, data, size);
  uint8_t *fixed = malloc(size ? size : 1);
  if (!fixed) return 0;
  if (size) memcpy(fixed, data, size);
  fix_sums(fixed, size);
  clear_dir(dir);
  write_file(dir, "MANIFEST", "dscache 1\n", 10);
  write_file(dir, "seg-00000001.log", fixed, size);
  open_and_exercise(dir, fixed, size);
  free(fixed);
  clear_dir(dir);
  return 0;
}
