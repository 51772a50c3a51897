/* The partitioner: which devices can run each node, its predicted cost there (cost model, with
 * calibration placements for kernels not yet measured), HEFT upward ranks, and list scheduling
 * over the planning simulation by HEFT (earliest finish time, ties to fewer bytes moved),
 * one device, a random placement or an explicit one; then HEFT's guard against its own
 * greed (every single-device plan simulated too, the best kept). Also the plan's public
 * accessors. */
#include <math.h>
#include <string.h>

#include "partition_internal.h"

#define MOD "fabric"
#define DEFAULT_COST_S 1e-3 /* a node no device has measured: equal on all, so data decides */

struct planner {
  ds_graph *g;
  const struct ds__gplat *plat;
  const ds_plan_options *o;
  uint32_t *mask;   /* per node: capable devices */
  double *cost;     /* [node * ndev + dev] predicted compute seconds */
  int32_t *forced;  /* per node: device fixed by the node, the policy or calibration; -1 */
  double *rank;     /* HEFT upward rank */
  int32_t *topo;
  uint32_t calibrating;
};

static uint64_t node_size(const struct ds__gnode *n) {
  if (n->size) return n->size;
  uint64_t s = 0;
  for (uint32_t a = 0; a < n->nacc; a++) s += ds__gfab_buf_bytes(n->acc[a].buf);
  return s;
}

static ds_status node_masks(struct planner *P) {
  const ds_graph *g = P->g;
  for (uint32_t i = 0; i < g->nnodes; i++) {
    const struct ds__gnode *n = &g->nodes[i];
    uint32_t m = 0;
    for (int d = 0; d < P->plat->ndev; d++)
      if (ds__kernel_has_kind(n->k, P->plat->dev[d].kind)) m |= 1u << d;
    if (!m)
      return ds__error(g->ctx, DS_ERR_UNSUPPORTED, MOD,
                       "node '%s': kernel '%s' has no implementation for any present device",
                       n->name, n->k->name);
    P->forced[i] = -1;
    if (n->device >= 0) {
      if (n->device >= P->plat->ndev || !(m >> n->device & 1))
        return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD,
                         "node '%s': forced onto device %d, which cannot run kernel '%s'",
                         n->name, (int)n->device, n->k->name);
      P->forced[i] = n->device;
    }
    P->mask[i] = m;
  }
  return DS_OK;
}

/* Calibration bookkeeping: runs planned in this plan per (kernel, size, device). */
struct calib {
  const ds_kernel *k;
  uint64_t size;
  uint32_t planned[DS__GRAPH_MAX_DEV];
};

static struct calib *calib_find(struct calib *c, uint32_t *nc, const ds_kernel *k, uint64_t s) {
  for (uint32_t i = 0; i < *nc; i++)
    if (c[i].k == k && c[i].size == s) return &c[i];
  memset(&c[*nc], 0, sizeof c[*nc]);
  c[*nc].k = k;
  c[*nc].size = s;
  return &c[(*nc)++];
}

/* Predicted costs; where a capable device still lacks calib_runs samples of the node's kernel
 * at its size (more, up to calibrate_max_runs, while those samples vary widely), the node
 * goes there (the least-sampled device first), StarPU-style. */
static ds_status node_costs(struct planner *P, int calibrate) {
  ds_graph *g = P->g;
  int nd = P->plat->ndev;
  uint64_t runs = (uint64_t)ds__param(g->ctx, DS_PARAM_FABRIC_CALIBRATE_RUNS);
  uint64_t max_runs = (uint64_t)ds__param(g->ctx, DS_PARAM_FABRIC_CALIBRATE_MAX_RUNS);
  struct calib *cal = calibrate ? ds__calloc(g->ctx, g->nnodes + 1, sizeof *cal) : NULL;
  if (calibrate && !cal) return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "plan: out of memory");
  uint32_t ncal = 0;
  for (uint32_t i = 0; i < g->nnodes; i++) {
    struct ds__gnode *n = &g->nodes[i];
    uint64_t size = node_size(n), samples[DS__GRAPH_MAX_DEV] = {0}, want[DS__GRAPH_MAX_DEV] = {0};
    double known = 0;
    int nknown = 0;
    for (int d = 0; d < nd; d++) {
      double c = NAN;
      if (P->mask[i] >> d & 1) {
        c = ds__cm_predict(&n->k->cm, P->plat->dev[d].key, size, &samples[d]);
        if (cal) want[d] = ds__cm_wanted(&n->k->cm, P->plat->dev[d].key, size, runs, max_runs);
      }
      P->cost[(size_t)i * (size_t)nd + (size_t)d] = c;
      if (!isnan(c)) known += c, nknown++;
    }
    for (int d = 0; d < nd; d++) /* unknown: the mean of the known ones, so data decides */
      if (isnan(P->cost[(size_t)i * (size_t)nd + (size_t)d]))
        P->cost[(size_t)i * (size_t)nd + (size_t)d] = nknown ? known / nknown : DEFAULT_COST_S;
    if (!cal || P->forced[i] >= 0 || __builtin_popcount(P->mask[i]) < 2) continue;
    struct calib *c = calib_find(cal, &ncal, n->k, size);
    int best = -1;
    for (int d = 0; d < nd; d++)
      if ((P->mask[i] >> d & 1) && samples[d] + c->planned[d] < want[d] &&
          (best < 0 || samples[d] + c->planned[d] < samples[best] + c->planned[best]))
        best = d;
    if (best >= 0) {
      c->planned[best]++;
      P->forced[i] = best;
      P->calibrating++;
    }
  }
  ds__free(g->ctx, cal);
  return DS_OK;
}

/* Mean seconds per byte between two devices picked at random (0 within a memory space). */
static double mean_rate(const struct ds__gplat *pl) {
  const uint64_t probe = 1u << 20;
  double sum = 0;
  int n = 0;
  for (int a = 0; a < pl->ndev; a++)
    for (int b = 0; b < pl->ndev; b++, n++)
      if (pl->dev[a].memspace != pl->dev[b].memspace)
        sum += pl->xfer_s(pl->user, pl->dev[a].memspace, pl->dev[b].memspace, probe) / (double)probe;
  return n ? sum / n : 0;
}

/* Bytes node s reads that node p wrote (what the edge p -> s carries). */
static uint64_t edge_bytes(const struct ds__gnode *p, const struct ds__gnode *s) {
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < s->nacc; i++) {
    if (!(s->acc[i].mode & DS_ACCESS_READ)) continue;
    for (uint32_t j = 0; j < p->nacc; j++)
      if (p->acc[j].buf == s->acc[i].buf && (p->acc[j].mode & DS_ACCESS_WRITE))
        bytes += ds__gfab_buf_bytes(s->acc[i].buf);
  }
  return bytes;
}

/* Upward ranks: rank(n) = mean cost(n) + max over successors (mean transfer + rank(s)),
 * filled in reverse topological order by pushing each finished rank to the predecessors. */
static void node_ranks(struct planner *P) {
  ds_graph *g = P->g;
  int nd = P->plat->ndev;
  double rate = mean_rate(P->plat);
  for (uint32_t i = 0; i < g->nnodes; i++) P->rank[i] = 0;
  for (uint32_t t = g->nnodes; t-- > 0;) {
    int32_t v = P->topo[t];
    double w = 0;
    int c = 0;
    for (int d = 0; d < nd; d++)
      if (P->mask[v] >> d & 1) w += P->cost[(size_t)v * (size_t)nd + (size_t)d], c++;
    P->rank[v] += w / c; /* rank[v] held the max over successors so far */
    const struct ds__gnode *n = &g->nodes[v];
    for (uint32_t j = 0; j < n->npred; j++) {
      int32_t p = n->pred[j];
      double r = rate * (double)edge_bytes(&g->nodes[p], n) + P->rank[v];
      if (r > P->rank[p]) P->rank[p] = r;
    }
  }
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return *s = x;
}

/* The device node v goes to: forced, policy-fixed, or HEFT's earliest finish (ties within
 * 0.1%: fewer bytes moved, then the lower device index). */
static void choose(struct planner *P, struct ds__psim *s, int32_t v, uint64_t *rng,
                   struct ds__pchoice *best) {
  int nd = P->plat->ndev, fixed = P->forced[v];
  if (fixed < 0 && P->o->policy == DS_PLAN_RANDOM) {
    int k = (int)(xorshift(rng) % (uint64_t)__builtin_popcount(P->mask[v]));
    for (int d = 0; d < nd; d++)
      if ((P->mask[v] >> d & 1) && k-- == 0) fixed = d;
  }
  memset(best, 0, sizeof *best);
  best->eft = INFINITY;
  best->bytes = UINT64_MAX;
  for (int d = 0; d < nd; d++) {
    if (!(P->mask[v] >> d & 1) || (fixed >= 0 && d != fixed)) continue;
    struct ds__pchoice c;
    double tol = 1e-3 * (best->eft < INFINITY ? best->eft : 0);
    ds__psim_eval(s, v, d, P->cost[(size_t)v * (size_t)nd + (size_t)d], best->eft + tol, &c);
    if (c.eft < best->eft - tol || (c.eft <= best->eft + tol && c.bytes < best->bytes))
      *best = c;
  }
}

/* Successor lists (graph_internal.h): here for the list schedule, also used by the executor. */
ds_status ds__graph_successors(ds_graph *g, uint32_t **first, int32_t **succ) {
  uint32_t n = g->nnodes, e = 0;
  for (uint32_t w = 0; w < n; w++) e += g->nodes[w].npred;
  *first = ds__calloc(g->ctx, n + 1, sizeof **first);
  *succ = ds__alloc(g->ctx, (e ? e : 1) * sizeof **succ);
  if (!*first || !*succ) return DS_ERR_NO_MEMORY;
  for (uint32_t w = 0; w < n; w++)
    for (uint32_t j = 0; j < g->nodes[w].npred; j++) (*first)[g->nodes[w].pred[j] + 1]++;
  for (uint32_t v = 0; v < n; v++) (*first)[v + 1] += (*first)[v];
  for (uint32_t w = 0; w < n; w++) /* each list filled from its start, which moves to its end */
    for (uint32_t j = 0; j < g->nodes[w].npred; j++)
      (*succ)[(*first)[g->nodes[w].pred[j]]++] = (int32_t)w;
  for (uint32_t v = n; v > 0; v--) (*first)[v] = (*first)[v - 1]; /* ends back to starts */
  (*first)[0] = 0;
  return DS_OK;
}

/* List scheduling: repeatedly take the ready node of highest rank. */
static ds_status list_schedule(struct planner *P, struct ds__psim *s, ds_plan *plan) {
  ds_graph *g = P->g;
  uint32_t n = g->nnodes, nready = 0, *left = ds__calloc(g->ctx, n, sizeof *left), *first = NULL;
  int32_t *ready = ds__alloc(g->ctx, n * sizeof *ready), *succ = NULL;
  ds_status st = left && ready ? ds__graph_successors(g, &first, &succ) : DS_ERR_NO_MEMORY;
  uint64_t rng = P->o->seed;
  for (uint32_t i = 0; st == DS_OK && i < n; i++)
    if (!(left[i] = g->nodes[i].npred)) ready[nready++] = (int32_t)i;
  for (uint32_t placed = 0; st == DS_OK && placed < n; placed++) {
    uint32_t bi = 0;
    for (uint32_t r = 1; r < nready; r++)
      if (P->rank[ready[r]] > P->rank[ready[bi]] ||
          (P->rank[ready[r]] == P->rank[ready[bi]] && ready[r] < ready[bi]))
        bi = r;
    int32_t v = ready[bi];
    ready[bi] = ready[--nready];
    struct ds__pchoice c;
    choose(P, s, v, &rng, &c);
    if ((st = ds__psim_commit(s, v, &c)) != DS_OK) break;
    plan->dev[v] = c.dev;
    plan->order[placed] = v;
    for (uint32_t j = first[v]; j < first[v + 1]; j++) /* last predecessor done: ready */
      if (--left[succ[j]] == 0) ready[nready++] = succ[j];
  }
  ds__free(g->ctx, left);
  ds__free(g->ctx, ready);
  ds__free(g->ctx, first);
  ds__free(g->ctx, succ);
  return st == DS_OK ? DS_OK : ds__error(g->ctx, st, MOD, "plan: out of memory");
}

static ds_status check_opts(ds_graph *g, const struct ds__gplat *pl, const ds_plan_options *o) {
  if (o->struct_size != sizeof *o)
    return ds__error(g->ctx, DS_ERR_ABI, MOD, "ds_plan_options: unknown struct_size %u",
                     o->struct_size);
  if (o->policy < DS_PLAN_HEFT || o->policy > DS_PLAN_EXPLICIT)
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "plan: unknown policy %d", (int)o->policy);
  if (o->policy == DS_PLAN_DEVICE && (o->device < 0 || o->device >= pl->ndev))
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "plan: no device %d (%d present)",
                     (int)o->device, pl->ndev);
  if (o->policy == DS_PLAN_EXPLICIT && !o->placement)
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "plan: explicit policy without placement");
  if (!g->nnodes) return ds__error(g->ctx, DS_ERR_STATE, MOD, "plan: the graph is empty");
  return DS_OK;
}

/* DS_PLAN_DEVICE / DS_PLAN_EXPLICIT: every node not forced by itself goes where the policy
 * says, which must be able to run it. */
static ds_status policy_force(struct planner *P) {
  const ds_plan_options *o = P->o;
  if (o->policy != DS_PLAN_DEVICE && o->policy != DS_PLAN_EXPLICIT) return DS_OK;
  for (uint32_t i = 0; i < P->g->nnodes; i++) {
    if (P->forced[i] >= 0) continue;
    int32_t d = o->policy == DS_PLAN_DEVICE ? o->device : o->placement[i];
    if (d < 0 || d >= P->plat->ndev || !(P->mask[i] >> d & 1))
      return ds__error(P->g->ctx, DS_ERR_INVALID_ARG, MOD,
                       "plan: node '%s' cannot run on device %d (kernel '%s')",
                       P->g->nodes[i].name, (int)d, P->g->nodes[i].k->name);
    P->forced[i] = d;
  }
  return DS_OK;
}

static void planner_free(struct planner *P) {
  ds_context *ctx = P->g->ctx;
  ds__free(ctx, P->mask), ds__free(ctx, P->cost), ds__free(ctx, P->forced);
  ds__free(ctx, P->rank), ds__free(ctx, P->topo);
}

static ds_status plan_alloc(ds_plan **out, struct planner *P) {
  ds_graph *g = P->g;
  uint32_t n = g->nnodes;
  int nd = P->plat->ndev;
  P->mask = ds__calloc(g->ctx, n, sizeof *P->mask);
  P->cost = ds__calloc(g->ctx, (size_t)n * (size_t)nd, sizeof *P->cost);
  P->forced = ds__calloc(g->ctx, n, sizeof *P->forced);
  P->rank = ds__calloc(g->ctx, n, sizeof *P->rank);
  P->topo = ds__calloc(g->ctx, n, sizeof *P->topo);
  ds_plan *p = ds__calloc(g->ctx, 1, sizeof *p);
  if (p) {
    p->g = g;
    p->ctx = g->ctx;
    p->dev = ds__calloc(g->ctx, n, sizeof *p->dev);
    p->order = ds__calloc(g->ctx, n, sizeof *p->order);
  }
  *out = p;
  if (!P->mask || !P->cost || !P->forced || !P->rank || !P->topo || !p || !p->dev || !p->order)
    return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "plan: out of memory");
  p->version = g->version;
  p->nnodes = n;
  return DS_OK;
}

/* One list schedule on a fresh simulation: the plan's placement, order, makespan, bytes. */
static ds_status simulate(struct planner *P, ds_plan *plan) {
  struct ds__psim sim;
  ds_status st = ds__psim_init(&sim, P->g, P->plat);
  if (st != DS_OK) return ds__error(P->g->ctx, st, MOD, "plan: out of memory");
  st = list_schedule(P, &sim, plan);
  plan->makespan_s = sim.makespan;
  plan->bytes_moved = sim.bytes_moved;
  ds__psim_fini(&sim);
  return st;
}

/* a beats b: a shorter makespan, or one within 0.1% that moves fewer bytes. */
static int plan_better(const ds_plan *a, const ds_plan *b) {
  double tol = 1e-3 * b->makespan_s;
  return a->makespan_s < b->makespan_s - tol ||
         (a->makespan_s <= b->makespan_s + tol && a->bytes_moved < b->bytes_moved);
}

/* HEFT places each node greedily at its earliest finish; a few fast slots on a second device
 * can drag data there and back and end later than keeping everything on one device. So the
 * same simulation also runs each single-device plan (nodes forced by themselves or by
 * calibration stay where they are) and the plan keeps whichever finishes first: it is never
 * predicted worse than the best single device. Costs ndev more simulations. */
static ds_status guard_single(struct planner *P, ds_plan *plan) {
  ds_context *ctx = P->g->ctx;
  uint32_t n = P->g->nnodes;
  int32_t *forced = P->forced, *alt_forced = ds__alloc(ctx, n * sizeof *alt_forced);
  ds_plan alt = *plan;
  alt.dev = ds__alloc(ctx, n * sizeof *alt.dev);
  alt.order = ds__alloc(ctx, n * sizeof *alt.order);
  ds_status st = alt_forced && alt.dev && alt.order ? DS_OK : DS_ERR_NO_MEMORY;
  if (st != DS_OK) st = ds__error(ctx, st, MOD, "plan: out of memory");
  for (int d = 0; st == DS_OK && d < P->plat->ndev; d++) {
    int all = 1;
    for (uint32_t i = 0; i < n && all; i++) {
      alt_forced[i] = forced[i] >= 0 ? forced[i] : d;
      all = forced[i] >= 0 || (P->mask[i] >> d & 1);
    }
    if (!all) continue;
    P->forced = alt_forced;
    st = simulate(P, &alt);
    P->forced = forced;
    if (st == DS_OK && plan_better(&alt, plan)) {
      memcpy(plan->dev, alt.dev, n * sizeof *alt.dev);
      memcpy(plan->order, alt.order, n * sizeof *alt.order);
      plan->makespan_s = alt.makespan_s;
      plan->bytes_moved = alt.bytes_moved;
    }
  }
  ds__free(ctx, alt_forced);
  ds__free(ctx, alt.dev);
  ds__free(ctx, alt.order);
  return st;
}

ds_status ds__graph_plan_on(ds_plan **out, ds_graph *g, const struct ds__gplat *plat,
                            const ds_plan_options *opts) {
  ds_plan_options def = DS_PLAN_OPTIONS_INIT;
  const ds_plan_options *o = opts ? opts : &def;
  *out = NULL;
  ds_status st = check_opts(g, plat, o);
  if (st != DS_OK) return st;
  struct planner P = {.g = g, .plat = plat, .o = o};
  ds_plan *plan = NULL;
  if ((st = plan_alloc(&plan, &P)) != DS_OK) goto fail;
  if ((st = ds__graph_topo(g, P.topo)) != DS_OK) goto fail;
  if ((st = node_masks(&P)) != DS_OK) goto fail;
  if ((st = policy_force(&P)) != DS_OK) goto fail;
  if ((st = node_costs(&P, o->policy == DS_PLAN_HEFT && o->calibrate)) != DS_OK) goto fail;
  node_ranks(&P);
  if ((st = simulate(&P, plan)) != DS_OK) goto fail;
  if (o->policy == DS_PLAN_HEFT && plat->guard && (st = guard_single(&P, plan)) != DS_OK)
    goto fail;
  plan->calibrating = P.calibrating;
  plan->pool_cap = plat->host_pus;
  for (int d = 0; d < plat->ndev; d++) { /* a device cannot hold more cores than exist */
    int pus = plat->host_pus > 0 && plat->dev[d].host_pus > 0 ? plat->dev[d].host_pus : 0;
    plan->dev_pus[d] = pus < plat->host_pus ? pus : plat->host_pus;
  }
  planner_free(&P);
  *out = plan;
  return DS_OK;
fail:
  planner_free(&P);
  ds_plan_destroy(plan);
  return st;
}

ds_status ds_graph_plan(ds_plan **out, ds_graph *g, const ds_plan_options *opts) {
  if (out) *out = NULL;
  if (!out || !g) return ds__error(g ? g->ctx : NULL, DS_ERR_INVALID_ARG, MOD, "plan: NULL argument");
  struct ds__gplat plat;
  int32_t *home = ds__calloc(g->ctx, g->nbufs ? g->nbufs : 1, sizeof *home);
  uint8_t *copy = ds__calloc(g->ctx, g->nbufs ? g->nbufs : 1, sizeof *copy);
  ds_status st = home && copy ? ds__gfab_platform(g->ctx, &plat, g, home, copy)
                              : ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "plan: out of memory");
  if (st == DS_OK) st = ds__graph_plan_on(out, g, &plat, opts);
  ds__free(g->ctx, home);
  ds__free(g->ctx, copy);
  return st;
}

void ds_plan_destroy(ds_plan *p) {
  if (!p) return;
  ds_context *ctx = p->ctx;
  ds__free(ctx, p->dev);
  ds__free(ctx, p->order);
  ds__free(ctx, p);
}

ds_status ds_plan_device(const ds_plan *p, int32_t node, int32_t *device) {
  if (!p || !device || node < 0 || (uint32_t)node >= p->nnodes)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, MOD, "plan: bad node %d", (int)node);
  *device = p->dev[node];
  return DS_OK;
}

ds_status ds_plan_get_info(const ds_plan *p, ds_plan_info *out) {
  if (!p || !out) return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, MOD, "plan: NULL");
  if (out->struct_size != sizeof *out)
    return ds__error(p->ctx, DS_ERR_ABI, MOD, "ds_plan_info: unknown struct_size %u",
                     out->struct_size);
  out->nodes = p->nnodes;
  out->makespan_s = p->makespan_s;
  out->bytes_moved = p->bytes_moved;
  out->calibrating = p->calibrating;
  return DS_OK;
}
