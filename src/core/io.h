/* Internal: the system calls of on-disk state (the persistent cache's disk tier) behind thin
 * ds__io_* wrappers, and a process-wide fault hook that makes the Nth matching call fail with
 * a chosen errno, for the I/O error tests (tests/test_io_faults.c). Unarmed, each wrapper costs
 * one relaxed atomic load on top of the system call. */
#ifndef DS_CORE_IO_H
#define DS_CORE_IO_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Operation classes, for ds__io_fault_set()'s mask. */
#define DS__IO_OPEN 0x01u     /* open, mkdir */
#define DS__IO_WRITE 0x02u    /* write, pwritev */
#define DS__IO_SYNC 0x04u     /* fsync, fdatasync */
#define DS__IO_RENAME 0x08u   /* rename */
#define DS__IO_TRUNCATE 0x10u /* ftruncate */
#define DS__IO_READ 0x20u     /* pread */
#define DS__IO_ALL 0x3fu

int ds__io_open(const char *path, int flags, mode_t mode);
int ds__io_mkdir(const char *path, mode_t mode);
ssize_t ds__io_write(int fd, const void *buf, size_t n);
ssize_t ds__io_pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off);
ssize_t ds__io_pread(int fd, void *buf, size_t n, off_t off);
int ds__io_fsync(int fd);
int ds__io_fdatasync(int fd);
int ds__io_rename(const char *from, const char *to);
int ds__io_ftruncate(int fd, off_t len);

/* Test hook: from now on, count the calls of the classes in @p mask; the @p nth (1-based) one
 * fails with errno @p err, and with @p sticky every later one too. A failing write first
 * writes half of its first buffer (a torn write, as a full disk leaves). mask 0 disarms.
 * Process-wide; not for production use. */
void ds__io_fault_set(unsigned mask, uint64_t nth, int err, int sticky);
/* Matching calls seen since the last ds__io_fault_set(), and how many of them failed. */
uint64_t ds__io_fault_calls(void);
uint64_t ds__io_fault_hits(void);

#endif /* DS_CORE_IO_H */
