/* Running a plan: one scheduler task per node, submitted in the plan's order with its
 * predecessors' tasks as dependencies, all in one task group. A node's task runs it on its
 * device and feeds the measured time to the kernel's cost model; the first failure is kept
 * with its message (the scheduler cancels the failed node's successors).
 *
 * Contention: nodes on devices that share the host's cores (CPU workers, PoCL) slow each other
 * down when together they hold more than the cores there are, e.g. while calibration or a plan
 * made without the shared-core model overlaps them. The run keeps the time integral of the
 * cores its running nodes hold; a node whose average load exceeded the pool had its time
 * stretched by about load / cores (processor sharing), so that factor is taken out before the
 * time is recorded. Otherwise the models learn contended times and the planner, which already
 * keeps such nodes apart, would price them twice.
 *
 * Prefetch: each node counts its unfinished predecessors; the task that finishes the last one
 * starts the node's input copies to its device (ds__gfab_prefetch) before returning, so they
 * run while the scheduler dispatches the node and other nodes compute (copies from the host,
 * and direct copies from another device of a backend with copy_peer_async, are only queued:
 * the node's own acquire waits for them, not the task that prefetched). The node cannot have
 * started yet (its predecessor's task has not completed), and no writer of its inputs can run
 * meanwhile: every writer of a buffer is ordered with every reader by the graph. */
#include <stdio.h>
#include <string.h>

#include "atomic.h"
#include "graph_internal.h"

#define MOD "fabric"

struct run;
struct run_node {
  struct run *r;
  int32_t node, dev;
  int pus; /* host cores the node holds (0: its device has its own) */
};
struct run {
  ds_graph *g;
  pthread_mutex_t mu;
  int pool_cap;      /* host cores of the pool; 0: no correction */
  int load;          /* cores held by running nodes (under mu) */
  uint64_t load_t;   /* when load last changed, ns */
  double load_int;   /* integral of load over time, core-ns */
  const ds_plan *plan;
  uint32_t *succ0;    /* successor lists (NULL: no prefetch) */
  int32_t *succ;
  ds__atomic_int *left; /* per node: predecessors not finished yet */
  ds_status first; /* first node failure */
  char msg[DS__ERRMSG_MAX];
  struct run_node *rn;
  ds_task **tasks;
};

/* Adds delta cores to the pool's load; *integral and *t: the load integral and time just
 * before the change. */
static void pool_change(struct run *r, int delta, double *integral, uint64_t *t) {
  pthread_mutex_lock(&r->mu);
  uint64_t now = ds__now_ns();
  if (r->load_t) r->load_int += (double)r->load * (double)(now - r->load_t);
  r->load_t = now;
  r->load += delta;
  *integral = r->load_int;
  *t = now;
  pthread_mutex_unlock(&r->mu);
}

static ds_status node_task(void *arg) {
  struct run_node *rn = arg;
  struct run *r = rn->r;
  ds_graph *g = r->g;
  const struct ds__gnode *n = &g->nodes[rn->node];
  double s = 0, i0 = 0, i1 = 0;
  uint64_t t0 = 0, t1 = 0;
  int pool = r->pool_cap > 0 && rn->pus > 0;
  if (pool) pool_change(r, rn->pus, &i0, &t0);
  ds_status st = ds__gfab_exec(g, n, rn->dev, &s);
  if (pool) {
    pool_change(r, -rn->pus, &i1, &t1);
    double avg = t1 > t0 ? (i1 - i0) / (double)(t1 - t0) : 0; /* includes this node's cores */
    if (avg > r->pool_cap) s *= r->pool_cap / avg;
  }
  if (st == DS_OK && r->left)
    for (uint32_t j = r->succ0[rn->node]; j < r->succ0[rn->node + 1]; j++) {
      int32_t w = r->succ[j];
      if (ds__fetch_sub(&r->left[w], 1) == 1) ds__gfab_prefetch(g, &g->nodes[w], r->plan->dev[w]);
    }
  if (st == DS_OK) {
    char key[DS__NAME_MAX];
    uint64_t size = n->size;
    if (!size)
      for (uint32_t a = 0; a < n->nacc; a++) size += ds__gfab_buf_bytes(n->acc[a].buf);
    if (ds__gfab_device_key(g->ctx, rn->dev, key, sizeof key))
      (void)ds__cm_record_run(&n->k->cm, key, size, s); /* a full model just stops learning */
    return DS_OK;
  }
  pthread_mutex_lock(&r->mu);
  if (r->first == DS_OK) {
    r->first = st;
    snprintf(r->msg, sizeof r->msg, "%s", ds_context_last_error(g->ctx)); /* names the node */
  }
  pthread_mutex_unlock(&r->mu);
  return st;
}

static ds_status submit_all(struct run *r, const ds_plan *p, ds_task_group *grp) {
  ds_graph *g = r->g;
  uint32_t maxp = 1;
  for (uint32_t i = 0; i < g->nnodes; i++)
    if (g->nodes[i].npred > maxp) maxp = g->nodes[i].npred;
  ds_task **deps = ds__alloc(g->ctx, maxp * sizeof *deps);
  if (!deps) return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "run: out of memory");
  ds_status st = DS_OK;
  for (uint32_t i = 0; i < p->nnodes && st == DS_OK; i++) {
    int32_t v = p->order[i];
    const struct ds__gnode *n = &g->nodes[v];
    for (uint32_t j = 0; j < n->npred; j++) deps[j] = r->tasks[n->pred[j]];
    r->rn[v] = (struct run_node){r, v, p->dev[v],
                                 p->dev[v] < DS__GRAPH_MAX_DEV ? p->dev_pus[p->dev[v]] : 0};
    ds_task_options o = DS_TASK_OPTIONS_INIT;
    o.name = n->name;
    o.deps = deps;
    o.ndeps = n->npred;
    o.group = grp;
    o.device = p->dev[v];
    st = ds_task_submit(&r->tasks[v], g->ctx, node_task, &r->rn[v], &o);
  }
  ds__free(g->ctx, deps);
  return st;
}

/* Successor lists and predecessor counts for prefetching; without memory the run simply
 * does not prefetch. */
static void prefetch_init(struct run *r) {
  ds_graph *g = r->g;
  r->left = ds__alloc(g->ctx, g->nnodes * sizeof *r->left);
  if (!r->left || ds__graph_successors(g, &r->succ0, &r->succ) != DS_OK) {
    ds__free(g->ctx, (void *)r->left);
    ds__free(g->ctx, r->succ0);
    ds__free(g->ctx, r->succ);
    r->left = NULL, r->succ0 = NULL, r->succ = NULL;
    return;
  }
  for (uint32_t i = 0; i < g->nnodes; i++) ds__store_relaxed(&r->left[i], (int)g->nodes[i].npred);
}

ds_status ds_graph_run(ds_graph *g, const ds_plan *p, ds_graph_run_info *info) {
  if (!g || !p) return ds__error(g ? g->ctx : NULL, DS_ERR_INVALID_ARG, MOD, "run: NULL argument");
  if (info && info->struct_size != sizeof *info)
    return ds__error(g->ctx, DS_ERR_ABI, MOD, "ds_graph_run_info: unknown struct_size %u",
                     info->struct_size);
  if (p->g != g || p->version != g->version || p->nnodes != g->nnodes)
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD,
                     "run: the plan is for another graph or the graph changed since");
  struct run r = {.g = g, .first = DS_OK, .pool_cap = p->pool_cap, .plan = p};
  r.rn = ds__calloc(g->ctx, g->nnodes, sizeof *r.rn);
  r.tasks = ds__calloc(g->ctx, g->nnodes, sizeof *r.tasks);
  ds_task_group *grp = NULL;
  ds_status st = !r.rn || !r.tasks ? ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "run: out of memory")
                                   : ds_task_group_create(&grp, g->ctx);
  pthread_mutex_init(&r.mu, NULL);
  if (st == DS_OK && ds__param(g->ctx, DS_PARAM_FABRIC_GRAPH_PREFETCH)) prefetch_init(&r);
  uint64_t bytes0 = info ? ds__gfab_bytes_moved(g->ctx) : 0, t0 = ds__now_ns();
  if (st == DS_OK) st = submit_all(&r, p, grp);
  ds_status wst = grp ? ds_task_group_wait(grp, -1) : DS_OK; /* also after a failed submit */
  uint64_t t1 = ds__now_ns();
  ds_task_group_destroy(grp);
  for (uint32_t i = 0; r.tasks && i < g->nnodes; i++) ds_task_release(r.tasks[i]);
  if (st == DS_OK && r.first != DS_OK) { /* the worker's message, now the caller's */
    struct ds__tls *tls = ds__tls_get(g->ctx);
    if (tls) snprintf(tls->errmsg, sizeof tls->errmsg, "%s", r.msg);
    st = r.first;
  }
  if (st == DS_OK && wst != DS_OK) st = wst;
  if (info && st == DS_OK) {
    info->makespan_s = (double)(t1 - t0) * 1e-9;
    info->bytes_moved = ds__gfab_bytes_moved(g->ctx) - bytes0;
  }
  pthread_mutex_destroy(&r.mu);
  ds__free(g->ctx, r.succ0);
  ds__free(g->ctx, r.succ);
  ds__free(g->ctx, (void *)r.left);
  ds__free(g->ctx, r.rn);
  ds__free(g->ctx, r.tasks);
  return st;
}
