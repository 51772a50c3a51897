/* Graphs: nodes, the dependencies their buffer accesses imply in insertion order (RAW, WAR,
 * WAW, as StarPU's sequential consistency), explicit dependencies, topological order and cycle
 * detection. */
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"

#define MOD "fabric"

ds_status ds_graph_create(ds_graph **out, ds_context *ctx) {
  if (out) *out = NULL;
  if (!out || !ctx) return ds__error(ctx, DS_ERR_INVALID_ARG, MOD, "graph: NULL argument");
  ds_graph *g = ds__calloc(ctx, 1, sizeof *g);
  if (!g) return ds__error(ctx, DS_ERR_NO_MEMORY, MOD, "graph: out of memory");
  g->ctx = ctx;
  *out = g;
  return DS_OK;
}

void ds_graph_destroy(ds_graph *g) {
  if (!g) return;
  for (uint32_t i = 0; i < g->nnodes; i++) ds__free(g->ctx, g->nodes[i].pred);
  for (uint32_t i = 0; i < g->nbufs; i++) ds__free(g->ctx, g->bufs[i].readers);
  ds__free(g->ctx, g->nodes);
  ds__free(g->ctx, g->bufs);
  ds__free(g->ctx, g->hash);
  ds__free(g->ctx, g);
}

/* Grows *arr (of elem bytes each) to hold at least need elements. */
static int grow(ds_context *ctx, void **arr, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return 1;
  uint32_t nc = *cap ? *cap * 2 : 8;
  while (nc < need) nc *= 2;
  void *p = ds__alloc(ctx, (size_t)nc * elem);
  if (!p) return 0;
  if (*arr) memcpy(p, *arr, (size_t)*cap * elem);
  ds__free(ctx, *arr);
  *arr = p;
  *cap = nc;
  return 1;
}

static uint32_t ptr_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (uint32_t)x;
}

int32_t ds__graph_buf_find(const ds_graph *g, const ds_buffer *buf) {
  if (!g->hash_cap) return -1;
  for (uint32_t i = ptr_hash(buf) & (g->hash_cap - 1);; i = (i + 1) & (g->hash_cap - 1)) {
    uint32_t v = g->hash[i];
    if (!v) return -1;
    if (g->bufs[v - 1].buf == buf) return (int32_t)(v - 1);
  }
}

static int hash_insert(ds_graph *g, uint32_t idx) {
  if ((g->nbufs + 1) * 2 > g->hash_cap) {
    uint32_t nc = g->hash_cap ? g->hash_cap * 2 : 64;
    uint32_t *h = ds__calloc(g->ctx, nc, sizeof *h);
    if (!h) return 0;
    ds__free(g->ctx, g->hash);
    g->hash = h;
    g->hash_cap = nc;
    for (uint32_t b = 0; b < idx; b++) {
      uint32_t i = ptr_hash(g->bufs[b].buf) & (nc - 1);
      while (h[i]) i = (i + 1) & (nc - 1);
      h[i] = b + 1;
    }
  }
  uint32_t i = ptr_hash(g->bufs[idx].buf) & (g->hash_cap - 1);
  while (g->hash[i]) i = (i + 1) & (g->hash_cap - 1);
  g->hash[i] = idx + 1;
  return 1;
}

static int32_t buf_get(ds_graph *g, ds_buffer *buf) {
  int32_t i = ds__graph_buf_find(g, buf);
  if (i >= 0) return i;
  if (!grow(g->ctx, (void **)&g->bufs, &g->cap_bufs, g->nbufs + 1, sizeof *g->bufs)) return -1;
  struct ds__gbuf *b = &g->bufs[g->nbufs];
  memset(b, 0, sizeof *b);
  b->buf = buf;
  b->last_writer = -1;
  if (!hash_insert(g, g->nbufs)) return -1;
  return (int32_t)g->nbufs++;
}

static int add_pred(ds_graph *g, struct ds__gnode *n, int32_t p) {
  for (uint32_t i = 0; i < n->npred; i++)
    if (n->pred[i] == p) return 1;
  if (!grow(g->ctx, (void **)&n->pred, &n->cap_pred, n->npred + 1, sizeof *n->pred)) return 0;
  n->pred[n->npred++] = p;
  return 1;
}

/* Dependencies of the new node self on buffer b accessed with mode, then b's new state. */
static int access_deps(ds_graph *g, int32_t self, struct ds__gbuf *b, int mode) {
  struct ds__gnode *n = &g->nodes[self];
  if (b->last_writer >= 0 && !add_pred(g, n, b->last_writer)) return 0; /* RAW, WAW */
  if (mode & DS_ACCESS_WRITE) {
    for (uint32_t i = 0; i < b->nreaders; i++) /* WAR */
      if (b->readers[i] != self && !add_pred(g, n, b->readers[i])) return 0;
    b->last_writer = self;
    b->nreaders = 0;
    return 1;
  }
  if (!grow(g->ctx, (void **)&b->readers, &b->cap_readers, b->nreaders + 1, sizeof *b->readers))
    return 0;
  b->readers[b->nreaders++] = self;
  return 1;
}

static ds_status node_check(ds_graph *g, ds_kernel *k, const ds_graph_access *acc, size_t nacc,
                            const ds_node_options *o) {
  if (o->struct_size != sizeof *o)
    return ds__error(g->ctx, DS_ERR_ABI, MOD, "ds_node_options: unknown struct_size %u",
                     o->struct_size);
  const char *nm = o->name ? o->name : k->name;
  if (k->ctx != g->ctx)
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "node '%s': kernel of another context", nm);
  if (nacc > DS__GRAPH_MAX_ACC || (nacc && !acc))
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "node '%s': %zu accesses (at most %d)", nm,
                     nacc, DS__GRAPH_MAX_ACC);
  if (o->args_len > DS__GRAPH_MAX_ARGS || (o->args_len && !o->args))
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "node '%s': args of %zu bytes (at most %d)",
                     nm, o->args_len, DS__GRAPH_MAX_ARGS);
  if (k->cl_source && k->cl_nargs) {
    size_t sum = 0;
    for (uint32_t i = 0; i < k->cl_nargs; i++) sum += k->cl_arg_sizes[i];
    if (sum != o->args_len)
      return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD,
                       "node '%s': %zu bytes of args, kernel '%s' declares %zu for OpenCL", nm,
                       o->args_len, k->name, sum);
  }
  for (size_t i = 0; i < nacc; i++) {
    if (!acc[i].buf)
      return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "node '%s': access %zu has a NULL buffer",
                       nm, i);
    if (acc[i].mode < DS_ACCESS_READ || acc[i].mode > DS_ACCESS_RW)
      return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "node '%s': access %zu has mode %d", nm,
                       i, (int)acc[i].mode);
    for (size_t j = 0; j < i; j++)
      if (acc[j].buf == acc[i].buf)
        return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD,
                         "node '%s': accesses %zu and %zu name the same buffer", nm, j, i);
  }
  return DS_OK;
}

static void node_fill(struct ds__gnode *n, ds_kernel *k, uint32_t index,
                      const ds_graph_access *acc, size_t nacc, const ds_node_options *o) {
  memset(n, 0, sizeof *n);
  n->k = k;
  if (o->name)
    snprintf(n->name, sizeof n->name, "%s", o->name);
  else
    snprintf(n->name, sizeof n->name, "%.50s#%u", k->name, index);
  n->nacc = (uint32_t)nacc;
  if (nacc) memcpy(n->acc, acc, nacc * sizeof *acc);
  if (o->args_len) memcpy(n->args, o->args, o->args_len);
  n->args_len = o->args_len;
  n->size = o->size;
  memcpy(n->global, o->global, sizeof n->global);
  n->device = o->device;
}

ds_status ds_graph_add(int32_t *out_node, ds_graph *g, ds_kernel *k, const ds_graph_access *acc,
                       size_t nacc, const ds_node_options *opts) {
  if (out_node) *out_node = -1;
  if (!g || !k) return ds__error(g ? g->ctx : NULL, DS_ERR_INVALID_ARG, MOD, "graph: NULL argument");
  ds_node_options def = DS_NODE_OPTIONS_INIT;
  const ds_node_options *o = opts ? opts : &def;
  ds_status st = node_check(g, k, acc, nacc, o);
  if (st != DS_OK) return st;
  if (!grow(g->ctx, (void **)&g->nodes, &g->cap_nodes, g->nnodes + 1, sizeof *g->nodes))
    return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "graph: out of memory");
  int32_t self = (int32_t)g->nnodes;
  node_fill(&g->nodes[self], k, (uint32_t)self, acc, nacc, o);
  g->nnodes++; /* visible before deps so a failure below can be rolled back in one place */
  for (size_t i = 0; i < nacc; i++) {
    int32_t b = buf_get(g, acc[i].buf);
    if (b < 0 || !access_deps(g, self, &g->bufs[b], acc[i].mode)) {
      /* Out of memory half-way: the graph's dependency state is no longer trustworthy. */
      g->version++;
      return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "graph: out of memory adding node '%s'",
                       g->nodes[self].name);
    }
  }
  g->version++;
  if (out_node) *out_node = self;
  return DS_OK;
}

ds_status ds_graph_add_dep(ds_graph *g, int32_t before, int32_t after) {
  if (!g) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "graph: NULL");
  if (before < 0 || after < 0 || (uint32_t)before >= g->nnodes || (uint32_t)after >= g->nnodes ||
      before == after)
    return ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "graph: bad dependency %d -> %d (%u nodes)",
                     (int)before, (int)after, g->nnodes);
  if (!add_pred(g, &g->nodes[after], before))
    return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "graph: out of memory");
  g->version++;
  return DS_OK;
}

ds_status ds_graph_size(const ds_graph *g, uint32_t *nodes, uint32_t *edges) {
  if (!g) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "graph: NULL");
  uint32_t e = 0;
  for (uint32_t i = 0; i < g->nnodes; i++) e += g->nodes[i].npred;
  if (nodes) *nodes = g->nnodes;
  if (edges) *edges = e;
  return DS_OK;
}

/* Names a node on a cycle: from any node left over by Kahn's algorithm, walk to a remaining
 * predecessor until a node repeats; that node lies on a cycle. */
static int32_t cycle_node(const ds_graph *g, const uint32_t *indeg) {
  int32_t v = -1;
  for (uint32_t i = 0; i < g->nnodes && v < 0; i++)
    if (indeg[i]) v = (int32_t)i;
  for (uint32_t steps = 0; steps < g->nnodes; steps++) {
    const struct ds__gnode *n = &g->nodes[v];
    for (uint32_t j = 0; j < n->npred; j++)
      if (indeg[n->pred[j]]) {
        v = n->pred[j];
        break;
      }
  }
  return v;
}

ds_status ds__graph_topo(ds_graph *g, int32_t *order) {
  uint32_t n = g->nnodes, head = 0, tail = 0;
  uint32_t *indeg = ds__calloc(g->ctx, n ? n : 1, sizeof *indeg);
  uint32_t *nsucc = ds__calloc(g->ctx, n + 1, sizeof *nsucc);
  int32_t *succ = NULL;
  uint32_t nedges = 0;
  ds_graph_size(g, NULL, &nedges);
  succ = ds__alloc(g->ctx, (nedges ? nedges : 1) * sizeof *succ);
  if (!indeg || !nsucc || !succ) {
    ds__free(g->ctx, indeg), ds__free(g->ctx, nsucc), ds__free(g->ctx, succ);
    return ds__error(g->ctx, DS_ERR_NO_MEMORY, MOD, "graph: out of memory");
  }
  /* Successor lists in CSR form: nsucc[v]..nsucc[v+1] after the prefix sum. */
  for (uint32_t v = 0; v < n; v++)
    for (uint32_t j = 0; j < g->nodes[v].npred; j++) nsucc[g->nodes[v].pred[j] + 1]++;
  for (uint32_t v = 0; v < n; v++) nsucc[v + 1] += nsucc[v];
  uint32_t *fill = indeg; /* reused as a cursor first, then recomputed as in-degrees */
  for (uint32_t v = 0; v < n; v++)
    for (uint32_t j = 0; j < g->nodes[v].npred; j++) {
      int32_t p = g->nodes[v].pred[j];
      succ[nsucc[p] + fill[p]++] = (int32_t)v;
    }
  for (uint32_t v = 0; v < n; v++) indeg[v] = g->nodes[v].npred;
  for (uint32_t v = 0; v < n; v++)
    if (!indeg[v]) order[tail++] = (int32_t)v;
  while (head < tail) {
    int32_t v = order[head++];
    for (uint32_t j = nsucc[v]; j < nsucc[v + 1]; j++)
      if (--indeg[succ[j]] == 0) order[tail++] = succ[j];
  }
  ds_status st = DS_OK;
  if (tail < n) {
    int32_t c = cycle_node(g, indeg);
    st = ds__error(g->ctx, DS_ERR_INVALID_ARG, MOD, "graph: node '%s' (%d) is on a cycle",
                   g->nodes[c].name, (int)c);
  }
  ds__free(g->ctx, indeg), ds__free(g->ctx, nsucc), ds__free(g->ctx, succ);
  return st;
}
