/* bench_sched_util: the seed's claim "utilisation 68% -> 89%, completion-time variance -62%",
 * on a workload defined here: a batch of 64 jobs of mixed length (busy loops; lengths drawn
 * log-normally, median 0.3 ms, a long tail up to ~6 ms, same sequence for both), run on as
 * many threads as the scheduler has workers:
 *   static  — job i runs on thread i mod N, in order (a static partition, no rebalancing);
 *   ours    — every job a NORMAL task, dynamically balanced (queues + stealing).
 * Utilisation = total job time / (N x batch makespan). Completion time of a job = when it
 * finishes, from the batch start; its variance over the 64 jobs. Medians of 7 batches. The
 * figures are whatever this machine gives; the seed's numbers are the goals.
 * usage: bench_sched_util [--json]   */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "bench_common.h"

#define JOBS 64
#define REPS 7
#define MAX_THREADS 256

static double g_len_us[JOBS];
static double g_finish_s[JOBS];
static double g_t0;

static void spin_us(double us) {
  double until = bench_now_s() + us * 1e-6;
  while (bench_now_s() < until) {
  }
}

static void make_jobs(void) {
  uint64_t x = 0x2545F4914F6CDD1Dull;
  for (int i = 0; i < JOBS; i++) {
    double u[2];
    for (int k = 0; k < 2; k++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      u[k] = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
    }
    double z = sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]); /* standard normal */
    double len = 300.0 * exp(1.0 * z);
    g_len_us[i] = len < 20 ? 20 : len > 6000 ? 6000 : len;
  }
}

static void run_job(int i) {
  spin_us(g_len_us[i]);
  g_finish_s[i] = bench_now_s() - g_t0;
}

/* ---------------------------------------------------------------- static partition */

typedef struct static_arg {
  int k, n;
  pthread_barrier_t *go;
} static_arg;

static void *static_thread(void *p) {
  static_arg *a = p;
  pthread_barrier_wait(a->go);
  for (int i = a->k; i < JOBS; i += a->n) run_job(i);
  return NULL;
}

static double run_static(int n) {
  pthread_t th[MAX_THREADS];
  static_arg args[MAX_THREADS];
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)n + 1);
  for (int k = 0; k < n; k++) {
    args[k] = (static_arg){k, n, &go};
    pthread_create(&th[k], NULL, static_thread, &args[k]);
  }
  g_t0 = bench_now_s();
  pthread_barrier_wait(&go);
  for (int k = 0; k < n; k++) pthread_join(th[k], NULL);
  double makespan = bench_now_s() - g_t0;
  pthread_barrier_destroy(&go);
  return makespan;
}

/* ---------------------------------------------------------------- ours */

static ds_status job_task(void *arg) {
  run_job((int)(intptr_t)arg);
  return DS_OK;
}

static double run_ours(ds_context *ctx) {
  ds_task_group *g = NULL;
  ds_task_group_create(&g, ctx);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = g;
  g_t0 = bench_now_s();
  for (int i = 0; i < JOBS; i++) ds_task_submit(NULL, ctx, job_task, (void *)(intptr_t)i, &o);
  /* A wait with a time limit: an untimed wait from this thread would run jobs itself, and
   * ours would use N + 1 threads against the static partition's N. */
  ds_task_group_wait(g, 600000);
  double makespan = bench_now_s() - g_t0;
  ds_task_group_destroy(g);
  return makespan;
}

static void batch_figures(double makespan, int n, double *util, double *var_ms2) {
  double work = 0, mean = 0, sq = 0;
  for (int i = 0; i < JOBS; i++) {
    work += g_len_us[i] * 1e-6;
    mean += g_finish_s[i] / JOBS;
  }
  for (int i = 0; i < JOBS; i++) sq += (g_finish_s[i] - mean) * (g_finish_s[i] - mean);
  *util = work / (n * makespan);
  *var_ms2 = sq / (JOBS - 1) * 1e6;
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  ds_context *ctx = bench_context("bench_sched_util", NULL, 0);
  int32_t n = 0;
  ds_sched_workers(ctx, &n);
  if (n > MAX_THREADS) n = MAX_THREADS;
  make_jobs();
  double us[REPS], uo[REPS], vs[REPS], vo[REPS], ms[REPS], mo[REPS];
  for (int r = 0; r < REPS; r++) {
    ms[r] = run_static(n);
    batch_figures(ms[r], n, &us[r], &vs[r]);
    mo[r] = run_ours(ctx);
    batch_figures(mo[r], n, &uo[r], &vo[r]);
  }
  if (!json) printf("threads: %d; %d jobs per batch, %d batches\n", (int)n, JOBS, REPS);
  bench_row rows[] = {
      {"bench_sched_util", "mixed_64_jobs", "utilisation", bench_median(uo, REPS),
       "static partition", bench_median(us, REPS), 89.0 / 68.0, "higher"},
      {"bench_sched_util", "mixed_64_jobs", "compl_var_ms2", bench_median(vo, REPS),
       "static partition", bench_median(vs, REPS), 0.38, "lower"},
      {"bench_sched_util", "mixed_64_jobs", "makespan_ms", 1e3 * bench_median(mo, REPS),
       "static partition", 1e3 * bench_median(ms, REPS), 1.0, "lower"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) bench_print(&rows[i], json, &header);
  ds_context_destroy(ctx);
  return 0;
}
