/* "Complete later": a running task hands its completion to someone else (a network answer, a
 * device event) and frees its worker at once. The MPI transport uses it so that a task waiting
 * for another rank does not hold a local worker. */
#include "sched_internal.h"

struct ds_task *ds__task_detach(void) {
  struct ds_task *t = ds__tl_task;
  if (!t || t->work) return NULL;
  /* Read back by the same worker in ds__run_claimed once the function returns; the task's life
   * reference keeps it allocated until ds__task_complete finishes it. */
  t->detached = 1;
  return t;
}

void ds__task_complete(struct ds_task *t, ds_status st) {
  if (!t) return;
  ds__task_finish(t, st, st == DS_ERR_CANCELLED ? DS__WHY_USER : DS__WHY_NONE);
}
