/* The policy engine's shared parts: creation by name, the node pool, the key -> node hash map,
 * intrusive lists, the indexed heap, the count-min sketch, and the touch/insert/remove calls
 * that every policy goes through. */
#include <string.h>

#include "policy.h"

static const ds__policy_ops *const ds__policy_table[] = {
    &ds__policy_lru,      &ds__policy_lru2,  &ds__policy_arc,    &ds__policy_s3fifo,
    &ds__policy_wtinylfu, &ds__policy_sieve, &ds__policy_belady, &ds__policy_lruk_plus};
#define DS__NPOLICIES (sizeof ds__policy_table / sizeof ds__policy_table[0])

const char *const *ds__policy_names(void) {
  static const char *names[DS__NPOLICIES + 1];
  if (!names[0])
    for (size_t i = 0; i < DS__NPOLICIES; i++) names[i] = ds__policy_table[i]->name;
  return names;
}

static const ds__policy_ops *ds__policy_lookup_ops(const char *name) {
  for (size_t i = 0; name && i < DS__NPOLICIES; i++)
    if (!strcmp(ds__policy_table[i]->name, name)) return ds__policy_table[i];
  return NULL;
}

int ds__policy_is_oracle(const char *name) {
  const ds__policy_ops *o = ds__policy_lookup_ops(name);
  return o ? o->oracle : 0;
}

static uint64_t ds__mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* ---- map ---- */
static ds_status ds__pmap_resize(ds__policy *p, uint32_t cap) {
  uint64_t *k = ds__alloc(p->ctx, (size_t)cap * sizeof *k);
  uint32_t *v = ds__alloc(p->ctx, (size_t)cap * sizeof *v);
  if (!k || !v) {
    ds__free(p->ctx, k);
    ds__free(p->ctx, v);
    return DS_ERR_NO_MEMORY;
  }
  memset(v, 0xff, (size_t)cap * sizeof *v);
  for (uint32_t i = 0; i < p->mcap; i++) {
    if (p->mvals[i] == DS__NIL) continue;
    uint32_t j = (uint32_t)ds__mix64(p->mkeys[i]) & (cap - 1);
    while (v[j] != DS__NIL) j = (j + 1) & (cap - 1);
    k[j] = p->mkeys[i];
    v[j] = p->mvals[i];
  }
  ds__free(p->ctx, p->mkeys);
  ds__free(p->ctx, p->mvals);
  p->mkeys = k;
  p->mvals = v;
  p->mcap = cap;
  return DS_OK;
}

uint32_t ds__pmap_find(const ds__policy *p, uint64_t key) {
  uint32_t m = p->mcap - 1, i = (uint32_t)ds__mix64(key) & m;
  while (p->mvals[i] != DS__NIL) {
    if (p->mkeys[i] == key) return p->mvals[i];
    i = (i + 1) & m;
  }
  return DS__NIL;
}

static ds_status ds__pmap_put(ds__policy *p, uint64_t key, uint32_t val) {
  if ((uint64_t)(p->mcount + 1) * 4 > (uint64_t)p->mcap * 3) {
    if (p->mcap >= (1u << 31)) return DS_ERR_NO_MEMORY;
    ds_status st = ds__pmap_resize(p, p->mcap * 2);
    if (st != DS_OK) return st;
  }
  uint32_t m = p->mcap - 1, i = (uint32_t)ds__mix64(key) & m;
  while (p->mvals[i] != DS__NIL) i = (i + 1) & m;
  p->mkeys[i] = key;
  p->mvals[i] = val;
  p->mcount++;
  return DS_OK;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void ds__pmap_del(ds__policy *p, uint64_t key) {
  uint32_t m = p->mcap - 1, i = (uint32_t)ds__mix64(key) & m;
  while (p->mvals[i] != DS__NIL && p->mkeys[i] != key) i = (i + 1) & m;
  if (p->mvals[i] == DS__NIL) return;
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & m;
    if (p->mvals[j] == DS__NIL) break;
    uint32_t home = (uint32_t)ds__mix64(p->mkeys[j]) & m;
    /* move j back to i when its home is not cyclically in (i, j] */
    if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
      p->mkeys[i] = p->mkeys[j];
      p->mvals[i] = p->mvals[j];
      i = j;
    }
  }
  p->mvals[i] = DS__NIL;
  p->mcount--;
}

/* ---- node pool ---- */
static uint32_t ds__pnode_new(ds__policy *p, uint64_t key) {
  uint32_t n = p->free_head;
  if (n != DS__NIL) {
    p->free_head = p->nodes[n].next;
  } else {
    if (p->nnodes == p->node_cap) {
      uint32_t cap = p->node_cap ? p->node_cap * 2 : 64;
      if (p->node_cap >= (1u << 30)) return DS__NIL;
      ds__pnode *a = ds__alloc(p->ctx, (size_t)cap * sizeof *a);
      if (!a) return DS__NIL;
      if (p->nnodes) memcpy(a, p->nodes, (size_t)p->nnodes * sizeof *a);
      ds__free(p->ctx, p->nodes);
      p->nodes = a;
      p->node_cap = cap;
    }
    n = p->nnodes++;
  }
  if (ds__pmap_put(p, key, n) != DS_OK) {
    p->nodes[n].next = p->free_head;
    p->free_head = n;
    return DS__NIL;
  }
  ds__pnode *x = &p->nodes[n];
  memset(x, 0, sizeof *x);
  x->key = key;
  x->prev = x->next = x->heap = DS__NIL;
  return n;
}

void ds__pnode_drop(ds__policy *p, uint32_t n) {
  ds__pmap_del(p, p->nodes[n].key);
  p->nodes[n].next = p->free_head;
  p->free_head = n;
}

/* ---- lists ---- */
void ds__pghost_trim(ds__policy *p, ds__plist *l, uint64_t max_weight) {
  while (l->weight > max_weight && l->tail != DS__NIL) {
    uint32_t t = l->tail;
    ds__plist_unlink(p, l, t);
    ds__pnode_drop(p, t);
  }
}

void ds__plist_init(ds__plist *l) {
  l->head = l->tail = DS__NIL;
  l->count = 0;
  l->weight = 0;
}

void ds__plist_push_head(ds__policy *p, ds__plist *l, uint32_t n) {
  ds__pnode *x = &p->nodes[n];
  x->prev = DS__NIL;
  x->next = l->head;
  if (l->head != DS__NIL) p->nodes[l->head].prev = n;
  else l->tail = n;
  l->head = n;
  l->count++;
  l->weight += x->weight;
}

void ds__plist_unlink(ds__policy *p, ds__plist *l, uint32_t n) {
  ds__pnode *x = &p->nodes[n];
  if (x->prev != DS__NIL) p->nodes[x->prev].next = x->next;
  else l->head = x->next;
  if (x->next != DS__NIL) p->nodes[x->next].prev = x->prev;
  else l->tail = x->prev;
  x->prev = x->next = DS__NIL;
  l->count--;
  l->weight -= x->weight;
}

/* ---- heap (min on hk; ties by key so replays are deterministic) ---- */
static int ds__pheap_less(ds__policy *p, uint32_t a, uint32_t b) {
  const ds__pnode *x = &p->nodes[a], *y = &p->nodes[b];
  return x->hk < y->hk || (x->hk == y->hk && x->key < y->key);
}

static void ds__pheap_set(ds__policy *p, ds__pheap *h, uint32_t i, uint32_t n) {
  h->a[i] = n;
  p->nodes[n].heap = i;
}

static void ds__pheap_up(ds__policy *p, ds__pheap *h, uint32_t i) {
  uint32_t n = h->a[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!ds__pheap_less(p, n, h->a[parent])) break;
    ds__pheap_set(p, h, i, h->a[parent]);
    i = parent;
  }
  ds__pheap_set(p, h, i, n);
}

static void ds__pheap_down(ds__policy *p, ds__pheap *h, uint32_t i) {
  uint32_t n = h->a[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && ds__pheap_less(p, h->a[c + 1], h->a[c])) c++;
    if (!ds__pheap_less(p, h->a[c], n)) break;
    ds__pheap_set(p, h, i, h->a[c]);
    i = c;
  }
  ds__pheap_set(p, h, i, n);
}

ds_status ds__pheap_push(ds__policy *p, ds__pheap *h, uint32_t n) {
  if (h->n == h->cap) {
    uint32_t cap = h->cap ? h->cap * 2 : 64;
    uint32_t *a = ds__alloc(p->ctx, (size_t)cap * sizeof *a);
    if (!a) return DS_ERR_NO_MEMORY;
    if (h->n) memcpy(a, h->a, (size_t)h->n * sizeof *a);
    ds__free(p->ctx, h->a);
    h->a = a;
    h->cap = cap;
  }
  ds__pheap_set(p, h, h->n++, n);
  ds__pheap_up(p, h, h->n - 1);
  return DS_OK;
}

void ds__pheap_fix(ds__policy *p, ds__pheap *h, uint32_t n) {
  uint32_t i = p->nodes[n].heap;
  ds__pheap_up(p, h, i);
  ds__pheap_down(p, h, p->nodes[n].heap);
}

void ds__pheap_remove(ds__policy *p, ds__pheap *h, uint32_t n) {
  uint32_t i = p->nodes[n].heap;
  p->nodes[n].heap = DS__NIL;
  uint32_t last = h->a[--h->n];
  if (i == h->n) return;
  ds__pheap_set(p, h, i, last);
  ds__pheap_fix(p, h, last);
}

void ds__pheap_free(ds__policy *p, ds__pheap *h) {
  ds__free(p->ctx, h->a);
  h->a = NULL;
  h->n = h->cap = 0;
}

/* ---- count-min sketch: 4 rows of 8-bit cells saturating at 15, halved every 10 x entries
 * samples so old popularity fades (TinyLFU's reset). A key's 4 cells all lie in one 64-byte
 * block (16 cells per row), so an update or estimate touches one cache line and hashes once.
 * ---- */
ds_status ds__sketch_init(ds__policy *p, ds__sketch *s, uint64_t entries) {
  uint32_t blocks = 1;
  while ((uint64_t)blocks * 16 < entries && blocks < (1u << 22)) blocks <<= 1;
  s->c = ds__calloc(p->ctx, (size_t)blocks * 64, 1);
  if (!s->c) return DS_ERR_NO_MEMORY;
  s->mask = blocks - 1;
  s->samples = 0;
  s->reset_at = 10 * (entries ? entries : 1);
  return DS_OK;
}

void ds__sketch_free(ds__policy *p, ds__sketch *s) {
  ds__free(p->ctx, s->c);
  s->c = NULL;
}

/* The 4 cells of key: block from the low bits, one 4-bit offset per row from the high bits. */
static void ds__sketch_cells(const ds__sketch *s, uint64_t key, uint8_t *cells[4]) {
  uint64_t h = ds__mix64(key);
  uint8_t *block = s->c + (size_t)((uint32_t)h & s->mask) * 64;
  for (int r = 0; r < 4; r++) cells[r] = block + r * 16 + ((h >> (32 + 4 * r)) & 15);
}

void ds__sketch_add(ds__sketch *s, uint64_t key) {
  uint8_t *cells[4];
  ds__sketch_cells(s, key, cells);
  for (int r = 0; r < 4; r++)
    if (*cells[r] < 15) (*cells[r])++;
  if (++s->samples >= s->reset_at) {
    for (size_t i = 0; i < (size_t)(s->mask + 1) * 64; i++) s->c[i] >>= 1;
    s->samples /= 2;
  }
}

unsigned ds__sketch_estimate(const ds__sketch *s, uint64_t key) {
  uint8_t *cells[4];
  ds__sketch_cells(s, key, cells);
  unsigned m = 15;
  for (int r = 0; r < 4; r++)
    if (*cells[r] < m) m = *cells[r];
  return m;
}

/* ---- the calls ---- */
ds_status ds__policy_create(ds__policy **out, ds_context *ctx, const char *name, uint64_t capacity,
                            uint64_t entries_hint, ds__policy_evict_fn evict_fn, void *user) {
  *out = NULL;
  const ds__policy_ops *ops = ds__policy_lookup_ops(name);
  if (!ops)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "unknown eviction policy '%s'",
                     name ? name : "(null)");
  if (capacity == 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "cache", "policy capacity must be > 0");
  ds__policy *p = ds__calloc(ctx, 1, sizeof *p);
  if (!p) return ds__error(ctx, DS_ERR_NO_MEMORY, "cache", "out of memory creating a policy");
  p->ctx = ctx;
  p->ops = ops;
  p->capacity = capacity;
  p->entries = entries_hint && entries_hint < capacity ? entries_hint : capacity;
  p->evict_fn = evict_fn;
  p->evict_user = user;
  p->free_head = DS__NIL;
  ds_status st = ds__pmap_resize(p, 64);
  if (st == DS_OK) st = ops->init(p);
  if (st != DS_OK) {
    ds__policy_destroy(p);
    return ds__error(ctx, st, "cache", "out of memory creating policy '%s'", name);
  }
  *out = p;
  return DS_OK;
}

void ds__policy_destroy(ds__policy *p) {
  if (!p) return;
  if (p->state) p->ops->fini(p);
  ds__free(p->ctx, p->state);
  ds__free(p->ctx, p->nodes);
  ds__free(p->ctx, p->mkeys);
  ds__free(p->ctx, p->mvals);
  ds__free(p->ctx, p);
}

int ds__policy_touch(ds__policy *p, uint64_t key, int64_t next) {
  uint32_t n = ds__pmap_find(p, key);
  if (n == DS__NIL || p->nodes[n].ghost) return 0;
  p->tick++;
  p->ops->hit(p, n, next);
  return 1;
}

void ds__policy_evicted(ds__policy *p, uint32_t n, ds__plist *ghost_list, uint8_t ghost_q) {
  ds__pnode *x = &p->nodes[n];
  p->used -= x->weight;
  p->resident--;
  if (p->evict_fn && !(x->pad & 1)) p->evict_fn(p->evict_user, x->key);
  x->pad = 0;
  if (ghost_list) {
    x->ghost = 1;
    x->q = ghost_q;
    ds__plist_push_head(p, ghost_list, n);
  } else {
    ds__pnode_drop(p, n);
  }
}

int ds__policy_insert(ds__policy *p, uint64_t key, uint32_t weight, int64_t next) {
  if (weight == 0 || weight > p->capacity) return 0;
  uint32_t n = ds__pmap_find(p, key);
  int was_ghost = 0;
  if (n != DS__NIL) {
    if (!p->nodes[n].ghost) return 1;
    was_ghost = 1;
  } else {
    n = ds__pnode_new(p, key);
    if (n == DS__NIL) return -1;
  }
  p->tick++;
  ds__pnode *x = &p->nodes[n];
  /* pad bit 0 marks the key being inserted: if the policy declines it, its own caller is told by
   * the return value, not by evict_fn. */
  x->pad = 1;
  p->used += weight;
  p->resident++;
  /* a ghost keeps its list membership; the policy takes it off its ghost list */
  p->ops->insert(p, n, weight, next, was_ghost);
  n = ds__pmap_find(p, key);
  if (n == DS__NIL || p->nodes[n].ghost) return 0;
  p->nodes[n].pad = 0;
  p->last_node = n;
  return 1;
}

int ds__policy_touch_node(ds__policy *p, uint32_t n, uint64_t key, int64_t next) {
  if (n >= p->nnodes || p->nodes[n].key != key || p->nodes[n].ghost)
    return ds__policy_touch(p, key, next);
  p->tick++;
  p->ops->hit(p, n, next);
  return 1;
}

int ds__policy_access(ds__policy *p, uint64_t key, uint32_t weight, int64_t next) {
  if (ds__policy_touch(p, key, next)) return 1;
  int r = ds__policy_insert(p, key, weight, next);
  return r < 0 ? -1 : 0;
}

uint32_t ds__policy_pending(ds__policy *p, uint32_t n) {
  ds__pnode *x = &p->nodes[n];
  uint32_t k = x->freq;
  x->freq = 0;
  if (p->pending_fn) {
    /* the owner's hits reach the frequency sketch only now: its hit path writes nothing but
     * its own entry (one saturating count), so concurrent readers share no written line */
    uint32_t o = p->pending_fn(p->evict_user, x->key);
    for (uint32_t i = 0; i < o && p->ops->note; i++) p->ops->note(p, x->key);
    k += o;
  }
  return k;
}

int ds__policy_remove(ds__policy *p, uint64_t key) {
  uint32_t n = ds__pmap_find(p, key);
  if (n == DS__NIL || p->nodes[n].ghost) return 0;
  p->ops->unlink(p, n);
  p->used -= p->nodes[n].weight;
  p->resident--;
  ds__pnode_drop(p, n);
  return 1;
}
