/* Prefetch: two predictors per stream of gets (ds_cache_get is stream 0; ds_cache_get_stream
 * names one) — a stride detector for keys that end in a number (ASCII digits, or a whole 4- or
 * 8-byte little-endian integer key; sequential is stride 1), and a Markov successor table
 * (key -> the key its stream read right after it) for any repeated order — and background
 * tasks on the context's executor that move predicted keys (or hinted ones) from L2 up to L1
 * before they are read. Streams live in a direct-mapped table of DS__PF_STREAMS detectors (a
 * new stream in a taken slot restarts it); the successor table is shared by the streams but
 * learns each key's successor within its own stream. It is direct-mapped by key hash (a
 * collision overwrites), keys up to DS__PF_KEY bytes; one mutex guards the predictors. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache_internal.h"

#define DS__PF_SLOTS 4096u
#define DS__PF_INFLIGHT 64
#define DS__PF_STREAMS 64

typedef struct {
  uint64_t hash;      /* key this slot describes (0: empty) */
  uint16_t next_klen; /* its successor */
  char next_key[DS__PF_KEY];
} ds__pf_slot;

/* A key read as prefix + number. kind 0: not numeric; 1: trailing ASCII digits; 2: the whole
 * key is a 4-byte, 3: an 8-byte little-endian integer. */
typedef struct {
  int kind;
  size_t prefix_len;
  int digits, padded; /* kind 1: digit count, and whether it had a leading zero */
  uint64_t num, prefix_hash;
} ds__numkey;

/* One stream's detector. */
typedef struct {
  uint64_t id;        /* stream id + 1 (0: slot unused) */
  uint64_t last_hash; /* the stream's previous key (Markov: its successor is learned) */
  ds__numkey last;    /* stride detector: the previous key, */
  int64_t stride;     /* the last difference, */
  int confirmed;      /* and whether it repeated */
  uint32_t npred;     /* the hashes of the keys predicted at the previous get */
  uint64_t pred[16];
} ds__pf_stream;

struct ds__prefetch {
  pthread_mutex_t mu;
  uint32_t depth;
  int stat[3];        /* cache.prefetch.predicted_stride, _markov, .correct */
  ds__atomic_i64 inflight;
  ds__pf_stream streams[DS__PF_STREAMS];
  ds__pf_slot slots[DS__PF_SLOTS];
};

typedef struct {
  ds_cache *c;
  uint16_t klen;
  char key[DS__PF_KEY];
} ds__pf_task;

ds_status ds__prefetch_create(ds_cache *c, uint32_t depth) {
  c->pf = ds__calloc(c->ctx, 1, sizeof *c->pf);
  if (!c->pf) return DS_ERR_NO_MEMORY;
  pthread_mutex_init(&c->pf->mu, NULL);
  c->pf->depth = depth;
  static const char *const names[3] = {"cache.prefetch.predicted_stride",
                                       "cache.prefetch.predicted_markov", "cache.prefetch.correct"};
  for (int i = 0; i < 3; i++) c->pf->stat[i] = ds__stat_register(c->ctx, names[i], DS_STAT_COUNTER);
  return DS_OK;
}

void ds__prefetch_destroy(ds_cache *c) {
  if (!c->pf) return;
  /* tasks hold c: wait for the queued ones (they are short) */
  while (ds__load(&c->pf->inflight) > 0) {
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_destroy(&c->pf->mu);
  ds__free(c->ctx, c->pf);
  c->pf = NULL;
}

/* Moves key up from L2 to L1 if it is there. The entry is held (so nothing evicts or frees
 * it) while it is decoded outside the shard lock, so gets on the shard are not blocked. */
static void ds__prefetch_run(void *arg) {
  ds__pf_task *t = arg;
  ds_cache *c = t->c;
  uint64_t h = ds__cache_hash(t->key, t->klen);
  ds__shard *sh = ds__cache_shard(c, h);
  ds__shard_lock(sh);
  ds__centry *e = ds__shard_find(sh, h, t->key, t->klen);
  if (e && e->tier == 2 && sh->pol[0]) {
    ds__centry_hold(sh, e);
    void *src = e->data;
    size_t slen = ds__cold(e)->slen, vlen = e->vlen;
    uint32_t enc = ds__cold(e)->enc;
    ds__shard_unlock(sh);
    uint8_t mem;
    void *plain = ds__value_alloc(c, vlen, &mem);
    ds_status st = plain ? ds__codec_decode(c->ctx, enc, src, slen, plain, vlen) : DS_ERR_NO_MEMORY;
    ds__shard_lock(sh);
    if (st == DS_OK && !e->dead && e->tier == 2 && ds__cold(e)->holds == 1) {
      ds__centry_adopt_plain(sh, e, plain, mem);
      ds__cold(e)->holds = 0;
      /* not an access (the sketch does not count it), but asked for: admitted */
      sh->pol[0]->speculative = 1;
      ds__place_l1(c, sh, e, 1);
      sh->pol[0]->speculative = 0;
      sh->t[0].prefetched++;
    } else {
      if (plain) ds__value_free(c, plain, mem);
      ds__centry_unhold(c, sh, e);
    }
  }
  ds__shard_unlock(sh);
  ds__free(c->ctx, t);
  ds__fetch_sub(&c->pf->inflight, 1);
}

/* 1 if key is in L2 now (only those are worth a task and a thread wakeup). */
static int ds__prefetch_wanted(ds_cache *c, const void *key, size_t klen) {
  uint64_t h = ds__cache_hash(key, klen);
  ds__shard *sh = ds__cache_shard(c, h);
  pthread_mutex_lock(&sh->mu);
  ds__centry *e = ds__shard_find(sh, h, key, klen);
  int wanted = e && e->tier == 2 && sh->pol[0];
  pthread_mutex_unlock(&sh->mu);
  return wanted;
}

static ds_status ds__prefetch_submit(ds_cache *c, const void *key, size_t klen) {
  if (klen > DS__PF_KEY || ds__load(&c->pf->inflight) >= DS__PF_INFLIGHT ||
      !ds__prefetch_wanted(c, key, klen))
    return DS_OK;
  ds__pf_task *t = ds__alloc(c->ctx, sizeof *t);
  if (!t) return ds__error(c->ctx, DS_ERR_NO_MEMORY, "cache", "out of memory for a prefetch");
  t->c = c;
  t->klen = (uint16_t)klen;
  memcpy(t->key, key, klen);
  ds__fetch_add(&c->pf->inflight, 1);
  ds_status st = ds__executor_submit(c->ctx, ds__prefetch_run, t, DS__PRIO_LOW);
  if (st != DS_OK) {
    ds__fetch_sub(&c->pf->inflight, 1);
    ds__free(c->ctx, t);
  }
  return st;
}

ds_status ds_cache_prefetch(ds_cache *c, const void *key, size_t klen) {
  if (!c || !key || klen == 0 || klen > 65535)
    return ds__error(c ? c->ctx : NULL, DS_ERR_INVALID_ARG, "cache", "prefetch needs a key");
  if (c->disk) return DS_OK;
  if (!c->pf) return DS_OK; /* memory caches create it at creation; a hint may be ignored */
  return ds__prefetch_submit(c, key, klen);
}

static ds__numkey ds__numkey_parse(const unsigned char *k, size_t klen) {
  ds__numkey r = {0, 0, 0, 0, 0, 0};
  if (klen == 4 || klen == 8) {
    uint64_t v = 0;
    for (size_t i = klen; i-- > 0;) v = (v << 8) | k[i];
    r.kind = klen == 4 ? 2 : 3;
    r.num = v;
    return r;
  }
  size_t i = klen;
  while (i > 0 && k[i - 1] >= '0' && k[i - 1] <= '9' && klen - i < 19) i--;
  if (i == klen) return r;
  r.kind = 1;
  r.prefix_len = i;
  r.digits = (int)(klen - i);
  r.padded = k[i] == '0' && r.digits > 1;
  for (size_t j = i; j < klen; j++) r.num = r.num * 10 + (uint64_t)(k[j] - '0');
  r.prefix_hash = ds__cache_hash(k, i);
  return r;
}

/* Writes the key with number v in the shape of n (prefix from key); returns its length or 0. */
static size_t ds__numkey_render(const ds__numkey *n, const unsigned char *key, uint64_t v,
                                char *out) {
  if (n->kind == 2 || n->kind == 3) {
    size_t len = n->kind == 2 ? 4 : 8;
    if (n->kind == 2 && v > UINT32_MAX) return 0;
    for (size_t i = 0; i < len; i++) out[i] = (char)(v >> (8 * i));
    return len;
  }
  char digits[24];
  int d = snprintf(digits, sizeof digits, "%0*llu", n->padded ? n->digits : 1,
                   (unsigned long long)v);
  if (d <= 0 || n->prefix_len + (size_t)d > DS__PF_KEY) return 0;
  memcpy(out, key, n->prefix_len);
  memcpy(out + n->prefix_len, digits, (size_t)d);
  return n->prefix_len + (size_t)d;
}

/* Stride detector: once two successive gets of the same key shape differ by the same non-zero
 * stride, predicts the next depth keys along it. Returns how many it wrote. */
static uint32_t ds__prefetch_strided(ds__pf_stream *pf, uint32_t depth, const unsigned char *key,
                                     size_t klen, char keys[][DS__PF_KEY], uint16_t *lens) {
  ds__numkey cur = ds__numkey_parse(key, klen);
  int same = cur.kind && cur.kind == pf->last.kind && cur.prefix_hash == pf->last.prefix_hash;
  int64_t stride = (int64_t)(cur.num - pf->last.num);
  pf->confirmed = same && stride != 0 && stride == pf->stride;
  pf->stride = same ? stride : 0;
  pf->last = cur;
  uint32_t n = 0;
  for (uint32_t i = 1; pf->confirmed && i <= depth; i++) {
    int64_t v = (int64_t)cur.num + stride * (int64_t)i;
    if (v < 0) break;
    size_t len = ds__numkey_render(&cur, key, (uint64_t)v, keys[n]);
    if (!len) break;
    lens[n++] = (uint16_t)len;
  }
  return n;
}

/* The detector of stream id (a new stream takes over its slot). */
static ds__pf_stream *ds__prefetch_stream(ds__prefetch *pf, uint64_t id) {
  ds__pf_stream *st = &pf->streams[(id * 0x9E3779B97F4A7C15ull) >> 58];
  if (st->id != id + 1) {
    memset(st, 0, sizeof *st);
    st->id = id + 1;
  }
  return st;
}

/* Follows the successor table from hash cur for up to depth keys. */
static uint32_t ds__prefetch_markov(ds__prefetch *pf, uint64_t cur, char keys[][DS__PF_KEY],
                                    uint16_t *lens) {
  uint32_t n = 0;
  while (n < pf->depth) {
    ds__pf_slot *s = &pf->slots[cur % DS__PF_SLOTS];
    if (s->hash != cur || !s->next_klen) break;
    lens[n] = s->next_klen;
    memcpy(keys[n], s->next_key, s->next_klen);
    cur = ds__cache_hash(keys[n], lens[n]);
    n++;
  }
  return n;
}

/* Called after each get of a memory cache with prefetch on: learns (the stream's previous key
 * -> key), scores the stream's last predictions, and submits the predicted successors of key
 * (strided when a stride holds, else Markov). */
void ds__prefetch_observe(ds_cache *c, uint64_t stream, const void *key, size_t klen,
                          uint64_t h) {
  ds__prefetch *pf = c->pf;
  char keys[16][DS__PF_KEY];
  uint16_t lens[16];
  pthread_mutex_lock(&pf->mu);
  ds__pf_stream *st = ds__prefetch_stream(pf, stream);
  int correct = 0;
  for (uint32_t i = 0; i < st->npred && !correct; i++) correct = st->pred[i] == h;
  uint32_t n = ds__prefetch_strided(st, pf->depth, key, klen, keys, lens);
  int strided = n > 0;
  if (st->last_hash && klen <= DS__PF_KEY) {
    ds__pf_slot *s = &pf->slots[st->last_hash % DS__PF_SLOTS];
    s->hash = st->last_hash;
    s->next_klen = (uint16_t)klen;
    memcpy(s->next_key, key, klen);
  }
  st->last_hash = h;
  if (!strided) n = ds__prefetch_markov(pf, h, keys, lens);
  st->npred = n;
  for (uint32_t i = 0; i < n; i++) st->pred[i] = ds__cache_hash(keys[i], lens[i]);
  pthread_mutex_unlock(&pf->mu);
  if (n) ds__stat_add(c->ctx, pf->stat[strided ? 0 : 1], n);
  if (correct) ds__stat_add(c->ctx, pf->stat[2], 1);
  for (uint32_t i = 0; i < n; i++) ds__prefetch_submit(c, keys[i], lens[i]);
}
