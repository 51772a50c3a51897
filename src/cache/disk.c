/* The persistent (disk) tier: a directory of append-only segment files of checksummed
 * records, an in-memory index rebuilt at open (from each sealed segment's index file, see
 * disk_index.c, or by scanning the segment), a MANIFEST written by write-fsync-rename, a
 * writer lock (flock), the max_bytes budget (oldest segment dropped; index files count in
 * it), and the two durability modes (fdatasync per put, or a flusher thread every N ms).
 *
 * Record: 32-byte header {u32 magic "DSR2", u8 type (1 put, 2 delete), u8 encoding,
 * u16 generation, u32 key length, u32 stored length, u64 value length, u64 checksum}, then the
 * key, then the stored bytes. checksum = XXH3_64(stored bytes, seed = XXH3_64(header with
 * checksum 0, key; seed = the segment's id)). The generation is ((id - 1) % 65535) + 1 of the
 * segment the record was written to. Records of earlier versions ("DSR1": generation 0, the
 * seed's seed 0) are still read.
 *
 * Segment recycling: when the cache is full and a segment rolls, the oldest segment (if this
 * process created it) is not unlinked but renamed to the new segment's name and written over
 * from offset 0, so that a synced put overwrites blocks the file already has (fdatasync then
 * journals no allocation and no size change: about twice the synced puts per second for large
 * values). The old life's records past the new data are stale: a DSR2 header of another
 * generation ends a scan (no corruption counted), and since the seed hashes the full segment
 * id, a stale record whose 16-bit generation collides still fails its checksum. Each append
 * into a recycled file also writes up to 32 zero bytes (the end marker) after the record in
 * the same pwritev; the next append overwrites it. A scan ends cleanly at zero bytes, so
 * garbage after the last good record still means a torn append. A segment is truncated to
 * its data when sealed, so only the active segment ever holds stale bytes. A new segment is
 * preallocated to seg_max when the budget has room (zeros past its data: the same clean end). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "disk.h"
#include "io.h"
#include "xxh3.h"

#define DS__REC_MAGIC1 0x31525344u /* "DSR1": earlier versions, generation 0 */
#define DS__REC_MAGIC2 0x32525344u /* "DSR2" */
#define DS__REC_PUT 1
#define DS__REC_DEL 2
#define DS__HDR 32
#define DS__MANIFEST "dscache 2\n"    /* DSR2 records: older versions refuse the directory */
#define DS__MANIFEST_V1 "dscache 1\n" /* only DSR1 records: read, and upgraded by a writer */

typedef struct {
  uint32_t magic;
  uint8_t type, enc;
  uint16_t gen; /* DSR2: the segment's generation (ds__gen); DSR1: 0 */
  uint32_t klen, slen;
  uint64_t vlen, sum;
} ds__rec_hdr;

typedef struct ds__dent {
  struct ds__dent *next;
  uint64_t hash, off, vlen;
  uint32_t seg, slen;
  uint16_t klen;
  uint8_t enc;
  uint8_t verified; /* checksum checked since the record reached the disk (scan or a get) */
  char key[];
} ds__dent;

typedef struct {
  uint32_t id;
  int fd;
  uint64_t size; /* bytes of records */
  uint64_t file; /* bytes of the file, >= size: a recycled file's stale tail or preallocated
                    zeros (active segment only); this is what counts in total */
  int own;       /* created by this process (only DSR2 records): may be recycled */
  unsigned char *map; /* read-only mapping of map_len bytes (past EOF for the active segment:
                         only written bytes are ever read), or NULL: reads use pread */
  size_t map_len;
  uint64_t idx_bytes; /* its index file (sealed segments), counted in total */
} ds__seg;

struct ds__disk {
  ds_context *ctx;
  char *dir;
  int lock_fd, read_only, durability;
  int verify; /* cache_verify_reads: 0 header only, 1 a record's first get, 2 every get */
  uint32_t sync_ms;
  ds__codec_cfg codec;
  const ds__xxh3_impl *xh; /* the checksum code: AVX2 or baseline XXH3 (xxh3.h) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t flusher;
  int has_flusher, stop, dirty;
  int sync_err; /* errno of a failed sync not yet reported: the next flush returns it */
  uint64_t max_bytes, seg_max, total; /* max_bytes: what the segments may use (the budget
                                         less meta) */
  uint64_t meta;                       /* bytes of MANIFEST and LOCK */
  ds__seg *segs;
  uint32_t nsegs, segcap, next_id;
  ds__idxbuf ib; /* index entries of the active segment, written out when it is sealed */
  ds__dent **buckets;
  size_t nb, count;
  uint64_t raw_live, stored_live, hits, misses, evictions, corrupt, io_errors;
  uint64_t lat[64];
  int dir_dirty;    /* a segment was renamed: sync the directory before the next write */
  int recycled_id;  /* stat cache.l3.recycled_segments */
};

static uint16_t ds__gen(uint32_t id) { return (uint16_t)((id - 1) % 65535 + 1); }

/* The seed hashes header (checksum 0) and key back to back: in one shot from a small copy for
 * keys up to 224 bytes, else as two streamed parts (the same value, without a 64 KiB stack
 * buffer whose pages would be probed on every get). All hashing goes through d->xh. */
static uint64_t ds__rec_seed(const ds__disk *d, const ds__rec_hdr *h, const void *key,
                             uint32_t seg) {
  ds__rec_hdr c = *h;
  c.sum = 0;
  uint64_t s = h->magic == DS__REC_MAGIC2 ? seg : 0; /* ties a DSR2 record to its segment */
  if (h->klen <= 224) { /* the common short key: one-shot over a small copy (a streaming
                           state costs more than hashing 256 bytes) */
    unsigned char b[DS__HDR + 224];
    memcpy(b, &c, DS__HDR);
    memcpy(b + DS__HDR, key, h->klen);
    return d->xh->hash(b, DS__HDR + h->klen, s);
  }
  ds__xxh3_part parts[2] = {{&c, DS__HDR}, {key, h->klen}};
  return d->xh->hash_parts(parts, 2, s);
}

static uint64_t ds__rec_sum(const ds__disk *d, const ds__rec_hdr *h, const void *key,
                            const void *data, uint32_t seg) {
  return d->xh->hash(data, h->slen, ds__rec_seed(d, h, key, seg));
}

/* A record header of either version, of its own segment when DSR2. */
static int ds__hdr_ours(const ds__rec_hdr *h, uint32_t seg) {
  return h->magic == DS__REC_MAGIC1 || (h->magic == DS__REC_MAGIC2 && h->gen == ds__gen(seg));
}

/* Copies the n stored bytes of a raw record to dst and returns the record's checksum, in one
 * pass over the mapping instead of a hash pass and a copy pass (xxh3.h's copy_hash: each
 * source stripe is loaded once, stored and hashed from the same registers). */
static uint64_t ds__rec_copy_sum(const ds__disk *d, const ds__rec_hdr *h, const void *key,
                                 const unsigned char *src, unsigned char *dst, size_t n,
                                 uint32_t seg) {
  return d->xh->copy_hash(dst, src, n, ds__rec_seed(d, h, key, seg));
}

static ds_status ds__errno_status(int e) {
  return (e == ENOSPC || e == EFBIG || e == EDQUOT) ? DS_ERR_NO_SPACE : DS_ERR_IO;
}

static void ds__seg_path(const ds__disk *d, uint32_t id, char *out, size_t cap) {
  snprintf(out, cap, "%s/seg-%08u.log", d->dir, id);
}

/* ---- index ---- */
static ds__dent *ds__dindex_find(ds__disk *d, uint64_t h, const void *key, size_t klen) {
  for (ds__dent *e = d->buckets[h & (d->nb - 1)]; e; e = e->next)
    if (e->hash == h && e->klen == klen && !memcmp(e->key, key, klen)) return e;
  return NULL;
}

static void ds__dindex_unlink(ds__disk *d, ds__dent *e) {
  ds__dent **pp = &d->buckets[e->hash & (d->nb - 1)];
  while (*pp != e) pp = &(*pp)->next;
  *pp = e->next;
  d->count--;
  d->raw_live -= e->vlen;
  d->stored_live -= e->slen;
  ds__free(d->ctx, e);
}

static ds_status ds__dindex_set(ds__disk *d, const void *key, uint16_t klen, uint32_t seg,
                                uint64_t off, const ds__rec_hdr *h, int verified) {
  uint64_t hash = XXH3_64bits(key, klen);
  ds__dent *old = ds__dindex_find(d, hash, key, klen);
  if (old) ds__dindex_unlink(d, old);
  if (h->type == DS__REC_DEL) return DS_OK;
  if (d->count + 1 > d->nb) {
    size_t nb = d->nb * 2;
    ds__dent **b = ds__calloc(d->ctx, nb, sizeof *b);
    if (b) {
      for (size_t i = 0; i < d->nb; i++)
        for (ds__dent *x = d->buckets[i], *nx; x; x = nx) {
          nx = x->next;
          x->next = b[x->hash & (nb - 1)];
          b[x->hash & (nb - 1)] = x;
        }
      ds__free(d->ctx, d->buckets);
      d->buckets = b;
      d->nb = nb;
    }
  }
  ds__dent *e = ds__alloc(d->ctx, sizeof *e + klen);
  if (!e) return DS_ERR_NO_MEMORY;
  memcpy(e->key, key, klen);
  e->hash = hash;
  e->klen = klen;
  e->seg = seg;
  e->off = off;
  e->slen = h->slen;
  e->vlen = h->vlen;
  e->enc = h->enc;
  e->verified = (uint8_t)verified;
  e->next = d->buckets[hash & (d->nb - 1)];
  d->buckets[hash & (d->nb - 1)] = e;
  d->count++;
  d->raw_live += e->vlen;
  d->stored_live += e->slen;
  return DS_OK;
}

/* ---- segments ---- */
/* populate: prefault the mapping (a get then copies without a page fault per 4 KiB; the
 * scan at open has just read the bytes into the page cache). Segments loaded from their index
 * file are not: that would read every value at open. */
static ds_status ds__seg_add(ds__disk *d, uint32_t id, int fd, uint64_t size, int populate,
                             int own) {
  if (d->nsegs == d->segcap) {
    uint32_t cap = d->segcap ? d->segcap * 2 : 16;
    ds__seg *s = ds__alloc(d->ctx, cap * sizeof *s);
    if (!s) return DS_ERR_NO_MEMORY;
    if (d->nsegs) memcpy(s, d->segs, d->nsegs * sizeof *s);
    ds__free(d->ctx, d->segs);
    d->segs = s;
    d->segcap = cap;
  }
  size_t len = size > d->seg_max ? (size_t)size : (size_t)d->seg_max;
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
  d->segs[d->nsegs++] = (ds__seg){id, fd, size, size, own, m == MAP_FAILED ? NULL : m, len, 0};
  d->total += size;
  if (id >= d->next_id) d->next_id = id + 1;
  return DS_OK;
}

/* Prefaults the mapping's page tables over a record just written (its bytes are in the page
 * cache), so its first get copies without a page fault per 4 KiB. Best effort. */
static void ds__seg_prefault(const ds__seg *s, uint64_t off, uint64_t len) {
#ifdef MADV_POPULATE_READ
  if (!s->map || off + len > s->map_len) return;
  uintptr_t a = ((uintptr_t)s->map + off) & ~(uintptr_t)4095, b = (uintptr_t)s->map + off + len;
  (void)madvise((void *)a, b - a, MADV_POPULATE_READ);
#else
  (void)s, (void)off, (void)len;
#endif
}

/* Maps segment s again to cover len bytes, after a record longer than a segment was
 * appended to it (it was mapped at seg_max bytes when created); without this, that record's
 * gets would take the pread path: a temporary buffer, a hash pass and a copy. Best effort:
 * the old mapping stays if mmap fails. Called with d->mu held (gets copy under it). */
static void ds__seg_remap(ds__seg *s, size_t len) {
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, s->fd, 0);
  if (m == MAP_FAILED) return;
  if (s->map) munmap(s->map, s->map_len);
  s->map = m;
  s->map_len = len;
}

/* Writes the index file of segment s (complete and synced) from the entries collected while
 * it was written or scanned; best effort (without one, the next open scans s). */
static void ds__seg_seal(ds__disk *d, ds__seg *s) {
  uint64_t bytes = 0;
  if (ds__idx_write(d->ctx, d->xh, d->dir, s->id, s->size, &d->ib, &bytes) != DS_OK) return;
  s->idx_bytes = bytes;
  d->total += bytes;
}

/* Cuts a recycled file's stale tail or a preallocated file's zeros off at its data, so that a
 * sealed segment is exactly its records (and its index file matches its size). Failure is
 * counted and harmless: a scan ends at the zeros, end marker or foreign generation. */
static void ds__seg_trim(ds__disk *d, ds__seg *s) {
  if (s->file <= s->size) return;
  if (ds__io_ftruncate(s->fd, (off_t)s->size) != 0) {
    d->io_errors++;
    ds__log(d->ctx, DS_LOG_WARN, "cache", "segment %u of %s: cannot truncate to its data: %s",
            s->id, d->dir, strerror(errno));
    return;
  }
  d->total -= s->file - s->size;
  s->file = s->size;
}

static int ds__seg_fd(ds__disk *d, uint32_t id) {
  for (uint32_t i = 0; i < d->nsegs; i++)
    if (d->segs[i].id == id) return d->segs[i].fd;
  return -1;
}

/* Evicts every entry whose record lives in segment id. */
static void ds__seg_evict(ds__disk *d, uint32_t id) {
  for (size_t b = 0; b < d->nb; b++)
    for (ds__dent *e = d->buckets[b], *nx; e; e = nx) {
      nx = e->next;
      if (e->seg == id) {
        ds__dindex_unlink(d, e);
        d->evictions++;
      }
    }
}

/* Drops the oldest segment and evicts every entry whose record lives in it. */
static void ds__seg_drop_oldest(ds__disk *d) {
  ds__seg s = d->segs[0];
  ds__seg_evict(d, s.id);
  char path[4096];
  ds__seg_path(d, s.id, path, sizeof path);
  if (s.map) munmap(s.map, s.map_len);
  close(s.fd);
  ds__idx_unlink(d->dir, s.id); /* first: a crash in between leaves a segment to scan */
  unlink(path);
  d->total -= s.file + s.idx_bytes;
  memmove(d->segs, d->segs + 1, (d->nsegs - 1) * sizeof *d->segs);
  d->nsegs--;
}

static int ds__dir_sync(const ds__disk *d) {
  int dfd = ds__io_open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dfd < 0) return -1;
  int r = ds__io_fsync(dfd);
  int e = errno;
  close(dfd);
  errno = e;
  return r;
}

/* Makes the oldest segment the new active segment id: its entries are evicted, its index
 * file removed (before the rename: it would describe a file that no longer has its name),
 * and the file renamed; the next append syncs the directory first (d->dir_dirty), since
 * fdatasync of an overwrite commits no metadata and the rename must not be lost under
 * acknowledged puts. The file keeps its bytes, its size (counted until new data passes it)
 * and its mapping. Returns 0 when the file could not be renamed (it is then dropped). */
static int ds__seg_recycle(ds__disk *d, uint32_t id) {
  ds__seg s = d->segs[0];
  char from[4096], to[4096];
  ds__seg_path(d, s.id, from, sizeof from);
  ds__seg_path(d, id, to, sizeof to);
  ds__seg_evict(d, s.id);
  ds__idx_unlink(d->dir, s.id);
  d->total -= s.idx_bytes;
  s.idx_bytes = 0;
  d->segs[0] = s;
  if (ds__io_rename(from, to) != 0) {
    d->io_errors++;
    ds__log(d->ctx, DS_LOG_WARN, "cache", "cannot rename %s to %s: %s", from, to,
            strerror(errno));
    ds__seg_drop_oldest(d);
    return 0;
  }
  memmove(d->segs, d->segs + 1, (d->nsegs - 1) * sizeof *d->segs);
  s.id = id;
  s.size = 0;
  d->segs[d->nsegs - 1] = s;
  if (id >= d->next_id) d->next_id = id + 1;
  d->dir_dirty = 1;
  ds__stat_add(d->ctx, d->recycled_id, 1);
  return 1;
}

/* Allocates a new segment's seg_max bytes up front when the budget has room for them (they
 * count in it; the segment is truncated to its data when sealed, and a scan ends at the zeros
 * past its data): appends then write into allocated blocks and do not grow the file, so their
 * fdatasync journals less (measured: synced 1 MiB puts into a fresh cache about 10 % faster).
 * Best effort: without it the file grows as before. */
static void ds__seg_prealloc(ds__disk *d, ds__seg *s) {
  if (d->total + d->seg_max > d->max_bytes) return;
  if (fallocate(s->fd, 0, 0, (off_t)d->seg_max) != 0) {
    if (ds__io_ftruncate(s->fd, 0) != 0) d->io_errors++; /* it may keep blocks past the end */
    return;
  }
  s->file = d->seg_max;
  d->total += d->seg_max;
}

/* Seals the active segment and starts a new one: the oldest segment recycled when the cache
 * is full (a new segment of seg_max bytes would not fit) and this process created it, else a
 * new file, preallocated when it fits. */
static ds_status ds__seg_roll(ds__disk *d) {
  char path[4096];
  uint32_t id = d->next_id;
  ds__seg_path(d, id, path, sizeof path);
  /* the finished segment is complete: sync it first, and fail the put if that fails (a later
   * flush syncs only the new segment and could not tell) */
  if (d->nsegs && ds__io_fdatasync(d->segs[d->nsegs - 1].fd) != 0) {
    d->io_errors++;
    d->sync_err = errno;
    return ds__error(d->ctx, ds__errno_status(errno), "cache", "segment %u of %s: sync failed: %s",
                     d->segs[d->nsegs - 1].id, d->dir, strerror(errno));
  }
  if (d->nsegs) ds__seg_trim(d, &d->segs[d->nsegs - 1]);
  if (d->nsegs > 1 && d->segs[0].own && d->total + d->seg_max > d->max_bytes &&
      ds__seg_recycle(d, id)) {
    /* the sealed segment is now second to last, as below */
  } else {
    int fd = ds__io_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      d->io_errors++;
      return ds__error(d->ctx, ds__errno_status(errno), "cache", "cannot create %s: %s", path,
                       strerror(errno));
    }
    ds_status st = ds__seg_add(d, id, fd, 0, 1, 1);
    if (st != DS_OK) {
      close(fd);
      unlink(path);
      return st;
    }
    ds__seg_prealloc(d, &d->segs[d->nsegs - 1]);
  }
  if (d->nsegs > 1) ds__seg_seal(d, &d->segs[d->nsegs - 2]); /* synced above */
  ds__idxbuf_reset(&d->ib);
  return DS_OK;
}

/* ---- scanning at open ---- */
static int ds__magic_at(const unsigned char *p) {
  uint32_t m;
  memcpy(&m, p, 4);
  return m == DS__REC_MAGIC1 || m == DS__REC_MAGIC2;
}

static int ds__hdr_plausible(const ds__rec_hdr *h, uint64_t off, uint64_t size) {
  return (h->magic == DS__REC_MAGIC1 || h->magic == DS__REC_MAGIC2) &&
         (h->type == DS__REC_PUT || h->type == DS__REC_DEL) && h->klen >= 1 &&
         h->klen <= 65535 && off + DS__HDR + h->klen + h->slen <= size;
}

/* The end of a segment's data: in the last (active) segment, the end marker of a recycled
 * file (up to 32 zero bytes; also what a preallocated file past its data and bytes never
 * written read as); in any segment, a whole record of another generation (the old life of a
 * recycled file: stale, never served). Neither is corruption. Zeros inside a sealed segment
 * (cut to its data when sealed) are damage: reported, and the scan resynchronises. */
static int ds__scan_end(const unsigned char *p, uint64_t avail, uint32_t id, int last) {
  size_t n = avail < DS__HDR ? (size_t)avail : DS__HDR;
  size_t z = 0;
  while (z < n && !p[z]) z++;
  if (z == n && last) return 1; /* a sealed segment is cut at its data: zeros there are damage */
  if (avail < DS__HDR) return 0;
  ds__rec_hdr h;
  memcpy(&h, p, DS__HDR);
  return h.magic == DS__REC_MAGIC2 && h.gen != ds__gen(id) && ds__hdr_plausible(&h, 0, avail);
}

static ds_status ds__seg_scan(ds__disk *d, uint32_t id, int fd, uint64_t size, int last,
                              uint64_t *valid_end) {
  /* map the file (prefaulted: it is read once, front to back); a copy if mapping fails */
  unsigned char *buf = NULL;
  int mapped = 0;
  if (size) {
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (m != MAP_FAILED) {
      buf = m;
      mapped = 1;
    }
  }
  if (!mapped) {
    buf = ds__alloc(d->ctx, size ? size : 1);
    if (!buf) return ds__error(d->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory scanning");
    if (size && ds__io_pread(fd, buf, size, 0) != (ssize_t)size) {
      ds__free(d->ctx, buf);
      return ds__error(d->ctx, DS_ERR_IO, "cache", "segment %u of %s: read failed", id, d->dir);
    }
  }
  uint64_t off = 0, end = 0, good = 0; /* good: the end of the last record that verified */
  ds_status st = DS_OK;
  ds__idxbuf_reset(&d->ib);
  while (off < size && st == DS_OK && !ds__scan_end(buf + off, size - off, id, last)) {
    if (off + DS__HDR > size) { /* fewer bytes than a header after the last record */
      if (off == end) {
        d->corrupt++;
        ds__log(d->ctx, DS_LOG_WARN, "cache", "segment %u of %s: torn record at offset %llu", id,
                d->dir, (unsigned long long)off);
      }
      break;
    }
    ds__rec_hdr h;
    memcpy(&h, buf + off, DS__HDR);
    if (!ds__hdr_plausible(&h, off, size)) { /* (one of another generation ended the loop) */
      /* torn or garbled header: resynchronise on the next magic */
      d->corrupt++;
      ds__log(d->ctx, DS_LOG_WARN, "cache", "segment %u of %s: bad record header at offset %llu",
              id, d->dir, (unsigned long long)off);
      uint64_t k = off + 1;
      while (k + 4 <= size && !ds__magic_at(buf + k)) k++;
      off = k + 4 <= size ? k : size;
      continue;
    }
    const unsigned char *key = buf + off + DS__HDR;
    if (ds__rec_sum(d, &h, key, key + h.klen, id) != h.sum) {
      d->corrupt++;
      ds__log(d->ctx, DS_LOG_WARN, "cache", "segment %u of %s: checksum mismatch at offset %llu",
              id, d->dir, (unsigned long long)off);
    } else {
      st = ds__dindex_set(d, key, (uint16_t)h.klen, id, off, &h, 1);
      ds__idx_ent ie = {off, h.vlen, h.slen, (uint16_t)h.klen, h.type, h.enc};
      ds__idxbuf_add(d->ctx, &d->ib, &ie, key);
      good = off + DS__HDR + h.klen + h.slen;
    }
    off += DS__HDR + h.klen + h.slen;
    end = off;
  }
  if (mapped) munmap(buf, size);
  else ds__free(d->ctx, buf);
  /* the last segment is cut after its last good record: a torn append (or trailing damage)
   * is reported once, at this open, and the next appends follow the good records */
  *valid_end = last ? good : size;
  return st;
}

typedef struct {
  ds__disk *d;
  uint32_t id;
} ds__idx_ctx;

static ds_status ds__idx_apply(void *user, const ds__idx_ent *e, const void *key) {
  ds__idx_ctx *x = user;
  ds__rec_hdr h = {DS__REC_MAGIC2, e->type, e->enc, 0, e->klen, e->slen, e->vlen, 0};
  /* not verified: the first get checksums the record (cache_verify_reads 1) */
  return ds__dindex_set(x->d, key, e->klen, x->id, e->off, &h, 0);
}

/* Indexes segment id (open as fd, size bytes): from its index file when it has a good one
 * (sealed segments), else by scanning it; a sealed segment scanned gets its index file now.
 * The last segment is always scanned (it is the one a crash may have torn) and its entries
 * stay in d->ib for when it is sealed. */
static ds_status ds__seg_load(ds__disk *d, uint32_t id, int fd, const char *path, uint64_t size,
                              int last) {
  ds_status s = DS_ERR_NOT_FOUND;
  uint64_t idx_bytes = 0, end = size;
  if (!last) {
    ds__idx_ctx x = {d, id};
    s = ds__idx_load(d->ctx, d->xh, d->dir, id, size, ds__idx_apply, &x, &idx_bytes);
    if (s == DS_ERR_NO_MEMORY)
      return ds__error(d->ctx, s, "cache", "out of memory loading the index of %s", path);
  }
  int from_idx = s == DS_OK;
  if (!from_idx) {
    s = ds__seg_scan(d, id, fd, size, last, &end);
    if (s == DS_OK && end < size && !d->read_only && ds__io_ftruncate(fd, (off_t)end))
      s = ds__error(d->ctx, DS_ERR_IO, "cache", "cannot truncate torn tail of %s", path);
  }
  if (s == DS_OK) s = ds__seg_add(d, id, fd, end, !from_idx, 0);
  if (s != DS_OK) return s;
  ds__seg *sg = &d->segs[d->nsegs - 1];
  if (from_idx) {
    sg->idx_bytes = idx_bytes;
    d->total += idx_bytes;
  } else if (!last && !d->read_only) {
    ds__seg_seal(d, sg);
  }
  return DS_OK;
}

static int ds__cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static ds_status ds__disk_load(ds__disk *d) {
  DIR *dir = opendir(d->dir);
  if (!dir) return ds__error(d->ctx, DS_ERR_IO, "cache", "cannot list %s", d->dir);
  uint32_t ids[65536];
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(dir)) && n < 65536) {
    unsigned id;
    char tail;
    if (sscanf(de->d_name, "seg-%8u.lo%c", &id, &tail) == 2 && tail == 'g') ids[n++] = id;
    else if (!d->read_only && !strncmp(de->d_name, "seg-", 4) && strstr(de->d_name, ".idx.tmp"))
      unlinkat(dirfd(dir), de->d_name, 0); /* an index file a crash left unrenamed */
  }
  closedir(dir);
  qsort(ids, n, sizeof ids[0], ds__cmp_u32);
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    ds__seg_path(d, ids[i], path, sizeof path);
    int fd = ds__io_open(path, (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      if (fd >= 0) close(fd);
      return ds__error(d->ctx, DS_ERR_IO, "cache", "cannot open %s: %s", path, strerror(errno));
    }
    ds_status s = ds__seg_load(d, ids[i], fd, path, (uint64_t)st.st_size, i + 1 == n);
    if (s != DS_OK) {
      close(fd);
      return s;
    }
  }
  return DS_OK;
}

/* ---- metadata ---- */
/* Writes MANIFEST (version 2) by write, fsync, rename and a sync of the directory. */
static ds_status ds__manifest_write(ds__disk *d, const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", d->dir);
  int fd = ds__io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ds__error(d->ctx, ds__errno_status(errno), "cache", "cannot write %s", tmp);
  size_t len = strlen(DS__MANIFEST);
  int ok = ds__io_write(fd, DS__MANIFEST, len) == (ssize_t)len && ds__io_fsync(fd) == 0;
  close(fd);
  if (!ok || ds__io_rename(tmp, path) != 0)
    return ds__error(d->ctx, DS_ERR_IO, "cache", "cannot write %s", path);
  ds__dir_sync(d);
  return DS_OK;
}

/* Checks MANIFEST, or writes it in a new directory. A version 1 directory (DSR1 records) is
 * read as it is; a writer first rewrites its MANIFEST as version 2, since it will add DSR2
 * records, so that an older library refuses the directory (DS_ERR_FORMAT) instead of reading
 * every new record as corrupt and cutting the last segment. */
static ds_status ds__manifest(ds__disk *d) {
  char path[4096];
  snprintf(path, sizeof path, "%s/MANIFEST", d->dir);
  FILE *f = fopen(path, "r");
  if (f) {
    char line[64] = {0};
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (ok && !strcmp(line, DS__MANIFEST)) return DS_OK;
    if (ok && !strcmp(line, DS__MANIFEST_V1)) return d->read_only ? DS_OK : ds__manifest_write(d, path);
    return ds__error(d->ctx, DS_ERR_FORMAT, "cache",
                     "%s is not a cache manifest of a version this library reads", path);
  }
  if (d->read_only) return ds__error(d->ctx, DS_ERR_FORMAT, "cache", "%s: no MANIFEST", d->dir);
  return ds__manifest_write(d, path);
}

/* Takes the bytes of MANIFEST and LOCK out of the segments' budget, so that every file of
 * the directory together stays within max_bytes. */
static void ds__disk_meta(ds__disk *d) {
  static const char *const names[] = {"MANIFEST", "LOCK"};
  for (int i = 0; i < 2; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", d->dir, names[i]);
    if (stat(path, &st) == 0) d->meta += (uint64_t)st.st_size;
  }
  d->max_bytes = d->max_bytes > d->meta ? d->max_bytes - d->meta : 0;
}

static void *ds__disk_flusher(void *arg) {
  ds__disk *d = arg;
  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)d->sync_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    if (!d->dirty || !d->nsegs) continue;
    d->dirty = 0;
    int fd = dup(d->segs[d->nsegs - 1].fd); /* the segment may be dropped while we sync */
    pthread_mutex_unlock(&d->mu);
    int err = 0;
    if (fd >= 0) {
      if (ds__io_fdatasync(fd) != 0) err = errno;
      close(fd);
    }
    pthread_mutex_lock(&d->mu);
    if (err) { /* reported by the next flush: a later sync may succeed without the data */
      d->io_errors++;
      d->sync_err = err;
    }
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* ---- open / close ---- */
static ds_status ds__disk_lock(ds__disk *d) {
  char path[4096];
  snprintf(path, sizeof path, "%s/LOCK", d->dir);
  d->lock_fd = ds__io_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (d->lock_fd < 0)
    return ds__error(d->ctx, DS_ERR_IO, "cache", "cannot open %s: %s", path, strerror(errno));
  if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0)
    return ds__error(d->ctx, errno == EWOULDBLOCK ? DS_ERR_BUSY : DS_ERR_IO, "cache",
                     "%s is open for writing by another process", d->dir);
  return DS_OK;
}

/* A writer's directory must be ours and writable by nobody else: in a shared place, another
 * user could otherwise read the values or plant segments that we would serve. */
static ds_status ds__disk_check_dir(ds__disk *d) {
  struct stat st;
  if (stat(d->dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return ds__error(d->ctx, DS_ERR_IO, "cache", "%s is not a directory", d->dir);
  if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
    return ds__error(d->ctx, DS_ERR_IO, "cache",
                     "%s is not a private directory (owner %u, mode %03o; need owner %u and no "
                     "group or other write)",
                     d->dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
                     (unsigned)geteuid());
  return DS_OK;
}

ds_status ds__disk_open(ds__disk **out, ds_context *ctx, const char *path,
                        const ds_cache_persist_options *o) {
  *out = NULL;
  ds__disk *d = ds__calloc(ctx, 1, sizeof *d);
  if (!d || !(d->dir = ds__strdup(ctx, path))) {
    ds__free(ctx, d);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory opening %s", path);
  }
  d->ctx = ctx;
  d->lock_fd = -1;
  d->read_only = o->read_only != 0;
  d->durability = o->durability;
  d->verify = (int)ds__param(ctx, DS_PARAM_CACHE_VERIFY_READS);
  d->xh = ds__xxh3_select(ds__param(ctx, DS_PARAM_CACHE_CHECKSUM_ISA) == 1);
  d->sync_ms = o->sync_interval_ms;
  d->codec.zstd = o->codec == DS_CACHE_CODEC_ZSTD;
  d->codec.none = o->codec == DS_CACHE_CODEC_NONE;
  d->codec.level = o->zstd_level;
  d->max_bytes = o->max_bytes;
  d->seg_max = o->max_bytes / 8 < (64u << 20) ? o->max_bytes / 8 : (64u << 20);
  d->nb = 1024;
  d->next_id = 1;
  d->recycled_id = ds__stat_register(ctx, "cache.l3.recycled_segments", DS_STAT_COUNTER);
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cv, NULL);
  d->buckets = ds__calloc(ctx, d->nb, sizeof *d->buckets);
  ds_status st = d->buckets ? DS_OK : DS_ERR_NO_MEMORY;
  if (st == DS_OK && !d->read_only && ds__io_mkdir(path, 0700) != 0 && errno != EEXIST)
    st = ds__error(ctx, DS_ERR_IO, "cache", "cannot create %s: %s", path, strerror(errno));
  if (st == DS_OK && !d->read_only) st = ds__disk_check_dir(d);
  if (st == DS_OK && !d->read_only) st = ds__disk_lock(d);
  if (st == DS_OK) st = ds__manifest(d);
  if (st == DS_OK) ds__disk_meta(d);
  if (st == DS_OK) st = ds__disk_load(d);
  while (st == DS_OK && d->total > d->max_bytes && d->nsegs) ds__seg_drop_oldest(d);
  if (st == DS_OK && !d->read_only && !d->nsegs) st = ds__seg_roll(d);
  if (st == DS_OK && !d->read_only && d->durability == DS_CACHE_SYNC_BATCHED) {
    if (pthread_create(&d->flusher, NULL, ds__disk_flusher, d) == 0) d->has_flusher = 1;
    else st = ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "cannot start the flusher thread");
  }
  if (st != DS_OK) {
    if (st == DS_ERR_NO_MEMORY && !d->buckets) ds__error(ctx, st, "cache", "out of memory");
    ds__disk_close(d);
    return st;
  }
  *out = d;
  return DS_OK;
}

void ds__disk_close(ds__disk *d) {
  if (!d) return;
  if (d->has_flusher) {
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->flusher, NULL);
  }
  for (uint32_t i = 0; i < d->nsegs; i++) {
    if (!d->read_only && i + 1 == d->nsegs) ds__io_fdatasync(d->segs[i].fd);
    if (d->segs[i].map) munmap(d->segs[i].map, d->segs[i].map_len);
    close(d->segs[i].fd);
  }
  for (size_t b = 0; d->buckets && b < d->nb; b++)
    for (ds__dent *e = d->buckets[b], *nx; e; e = nx) {
      nx = e->next;
      ds__free(d->ctx, e);
    }
  if (d->lock_fd >= 0) close(d->lock_fd); /* releases the flock */
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
  ds__free(d->ctx, d->buckets);
  ds__free(d->ctx, d->segs);
  ds__idxbuf_free(d->ctx, &d->ib);
  ds__free(d->ctx, d->dir);
  ds__free(d->ctx, d);
}

/* ---- operations ---- */
/* Bytes segment s grows by when a record of reclen bytes is appended to it (a recycled file
 * grows only once its new data passes its old size; the end marker never extends it). */
static uint64_t ds__seg_growth(const ds__seg *s, uint64_t reclen) {
  return s->size + reclen > s->file ? s->size + reclen - s->file : 0;
}

/* Makes room for a record of reclen bytes: rolls the active segment when it is full or the
 * budget is reached, then drops the oldest segments until the record fits. */
static ds_status ds__disk_room(ds__disk *d, uint64_t reclen) {
  ds__seg *a = &d->segs[d->nsegs - 1];
  ds_status st = DS_OK;
  if (a->size > 0 && (a->size + reclen > d->seg_max ||
                      d->total + ds__seg_growth(a, reclen) > d->max_bytes))
    st = ds__seg_roll(d);
  while (st == DS_OK && d->nsegs > 1 &&
         d->total + ds__seg_growth(&d->segs[d->nsegs - 1], reclen) > d->max_bytes)
    ds__seg_drop_oldest(d);
  if (st == DS_OK && d->dir_dirty) { /* a recycled segment's new name must be durable first */
    if (ds__dir_sync(d) != 0) {
      d->io_errors++;
      return ds__error(d->ctx, ds__errno_status(errno), "cache", "cannot sync directory %s: %s",
                       d->dir, strerror(errno));
    }
    d->dir_dirty = 0;
  }
  return st;
}

/* Appends one record to the active segment, making room first; the index is updated by the
 * caller only when this succeeds. Where the file goes on past the record (recycled: stale
 * bytes; preallocated: zeros), the end marker (zero bytes up to a header, not past the file's
 * end) follows the record in the same write. A failed write is cut off again so the segment
 * stays valid. */
static ds_status ds__disk_append(ds__disk *d, ds__rec_hdr *h, const void *key, const void *data,
                                 uint32_t *seg, uint64_t *off) {
  static const unsigned char zeros[DS__HDR];
  uint64_t reclen = DS__HDR + (uint64_t)h->klen + h->slen;
  if (reclen > d->max_bytes)
    return ds__error(d->ctx, DS_ERR_FULL, "cache", "record of %llu bytes exceeds max_bytes",
                     (unsigned long long)reclen);
  ds_status st = ds__disk_room(d, reclen);
  if (st != DS_OK) return st;
  ds__seg *a = &d->segs[d->nsegs - 1];
  h->magic = DS__REC_MAGIC2;
  h->gen = ds__gen(a->id);
  h->sum = ds__rec_sum(d, h, key, data, a->id);
  uint64_t rec_end = a->size + reclen;
  size_t mark = rec_end >= a->file ? 0 : a->file - rec_end < DS__HDR ? (size_t)(a->file - rec_end)
                                                                      : DS__HDR;
  struct iovec iov[4] = {{h, DS__HDR}, {(void *)key, h->klen}, {(void *)data, h->slen}};
  int n = h->slen ? 3 : 2;
  if (mark) iov[n++] = (struct iovec){(void *)zeros, mark};
  errno = 0;
  ssize_t w = ds__io_pwritev(a->fd, iov, n, (off_t)a->size);
  int err = errno;
  if (w == (ssize_t)(reclen + mark) && d->durability == DS_CACHE_SYNC_EVERY_PUT &&
      ds__io_fdatasync(a->fd) != 0) {
    err = errno;
    w = -1;
  }
  if (w != (ssize_t)(reclen + mark)) {
    d->io_errors++;
    if (ds__io_ftruncate(a->fd, (off_t)a->size) != 0) {
      d->io_errors++;
    } else if (a->file > a->size) { /* the stale tail went too */
      d->total -= a->file - a->size;
      a->file = a->size;
    }
    return ds__error(d->ctx, ds__errno_status(err ? err : ENOSPC), "cache",
                     "segment %u of %s: write of %llu bytes at offset %llu failed: %s", a->id,
                     d->dir, (unsigned long long)reclen, (unsigned long long)a->size,
                     strerror(err ? err : ENOSPC));
  }
  if (rec_end > a->map_len) ds__seg_remap(a, (size_t)rec_end);
  ds__seg_prefault(a, a->size, reclen);
  ds__idx_ent ie = {a->size, h->vlen, h->slen, (uint16_t)h->klen, h->type, h->enc};
  ds__idxbuf_add(d->ctx, &d->ib, &ie, key);
  *seg = a->id;
  *off = a->size;
  d->total += ds__seg_growth(a, reclen);
  a->size = rec_end;
  if (a->file < rec_end) a->file = rec_end;
  d->dirty = 1;
  return DS_OK;
}

ds_status ds__disk_put(ds__disk *d, const void *key, size_t klen, const void *val, size_t vlen) {
  if (d->read_only) return ds__error(d->ctx, DS_ERR_STATE, "cache", "cache opened read-only");
  void *enc_data = NULL;
  size_t slen = vlen;
  uint32_t enc = DS__ENC_RAW;
  /* stored as is: written straight from the caller's bytes (the codec would copy them) */
  int as_is = d->codec.none && !d->codec.shuffle && !d->codec.bf16;
  if (!as_is &&
      ds__codec_encode(d->ctx, &d->codec, val, vlen, &enc_data, &slen, &enc) != DS_OK)
    return ds__error(d->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory compressing a value");
  ds__rec_hdr h = {DS__REC_MAGIC2, DS__REC_PUT, (uint8_t)enc, 0, (uint32_t)klen, (uint32_t)slen,
                   vlen, 0};
  pthread_mutex_lock(&d->mu);
  uint32_t seg;
  uint64_t off;
  ds_status st = ds__disk_append(d, &h, key, as_is ? val : enc_data, &seg, &off);
  if (st == DS_OK && ds__dindex_set(d, key, (uint16_t)klen, seg, off, &h, 0) != DS_OK)
    st = ds__error(d->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory indexing a record");
  pthread_mutex_unlock(&d->mu);
  ds__free(d->ctx, enc_data);
  return st;
}

ds_status ds__disk_remove(ds__disk *d, const void *key, size_t klen) {
  if (d->read_only) return ds__error(d->ctx, DS_ERR_STATE, "cache", "cache opened read-only");
  pthread_mutex_lock(&d->mu);
  uint64_t hash = XXH3_64bits(key, klen);
  ds__dent *e = ds__dindex_find(d, hash, key, klen);
  ds_status st = DS_ERR_NOT_FOUND;
  if (e) {
    ds__rec_hdr h = {DS__REC_MAGIC2, DS__REC_DEL, 0, 0, (uint32_t)klen, 0, 0, 0};
    uint32_t seg;
    uint64_t off;
    st = ds__disk_append(d, &h, key, "", &seg, &off);
    e = ds__dindex_find(d, hash, key, klen); /* a dropped segment may have evicted it */
    if (st == DS_OK && e) ds__dindex_unlink(d, e);
  }
  pthread_mutex_unlock(&d->mu);
  return st;
}

int ds__disk_contains(ds__disk *d, const void *key, size_t klen) {
  pthread_mutex_lock(&d->mu);
  int found = ds__dindex_find(d, XXH3_64bits(key, klen), key, klen) != NULL;
  pthread_mutex_unlock(&d->mu);
  return found;
}

/* Reads and verifies the record of e into a new buffer (header + key + stored bytes). */
static ds_status ds__disk_read(ds__disk *d, ds__dent *e, unsigned char **out) {
  size_t n = DS__HDR + e->klen + (size_t)e->slen;
  unsigned char *buf = ds__alloc(d->ctx, n);
  if (!buf) return DS_ERR_NO_MEMORY;
  int fd = ds__seg_fd(d, e->seg);
  ssize_t r = fd >= 0 ? ds__io_pread(fd, buf, n, (off_t)e->off) : -1;
  ds__rec_hdr h;
  memcpy(&h, buf, DS__HDR);
  ds_status st = DS_OK;
  if (r != (ssize_t)n) {
    d->io_errors++;
    st = ds__error(d->ctx, DS_ERR_IO, "cache", "segment %u of %s: read at offset %llu failed",
                   e->seg, d->dir, (unsigned long long)e->off);
  } else if (!ds__hdr_ours(&h, e->seg) || h.klen != e->klen || h.slen != e->slen ||
             ds__rec_sum(d, &h, buf + DS__HDR, buf + DS__HDR + h.klen, e->seg) != h.sum) {
    d->corrupt++;
    ds__log(d->ctx, DS_LOG_WARN, "cache", "segment %u of %s: checksum mismatch at offset %llu",
            e->seg, d->dir, (unsigned long long)e->off);
    st = ds__error(d->ctx, DS_ERR_CORRUPT, "cache",
                   "segment %u of %s: record at offset %llu is corrupt", e->seg, d->dir,
                   (unsigned long long)e->off);
  }
  if (st != DS_OK) ds__free(d->ctx, buf);
  else *out = buf;
  return st;
}

/* Counts a get's latency in its power-of-two bucket; d->mu held. */
static void ds__disk_lat_locked(ds__disk *d, uint64_t t0) {
  uint64_t ns = ds__now_ns() - t0;
  int b = 0;
  while (b < 63 && (ns >> (b + 1))) b++;
  d->lat[b]++;
}

static void ds__disk_lat(ds__disk *d, uint64_t t0) {
  pthread_mutex_lock(&d->mu);
  ds__disk_lat_locked(d, t0);
  pthread_mutex_unlock(&d->mu);
}

/* Get from a mapped segment, under the lock (a concurrent put may drop the segment). The
 * header is checked against the index, and the record against its checksum as d->verify says:
 * on every get (2), or on the first get of a record written since open (1: the scan at open
 * verified the others; this catches a write that did not reach the disk intact, at one hash
 * per record instead of one per get), or never (0). */
static ds_status ds__disk_corrupt(ds__disk *d, ds__dent *e) {
  d->corrupt++;
  ds__log(d->ctx, DS_LOG_WARN, "cache",
          "segment %u of %s: record header or checksum mismatch at offset %llu", e->seg, d->dir,
          (unsigned long long)e->off);
  ds__dindex_unlink(d, e);
  return ds__error(d->ctx, DS_ERR_CORRUPT, "cache", "segment record is corrupt");
}

static ds_status ds__disk_get_mapped(ds__disk *d, ds__dent *e, const unsigned char *rec,
                                     void *buf, void **alloc_out) {
  ds__rec_hdr h;
  memcpy(&h, rec, DS__HDR);
  int check = d->verify == 2 || (d->verify == 1 && !e->verified);
  /* a raw record over 240 bytes (XXH3's long-input size) is verified while it is copied out,
   * each byte loaded once (the caller's buffer then holds the corrupt bytes when the checksum
   * fails: the get returns DS_ERR_CORRUPT); a shorter one is hashed in one shot */
  int fused = check && e->enc == DS__ENC_RAW && e->slen == e->vlen && e->slen > 240;
  if (!ds__hdr_ours(&h, e->seg) || h.klen != e->klen || h.slen != e->slen ||
      memcmp(rec + DS__HDR, e->key, e->klen) ||
      (check && !fused &&
       ds__rec_sum(d, &h, rec + DS__HDR, rec + DS__HDR + h.klen, e->seg) != h.sum))
    return ds__disk_corrupt(d, e);
  void *dst = buf;
  if (alloc_out && !(dst = ds__alloc(d->ctx, e->vlen ? e->vlen : 1)))
    return ds__error(d->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory reading a record");
  const unsigned char *src = rec + DS__HDR + e->klen;
  if (fused && ds__rec_copy_sum(d, &h, rec + DS__HDR, src, dst, e->slen, e->seg) != h.sum) {
    if (alloc_out) ds__free(d->ctx, dst);
    return ds__disk_corrupt(d, e);
  }
  e->verified = 1;
  ds_status st = e->vlen && !fused ? ds__codec_decode(d->ctx, e->enc, src, e->slen, dst, e->vlen)
                                   : DS_OK;
  if (st != DS_OK) {
    if (alloc_out) ds__free(d->ctx, dst);
    return ds__error(d->ctx, st, "cache", "could not decode a disk record");
  }
  if (alloc_out) *alloc_out = dst;
  return DS_OK;
}

ds_status ds__disk_get(ds__disk *d, const void *key, size_t klen, void *buf, size_t cap,
                       size_t *len, void **alloc_out) {
  uint64_t t0 = ds__now_ns();
  pthread_mutex_lock(&d->mu);
  ds__dent *e = ds__dindex_find(d, XXH3_64bits(key, klen), key, klen);
  if (!e) {
    d->misses++;
    pthread_mutex_unlock(&d->mu);
    return DS_ERR_NOT_FOUND;
  }
  *len = e->vlen;
  if (!alloc_out && cap < e->vlen) {
    pthread_mutex_unlock(&d->mu);
    return DS_ERR_FULL;
  }
  ds__seg *sg = NULL;
  for (uint32_t i = 0; i < d->nsegs && !sg; i++)
    if (d->segs[i].id == e->seg) sg = &d->segs[i];
  size_t n = DS__HDR + e->klen + (size_t)e->slen;
  if (sg && sg->map && e->off + n <= sg->map_len) {
    ds_status st = ds__disk_get_mapped(d, e, sg->map + e->off, buf, alloc_out);
    if (st == DS_OK) { /* counted before the unlock: one lock round trip per get */
      d->hits++;
      ds__disk_lat_locked(d, t0);
    }
    pthread_mutex_unlock(&d->mu);
    return st;
  }
  unsigned char *rec = NULL;
  ds_status st = ds__disk_read(d, e, &rec);
  if (st == DS_ERR_CORRUPT) ds__dindex_unlink(d, e);
  uint32_t enc = e && st == DS_OK ? e->enc : 0, slen = st == DS_OK ? e->slen : 0;
  size_t vlen = *len, kl = klen;
  if (st == DS_OK) d->hits++;
  pthread_mutex_unlock(&d->mu);
  if (st != DS_OK) return st;
  void *dst = buf;
  if (alloc_out) {
    dst = ds__alloc(d->ctx, vlen ? vlen : 1);
    if (!dst) st = DS_ERR_NO_MEMORY;
  }
  if (st == DS_OK && vlen)
    st = ds__codec_decode(d->ctx, enc, rec + DS__HDR + kl, slen, dst, vlen);
  ds__free(d->ctx, rec);
  if (st != DS_OK) {
    if (alloc_out) ds__free(d->ctx, dst);
    return ds__error(d->ctx, st, "cache", "could not decode a disk record");
  }
  if (alloc_out) *alloc_out = dst;
  ds__disk_lat(d, t0);
  return DS_OK;
}

ds_status ds__disk_flush(ds__disk *d) {
  if (d->read_only) return DS_OK;
  pthread_mutex_lock(&d->mu);
  ds_status st = DS_OK;
  if (d->nsegs && ds__io_fdatasync(d->segs[d->nsegs - 1].fd) != 0) {
    d->io_errors++;
    st = ds__error(d->ctx, DS_ERR_IO, "cache", "fdatasync in %s failed: %s", d->dir,
                   strerror(errno));
  } else if (d->sync_err) {
    st = ds__error(d->ctx, DS_ERR_IO, "cache", "an earlier sync in %s failed: %s", d->dir,
                   strerror(d->sync_err));
  } else {
    d->dirty = 0;
  }
  d->sync_err = 0;
  pthread_mutex_unlock(&d->mu);
  return st;
}

void ds__disk_stats(ds__disk *d, ds__tier_counters *t, uint64_t *corrupt, uint64_t *io_errors) {
  pthread_mutex_lock(&d->mu);
  memset(t, 0, sizeof *t);
  t->bytes = d->total + d->meta;
  t->raw_bytes = d->raw_live;
  t->key_bytes = t->bytes > d->stored_live ? t->bytes - d->stored_live : 0;
  t->entries = d->count;
  t->hits = d->hits;
  t->misses = d->misses;
  t->evictions = d->evictions;
  memcpy(t->lat, d->lat, sizeof t->lat);
  *corrupt = d->corrupt;
  *io_errors = d->io_errors;
  pthread_mutex_unlock(&d->mu);
}
