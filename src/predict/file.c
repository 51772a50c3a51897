/* The model file: a 64-byte header (magic, version, byte-order marker, shape), the
 * normalisation and the weights as fp32, and an XXH3-64 checksum of everything before it.
 * The loader checks every field before it trusts it, so damaged bytes give DS_ERR_FORMAT. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "predict_internal.h"

#define DS__PRED_MAGIC "DSPRDMDL"
#define DS__PRED_VERSION 1u
#define DS__PRED_ENDIAN 0x01020304u
#define DS__PRED_HDR 64u

static void ds__put32(unsigned char *b, size_t off, uint32_t v) { memcpy(b + off, &v, 4); }
static uint32_t ds__get32(const unsigned char *b, size_t off) {
  uint32_t v;
  memcpy(&v, b + off, 4);
  return v;
}

static size_t ds__pred_file_size(const ds_predictor *p) {
  return DS__PRED_HDR + (2 * (size_t)p->o.nfeatures + p->lay.total) * sizeof(float) + 8;
}

ds_status ds_predictor_save_buffer(const ds_predictor *p, void *buf, size_t cap, size_t *size) {
  if (!p || !size)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  size_t need = ds__pred_file_size(p), F = p->o.nfeatures;
  *size = need;
  if (!buf) return DS_OK;
  if (cap < need)
    return ds__error(p->ctx, DS_ERR_FULL, "predict", "model needs %zu bytes, buffer has %zu", need,
                     cap);
  unsigned char *b = buf;
  memset(b, 0, DS__PRED_HDR);
  memcpy(b, DS__PRED_MAGIC, 8);
  ds__put32(b, 8, DS__PRED_VERSION);
  ds__put32(b, 12, DS__PRED_ENDIAN);
  ds__put32(b, 16, DS__PRED_HDR);
  uint32_t dims[] = {p->o.nfeatures, p->o.window,   p->o.hidden,
                     p->o.layers,    p->o.horizons, p->o.target};
  for (size_t i = 0; i < 6; i++) ds__put32(b, 20 + 4 * i, dims[i]);
  memcpy(b + 44, &p->o.overload_threshold, 4);
  memcpy(b + 48, &p->o.seed, 8);
  uint64_t nf = 2 * F + p->lay.total;
  memcpy(b + 56, &nf, 8);
  /* Casting away const only to take the weight lock: saving does not change the model. */
  ds_predictor *mp = (ds_predictor *)p;
  pthread_mutex_lock(&mp->mu);
  memcpy(b + DS__PRED_HDR, p->mean, F * sizeof(float));
  memcpy(b + DS__PRED_HDR + F * sizeof(float), p->std, F * sizeof(float));
  memcpy(b + DS__PRED_HDR + 2 * F * sizeof(float), p->params, p->lay.total * sizeof(float));
  pthread_mutex_unlock(&mp->mu);
  uint64_t h = XXH3_64bits(b, need - 8);
  memcpy(b + need - 8, &h, 8);
  return DS_OK;
}

static ds_status ds__pred_bad(ds_context *ctx, const char *what) {
  return ds__error(ctx, DS_ERR_FORMAT, "predict", "model: %s", what);
}

/* Validates the header and fills *o; every later size is derived from checked fields. */
static ds_status ds__pred_parse_header(ds_context *ctx, const unsigned char *b, size_t size,
                                       ds_predictor_options *o) {
  if (size < DS__PRED_HDR + 8) return ds__pred_bad(ctx, "truncated header");
  if (memcmp(b, DS__PRED_MAGIC, 8) != 0) return ds__pred_bad(ctx, "not a predictor model");
  if (ds__get32(b, 12) != DS__PRED_ENDIAN)
    return ds__pred_bad(ctx, "written with the other byte order");
  if (ds__get32(b, 8) != DS__PRED_VERSION) return ds__pred_bad(ctx, "unknown version");
  if (ds__get32(b, 16) != DS__PRED_HDR) return ds__pred_bad(ctx, "bad header size");
  ds_predictor_options d = DS_PREDICTOR_OPTIONS_INIT;
  d.nfeatures = ds__get32(b, 20);
  d.window = ds__get32(b, 24);
  d.hidden = ds__get32(b, 28);
  d.layers = ds__get32(b, 32);
  d.horizons = ds__get32(b, 36);
  d.target = ds__get32(b, 40);
  memcpy(&d.overload_threshold, b + 44, 4);
  memcpy(&d.seed, b + 48, 8);
  if (!ds__pred_shape_valid(&d))
    return ds__pred_bad(ctx, "shape out of range");
  ds__pred_layout lay;
  ds__pred_layout_init(&lay, &d);
  uint64_t nf;
  memcpy(&nf, b + 56, 8);
  if (nf != 2 * (uint64_t)d.nfeatures + lay.total) return ds__pred_bad(ctx, "bad weight count");
  if (size != DS__PRED_HDR + nf * sizeof(float) + 8)
    return ds__pred_bad(
        ctx, size < DS__PRED_HDR + nf * sizeof(float) + 8 ? "truncated" : "trailing bytes");
  uint64_t h;
  memcpy(&h, b + size - 8, 8);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* fuzzers must get past it */
  if (h != XXH3_64bits(b, size - 8)) return ds__pred_bad(ctx, "checksum mismatch");
#else
  (void)h;
#endif
  *o = d;
  return DS_OK;
}

ds_status ds_predictor_load_buffer(ds_predictor **out, ds_context *ctx, const void *buf,
                                   size_t size) {
  if (!out || !ctx || (!buf && size))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  *out = NULL;
  const unsigned char *b = buf;
  ds_predictor_options o;
  ds_status st = ds__pred_parse_header(ctx, b, size, &o);
  if (st != DS_OK) return st;
  ds_predictor *p;
  if ((st = ds__pred_alloc(&p, ctx, &o)) != DS_OK) return st;
  size_t F = o.nfeatures;
  memcpy(p->mean, b + DS__PRED_HDR, F * sizeof(float));
  memcpy(p->std, b + DS__PRED_HDR + F * sizeof(float), F * sizeof(float));
  memcpy(p->params, b + DS__PRED_HDR + 2 * F * sizeof(float), p->lay.total * sizeof(float));
  int ok = 1;
  for (size_t f = 0; f < F; f++) ok &= isfinite(p->mean[f]) && isfinite(p->std[f]) && p->std[f] > 0;
  for (size_t i = 0; i < p->lay.total; i++) ok &= isfinite(p->params[i]) != 0;
  if (!ok) {
    ds_predictor_destroy(p);
    return ds__pred_bad(ctx, "non-finite weight or normalisation");
  }
  *out = p;
  return DS_OK;
}

ds_status ds_predictor_save(const ds_predictor *p, const char *path) {
  if (!p || !path)
    return ds__error(p ? p->ctx : NULL, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  size_t n;
  ds_predictor_save_buffer(p, NULL, 0, &n);
  void *buf = ds__alloc(p->ctx, n);
  if (!buf) return ds__error(p->ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate %zu bytes", n);
  ds_predictor_save_buffer(p, buf, n, &n);
  char *tmp = ds__alloc(p->ctx, strlen(path) + 5);
  ds_status st = DS_OK;
  FILE *f = NULL;
  if (!tmp) st = ds__error(p->ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate a path");
  if (st == DS_OK) {
    sprintf(tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    ok = (f && fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
      remove(tmp);
      st = ds__error(p->ctx, DS_ERR_IO, "predict", "cannot write %s", path);
    }
  }
  ds__free(p->ctx, tmp);
  ds__free(p->ctx, buf);
  return st;
}

ds_status ds_predictor_load(ds_predictor **out, ds_context *ctx, const char *path) {
  if (!out || !ctx || !path) return ds__error(ctx, DS_ERR_INVALID_ARG, "predict", "NULL argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return ds__error(ctx, DS_ERR_IO, "predict", "cannot open %s", path);
  long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return ds__error(ctx, DS_ERR_IO, "predict", "cannot size %s", path);
  }
  /* Larger than the largest valid model: reject before allocating. */
  if ((unsigned long)len > (64ul << 20)) {
    fclose(f);
    return ds__pred_bad(ctx, "file too large");
  }
  void *buf = ds__alloc(ctx, len ? (size_t)len : 1);
  if (!buf) {
    fclose(f);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "predict", "cannot allocate %ld bytes", len);
  }
  size_t got = fread(buf, 1, (size_t)len, f);
  fclose(f);
  ds_status st = got == (size_t)len ? ds_predictor_load_buffer(out, ctx, buf, got)
                                    : ds__error(ctx, DS_ERR_IO, "predict", "cannot read %s", path);
  ds__free(ctx, buf);
  return st;
}
