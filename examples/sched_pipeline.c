/* sched_pipeline: submit a small task graph to the scheduler — two loads that a compute step
 * waits for, a LOW background task that yields to URGENT work, and a group to wait on.
 * Build against libdeepseek and run; it prints what ran and the final statuses. */
#include <deepseek.h>
#include <stdio.h>

static ds_status load(void *arg) {
  printf("load %s\n", (const char *)arg);
  return DS_OK;
}

static ds_status compute(void *arg) {
  (void)arg;
  printf("compute (both loads are done)\n");
  return DS_OK;
}

/* Background work: checks at its yield points whether URGENT work is waiting (and runs it
 * there), and stops early if cancelled. */
static ds_status background(void *arg) {
  (void)arg;
  for (int step = 0; step < 1000; step++) {
    if (ds_task_cancelled()) return DS_ERR_CANCELLED;
    ds_task_yield();
  }
  printf("background done\n");
  return DS_OK;
}

static ds_status urgent(void *arg) {
  (void)arg;
  printf("urgent request served\n");
  return DS_OK;
}

int main(void) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) {
    fprintf(stderr, "%s\n", ds_context_last_error(NULL));
    return 1;
  }
  ds_task_group *all = NULL;
  ds_task_group_create(&all, ctx);

  /* Two independent loads, then a compute step that depends on both. */
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = all;
  ds_task *loads[2];
  o.name = "load-a";
  ds_task_submit(&loads[0], ctx, load, "a", &o);
  o.name = "load-b";
  ds_task_submit(&loads[1], ctx, load, "b", &o);
  o.name = "compute";
  o.deps = loads;
  o.ndeps = 2;
  ds_task *step = NULL;
  ds_task_submit(&step, ctx, compute, NULL, &o);

  /* A LOW background task and an URGENT one (handles not needed: the group waits). */
  ds_task_options lo = DS_TASK_OPTIONS_INIT;
  lo.prio = DS_PRIO_LOW;
  lo.group = all;
  ds_task_submit(NULL, ctx, background, NULL, &lo);
  ds_task_options uo = DS_TASK_OPTIONS_INIT;
  uo.prio = DS_PRIO_URGENT;
  uo.group = all;
  ds_task_submit(NULL, ctx, urgent, NULL, &uo);

  ds_status st = ds_task_wait(step, 1000); /* at most 1 s */
  printf("compute: %s\n", ds_status_name(st));
  st = ds_task_group_wait(all, -1);
  printf("all: %s\n", st == DS_OK ? "ok" : ds_context_last_error(ctx));

  /* Release every handle and group before destroying the context. */
  ds_task_release(loads[0]);
  ds_task_release(loads[1]);
  ds_task_release(step);
  ds_task_group_destroy(all);
  ds_context_destroy(ctx);
  return 0;
}
