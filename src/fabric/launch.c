/* Kernel launches and device events through a device's backend table (the graph executor's
 * path to devices). */
#include "fabric_internal.h"

ds_status ds__fabric_launch(ds_context *ctx, int32_t dev, void *kernel, void *const *args,
                            const size_t *arg_sizes, size_t nargs, const size_t *global,
                            uint32_t dims, void **event) {
  if (event) *event = NULL;
  const struct ds__fabric_device *d = ds__fabric_device(ctx, dev);
  if (!d) return DS_ERR_NOT_FOUND;
  if (!kernel || !global || dims < 1 || dims > 3 || (nargs && (!args || !arg_sizes)))
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "launch on %s: bad kernel, arguments "
                     "or grid (%u dimensions)", d->info.name, (unsigned)dims);
  if (!d->be->ops.launch)
    return ds__error(ctx, DS_ERR_UNSUPPORTED, "fabric", "launch on %s: backend %s cannot launch",
                     d->info.name, d->be->name);
  char msg[DS__FABRIC_MSG] = "";
  ds_status st = d->be->ops.launch(d->be->user, d->local, kernel, args, arg_sizes, nargs, global,
                                   dims, event, msg, sizeof msg);
  if (st != DS_OK)
    return ds__error(ctx, st, "fabric", "launch on %s: %s", d->info.name, msg);
  return DS_OK;
}

ds_status ds__fabric_event_record(ds_context *ctx, int32_t dev, void **event) {
  if (!event) return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "event_record: event is NULL");
  *event = NULL;
  const struct ds__fabric_device *d = ds__fabric_device(ctx, dev);
  if (!d) return DS_ERR_NOT_FOUND;
  if (!d->be->ops.event_record) return DS_OK; /* synchronous backend: nothing pending */
  char msg[DS__FABRIC_MSG] = "";
  ds_status st = d->be->ops.event_record(d->be->user, d->local, event, msg, sizeof msg);
  if (st != DS_OK) return ds__error(ctx, st, "fabric", "event on %s: %s", d->info.name, msg);
  return DS_OK;
}
