/* Distributed runs of fabric graphs (ds_mpi_graph_run). Every rank holds the same graph over
 * attached buffers. A node runs on the rank that owns the first buffer it writes (owner-
 * computes, as StarPU-MPI) unless the caller places it. Every rank walks the graph in the same
 * topological order, tracking which ranks hold each buffer's latest data, and so derives the
 * same list of transfers (rank of the last writer -> rank of a reader lacking that version;
 * written buffers back to their owner at the end). Each rank then builds a local graph of its
 * own nodes plus one send or receive node per transfer it takes part in, and runs it with
 * the ordinary graph executor: the buffer accesses order transfers and nodes locally (a
 * receive writes the buffer, a send reads it). Transfer nodes detach from their worker
 * (ds__task_detach) once the progress thread has their request, and the progress thread
 * completes them, so a rank's workers never wait for the network and the run cannot deadlock
 * on workers. */
#include <string.h>
#include <time.h>

#include "mpi_internal.h"
#include "fabric/graph_internal.h"
#include "sched/sched_internal.h"

/* One run's shared state (the transfer nodes' arguments point at it). */
struct ds__mpi_grun {
  ds_mpi *m;
  int64_t timeout_ms;
  pthread_mutex_t mu;
  ds_status first; /* first transfer failure */
  char msg[DS__ERRMSG_MAX];
};

/* By-value arguments of a transfer node. */
typedef struct ds__xfer_args {
  struct ds__mpi_grun *run;
  uint64_t id; /* the buffer's id, for messages */
  int32_t peer, tag, send;
} ds__xfer_args;

/* The transfer kernel: hands the send or receive to the progress thread and detaches. */
static ds_status ds__xfer_kernel(void *const *bufs, const size_t *sizes, size_t nbufs,
                                 const void *args, size_t args_len) {
  ds__xfer_args a;
  if (nbufs > 1 || args_len != sizeof a) return DS_ERR_INTERNAL; /* 0: an ordering token */
  memcpy(&a, args, sizeof a);
  ds_mpi *m = a.run->m;
  ds__mpi_op *op = ds__calloc(m->ctx, 1, sizeof *op);
  if (!op) return ds__error(m->ctx, DS_ERR_NO_MEMORY, "mpi", "graph: no memory for a transfer");
  op->xtask = ds__task_detach();
  if (!op->xtask) {
    ds__free(m->ctx, op);
    return ds__error(m->ctx, DS_ERR_INTERNAL, "mpi", "graph: a transfer ran outside a task");
  }
  op->kind = DS__OP_XFER;
  op->peer = a.peer;
  op->recv = MPI_REQUEST_NULL;
  op->deadline_ns = ds__mpi_deadline(m, a.run->timeout_ms);
  op->xptr = nbufs ? bufs[0] : NULL;
  op->xlen = nbufs ? sizes[0] : 0;
  op->xtag = a.tag;
  op->xsend = a.send;
  op->xid = a.id;
  op->xrun = a.run;
  /* Under MPI_THREAD_MULTIPLE this worker posts the transfer itself, so the data moves at
   * once; the progress thread only completes it (else it posts it too). */
  if (m->level >= MPI_THREAD_MULTIPLE &&
      (a.send ? MPI_Isend(op->xptr, (int)op->xlen, MPI_BYTE, a.peer, a.tag, m->comm, &op->recv)
              : MPI_Irecv(op->xptr, (int)op->xlen, MPI_BYTE, a.peer, a.tag, m->comm,
                          &op->recv)) != MPI_SUCCESS)
    op->recv = MPI_REQUEST_NULL;
  ds__mpi_op_submit(m, op);
  return DS_OK; /* the progress thread completes the task (ds__mpi_xfer_done) */
}

void ds__mpi_xfer_done(ds_mpi *m, ds__mpi_op *op, ds_status st, const char *msg) {
  struct ds__mpi_grun *run = op->xrun;
  if (st != DS_OK) {
    pthread_mutex_lock(&run->mu);
    if (run->first == DS_OK) {
      run->first = st;
      snprintf(run->msg, sizeof run->msg, "graph: %s buffer %llu %s rank %d: %s",
               op->xsend ? "sending" : "receiving", (unsigned long long)op->xid,
               op->xsend ? "to" : "from", op->peer, msg ? msg : ds_status_str(st));
    }
    pthread_mutex_unlock(&run->mu);
  }
  struct ds_task *t = op->xtask;
  ds__free(m->ctx, op);
  ds__task_complete(t, st);
  ds__mpi_op_over(m);
}

void ds__mpi_graph_free(ds_mpi *m) {
  ds_kernel_destroy(m->xfer_kernel);
  m->xfer_kernel = NULL;
}

/* ---------------------------------------------------------------- completion across ranks */

void ds__mpi_on_graph_done(ds_mpi *m, int32_t peer, const ds__mpi_hdr *h) {
  pthread_mutex_lock(&m->mu);
  ds__mpi_peer *p = &m->peers[peer];
  if (h->a > p->graph_done) p->graph_done = h->a;
  if (h->status != DS_OK) { /* kept by run number: it may already be on the next run */
    p->graph_failed = h->a;
    p->graph_status = (ds_status)h->status;
  }
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  if (h->status != DS_OK) { /* data it owed will not come: do not wait for the timeout */
    char msg[96];
    snprintf(msg, sizeof msg, "rank %d failed its part of the graph (%s)", peer,
             ds_status_str((ds_status)h->status));
    ds__mpi_fail_xfers(m, DS_ERR_CANCELLED, msg);
  }
}

/* Tells every rank this rank's part of run @p run is over (with @p st), then waits until every
 * live rank's is: a graph run returns when the whole graph has run, so the owners' data is
 * final everywhere. Returns @p st if it failed, else the first other rank's failure. */
static ds_status finish_run(ds_mpi *m, uint64_t run, ds_status st, int64_t timeout_ms) {
  ds__mpi_hdr h;
  ds__mpi_hdr_init(&h, DS__MSG_GRAPH_DONE);
  h.a = run;
  h.status = st;
  for (int r = 0; r < m->size; r++)
    if (r != m->rank && ds_mpi_rank_alive(m, r)) (void)ds__mpi_post(m, r, &h, NULL, NULL, 0);
  uint64_t deadline = ds__mpi_deadline(m, timeout_ms);
  struct timespec at = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
  int bad = -1, waiting = 1;
  ds_status other = DS_OK;
  pthread_mutex_lock(&m->mu);
  while (waiting && ds__now_ns() < deadline) {
    waiting = 0;
    for (int r = 0; r < m->size && bad < 0; r++) {
      ds__mpi_peer *p = &m->peers[r];
      if (r == m->rank) continue;
      if (p->graph_failed == run)
        bad = r, other = p->graph_status;
      else if (p->graph_done >= run)
        continue; /* done, even if it died since */
      else if (p->dead)
        bad = r, other = DS_ERR_IO;
      else
        waiting = 1;
    }
    if (bad >= 0) break;
    if (waiting) pthread_cond_timedwait(&m->cv, &m->mu, &at); /* cv uses CLOCK_MONOTONIC */
  }
  pthread_mutex_unlock(&m->mu);
  if (st != DS_OK) return st;
  if (bad >= 0)
    return ds__error(m->ctx, other, "mpi", "graph: rank %d %s", bad,
                     other == DS_ERR_IO ? "died" : "failed its part of the run");
  if (waiting)
    return ds__error(m->ctx, DS_ERR_TIMEOUT, "mpi", "graph: not every rank finished its part "
                     "within the timeout");
  return DS_OK;
}

/* ---------------------------------------------------------------- planning the transfers */

/* What the walk over the graph knows and builds. */
struct walk {
  ds_mpi *m;
  ds_graph *g, *lg;      /* the caller's graph; this rank's local graph */
  struct ds__mpi_grun *run;
  int32_t cpu;           /* the CPU device transfer nodes run on */
  ds__mpi_buf **mb;      /* per graph buffer: its registration */
  int32_t *latest;       /* per graph buffer: the rank holding its latest data */
  uint8_t *has;          /* [buffer * size + rank]: that rank holds the latest data */
  uint8_t *written;      /* per graph buffer: some node writes it */
  int32_t *local;        /* per node: its index in lg, or -1 */
  int32_t *rank_of;      /* per node: the rank that runs it (set in topological order) */
  int32_t *lastw;        /* per graph buffer: the node that wrote it last, or -1 */
  int32_t *tok;          /* per rank: the token receive node of the node being added, or -1 */
  uint64_t tag_base, nxfer, tag_range;
  ds_mpi_graph_info info;
};

static ds_status walk_xfer(struct walk *w, uint32_t bi, int32_t from, int32_t to) {
  ds_mpi *m = w->m;
  int32_t tag = (int32_t)(DS__MPI_TAG_GRAPH0 + (w->tag_base + w->nxfer) % w->tag_range);
  w->nxfer++;
  w->has[(size_t)bi * (size_t)m->size + (size_t)to] = 1;
  if (m->rank != from && m->rank != to) return DS_OK;
  int send = m->rank == from;
  ds__xfer_args a = {w->run, w->mb[bi]->id, send ? to : from, tag, send};
  ds_graph_access acc = {w->g->bufs[bi].buf, send ? DS_ACCESS_READ : DS_ACCESS_WRITE};
  ds_node_options o = DS_NODE_OPTIONS_INIT;
  o.name = send ? "mpi_send" : "mpi_recv";
  o.args = &a;
  o.args_len = sizeof a;
  o.device = w->cpu;
  if (send) {
    w->info.sends++;
    w->info.bytes_sent += w->mb[bi]->size;
  } else {
    w->info.recvs++;
    w->info.bytes_received += w->mb[bi]->size;
  }
  return ds_graph_add(NULL, w->lg, m->xfer_kernel, &acc, 1, &o);
}

/* Whether node v's dependency on node p is kept by data: v reads a buffer whose latest
 * version p wrote, so v's rank receives it after p ran (or its local graph orders v after
 * the receive that brought it). */
static int dep_by_data(const struct walk *w, int32_t v, int32_t p) {
  const struct ds__gnode *n = &w->g->nodes[v];
  for (uint32_t a = 0; a < n->nacc; a++)
    if ((n->acc[a].mode & DS_ACCESS_READ) &&
        w->lastw[ds__graph_buf_find(w->g, n->acc[a].buf)] == p)
      return 1;
  return 0;
}

/* Node v runs on rank e after its predecessors that run on rank r (!= e) and that no data
 * orders (an explicit dependency, or a write after a read): one zero-byte token from r to e,
 * sent after them and received before v. Every rank derives the same tokens (and tags).
 * On e, *recv_node is the token's receive node (else -1). */
static ds_status walk_token(struct walk *w, int32_t v, int32_t r, int32_t e, int32_t *recv_node) {
  const struct ds__gnode *n = &w->g->nodes[v];
  ds_mpi *m = w->m;
  *recv_node = -1;
  int need = 0;
  for (uint32_t j = 0; j < n->npred && !need; j++)
    need = w->rank_of[n->pred[j]] == r && !dep_by_data(w, v, n->pred[j]);
  if (!need) return DS_OK;
  int32_t tag = (int32_t)(DS__MPI_TAG_GRAPH0 + (w->tag_base + w->nxfer) % w->tag_range);
  w->nxfer++;
  if (m->rank != r && m->rank != e) return DS_OK;
  int send = m->rank == r;
  ds__xfer_args a = {w->run, 0, send ? e : r, tag, send};
  ds_node_options o = DS_NODE_OPTIONS_INIT;
  o.name = send ? "mpi_token_send" : "mpi_token_recv";
  o.args = &a;
  o.args_len = sizeof a;
  o.device = w->cpu;
  int32_t t = -1;
  ds_status st = ds_graph_add(&t, w->lg, m->xfer_kernel, NULL, 0, &o);
  for (uint32_t j = 0; st == DS_OK && send && j < n->npred; j++) {
    int32_t p = n->pred[j];
    if (w->rank_of[p] == r && !dep_by_data(w, v, p)) st = ds_graph_add_dep(w->lg, w->local[p], t);
  }
  if (st == DS_OK && !send) *recv_node = t;
  return st;
}

/* Tokens into node v (on rank e) from every other rank; on e, adds v's dependencies on the
 * tokens' receive nodes (v is in the local graph by then). */
static ds_status walk_tokens(struct walk *w, int32_t v, int32_t e, int after_add) {
  ds_status st = DS_OK;
  for (int32_t r = 0; r < w->m->size && st == DS_OK; r++) {
    if (r == e) continue;
    int32_t t = -1;
    if (!after_add) {
      st = walk_token(w, v, r, e, &t);
      if (t >= 0) w->tok[r] = t;
    } else if (w->tok[r] >= 0) {
      st = ds_graph_add_dep(w->lg, w->tok[r], w->local[v]);
      w->tok[r] = -1;
    }
  }
  return st;
}

/* Adds node v (which this rank runs) to the local graph, with its explicit predecessors
 * among this rank's nodes. */
static ds_status walk_add_local(struct walk *w, int32_t v) {
  const struct ds__gnode *n = &w->g->nodes[v];
  ds_node_options o = DS_NODE_OPTIONS_INIT;
  o.name = n->name;
  o.args = n->args_len ? n->args : NULL;
  o.args_len = n->args_len;
  o.size = n->size;
  memcpy(o.global, n->global, sizeof o.global);
  o.device = n->device;
  ds_status st = ds_graph_add(&w->local[v], w->lg, n->k, n->acc, n->nacc, &o);
  for (uint32_t j = 0; st == DS_OK && j < n->npred; j++)
    if (w->local[n->pred[j]] >= 0) st = ds_graph_add_dep(w->lg, w->local[n->pred[j]], w->local[v]);
  if (st == DS_OK) w->info.nodes_here++;
  return st;
}

static int32_t node_rank(const struct walk *w, int32_t v, const int32_t *placement) {
  if (placement && placement[v] >= 0) return placement[v];
  const struct ds__gnode *n = &w->g->nodes[v];
  for (uint32_t a = 0; a < n->nacc; a++) /* owner-computes: the first buffer it writes */
    if (n->acc[a].mode & DS_ACCESS_WRITE)
      return w->mb[ds__graph_buf_find(w->g, n->acc[a].buf)]->owner;
  return n->nacc ? w->mb[ds__graph_buf_find(w->g, n->acc[0].buf)]->owner : 0;
}

/* Node v on rank e: bring the buffers it reads, run it (if here), record what it wrote. */
static ds_status walk_node(struct walk *w, int32_t v, int32_t e) {
  const struct ds__gnode *n = &w->g->nodes[v];
  size_t size = (size_t)w->m->size;
  ds_status st = DS_OK;
  for (uint32_t a = 0; a < n->nacc && st == DS_OK; a++) {
    uint32_t bi = (uint32_t)ds__graph_buf_find(w->g, n->acc[a].buf);
    if ((n->acc[a].mode & DS_ACCESS_READ) && !w->has[bi * size + (size_t)e])
      st = walk_xfer(w, bi, w->latest[bi], e);
  }
  if (st == DS_OK) st = walk_tokens(w, v, e, 0);
  if (st == DS_OK && e == w->m->rank) st = walk_add_local(w, v);
  if (st == DS_OK && e == w->m->rank) st = walk_tokens(w, v, e, 1);
  for (uint32_t a = 0; a < n->nacc && st == DS_OK; a++) {
    if (!(n->acc[a].mode & DS_ACCESS_WRITE)) continue;
    uint32_t bi = (uint32_t)ds__graph_buf_find(w->g, n->acc[a].buf);
    memset(&w->has[bi * size], 0, size);
    w->has[bi * size + (size_t)e] = 1;
    w->latest[bi] = e;
    w->lastw[bi] = v;
    w->written[bi] = 1;
  }
  return st;
}

/* Walks the whole graph: the local graph and this rank's transfers. */
static ds_status walk_graph(struct walk *w, const int32_t *placement) {
  ds_graph *g = w->g;
  int32_t *order = ds__alloc(g->ctx, g->nnodes * sizeof *order);
  if (!order) return ds__error(g->ctx, DS_ERR_NO_MEMORY, "mpi", "graph: out of memory");
  ds_status st = ds__graph_topo(g, order);
  for (uint32_t i = 0; i < g->nnodes && st == DS_OK; i++) {
    int32_t v = order[i], e = node_rank(w, v, placement);
    w->rank_of[v] = e;
    if (e < 0 || e >= w->m->size)
      st = ds__error(g->ctx, DS_ERR_INVALID_ARG, "mpi", "graph: node '%s' placed on rank %d "
                     "(ranks are 0..%d)", g->nodes[v].name, e, w->m->size - 1);
    else
      st = walk_node(w, v, e);
  }
  ds__free(g->ctx, order);
  /* Owner-computes leaves data on its owner; a placed writer's result goes back there. */
  for (uint32_t bi = 0; bi < g->nbufs && st == DS_OK; bi++)
    if (w->written[bi] && !w->has[bi * (size_t)w->m->size + (size_t)w->mb[bi]->owner])
      st = walk_xfer(w, bi, w->latest[bi], w->mb[bi]->owner);
  if (st == DS_OK && w->nxfer > w->tag_range)
    st = ds__error(g->ctx, DS_ERR_NO_SPACE, "mpi", "graph: %llu transfers exceed the %llu MPI "
                   "tags available", (unsigned long long)w->nxfer,
                   (unsigned long long)w->tag_range);
  return st;
}

/* ---------------------------------------------------------------- the run */

/* Every graph buffer must be attached (the same id and owner on every rank). */
static ds_status find_buffers(struct walk *w) {
  ds_mpi *m = w->m;
  ds_status st = DS_OK;
  uint32_t bad = 0;
  pthread_mutex_lock(&m->mu);
  for (uint32_t bi = 0; bi < w->g->nbufs && st == DS_OK; bi++) {
    ds__mpi_buf *b = m->bufs;
    while (b && b->dsbuf != w->g->bufs[bi].buf) b = b->next;
    w->mb[bi] = b;
    w->latest[bi] = b ? b->owner : 0;
    if (b) w->has[(size_t)bi * (size_t)m->size + (size_t)b->owner] = 1;
    else
      st = DS_ERR_INVALID_ARG, bad = bi;
  }
  if (st == DS_OK && !m->xfer_kernel) {
    ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
    ko.name = "mpi_transfer";
    ko.cpu = ds__xfer_kernel;
    st = ds_kernel_create(&m->xfer_kernel, m->ctx, &ko);
  }
  pthread_mutex_unlock(&m->mu);
  if (st == DS_ERR_INVALID_ARG)
    return ds__error(m->ctx, st, "mpi", "graph: buffer '%s' is not attached "
                     "(ds_mpi_buffer_attach)", ds_buffer_name(w->g->bufs[bad].buf));
  return st;
}

/* Buffers the run wrote: other ranks' fetched copies are stale now (every rank knows which,
 * from the same graph, so no message is needed). */
static void invalidate_written(struct walk *w) {
  pthread_mutex_lock(&w->m->mu);
  for (uint32_t bi = 0; bi < w->g->nbufs; bi++)
    if (w->written[bi] && w->mb[bi]->owner != w->m->rank) ds__mpi_buf_stale(w->mb[bi]);
  pthread_mutex_unlock(&w->m->mu);
}

/* Marks (or unmarks) the buffers the run writes, whose write hooks then send nothing. */
static void mark_written(struct walk *w, int on) {
  pthread_mutex_lock(&w->m->mu);
  for (uint32_t bi = 0; bi < w->g->nbufs; bi++)
    if (w->written[bi]) w->mb[bi]->graph_written = on;
  pthread_mutex_unlock(&w->m->mu);
}

static ds_status run_local(struct walk *w, const ds_plan_options *popts) {
  uint32_t nodes = 0;
  ds_graph_size(w->lg, &nodes, NULL);
  if (!nodes) return DS_OK; /* nothing here for this rank */
  ds_plan *p = NULL;
  ds_status st = ds_graph_plan(&p, w->lg, popts);
  ds_graph_run_info ri = {sizeof ri, 0.0, 0};
  if (st == DS_OK) st = ds_graph_run(w->lg, p, &ri);
  ds_plan_destroy(p);
  if (st == DS_OK) w->info.makespan_s = ri.makespan_s;
  pthread_mutex_lock(&w->run->mu);
  ds_status xst = w->run->first;
  pthread_mutex_unlock(&w->run->mu);
  if (xst != DS_OK) /* a transfer failed: its message says more than the cancelled successors' */
    st = ds__error(w->m->ctx, xst, "mpi", "%s", w->run->msg);
  return st;
}

static ds_status check_args(ds_mpi *m, ds_graph *g, const ds_mpi_graph_options *o,
                            const ds_mpi_graph_info *info) {
  if (!m || !g)
    return ds__error(m ? m->ctx : NULL, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_graph_run: %s is NULL",
                     m ? "g" : "m");
  if ((o && o->struct_size != sizeof *o) || (info && info->struct_size != sizeof *info))
    return ds__error(m->ctx, DS_ERR_ABI, "mpi", "ds_mpi_graph_run: %s struct_size unknown",
                     o && o->struct_size != sizeof *o ? "options" : "info");
  if (g->ctx != m->ctx)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_graph_run: the graph belongs to "
                     "another context");
  if (o && o->plan && o->plan->struct_size == sizeof(ds_plan_options) &&
      o->plan->policy == DS_PLAN_EXPLICIT)
    return ds__error(m->ctx, DS_ERR_INVALID_ARG, "mpi", "ds_mpi_graph_run: DS_PLAN_EXPLICIT "
                     "cannot be used (each rank plans its own part)");
  if (!g->nnodes) return ds__error(m->ctx, DS_ERR_STATE, "mpi", "ds_mpi_graph_run: empty graph");
  return DS_OK;
}

static ds_status walk_alloc(struct walk *w) {
  ds_context *ctx = w->m->ctx;
  size_t nb = w->g->nbufs ? w->g->nbufs : 1;
  w->mb = ds__calloc(ctx, nb, sizeof *w->mb);
  w->latest = ds__calloc(ctx, nb, sizeof *w->latest);
  w->has = ds__calloc(ctx, nb * (size_t)w->m->size, 1);
  w->written = ds__calloc(ctx, nb, 1);
  w->local = ds__alloc(ctx, w->g->nnodes * sizeof *w->local);
  w->rank_of = ds__alloc(ctx, w->g->nnodes * sizeof *w->rank_of);
  w->lastw = ds__alloc(ctx, nb * sizeof *w->lastw);
  w->tok = ds__alloc(ctx, (size_t)w->m->size * sizeof *w->tok);
  if (!w->mb || !w->latest || !w->has || !w->written || !w->local || !w->rank_of || !w->lastw ||
      !w->tok)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "mpi", "graph: out of memory");
  for (uint32_t v = 0; v < w->g->nnodes; v++) w->local[v] = w->rank_of[v] = -1;
  for (size_t bi = 0; bi < nb; bi++) w->lastw[bi] = -1;
  for (int r = 0; r < w->m->size; r++) w->tok[r] = -1;
  return ds_graph_create(&w->lg, ctx);
}

static void walk_free(struct walk *w) {
  ds_context *ctx = w->m->ctx;
  ds_graph_destroy(w->lg);
  ds__free(ctx, w->mb);
  ds__free(ctx, w->latest);
  ds__free(ctx, w->has);
  ds__free(ctx, w->written);
  ds__free(ctx, w->local);
  ds__free(ctx, w->rank_of);
  ds__free(ctx, w->lastw);
  ds__free(ctx, w->tok);
}

ds_status ds_mpi_graph_run(ds_mpi *m, ds_graph *g, const ds_mpi_graph_options *opts,
                           ds_mpi_graph_info *info) {
  ds_status st = check_args(m, g, opts, info);
  if (st != DS_OK) return st;
  ds_mpi_graph_options o = DS_MPI_GRAPH_OPTIONS_INIT;
  if (opts) o = *opts;
  struct ds__mpi_grun run = {.m = m, .timeout_ms = o.timeout_ms, .first = DS_OK};
  pthread_mutex_init(&run.mu, NULL);
  struct walk w = {.m = m, .g = g, .run = &run};
  w.info.struct_size = sizeof w.info;
  w.tag_range = (uint64_t)(m->tag_ub - DS__MPI_TAG_GRAPH0 + 1);
  w.tag_base = m->graph_tag_next; /* the same on every rank: runs are collective */
  uint64_t run_no = ++m->graph_runs;
  st = ds_fabric_device_find(&w.cpu, m->ctx, DS_FABRIC_DEVICE_CPU, 0);
  if (st == DS_OK) st = walk_alloc(&w);
  if (st == DS_OK) st = find_buffers(&w);
  if (st == DS_OK) st = walk_graph(&w, o.placement);
  m->graph_tag_next += w.nxfer;
  if (st == DS_OK) {
    mark_written(&w, 1); /* the owners' writes need no messages: see invalidate_written */
    st = run_local(&w, o.plan);
    mark_written(&w, 0);
  }
  st = finish_run(m, run_no, st, o.timeout_ms);
  if (st == DS_OK) invalidate_written(&w);
  if (st == DS_OK && info) *info = w.info;
  walk_free(&w);
  pthread_mutex_destroy(&run.mu);
  return st;
}
