/* Kernel launches through a device's backend table (the graph executor's path to devices). */
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
