/* The ds__io_* system-call wrappers and their fault hook (see io.h). The hook's state is
 * process-wide because the I/O it stands for (files, disks) is process-wide too. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "io.h"

static ds__atomic_i64 ds__io_mask, ds__io_nth, ds__io_err, ds__io_sticky, ds__io_calls,
    ds__io_hits;

void ds__io_fault_set(unsigned mask, uint64_t nth, int err, int sticky) {
  ds__store(&ds__io_mask, 0); /* disarm while the fields change */
  ds__store(&ds__io_calls, 0);
  ds__store(&ds__io_hits, 0);
  ds__store(&ds__io_nth, (int64_t)nth);
  ds__store(&ds__io_err, err);
  ds__store(&ds__io_sticky, sticky != 0);
  ds__store(&ds__io_mask, (int64_t)(nth ? mask : 0u));
}

uint64_t ds__io_fault_calls(void) { return (uint64_t)ds__load(&ds__io_calls); }
uint64_t ds__io_fault_hits(void) { return (uint64_t)ds__load(&ds__io_hits); }

/* 0: go ahead; else the errno this call fails with. */
static int ds__io_inject(unsigned cls) {
  if (DS__LIKELY(!((unsigned)ds__load_relaxed(&ds__io_mask) & cls))) return 0;
  int64_t n = ds__fetch_add(&ds__io_calls, 1) + 1, nth = ds__load(&ds__io_nth);
  if (n < nth || (n > nth && !ds__load(&ds__io_sticky))) return 0;
  ds__fetch_add(&ds__io_hits, 1);
  return (int)ds__load(&ds__io_err);
}

static int ds__io_fail(int err) {
  errno = err;
  return -1;
}

int ds__io_open(const char *path, int flags, mode_t mode) {
  int err = ds__io_inject(DS__IO_OPEN);
  return err ? ds__io_fail(err) : open(path, flags, mode);
}

int ds__io_mkdir(const char *path, mode_t mode) {
  int err = ds__io_inject(DS__IO_OPEN);
  return err ? ds__io_fail(err) : mkdir(path, mode);
}

ssize_t ds__io_write(int fd, const void *buf, size_t n) {
  int err = ds__io_inject(DS__IO_WRITE);
  if (!err) return write(fd, buf, n);
  if (n / 2 && write(fd, buf, n / 2) < 0) return -1; /* torn */
  return ds__io_fail(err);
}

ssize_t ds__io_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off) {
  int err = ds__io_inject(DS__IO_WRITE);
  if (!err) return pwritev(fd, iov, iovcnt, off);
  if (iovcnt > 0 && iov[0].iov_len / 2 && pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, off) < 0)
    return -1; /* torn */
  return ds__io_fail(err);
}

ssize_t ds__io_pread(int fd, void *buf, size_t n, off_t off) {
  int err = ds__io_inject(DS__IO_READ);
  return err ? ds__io_fail(err) : pread(fd, buf, n, off);
}

int ds__io_fsync(int fd) {
  int err = ds__io_inject(DS__IO_SYNC);
  return err ? ds__io_fail(err) : fsync(fd);
}

int ds__io_fdatasync(int fd) {
  int err = ds__io_inject(DS__IO_SYNC);
  return err ? ds__io_fail(err) : fdatasync(fd);
}

int ds__io_rename(const char *from, const char *to) {
  int err = ds__io_inject(DS__IO_RENAME);
  return err ? ds__io_fail(err) : rename(from, to);
}

int ds__io_ftruncate(int fd, off_t len) {
  int err = ds__io_inject(DS__IO_TRUNCATE);
  return err ? ds__io_fail(err) : ftruncate(fd, len);
}
