/* The measurement sources behind the telemetry sampler: /proc/stat, /proc/meminfo, PSI, NVML
 * (loaded at run time) and the TCP connect probe. Each reader says whether its value is valid;
 * an unavailable source never reports 0. None of them locks: telemetry.c serialises calls. */
#ifndef DS_CORE_TELEMETRY_SOURCES_H
#define DS_CORE_TELEMETRY_SOURCES_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"

/* ---- CPU utilisation from /proc/stat deltas ---- */
typedef struct ds__cpu_times {
  uint64_t busy, total;
  int seen; /* 1 once a reading gave this slot a baseline */
} ds__cpu_times;

typedef struct ds__cpu_src {
  const char *path;
  uint32_t ncpu;        /* per-CPU slots: cpu0..cpu(ncpu-1) */
  ds__cpu_times *prev;  /* [0] whole machine, [1 + i] CPU i: the baseline of the next delta */
  char *buf;            /* one reading of the file's cpu lines; sized once at open */
  size_t bufsize;
} ds__cpu_src;

/* Sizes the buffers for @p ncpu CPUs; the first ds__cpu_src_read() takes the baseline (NaN). */
ds_status ds__cpu_src_open(ds_context *ctx, ds__cpu_src *s, const char *path, uint32_t ncpu);
void ds__cpu_src_close(ds_context *ctx, ds__cpu_src *s);
/* Utilisation since the previous reading: *machine and cores[0..ncpu) get 0..1 or NaN.
 * Returns 1 when *machine is valid. A slot whose counters did not advance keeps its baseline,
 * so the next reading measures over the longer interval. */
int ds__cpu_src_read(ds__cpu_src *s, float *machine, float *cores);

/* ---- memory ---- */
/* 1 - MemAvailable/MemTotal from a meminfo file. Returns 1 when valid. */
int ds__mem_read(const char *path, float *used);
/* The "some avg10" of a PSI file, as 0..1. Returns 1 when valid. */
int ds__psi_read(const char *path, float *some_avg10);

/* ---- GPU through NVML, loaded with dlopen so the library never needs the driver ---- */
typedef struct ds__gpu_src ds__gpu_src; /* opaque: holds the NVML entry points */
/* NULL when NVML cannot be loaded or initialised, or sees no device (logged at debug). */
ds__gpu_src *ds__gpu_src_open(ds_context *ctx);
void ds__gpu_src_close(ds_context *ctx, ds__gpu_src *g);
/* Mean utilisation and used/total memory over the devices that answered. Returns 1 if valid. */
int ds__gpu_src_read(ds__gpu_src *g, float *util, float *mem_used);
/* Devices NVML reported (0 for NULL), and device @p i's figures of the last read: utilisation
 * 0..100, used and total memory in bytes. Returns 0 when it did not answer. */
unsigned ds__gpu_src_count(const ds__gpu_src *g);
int ds__gpu_src_device(const ds__gpu_src *g, unsigned i, double *util_pct, double *used_bytes,
                       double *total_bytes);

/* ---- network: TCP connect round trip to a peer ---- */
typedef struct ds__net_src {
  char *host, *port;  /* split copy of the peer string (one allocation, at host) */
  struct sockaddr_storage addr;
  socklen_t addrlen;  /* 0: not resolved yet, or to be resolved again after a failure */
  unsigned failures;  /* picks the next getaddrinfo result after a failed connect */
  uint64_t last_ns;   /* time of the last probe; 0: none yet */
  float last_us;      /* its result, NaN when it failed */
} ds__net_src;

/* Splits "host:port" or "[v6]:port" into @p host and @p port (pointers into @p buf, which it
 * modifies). Returns 0 when @p buf has neither form. */
int ds__net_split_peer(char *buf, char **host, char **port);
/* Parses @p peer; DS_ERR_INVALID_ARG for a malformed one. Resolves nothing yet. */
ds_status ds__net_src_open(ds_context *ctx, ds__net_src *n, const char *peer);
void ds__net_src_close(ds_context *ctx, ds__net_src *n);
/* Probes when @p every_ns has passed since the last probe (connect timeout @p timeout_ms;
 * gives up early once *stop is set), else keeps the last result. Returns 1 if *us is valid. */
int ds__net_src_read(ds_context *ctx, ds__net_src *n, uint64_t every_ns, int timeout_ms,
                     ds__atomic_int *stop, float *us);

#endif /* DS_CORE_TELEMETRY_SOURCES_H */
