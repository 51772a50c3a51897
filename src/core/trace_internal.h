/* Internal to the trace recorder: the event and buffer layout shared by trace.c (recording,
 * start/stop) and trace_json.c (the Chrome Trace Event writer). */
#ifndef DS_CORE_TRACE_INTERNAL_H
#define DS_CORE_TRACE_INTERNAL_H

#include <stdio.h>

#include "internal.h"

#define DS__TRACE_CHUNK_EVENTS 4096u
#define DS__TRACE_CAT_MAX 16  /* 15 bytes + NUL */
#define DS__TRACE_NAME_MAX 48 /* 47 bytes + NUL */

typedef struct ds__trace_event {
  uint64_t ts_ns; /* CLOCK_MONOTONIC */
  uint64_t arg;   /* 'X': duration in ns; 'C': the value's bits */
  char phase;     /* 'B', 'E', 'X', 'i' or 'C' */
  char cat[DS__TRACE_CAT_MAX];
  char name[DS__TRACE_NAME_MAX];
} ds__trace_event;

typedef struct ds__trace_chunk {
  struct ds__trace_chunk *next;
  uint32_t used, cap;
  ds__trace_event ev[];
} ds__trace_chunk;

/* One thread's events. Fields other than busy and next are touched only by the owning thread
 * while busy is raised, or by ds_trace_stop()/destroy once every busy flag is down. */
struct ds__trace_buf {
  ds__atomic_int busy;
  ds__trace_chunk *head, *tail;
  uint64_t count;         /* events kept in this trace */
  uint32_t depth;         /* kept 'B' events still open */
  uint32_t dropped_depth; /* dropped 'B' events still open: their 'E' is dropped too */
  long tid;
  char thread_name[16]; /* pthread_getname_np() at the thread's first event of the trace */
  struct ds__trace_buf *next; /* in ds__trace.bufs; set before the buffer is published */
};

struct ds__trace {
  ds__atomic_int recording;
  int asymmetric; /* 1 when membarrier() lets recorders skip their hardware fence */
  ds__atomic_u64 dropped; /* since the current (or last) ds_trace_start() */
  ds__atomic_ptr bufs;    /* struct ds__trace_buf list; only grows until context destroy */
  pthread_mutex_t mu;     /* serialises start and stop; guards the fields below */
  FILE *out;
  char *path;
  uint64_t max_events; /* per thread, fixed at start */
};

/* Writes every buffer as Chrome Trace Event JSON to f and closes f. Spans still open are closed
 * at end_ns. Called by stop with no recorder inside any buffer. */
ds_status ds__trace_write_json(ds_context *ctx, FILE *f, const char *path,
                               struct ds__trace_buf *bufs, uint64_t end_ns);

#endif /* DS_CORE_TRACE_INTERNAL_H */
