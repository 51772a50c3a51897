/* Dual-active worker pools (DS_PARAM_SCHED_POOLS) and their stall watchdog. Both pools serve
 * work: outside NORMAL submits alternate between their inject queues, and a worker with
 * nothing in its own pool takes from the other. The watchdog runs in the scheduler tick (the
 * ticker thread, so it runs while every worker is stuck): a pool whose workers are all inside
 * tasks and have finished none for DS_PARAM_SCHED_STALL_MS is marked stalled; its queued work
 * (inject queue, mailboxes, deques) moves to the other pool's inject queue, new outside work
 * goes to the other pool, and it is logged and counted. The first finished task (or an idle
 * worker) clears the mark. */
#include "sched_internal.h"

ds__pool *ds__sched_route(struct ds__sched *s, uint64_t id) {
  if (s->npools == 1) return &s->pools[0];
  ds__pool *p = &s->pools[id % (uint64_t)s->npools];
  ds__pool *q = &s->pools[(id + 1) % (uint64_t)s->npools];
  return ds__load_relaxed(&p->stalled) && !ds__load_relaxed(&q->stalled) ? q : p;
}

int ds__sched_pools_stalled(struct ds__sched *s) {
  int n = 0;
  for (int p = 0; p < s->npools; p++) n += ds__load_relaxed(&s->pools[p].stalled);
  return n;
}

/* Tasks finished by the pool's workers; *all_busy: every one of them is inside a task. */
static uint64_t ds__pool_progress(struct ds__sched *s, const ds__pool *p, int *all_busy) {
  uint64_t run = 0;
  *all_busy = 1;
  for (int i = p->first; i < p->first + p->count; i++) {
    run += ds__load_relaxed(&s->workers[i].run);
    if (!ds__load_relaxed(&s->workers[i].busy_since)) *all_busy = 0;
  }
  return run;
}

/* Moves everything queued on pool p to pool q's inject queue; returns the count. Stealing is
 * allowed from any thread, so the stalled workers' deques are emptied the same way. */
static uint64_t ds__pool_move(struct ds__sched *s, ds__pool *p, ds__pool *q) {
  uint64_t n = 0;
  struct ds_task *t;
  while ((t = ds__ring_pop(&p->inject))) {
    ds__ring_push(&q->inject, t);
    n++;
  }
  for (int i = p->first; i < p->first + p->count; i++) {
    ds__worker *w = &s->workers[i];
    while ((t = ds__deque_steal(&w->deque)) || (t = ds__queue_pop_head(&w->mailbox))) {
      ds__ring_push(&q->inject, t);
      n++;
    }
  }
  return n;
}

static void ds__pool_fail_over(struct ds__sched *s, int pi, uint64_t now) {
  ds__pool *p = &s->pools[pi], *q = &s->pools[(pi + 1) % s->npools];
  ds__store(&p->stalled, 1);
  uint64_t moved = ds__pool_move(s, p, q);
  ds__fetch_add_relaxed(&s->failovers, 1);
  ds__fetch_add_relaxed(&s->failover_tasks, moved);
  ds__log(s->ctx, DS_LOG_WARN, "sched",
          "pool %d (workers %d to %d) finished no task for %llu ms with every worker busy: "
          "stalled; %llu queued tasks moved to pool %d, new work goes there", pi, p->first,
          p->first + p->count - 1, (unsigned long long)((now - p->progress_ns) / 1000000u),
          (unsigned long long)moved, (pi + 1) % s->npools);
  if (moved) ds__sched_wake(s);
}

void ds__sched_watchdog(struct ds__sched *s, uint64_t now) {
  if (s->npools < 2) return;
  uint64_t limit = (uint64_t)ds__param(s->ctx, DS_PARAM_SCHED_STALL_MS) * 1000000u;
  for (int pi = 0; pi < s->npools; pi++) {
    ds__pool *p = &s->pools[pi];
    int all_busy;
    uint64_t run = ds__pool_progress(s, p, &all_busy);
    if (run != p->seen_run || !all_busy) {
      p->seen_run = run;
      p->progress_ns = now;
      if (ds__load_relaxed(&p->stalled)) {
        ds__store(&p->stalled, 0);
        ds__log(s->ctx, DS_LOG_INFO, "sched", "pool %d makes progress again: back in service", pi);
      }
    } else if (!ds__load_relaxed(&p->stalled) && now - p->progress_ns >= limit) {
      ds__pool_fail_over(s, pi, now);
    }
  }
}
