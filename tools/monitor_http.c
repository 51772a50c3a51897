/* deepseek-monitor --prometheus: a single-threaded HTTP/1.0 server driven by poll(). It serves
 * GET /metrics (the attached process's stats, read afresh per request), 404 for any other path,
 * 405 for other methods, and closes every connection after one response. Requests are bounded
 * (DSM_REQ_MAX bytes, DSM_CLIENT_TIMEOUT_MS to arrive) so a slow or hostile client cannot hold
 * the server; at most DSM_CLIENTS connections are open at once. */
#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "monitor.h"

#define DSM_REQ_MAX 4096
#define DSM_CLIENTS 16
#define DSM_CLIENT_TIMEOUT_MS 5000

typedef struct dsm_client {
  int fd; /* -1: free slot */
  size_t len;
  long long deadline_ms;
  char buf[DSM_REQ_MAX];
} dsm_client;

static long long dsm_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "[ADDR:]PORT" into a 127.0.0.1-by-default IPv4 address; 0 on a bad string. */
static int dsm_parse_addr(struct sockaddr_in *sa, const char *s) {
  char host[64] = "127.0.0.1";
  const char *colon = strrchr(s, ':');
  const char *port = s;
  if (colon) {
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof host) return 0;
    memcpy(host, s, n);
    host[n] = '\0';
    port = colon + 1;
  }
  char *end;
  long p = strtol(port, &end, 10);
  if (*port == '\0' || *end != '\0' || p < 0 || p > 65535) return 0;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)p);
  return inet_pton(AF_INET, host, &sa->sin_addr) == 1;
}

static int dsm_listen(const char *addr_port, long pid) {
  struct sockaddr_in sa;
  if (!dsm_parse_addr(&sa, addr_port)) {
    fprintf(stderr, "deepseek-monitor: --prometheus wants [IPV4ADDR:]PORT, got '%s'\n", addr_port);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  socklen_t len = sizeof sa;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    fprintf(stderr, "deepseek-monitor: cannot listen on %s: %s\n", addr_port, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  char host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
  printf("deepseek-monitor: serving http://%s:%u/metrics for pid %ld\n", host,
         (unsigned)ntohs(sa.sin_port), pid);
  return fd;
}

/* Writes all of a response, giving up after the client's deadline. */
static void dsm_send_all(int fd, const char *p, size_t n, long long deadline_ms) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
    long long left = deadline_ms - dsm_now_ms();
    if (left <= 0) return;
    struct pollfd pfd = {fd, POLLOUT, 0};
    poll(&pfd, 1, (int)left);
  }
}

static void dsm_respond(dsm_client *c, int code, const char *reason, const char *type,
                        const char *body, size_t body_len) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   code, reason, type, body_len);
  dsm_send_all(c->fd, head, (size_t)n, c->deadline_ms);
  dsm_send_all(c->fd, body, body_len, c->deadline_ms);
}

static void dsm_metrics(dsm_client *c, dsm_target *t) {
  ds_stats *s = NULL;
  ds_status st = dsm_read(&s, t);
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  if (!f) {
    dsm_respond(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14);
    return;
  }
  if (st == DS_OK || st == DS_ERR_NOT_FOUND) dsm_print_prometheus(f, s, t);
  else fprintf(f, "# stats file unreadable: %s\n", ds_status_name(st));
  fclose(f);
  if (st == DS_OK || st == DS_ERR_NOT_FOUND)
    dsm_respond(c, 200, "OK", "text/plain; version=0.0.4", body, len);
  else
    dsm_respond(c, 503, "Service Unavailable", "text/plain", body, len);
  free(body);
  ds_stats_free(s);
}

/* A complete request head is in the buffer: answer it. */
static void dsm_handle(dsm_client *c, dsm_target *t) {
  char method[8], path[256];
  c->buf[c->len] = '\0';
  if (sscanf(c->buf, "%7s %255s", method, path) != 2) {
    dsm_respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
  } else if (strcmp(method, "GET") != 0) {
    dsm_respond(c, 405, "Method Not Allowed", "text/plain", "only GET\n", 9);
  } else if (strcmp(path, "/metrics") == 0 || strncmp(path, "/metrics?", 9) == 0) {
    dsm_metrics(c, t);
  } else {
    dsm_respond(c, 404, "Not Found", "text/plain", "not found: try /metrics\n", 24);
  }
}

/* Reads what the client still sent (bounded) before closing: closing with unread input makes
 * the kernel reset the connection, which can destroy the response in flight. */
static void dsm_client_close(dsm_client *c) {
  char scratch[4096];
  for (int i = 0; i < 16 && recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0; i++) {
  }
  close(c->fd);
  c->fd = -1;
  c->len = 0;
}

/* Reads what arrived; answers and closes once the head is complete or too large. */
static void dsm_client_read(dsm_client *c, dsm_target *t) {
  ssize_t r = recv(c->fd, c->buf + c->len, DSM_REQ_MAX - 1 - c->len, 0);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    dsm_client_close(c);
    return;
  }
  c->len += (size_t)r;
  c->buf[c->len] = '\0';
  if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n")) {
    dsm_handle(c, t);
    dsm_client_close(c);
  } else if (c->len >= DSM_REQ_MAX - 1) {
    dsm_respond(c, 431, "Request Header Fields Too Large", "text/plain", "too large\n", 10);
    dsm_client_close(c);
  }
}

static void dsm_accept(int lfd, dsm_client *clients) {
  int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  for (int i = 0; i < DSM_CLIENTS; i++)
    if (clients[i].fd < 0) {
      clients[i].fd = fd;
      clients[i].len = 0;
      clients[i].deadline_ms = dsm_now_ms() + DSM_CLIENT_TIMEOUT_MS;
      return;
    }
  close(fd); /* full: the client retries later */
}

int dsm_serve(const char *addr_port, dsm_target *t) {
  int lfd = dsm_listen(addr_port, t->proc.pid);
  if (lfd < 0) return 2;
  fflush(stdout);
  static dsm_client clients[DSM_CLIENTS];
  for (int i = 0; i < DSM_CLIENTS; i++) clients[i].fd = -1;
  struct pollfd pfd[DSM_CLIENTS + 1];
  int exited_said = 0;
  while (!dsm_stop) {
    int n = 0, map[DSM_CLIENTS];
    pfd[n++] = (struct pollfd){lfd, POLLIN, 0};
    for (int i = 0; i < DSM_CLIENTS; i++)
      if (clients[i].fd >= 0) {
        map[n - 1] = i;
        pfd[n++] = (struct pollfd){clients[i].fd, POLLIN, 0};
      }
    if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR) break;
    if (pfd[0].revents & POLLIN) dsm_accept(lfd, clients);
    for (int k = 1; k < n; k++)
      if (pfd[k].revents) dsm_client_read(&clients[map[k - 1]], t);
    long long now = dsm_now_ms();
    for (int i = 0; i < DSM_CLIENTS; i++)
      if (clients[i].fd >= 0 && now > clients[i].deadline_ms) dsm_client_close(&clients[i]);
    if (!exited_said && !dsm_pid_alive(t->proc.pid)) {
      fprintf(stderr, "deepseek-monitor: process %ld has exited; /metrics now reports "
                      "deepseek_up 0\n", t->proc.pid);
      exited_said = 1;
    }
  }
  for (int i = 0; i < DSM_CLIENTS; i++)
    if (clients[i].fd >= 0) dsm_client_close(&clients[i]);
  close(lfd);
  return 0;
}
