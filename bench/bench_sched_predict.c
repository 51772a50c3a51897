/* bench_sched_predict: does predicting the load help the scheduler? A real machine's CPU trace
 * (Alibaba cluster-trace-v2018, one machine, rows as steps) is replayed as NORMAL work on the
 * scheduler, with LOW background work and Poisson URGENT arrivals, under three predictors
 * that steer LOW throttling:
 *   none       throttling off (the anchor)
 *   threshold  the reactive method: predicted load = the load just observed (EWMA alpha 100%)
 *   lstm       the LSTM + attention model (ds_sched_set_predictor), trained beforehand on the
 *              scheduler's own observed-load history from replaying the trace's first part
 * Reported on the trace's second part: URGENT start latency p50/p99 and LOW throughput,
 * medians over repetitions that run the three configurations back to back in a rotating
 * order (the model is trained once and loaded into each repetition's fresh context), plus
 * each repetition's ratio to "none", so that machine-load noise shows as spread.
 * With LOW tasks that yield every 50 us (the default) URGENT work preempts them at once, so
 * throttling LOW can only cost; --no-yield makes each LOW task hold its worker for 2 ms, the
 * case where keeping a worker free before a burst could shorten URGENT waits.
 * usage: bench_sched_predict [--json] [--trace machine_usage.csv] [--steps N] [--reps R]
 *                            [--no-yield]
 * Default trace: $DS_SHARED_DATA/loadtrace/alibaba2018/machine_usage.csv (skips if absent). */
#define _POSIX_C_SOURCE 200809L
#include <deepseek.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "bench_common.h"

#define WORKERS 2
#define STEP_MS 20   /* one trace row per 20 ms */
#define NORMAL_US 1000
#define LOW_US 2000
#define URGENT_US 20
#define URGENT_MEAN_MS 5
#define MAX_LAT 100000
#define THROTTLE_PCT 150

static void spin_us(int us) {
  double until = bench_now_s() + us * 1e-6;
  while (bench_now_s() < until) {
  }
}

static ds_status normal_task(void *arg) {
  (void)arg;
  spin_us(NORMAL_US);
  return DS_OK;
}

static volatile long low_done;
static int low_yields = 1; /* --no-yield: LOW tasks hold their worker for LOW_US */
static ds_status low_task(void *arg) {
  (void)arg;
  for (int i = 0; i < LOW_US / 50; i++) {
    spin_us(50);
    if (low_yields) ds_task_yield(); /* a yield point: URGENT work waiting runs here */
  }
  __atomic_add_fetch(&low_done, 1, __ATOMIC_RELAXED);
  return DS_OK;
}

static double lat_us[MAX_LAT];
static volatile long nlat;
static ds_status urgent_task(void *arg) {
  double *submitted = arg;
  long i = __atomic_fetch_add(&nlat, 1, __ATOMIC_RELAXED);
  if (i < MAX_LAT) lat_us[i] = (bench_now_s() - *submitted) * 1e6;
  spin_us(URGENT_US);
  free(submitted);
  return DS_OK;
}

/* CPU % of the first machine in an Alibaba machine_usage.csv, in row order. */
static int load_trace(const char *path, float *out, int max) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char line[512], first[64] = "";
  int n = 0;
  while (n < max && fgets(line, sizeof line, f)) {
    char id[64];
    long ts;
    double cpu;
    if (sscanf(line, "%63[^,],%ld,%lf", id, &ts, &cpu) != 3) continue;
    if (!first[0]) snprintf(first, sizeof first, "%s", id);
    if (strcmp(id, first) != 0) break;
    out[n++] = (float)cpu;
  }
  fclose(f);
  return n;
}

typedef struct replay {
  ds_context *ctx;
  const float *trace;
  int from, to;
  float *observed; /* optional: the scheduler's load per tick, for training */
  int nobserved, cap_observed;
} replay;

static volatile int sampling;
static void *sample_load(void *arg) {
  replay *r = arg;
  while (__atomic_load_n(&sampling, __ATOMIC_RELAXED)) {
    double pred;
    if (r->nobserved < r->cap_observed && ds_sched_load(r->ctx, &pred, NULL, NULL) == DS_OK)
      r->observed[r->nobserved++] = (float)(100.0 * pred);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* Replays trace rows [from, to): per row, NORMAL tasks worth the row's CPU share of the
 * workers; LOW tasks kept queued; URGENT tasks with exponential gaps. */
static void run_replay(replay *r, double *p50, double *p99, double *low_per_s) {
  ds_task_options normal = DS_TASK_OPTIONS_INIT, low = DS_TASK_OPTIONS_INIT,
                  urgent = DS_TASK_OPTIONS_INIT;
  low.prio = DS_PRIO_LOW;
  urgent.prio = DS_PRIO_URGENT;
  ds_task_group *g;
  ds_task_group_create(&g, r->ctx);
  normal.group = low.group = urgent.group = g;
  pthread_t sampler;
  __atomic_store_n(&sampling, 1, __ATOMIC_RELAXED);
  if (r->observed) pthread_create(&sampler, NULL, sample_load, r);
  low_done = 0;
  nlat = 0;
  unsigned rng = 12345;
  double t0 = bench_now_s(), next_urgent = t0;
  long low_submitted = 0;
  for (int s = r->from; s < r->to; s++) {
    int n = (int)lrint(r->trace[s] / 100.0 * WORKERS * STEP_MS * 1000.0 / NORMAL_US);
    for (int i = 0; i < n; i++) ds_task_submit(NULL, r->ctx, normal_task, NULL, &normal);
    double step_end = t0 + (s - r->from + 1) * STEP_MS * 1e-3;
    while (bench_now_s() < step_end) {
      while (low_submitted - low_done < 4) {
        ds_task_submit(NULL, r->ctx, low_task, NULL, &low);
        low_submitted++;
      }
      if (bench_now_s() >= next_urgent) {
        double *at = malloc(sizeof *at);
        *at = bench_now_s();
        ds_task_submit(NULL, r->ctx, urgent_task, at, &urgent);
        rng = rng * 1103515245u + 12345u;
        next_urgent += -log((rng >> 8) / 16777216.0 + 1e-9) * URGENT_MEAN_MS * 1e-3;
      }
      struct timespec ts = {0, 200 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  double elapsed = bench_now_s() - t0;
  long done_low = low_done;
  __atomic_store_n(&sampling, 0, __ATOMIC_RELAXED);
  if (r->observed) pthread_join(sampler, NULL);
  ds_task_group_wait(g, -1);
  ds_task_group_destroy(g);
  long m = nlat < MAX_LAT ? nlat : MAX_LAT;
  *p50 = m ? bench_median(lat_us, (int)m) : NAN; /* sorts lat_us */
  *p99 = m ? lat_us[(long)(0.99 * (m - 1))] : NAN;
  *low_per_s = done_low / elapsed;
}

static ds_context *new_ctx(int throttle_pct, int alpha_pct) {
  ds_param_value pv[] = {{DS_PARAM_STATS_FILE, 0, 0},
                         {DS_PARAM_SCHED_WORKERS, 0, WORKERS},
                         {DS_PARAM_SCHED_TICK_MS, 0, 5},
                         {DS_PARAM_SCHED_THROTTLE_LOAD_PCT, 0, throttle_pct},
                         {DS_PARAM_SCHED_EWMA_ALPHA_PCT, 0, alpha_pct},
                         {DS_PARAM_SCHED_LOW_MAX_WORKERS, 0, WORKERS}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.flags = DS_CONTEXT_NO_ENV;
  o.params = pv;
  o.nparams = sizeof pv / sizeof pv[0];
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &o) != DS_OK) {
    fprintf(stderr, "bench_sched_predict: %s\n", ds_context_last_error(NULL));
    exit(1);
  }
  return ctx;
}

/* Trains a one-feature model on the scheduler's observed load while replaying rows [0, half). */
static ds_predictor *train_on_history(ds_context *ctx, const float *trace, int half) {
  static float hist[20000];
  replay r = {ctx, trace, 0, half, hist, 0, 20000};
  double a, b, c;
  run_replay(&r, &a, &b, &c);
  ds_predictor_options po = DS_PREDICTOR_OPTIONS_INIT;
  po.nfeatures = 1;
  po.window = 16;
  po.hidden = 16;
  po.horizons = 4;
  po.overload_threshold = THROTTLE_PCT;
  ds_predictor *p = NULL;
  if (ds_predictor_create(&p, ctx, &po) != DS_OK || r.nobserved < 100) return p;
  size_t ntrain = (size_t)r.nobserved * 4 / 5;
  ds_predictor_series tr = {hist, ntrain, NULL}, va = {hist + ntrain, (size_t)r.nobserved - ntrain, NULL};
  ds_predictor_train_options to = DS_PREDICTOR_TRAIN_OPTIONS_INIT;
  to.max_epochs = 8;
  to.windows_per_epoch = 1024;
  if (ds_predictor_train(p, &tr, 1, &va, 1, &to, NULL) != DS_OK)
    fprintf(stderr, "bench_sched_predict: training failed: %s\n", ds_context_last_error(ctx));
  return p;
}

/* The trained model as bytes, so that every repetition starts from the same weights in a
 * fresh context. */
static void *train_model(const float *trace, int half, size_t *size) {
  ds_context *ctx = new_ctx(THROTTLE_PCT, 100);
  ds_predictor *p = train_on_history(ctx, trace, half);
  void *buf = NULL;
  *size = 0;
  if (p && ds_predictor_save_buffer(p, NULL, 0, size) == DS_OK && (buf = malloc(*size)) &&
      ds_predictor_save_buffer(p, buf, *size, size) != DS_OK) {
    free(buf);
    buf = NULL;
  }
  ds_predictor_destroy(p);
  ds_context_destroy(ctx);
  if (!buf) {
    fprintf(stderr, "bench_sched_predict: cannot train the model\n");
    exit(1);
  }
  return buf;
}

enum { NCFG = 3, MAXREP = 64 };
static const char *names[NCFG] = {"none", "threshold", "lstm"};

/* One replay of rows [half, n) under configuration c (0 none, 1 threshold, 2 lstm). */
static void run_config(int c, const float *trace, int half, int n, const void *model,
                       size_t msize, double *p50, double *p99, double *low) {
  ds_context *ctx = new_ctx(c == 0 ? 100000 : THROTTLE_PCT, 100);
  ds_predictor *p = NULL;
  if (c == 2) {
    if (ds_predictor_load_buffer(&p, ctx, model, msize) != DS_OK) {
      fprintf(stderr, "bench_sched_predict: %s\n", ds_context_last_error(ctx));
      exit(1);
    }
    ds_sched_set_predictor(ctx, p);
  }
  replay r = {ctx, trace, half, n, NULL, 0, 0};
  run_replay(&r, p50, p99, low);
  if (p) {
    ds_sched_set_predictor(ctx, NULL);
    ds_predictor_destroy(p);
  }
  ds_context_destroy(ctx);
}

static void print_rows(int json, double p50[NCFG][MAXREP], double p99[NCFG][MAXREP],
                       double low[NCFG][MAXREP], int reps) {
  int header = 0;
  double m50[NCFG], m99[NCFG], mlow[NCFG], tmp[MAXREP];
  for (int c = 0; c < NCFG; c++) {
    memcpy(tmp, p50[c], reps * sizeof(double)), m50[c] = bench_median(tmp, reps);
    memcpy(tmp, p99[c], reps * sizeof(double)), m99[c] = bench_median(tmp, reps);
    memcpy(tmp, low[c], reps * sizeof(double)), mlow[c] = bench_median(tmp, reps);
  }
  for (int c = 1; c < NCFG; c++) {
    char c50[64], c99[64], clow[64];
    snprintf(c50, sizeof c50, "%s_urgent_p50", names[c]);
    snprintf(c99, sizeof c99, "%s_urgent_p99", names[c]);
    snprintf(clow, sizeof clow, "%s_low_throughput", names[c]);
    bench_row rows[3] = {
        {"bench_sched_predict", c50, "us", m50[c], "no prediction", m50[0], 1.0, "lower"},
        {"bench_sched_predict", c99, "us", m99[c], "no prediction", m99[0], 1.0, "lower"},
        {"bench_sched_predict", clow, "tasks_per_s", mlow[c], "no prediction", mlow[0], 1.0,
         "higher"}};
    for (int i = 0; i < 3; i++) bench_print(&rows[i], json, &header);
  }
  if (json) return;
  /* Paired ratios: each repetition's configurations ran back to back, so their ratio cancels
   * most of the machine's slow load drift; the spread shows whether an effect is real. */
  for (int c = 1; c < NCFG; c++) {
    double r99[MAXREP], rlow[MAXREP];
    printf("%-9s per-repetition ratio to none: URGENT p99", names[c]);
    for (int k = 0; k < reps; k++) printf(" %.2f", r99[k] = p99[c][k] / p99[0][k]);
    printf(" (median %.2f); LOW", bench_median(r99, reps));
    for (int k = 0; k < reps; k++) printf(" %.2f", rlow[k] = low[c][k] / low[0][k]);
    printf(" (median %.2f)\n", bench_median(rlow, reps));
  }
}

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), steps = 300, reps = 5;
  char defpath[4096] = "";
  const char *path = NULL, *data = getenv("DS_SHARED_DATA");
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--trace") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-yield")) low_yields = 0;
  }
  if (!path && data) {
    snprintf(defpath, sizeof defpath, "%s/loadtrace/alibaba2018/machine_usage.csv", data);
    path = defpath;
  }
  static float trace[100000];
  if (steps < 40) steps = 40;
  if (steps > 100000) steps = 100000;
  if (reps < 1) reps = 1;
  if (reps > MAXREP) reps = MAXREP;
  int n = path ? load_trace(path, trace, steps) : -1;
  if (n < 40) {
    printf("bench_sched_predict: skipped: no trace (give --trace machine_usage.csv or set DS_SHARED_DATA)\n");
    return 0;
  }
  int half = n / 2;
  size_t msize;
  void *model = train_model(trace, half, &msize);
  static double p50[NCFG][MAXREP], p99[NCFG][MAXREP], low[NCFG][MAXREP];
  for (int k = 0; k < reps; k++) /* interleaved, the order rotating per repetition */
    for (int j = 0; j < NCFG; j++) {
      int c = (j + k) % NCFG;
      run_config(c, trace, half, n, model, msize, &p50[c][k], &p99[c][k], &low[c][k]);
    }
  free(model);
  print_rows(json, p50, p99, low, reps);
  if (!json)
    printf("(trace %s, %d rows, replayed rows %d..%d at %d ms per row, %d interleaved "
           "repetitions, medians; LOW tasks %s)\n",
           path, n, half, n, STEP_MS, reps,
           low_yields ? "yield every 50 us" : "never yield (--no-yield)");
  return 0;
}
