/* cache_sim: replays cache access traces through every eviction policy of the cache module at
 * cache sizes that are fractions of the trace's unique keys, and prints miss ratios; optionally
 * compares them with a reference CSV (libCacheSim's reference_miss_ratios.csv).
 * Conventions (those of the reference): every object has size 1, cache size = floor(fraction x
 * unique keys) objects, no warm-up, miss ratio = misses / requests.
 *
 * usage: cache_sim [--json] [--summary] [--policies a,b,..] [--fractions f,..]
 *                  [--reference reference_miss_ratios.csv] PATH...
 *   PATH: a trace file or a directory (its trace files, one level of subdirectories).
 *   Exit status 2 when --reference is given and an LRU, Belady, ARC or SIEVE count differs. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench_common.h"
#include "cachetrace.h"
#include "policy.h"

#define MAX_FILES 256
#define MAX_REFS 4096
#define MAX_ITEMS 32

typedef struct {
  char trace[64], policy[32];
  double fraction, miss_ratio;
  long requests;
} ref_row;

static ref_row refs[MAX_REFS];
static int nrefs;

static int split(char *s, char **out, int max) {
  int n = 0;
  for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) out[n++] = tok;
  return n;
}

static int load_reference(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cache_sim: cannot open reference %s\n", path);
    return -1;
  }
  char line[512];
  while (fgets(line, sizeof line, f) && nrefs < MAX_REFS) {
    char *c[8];
    line[strcspn(line, "\r\n")] = 0;
    if (split(line, c, 8) != 7 || !strcmp(c[0], "trace")) continue;
    ref_row *r = &refs[nrefs++];
    snprintf(r->trace, sizeof r->trace, "%s", c[0]);
    snprintf(r->policy, sizeof r->policy, "%s", c[5]);
    r->requests = atol(c[1]);
    r->fraction = atof(c[3]);
    r->miss_ratio = atof(c[6]);
  }
  fclose(f);
  return 0;
}

static const ref_row *find_ref(const char *trace, double fraction, const char *policy) {
  for (int i = 0; i < nrefs; i++)
    if (!strcmp(refs[i].trace, trace) && !strcmp(refs[i].policy, policy) &&
        fabs(refs[i].fraction - fraction) < 1e-9)
      return &refs[i];
  return NULL;
}

static int is_trace_file(const char *name) {
  static const char *const suf[] = {".bin", ".gz", ".xz", ".csv", ".trace"};
  if (strstr(name, "reference_miss_ratios")) return 0;
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++) {
    size_t k = strlen(suf[i]);
    if (n > k && !strcmp(name + n - k, suf[i])) return 1;
  }
  return 0;
}

static char *files[MAX_FILES];
static int nfiles;

static void add_path(const char *path, int depth) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "cache_sim: %s: not found\n", path);
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (nfiles < MAX_FILES) files[nfiles++] = strdup(path);
    return;
  }
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    struct stat s2;
    if (stat(sub, &s2) != 0) continue;
    if (S_ISDIR(s2.st_mode) && depth < 1) add_path(sub, depth + 1);
    else if (!S_ISDIR(s2.st_mode) && is_trace_file(e->d_name) && nfiles < MAX_FILES)
      files[nfiles++] = strdup(sub);
  }
  closedir(d);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One trace name once: the oracleGeneral .bin wins over the same trace in another format. */
static void dedupe_files(void) {
  qsort(files, (size_t)nfiles, sizeof files[0], cmp_str);
  for (int i = 0; i < nfiles; i++) {
    char ni[64];
    ds__cachetrace_name(ni, sizeof ni, files[i]);
    for (int j = 0; j < nfiles; j++) {
      char nj[64];
      if (i == j || !files[i] || !files[j]) continue;
      ds__cachetrace_name(nj, sizeof nj, files[j]);
      if (strcmp(ni, nj)) continue;
      int keep_j = strstr(files[j], ".bin") != NULL;
      int drop = keep_j ? i : (strstr(files[i], ".bin") ? j : (i < j ? j : i));
      free(files[drop]);
      files[drop] = NULL;
    }
  }
}

static long replay(ds_context *ctx, const ds__cachetrace *t, const char *policy, uint64_t size) {
  ds__policy *p;
  if (ds__policy_create(&p, ctx, policy, size, 0, NULL, NULL) != DS_OK) return -1;
  long misses = 0;
  for (size_t i = 0; i < t->n; i++) {
    int r = ds__policy_access(p, t->keys[i], 1, t->next[i]);
    if (r < 0) {
      misses = -1;
      break;
    }
    misses += r == 0;
  }
  if (p->oom) misses = -1; /* a heap could not grow: the counts are not the policy's */
  ds__policy_destroy(p);
  return misses;
}

typedef struct {
  const char *policies[MAX_ITEMS];
  int npol;
  double fractions[MAX_ITEMS];
  int nfrac;
  int json, summary;
  const char *reference;
} sim_opts;

static void parse_list(char *s, sim_opts *o, int fractions) {
  char *items[MAX_ITEMS];
  int n = split(s, items, MAX_ITEMS);
  for (int i = 0; i < n; i++) {
    if (fractions) o->fractions[o->nfrac++] = atof(items[i]);
    else o->policies[o->npol++] = items[i];
  }
}

static int parse_args(int argc, char **argv, sim_opts *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json")) o->json = 1;
    else if (!strcmp(a, "--summary")) o->summary = 1;
    else if (!strcmp(a, "--policies") && i + 1 < argc) parse_list(argv[++i], o, 0);
    else if (!strcmp(a, "--fractions") && i + 1 < argc) parse_list(argv[++i], o, 1);
    else if (!strcmp(a, "--reference") && i + 1 < argc) o->reference = argv[++i];
    else if (a[0] == '-') return -1;
    else add_path(a, 0);
  }
  if (!o->npol)
    for (const char *const *n = ds__policy_names(); *n && o->npol < MAX_ITEMS; n++)
      o->policies[o->npol++] = *n;
  if (!o->nfrac) {
    o->fractions[0] = 0.01, o->fractions[1] = 0.1, o->fractions[2] = 0.5;
    o->nfrac = 3;
  }
  return nfiles ? 0 : -1;
}

static double sums[MAX_ITEMS];
static int counts[MAX_ITEMS];

static int run_trace(ds_context *ctx, const char *path, const sim_opts *o, int *header) {
  ds__cachetrace t;
  ds_status st = ds__cachetrace_load(&t, ctx, path);
  if (st != DS_OK) {
    fprintf(stderr, "cache_sim: skipping %s: %s\n", path, ds_context_last_error(ctx));
    return 0;
  }
  int mismatches = 0;
  for (int f = 0; f < o->nfrac; f++) {
    uint64_t size = (uint64_t)floor(o->fractions[f] * (double)t.unique + 1e-9);
    if (size == 0) size = 1;
    for (int k = 0; k < o->npol; k++) {
      long misses = replay(ctx, &t, o->policies[k], size);
      if (misses < 0) {
        fprintf(stderr, "cache_sim: %s: policy %s failed: %s\n", t.name, o->policies[k],
                ds_context_last_error(ctx));
        continue;
      }
      double mr = (double)misses / (double)t.n;
      sums[k] += mr;
      counts[k]++;
      const ref_row *r = o->reference ? find_ref(t.name, o->fractions[f], o->policies[k]) : NULL;
      /* LRU and Belady are deterministic; so are ARC and SIEVE, which also agree exactly */
      int exact = !strcmp(o->policies[k], "lru") || !strcmp(o->policies[k], "belady") ||
                  !strcmp(o->policies[k], "arc") || !strcmp(o->policies[k], "sieve");
      if (r && exact && lround(r->miss_ratio * (double)r->requests) != misses) mismatches++;
      if (o->json) {
        printf("{\"trace\":\"%s\",\"size\":%llu,\"fraction\":%g,\"policy\":\"%s\","
               "\"miss_ratio\":%.8f", t.name, (unsigned long long)size, o->fractions[f],
               o->policies[k], mr);
        if (r) printf(",\"reference\":%.8f", r->miss_ratio);
        printf("}\n");
        continue;
      }
      if (!*header) {
        printf("%-16s %8s %-10s %10s%s\n", "trace", "size", "policy", "miss_ratio",
               o->reference ? "  reference       diff" : "");
        *header = 1;
      }
      printf("%-16s %8llu %-10s %10.6f", t.name, (unsigned long long)size, o->policies[k], mr);
      if (r) printf("  %10.6f %+10.6f%s", r->miss_ratio, mr - r->miss_ratio,
                    exact && lround(r->miss_ratio * (double)r->requests) != misses ? "  MISMATCH"
                                                                                   : "");
      printf("\n");
    }
  }
  ds__cachetrace_free(&t, ctx);
  return mismatches;
}

static void print_summary(const sim_opts *o) {
  double belady = -1;
  for (int k = 0; k < o->npol; k++)
    if (!strcmp(o->policies[k], "belady") && counts[k]) belady = sums[k] / counts[k];
  if (!o->json) printf("\n%-10s %16s %14s\n", "policy", "mean_miss_ratio", "gap_to_belady");
  for (int k = 0; k < o->npol; k++) {
    if (!counts[k]) continue;
    double m = sums[k] / counts[k];
    if (o->json)
      printf("{\"summary\":\"mean\",\"policy\":\"%s\",\"rows\":%d,\"miss_ratio\":%.8f}\n",
             o->policies[k], counts[k], m);
    else printf("%-10s %16.6f %14.6f\n", o->policies[k], m, belady >= 0 ? m - belady : 0.0);
  }
}

int main(int argc, char **argv) {
  static sim_opts o;
  if (parse_args(argc, argv, &o) != 0) {
    fprintf(stderr, "usage: cache_sim [--json] [--summary] [--policies a,b] [--fractions f,g] "
                    "[--reference CSV] PATH...\n");
    return 1;
  }
  if (o.reference && load_reference(o.reference) != 0) return 1;
  dedupe_files();
  ds_context *ctx = bench_context("cache_sim", NULL, 0);
  int header = 0, mismatches = 0;
  for (int i = 0; i < nfiles; i++)
    if (files[i]) mismatches += run_trace(ctx, files[i], &o, &header);
  if (o.summary) print_summary(&o);
  for (int i = 0; i < nfiles; i++) free(files[i]);
  ds_context_destroy(ctx);
  if (mismatches) fprintf(stderr, "cache_sim: %d LRU/Belady/ARC/SIEVE rows differ from the reference\n",
                          mismatches);
  return mismatches ? 2 : 0;
}
