/* deepseek-tune: constraints between parameters. A constraint is a small expression over the
 * point's values (integers, parameter names, + - * / %, parentheses, comparisons, && || !),
 * parsed by recursive descent each time it is evaluated: spaces are small (the grid at most
 * 2^24 points, TPE a few dozen candidates per proposal) and a parse costs well under a
 * microsecond, so no syntax tree is kept. Values are doubles; a comparison or logic operator
 * gives 1 or 0, and a point satisfies the constraint when the value is nonzero. Division by
 * zero makes the point infeasible rather than failing the search. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tune.h"

typedef struct dtu_ex {
  const char *p;
  const dtu_space *s;
  const int *idx;
  const char *err; /* the first error, NULL while none */
} dtu_ex;

static double dtu_ex_or(dtu_ex *e);

static void dtu_ex_skip(dtu_ex *e) {
  while (isspace((unsigned char)*e->p)) e->p++;
}

static int dtu_ex_eat(dtu_ex *e, const char *tok) {
  dtu_ex_skip(e);
  size_t n = strlen(tok);
  if (strncmp(e->p, tok, n) != 0) return 0;
  /* "<" must not take the first byte of "<=", nor "!" of "!=", nor "=" alone */
  if (n == 1 && strchr("<>!", tok[0]) && e->p[1] == '=') return 0;
  e->p += n;
  return 1;
}

static double dtu_ex_fail(dtu_ex *e, const char *why) {
  if (!e->err) e->err = why;
  return 0;
}

/* A parameter's value at the point: its config key, or its DS_ variable, any case. */
static double dtu_ex_name(dtu_ex *e) {
  const char *start = e->p;
  while (isalnum((unsigned char)*e->p) || *e->p == '_') e->p++;
  size_t n = (size_t)(e->p - start);
  if (n > 3 && !strncasecmp(start, "DS_", 3)) start += 3, n -= 3;
  for (int i = 0; i < e->s->n; i++)
    if (strlen(e->s->p[i].name) == n && !strncasecmp(e->s->p[i].name, start, n))
      return (double)e->s->p[i].values[e->idx[i]];
  return dtu_ex_fail(e, "a name that is not a --param given before the constraint");
}

static double dtu_ex_primary(dtu_ex *e) {
  dtu_ex_skip(e);
  if (dtu_ex_eat(e, "(")) {
    double v = dtu_ex_or(e);
    if (!dtu_ex_eat(e, ")")) return dtu_ex_fail(e, "a missing )");
    return v;
  }
  if (dtu_ex_eat(e, "-")) return -dtu_ex_primary(e);
  if (dtu_ex_eat(e, "!")) return dtu_ex_primary(e) == 0;
  if (isdigit((unsigned char)*e->p)) {
    char *end;
    double v = strtod(e->p, &end);
    e->p = end;
    return v;
  }
  if (isalpha((unsigned char)*e->p) || *e->p == '_') return dtu_ex_name(e);
  return dtu_ex_fail(e, *e->p ? "an unexpected character" : "an unexpected end");
}

static double dtu_ex_product(dtu_ex *e) {
  double v = dtu_ex_primary(e);
  for (;;) {
    if (dtu_ex_eat(e, "*")) v *= dtu_ex_primary(e);
    else if (dtu_ex_eat(e, "/") || dtu_ex_eat(e, "%")) {
      int mod = e->p[-1] == '%';
      double d = dtu_ex_primary(e);
      if (d == 0) return dtu_ex_fail(e, "division by zero");
      v = mod ? fmod(v, d) : v / d;
    } else return v;
  }
}

static double dtu_ex_sum(dtu_ex *e) {
  double v = dtu_ex_product(e);
  for (;;) {
    if (dtu_ex_eat(e, "+")) v += dtu_ex_product(e);
    else if (dtu_ex_eat(e, "-")) v -= dtu_ex_product(e);
    else return v;
  }
}

static double dtu_ex_compare(dtu_ex *e) {
  double a = dtu_ex_sum(e);
  if (dtu_ex_eat(e, "<=")) return a <= dtu_ex_sum(e);
  if (dtu_ex_eat(e, ">=")) return a >= dtu_ex_sum(e);
  if (dtu_ex_eat(e, "==")) return a == dtu_ex_sum(e);
  if (dtu_ex_eat(e, "!=")) return a != dtu_ex_sum(e);
  if (dtu_ex_eat(e, "<")) return a < dtu_ex_sum(e);
  if (dtu_ex_eat(e, ">")) return a > dtu_ex_sum(e);
  return a;
}

static double dtu_ex_and(dtu_ex *e) {
  double v = dtu_ex_compare(e);
  while (dtu_ex_eat(e, "&&")) {
    double w = dtu_ex_compare(e); /* evaluated always: the parse must go on */
    v = v != 0 && w != 0;
  }
  return v;
}

static double dtu_ex_or(dtu_ex *e) {
  double v = dtu_ex_and(e);
  while (dtu_ex_eat(e, "||")) {
    double w = dtu_ex_and(e);
    v = v != 0 || w != 0;
  }
  return v;
}

/* Evaluates @p expr at the point; *err is NULL or the first error. */
static double dtu_ex_eval(const char *expr, const dtu_space *s, const int *idx,
                          const char **err) {
  dtu_ex e = {expr, s, idx, NULL};
  double v = dtu_ex_or(&e);
  dtu_ex_skip(&e);
  if (*e.p && !e.err) e.err = "trailing text";
  *err = e.err;
  return v;
}

int dtu_space_constrain(dtu_space *s, const char *expr) {
  if (s->nconstraints == DST_MAX_CONSTRAINTS) {
    fprintf(stderr, "deepseek-tune: at most %d constraints\n", DST_MAX_CONSTRAINTS);
    return -1;
  }
  int idx[DST_MAX_PARAMS] = {0};
  const char *err;
  dtu_ex_eval(expr, s, idx, &err);
  if (err && strcmp(err, "division by zero") != 0) {
    fprintf(stderr, "deepseek-tune: --constraint %s: %s\n", expr, err);
    return -1;
  }
  s->constraints[s->nconstraints++] = expr;
  return 0;
}

int dtu_space_feasible(const dtu_space *s, const int *idx) {
  for (int c = 0; c < s->nconstraints; c++) {
    const char *err;
    double v = dtu_ex_eval(s->constraints[c], s, idx, &err);
    if (err || v == 0 || isnan(v)) return 0;
  }
  return 1;
}
