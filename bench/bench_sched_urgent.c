/* bench_sched_urgent: start latency of URGENT tasks while every worker is busy with LOW tasks
 * (2 ms each, a yield point every 50 us, twice as many queued as workers, each resubmitting
 * itself), with Poisson URGENT arrivals (mean gap 5 ms, 300 of them). Anchors, same thread
 * count, same LOW loop (neither has yield points to use), measured in the same run: a plain
 * FIFO pool, and StarPU 1.3's "prio" policy (URGENT at STARPU_MAX_PRIO, LOW at
 * STARPU_MIN_PRIO). Goal of the issue: p99 below 10% of the LOW task length.
 * usage: bench_sched_urgent [--json]   */
#define _GNU_SOURCE /* setenv */
#include <deepseek.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "bench_common.h"

#ifdef DS_HAVE_STARPU
#include <starpu.h>
#endif

#define LOW_US 2000
#define YIELD_US 50
#define ARRIVALS 300
#define MEAN_GAP_US 5000

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void spin_us(int us) {
  uint64_t until = now_ns() + (uint64_t)us * 1000u;
  while (now_ns() < until) {
  }
}

static void sleep_us(double us) {
  struct timespec ts = {(time_t)(us / 1e6), (long)(fmod(us, 1e6) * 1e3)};
  nanosleep(&ts, NULL);
}

static double exp_gap_us(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  double u = ((double)(*x >> 11) + 0.5) / 9007199254740992.0;
  return -log(u) * MEAN_GAP_US;
}

typedef struct probe {
  uint64_t submit_ns;
  volatile uint64_t start_ns;
} probe;

/* ---------------------------------------------------------------- ours */

static ds_context *g_ctx;
static volatile int g_stop;

static ds_status low_task(void *arg) {
  (void)arg;
  for (int t = 0; t < LOW_US; t += YIELD_US) {
    spin_us(YIELD_US);
    ds_task_yield();
  }
  if (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
    ds_task_options o = DS_TASK_OPTIONS_INIT;
    o.prio = DS_PRIO_LOW;
    ds_task_submit(NULL, g_ctx, low_task, NULL, &o);
  }
  return DS_OK;
}

static ds_status urgent_task(void *arg) {
  probe *p = arg;
  p->start_ns = now_ns();
  return DS_OK;
}

static void run_ours(int workers, double *lat_us) {
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  for (int i = 0; i < 2 * workers; i++) ds_task_submit(NULL, g_ctx, low_task, NULL, &lo);
  sleep_us(20000);
  uint64_t rng = 88172645463325252ull;
  ds_task_options uo = DS_TASK_OPTIONS_INIT;
  uo.prio = DS_PRIO_URGENT;
  for (int i = 0; i < ARRIVALS; i++) {
    sleep_us(exp_gap_us(&rng));
    probe p = {now_ns(), 0};
    ds_task *t = NULL;
    ds_task_submit(&t, g_ctx, urgent_task, &p, &uo);
    ds_task_wait(t, -1);
    ds_task_release(t);
    lat_us[i] = (double)(p.start_ns - p.submit_ns) / 1e3;
  }
  __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------- FIFO anchor */

typedef struct fifo_item {
  probe *p; /* NULL: a LOW task */
  struct fifo_item *next;
} fifo_item;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv, done_cv;
  fifo_item *head, *tail;
  int stop;
} F = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};

static void fifo_push(fifo_item *it) {
  pthread_mutex_lock(&F.mu);
  it->next = NULL;
  if (F.tail)
    F.tail->next = it;
  else
    F.head = it;
  F.tail = it;
  pthread_cond_signal(&F.cv);
  pthread_mutex_unlock(&F.mu);
}

static void *fifo_worker(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&F.mu);
    while (!F.head && !F.stop) pthread_cond_wait(&F.cv, &F.mu);
    fifo_item *it = F.head;
    if (!it) {
      pthread_mutex_unlock(&F.mu);
      return NULL;
    }
    F.head = it->next;
    if (!F.head) F.tail = NULL;
    int stop = F.stop;
    pthread_mutex_unlock(&F.mu);
    if (it->p) {
      it->p->start_ns = now_ns();
      pthread_mutex_lock(&F.mu);
      pthread_cond_broadcast(&F.done_cv);
      pthread_mutex_unlock(&F.mu);
      free(it);
      continue;
    }
    spin_us(LOW_US);
    if (!stop) fifo_push(it); /* resubmit itself */
    else free(it);
  }
}

static void run_fifo(int workers, double *lat_us) {
  pthread_t th[256];
  for (int i = 0; i < workers; i++) pthread_create(&th[i], NULL, fifo_worker, NULL);
  for (int i = 0; i < 2 * workers; i++) fifo_push(calloc(1, sizeof(fifo_item)));
  sleep_us(20000);
  uint64_t rng = 88172645463325252ull;
  for (int i = 0; i < ARRIVALS; i++) {
    sleep_us(exp_gap_us(&rng));
    probe p = {now_ns(), 0};
    fifo_item *it = calloc(1, sizeof *it);
    it->p = &p;
    fifo_push(it);
    pthread_mutex_lock(&F.mu);
    while (!p.start_ns) pthread_cond_wait(&F.done_cv, &F.mu);
    pthread_mutex_unlock(&F.mu);
    lat_us[i] = (double)(p.start_ns - p.submit_ns) / 1e3;
  }
  pthread_mutex_lock(&F.mu);
  F.stop = 1;
  pthread_cond_broadcast(&F.cv);
  pthread_mutex_unlock(&F.mu);
  for (int i = 0; i < workers; i++) pthread_join(th[i], NULL);
  while (F.head) {
    fifo_item *it = F.head;
    F.head = it->next;
    free(it);
  }
}

/* ---------------------------------------------------------------- StarPU prio anchor */

#ifdef DS_HAVE_STARPU
static volatile int g_sp_stop;
static struct starpu_codelet g_sp_low, g_sp_urgent;

static void sp_low(void *buffers[], void *cl_arg) {
  (void)buffers;
  (void)cl_arg;
  spin_us(LOW_US);
  if (!__atomic_load_n(&g_sp_stop, __ATOMIC_ACQUIRE))
    starpu_task_insert(&g_sp_low, STARPU_PRIORITY, STARPU_MIN_PRIO, 0);
}

static void sp_urgent(void *buffers[], void *cl_arg) {
  (void)buffers;
  ((probe *)cl_arg)->start_ns = now_ns();
}

/* 0 on success, -1 if StarPU cannot start. */
static int run_starpu(int workers, double *lat_us) {
  setenv("STARPU_SILENT", "1", 0);
  struct starpu_conf conf;
  starpu_conf_init(&conf);
  conf.sched_policy_name = "prio";
  conf.ncpus = workers;
  conf.ncuda = 0;
  conf.nopencl = 0;
  if (starpu_init(&conf) != 0) return -1;
  g_sp_low.cpu_funcs[0] = sp_low;
  g_sp_urgent.cpu_funcs[0] = sp_urgent;
  for (int i = 0; i < 2 * workers; i++)
    starpu_task_insert(&g_sp_low, STARPU_PRIORITY, STARPU_MIN_PRIO, 0);
  sleep_us(20000);
  uint64_t rng = 88172645463325252ull;
  for (int i = 0; i < ARRIVALS; i++) {
    sleep_us(exp_gap_us(&rng));
    probe p = {now_ns(), 0};
    struct starpu_task *t = starpu_task_create();
    t->cl = &g_sp_urgent;
    t->cl_arg = &p;
    t->priority = STARPU_MAX_PRIO;
    t->detach = 0;
    if (starpu_task_submit(t) != 0 || starpu_task_wait(t) != 0) {
      fprintf(stderr, "bench_sched_urgent: StarPU task %d failed\n", i);
      break;
    }
    lat_us[i] = (double)(p.start_ns - p.submit_ns) / 1e3;
  }
  __atomic_store_n(&g_sp_stop, 1, __ATOMIC_RELEASE);
  starpu_task_wait_for_all();
  starpu_shutdown();
  return 0;
}
#endif

int main(int argc, char **argv) {
  int json = bench_json_mode(argc, argv), header = 0;
  g_ctx = bench_context("bench_sched_urgent", NULL, 0);
  int32_t workers = 0;
  ds_sched_workers(g_ctx, &workers);
  if (workers > 256) workers = 256;
  static double ours[ARRIVALS], fifo[ARRIVALS];
  run_ours(workers, ours);
  ds_context_destroy(g_ctx); /* cancels the queued LOW tasks, waits for the running ones */
  run_fifo(workers, fifo);
  qsort(ours, ARRIVALS, sizeof ours[0], bench_cmp_double);
  qsort(fifo, ARRIVALS, sizeof fifo[0], bench_cmp_double);
  int p50 = ARRIVALS / 2, p99 = ARRIVALS * 99 / 100;
  if (!json)
    printf("threads: %d; LOW task %d us with a yield point every %d us; %d Poisson URGENT arrivals\n",
           (int)workers, LOW_US, YIELD_US, ARRIVALS);
  bench_row rows[] = {
      {"bench_sched_urgent", "urgent_start_p50", "us", ours[p50], "plain FIFO pool", fifo[p50], 1.0,
       "lower"},
      {"bench_sched_urgent", "urgent_start_p99", "us", ours[p99], "plain FIFO pool", fifo[p99], 1.0,
       "lower"},
      {"bench_sched_urgent", "p99_vs_low_length", "us", ours[p99], "LOW task length", LOW_US, 0.1,
       "lower"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) bench_print(&rows[i], json, &header);
#ifdef DS_HAVE_STARPU
  static double sp[ARRIVALS];
  if (run_starpu(workers, sp) == 0) {
    qsort(sp, ARRIVALS, sizeof sp[0], bench_cmp_double);
    bench_row srows[] = {
        {"bench_sched_urgent", "urgent_start_p50", "us", ours[p50], "StarPU 1.3 prio", sp[p50], 1.0,
         "lower"},
        {"bench_sched_urgent", "urgent_start_p99", "us", ours[p99], "StarPU 1.3 prio", sp[p99], 1.0,
         "lower"},
    };
    for (size_t i = 0; i < 2; i++) bench_print(&srows[i], json, &header);
  } else {
    fprintf(stderr, "bench_sched_urgent: StarPU did not start\n");
  }
#endif
  return 0;
}
