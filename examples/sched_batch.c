/* sched_batch: many independent tasks in one call (ds_task_submit_batch), waited for through a
 * group, each placed near the device it works for (the device hint: here fabric device 0, the
 * CPU of NUMA node 0; on a machine with several nodes the tasks go to that node's workers). */
#include <deepseek.h>
#include <stdio.h>

#define N 10000

static double g_out[N];

static ds_status square(void *arg) {
  double *x = arg; /* each task owns one element */
  size_t i = (size_t)(x - g_out);
  *x = (double)i * (double)i;
  return DS_OK;
}

int main(void) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return 1;
  static void *args[N];
  for (size_t i = 0; i < N; i++) args[i] = &g_out[i];

  ds_task_group *group = NULL;
  ds_status st = ds_task_group_create(&group, ctx);
  ds_task_options o = DS_TASK_OPTIONS_INIT;
  o.group = group; /* batches return no handles: the group waits for them */
  o.device = 0;    /* fabric device 0 (see ds_fabric_device_info) */
  size_t submitted = 0;
  if (st == DS_OK) st = ds_task_submit_batch(&submitted, ctx, square, args, N, &o);
  if (st != DS_OK) fprintf(stderr, "submit: %s\n", ds_context_last_error(ctx));
  /* Even after a partial failure the submitted tasks run: wait for them before leaving. */
  if (group && ds_task_group_wait(group, -1) != DS_OK) st = DS_ERR_INTERNAL;
  ds_task_group_destroy(group);
  if (st == DS_OK) printf("%zu tasks; out[%d] = %.0f\n", submitted, N - 1, g_out[N - 1]);
  ds_context_destroy(ctx);
  return st == DS_OK ? 0 : 1;
}
