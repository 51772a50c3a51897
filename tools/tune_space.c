/* deepseek-tune: the search space. Parameters are the library's tunables, named as in a config
 * file; their bounds come from ds_param_bounds(), so a search never tries a value the library
 * would refuse. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune.h"

static int dtu_int(const char *s, const char *end, int64_t *out) {
  char buf[32], *stop;
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  errno = 0;
  long long v = strtoll(buf, &stop, 10);
  if (*stop || errno) return -1;
  *out = v;
  return 0;
}

static int dtu_fail(const char *spec, const char *why) {
  fprintf(stderr, "deepseek-tune: --param %s: %s\n", spec, why);
  return -1;
}

static int dtu_push(dtu_param *p, int64_t v, int64_t lo, int64_t hi, const char *spec) {
  char why[128];
  if (v < lo || v > hi) {
    snprintf(why, sizeof why, "%lld is outside the parameter's range %lld..%lld", (long long)v,
             (long long)lo, (long long)hi);
    return dtu_fail(spec, why);
  }
  if (p->nvalues == DST_MAX_VALUES) return dtu_fail(spec, "more than 1024 values");
  p->values[p->nvalues++] = v;
  return 0;
}

/* "LO:HI[:STEP]" */
static int dtu_range(dtu_param *p, const char *r, int64_t lo, int64_t hi, const char *spec) {
  const char *c1 = strchr(r, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  int64_t a, b, step = 1;
  if (!c1 || dtu_int(r, c1, &a) || dtu_int(c1 + 1, c2 ? c2 : c1 + 1 + strlen(c1 + 1), &b) ||
      (c2 && dtu_int(c2 + 1, c2 + 1 + strlen(c2 + 1), &step)) || step <= 0 || a > b)
    return dtu_fail(spec, "want LO:HI[:STEP] with LO <= HI and STEP > 0");
  for (int64_t v = a; v <= b; v += step) {
    if (dtu_push(p, v, lo, hi, spec)) return -1;
    if (v > INT64_MAX - step) break;
  }
  return 0;
}

int dtu_space_add(dtu_space *s, const char *spec) {
  const char *eq = strchr(spec, '=');
  char name[64];
  if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof name)
    return dtu_fail(spec, "want NAME=LO:HI[:STEP] or NAME=V1,V2,...");
  if (s->n == DST_MAX_PARAMS) return dtu_fail(spec, "at most 16 parameters");
  memcpy(name, spec, (size_t)(eq - spec));
  name[eq - spec] = '\0';
  dtu_param *p = &s->p[s->n];
  memset(p, 0, sizeof *p);
  int64_t lo, hi;
  if (ds_param_from_name(&p->id, name) != DS_OK || ds_param_bounds(p->id, &lo, &hi) != DS_OK)
    return dtu_fail(spec, "not a libdeepseek parameter (see the config keys in context.h)");
  p->name = ds_param_name(p->id);
  const char *v = eq + 1;
  if (strchr(v, ':')) {
    if (dtu_range(p, v, lo, hi, spec)) return -1;
  } else {
    for (const char *c = v;; c++) {
      const char *end = strchr(c, ',');
      int64_t x;
      if (!end) end = c + strlen(c);
      if (dtu_int(c, end, &x)) return dtu_fail(spec, "values must be integers");
      if (dtu_push(p, x, lo, hi, spec)) return -1;
      if (!*end) break;
      c = end;
    }
  }
  for (int i = 0; i < s->n; i++)
    if (s->p[i].id == p->id) return dtu_fail(spec, "parameter given twice");
  s->n++;
  return 0;
}

size_t dtu_space_size(const dtu_space *s) {
  size_t n = 1;
  for (int i = 0; i < s->n; i++) {
    if (n > SIZE_MAX / (size_t)s->p[i].nvalues) return SIZE_MAX;
    n *= (size_t)s->p[i].nvalues;
  }
  return n;
}

void dtu_grid_point(const dtu_space *s, size_t index, int *idx) {
  for (int i = s->n - 1; i >= 0; i--) {
    idx[i] = (int)(index % (size_t)s->p[i].nvalues);
    index /= (size_t)s->p[i].nvalues;
  }
}

void dtu_point_key(char *buf, size_t cap, const dtu_space *s, const int *idx) {
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->n && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%s=%lld", i ? "," : "", s->p[i].name,
                          (long long)s->p[i].values[idx[i]]);
}
