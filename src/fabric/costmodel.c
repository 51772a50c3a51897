/* Kernel cost models: per device key and input size, the count, mean and variance (Welford) of
 * measured run times; a log-log least-squares fit over the sizes seen predicts sizes not seen;
 * a versioned blob is what the persistent cache stores. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph_internal.h"

#define CM_MAGIC 0x4d434744u /* "DGCM" little-endian */
#define CM_VERSION 1u

void ds__cm_init(struct ds__costmodel *cm) {
  memset(cm, 0, sizeof *cm);
  pthread_mutex_init(&cm->mu, NULL);
}

void ds__cm_fini(struct ds__costmodel *cm) { pthread_mutex_destroy(&cm->mu); }

static struct ds__cm_key *cm_key(struct ds__costmodel *cm, const char *key, int create) {
  for (uint32_t i = 0; i < cm->nkeys; i++)
    if (!strcmp(cm->keys[i].key, key)) return &cm->keys[i];
  if (!create || cm->nkeys == DS__CM_MAX_KEYS) return NULL;
  struct ds__cm_key *k = &cm->keys[cm->nkeys++];
  memset(k, 0, sizeof *k);
  snprintf(k->key, sizeof k->key, "%s", key);
  return k;
}

/* The point for size, created if needed; when all slots are used the least-measured point
 * gives way (sizes measured often are the ones plans keep asking about). */
static struct ds__cm_point *cm_point(struct ds__cm_key *k, uint64_t size) {
  for (uint32_t i = 0; i < k->npoints; i++)
    if (k->pts[i].size == size) return &k->pts[i];
  uint32_t slot = k->npoints;
  if (slot == DS__CM_MAX_POINTS) {
    slot = 0;
    for (uint32_t i = 1; i < k->npoints; i++)
      if (k->pts[i].n < k->pts[slot].n) slot = i;
  } else {
    k->npoints++;
  }
  memset(&k->pts[slot], 0, sizeof k->pts[slot]);
  k->pts[slot].size = size;
  return &k->pts[slot];
}

static ds_status cm_record(struct ds__costmodel *cm, const char *key, uint64_t size, double s,
                           int run) {
  pthread_mutex_lock(&cm->mu);
  struct ds__cm_key *k = cm_key(cm, key, 1);
  if (!k) {
    pthread_mutex_unlock(&cm->mu);
    return DS_ERR_FULL;
  }
  if (run && !k->warm) {
    k->warm = 1;
    pthread_mutex_unlock(&cm->mu);
    return DS_OK;
  }
  struct ds__cm_point *p = cm_point(k, size);
  p->n++;
  double d = s - p->mean;
  p->mean += d / (double)p->n;
  p->m2 += d * (s - p->mean);
  cm->dirty = 1;
  pthread_mutex_unlock(&cm->mu);
  return DS_OK;
}

ds_status ds__cm_record(struct ds__costmodel *cm, const char *key, uint64_t size, double s) {
  return cm_record(cm, key, size, s, 0);
}

ds_status ds__cm_record_run(struct ds__costmodel *cm, const char *key, uint64_t size, double s) {
  return cm_record(cm, key, size, s, 1);
}

/* Least squares of log(t) = a + b log(size) over the points; b is kept in [0, 3] so that a
 * fit over a narrow range of sizes cannot extrapolate to absurd times. */
static double cm_fit(const struct ds__cm_key *k, uint64_t size) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  uint32_t n = 0;
  for (uint32_t i = 0; i < k->npoints; i++) {
    const struct ds__cm_point *p = &k->pts[i];
    if (!p->n || p->mean <= 0 || !p->size) continue;
    double x = log((double)p->size), y = log(p->mean);
    sx += x, sy += y, sxx += x * x, sxy += x * y, n++;
  }
  if (n == 0) return NAN;
  double den = (double)n * sxx - sx * sx;
  double b = n >= 2 && den > 1e-12 ? ((double)n * sxy - sx * sy) / den : 1.0;
  if (b < 0) b = 0;
  if (b > 3) b = 3;
  double a = (sy - b * sx) / (double)n;
  return exp(a + b * log((double)(size ? size : 1)));
}

double ds__cm_predict(struct ds__costmodel *cm, const char *key, uint64_t size,
                      uint64_t *samples) {
  double out = NAN;
  uint64_t n = 0;
  pthread_mutex_lock(&cm->mu);
  struct ds__cm_key *k = cm_key(cm, key, 0);
  if (k) {
    for (uint32_t i = 0; i < k->npoints; i++)
      if (k->pts[i].size == size && k->pts[i].n) {
        n = k->pts[i].n;
        out = k->pts[i].mean;
      }
    if (!n) out = cm_fit(k, size);
  }
  pthread_mutex_unlock(&cm->mu);
  if (samples) *samples = n;
  return out;
}

uint64_t ds__cm_wanted(struct ds__costmodel *cm, const char *key, uint64_t size, uint64_t runs,
                       uint64_t max_runs) {
  uint64_t want = runs;
  pthread_mutex_lock(&cm->mu);
  struct ds__cm_key *k = cm_key(cm, key, 0);
  for (uint32_t i = 0; k && i < k->npoints; i++) {
    const struct ds__cm_point *p = &k->pts[i];
    if (p->size != size || p->n < 2 || p->n < runs || p->mean <= 0) continue;
    /* Relative standard error of the mean: sd / sqrt(n) / mean, squared. */
    double rse2 = p->m2 / (double)(p->n - 1) / (double)p->n / (p->mean * p->mean);
    if (rse2 > DS__CM_NOISY_RSE * DS__CM_NOISY_RSE)
      want = p->n + 1 < max_runs ? p->n + 1 : max_runs;
  }
  pthread_mutex_unlock(&cm->mu);
  return want > runs ? want : runs;
}

/* ---- serialisation: u32 magic, u32 version, u32 nkeys; per key u8 len, bytes, u32 npoints;
 * per point u64 size, u64 n, f64 mean, f64 m2; all little-endian ---- */

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) *p++ = (uint8_t)(v >> (8 * i));
  return p;
}
static uint8_t *put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) *p++ = (uint8_t)(v >> (8 * i));
  return p;
}
static uint8_t *put_f64(uint8_t *p, double d) {
  uint64_t v;
  memcpy(&v, &d, 8);
  return put_u64(p, v);
}

ds_status ds__cm_encode(ds_context *ctx, struct ds__costmodel *cm, uint8_t **out, size_t *len) {
  pthread_mutex_lock(&cm->mu);
  size_t n = 12;
  for (uint32_t i = 0; i < cm->nkeys; i++)
    n += 1 + strlen(cm->keys[i].key) + 4 + (size_t)cm->keys[i].npoints * 32;
  uint8_t *buf = ds__alloc(ctx, n), *p = buf;
  if (!buf) {
    pthread_mutex_unlock(&cm->mu);
    return DS_ERR_NO_MEMORY;
  }
  p = put_u32(p, CM_MAGIC);
  p = put_u32(p, CM_VERSION);
  p = put_u32(p, cm->nkeys);
  for (uint32_t i = 0; i < cm->nkeys; i++) {
    const struct ds__cm_key *k = &cm->keys[i];
    size_t kl = strlen(k->key);
    *p++ = (uint8_t)kl;
    memcpy(p, k->key, kl);
    p = put_u32(p + kl, k->npoints);
    for (uint32_t j = 0; j < k->npoints; j++) {
      p = put_u64(p, k->pts[j].size);
      p = put_u64(p, k->pts[j].n);
      p = put_f64(p, k->pts[j].mean);
      p = put_f64(p, k->pts[j].m2);
    }
  }
  cm->dirty = 0;
  pthread_mutex_unlock(&cm->mu);
  *out = buf;
  *len = n;
  return DS_OK;
}

struct reader {
  const uint8_t *p, *end;
  int bad;
};
static uint64_t get_n(struct reader *r, int bytes) {
  if (r->bad || r->end - r->p < bytes) {
    r->bad = 1;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[i] << (8 * i);
  r->p += bytes;
  return v;
}
static double get_f64(struct reader *r) {
  uint64_t v = get_n(r, 8);
  double d;
  memcpy(&d, &v, 8);
  return d;
}

static int cm_decode_key(struct reader *r, struct ds__cm_key *k) {
  size_t kl = (size_t)get_n(r, 1);
  if (r->bad || kl == 0 || kl >= DS__NAME_MAX || r->end - r->p < (ptrdiff_t)kl) return 0;
  memcpy(k->key, r->p, kl);
  k->key[kl] = 0;
  r->p += kl;
  k->npoints = (uint32_t)get_n(r, 4);
  if (r->bad || k->npoints > DS__CM_MAX_POINTS) return 0;
  for (uint32_t j = 0; j < k->npoints; j++) {
    struct ds__cm_point *pt = &k->pts[j];
    pt->size = get_n(r, 8);
    pt->n = get_n(r, 8);
    pt->mean = get_f64(r);
    pt->m2 = get_f64(r);
    if (!isfinite(pt->mean) || pt->mean < 0 || !isfinite(pt->m2) || pt->m2 < 0) return 0;
  }
  return !r->bad;
}

ds_status ds__cm_decode(struct ds__costmodel *cm, const uint8_t *p, size_t len) {
  struct reader r = {p, p + len, 0};
  struct ds__cm_key keys[DS__CM_MAX_KEYS]; /* ~9 KiB: decoded aside, installed if all valid */
  memset(keys, 0, sizeof keys);
  uint32_t magic = (uint32_t)get_n(&r, 4), version = (uint32_t)get_n(&r, 4);
  uint32_t nkeys = (uint32_t)get_n(&r, 4);
  if (r.bad || magic != CM_MAGIC || version != CM_VERSION || nkeys > DS__CM_MAX_KEYS)
    return DS_ERR_FORMAT;
  for (uint32_t i = 0; i < nkeys; i++)
    if (!cm_decode_key(&r, &keys[i])) return DS_ERR_FORMAT;
  if (r.p != r.end) return DS_ERR_FORMAT;
  pthread_mutex_lock(&cm->mu);
  cm->nkeys = nkeys;
  memcpy(cm->keys, keys, nkeys * sizeof *keys);
  cm->dirty = 0;
  pthread_mutex_unlock(&cm->mu);
  return DS_OK;
}
