/* The telemetry sampler's readers: CPU utilisation from /proc/stat deltas, memory use from
 * /proc/meminfo, memory pressure from PSI, GPU use through NVML (dlopen'ed, so the library
 * neither links nor needs the driver) and the TCP connect round trip to a peer. Parsers are
 * hand-written and locale-independent: the host program may have set LC_NUMERIC. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "telemetry_sources.h"

/* ---------------------------------------------------------------- small parsing helpers */

/* Reads up to cap-1 bytes of a (proc) file and NUL-terminates them; -1 when unreadable. */
static ssize_t ds__read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t len = 0;
  while (len + 1 < cap) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { /* e.g. PSI compiled in but switched off: EOPNOTSUPP */
      close(fd);
      return -1;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

static int ds__is_digit(char c) { return c >= '0' && c <= '9'; }

static const char *ds__skip_spaces(const char *p) {
  while (*p == ' ' || *p == '\t') p++;
  return p;
}

/* Unsigned decimal at *p (after blanks); advances *p. Returns 0 when there is no digit. */
static int ds__parse_u64(const char **p, uint64_t *out) {
  const char *q = ds__skip_spaces(*p);
  if (!ds__is_digit(*q)) return 0;
  uint64_t v = 0;
  while (ds__is_digit(*q)) v = v * 10u + (uint64_t)(*q++ - '0');
  *p = q;
  *out = v;
  return 1;
}

/* "12.34" without strtod, whose decimal point follows the locale. */
static int ds__parse_decimal(const char *p, double *out) {
  double v = 0.0, scale = 1.0;
  int digits = 0;
  for (; ds__is_digit(*p); p++, digits++) v = v * 10.0 + (*p - '0');
  if (*p == '.')
    for (p++; ds__is_digit(*p); p++, digits++) v += (*p - '0') * (scale /= 10.0);
  *out = v;
  return digits > 0;
}

/* The line of @p buf that starts with @p key, positioned just after the key; NULL if none. */
static const char *ds__find_line(const char *buf, const char *key) {
  size_t n = strlen(key);
  for (const char *line = buf;; line++) {
    if (strncmp(line, key, n) == 0) return line + n;
    if (!(line = strchr(line, '\n'))) return NULL;
  }
}

static float ds__clamp01(double v) { return (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v); }

/* ---------------------------------------------------------------- CPU: /proc/stat */

/* Longest cpu line: "cpu" + index + 10 counters of up to 20 digits, with room to spare. */
#define DS__STAT_LINE_MAX 256

/* Utilisation of one slot since its baseline, or NaN. Counters that did not move keep the
 * baseline (the next reading then spans a longer interval); counters that went backwards
 * (a reset, a hot-plugged CPU) restart it. Busy may outgrow total when iowait goes backwards,
 * which the kernel allows, hence the clamp. */
static float ds__cpu_delta(ds__cpu_times *prev, uint64_t busy, uint64_t total) {
  if (prev->seen && total == prev->total) return NAN;
  float u = NAN;
  if (prev->seen && total > prev->total && busy >= prev->busy)
    u = ds__clamp01((double)(busy - prev->busy) / (double)(total - prev->total));
  prev->busy = busy;
  prev->total = total;
  prev->seen = 1;
  return u;
}

/* One "cpu..." line after "cpu": slot 0 for the machine, 1 + N for cpuN; -1 if malformed. */
static long ds__parse_cpu_line(const char *p, uint64_t *busy, uint64_t *total) {
  long slot = 0;
  if (ds__is_digit(*p)) {
    uint64_t idx;
    if (!ds__parse_u64(&p, &idx) || idx > 1000000) return -1;
    slot = 1 + (long)idx;
  }
  /* user nice system idle iowait irq softirq steal: guest time is already in user and nice. */
  uint64_t f[8] = {0};
  int n = 0;
  while (n < 8 && ds__parse_u64(&p, &f[n])) n++;
  if (n < 4) return -1;
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) sum += f[i];
  uint64_t idle = f[3] + f[4];
  *total = sum;
  *busy = sum - idle;
  return slot;
}

ds_status ds__cpu_src_open(ds_context *ctx, ds__cpu_src *s, const char *path, uint32_t ncpu) {
  memset(s, 0, sizeof *s);
  s->path = path;
  s->ncpu = ncpu;
  s->bufsize = ((size_t)ncpu + 2) * DS__STAT_LINE_MAX;
  s->prev = ds__calloc(ctx, (size_t)ncpu + 1, sizeof *s->prev);
  s->buf = ds__alloc(ctx, s->bufsize);
  if (!s->prev || !s->buf)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "telemetry", "cannot allocate the CPU reader");
  /* No baseline here: the first ds__cpu_src_read() takes it and reports NaN, so the sample taken
   * at context creation has no CPU figure however much time passed since this open (a 10 ms
   * tick could pass on a loaded machine and give a figure over a few ms, against the header). */
  return DS_OK;
}

void ds__cpu_src_close(ds_context *ctx, ds__cpu_src *s) {
  ds__free(ctx, s->prev);
  ds__free(ctx, s->buf);
  s->prev = NULL;
  s->buf = NULL;
}

int ds__cpu_src_read(ds__cpu_src *s, float *machine, float *cores) {
  *machine = NAN;
  if (cores)
    for (uint32_t i = 0; i < s->ncpu; i++) cores[i] = NAN;
  if (ds__read_file(s->path, s->buf, s->bufsize) < 0) return 0;
  /* The cpu lines come first; stop at the first other line or at a line cut by the buffer. */
  for (const char *line = s->buf; strncmp(line, "cpu", 3) == 0;) {
    const char *eol = strchr(line, '\n');
    if (!eol) break;
    uint64_t busy, total;
    long slot = ds__parse_cpu_line(line + 3, &busy, &total);
    if (slot >= 0 && slot <= (long)s->ncpu) {
      float u = ds__cpu_delta(&s->prev[slot], busy, total);
      if (slot == 0)
        *machine = u;
      else if (cores)
        cores[slot - 1] = u;
    }
    line = eol + 1;
  }
  return !isnan(*machine);
}

/* ---------------------------------------------------------------- memory: meminfo, PSI */

int ds__mem_read(const char *path, float *used) {
  char buf[4096]; /* MemTotal and MemAvailable are the first lines */
  uint64_t total, avail;
  *used = NAN;
  if (ds__read_file(path, buf, sizeof buf) < 0) return 0;
  const char *t = ds__find_line(buf, "MemTotal:"), *a = ds__find_line(buf, "MemAvailable:");
  if (!t || !a || !ds__parse_u64(&t, &total) || !ds__parse_u64(&a, &avail) || total == 0)
    return 0;
  *used = ds__clamp01(1.0 - (double)avail / (double)total);
  return 1;
}

int ds__psi_read(const char *path, float *some_avg10) {
  char buf[512];
  double v;
  *some_avg10 = NAN;
  if (ds__read_file(path, buf, sizeof buf) < 0) return 0;
  const char *p = ds__find_line(buf, "some ");
  if (!p) return 0;
  p = ds__skip_spaces(p);
  if (strncmp(p, "avg10=", 6) != 0 || !ds__parse_decimal(p + 6, &v)) return 0;
  *some_avg10 = ds__clamp01(v / 100.0);
  return 1;
}

/* ---------------------------------------------------------------- GPU: NVML via dlopen */

/* The few NVML types used, declared here so nvml.h is not needed to build. */
typedef int ds__nvml_ret; /* nvmlReturn_t; 0 is NVML_SUCCESS */
typedef struct ds__nvml_device_st *ds__nvml_device;
typedef struct { unsigned int gpu, memory; } ds__nvml_utilization;
typedef struct { unsigned long long total, free, used; } ds__nvml_memory;

typedef struct ds__gpu_dev {
  ds__nvml_device handle; /* fetched once */
  int ok;                 /* answered at the last read */
  double util_pct, used_bytes, total_bytes;
} ds__gpu_dev;

struct ds__gpu_src {
  void *lib;
  ds__nvml_ret (*shutdown)(void);
  ds__nvml_ret (*utilization)(ds__nvml_device, ds__nvml_utilization *);
  ds__nvml_ret (*memory)(ds__nvml_device, ds__nvml_memory *);
  unsigned ndev;
  ds__gpu_dev dev[];
};

/* dlsym returns an object pointer; POSIX guarantees it converts to a function pointer. */
static int ds__sym(void *lib, const char *name, void *fnptr, size_t size) {
  void *p = dlsym(lib, name);
  if (p) memcpy(fnptr, &p, size);
  return p != NULL;
}
#define DS__SYM(lib, name, fp) ds__sym((lib), (name), &(fp), sizeof(fp))

typedef struct ds__nvml_api {
  ds__nvml_ret (*init)(void);
  ds__nvml_ret (*count)(unsigned int *);
  ds__nvml_ret (*handle)(unsigned int, ds__nvml_device *);
  ds__nvml_ret (*shutdown)(void);
  ds__nvml_ret (*utilization)(ds__nvml_device, ds__nvml_utilization *);
  ds__nvml_ret (*memory)(ds__nvml_device, ds__nvml_memory *);
} ds__nvml_api;

static int ds__nvml_bind(void *lib, ds__nvml_api *a) {
  return DS__SYM(lib, "nvmlInit_v2", a->init) && DS__SYM(lib, "nvmlDeviceGetCount_v2", a->count) &&
         DS__SYM(lib, "nvmlDeviceGetHandleByIndex_v2", a->handle) &&
         DS__SYM(lib, "nvmlShutdown", a->shutdown) &&
         DS__SYM(lib, "nvmlDeviceGetUtilizationRates", a->utilization) &&
         DS__SYM(lib, "nvmlDeviceGetMemoryInfo", a->memory);
}

/* With NVML initialised: the source with every device handle, or NULL. */
static ds__gpu_src *ds__gpu_src_devices(ds_context *ctx, void *lib, const ds__nvml_api *a) {
  unsigned int n = 0;
  if (a->count(&n) != 0 || n == 0 || n > 4096) return NULL;
  ds__gpu_src *g = ds__calloc(ctx, 1, sizeof *g + n * sizeof g->dev[0]);
  if (!g) return NULL;
  for (unsigned int i = 0; i < n; i++)
    if (a->handle(i, &g->dev[g->ndev].handle) == 0) g->ndev++;
  if (g->ndev == 0) {
    ds__free(ctx, g);
    return NULL;
  }
  g->lib = lib;
  g->shutdown = a->shutdown;
  g->utilization = a->utilization;
  g->memory = a->memory;
  return g;
}

ds__gpu_src *ds__gpu_src_open(ds_context *ctx) {
  void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    ds__log(ctx, DS_LOG_DEBUG, "telemetry", "no GPU telemetry: libnvidia-ml.so.1 not loadable");
    return NULL;
  }
  ds__nvml_api a;
  ds__gpu_src *g = NULL;
  if (!ds__nvml_bind(lib, &a)) {
    ds__log(ctx, DS_LOG_DEBUG, "telemetry", "no GPU telemetry: NVML lacks a needed function");
  } else if (a.init() != 0) {
    ds__log(ctx, DS_LOG_DEBUG, "telemetry", "no GPU telemetry: nvmlInit_v2 failed");
  } else if (!(g = ds__gpu_src_devices(ctx, lib, &a))) {
    ds__log(ctx, DS_LOG_DEBUG, "telemetry", "no GPU telemetry: NVML reports no usable device");
    a.shutdown();
  }
  if (!g) dlclose(lib);
  return g;
}

void ds__gpu_src_close(ds_context *ctx, ds__gpu_src *g) {
  if (!g) return;
  g->shutdown();
  dlclose(g->lib);
  ds__free(ctx, g);
}

int ds__gpu_src_read(ds__gpu_src *g, float *util, float *mem_used) {
  *util = *mem_used = NAN;
  if (!g) return 0;
  double util_sum = 0.0, used = 0.0, total = 0.0;
  unsigned answered = 0;
  for (unsigned i = 0; i < g->ndev; i++) {
    ds__nvml_utilization u;
    ds__nvml_memory m;
    ds__gpu_dev *d = &g->dev[i];
    d->ok = g->utilization(d->handle, &u) == 0 && g->memory(d->handle, &m) == 0 &&
            u.gpu <= 100 && m.used <= m.total;
    if (!d->ok) continue;
    d->util_pct = u.gpu;
    d->used_bytes = (double)m.used;
    d->total_bytes = (double)m.total;
    util_sum += u.gpu / 100.0;
    used += (double)m.used;
    total += (double)m.total;
    answered++;
  }
  if (answered == 0 || total <= 0.0) return 0;
  *util = ds__clamp01(util_sum / answered);
  *mem_used = ds__clamp01(used / total);
  return 1;
}

unsigned ds__gpu_src_count(const ds__gpu_src *g) { return g ? g->ndev : 0; }

int ds__gpu_src_device(const ds__gpu_src *g, unsigned i, double *util_pct, double *used_bytes,
                       double *total_bytes) {
  if (!g || i >= g->ndev || !g->dev[i].ok) return 0;
  *util_pct = g->dev[i].util_pct;
  *used_bytes = g->dev[i].used_bytes;
  *total_bytes = g->dev[i].total_bytes;
  return 1;
}

/* ---------------------------------------------------------------- network: connect probe */

int ds__net_split_peer(char *buf, char **host, char **port) {
  char *colon;
  if (buf[0] == '[') {
    char *end = strchr(buf, ']');
    if (!end || end[1] != ':') return 0;
    *end = '\0';
    *host = buf + 1;
    colon = end + 1;
  } else {
    colon = strrchr(buf, ':');
    if (!colon || memchr(buf, ':', (size_t)(colon - buf))) return 0; /* bare IPv6: ambiguous */
    *colon = '\0';
    *host = buf;
  }
  *port = colon + 1;
  return **host != '\0' && **port != '\0';
}

ds_status ds__net_src_open(ds_context *ctx, ds__net_src *n, const char *peer) {
  memset(n, 0, sizeof *n);
  n->last_us = NAN;
  char *buf = ds__strdup(ctx, peer);
  if (!buf) return ds__error(ctx, DS_ERR_NO_MEMORY, "telemetry", "cannot copy the peer name");
  char *host, *port;
  if (!ds__net_split_peer(buf, &host, &port)) {
    ds__free(ctx, buf);
    return ds__error(ctx, DS_ERR_INVALID_ARG, "telemetry",
                     "telemetry_peer \"%s\" is not host:port or [ipv6]:port", peer);
  }
  /* host lies at buf or buf + 1; keep buf itself to free it. */
  n->host = buf;
  memmove(buf, host, strlen(host) + 1);
  n->port = port;
  return DS_OK;
}

void ds__net_src_close(ds_context *ctx, ds__net_src *n) {
  ds__free(ctx, n->host);
  n->host = n->port = NULL;
}

/* Caches one address of the peer; after failures it moves on to the next result, so a name
 * with both ::1 and 127.0.0.1 still works when the peer listens on only one. */
static int ds__net_resolve(ds_context *ctx, ds__net_src *n) {
  struct addrinfo hints, *res;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(n->host, n->port, &hints, &res);
  if (rc != 0) {
    ds__log(ctx, DS_LOG_DEBUG, "telemetry", "cannot resolve %s port %s: %s", n->host, n->port,
            gai_strerror(rc));
    return 0;
  }
  unsigned count = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) count++;
  struct addrinfo *pick = res;
  for (unsigned k = n->failures % count; k > 0; k--) pick = pick->ai_next;
  if (pick->ai_addrlen <= sizeof n->addr) {
    memcpy(&n->addr, pick->ai_addr, pick->ai_addrlen);
    n->addrlen = pick->ai_addrlen;
  }
  freeaddrinfo(res);
  return n->addrlen != 0;
}

/* Waits for a non-blocking connect; polls in short slices so that *stop ends it quickly. */
static int ds__net_wait(int fd, int timeout_ms, ds__atomic_int *stop) {
  uint64_t deadline = ds__now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    if (stop && ds__load_relaxed(stop)) return ECANCELED;
    uint64_t now = ds__now_ns();
    if (now >= deadline) return ETIMEDOUT;
    uint64_t left_ms = (deadline - now + 999999u) / 1000000u;
    struct pollfd p = {fd, POLLOUT, 0};
    int r = poll(&p, 1, left_ms < 20 ? (int)left_ms : 20);
    if (r < 0 && errno != EINTR) return errno;
    if (r > 0) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
      return err;
    }
  }
}

/* One connect to the cached address: 0 and *us, or an errno value. */
static int ds__net_connect(ds__net_src *n, int timeout_ms, ds__atomic_int *stop, float *us) {
  int fd = socket(n->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  uint64_t t0 = ds__now_ns();
  int err = 0;
  if (connect(fd, (const struct sockaddr *)&n->addr, n->addrlen) != 0)
    err = errno == EINPROGRESS ? ds__net_wait(fd, timeout_ms, stop) : errno;
  uint64_t t1 = ds__now_ns();
  close(fd);
  if (!err) *us = (float)((double)(t1 - t0) / 1000.0);
  return err;
}

int ds__net_src_read(ds_context *ctx, ds__net_src *n, uint64_t every_ns, int timeout_ms,
                     ds__atomic_int *stop, float *us) {
  uint64_t now = ds__now_ns();
  if (n->last_ns == 0 || now - n->last_ns >= every_ns) {
    n->last_ns = now;
    float v = NAN;
    int err = 0;
    if (n->addrlen || ds__net_resolve(ctx, n)) err = ds__net_connect(n, timeout_ms, stop, &v);
    if (err) {
      char msg[128];
      ds__log(ctx, DS_LOG_DEBUG, "telemetry", "connect to %s port %s: %s", n->host, n->port,
              strerror_r(err, msg, sizeof msg));
    }
    if (err || isnan(v)) {
      n->failures++;
      n->addrlen = 0; /* resolve again next time: the peer may have moved */
    }
    n->last_us = v;
  }
  *us = n->last_us;
  return !isnan(*us);
}
