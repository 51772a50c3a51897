/* sched_failover: two dual-active worker pools with a stall watchdog. A task gets stuck (as a
 * call into a hung device driver would); the watchdog sees its pool make no progress,
 * moves its queued work to the other pool and routes new work there, so the rest of the job
 * still finishes. Prints the failover counters from the stats. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <deepseek.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static atomic_int g_unstick; /* set by main at the end; a real hang would never clear */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static ds_status stuck(void *arg) {
  (void)arg;
  while (!atomic_load(&g_unstick)) sleep_ms(10);
  return DS_OK;
}

static ds_status work(void *arg) {
  (*(int *)arg)++; /* each task owns its counter: no race */
  sleep_ms(1);
  return DS_OK;
}

int main(void) {
  /* 2 pools of one worker each (pools split the workers over disjoint cores); a pool is
   * stalled after 200 ms without a finished task while all its workers are busy. */
  ds_param_value pv[] = {{DS_PARAM_SCHED_WORKERS, 0, 2}, {DS_PARAM_SCHED_POOLS, 0, 2},
                         {DS_PARAM_SCHED_STALL_MS, 0, 200}};
  ds_context_options o = DS_CONTEXT_OPTIONS_INIT;
  o.params = pv;
  o.nparams = 3;
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, &o) != DS_OK) {
    fprintf(stderr, "%s\n", ds_context_last_error(NULL));
    return 1;
  }
  ds_task *hung = NULL; /* stalls whichever pool runs it */
  ds_task_submit(&hung, ctx, stuck, NULL, NULL);
  sleep_ms(500); /* long enough for the watchdog (it runs every scheduler tick) */
  static int counters[200];
  ds_task_group *g = NULL;
  ds_task_group_create(&g, ctx);
  ds_task_options to = DS_TASK_OPTIONS_INIT;
  to.group = g;
  for (int i = 0; i < 200; i++) ds_task_submit(NULL, ctx, work, &counters[i], &to);
  ds_status st = ds_task_group_wait(g, 10000); /* all served by the other pool */
  printf("200 tasks with one pool stuck: %s\n", ds_status_name(st));
  ds_task_group_destroy(g);
  ds_stats *stats = NULL;
  double failovers = 0, stalled = 0;
  if (ds_stats_snapshot(&stats, ctx) == DS_OK) {
    ds_stats_find(&failovers, stats, "sched.failovers");
    ds_stats_find(&stalled, stats, "sched.pools_stalled");
    ds_stats_free(stats);
  }
  printf("failovers: %.0f, pools stalled now: %.0f\n", failovers, stalled);
  atomic_store(&g_unstick, 1);
  ds_task_wait(hung, -1);
  ds_task_release(hung);
  ds_context_destroy(ctx);
  return st == DS_OK ? 0 : 1;
}
