/* Loading tunables from a config file ("key = value" lines, '#' comments) and from DS_*
 * environment variables. A file is parsed whole before anything is applied, so a bad line
 * leaves the context as it was. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define DS__CONFIG_LINE_MAX 4096
#define DS__CONFIG_FILE_MAX (1 << 20)

static char *ds__trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

static const ds__param_def *ds__param_by_key(const char *key, int *index) {
  for (int i = 0; i < ds__param_count(); i++)
    if (strcasecmp(key, ds__param_at(i)->name) == 0) {
      *index = i;
      return ds__param_at(i);
    }
  return NULL;
}

typedef struct ds__pending {
  int index;
  int64_t value;
} ds__pending;

/* Parses one line into *p; returns 0 on a blank/comment line, 1 on a setting, or an error. */
static ds_status ds__config_line(ds_context *ctx, const char *path, int lineno, char *line,
                                 int creating, ds__pending *p, int *got) {
  *got = 0;
  char *hash = strchr(line, '#');
  if (hash) *hash = '\0';
  char *s = ds__trim(line);
  if (*s == '\0') return DS_OK;
  char *eq = strchr(s, '=');
  if (!eq) return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: missing '=' in \"%s\"", path, lineno, s);
  *eq = '\0';
  char *key = ds__trim(s), *val = ds__trim(eq + 1);
  if (*key == '\0') return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: empty key", path, lineno);
  int index = -1;
  const ds__param_def *d = ds__param_by_key(key, &index);
  if (!d) return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: unknown key '%s'", path, lineno, key);
  int64_t v = 0;
  if (*val == '\0' || !ds__param_parse_value(d, val, &v))
    return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: bad number '%s' for %s", path, lineno, val,
                     d->name);
  if (v < d->min || v > d->max)
    return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: %s = %lld is out of range [%lld, %lld]",
                     path, lineno, d->name, (long long)v, (long long)d->min, (long long)d->max);
  if ((d->flags & DS__PARAM_CREATE_ONLY) && !creating)
    return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: %s can only be set at context creation",
                     path, lineno, d->name);
  p->index = index;
  p->value = v;
  *got = 1;
  return DS_OK;
}

ds_status ds__config_parse(ds_context *ctx, const char *path, const char *data, size_t len,
                           int creating) {
  ds__pending pending[DS__MAX_PARAMS];
  size_t npending = 0;
  char line[DS__CONFIG_LINE_MAX];
  int lineno = 0;
  for (size_t pos = 0; pos < len;) {
    lineno++;
    const char *nl = memchr(data + pos, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
    if (n >= sizeof line)
      return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: line longer than %d bytes", path,
                       lineno, DS__CONFIG_LINE_MAX - 1);
    if (memchr(data + pos, '\0', n))
      return ds__error(ctx, DS_ERR_CONFIG, "core", "%s:%d: NUL byte in line", path, lineno);
    memcpy(line, data + pos, n);
    line[n] = '\0';
    pos += n + (nl != NULL);
    ds__pending p;
    int got = 0;
    ds_status st = ds__config_line(ctx, path, lineno, line, creating, &p, &got);
    if (st != DS_OK) return st;
    if (!got) continue;
    /* A repeated key replaces its earlier value, so the list stays bounded by the table size. */
    size_t k = 0;
    while (k < npending && pending[k].index != p.index) k++;
    pending[k] = p;
    if (k == npending) npending++;
  }
  for (size_t k = 0; k < npending; k++)
    ds__store_relaxed(&ctx->params[pending[k].index], pending[k].value);
  return DS_OK;
}

ds_status ds__config_load_file(ds_context *ctx, const char *path, int creating) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return ds__error(ctx, DS_ERR_CONFIG, "core", "%s: cannot open config file: %s", path,
                     strerror(errno));
  /* Read whole (bounded), so that nothing is applied unless every line is valid. */
  char *buf = ds__alloc(ctx, DS__CONFIG_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "core", "%s: cannot allocate a read buffer", path);
  }
  size_t len = fread(buf, 1, DS__CONFIG_FILE_MAX + 1, f);
  ds_status st = DS_OK;
  if (ferror(f))
    st = ds__error(ctx, DS_ERR_CONFIG, "core", "%s: read error: %s", path, strerror(errno));
  else if (len > DS__CONFIG_FILE_MAX)
    st = ds__error(ctx, DS_ERR_CONFIG, "core", "%s: larger than %d bytes", path,
                   DS__CONFIG_FILE_MAX);
  fclose(f);
  if (st == DS_OK) st = ds__config_parse(ctx, path, buf, len, creating);
  ds__free(ctx, buf);
  return st;
}

/* DS_<NAME> for each tunable, and DS_LOG as the short form of DS_LOG_LEVEL. */
ds_status ds__config_load_env(ds_context *ctx) {
  for (int i = 0; i < ds__param_count(); i++) {
    const ds__param_def *d = ds__param_at(i);
    char env[96] = "DS_";
    size_t n = strlen(d->name);
    if (n + 4 > sizeof env) continue;
    for (size_t k = 0; k < n; k++) env[3 + k] = (char)toupper((unsigned char)d->name[k]);
    env[3 + n] = '\0';
    const char *val = secure_getenv(env); /* ignored by setuid programs */
    if (!val && d->id == DS_PARAM_LOG_LEVEL && (val = secure_getenv("DS_LOG")) != NULL)
      strcpy(env, "DS_LOG");
    if (!val) continue;
    int64_t v = 0;
    if (!ds__param_parse_value(d, val, &v))
      return ds__error(ctx, DS_ERR_CONFIG, "core", "environment %s: bad number '%s'", env, val);
    if (v < d->min || v > d->max)
      return ds__error(ctx, DS_ERR_CONFIG, "core", "environment %s = %lld is out of range [%lld, %lld]",
                       env, (long long)v, (long long)d->min, (long long)d->max);
    ds__store_relaxed(&ctx->params[i], v);
  }
  return DS_OK;
}

ds_status ds_context_load_config(ds_context *ctx, const char *path) {
  if (!ctx || !path)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "core", "ds_context_load_config: %s is NULL",
                     ctx ? "path" : "ctx");
  return ds__config_load_file(ctx, path, 0);
}
