/* deepseek-tune: one run of the workload. The command gets the setting as DS_<NAME> environment
 * variables (which the library reads at context creation), runs in its own process group with
 * a time limit, and its stdout is scanned line by line for the metric; the last such line
 * wins. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tune.h"

#define DTU_LINE_MAX 4096

static double dtu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "metric 1.5", "metric=1.5", "metric: 1.5" (leading spaces allowed); 1 when it matches. */
static int dtu_metric_line(const char *line, const char *metric, double *out) {
  while (isspace((unsigned char)*line)) line++;
  size_t n = strlen(metric);
  if (strncmp(line, metric, n) != 0) return 0;
  const char *p = line + n;
  if (*p != '=' && *p != ':' && !isspace((unsigned char)*p)) return 0;
  while (*p == '=' || *p == ':' || isspace((unsigned char)*p)) p++;
  char *end;
  double v = strtod(p, &end);
  if (end == p || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static void dtu_child(char *const *argv, const dtu_space *s, const int *idx, int out_fd) {
  setpgid(0, 0);
  dup2(out_fd, STDOUT_FILENO);
  for (int i = 0; i < s->n; i++) {
    char var[96], val[32];
    snprintf(var, sizeof var, "DS_%s", s->p[i].name);
    for (char *c = var; *c; c++) *c = (char)toupper((unsigned char)*c);
    snprintf(val, sizeof val, "%lld", (long long)s->p[i].values[idx[i]]);
    setenv(var, val, 1);
  }
  execvp(argv[0], argv);
  fprintf(stderr, "deepseek-tune: cannot run %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

static void dtu_metric_lines(const char *line, const char *const *metrics, int n, int *found,
                             double *values) {
  for (int k = 0; k < n; k++) found[k] |= dtu_metric_line(line, metrics[k], &values[k]);
}

/* Reads the child's stdout until end of file or the deadline; returns 1 on a timeout. */
static int dtu_read_output(int fd, const char *const *metrics, int n, double deadline,
                           int *found, double *values) {
  char line[DTU_LINE_MAX], buf[4096];
  size_t len = 0;
  for (;;) {
    double left = deadline - dtu_now();
    if (left <= 0) return 1;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] != '\n' && len + 1 < sizeof line) {
        line[len++] = buf[i];
        continue;
      }
      if (buf[i] != '\n') continue; /* an over-long line: the rest is dropped */
      line[len] = '\0';
      dtu_metric_lines(line, metrics, n, found, values);
      len = 0;
    }
  }
  line[len] = '\0';
  dtu_metric_lines(line, metrics, n, found, values);
  return 0;
}

int dtu_run(double *values, char *why, size_t why_cap, char *const *argv, const dtu_space *s,
            const int *idx, const char *const *metrics, int nmetrics, double timeout_s) {
  int fds[2];
  if (pipe(fds) != 0) {
    snprintf(why, why_cap, "pipe: %s", strerror(errno));
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dtu_child(argv, s, idx, fds[1]);
  }
  close(fds[1]);
  if (pid > 0) setpgid(pid, pid); /* also here: whichever side runs first */
  if (pid < 0) {
    close(fds[0]);
    snprintf(why, why_cap, "fork: %s", strerror(errno));
    return -1;
  }
  int found[DST_MAX_METRICS] = {0}, status = 0, missing = -1;
  int timed_out =
      dtu_read_output(fds[0], metrics, nmetrics, dtu_now() + timeout_s, found, values);
  for (int k = nmetrics - 1; k >= 0; k--)
    if (!found[k]) missing = k;
  close(fds[0]);
  if (timed_out) kill(-pid, SIGKILL); /* the process group this run started */
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) snprintf(why, why_cap, "timed out after %.0f s", timeout_s);
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    snprintf(why, why_cap, "exited with status %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  else if (missing >= 0)
    snprintf(why, why_cap, "no line \"%s VALUE\" in its output", metrics[missing]);
  else
    return 0;
  return -1;
}
