/* bench_cache_hit: L1 hit throughput of ds_cache_get (64-byte and 4 KiB values, 1 and 2
 * threads, default policy, 16 shards) against the map a user would otherwise write in the
 * same run: one mutex around a chained hash table, lookup + memcpy. Median of 5 runs. Keys
 * are uniform over 8192 16-byte keys (--keys N: N keys, so a hot set that fits in the caches
 * can be measured next to the default one: 8192 x 4 KiB = 32 MiB, more than this machine's
 * L2 and about its L3; spread over the shards); with 2 threads both read the
 * same keys (case ..._2thr, "shared") or each its own half (..._2thr_ownkeys). Both sides
 * copy the value out. The ref_hit_* cases time the zero-copy get instead: ds_cache_get_ref +
 * ds_cache_release against the same map handing out a pointer to the value with a reference
 * count (taken under the mutex, dropped with an atomic decrement); both sides read the
 * value's first and last byte, nothing is copied.
 * Two metrics per case: hits per wall-clock second per thread, and hits per CPU second of
 * the thread (CLOCK_THREAD_CPUTIME_ID: the per-core rate, which time slices lost to other
 * processes on a shared machine do not dilute).
 * The put_* case times puts that replace a random key's value (one thread): ds_cache_put
 * against the map's lock, lookup, malloc + memcpy of the new value and free of the old.
 * --case PREFIX runs only the cases whose name starts with PREFIX (e.g. ref_hit).
 * --huge-pages 0|1|2 sets the tunable cache_l1_huge_pages (default 1: L1 values and entries
 * in the cache's arena on transparent huge pages; 0: on the heap, as the anchor's).
 * usage: bench_cache_hit [--json] [--policy NAME] [--size 64|4096] [--keys N] [--case P]
 *                        [--huge-pages M] */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <pthread.h>
#include <stdint.h>

#include "bench_common.h"

#define MAXKEYS (1u << 20)
#define OPS 500000
#define REPS 5

/* ---- anchor: one mutex, chained hash table ---- */
typedef struct anode {
  struct anode *next;
  char key[16];
  size_t vlen;
  unsigned char *val;
  long refs; /* references handed out by amap_ref and not yet dropped */
} anode;

typedef struct {
  pthread_mutex_t mu;
  anode **b; /* nkeys * 2 buckets */
} amap;

static uint32_t nkeys = 8192; /* --keys */

static uint64_t fnv(const void *k, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)k)[i]) * 1099511628211ULL;
  return h;
}

static int amap_get(amap *m, const char *key, void *out, size_t cap) {
  pthread_mutex_lock(&m->mu);
  anode *n = m->b[fnv(key, 16) % (nkeys * 2)];
  while (n && memcmp(n->key, key, 16)) n = n->next;
  int ok = n && n->vlen <= cap;
  if (ok) memcpy(out, n->val, n->vlen);
  pthread_mutex_unlock(&m->mu);
  return ok;
}

/* The anchor's zero-copy get: the node (value pointer, length) with one more reference. */
static anode *amap_ref(amap *m, const char *key) {
  pthread_mutex_lock(&m->mu);
  anode *n = m->b[fnv(key, 16) % (nkeys * 2)];
  while (n && memcmp(n->key, key, 16)) n = n->next;
  if (n) __atomic_add_fetch(&n->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&m->mu);
  return n;
}

static void amap_unref(anode *n) { __atomic_sub_fetch(&n->refs, 1, __ATOMIC_RELEASE); }

/* The anchor's put of an existing key: a new value buffer replaces the old one. */
static int amap_put(amap *m, const char *key, const void *val, size_t vlen) {
  pthread_mutex_lock(&m->mu);
  anode *n = m->b[fnv(key, 16) % (nkeys * 2)];
  while (n && memcmp(n->key, key, 16)) n = n->next;
  unsigned char *v = n ? malloc(vlen) : NULL;
  if (v) {
    memcpy(v, val, vlen);
    free(n->val);
    n->val = v;
    n->vlen = vlen;
  }
  pthread_mutex_unlock(&m->mu);
  return v != NULL;
}

static char (*keys)[16]; /* nkeys keys, generated once: the loops time lookups, not snprintf */

static void key_of(char *k, uint32_t i) {
  memset(k, 0, 16);
  snprintf(k, 16, "key-%08u", i);
}

typedef struct {
  ds_cache *c;
  amap *m;
  size_t vlen;
  uint32_t seed;
  int tid, nthreads, own; /* own: thread tid reads keys tid, tid + nthreads, ... */
  int ref;                /* 1: zero-copy gets (a reference), 0: copying gets, 2: puts */
  long hits;
  double cpu_s; /* CPU time of the thread's loop */
} arg_t;

static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *next_key(arg_t *a) {
  a->seed = a->seed * 1664525u + 1013904223u;
  uint32_t r = a->seed >> 8;
  if (!a->own) return keys[r % nkeys];
  return keys[(r % (nkeys / (uint32_t)a->nthreads)) * (uint32_t)a->nthreads + (uint32_t)a->tid];
}

static volatile unsigned sink; /* the bytes the zero-copy gets read */

static void *run_ours(void *p) {
  arg_t *a = p;
  unsigned char buf[4096] = {0};
  size_t len;
  unsigned acc = 0;
  double t0 = thread_cpu_s();
  for (int i = 0; i < OPS; i++) {
    const char *k = next_key(a);
    if (a->ref == 2) {
      buf[i & 4095] = (unsigned char)i;
      a->hits += ds_cache_put(a->c, k, 16, buf, a->vlen) == DS_OK;
      continue;
    }
    if (!a->ref) {
      a->hits += ds_cache_get(a->c, k, 16, buf, sizeof buf, &len) == DS_OK;
      continue;
    }
    const void *v;
    ds_cache_ref *r;
    if (ds_cache_get_ref(a->c, k, 16, &v, &len, &r) != DS_OK) continue;
    acc += ((const unsigned char *)v)[0] + ((const unsigned char *)v)[len - 1];
    ds_cache_release(a->c, r);
    a->hits++;
  }
  a->cpu_s = thread_cpu_s() - t0;
  sink += acc;
  return NULL;
}

static void *run_anchor(void *p) {
  arg_t *a = p;
  unsigned char buf[4096] = {0};
  unsigned acc = 0;
  double t0 = thread_cpu_s();
  for (int i = 0; i < OPS; i++) {
    if (a->ref == 2) {
      buf[i & 4095] = (unsigned char)i;
      a->hits += amap_put(a->m, next_key(a), buf, a->vlen);
      continue;
    }
    if (!a->ref) {
      a->hits += amap_get(a->m, next_key(a), buf, sizeof buf);
      continue;
    }
    anode *n = amap_ref(a->m, next_key(a));
    if (!n) continue;
    acc += n->val[0] + n->val[n->vlen - 1];
    amap_unref(n);
    a->hits++;
  }
  a->cpu_s = thread_cpu_s() - t0;
  sink += acc;
  return NULL;
}

/* Hits per second per thread, over nthreads threads; *per_cpu: hits per CPU second. */
static double measure(void *(*fn)(void *), ds_cache *c, amap *m, size_t vlen, int nthreads,
                      int own, int ref, double *per_cpu) {
  pthread_t th[2];
  arg_t args[2];
  double t0 = bench_now_s();
  for (int i = 0; i < nthreads; i++) {
    args[i] = (arg_t){c, m, vlen, 12345u + (uint32_t)i * 777u, i, nthreads, own, ref, 0, 0};
    pthread_create(&th[i], NULL, fn, &args[i]);
  }
  long hits = 0;
  double cpu = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    hits += args[i].hits;
    cpu += args[i].cpu_s;
  }
  *per_cpu = cpu > 0 ? (double)hits / cpu : 0;
  double dt = bench_now_s() - t0;
  if (hits != (long)OPS * nthreads) fprintf(stderr, "bench_cache_hit: unexpected misses\n");
  return (double)hits / dt / nthreads;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  const char *policy = NULL, *only_case = "";
  size_t only = 0;
  ds_param_value hp = {DS_PARAM_CACHE_L1_HUGE_PAGES, 0, 1};
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--huge-pages")) hp.value = atol(argv[i + 1]);
    if (!strcmp(argv[i], "--policy")) policy = argv[i + 1];
    if (!strcmp(argv[i], "--size")) only = (size_t)atol(argv[i + 1]);
    if (!strcmp(argv[i], "--keys")) nkeys = (uint32_t)atol(argv[i + 1]);
    if (!strcmp(argv[i], "--case")) only_case = argv[i + 1];
  }
  ds_context *ctx = bench_context("bench_cache_hit", &hp, 1);
  if (nkeys < 2 || nkeys > MAXKEYS) {
    fprintf(stderr, "bench_cache_hit: --keys must be 2..%u\n", MAXKEYS);
    return 2;
  }
  keys = calloc(nkeys, sizeof *keys);
  static amap m;
  m.b = calloc((size_t)nkeys * 2, sizeof *m.b);
  if (!keys || !m.b) return 1;
  pthread_mutex_init(&m.mu, NULL);
  char ksuffix[32] = ""; /* case names carry the key count when it is not the default */
  if (nkeys != 8192) snprintf(ksuffix, sizeof ksuffix, "_%ukeys", nkeys);
  size_t sizes[2] = {64, 4096};
  for (int s = 0; s < 2; s++) {
    if (only && sizes[s] != only) continue;
    ds_cache_options co = DS_CACHE_OPTIONS_INIT;
    co.policy = policy;
    co.l1_bytes = (uint64_t)nkeys * (sizes[s] + 16) * 2 + (1u << 20);
    ds_cache *c = NULL;
    if (ds_cache_create(&c, ctx, &co) != DS_OK) return 1;
    unsigned char *val = calloc(1, sizes[s]);
    for (uint32_t i = 0; i < nkeys; i++) {
      key_of(keys[i], i);
      ds_cache_put(c, keys[i], 16, val, sizes[s]);
    }
    /* the anchor's nodes and values after the cache's puts, so that with the cache's values
     * on the heap (--huge-pages 0) neither side's are interleaved with the other's */
    for (uint32_t i = 0; i < nkeys; i++) {
      char *k = keys[i];
      anode *n = malloc(sizeof *n);
      memcpy(n->key, k, 16);
      n->vlen = sizes[s];
      n->val = malloc(sizes[s]);
      n->refs = 0;
      memcpy(n->val, val, sizes[s]);
      uint64_t b = fnv(k, 16) % (nkeys * 2);
      n->next = m.b[b];
      m.b[b] = n;
    }
    /* copying: 1 thread; 2 threads shared keys; 2 threads own keys; zero-copy: 1 thread,
     * 2 threads shared keys; puts: 1 thread */
    for (int v = 0; v < 6; v++) {
      int nt = v == 0 || v == 3 || v == 5 ? 1 : 2, own = v == 2, ref = v == 5 ? 2 : v >= 3;
      static const char *const kind[3] = {"l1_hit", "ref_hit", "put"};
      char name[64];
      snprintf(name, sizeof name, "%s_%zuB_%dthr%s%s", kind[ref], sizes[s], nt,
               own ? "_ownkeys" : "", ksuffix);
      if (strncmp(name, only_case, strlen(only_case))) continue;
      double ours[REPS], anchor[REPS], ours_cpu[REPS], anchor_cpu[REPS];
      for (int r = 0; r < REPS; r++) {
        ours[r] = measure(run_ours, c, &m, sizes[s], nt, own, ref, &ours_cpu[r]);
        anchor[r] = measure(run_anchor, c, &m, sizes[s], nt, own, ref, &anchor_cpu[r]);
      }
      const char *an = ref == 1   ? "mutex+hash map+refcount"
                       : ref == 2 ? "mutex+hash map+malloc"
                                  : "mutex+hash map";
      bench_row row = {"bench_cache_hit", name, ref == 2 ? "Mputs_s_per_thr" : "Mhits_s_per_thr",
                       bench_median(ours, REPS) / 1e6,
                       an, bench_median(anchor, REPS) / 1e6, 1.0, "higher"};
      bench_print(&row, json, &header);
      bench_row cpu = {"bench_cache_hit", name, ref == 2 ? "Mputs_per_cpu_s" : "Mhits_per_cpu_s",
                       bench_median(ours_cpu, REPS) / 1e6, an,
                       bench_median(anchor_cpu, REPS) / 1e6, 1.0, "higher"};
      bench_print(&cpu, json, &header);
    }
    for (uint64_t b = 0; b < (uint64_t)nkeys * 2; b++)
      for (anode *n = m.b[b], *nx; n; n = nx) {
        nx = n->next;
        free(n->val);
        free(n);
      }
    memset(m.b, 0, (size_t)nkeys * 2 * sizeof *m.b);
    free(val);
    ds_cache_destroy(c);
  }
  ds_context_destroy(ctx);
  free(m.b);
  free(keys);
  return 0;
}
