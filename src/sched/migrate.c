/* The LOW migration hook: an executor interface through which the scheduler hands LOW tasks
 * that its throttle keeps waiting to someone who runs them elsewhere (the fabric/MPI module
 * will send them to a remote node). Driven by the scheduler tick. */
#include "sched_internal.h"

#define DS__MIGRATE_PER_TICK 16

void ds__sched_set_migrate_hook(ds_context *ctx, ds__sched_migrate_fn fn, void *user) {
  struct ds__sched *s = ds__sched_get(ctx);
  if (!s) return;
  pthread_mutex_lock(&s->tick_mu);
  s->migrate = fn;
  s->migrate_user = fn ? user : NULL;
  pthread_mutex_unlock(&s->tick_mu);
}

void ds__sched_migrated_done(struct ds_task *t, ds_status st) {
  ds__task_finish(t, st, st == DS_ERR_CANCELLED ? DS__WHY_USER : DS__WHY_NONE);
  ds__task_unref(t); /* the queue entry's ref, which the hook held */
}

/* Under tick_mu. Offers queued LOW tasks to the hook while the throttle holds them back. */
void ds__sched_migrate_tick(struct ds__sched *s) {
  if (!s->migrate || ds__load(&s->draining)) return;
  for (int n = 0; n < DS__MIGRATE_PER_TICK; n++) {
    if (ds__load_relaxed(&s->low.len) == 0 ||
        ds__load_relaxed(&s->low_running) < ds__load_relaxed(&s->low_cap))
      return; /* nothing waits, or a local worker may take it */
    struct ds_task *t = ds__queue_pop_head(&s->low);
    if (!t) return;
    int expected = DS_TASK_READY;
    if (t->work || !ds__cas(&t->state, &expected, DS_TASK_RUNNING)) {
      if (t->work) {
        ds__queue_insert(&s->low, t); /* core work stays local */
        return;
      }
      ds__task_unref(t); /* cancelled while queued */
      continue;
    }
    if (!s->migrate(s->migrate_user, t)) {
      ds__store(&t->state, DS_TASK_READY);
      ds__queue_insert(&s->low, t);
      return;
    }
    ds__fetch_add_relaxed(&s->migrated, 1);
  }
}
