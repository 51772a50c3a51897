/* deepseek-monitor's internal interface: finding the processes that use libdeepseek (their
 * stats files), rendering a snapshot as JSON or Prometheus text, the /metrics server, the
 * terminal view and the trace analysis. Built on the public API only. */
#ifndef DS_TOOLS_MONITOR_H
#define DS_TOOLS_MONITOR_H

#include <stddef.h>
#include <stdio.h>

#include <deepseek.h>

#define DSM_PATH_MAX 4096

/* One stats file of a live process. */
typedef struct dsm_proc {
  long pid;
  unsigned long long serial;
  char path[DSM_PATH_MAX];
} dsm_proc;

/* What the user asked to attach to: a pid, or 0 for "the only one". */
typedef struct dsm_target {
  long pid;
  dsm_proc proc; /* filled by dsm_attach() */
} dsm_target;

/* Lists the stats files of live processes in @p dir into @p out (at most @p cap, sorted by pid
 * then serial); files of dead pids, stale files of reused pids and names that are not
 * "<pid>-<serial>.stats" are skipped.
 * Returns the number found (possibly more than cap), or -1 when the directory cannot be read
 * (errno set; ENOENT just means no process has created it yet). */
int dsm_list(dsm_proc *out, int cap, const char *dir);
/* 1 while @p pid exists (also when it belongs to someone else), else 0. */
int dsm_pid_alive(long pid);
/* 1 when the stats file at @p path was left by an earlier process whose pid @p pid now names
 * another one: the process (from /proc/PID/stat and /proc/stat's btime) started more than a
 * second after the file was created (its header's creation time). 0 when it cannot tell. */
int dsm_stale(const char *path, long pid);
/* Files dsm_list() skipped as stale since the program started. */
extern int dsm_stale_skipped;
/* Picks the target's file; prints why not to stderr and returns 0 when there is none or the
 * choice is ambiguous (then it lists the candidates). */
int dsm_attach(dsm_target *t, const char *dir);
/* Prints the live processes, one a line; returns how many. */
int dsm_print_list(FILE *f, const char *dir);

/* Reads the target's current snapshot. Returns DS_OK, or DS_ERR_NOT_FOUND once the process has
 * exited (its file removed or its pid gone), or another status for an unreadable file. */
ds_status dsm_read(ds_stats **out, const dsm_target *t);

/* Rendering (monitor_render.c). */
/* Copies @p s into @p buf with every byte outside printable ASCII as '?': labels and names come
 * from another process's file and must not drive the terminal. */
const char *dsm_printable(char *buf, size_t cap, const char *s);
void dsm_json_string(FILE *f, const char *s);
void dsm_print_json(FILE *f, const ds_stats *s, const dsm_target *t);
/* Prometheus text exposition; @p s NULL means the process has exited (deepseek_up 0). */
void dsm_print_prometheus(FILE *f, const ds_stats *s, const dsm_target *t);
/* "deepseek_" + name with every byte outside [A-Za-z0-9_] replaced by '_'; "_total" appended
 * to counters. */
void dsm_prom_name(char *buf, size_t cap, const char *stat_name, int kind);

/* The /metrics server (monitor_http.c); returns the exit status. */
int dsm_serve(const char *addr_port, dsm_target *t);
/* The terminal view (monitor_tui.c); returns the exit status. */
int dsm_tui(dsm_target *t);

/* Installs SIGINT/SIGTERM handlers that set the flag dsm_stop. */
extern volatile int dsm_stop;
void dsm_handle_signals(void);

#endif /* DS_TOOLS_MONITOR_H */
