/* deepseek-monitor: finding the processes that use libdeepseek through their stats files
 * ("<pid>-<serial>.stats" in the directory ds_stats_dir() names), choosing one, and reading
 * it while noticing when it has exited. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "monitor.h"

volatile int dsm_stop;

static void dsm_on_signal(int sig) {
  (void)sig;
  dsm_stop = 1;
}

void dsm_handle_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = dsm_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN); /* a scraper that hangs up must not kill the server */
}

int dsm_pid_alive(long pid) {
  if (pid <= 0) return 0;
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int dsm_stale_skipped;

/* When @p pid started, in seconds since the epoch: /proc/stat's btime plus the process's
 * starttime (field 22 of /proc/PID/stat, clock ticks after boot). 0 when unknown. */
static double dsm_start_time(long pid) {
  char buf[1024], path[64];
  double btime = 0;
  FILE *f = fopen("/proc/stat", "r");
  while (f && fgets(buf, sizeof buf, f))
    if (sscanf(buf, "btime %lf", &btime) == 1) break;
  if (f) fclose(f);
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  unsigned long long ticks = 0;
  for (int field = 2; p && field < 22; field++) p = strchr(p + 1, ' ');
  if (!p || btime <= 0 || sscanf(p + 1, "%llu", &ticks) != 1) return 0;
  long hz = sysconf(_SC_CLK_TCK);
  return hz > 0 ? btime + (double)ticks / (double)hz : 0;
}

int dsm_stale(const char *path, long pid) {
  unsigned char h[128];
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ssize_t got = fd >= 0 ? pread(fd, h, sizeof h, 0) : -1;
  if (fd >= 0) close(fd);
  if (got != (ssize_t)sizeof h || memcmp(h, "DSSTATS", 8) != 0) return 0;
  int64_t created_ns;
  memcpy(&created_ns, h + 48, sizeof created_ns); /* the header's creation time */
  double started = dsm_start_time(pid);
  /* btime has whole seconds and the file comes after its process's start: a second's slack */
  return started > 0 && created_ns > 0 && started > (double)created_ns / 1e9 + 1.0;
}

/* "<pid>-<serial>.stats" with both numbers in decimal; 0 for any other name. */
static int dsm_parse_name(const char *name, long *pid, unsigned long long *serial) {
  char *end;
  errno = 0;
  long p = strtol(name, &end, 10);
  if (end == name || *end != '-' || p <= 0 || errno) return 0;
  const char *s = end + 1;
  unsigned long long n = strtoull(s, &end, 10);
  if (end == s || errno || strcmp(end, ".stats") != 0) return 0;
  *pid = p;
  *serial = n;
  return 1;
}

/* Only regular files of our own user, of processes of our own user: in a shared DS_STATS_DIR
 * another user could otherwise plant a file that the monitor would show (and serve) as one of
 * ours. Without /proc, the file's owner decides. */
static int dsm_same_user(const char *path, long pid) {
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) return 0;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/%ld", pid);
  return stat(proc, &st) != 0 || st.st_uid == geteuid();
}

static int dsm_proc_cmp(const void *a, const void *b) {
  const dsm_proc *x = a, *y = b;
  if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
  return (x->serial > y->serial) - (x->serial < y->serial);
}

int dsm_list(dsm_proc *out, int cap, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    long pid;
    unsigned long long serial;
    if (!dsm_parse_name(e->d_name, &pid, &serial) || !dsm_pid_alive(pid)) continue;
    char path[sizeof out[0].path];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (!dsm_same_user(path, pid)) continue;
    if (dsm_stale(path, pid)) {
      dsm_stale_skipped++;
      continue;
    }
    if (n < cap) {
      out[n].pid = pid;
      out[n].serial = serial;
      memcpy(out[n].path, path, sizeof path);
    }
    n++;
  }
  closedir(d);
  qsort(out, (size_t)(n < cap ? n : cap), sizeof *out, dsm_proc_cmp);
  return n;
}

#define DSM_LIST_MAX 256

int dsm_print_list(FILE *f, const char *dir) {
  static dsm_proc procs[DSM_LIST_MAX];
  int n = dsm_list(procs, DSM_LIST_MAX, dir);
  if (n <= 0) return n < 0 ? 0 : n;
  fprintf(f, "%8s %6s  %-24s %10s  %s\n", "PID", "CTX", "LABEL", "UPTIME_S", "FILE");
  for (int i = 0; i < n && i < DSM_LIST_MAX; i++) {
    ds_stats *s = NULL;
    double up = 0;
    const char *label = "?";
    if (ds_stats_file_read(&s, procs[i].path) == DS_OK) {
      label = ds_stats_label(s);
      if (ds_stats_find(&up, s, "core.uptime_s") != DS_OK) up = 0;
    }
    char safe[64];
    fprintf(f, "%8ld %6llu  %-24.24s %10.1f  %s\n", procs[i].pid, procs[i].serial,
            dsm_printable(safe, sizeof safe, label), up, procs[i].path);
    ds_stats_free(s);
  }
  return n;
}

int dsm_attach(dsm_target *t, const char *dir) {
  static dsm_proc procs[DSM_LIST_MAX];
  int n = dsm_list(procs, DSM_LIST_MAX, dir);
  if (n < 0 && errno != ENOENT) {
    fprintf(stderr, "deepseek-monitor: cannot read %s: %s\n", dir, strerror(errno));
    return 0;
  }
  int first = -1, matches = 0;
  for (int i = 0; i < n && i < DSM_LIST_MAX; i++)
    if (t->pid == 0 || procs[i].pid == t->pid) {
      if (first < 0) first = i;
      if (t->pid == 0 && procs[i].pid != procs[first].pid) matches++;
    }
  if (first < 0) {
    if (t->pid)
      fprintf(stderr, "deepseek-monitor: no live process %ld with a stats file in %s%s\n",
              t->pid, dir,
              dsm_stale_skipped ? " (skipped a stale file left by an earlier process with a "
                                  "reused pid)" : "");
    else
      fprintf(stderr, "deepseek-monitor: no process using libdeepseek found in %s\n", dir);
    return 0;
  }
  if (matches) {
    fprintf(stderr,
            "deepseek-monitor: several processes use libdeepseek; choose one with -p PID:\n");
    dsm_print_list(stderr, dir);
    return 0;
  }
  t->proc = procs[first]; /* a process with several contexts: its first one */
  t->pid = procs[first].pid;
  return 1;
}

ds_status dsm_read(ds_stats **out, const dsm_target *t) {
  *out = NULL;
  if (!dsm_pid_alive(t->proc.pid) || access(t->proc.path, F_OK) != 0 ||
      dsm_stale(t->proc.path, t->proc.pid))
    return DS_ERR_NOT_FOUND;
  ds_status st = ds_stats_file_read(out, t->proc.path);
  /* The file may vanish between the checks and the read when the process exits. */
  if (st == DS_ERR_IO && access(t->proc.path, F_OK) != 0) return DS_ERR_NOT_FOUND;
  return st;
}
