/* Segment index files of the persistent tier: when a segment is sealed, the list of its
 * records (offset, lengths, type, key: no values) is written next to it as seg-N.idx by
 * write-fsync-rename, so a reopen rebuilds the in-memory index from these small files instead
 * of reading and checksumming every value. An index file is used only when it is whole (XXH3
 * of its contents), names its segment and that segment's exact size; otherwise (missing, torn,
 * stale, the unsealed tail segment) the segment is scanned as before.
 *
 * File: 32-byte header {u32 magic "DSI1", u32 segment id, u64 segment size, u64 entries,
 * u64 entry bytes}, the entries {u64 offset, u64 value length, u32 stored length, u16 key
 * length, u8 type, u8 encoding, key}, then u64 XXH3_64 of everything before it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk.h"
#include "io.h"

#define DS__IDX_MAGIC 0x31495344u
#define DS__IDX_HDR 32
#define DS__IDX_ENT 24

void ds__idxbuf_reset(ds__idxbuf *b) {
  b->len = 0;
  b->count = 0;
  b->bad = 0;
}

void ds__idxbuf_free(ds_context *ctx, ds__idxbuf *b) {
  ds__free(ctx, b->data);
  b->data = NULL;
  b->cap = 0;
  ds__idxbuf_reset(b);
}

void ds__idxbuf_add(ds_context *ctx, ds__idxbuf *b, const ds__idx_ent *e, const void *key) {
  if (b->bad) return;
  size_t need = b->len + DS__IDX_ENT + e->klen;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64 * 1024;
    while (cap < need) cap *= 2;
    unsigned char *d = ds__alloc(ctx, cap);
    if (!d) { /* no index file for this segment: the next open scans it */
      b->bad = 1;
      return;
    }
    if (b->len) memcpy(d, b->data, b->len);
    ds__free(ctx, b->data);
    b->data = d;
    b->cap = cap;
  }
  unsigned char *p = b->data + b->len;
  memcpy(p, &e->off, 8);
  memcpy(p + 8, &e->vlen, 8);
  memcpy(p + 16, &e->slen, 4);
  memcpy(p + 20, &e->klen, 2);
  p[22] = e->type;
  p[23] = e->enc;
  memcpy(p + DS__IDX_ENT, key, e->klen);
  b->len = need;
  b->count++;
}

static void ds__idx_path(const char *dir, uint32_t id, const char *ext, char *out, size_t cap) {
  snprintf(out, cap, "%s/seg-%08u.%s", dir, id, ext);
}

void ds__idx_unlink(const char *dir, uint32_t id) {
  char path[4096];
  ds__idx_path(dir, id, "idx", path, sizeof path);
  unlink(path);
}

ds_status ds__idx_write(ds_context *ctx, const ds__xxh3_impl *xh, const char *dir, uint32_t id,
                        uint64_t seg_size, const ds__idxbuf *b, uint64_t *file_bytes) {
  *file_bytes = 0;
  if (b->bad) return DS_ERR_NO_MEMORY;
  char path[4096], tmp[4096];
  ds__idx_path(dir, id, "idx", path, sizeof path);
  ds__idx_path(dir, id, "idx.tmp", tmp, sizeof tmp);
  unsigned char hdr[DS__IDX_HDR] = {0};
  uint32_t magic = DS__IDX_MAGIC;
  uint64_t count = b->count, len = b->len;
  memcpy(hdr, &magic, 4);
  memcpy(hdr + 4, &id, 4);
  memcpy(hdr + 8, &seg_size, 8);
  memcpy(hdr + 16, &count, 8);
  memcpy(hdr + 24, &len, 8);
  ds__xxh3_part parts[2] = {{hdr, DS__IDX_HDR}, {b->data, b->len}};
  uint64_t sum = xh->hash_parts(parts, 2, 0);
  int fd = ds__io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return DS_ERR_IO;
  int ok = ds__io_write(fd, hdr, DS__IDX_HDR) == DS__IDX_HDR &&
           (!b->len || ds__io_write(fd, b->data, b->len) == (ssize_t)b->len) &&
           ds__io_write(fd, &sum, 8) == 8 && ds__io_fsync(fd) == 0;
  close(fd);
  if (!ok || ds__io_rename(tmp, path) != 0) {
    unlink(tmp);
    ds__log(ctx, DS_LOG_WARN, "cache", "segment %u of %s: index file not written (%s)", id, dir,
            strerror(errno));
    return DS_ERR_IO;
  }
  *file_bytes = DS__IDX_HDR + b->len + 8;
  return DS_OK;
}

/* Checks every entry of an index body against the segment it describes. */
/* Decodes the fixed part of one index entry at p (little-endian fields, as written). */
static void ds__idx_ent_read(ds__idx_ent *e, const unsigned char *p) {
  memcpy(&e->off, p, 8);
  memcpy(&e->vlen, p + 8, 8);
  memcpy(&e->slen, p + 16, 4);
  memcpy(&e->klen, p + 20, 2);
  e->type = p[22];
  e->enc = p[23];
}

static int ds__idx_entries_ok(const unsigned char *p, uint64_t len, uint64_t count,
                              uint64_t seg_size) {
  uint64_t off = 0, n = 0;
  while (off + DS__IDX_ENT <= len) {
    ds__idx_ent e;
    ds__idx_ent_read(&e, p + off);
    if (e.klen == 0 || (e.type != 1 && e.type != 2) || off + DS__IDX_ENT + e.klen > len ||
        e.off > seg_size || 32 + (uint64_t)e.klen + e.slen > seg_size - e.off)
      return 0;
    off += DS__IDX_ENT + e.klen;
    n++;
  }
  return off == len && n == count;
}

ds_status ds__idx_load(ds_context *ctx, const ds__xxh3_impl *xh, const char *dir, uint32_t id,
                       uint64_t seg_size, ds__idx_fn fn, void *user, uint64_t *file_bytes) {
  *file_bytes = 0;
  char path[4096];
  ds__idx_path(dir, id, "idx", path, sizeof path);
  int fd = ds__io_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return DS_ERR_NOT_FOUND;
  struct stat sb;
  unsigned char *buf = NULL;
  ds_status st = DS_ERR_FORMAT;
  if (fstat(fd, &sb) == 0 && sb.st_size >= DS__IDX_HDR + 8 && sb.st_size <= (1ll << 34) &&
      (buf = ds__alloc(ctx, (size_t)sb.st_size)) &&
      ds__io_pread(fd, buf, (size_t)sb.st_size, 0) == (ssize_t)sb.st_size) {
    size_t n = (size_t)sb.st_size;
    uint32_t magic, fid;
    uint64_t size, count, len, sum;
    memcpy(&magic, buf, 4);
    memcpy(&fid, buf + 4, 4);
    memcpy(&size, buf + 8, 8);
    memcpy(&count, buf + 16, 8);
    memcpy(&len, buf + 24, 8);
    memcpy(&sum, buf + n - 8, 8);
    if (magic == DS__IDX_MAGIC && fid == id && size == seg_size && len == n - DS__IDX_HDR - 8 &&
        xh->hash(buf, n - 8, 0) == sum &&
        ds__idx_entries_ok(buf + DS__IDX_HDR, len, count, seg_size))
      st = DS_OK;
  } else if (!buf && sb.st_size >= DS__IDX_HDR + 8) {
    st = DS_ERR_NO_MEMORY;
  }
  close(fd);
  if (st != DS_OK) {
    if (st == DS_ERR_FORMAT)
      ds__log(ctx, DS_LOG_WARN, "cache",
              "segment %u of %s: index file is damaged or stale; scanning the segment", id, dir);
    ds__free(ctx, buf);
    return st;
  }
  const unsigned char *p = buf + DS__IDX_HDR;
  for (uint64_t off = 0; off < (uint64_t)sb.st_size - DS__IDX_HDR - 8 && st == DS_OK;) {
    ds__idx_ent e;
    ds__idx_ent_read(&e, p + off);
    st = fn(user, &e, p + off + DS__IDX_ENT);
    off += DS__IDX_ENT + e.klen;
  }
  ds__free(ctx, buf);
  if (st == DS_OK) *file_bytes = (uint64_t)sb.st_size;
  return st;
}
