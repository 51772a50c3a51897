/* The planning simulation every placement policy shares: per device unit a timeline of busy
 * intervals (a node may be inserted into an idle gap, as in HEFT's insertion policy), and per
 * buffer the time its replica became valid in each memory space (MSI as the fabric keeps it:
 * a read adds a shared replica, a write leaves only the writer's). A node's duration on a
 * device is the transfer of the replicas it lacks there plus its predicted compute time,
 * because the executor acquires a node's buffers when its task starts.
 *
 * Shared cores: devices that compute on the host's cores (CPU workers, an OpenCL CPU device
 * such as PoCL) draw on one pool of plat->host_pus processing units. A node on such a device
 * holds its device's host_pus for its whole slot, and a slot is only taken where the pool
 * has that many free for its whole length (a resource-constrained list schedule). Without
 * this, a PoCL device looks like extra hardware and HEFT overlaps it with CPU nodes that in
 * reality run on the same two cores and slow each other down. */
#include <math.h>
#include <string.h>

#include "partition_internal.h"

ds_status ds__psim_init(struct ds__psim *s, ds_graph *g, const struct ds__gplat *plat) {
  memset(s, 0, sizeof *s);
  s->g = g;
  s->plat = plat;
  int units = 0;
  for (int d = 0; d < plat->ndev; d++) units += plat->dev[d].units > 0 ? plat->dev[d].units : 1;
  s->nunits = units;
  s->units = ds__calloc(g->ctx, (size_t)units, sizeof *s->units);
  s->valid = ds__alloc(g->ctx, (size_t)(g->nbufs ? g->nbufs : 1) * (size_t)plat->nmem *
                                   sizeof *s->valid);
  s->bytes = ds__calloc(g->ctx, g->nbufs ? g->nbufs : 1, sizeof *s->bytes);
  s->aft = ds__calloc(g->ctx, g->nnodes ? g->nnodes : 1, sizeof *s->aft);
  s->unit_pus = ds__calloc(g->ctx, (size_t)units, sizeof *s->unit_pus);
  if (!s->units || !s->valid || !s->bytes || !s->aft || !s->unit_pus) {
    ds__psim_fini(s);
    return DS_ERR_NO_MEMORY;
  }
  for (int d = 0, u = 0; d < plat->ndev; d++) {
    s->dev_unit0[d] = u;
    int nu = plat->dev[d].units > 0 ? plat->dev[d].units : 1, pus = plat->dev[d].host_pus;
    if (!plat->shared || plat->host_pus <= 0 || pus < 0) pus = 0;
    if (pus > plat->host_pus) pus = plat->host_pus; /* it cannot hold more than exist */
    for (int k = 0; k < nu; k++) s->unit_pus[u + k] = pus;
    u += nu;
  }
  for (uint32_t b = 0; b < g->nbufs; b++) {
    s->bytes[b] = ds__gfab_buf_bytes(g->bufs[b].buf);
    int home = plat->buf_home && plat->buf_home[b] >= 0 ? plat->buf_home[b] : 0;
    for (int m = 0; m < plat->nmem; m++) s->valid[b * (uint32_t)plat->nmem + (uint32_t)m] = INFINITY;
    s->valid[b * (uint32_t)plat->nmem + (uint32_t)home] = 0;
  }
  return DS_OK;
}

void ds__psim_fini(struct ds__psim *s) {
  ds_context *ctx = s->g->ctx;
  if (s->units)
    for (int u = 0; u < s->nunits; u++) ds__free(ctx, s->units[u].iv);
  ds__free(ctx, s->units);
  ds__free(ctx, s->valid);
  ds__free(ctx, s->bytes);
  ds__free(ctx, s->aft);
  ds__free(ctx, s->unit_pus);
  memset(s, 0, sizeof *s);
}

/* First interval of unit u ending after t (binary search: intervals are sorted, disjoint). */
static uint32_t unit_after(const struct ds__punit *u, double t) {
  uint32_t lo = 0, hi = u->n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (u->iv[mid].end <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Earliest start >= ready of a dur-long slot on unit u (after the last interval, or in a gap).
 * Intervals ending by ready cannot matter, so the scan starts after them. */
static double unit_slot(const struct ds__punit *u, double ready, double dur, uint32_t *pos) {
  double t = ready;
  uint32_t i = unit_after(u, ready);
  for (; i < u->n; i++) {
    if (t + dur <= u->iv[i].start) break;
    if (u->iv[i].end > t) t = u->iv[i].end;
  }
  *pos = i;
  return t;
}

/* Host processing units held at time p by the pool's units other than skip; *until is the
 * earliest end among the intervals holding them (INFINITY when none). */
static int pool_at(const struct ds__psim *s, int skip, double p, double *until) {
  int held = 0;
  *until = INFINITY;
  for (int v = 0; v < s->nunits; v++) {
    if (v == skip || !s->unit_pus[v]) continue;
    const struct ds__punit *u = &s->units[v];
    uint32_t i = unit_after(u, p);
    if (i < u->n && u->iv[i].start <= p) {
      held += s->unit_pus[v];
      if (u->iv[i].end < *until) *until = u->iv[i].end;
    }
  }
  return held;
}

/* Whether the pool has need units free during all of [t, t + dur). The load only rises where
 * an interval starts, so checking t and every start inside the window finds its peak. If it
 * does not fit, *next is where to try next: for an overloaded point p, the earliest end E of
 * the intervals held at p; no start before E fits (one at or before p still covers p, one in
 * (p, E) still sees every interval held at p), so the latest such E over the overloaded points
 * is safe to jump to. */
static int pool_fits(const struct ds__psim *s, int skip, int need, double t, double dur,
                     double *next) {
  int cap = s->plat->host_pus, ok = 1;
  *next = t;
  for (int v = 0; v < s->nunits; v++) {
    if (v == skip || !s->unit_pus[v]) continue;
    const struct ds__punit *u = &s->units[v];
    for (uint32_t i = unit_after(u, t); i < u->n && u->iv[i].start < t + dur; i++) {
      double until;
      if (pool_at(s, skip, u->iv[i].start > t ? u->iv[i].start : t, &until) + need > cap) {
        ok = 0;
        if (until > *next) *next = until;
      }
    }
  }
  return ok;
}

/* Earliest slot on unit u that the shared pool also has room for; INFINITY when it would not
 * finish before bound (the best finish found elsewhere: searching further cannot win). */
static double pool_slot(const struct ds__psim *s, int u, double ready, double dur, double bound,
                        uint32_t *pos) {
  double t = unit_slot(&s->units[u], ready, dur, pos), next;
  int need = s->unit_pus[u];
  if (!need || dur <= 0) return t;
  while (t + dur < bound && !pool_fits(s, u, need, t, dur, &next))
    t = unit_slot(&s->units[u], next, dur, pos);
  return t + dur < bound ? t : INFINITY;
}

/* Transfer time and bytes for node n's reads to land in memory space ms; each missing replica
 * comes from the valid one that arrives first. */
static double node_xfer(const struct ds__psim *s, const struct ds__gnode *n, int ms,
                        uint64_t *bytes) {
  const struct ds__gplat *pl = s->plat;
  double t = 0;
  *bytes = 0;
  for (uint32_t a = 0; a < n->nacc; a++) {
    if (!(n->acc[a].mode & DS_ACCESS_READ)) continue;
    uint32_t b = (uint32_t)ds__graph_buf_find(s->g, n->acc[a].buf);
    const double *v = &s->valid[b * (uint32_t)pl->nmem];
    if (isfinite(v[ms])) continue;
    double best = INFINITY;
    double (*cost)(void *, int, int, uint64_t) =
        pl->buf_copy && pl->buf_copy[b] && pl->copy_s ? pl->copy_s : pl->xfer_s;
    for (int m = 0; m < pl->nmem; m++)
      if (isfinite(v[m])) {
        double x = cost(pl->user, m, ms, s->bytes[b]);
        if (x < best) best = x;
      }
    if (isfinite(best) && best > 0) { /* 0: the device uses the valid bytes in place */
      t += best;
      *bytes += s->bytes[b];
    }
  }
  return t;
}

void ds__psim_eval(const struct ds__psim *s, int32_t node, int dev, double compute_s,
                   double bound, struct ds__pchoice *c) {
  const struct ds__gnode *n = &s->g->nodes[node];
  double ready = 0;
  for (uint32_t j = 0; j < n->npred; j++)
    if (s->aft[n->pred[j]] > ready) ready = s->aft[n->pred[j]];
  double dur = node_xfer(s, n, s->plat->dev[dev].memspace, &c->bytes) + compute_s;
  int u0 = s->dev_unit0[dev], nu = s->plat->dev[dev].units > 0 ? s->plat->dev[dev].units : 1;
  c->dev = dev;
  c->eft = INFINITY;
  for (int u = u0; u < u0 + nu; u++) {
    uint32_t pos = 0;
    double st = pool_slot(s, u, ready, dur, c->eft < bound ? c->eft : bound, &pos);
    if (st + dur < c->eft) {
      c->eft = st + dur;
      c->est = st;
      c->unit = u;
      c->pos = pos;
    }
  }
}

ds_status ds__psim_commit(struct ds__psim *s, int32_t node, const struct ds__pchoice *c) {
  struct ds__punit *u = &s->units[c->unit];
  if (u->n == u->cap) {
    uint32_t nc = u->cap ? u->cap * 2 : 16;
    struct ds__pinterval *iv = ds__alloc(s->g->ctx, nc * sizeof *iv);
    if (!iv) return DS_ERR_NO_MEMORY;
    if (u->n) memcpy(iv, u->iv, u->n * sizeof *iv);
    ds__free(s->g->ctx, u->iv);
    u->iv = iv;
    u->cap = nc;
  }
  memmove(&u->iv[c->pos + 1], &u->iv[c->pos], (u->n - c->pos) * sizeof *u->iv);
  u->iv[c->pos].start = c->est;
  u->iv[c->pos].end = c->eft;
  u->n++;
  s->aft[node] = c->eft;
  if (c->eft > s->makespan) s->makespan = c->eft;
  s->bytes_moved += c->bytes;
  const struct ds__gnode *n = &s->g->nodes[node];
  int ms = s->plat->dev[c->dev].memspace, nmem = s->plat->nmem;
  for (uint32_t a = 0; a < n->nacc; a++) {
    uint32_t b = (uint32_t)ds__graph_buf_find(s->g, n->acc[a].buf);
    double *v = &s->valid[b * (uint32_t)nmem];
    if (n->acc[a].mode & DS_ACCESS_WRITE) {
      for (int m = 0; m < nmem; m++) v[m] = INFINITY;
      v[ms] = c->eft;
    } else if (!isfinite(v[ms])) {
      v[ms] = c->est;
    }
  }
  return DS_OK;
}
