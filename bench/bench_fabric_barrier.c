/* Round latency of the timestamp barrier used as a phase barrier (every thread calls
 * ds_fabric_barrier_arrive_and_wait once per round) against pthread_barrier_wait, the anchor,
 * measured in the same run: ns per round, median of several repetitions, 2 and 4 threads.
 * Rows: our default (spin, then futex), our futex-only mode (spin 0), and the anchor.
 * Usage: bench_fabric_barrier [--json] [--rounds N] [--reps N] [--spin NS] */
#include "bench_common.h" /* first: it sets _POSIX_C_SOURCE, which pthread_barrier_t needs */

#include <pthread.h>

#define MAX_THREADS 8

struct run {
  int nthreads;
  long rounds;
  ds_fabric_barrier *b;   /* ours, or NULL for the anchor */
  pthread_barrier_t pb;   /* the anchor */
  pthread_barrier_t start; /* lines the threads up before the clock starts */
  double t0, t1;
};

struct worker {
  struct run *r;
  uint32_t id;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  struct run *r = w->r;
  pthread_barrier_wait(&r->start);
  if (w->id == 0) r->t0 = bench_now_s();
  for (long i = 0; i < r->rounds; i++) {
    if (r->b) {
      if (ds_fabric_barrier_arrive_and_wait(r->b, w->id, DS_FABRIC_BARRIER_FOREVER, NULL) != DS_OK)
        abort();
    } else {
      pthread_barrier_wait(&r->pb);
    }
  }
  if (w->id == 0) r->t1 = bench_now_s();
  return NULL;
}

/* One repetition: ns per round. spin_ns < -1 selects the pthread anchor. */
static double one_rep(ds_context *ctx, int nthreads, long rounds, int64_t spin_ns) {
  struct run r;
  memset(&r, 0, sizeof r);
  r.nthreads = nthreads;
  r.rounds = rounds;
  pthread_barrier_init(&r.start, NULL, (unsigned)nthreads);
  if (spin_ns >= -1) {
    ds_fabric_barrier_options o = DS_FABRIC_BARRIER_OPTIONS_INIT;
    o.participants = (uint32_t)nthreads;
    o.spin_ns = spin_ns;
    if (ds_fabric_barrier_create(&r.b, ctx, &o) != DS_OK) {
      fprintf(stderr, "bench_fabric_barrier: %s\n", ds_context_last_error(ctx));
      exit(1);
    }
  } else {
    pthread_barrier_init(&r.pb, NULL, (unsigned)nthreads);
  }
  pthread_t th[MAX_THREADS];
  struct worker w[MAX_THREADS];
  for (int i = 0; i < nthreads; i++) {
    w[i] = (struct worker){&r, (uint32_t)i};
    pthread_create(&th[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  /* Thread 0 leaves its last round last or nearly so: the gap is one round at most. */
  if (r.b)
    ds_fabric_barrier_destroy(r.b);
  else
    pthread_barrier_destroy(&r.pb);
  pthread_barrier_destroy(&r.start);
  return (r.t1 - r.t0) * 1e9 / (double)rounds;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0, reps = 7;
  long rounds = 20000;
  int64_t spin = -1; /* --spin NS: our first row's spin budget instead of the tunable */
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--rounds")) rounds = atol(argv[i + 1]);
    if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--spin")) spin = atoll(argv[i + 1]);
  }
  if (rounds < 100) rounds = 100;
  if (reps < 1 || reps > 31) reps = 7;
  ds_context *ctx = bench_context("bench_fabric_barrier", NULL, 0);
  static const int threads[] = {2, 4};
  for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
    int n = threads[k];
    /* Interleaved repetitions (anchor, ours, ours spin 0, anchor, ...) so that the other
     * load of a shared machine hits the three alike. */
    double va[32], vo[32], vf[32];
    for (int rep = 0; rep < reps; rep++) {
      va[rep] = one_rep(ctx, n, rounds, -2);
      vo[rep] = one_rep(ctx, n, rounds, spin < -1 ? -1 : spin);
      vf[rep] = one_rep(ctx, n, rounds, 0);
    }
    double anchor = bench_median(va, reps), ours = bench_median(vo, reps);
    double futex = bench_median(vf, reps);
    char c1[48], c2[48];
    snprintf(c1, sizeof c1, "%d_threads", n);
    snprintf(c2, sizeof c2, "%d_threads_spin0", n);
    bench_row r1 = {"fabric_barrier", c1, "ns_per_round", ours, "pthread_barrier_wait",
                    anchor, 1.0, "lower"};
    bench_row r2 = {"fabric_barrier", c2, "ns_per_round", futex, "pthread_barrier_wait",
                    anchor, 1.0, "lower"};
    bench_print(&r1, json, &header);
    bench_print(&r2, json, &header);
  }
  ds_context_destroy(ctx);
  return 0;
}
