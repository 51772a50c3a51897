/* Fuzz target: the cache trace readers of cache_sim and the policy tests (src/cache/
 * cachetrace.c) on arbitrary bytes. The first byte picks the format: 0-3 parse the rest from
 * memory as an oracleGeneral .bin, a cloudPhysics .csv, the text inside an .xz (key in column
 * 2) or plain text (column 1); 4 and 5 write the rest to a scratch file named .trace.gz or
 * .trace.xz and load it, so the gzip and xz decoders see the bytes too. Every loaded trace's
 * next-access indices are checked against its keys. */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cachetrace.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A scratch file with the given suffix, created once per process and rewritten per input. */
static ds_status load_via_file(ds__cachetrace *t, ds_context *ctx, const char *suffix,
                               const uint8_t *data, size_t size) {
  char path[4096];
  const char *dir = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/ds_fuzz_cachetrace_%ld%s", dir && *dir ? dir : "/tmp",
           (long)getpid(), suffix);
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  ds_status st = ds__cachetrace_load(t, ctx, path);
  remove(path);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const names[] = {"f.oracleGeneral.bin", "f.csv", "f.trace.xz", "f.trace",
                                      ".trace.gz", ".trace.xz"};
  if (size < 1) return 0;
  ds_context *ctx = fuzz_ctx();
  unsigned fmt = data[0] % 6;
  ds__cachetrace t;
  ds_status st = fmt < 4 ? ds__cachetrace_parse(&t, ctx, names[fmt], data + 1, size - 1)
                         : load_via_file(&t, ctx, names[fmt], data + 1, size - 1);
  if (st != DS_OK) {
    if (t.keys || t.next || t.n) abort(); /* a failed load leaves nothing behind */
    return 0;
  }
  uint64_t unique = 0;
  for (size_t i = 0; i < t.n; i++) {
    int64_t j = t.next[i];
    if (j >= 0 && ((size_t)j <= i || (size_t)j >= t.n || t.keys[j] != t.keys[i])) abort();
    unique += j < 0; /* a key's last request is the one with no next */
  }
  if (unique != t.unique || t.unique == 0 || t.unique > t.n) abort();
  ds__cachetrace_free(&t, ctx);
  return 0;
}
