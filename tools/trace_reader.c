/* The trace reader: a small recursive-descent JSON parser for Chrome Trace Event files that
 * keeps only what the analysis needs (ph, ts, dur, pid, tid, cat, name) and skips the rest.
 * Every read is checked against the end of the buffer; nesting is bounded by DST_MAX_DEPTH. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_report.h"

typedef struct dst_in {
  const char *p, *start, *end;
  dst_trace *t;
} dst_in;

static int dst_fail(dst_in *in, const char *what) {
  if (!in->t->err[0])
    snprintf(in->t->err, sizeof in->t->err, "byte %zu: %s", (size_t)(in->p - in->start), what);
  return -1;
}

static void dst_ws(dst_in *in) {
  while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
    in->p++;
}

static int dst_peek(dst_in *in) {
  dst_ws(in);
  return in->p < in->end ? (unsigned char)*in->p : -1;
}

static int dst_expect(dst_in *in, char c) {
  if (dst_peek(in) != (unsigned char)c) {
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return dst_fail(in, what);
  }
  in->p++;
  return 0;
}

static int dst_hex4(dst_in *in, unsigned *out) {
  if (in->end - in->p < 4) return dst_fail(in, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = in->p[i];
    unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0')
                 : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10)
                 : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10) : 16u;
    if (d == 16) return dst_fail(in, "bad \\u escape");
    v = v * 16 + d;
  }
  in->p += 4;
  *out = v;
  return 0;
}

/* Appends a code point as UTF-8 if it fits (strings longer than the buffer are cut). */
static void dst_put_utf8(char *out, size_t cap, size_t *n, unsigned cp) {
  char b[4];
  size_t k;
  if (cp < 0x80) b[0] = (char)cp, k = 1;
  else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
  else if (cp < 0x10000)
    b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
    b[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
  else
    b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
  if (*n + k < cap) {
    memcpy(out + *n, b, k);
    *n += k;
  }
}

static int dst_escape(dst_in *in, char *out, size_t cap, size_t *n) {
  if (in->p >= in->end) return dst_fail(in, "truncated escape");
  char c = *in->p++;
  const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
  const char *hit = c ? strchr(from, c) : NULL;
  if (hit) {
    dst_put_utf8(out, cap, n, (unsigned char)to[hit - from]);
    return 0;
  }
  if (c != 'u') return dst_fail(in, "bad escape");
  unsigned cp, lo;
  if (dst_hex4(in, &cp)) return -1;
  if (cp >= 0xd800 && cp < 0xdc00 && in->end - in->p >= 6 && in->p[0] == '\\' &&
      in->p[1] == 'u') {
    in->p += 2;
    if (dst_hex4(in, &lo)) return -1;
    cp = (lo >= 0xdc00 && lo < 0xe000) ? 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00) : 0xfffd;
  } else if (cp >= 0xd800 && cp < 0xe000) {
    cp = 0xfffd; /* a lone surrogate */
  }
  dst_put_utf8(out, cap, n, cp);
  return 0;
}

/* A string into out (NUL-terminated, cut to cap - 1 bytes); out may be NULL to skip it. */
static int dst_string(dst_in *in, char *out, size_t cap) {
  char scratch[8];
  if (!out) out = scratch, cap = 1;
  size_t n = 0;
  if (dst_expect(in, '"')) return -1;
  for (;;) {
    if (in->p >= in->end) return dst_fail(in, "unterminated string");
    unsigned char c = (unsigned char)*in->p++;
    if (c == '"') break;
    if (c < 0x20) return dst_fail(in, "control character in string");
    if (c == '\\') {
      if (dst_escape(in, out, cap, &n)) return -1;
    } else if (n + 1 < cap) {
      out[n++] = (char)c;
    }
  }
  out[n] = '\0';
  return 0;
}

static int dst_number(dst_in *in, double *out) {
  char buf[64];
  size_t n = 0;
  dst_ws(in);
  while (in->p < in->end && *in->p && strchr("+-0123456789.eE", *in->p)) {
    if (n + 1 >= sizeof buf) return dst_fail(in, "number too long");
    buf[n++] = *in->p++;
  }
  buf[n] = '\0';
  char *end;
  double v = n ? strtod(buf, &end) : 0;
  if (!n || *end) return dst_fail(in, "bad number");
  if (!isfinite(v)) return dst_fail(in, "number out of range"); /* keeps spans' sums finite */
  if (out) *out = v;
  return 0;
}

static int dst_literal(dst_in *in) {
  static const char *const words[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t k = strlen(words[i]);
    if ((size_t)(in->end - in->p) >= k && memcmp(in->p, words[i], k) == 0) {
      in->p += k;
      return 0;
    }
  }
  return dst_fail(in, "unexpected character");
}

static int dst_skip(dst_in *in, int depth);

/* The members or elements of a container, each handed to skip. */
static int dst_skip_container(dst_in *in, int depth, char close) {
  in->p++;
  if (dst_peek(in) == (unsigned char)close) {
    in->p++;
    return 0;
  }
  for (;;) {
    if (close == '}' && (dst_string(in, NULL, 0) || dst_expect(in, ':'))) return -1;
    if (dst_skip(in, depth + 1)) return -1;
    int c = dst_peek(in);
    if (c == ',') {
      in->p++;
      continue;
    }
    return dst_expect(in, close);
  }
}

static int dst_skip(dst_in *in, int depth) {
  if (depth > DST_MAX_DEPTH) return dst_fail(in, "nested too deeply");
  int c = dst_peek(in);
  if (c == '"') return dst_string(in, NULL, 0);
  if (c == '{') return dst_skip_container(in, depth, '}');
  if (c == '[') return dst_skip_container(in, depth, ']');
  if (c == '-' || (c >= '0' && c <= '9')) return dst_number(in, NULL);
  if (c < 0) return dst_fail(in, "unexpected end");
  return dst_literal(in);
}

static uint32_t dst_hash(const char *cat, const char *name) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *s = cat; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  h = (h ^ 0xffu) * 16777619u;
  for (const char *s = name; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static int dst_grow_hash(dst_trace *t) {
  int cap = t->hash_cap ? t->hash_cap * 2 : 256;
  int *h = malloc((size_t)cap * sizeof *h);
  if (!h) return -1;
  for (int i = 0; i < cap; i++) h[i] = -1;
  for (int i = 0; i < t->nops; i++) {
    uint32_t k = dst_hash(t->ops[i].cat, t->ops[i].name) & (uint32_t)(cap - 1);
    while (h[k] >= 0) k = (k + 1) & (uint32_t)(cap - 1);
    h[k] = i;
  }
  free(t->hash);
  t->hash = h;
  t->hash_cap = cap;
  return 0;
}

/* The op id of (cat, name), added if new; -1 when out of memory. */
static int dst_intern(dst_trace *t, const char *cat, const char *name) {
  if ((t->nops + 1) * 2 > t->hash_cap && dst_grow_hash(t)) return -1;
  uint32_t mask = (uint32_t)(t->hash_cap - 1), k = dst_hash(cat, name) & mask;
  for (; t->hash[k] >= 0; k = (k + 1) & mask) {
    const dst_op *o = &t->ops[t->hash[k]];
    if (!strcmp(o->cat, cat) && !strcmp(o->name, name)) return t->hash[k];
  }
  if (t->nops == t->cap_ops) {
    int cap = t->cap_ops ? t->cap_ops * 2 : 64;
    dst_op *ops = realloc(t->ops, (size_t)cap * sizeof *ops);
    if (!ops) return -1;
    t->ops = ops;
    t->cap_ops = cap;
  }
  char *c = strdup(cat), *n = strdup(name);
  if (!c || !n) {
    free(c);
    free(n);
    return -1;
  }
  t->ops[t->nops] = (dst_op){c, n};
  t->hash[k] = t->nops;
  return t->nops++;
}

static int dst_event_member(dst_in *in, const char *key, dst_event *e, char *cat, char *name,
                            int depth) {
  double v = 0;
  char ph[4];
  if (!strcmp(key, "ph")) {
    if (dst_peek(in) != '"') return dst_skip(in, depth);
    if (dst_string(in, ph, sizeof ph)) return -1;
    e->ph = ph[0];
    return 0;
  }
  if (!strcmp(key, "name") || !strcmp(key, "cat")) {
    if (dst_peek(in) != '"') return dst_skip(in, depth);
    return dst_string(in, key[0] == 'n' ? name : cat, DST_NAME_MAX);
  }
  int numeric = !strcmp(key, "ts") || !strcmp(key, "dur") || !strcmp(key, "pid") ||
                !strcmp(key, "tid");
  int c = dst_peek(in);
  if (!numeric || !(c == '-' || (c >= '0' && c <= '9'))) return dst_skip(in, depth);
  if (dst_number(in, &v)) return -1;
  if (!strcmp(key, "ts")) e->ts = v;
  else if (!strcmp(key, "dur")) e->dur = v;
  else if (v > -9.2e18 && v < 9.2e18) *(key[0] == 'p' ? &e->pid : &e->tid) = (long long)v;
  return 0;
}

static int dst_add_event(dst_in *in, dst_event *e, const char *cat, const char *name) {
  dst_trace *t = in->t;
  if (!e->ph) return 0; /* not an event */
  if (t->nev == DST_MAX_EVENTS) return dst_fail(in, "more than DST_MAX_EVENTS events");
  if (t->nev == t->cap_ev) {
    size_t cap = t->cap_ev ? t->cap_ev * 2 : 1024;
    dst_event *ev = realloc(t->ev, cap * sizeof *ev);
    if (!ev) return dst_fail(in, "out of memory");
    t->ev = ev;
    t->cap_ev = cap;
  }
  e->op = dst_intern(t, cat, name);
  if (e->op < 0) return dst_fail(in, "out of memory");
  t->ev[t->nev++] = *e;
  return 0;
}

static int dst_event_object(dst_in *in, int depth) {
  dst_event e = {0};
  char cat[DST_NAME_MAX] = "", name[DST_NAME_MAX] = "", key[32];
  in->p++; /* '{' */
  if (dst_peek(in) == '}') {
    in->p++;
    return 0;
  }
  for (;;) {
    if (dst_string(in, key, sizeof key) || dst_expect(in, ':') ||
        dst_event_member(in, key, &e, cat, name, depth + 1))
      return -1;
    int c = dst_peek(in);
    if (c == ',') {
      in->p++;
      continue;
    }
    if (dst_expect(in, '}')) return -1;
    return dst_add_event(in, &e, cat, name);
  }
}

static int dst_event_array(dst_in *in, int depth) {
  if (dst_expect(in, '[')) return -1;
  if (dst_peek(in) == ']') {
    in->p++;
    return 0;
  }
  for (;;) {
    int c = dst_peek(in);
    if (c < 0) return 0; /* cut after a comma */
    if ((c == '{' ? dst_event_object(in, depth + 1) : dst_skip(in, depth + 1)) != 0) return -1;
    c = dst_peek(in);
    if (c == ',') {
      in->p++;
      continue;
    }
    /* Chrome tolerates an unterminated array (a trace cut short): so do we. */
    if (c < 0) return 0;
    return dst_expect(in, ']');
  }
}

static int dst_top_object(dst_in *in) {
  char key[32];
  int found = 0;
  in->p++;
  if (dst_peek(in) == '}') {
    in->p++;
    return dst_fail(in, "no traceEvents");
  }
  for (;;) {
    if (dst_string(in, key, sizeof key) || dst_expect(in, ':')) return -1;
    int is_events = !strcmp(key, "traceEvents") && dst_peek(in) == '[';
    if ((is_events ? dst_event_array(in, 1) : dst_skip(in, 1)) != 0) return -1;
    found |= is_events;
    int c = dst_peek(in);
    if (c == ',') {
      in->p++;
      continue;
    }
    if (c < 0 && found) return 0; /* cut short after the events */
    if (dst_expect(in, '}')) return -1;
    return found ? 0 : dst_fail(in, "no traceEvents");
  }
}

int dst_parse(dst_trace *t, const char *buf, size_t len) {
  memset(t, 0, sizeof *t);
  dst_in in = {buf, buf, buf + len, t};
  int c = dst_peek(&in);
  int rc = c == '{' ? dst_top_object(&in) : c == '[' ? dst_event_array(&in, 0)
                                                      : dst_fail(&in, "not a JSON trace");
  if (rc == 0 && dst_peek(&in) >= 0) rc = dst_fail(&in, "trailing bytes after the trace");
  return rc;
}

void dst_free(dst_trace *t) {
  if (!t) return;
  for (int i = 0; i < t->nops; i++) {
    free(t->ops[i].cat);
    free(t->ops[i].name);
  }
  free(t->ops);
  free(t->ev);
  free(t->hash);
  memset(t, 0, sizeof *t);
}
