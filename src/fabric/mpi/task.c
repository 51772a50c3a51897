/* Tasks by name across ranks: the registry, ds_mpi_task_submit (run here, on a chosen rank,
 * or on a buffer's owner), the scheduler's LOW migration hook that sends held-back LOW tasks
 * to less loaded ranks, running other ranks' tasks here, and running a migrated task here
 * after its rank died. */
#include <string.h>

#include "mpi_internal.h"
#include "sched/sched_internal.h"

/* A submitted task's state; the local task's argument, freed by its completion callback. */
struct ds__mpi_call_state {
  ds_mpi *m;
  ds__mpi_entry *e; /* entries live until ds_mpi_destroy */
  void *args;
  size_t args_len;
  void *result;
  size_t result_cap;
  size_t *result_len;
  int32_t rank, prio;
  uint64_t buffer;
  ds_task_done_fn user_done;
  void *user_done_arg;
  struct ds_task *task; /* set when migrated, or detached while placed on another rank */
};

/* A task run here for another rank. */
typedef struct ds__mpi_remote {
  ds_mpi *m;
  ds__mpi_entry *e;
  int32_t peer;
  uint64_t op_id, buffer;
  void *args, *result;
  size_t args_len, result_cap, result_len;
  char msg[DS__ERRMSG_MAX];
} ds__mpi_remote;

static ds__mpi_entry *ds__entry_find(ds_mpi *m, const char *name) {
  pthread_mutex_lock(&m->mu);
  ds__mpi_entry *e = m->entries;
  while (e && strcmp(e->name, name) != 0) e = e->next;
  pthread_mutex_unlock(&m->mu);
  return e;
}

ds_status ds_mpi_task_register(ds_mpi *m, const char *name, ds_mpi_task_fn fn, void *user) {
  if (!m || !name || !fn || !*name || strlen(name) >= DS__MPI_NAME_MAX)
    return ds__error(m ? m->ctx : NULL, DS_ERR_INVALID_ARG, "mpi",
                     "ds_mpi_task_register: m, fn and a name of 1..%d bytes are required",
                     DS__MPI_NAME_MAX - 1);
  ds__mpi_entry *e = ds__calloc(m->ctx, 1, sizeof *e);
  if (!e) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for task '%s'", name);
  memcpy(e->name, name, strlen(name));
  e->fn = fn;
  e->user = user;
  pthread_mutex_lock(&m->mu);
  ds__mpi_entry *d = m->entries;
  while (d && strcmp(d->name, name) != 0) d = d->next;
  if (!d) {
    e->next = m->entries;
    m->entries = e;
  }
  pthread_mutex_unlock(&m->mu);
  if (d) {
    ds__free(m->ctx, e);
    return ds__error(m->ctx, DS_ERR_BUSY, "mpi", "a task named '%s' is already registered", name);
  }
  return DS_OK;
}

void ds__mpi_entries_free(ds_mpi *m) {
  while (m->entries) {
    ds__mpi_entry *e = m->entries;
    m->entries = e->next;
    ds__free(m->ctx, e);
  }
}

/* Runs e here. The result is written straight to @p result. */
static ds_status ds__call_here(ds_mpi *m, ds__mpi_entry *e, const void *args, size_t args_len,
                               void *result, size_t cap, size_t *len, void *data, size_t dlen) {
  ds_mpi_call c = {args, args_len, result, cap, 0, data, dlen, m->rank};
  ds_status st = e->fn(e->user, &c);
  if (st == DS_OK && c.result_len > cap)
    return ds__error(m->ctx, DS_ERR_FULL, "mpi", "task '%s' wrote a %zu-byte result; capacity %zu",
                     e->name, c.result_len, cap);
  *len = st == DS_OK ? c.result_len : 0;
  return st;
}

/* Runs e on buffer b's memory here (its owner); an attached ds_buffer's host replica is
 * acquired read-write meanwhile, so the function sees and leaves the latest data. Other
 * ranks' cached copies are invalidated afterwards. */
static ds_status ds__call_on_buf(ds_mpi *m, ds__mpi_buf *b, ds__mpi_entry *e, const void *args,
                                 size_t args_len, void *result, size_t cap, size_t *len) {
  ds_status st = ds__mpi_buf_acquire_wait(m, b, DS_ACCESS_RW, ds__mpi_deadline(m, -1));
  if (st != DS_OK) return st;
  st = ds__call_here(m, e, args, args_len, result, cap, len, b->ptr, b->size);
  ds__mpi_buf_release(b);
  /* The function may have written: other ranks' copies are old (an attached buffer's release
   * said so already, through its write hook). */
  if (!b->dsbuf) ds__mpi_buf_written(m, b);
  return st;
}

/* ---------------------------------------------------------------- the local task */

/* Under MPI_THREAD_MULTIPLE the worker sends the request itself (one wake-up of the progress
 * thread less on a placed task's round trip): the op gets its id first and is listed for the
 * progress thread before the request leaves, so the answer always finds it; from then on the
 * op is the progress thread's (it may already be freed), so the request is built from copies.
 * cs and its arguments live until the task finishes, which is not before this returns. */
static ds_status ds__remote_send_here(ds_mpi *m, ds__mpi_op *op, struct ds__mpi_call_state *cs) {
  pthread_mutex_lock(&m->mu);
  op->id = ++m->next_op;
  pthread_mutex_unlock(&m->mu);
  op->present = 1;
  op->hdr.id = op->id;
  ds__mpi_hdr h = op->hdr;
  int32_t peer = op->peer;
  ds__mpi_op_submit(m, op);
  /* On failure (no memory) the op's deadline fails the task. */
  (void)ds__mpi_post(m, peer, &h, cs->e->name, cs->args, cs->args_len);
  return DS_OK; /* ignored: the answer completes the task */
}

/* Sends the task to rank target. The local task is detached from its worker and completed
 * by the answer (ds__mpi_on_task_done), so waiting for a remote rank holds no local worker;
 * outside a scheduler task (cannot happen today) the calling thread waits instead. */
static ds_status ds__remote_run_later(ds_mpi *m, struct ds__mpi_call_state *cs, int32_t target) {
  ds__mpi_op *op = ds__calloc(m->ctx, 1, sizeof *op);
  if (!op) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for task '%s'", cs->e->name);
  cs->task = ds__task_detach();
  int waited = cs->task == NULL;
  op->kind = DS__OP_TASK;
  op->waited = waited;
  op->placed = 1;
  op->peer = target;
  op->call = cs;
  op->recv = MPI_REQUEST_NULL;
  op->deadline_ns = ds__mpi_deadline(m, -1);
  ds__mpi_hdr_init(&op->hdr, DS__MSG_TASK);
  op->hdr.a = cs->buffer;
  op->hdr.b = cs->result_cap;
  op->hdr.prio = cs->prio;
  op->name = cs->e->name;
  op->payload = cs->args;
  op->payload_len = cs->args_len;
  if (!waited && m->ctrl_direct)
    return ds__remote_send_here(m, op, cs);
  ds__mpi_op_submit(m, op);
  if (!waited) return DS_OK; /* ignored: the answer completes the task (op may be gone) */
  char what[96];
  snprintf(what, sizeof what, "task '%s' on rank %d", cs->e->name, target);
  return ds__mpi_op_wait(m, op, what);
}

/* The body of every task ds_mpi_task_submit creates (the migration hook recognises it). */
static ds_status ds__mpi_task_run(void *arg) {
  struct ds__mpi_call_state *cs = arg;
  ds_mpi *m = cs->m;
  int32_t target = cs->rank;
  ds__mpi_buf *mine = NULL;
  if (cs->buffer) {
    pthread_mutex_lock(&m->mu);
    ds__mpi_buf *b = ds__mpi_buf_find(m, cs->buffer);
    target = b ? b->owner : -2;
    if (b && b->owner == m->rank) mine = b;
    pthread_mutex_unlock(&m->mu);
    if (target == -2)
      return ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "task '%s': buffer %llu is not registered",
                       cs->e->name, (unsigned long long)cs->buffer);
  }
  if (target >= 0 && target != m->rank) return ds__remote_run_later(m, cs, target);
  size_t len = 0;
  ds_status st = mine ? ds__call_on_buf(m, mine, cs->e, cs->args, cs->args_len, cs->result,
                                        cs->result_cap, &len)
                      : ds__call_here(m, cs->e, cs->args, cs->args_len, cs->result,
                                      cs->result_cap, &len, NULL, 0);
  if (st == DS_OK && cs->result_len) *cs->result_len = len;
  return st;
}

static void ds__local_done(void *user, ds_task *task, ds_status st) {
  struct ds__mpi_call_state *cs = user;
  ds_context *ctx = cs->m->ctx;
  if (cs->user_done) cs->user_done(cs->user_done_arg, task, st);
  ds__free(ctx, cs->args);
  ds__free(ctx, cs);
}

static ds_status ds__check_submit(ds_mpi *m, const char *name, const void *args, size_t args_len,
                                  const void *result, size_t result_cap,
                                  const ds_mpi_submit_options *o) {
  if (!name || (!args && args_len) || (!result && result_cap))
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi",
                     "ds_mpi_task_submit: name NULL, or args/result NULL with a nonzero length");
  if (o->struct_size != sizeof *o)
    return ds__error(m->ctx, DS_ERR_ABI, "mpi", "ds_mpi_task_submit: struct_size %u unknown",
                     o->struct_size);
  /* The scheduler also accepts the struct as built before its last field ('data'). */
  if (o->task && o->task->struct_size != sizeof(ds_task_options) &&
      o->task->struct_size != offsetof(ds_task_options, data))
    return ds__error(m->ctx, DS_ERR_ABI, "mpi", "ds_mpi_task_submit: task options struct_size %u "
                     "unknown", o->task->struct_size);
  if (o->rank < -1 || o->rank >= m->size)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_task_submit: rank %d is not in "
                     "-1..%d", o->rank, m->size - 1);
  if (args_len > (size_t)INT32_MAX / 2 || result_cap > (size_t)INT32_MAX / 2)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_task_submit: args or result "
                     "over 1 GiB");
  pthread_mutex_lock(&m->mu);
  int known = !o->buffer || ds__mpi_buf_find(m, o->buffer);
  pthread_mutex_unlock(&m->mu);
  if (!known)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_task_submit: buffer %llu is not "
                     "registered", (unsigned long long)o->buffer);
  return DS_OK;
}

ds_status ds_mpi_task_submit(ds_task **out, ds_mpi *m, const char *name, const void *args,
                             size_t args_len, void *result, size_t result_cap,
                             size_t *result_len, const ds_mpi_submit_options *opts) {
  if (out) *out = NULL;
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_task_submit: m is NULL");
  ds_mpi_submit_options o = DS_MPI_SUBMIT_OPTIONS_INIT;
  if (opts) o = *opts;
  ds_status st = ds__check_submit(m, name, args, args_len, result, result_cap, &o);
  if (st != DS_OK) return st;
  ds__mpi_entry *e = ds__entry_find(m, name);
  if (!e) return ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "no task named '%s' is registered", name);
  struct ds__mpi_call_state *cs = ds__calloc(m->ctx, 1, sizeof *cs);
  void *copy = cs && args_len ? ds__alloc(m->ctx, args_len) : NULL;
  if (!cs || (args_len && !copy)) {
    ds__free(m->ctx, cs);
    return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "no memory for task '%s'", name);
  }
  if (args_len) memcpy(copy, args, args_len);
  ds_task_options to = DS_TASK_OPTIONS_INIT;
  to.prio = DS_PRIO_LOW;
  to.name = e->name;
  if (o.task) memcpy(&to, o.task, o.task->struct_size); /* a shorter struct keeps the defaults */
  to.struct_size = sizeof to;
  *cs = (struct ds__mpi_call_state){m, e, copy, args_len, result, result_cap, result_len, o.rank,
                                    to.prio, o.buffer, to.on_done, to.on_done_user, NULL};
  to.on_done = ds__local_done;
  to.on_done_user = cs;
  st = ds_task_submit(out, m->ctx, ds__mpi_task_run, cs, &to);
  if (st != DS_OK) {
    ds__free(m->ctx, copy);
    ds__free(m->ctx, cs);
  }
  return st;
}

ds_status ds_mpi_task_counts(ds_mpi *m, uint64_t *migrated_out, uint64_t *run_for_others) {
  if (!m) return ds__error(NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_task_counts: m is NULL");
  pthread_mutex_lock(&m->mu);
  if (migrated_out) *migrated_out = m->migrated;
  if (run_for_others) *run_for_others = m->ran_for_others;
  pthread_mutex_unlock(&m->mu);
  return DS_OK;
}

/* ---------------------------------------------------------------- migration */

/* Load of a rank in percent of its workers: predicted URGENT+NORMAL load plus LOW backlog. */
static double ds__pressure(double load_pct, int64_t backlog, int workers) {
  return load_pct + 100.0 * (double)backlog / (workers > 0 ? workers : 1);
}

/* Under mu: the least loaded live peer at least 'margin' below 'local', or -1. */
static int32_t ds__pick_peer(ds_mpi *m, double local, double margin) {
  int32_t best = -1;
  double best_p = 0;
  for (int r = 0; r < m->size; r++) {
    ds__mpi_peer *p = &m->peers[r];
    if (r == m->rank || p->dead || p->bye) continue;
    double pr = ds__pressure(p->load, p->backlog + p->sent, p->workers);
    if (best < 0 || pr < best_p) {
      best = r;
      best_p = pr;
    }
  }
  return best >= 0 && best_p + margin <= local ? best : -1;
}

/* The scheduler's hook, under its tick_mu: takes a held-back LOW task of ours and sends it. */
static int ds__mpi_migrate(void *user, struct ds_task *t) {
  ds_mpi *m = user;
  if (t->fn != ds__mpi_task_run) return 0;
  struct ds__mpi_call_state *cs = t->arg;
  if (cs->rank >= 0 || cs->buffer) return 0; /* placed explicitly: runs where asked */
  struct ds__sched *s = t->s;
  double local = ds__pressure(s->predicted * 100.0, ds__load_relaxed(&s->low.len) + 1, s->nworkers);
  double margin = (double)ds__param(m->ctx, DS_PARAM_MPI_MIGRATE_MARGIN_PCT);
  ds__mpi_op *op = ds__calloc(m->ctx, 1, sizeof *op);
  if (!op) return 0;
  pthread_mutex_lock(&m->mu);
  int32_t target = m->stop ? -1 : ds__pick_peer(m, local, margin);
  if (target >= 0) {
    m->peers[target].sent++;
    m->migrated++;
  }
  pthread_mutex_unlock(&m->mu);
  if (target < 0) {
    ds__free(m->ctx, op);
    return 0;
  }
  cs->task = t;
  op->kind = DS__OP_TASK;
  op->peer = target;
  op->call = cs;
  op->recv = MPI_REQUEST_NULL;
  ds__mpi_hdr_init(&op->hdr, DS__MSG_TASK);
  op->hdr.b = cs->result_cap;
  op->hdr.prio = DS_PRIO_LOW;
  op->name = cs->e->name;
  op->payload = cs->args;
  op->payload_len = cs->args_len;
  ds__mpi_op_submit(m, op);
  return 1;
}

void ds__mpi_hook_install(ds_mpi *m) {
  ds__sched_set_migrate_hook(m->ctx, ds__mpi_migrate, m);
  ds__store(&m->hooked, 1);
}

void ds__mpi_hook_remove(ds_mpi *m) {
  if (ds__load(&m->hooked)) ds__sched_set_migrate_hook(m->ctx, NULL, NULL);
  ds__store(&m->hooked, 0);
}

void ds__mpi_sched_tick(ds_mpi *m) {
  struct ds__sched *s = ds__load(&m->ctx->sched);
  if (s && ds__load(&m->hooked)) ds__sched_maybe_tick(s);
}

void ds__mpi_local_load(ds_mpi *m, double *load_pct, int64_t *backlog, int *workers) {
  struct ds__sched *s = ds__load(&m->ctx->sched);
  *load_pct = 0;
  *backlog = 0;
  *workers = 0;
  if (!s) return;
  double predicted = 0;
  ds__sched_low_limits(m->ctx, NULL, NULL, &predicted);
  *load_pct = predicted * 100.0;
  *backlog = ds__load_relaxed(&s->low.len);
  *workers = s->nworkers;
}

/* A migrated task is over: frees its op and completes the local task (whose callback frees
 * the call state). */
static void ds__migrated_complete(ds_mpi *m, ds__mpi_op *op, ds_status st) {
  struct ds_task *t = op->call->task;
  ds__free(m->ctx, op);
  ds__sched_migrated_done(t, st);
  ds__mpi_op_over(m);
}

static void ds__failover_run(void *arg) {
  ds__mpi_op *op = arg;
  struct ds__mpi_call_state *cs = op->call;
  size_t len = 0;
  ds_status st = ds__call_here(cs->m, cs->e, cs->args, cs->args_len, cs->result, cs->result_cap,
                               &len, NULL, 0);
  if (st == DS_OK && cs->result_len) *cs->result_len = len;
  ds__migrated_complete(cs->m, op, st);
}

void ds__mpi_task_failover(ds_mpi *m, ds__mpi_op *op) {
  pthread_mutex_lock(&m->mu);
  m->peers[op->peer].sent--;
  pthread_mutex_unlock(&m->mu);
  ds__log(m->ctx, DS_LOG_WARN, "mpi", "task '%s' migrated to rank %d, which died: running it here",
          op->call->e->name, op->peer);
  if (ds__executor_submit(m->ctx, ds__failover_run, op, DS__PRIO_LOW) != DS_OK)
    ds__migrated_complete(m, op, DS_ERR_IO);
}

void ds__mpi_on_task_done(ds_mpi *m, ds__mpi_op *op, const void *payload, size_t len,
                          ds_status st) {
  struct ds__mpi_call_state *cs = op->call;
  char msg[DS__ERRMSG_MAX];
  snprintf(msg, sizeof msg, "%s", st == DS_OK ? "" : (const char *)payload);
  if (st == DS_OK && len > cs->result_cap) {
    st = DS_ERR_FULL;
    snprintf(msg, sizeof msg, "result of %zu bytes exceeds the capacity %zu", len, cs->result_cap);
  } else if (st == DS_OK) {
    if (len) memcpy(cs->result, payload, len);
    if (cs->result_len) *cs->result_len = len;
  }
  if (op->waited) {
    ds__mpi_op_finish(m, op, st, msg);
    return;
  }
  if (op->placed) {
    if (st != DS_OK)
      ds__log(m->ctx, DS_LOG_WARN, "mpi", "task '%s' on rank %d failed with %s: %s", cs->e->name,
              op->peer, ds_status_str(st), msg);
    struct ds_task *t = cs->task;
    ds__free(m->ctx, op);
    ds__task_complete(t, st); /* its on_done frees cs */
    ds__mpi_op_over(m);
    return;
  }
  pthread_mutex_lock(&m->mu);
  m->peers[op->peer].sent--;
  pthread_mutex_unlock(&m->mu);
  if (st != DS_OK)
    ds__log(m->ctx, DS_LOG_WARN, "mpi", "task '%s' migrated to rank %d failed with %s: %s",
            cs->e->name, op->peer, ds_status_str(st), msg);
  ds__migrated_complete(m, op, st);
}

/* ---------------------------------------------------------------- running others' tasks */

static void ds__reply(ds_mpi *m, int32_t peer, uint64_t id, ds_status st, const void *p, size_t n) {
  ds__mpi_hdr h;
  ds__mpi_hdr_init(&h, DS__MSG_TASK_DONE);
  h.id = id;
  h.status = st;
  ds__mpi_post(m, peer, &h, NULL, p, n);
}

static ds_status ds__remote_run(void *arg) {
  ds__mpi_remote *rs = arg;
  ds_mpi *m = rs->m;
  ds__mpi_buf *mine = NULL;
  ds_status st = DS_OK;
  if (rs->buffer) {
    pthread_mutex_lock(&m->mu);
    ds__mpi_buf *b = ds__mpi_buf_find(m, rs->buffer);
    if (b && b->owner == m->rank) mine = b;
    pthread_mutex_unlock(&m->mu);
    if (!mine)
      st = ds__error(m->ctx, DS_ERR_NOT_FOUND, "mpi", "rank %d does not own buffer %llu", m->rank,
                     (unsigned long long)rs->buffer);
    else
      st = ds__call_on_buf(m, mine, rs->e, rs->args, rs->args_len, rs->result, rs->result_cap,
                           &rs->result_len);
  } else {
    st = ds__call_here(m, rs->e, rs->args, rs->args_len, rs->result, rs->result_cap,
                       &rs->result_len, NULL, 0);
  }
  if (st != DS_OK)
    snprintf(rs->msg, sizeof rs->msg, "on rank %d: %s", m->rank, ds_context_last_error(m->ctx));
  return st;
}

static void ds__remote_free(ds__mpi_remote *rs) {
  ds_mpi *m = rs->m;
  ds__free(m->ctx, rs->args);
  ds__free(m->ctx, rs->result);
  ds__free(m->ctx, rs);
  pthread_mutex_lock(&m->mu);
  m->remote_running--;
  m->ran_for_others++;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

static void ds__remote_done(void *user, ds_task *task, ds_status st) {
  (void)task;
  ds__mpi_remote *rs = user;
  if (st == DS_OK)
    ds__reply(rs->m, rs->peer, rs->op_id, st, rs->result, rs->result_len);
  else {
    if (!rs->msg[0]) snprintf(rs->msg, sizeof rs->msg, "on rank %d: %s", rs->m->rank, ds_status_str(st));
    ds__reply(rs->m, rs->peer, rs->op_id, st, rs->msg, strlen(rs->msg) + 1);
  }
  ds__remote_free(rs);
}

static void ds__reply_error(ds_mpi *m, int32_t peer, uint64_t id, ds_status st, const char *what) {
  char msg[DS__ERRMSG_MAX];
  snprintf(msg, sizeof msg, "on rank %d: %s", m->rank, what);
  ds__reply(m, peer, id, st, msg, strlen(msg) + 1);
}

void ds__mpi_on_task(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h, const char *name,
                     const void *args, size_t len) {
  char nm[DS__MPI_NAME_MAX] = "";
  memcpy(nm, name, h->name_len < sizeof nm ? h->name_len : sizeof nm - 1);
  ds__mpi_entry *e = ds__entry_find(m, nm);
  if (!e) {
    char what[128];
    snprintf(what, sizeof what, "no task named '%s' is registered", nm);
    ds__reply_error(m, peer, h->id, DS_ERR_NOT_FOUND, what);
    return;
  }
  ds__mpi_remote *rs = ds__calloc(m->ctx, 1, sizeof *rs);
  size_t cap = h->b < (uint64_t)INT32_MAX ? (size_t)h->b : 0;
  if (rs) {
    rs->args = len ? ds__alloc(m->ctx, len) : NULL;
    rs->result = cap ? ds__alloc(m->ctx, cap) : NULL;
  }
  if (!rs || (len && !rs->args) || (cap && !rs->result)) {
    if (rs) ds__free(m->ctx, rs->args), ds__free(m->ctx, rs->result);
    ds__free(m->ctx, rs);
    ds__reply_error(m, peer, h->id, DS_ERR_NO_MEMORY, "no memory for the task");
    return;
  }
  if (len) memcpy(rs->args, args, len);
  *rs = (ds__mpi_remote){m, e, peer, h->id, h->a, rs->args, rs->result, len, cap, 0, ""};
  pthread_mutex_lock(&m->mu);
  m->remote_running++;
  pthread_mutex_unlock(&m->mu);
  ds_task_options to = DS_TASK_OPTIONS_INIT;
  to.prio = h->prio >= DS_PRIO_URGENT && h->prio <= DS_PRIO_LOW ? h->prio : DS_PRIO_LOW;
  to.name = e->name;
  to.on_done = ds__remote_done;
  to.on_done_user = rs;
  if (ds_task_submit(NULL, m->ctx, ds__remote_run, rs, &to) != DS_OK) {
    ds__reply_error(m, peer, h->id, DS_ERR_SHUTDOWN, ds_context_last_error(m->ctx));
    ds__remote_free(rs);
  }
}
