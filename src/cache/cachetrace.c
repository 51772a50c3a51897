/* Reading cache access traces (oracleGeneral binary, cloudPhysics CSV, gzip/xz text) into
 * memory, and computing each request's next-access index for Belady. The whole file is read
 * into one buffer first (decompressed), then parsed line by line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cachetrace.h"
#if DS_HAVE_LZMA
#include <lzma.h>
#endif

typedef struct {
  char *p;
  size_t n, cap;
} ds__buf;

static int ds__buf_add(ds_context *ctx, ds__buf *b, const void *src, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + n + 1) cap *= 2;
    char *q = ds__alloc(ctx, cap);
    if (!q) return -1;
    if (b->n) memcpy(q, b->p, b->n);
    ds__free(ctx, b->p);
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}

static int ds__ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static ds_status ds__read_plain(ds_context *ctx, const char *path, ds__buf *b) {
  FILE *f = fopen(path, "rb");
  if (!f) return ds__error(ctx, DS_ERR_IO, "cache", "trace %s: %s", path, strerror(errno));
  char chunk[1 << 16];
  size_t k;
  while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (ds__buf_add(ctx, b, chunk, k)) {
      fclose(f);
      return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace %s: out of memory", path);
    }
  int bad = ferror(f);
  fclose(f);
  return bad ? ds__error(ctx, DS_ERR_IO, "cache", "trace %s: read error", path) : DS_OK;
}

static ds_status ds__read_gz(ds_context *ctx, const char *path, ds__buf *b) {
  gzFile f = gzopen(path, "rb");
  if (!f) return ds__error(ctx, DS_ERR_IO, "cache", "trace %s: cannot open", path);
  char chunk[1 << 16];
  int k;
  while ((k = gzread(f, chunk, sizeof chunk)) > 0)
    if (ds__buf_add(ctx, b, chunk, (size_t)k)) {
      gzclose(f);
      return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace %s: out of memory", path);
    }
  gzclose(f);
  return k < 0 ? ds__error(ctx, DS_ERR_FORMAT, "cache", "trace %s: bad gzip data", path) : DS_OK;
}

static ds_status ds__read_xz(ds_context *ctx, const char *path, ds__buf *b) {
#if DS_HAVE_LZMA
  ds__buf raw = {0};
  ds_status st = ds__read_plain(ctx, path, &raw);
  if (st != DS_OK) return st;
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
    ds__free(ctx, raw.p);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace %s: lzma init failed", path);
  }
  s.next_in = (const uint8_t *)raw.p;
  s.avail_in = raw.n;
  uint8_t out[1 << 16];
  lzma_ret r = LZMA_OK;
  while (r == LZMA_OK) {
    s.next_out = out;
    s.avail_out = sizeof out;
    r = lzma_code(&s, LZMA_FINISH);
    if (ds__buf_add(ctx, b, out, sizeof out - s.avail_out)) r = LZMA_MEM_ERROR;
  }
  lzma_end(&s);
  ds__free(ctx, raw.p);
  if (r != LZMA_STREAM_END)
    return ds__error(ctx, DS_ERR_FORMAT, "cache", "trace %s: bad xz data (%d)", path, (int)r);
  return DS_OK;
#else
  (void)b;
  return ds__error(ctx, DS_ERR_UNSUPPORTED, "cache",
                   "trace %s: built without liblzma (install liblzma-dev)", path);
#endif
}

/* FNV-1a for keys that are not numbers. */
static uint64_t ds__hash_token(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
  return h;
}

/* Key from column col (0-based) of a line split on spaces, tabs or commas. */
static int ds__line_key(const char *s, const char *end, int col, uint64_t *key) {
  for (int c = 0;; c++) {
    while (s < end && (*s == ' ' || *s == '\t' || *s == ',')) s++;
    const char *t = s;
    while (t < end && *t != ' ' && *t != '\t' && *t != ',') t++;
    if (t == s) return 0;
    if (c == col) {
      char *e;
      unsigned long long v = strtoull(s, &e, 10);
      *key = e == t ? (uint64_t)v : ds__hash_token(s, (size_t)(t - s));
      return 1;
    }
    s = t;
  }
}

static int ds__push_key(ds_context *ctx, ds__cachetrace *t, size_t *cap, uint64_t key) {
  if (t->n == *cap) {
    size_t nc = *cap ? *cap * 2 : 4096;
    uint64_t *k = ds__alloc(ctx, nc * sizeof *k);
    if (!k) return -1;
    if (t->n) memcpy(k, t->keys, t->n * sizeof *k);
    ds__free(ctx, t->keys);
    t->keys = k;
    *cap = nc;
  }
  t->keys[t->n++] = key;
  return 0;
}

static ds_status ds__parse_text(ds_context *ctx, ds__cachetrace *t, const ds__buf *b, int col,
                                int skip_header) {
  size_t cap = 0;
  const char *s = b->p, *end = b->p + b->n;
  for (int line = 0; s < end; line++) {
    const char *e = memchr(s, '\n', (size_t)(end - s));
    if (!e) e = end;
    const char *le = e;
    if (le > s && le[-1] == '\r') le--;
    uint64_t key;
    if (!(line == 0 && skip_header) && !(le - s == 1 && *s == '*') &&
        ds__line_key(s, le, col, &key) && ds__push_key(ctx, t, &cap, key))
      return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace: out of memory");
    s = e + 1;
  }
  return DS_OK;
}

static ds_status ds__parse_oracle(ds_context *ctx, ds__cachetrace *t, const ds__buf *b) {
  if (b->n % 24)
    return ds__error(ctx, DS_ERR_FORMAT, "cache",
                     "trace %s: size %zu is not a multiple of 24-byte records", t->name, b->n);
  size_t cap = 0;
  for (size_t off = 0; off < b->n; off += 24) {
    uint64_t id;
    memcpy(&id, b->p + off + 4, 8); /* little-endian on the hosts we build for */
    if (ds__push_key(ctx, t, &cap, id))
      return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace: out of memory");
  }
  return DS_OK;
}

/* Next-access indices by a backward pass over a key -> last-seen-index hash table. */
static ds_status ds__compute_next(ds_context *ctx, ds__cachetrace *t) {
  size_t cap = 16;
  while (cap < 2 * t->n + 2) cap *= 2;
  uint64_t *k = ds__alloc(ctx, cap * sizeof *k);
  int64_t *v = ds__alloc(ctx, cap * sizeof *v);
  t->next = ds__alloc(ctx, (t->n ? t->n : 1) * sizeof *t->next);
  if (!k || !v || !t->next) {
    ds__free(ctx, k);
    ds__free(ctx, v);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace: out of memory");
  }
  for (size_t i = 0; i < cap; i++) v[i] = -1;
  t->unique = 0;
  for (size_t i = t->n; i-- > 0;) {
    uint64_t h = t->keys[i] * 0x9e3779b97f4a7c15ULL;
    size_t j = (size_t)(h >> 17) & (cap - 1);
    while (v[j] >= 0 && k[j] != t->keys[i]) j = (j + 1) & (cap - 1);
    if (v[j] < 0) t->unique++;
    t->next[i] = v[j];
    k[j] = t->keys[i];
    v[j] = (int64_t)i;
  }
  ds__free(ctx, k);
  ds__free(ctx, v);
  return DS_OK;
}

void ds__cachetrace_name(char *out, size_t cap, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(out, cap, "%s", base);
  static const char *const suffixes[] = {".oracleGeneral.bin", "_request.trace.xz", ".trace.gz",
                                         ".trace.xz", ".trace", ".csv", ".gz", ".xz", ".txt"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
    if (ds__ends_with(out, suffixes[i])) {
      out[strlen(out) - strlen(suffixes[i])] = 0;
      break;
    }
}

/* Parses b (decompressed, NUL-terminated) by path's suffix into t, then the next indices. */
static ds_status ds__cachetrace_from_buf(ds__cachetrace *t, ds_context *ctx, const char *path,
                                         const ds__buf *b) {
  ds_status st = DS_OK;
  if (b->n == 0) /* an empty file or gzip stream: b->p is NULL, nothing to parse (found by fuzzing) */
    ;
  else if (ds__ends_with(path, ".bin")) st = ds__parse_oracle(ctx, t, b);
  else if (ds__ends_with(path, ".csv")) st = ds__parse_text(ctx, t, b, 4, 1);
  else if (ds__ends_with(path, ".xz")) st = ds__parse_text(ctx, t, b, 1, 0);
  else st = ds__parse_text(ctx, t, b, 0, 0);
  if (st == DS_OK && t->n == 0)
    st = ds__error(ctx, DS_ERR_FORMAT, "cache", "trace %s: no requests", path);
  if (st == DS_OK) st = ds__compute_next(ctx, t);
  if (st != DS_OK) ds__cachetrace_free(t, ctx);
  return st;
}

ds_status ds__cachetrace_load(ds__cachetrace *t, ds_context *ctx, const char *path) {
  memset(t, 0, sizeof *t);
  if (!path) return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "trace path is NULL");
  ds__cachetrace_name(t->name, sizeof t->name, path);
  ds__buf b = {0};
  ds_status st;
  if (ds__ends_with(path, ".gz")) st = ds__read_gz(ctx, path, &b);
  else if (ds__ends_with(path, ".xz")) st = ds__read_xz(ctx, path, &b);
  else st = ds__read_plain(ctx, path, &b);
  if (st == DS_OK) st = ds__cachetrace_from_buf(t, ctx, path, &b);
  ds__free(ctx, b.p);
  return st;
}

ds_status ds__cachetrace_parse(ds__cachetrace *t, ds_context *ctx, const char *path,
                               const void *data, size_t n) {
  memset(t, 0, sizeof *t);
  if (!path || (!data && n))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "trace path or data is NULL");
  ds__cachetrace_name(t->name, sizeof t->name, path);
  ds__buf b = {0}; /* a NUL-terminated copy: the text parser's strtoull stops at the NUL */
  ds_status st = ds__buf_add(ctx, &b, n ? data : "", n)
                     ? ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "trace %s: out of memory", path)
                     : ds__cachetrace_from_buf(t, ctx, path, &b);
  ds__free(ctx, b.p);
  return st;
}

void ds__cachetrace_free(ds__cachetrace *t, ds_context *ctx) {
  ds__free(ctx, t->keys);
  ds__free(ctx, t->next);
  t->keys = NULL;
  t->next = NULL;
  t->n = 0;
}
