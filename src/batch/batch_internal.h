/* Internal structures of the dynamic batcher (src/batch): the batcher, its requests, a
 * running batch, and the helpers shared by its files. */
#ifndef DS_BATCH_INTERNAL_H
#define DS_BATCH_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "internal.h"

/* Request states. Leaving QUEUED happens only under the batcher's mutex. */
enum { DS__BREQ_QUEUED = 0, DS__BREQ_RUNNING = 1, DS__BREQ_COMPLETING = 2, DS__BREQ_DONE = 3 };

#define DS__BHIST_BUCKETS 512 /* log-spaced latency histogram: 8 buckets per octave of ns */

struct ds_batch_request {
  ds_context *ctx;
  struct ds_batcher *b; /* the batcher must outlive the request's pending life */
  ds__atomic_int state;
  ds__atomic_int refs; /* the handle (if any) + the batcher's until completion */
  ds_status status;
  pthread_mutex_t mu; /* waiters sleep on cv until 'done' */
  pthread_cond_t cv;
  int done;
  int prio;
  int bucket;
  ds_tensor input, output;
  uint64_t t_submit, deadline; /* ns, CLOCK_MONOTONIC; deadline 0: none */
  ds_batch_done_fn on_done;
  void *user;
  struct ds_batch_request *prev, *next; /* in a queue of the batcher */
};

struct ds__bqueue {
  struct ds_batch_request *head, *tail;
  int n;
};

/* One batch being run: the requests taken from a queue and reusable buffers. */
struct ds__brun {
  struct ds_batcher *b;
  int prio;
  int n;
  struct ds_batch_request **reqs; /* max_batch_size */
  int64_t *shapes;                /* max_batch_size x ndim */
  void *in_buf, *out_buf;
  size_t in_cap, out_cap;
  struct ds__brun *next_free;
};

struct ds__bhist {
  ds__atomic_u64 n[DS__BHIST_BUCKETS];
};

struct ds_batcher {
  ds_context *ctx;
  ds_batcher_options o; /* list pointers below point at the copies */
  int32_t preferred[DS_BATCH_MAX_SIZES];
  int32_t allowed[DS_BATCH_MAX_SIZES];
  int64_t bounds[DS_BATCH_MAX_SIZES];
  int var_dim; /* first varying input dim, or -1 */
  int nqueues; /* length buckets */
  size_t in_esize, out_esize;
  char name[48];

  pthread_mutex_t mu;
  pthread_cond_t timer_cv; /* the timer thread sleeps here */
  pthread_cond_t space_cv; /* DELAY submitters wait for room */
  pthread_cond_t idle_cv;  /* shutdown waits for inflight == 0 */
  pthread_t timer;
  int timer_started;
  struct ds__bqueue *q;  /* nqueues x 2: [bucket*2 + (prio == URGENT ? 0 : 1)] */
  int nqueued;
  int inflight;
  int space_waiters;
  int closed;  /* submits refused */
  int drain;   /* dispatch ignoring the delay */
  int stopping; /* timer thread exits */
  uint64_t timer_target; /* when the timer thread wakes next; UINT64_MAX: not before a signal */
  uint64_t min_deadline; /* lower bound of the queued requests' deadlines; UINT64_MAX: none */
  struct ds__brun *free_runs;

  /* metrics (metrics.c) */
  ds__atomic_u64 submitted, completed, failed, rejected, invalid, timed_out, cancelled;
  ds__atomic_u64 batches, batched_reqs, real_elems, padded_elems;
  ds__atomic_u64 *size_hist; /* max_batch_size + 1 */
  struct ds__bhist queue_delay, latency;
  ds__atomic_u64 last_publish_ns;
  pthread_mutex_t pub_mu; /* one publisher at a time, reading the counters under it, so a
                             slower publisher cannot overwrite fresher figures in the stats */
  int stat_ids[16];
};

/* A condition variable on CLOCK_MONOTONIC (timed waits use ds__now_ns() deadlines). */
void ds__bcond_init(pthread_cond_t *cv);

/* request.c */
void ds__breq_complete(struct ds_batch_request *r, ds_status st);
void ds__breq_unref(struct ds_batch_request *r);

/* dispatch.c: everything below that takes 'locked' expects b->mu held. */
void ds__bq_remove(struct ds_batcher *b, struct ds_batch_request *r);
void ds__bq_push(struct ds_batcher *b, struct ds_batch_request *r);
/* Takes one ready batch (URGENT first) if a slot is free; NULL if none. */
struct ds__brun *ds__batch_take_locked(struct ds_batcher *b, uint64_t now);
/* Submits the runs (linked by next_free) as scheduler tasks; b->mu not held. */
void ds__batch_launch(struct ds_batcher *b, struct ds__brun *runs);
void *ds__batch_timer_main(void *arg);
/* Signals the timer thread if a queued request needs it before it would wake. */
void ds__batch_kick_timer_locked(struct ds_batcher *b, uint64_t now);
void ds__brun_free(struct ds_batcher *b, struct ds__brun *r);

/* gather.c */
/* Builds the padded batch input and output buffers; returns DS_ERR_NO_MEMORY on failure. */
ds_status ds__batch_gather(struct ds__brun *run, ds_tensor *in, ds_tensor *out, int rows);
void ds__batch_scatter(struct ds__brun *run, const ds_tensor *out);
int ds__batch_rows(const struct ds_batcher *b, int n);

/* metrics.c */
void ds__bhist_add(struct ds__bhist *h, uint64_t ns);
double ds__bhist_quantile_us(const struct ds__bhist *h, double q);
void ds__batch_stats_register(struct ds_batcher *b);
void ds__batch_stats_publish(struct ds_batcher *b);
void ds__batch_stats_maybe_publish(struct ds_batcher *b, uint64_t now);

#endif /* DS_BATCH_INTERNAL_H */
