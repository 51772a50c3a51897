/* "Complete later": a running task hands its completion to someone else (a network answer, a
 * device event) and frees its worker when its function returns. The MPI transport uses it so
 * that a task waiting for another rank does not hold a local worker. The task finishes at the
 * later of two events, its function's return and ds__task_complete(): whoever comes second
 * (told by detach_step) finishes it, so successors never start while the function (or what its
 * caller does after it, such as releasing buffers) is still running. */
#include "sched_internal.h"

enum { DS__STEP_RUNNING = 0, DS__STEP_RETURNED = 1, DS__STEP_COMPLETED = 2 };

struct ds_task *ds__task_detach(void) {
  struct ds_task *t = ds__tl_task;
  if (!t || t->work) return NULL;
  /* Read back by the same worker in ds__run_claimed once the function returns; the task's life
   * reference keeps it allocated until it is finished. */
  t->detached = 1;
  ds__store(&t->detach_step, DS__STEP_RUNNING);
  return t;
}

static void ds__detach_finish(struct ds_task *t) {
  ds_status st = t->detach_status;
  ds__task_finish(t, st, st == DS_ERR_CANCELLED ? DS__WHY_USER : DS__WHY_NONE);
}

void ds__task_complete(struct ds_task *t, ds_status st) {
  if (!t) return;
  t->detach_status = st; /* published by the exchange */
  if (ds__exchange(&t->detach_step, DS__STEP_COMPLETED) == DS__STEP_RETURNED) ds__detach_finish(t);
}

void ds__task_detached_returned(struct ds_task *t) {
  if (ds__exchange(&t->detach_step, DS__STEP_RETURNED) == DS__STEP_COMPLETED) ds__detach_finish(t);
}
