/* The stats file: its on-disk layout, the writer side (a private directory, create, publish
 * under a sequence lock, remove at destroy) and ds_stats_file_read(), which treats the file as
 * untrusted bytes.
 *
 * Layout, native byte order (writer and reader share the machine), fixed size for a capacity:
 *   header (128 bytes)  magic "DSSTATS\0", version, header_size, entry_size, capacity,
 *                       seq (the sequence lock), count, pid, creation and last-publish
 *                       CLOCK_REALTIME in ns, label (ds_context_options.name)
 *   capacity entries    {name[64], kind, reserved, value (double)}, 80 bytes each
 * The writer makes seq odd, rewrites count and the entries, then makes it even again; a reader
 * copies while seq is even and unchanged across the copy, and retries otherwise. The file size
 * never changes after creation, so a mapping of it stays valid. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stats_internal.h"

#define DS__SF_MAGIC "DSSTATS" /* with its NUL, 8 bytes */
#define DS__SF_VERSION 1u
#define DS__SF_MAX_CAPACITY 65536u /* a reader's bound on what it will map and copy */
#define DS__SF_MAX_RETRIES 1000

typedef struct ds__sf_header {
  char magic[8];
  uint32_t version, header_size, entry_size, capacity;
  ds__atomic_u64 seq;
  uint32_t count, reserved;
  int64_t pid;
  int64_t created_unix_ns, updated_unix_ns;
  char label[DS__STAT_NAME_MAX];
} ds__sf_header;

typedef struct ds__sf_entry {
  char name[DS__STAT_NAME_MAX];
  int32_t kind;
  uint32_t reserved;
  double value;
} ds__sf_entry;

_Static_assert(sizeof(ds__sf_header) == 128, "stats file header is 128 bytes");
_Static_assert(offsetof(ds__sf_header, seq) == 24, "seq is 8-byte aligned at offset 24");
_Static_assert(sizeof(ds__sf_entry) == 80, "stats file entry is 80 bytes");

struct ds__stats_file {
  ds__sf_header *hdr; /* the shared mapping */
  size_t size;
  char *path;
};

static int64_t ds__realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- writer ---- */

/* DS_STATS_DIR (unless DS_CONTEXT_NO_ENV), else $XDG_RUNTIME_DIR/deepseek when that is our
 * own directory, else /tmp/deepseek-UID. Returns 0 if the name does not fit. */
static int ds__stats_dir(int use_env, char *buf, size_t cap) {
  const char *dir = use_env ? secure_getenv("DS_STATS_DIR") : NULL;
  const char *xdg = secure_getenv("XDG_RUNTIME_DIR");
  struct stat st;
  int n;
  if (dir && *dir)
    n = snprintf(buf, cap, "%s", dir);
  else if (xdg && *xdg == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode) &&
           st.st_uid == geteuid())
    n = snprintf(buf, cap, "%s/deepseek", xdg);
  else
    n = snprintf(buf, cap, "/tmp/deepseek-%u", (unsigned)geteuid());
  return n > 0 && (size_t)n < cap;
}

/* Opens (creating it 0700 if needed) a directory only we can write into: in a shared place such
 * as /tmp, anyone else able to write there could swap or read our file. */
static int ds__stats_open_dir(ds_context *ctx, const char *dir) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    ds__log(ctx, DS_LOG_WARN, "stats", "no stats file: cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ds__log(ctx, DS_LOG_WARN, "stats", "no stats file: cannot open %s: %s", dir,
            errno == ELOOP || errno == ENOTDIR ? "not a directory (a symbolic link is refused)"
                                             : strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
    ds__log(ctx, DS_LOG_WARN, "stats",
            "no stats file: %s is not a private directory (owner %u, mode %03o; need owner %u "
            "and no group or other write)",
            dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777), (unsigned)geteuid());
    close(fd);
    return -1;
  }
  return fd;
}

static int ds__stats_create_fd(int dfd, const char *name) {
  const int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(dfd, name, flags, 0600);
  if (fd < 0 && errno == EEXIST) {
    /* Left by a process that died with our pid; the directory is ours, so is the file. */
    unlinkat(dfd, name, 0);
    fd = openat(dfd, name, flags, 0600);
  }
  return fd;
}

static void ds__stats_file_init(ds_context *ctx, ds__sf_header *h) {
  h->version = DS__SF_VERSION;
  h->header_size = sizeof *h;
  h->entry_size = sizeof(ds__sf_entry);
  h->capacity = DS__STATS_CAPACITY;
  h->pid = (int64_t)getpid();
  h->created_unix_ns = h->updated_unix_ns = ds__realtime_ns();
  snprintf(h->label, sizeof h->label, "%s", ctx->name);
  ds__store_relaxed(&h->seq, 0);
  ds__fence_release(); /* the magic goes last: a file with it has a complete header */
  memcpy(h->magic, DS__SF_MAGIC, sizeof h->magic);
}

/* Creates, sizes and maps the file; returns its descriptor-free mapping or NULL (logged). */
static struct ds__stats_file *ds__stats_file_map(ds_context *ctx, int dfd, const char *dir) {
  char name[64];
  snprintf(name, sizeof name, "%ld-%llu.stats", (long)getpid(), (unsigned long long)ctx->serial);
  size_t size = sizeof(ds__sf_header) + DS__STATS_CAPACITY * sizeof(ds__sf_entry);
  size_t path_len = strlen(dir) + 1 + strlen(name) + 1;
  struct ds__stats_file *f = ds__calloc(ctx, 1, sizeof *f);
  char *path = ds__alloc(ctx, path_len);
  int fd = ds__stats_create_fd(dfd, name);
  void *map = MAP_FAILED;
  if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (!f || !path || map == MAP_FAILED) {
    ds__log(ctx, DS_LOG_WARN, "stats", "no stats file: cannot create %s/%s: %s", dir, name,
            !f || !path ? "out of memory" : strerror(errno));
    if (map != MAP_FAILED) munmap(map, size);
    if (fd >= 0) unlinkat(dfd, name, 0);
    ds__free(ctx, path);
    ds__free(ctx, f);
    f = NULL;
  } else {
    snprintf(path, path_len, "%s/%s", dir, name);
    f->hdr = map;
    f->size = size;
    f->path = path;
    ds__stats_file_init(ctx, f->hdr);
  }
  if (fd >= 0) close(fd);
  return f;
}

struct ds__stats_file *ds__stats_file_create(ds_context *ctx) {
  char dir[4096];
  if (!ds__stats_dir(!(ctx->flags & DS_CONTEXT_NO_ENV), dir, sizeof dir)) {
    ds__log(ctx, DS_LOG_WARN, "stats", "no stats file: directory name too long");
    return NULL;
  }
  int dfd = ds__stats_open_dir(ctx, dir);
  if (dfd < 0) return NULL;
  struct ds__stats_file *f = ds__stats_file_map(ctx, dfd, dir);
  close(dfd);
  return f;
}

void ds__stats_file_destroy(ds_context *ctx, struct ds__stats_file *f) {
  if (!f) return;
  if (unlink(f->path) != 0)
    ds__log(ctx, DS_LOG_WARN, "stats", "cannot remove %s: %s", f->path, strerror(errno));
  munmap(f->hdr, f->size);
  ds__free(ctx, f->path);
  ds__free(ctx, f);
}

ds_status ds_stats_dir(char *buf, size_t cap) {
  if (!buf || cap == 0)
    return ds__error(NULL, DS_ERR_INVALID_ARG, "stats", "ds_stats_dir: buffer is NULL or empty");
  if (!ds__stats_dir(1, buf, cap)) {
    buf[0] = '\0';
    return ds__error(NULL, DS_ERR_NO_SPACE, "stats",
                     "ds_stats_dir: the name needs more than %zu bytes", cap);
  }
  return DS_OK;
}

const char *ds__stats_file_path_of(const struct ds__stats_file *f) { return f->path; }

void ds__stats_file_write(struct ds__stats_file *f, const struct ds__stat_entry *e, int n) {
  ds__sf_header *h = f->hdr;
  ds__sf_entry *out = (ds__sf_entry *)(h + 1);
  uint64_t seq = ds__load_relaxed(&h->seq);
  ds__store_relaxed(&h->seq, seq + 1);
  ds__fence_release(); /* the odd seq is visible before any entry changes */
  for (int i = 0; i < n; i++) {
    uint64_t bits = ds__load_relaxed(&e[i].bits);
    memcpy(out[i].name, e[i].name, sizeof out[i].name);
    out[i].kind = e[i].kind;
    memcpy(&out[i].value, &bits, sizeof out[i].value);
  }
  h->count = (uint32_t)n;
  h->updated_unix_ns = ds__realtime_ns();
  ds__store(&h->seq, seq + 2); /* release: the entries are visible before the even seq */
}

/* ---- reader: every field is checked before it is used ---- */

static ds_status ds__sf_corrupt(const char *path, const char *what) {
  return ds__error(NULL, DS_ERR_CORRUPT, "stats", "%s: not a readable stats file: %s", path, what);
}

static ds_status ds__sf_check_header(const ds__sf_header *h, off_t file_size, const char *path) {
  char what[160];
  if (memcmp(h->magic, DS__SF_MAGIC, sizeof h->magic) != 0) return ds__sf_corrupt(path, "bad magic");
  if (h->version != DS__SF_VERSION) {
    snprintf(what, sizeof what, "format version %u, this library reads %u", h->version,
             DS__SF_VERSION);
    return ds__sf_corrupt(path, what);
  }
  if (h->header_size != sizeof(ds__sf_header) || h->entry_size != sizeof(ds__sf_entry)) {
    snprintf(what, sizeof what, "header/entry sizes %u/%u, expected %zu/%zu", h->header_size,
             h->entry_size, sizeof(ds__sf_header), sizeof(ds__sf_entry));
    return ds__sf_corrupt(path, what);
  }
  if (h->capacity == 0 || h->capacity > DS__SF_MAX_CAPACITY) {
    snprintf(what, sizeof what, "capacity %u is not in 1..%u", h->capacity, DS__SF_MAX_CAPACITY);
    return ds__sf_corrupt(path, what);
  }
  off_t need = (off_t)(sizeof(ds__sf_header) + (size_t)h->capacity * sizeof(ds__sf_entry));
  if (file_size < need) {
    snprintf(what, sizeof what, "truncated: %lld bytes, %lld expected", (long long)file_size,
             (long long)need);
    return ds__sf_corrupt(path, what);
  }
  return DS_OK;
}

/* Checks a consistent copy, then turns it into a snapshot. */
static ds_status ds__sf_snapshot(ds_stats **out, const ds__sf_header *h, uint32_t count,
                                 const ds__sf_entry *e, uint32_t cap, const char *path) {
  char what[160];
  if (count > cap) {
    snprintf(what, sizeof what, "count %u exceeds capacity %u", count, cap);
    return ds__sf_corrupt(path, what);
  }
  if (!memchr(h->label, '\0', sizeof h->label)) return ds__sf_corrupt(path, "label not terminated");
  for (uint32_t i = 0; i < count; i++) {
    if (!memchr(e[i].name, '\0', sizeof e[i].name) || (e[i].kind != 0 && e[i].kind != 1)) {
      snprintf(what, sizeof what, "entry %u: name not terminated or unknown kind", i);
      return ds__sf_corrupt(path, what);
    }
  }
  ds_stats *s = ds__stats_alloc(count);
  if (!s) return ds__error(NULL, DS_ERR_NO_MEMORY, "stats", "cannot allocate a snapshot");
  s->pid = h->pid;
  memcpy(s->label, h->label, sizeof s->label);
  for (uint32_t i = 0; i < count; i++) {
    memcpy(s->names + (size_t)i * DS__STAT_NAME_MAX, e[i].name, DS__STAT_NAME_MAX);
    s->stats[i].kind = e[i].kind;
    s->stats[i].value = e[i].value;
  }
  *out = s;
  return DS_OK;
}

/* Copies count and entries while the sequence lock shows no writer, then builds the snapshot. */
static ds_status ds__sf_copy(ds_stats **out, ds__sf_header *h, const ds__sf_header *checked,
                             const char *path) {
  const uint32_t cap = checked->capacity; /* validated, and what was mapped */
  const ds__sf_entry *src = (const ds__sf_entry *)(h + 1);
  ds__sf_entry *tmp = malloc((size_t)cap * sizeof *tmp);
  if (!tmp) return ds__error(NULL, DS_ERR_NO_MEMORY, "stats", "cannot allocate %u entries", cap);
  ds_status st = DS_ERR_BUSY;
  for (int attempt = 0; attempt < DS__SF_MAX_RETRIES && st == DS_ERR_BUSY; attempt++) {
    uint64_t seq = ds__load(&h->seq);
    if (seq & 1) {
      sched_yield();
      continue;
    }
    uint32_t count = h->count;
    memcpy(tmp, src, (size_t)(count < cap ? count : cap) * sizeof *tmp);
    ds__fence_acquire(); /* the copy completes before seq is read again */
    if (ds__load_relaxed(&h->seq) == seq) st = ds__sf_snapshot(out, checked, count, tmp, cap, path);
  }
  free(tmp);
  if (st == DS_ERR_BUSY)
    ds__error(NULL, st, "stats", "%s: the writer was updating during %d attempts", path,
              DS__SF_MAX_RETRIES);
  return st;
}

ds_status ds_stats_file_read(ds_stats **out, const char *path) {
  if (!out || !path)
    return ds__error(NULL, DS_ERR_INVALID_ARG, "stats", "ds_stats_file_read: %s is NULL",
                     out ? "path" : "out");
  *out = NULL;
  /* O_NONBLOCK: a FIFO in place of the file must not hang the reader. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ds__error(NULL, DS_ERR_IO, "stats", "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  ds__sf_header h;
  ds_status status;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    status = ds__sf_corrupt(path, "not a regular file");
  else if (st.st_size < (off_t)sizeof h || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
    status = ds__sf_corrupt(path, "truncated header");
  else
    status = ds__sf_check_header(&h, st.st_size, path);
  size_t size = status == DS_OK ? sizeof h + (size_t)h.capacity * sizeof(ds__sf_entry) : 0;
  void *map = status == DS_OK ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (status == DS_OK && map == MAP_FAILED)
    status = ds__error(NULL, DS_ERR_IO, "stats", "cannot map %s: %s", path, strerror(errno));
  close(fd);
  if (status != DS_OK) return status;
  status = ds__sf_copy(out, map, &h, path);
  munmap(map, size);
  return status;
}
