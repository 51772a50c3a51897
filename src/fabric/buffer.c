/* Buffers and their replicas: creation (allocated or registered host memory), the MSI protocol
 * behind acquire/release, zero-copy decisions, and the public asynchronous events. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fabric_internal.h"

#define DS__HOST_ALIGN 4096 /* page alignment lets OpenCL and CUDA use the bytes in place */

struct ds_fabric_event {
  ds_context *ctx;
  int32_t device;
  void *event;
};

/* ---- creation and destruction ---- */

static ds_status ds__buffer_opts(ds_context *ctx, struct ds__fabric *fab,
                                 const ds_buffer_options *opts, ds_buffer_options *o) {
  ds_buffer_options def = DS_BUFFER_OPTIONS_INIT;
  *o = opts ? *opts : def;
  if (opts && opts->struct_size != sizeof *opts)
    return ds__error(ctx, DS_ERR_ABI, "fabric", "buffer options: struct_size %u, expected %zu",
                     (unsigned)opts->struct_size, sizeof *opts);
  if (o->home_device < 0) o->home_device = 0;
  if (o->home_device >= ds__fabric_ndev(fab) ||
      fab->dev[o->home_device].info.kind != DS_FABRIC_DEVICE_CPU)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric",
                     "buffer '%s': home device %d is not a CPU device", o->name ? o->name : "buffer",
                     (int)o->home_device);
  return DS_OK;
}

static ds_status ds__buffer_new(ds_buffer **out, ds_context *ctx, void *host, size_t size,
                                const ds_buffer_options *opts) {
  if (!out || !ctx)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "buffer: out or ctx is NULL");
  *out = NULL;
  const char *label = opts && opts->struct_size == sizeof *opts && opts->name ? opts->name : "buffer";
  if (size == 0)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "buffer '%s': size 0", label);
  if (size > SIZE_MAX - DS__HOST_ALIGN)
    return ds__error(ctx, DS_ERR_NO_MEMORY, "fabric", "buffer '%s': %zu bytes cannot be allocated",
                     label, size);
  struct ds__fabric *fab = ds__fabric_get(ctx);
  if (!fab) return DS_ERR_NO_MEMORY;
  ds_buffer_options o;
  ds_status st = ds__buffer_opts(ctx, fab, opts, &o);
  if (st != DS_OK) return st;
  ds_buffer *b = ds__calloc(ctx, 1, sizeof *b);
  char *name = b ? ds__strdup(ctx, label) : NULL;
  void *raw = b && name && !host ? ds__alloc(ctx, size + DS__HOST_ALIGN) : NULL;
  if (!b || !name || (!host && !raw)) {
    ds__free(ctx, raw), ds__free(ctx, name), ds__free(ctx, b);
    return ds__error(ctx, DS_ERR_NO_MEMORY, "fabric", "buffer '%s': out of memory for %zu bytes",
                     label, size);
  }
  b->ctx = ctx, b->fab = fab, b->name = name, b->size = size;
  b->owns_host = raw != NULL;
  b->host_raw = raw;
  b->host = host;
  if (raw) {
    uintptr_t p = ((uintptr_t)raw + DS__HOST_ALIGN - 1) & ~(uintptr_t)(DS__HOST_ALIGN - 1);
    b->host = (void *)p;
    ds__fabric_cpu_bind(fab, o.home_device, b->host, size); /* before the first touch */
    memset(b->host, 0, size);
  }
  b->home = o.home_device;
  b->host_space = fab->dev[o.home_device].info.memory_space;
  b->flags = o.flags;
  b->mask = o.device_mask ? o.device_mask : ~(uint64_t)0;
  b->rep[b->host_space].mem = b->host;
  b->rep[b->host_space].device = b->home;
  b->rep[b->host_space].state = DS_REPLICA_MODIFIED;
  pthread_mutex_init(&b->mu, NULL);
  ds__fetch_add(&fab->live_buffers, 1);
  *out = b;
  return DS_OK;
}

ds_status ds_buffer_create(ds_buffer **out, ds_context *ctx, size_t size,
                           const ds_buffer_options *opts) {
  return ds__buffer_new(out, ctx, NULL, size, opts);
}

ds_status ds_buffer_register(ds_buffer **out, ds_context *ctx, void *host, size_t size,
                             const ds_buffer_options *opts) {
  if (!host)
    return ds__error(ctx, DS_ERR_INVALID_ARG, "fabric", "buffer_register: host memory is NULL");
  return ds__buffer_new(out, ctx, host, size, opts);
}

static ds_status ds__buffer_settle_all(ds_buffer *b);

static void ds__buffer_free_replicas(ds_buffer *b) {
  for (int32_t s = 0; s < DS__FABRIC_MAX_DEVICES; s++) {
    struct ds__replica *r = &b->rep[s];
    if (!r->mem || s == b->host_space) continue;
    const struct ds__fabric_device *d = &b->fab->dev[r->device];
    d->be->ops.free(d->be->user, d->local, r->mem);
    r->mem = NULL;
  }
}

ds_status ds_buffer_destroy(ds_buffer *buf) {
  if (!buf) return DS_OK;
  ds_context *ctx = buf->ctx;
  pthread_mutex_lock(&buf->mu);
  int32_t holders = buf->holders;
  if (holders) {
    pthread_mutex_unlock(&buf->mu);
    return ds__error(ctx, DS_ERR_BUSY, "fabric",
                     "buffer '%s': destroy with %d acquire(s) outstanding (release them first)",
                     buf->name, (int)holders);
  }
  if (ds__buffer_settle_all(buf) != DS_OK) /* no copy may still read the host bytes */
    ds__log(ctx, DS_LOG_WARN, "fabric", "buffer '%s': destroy: %s", buf->name,
            ds_context_last_error(ctx));
  pthread_mutex_unlock(&buf->mu);
  ds__buffer_free_replicas(buf);
  ds__fetch_sub(&buf->fab->live_buffers, 1);
  pthread_mutex_destroy(&buf->mu);
  if (buf->owns_host) ds__free(ctx, buf->host_raw);
  ds__free(ctx, buf->name);
  ds__free(ctx, buf);
  return DS_OK;
}

size_t ds_buffer_size(const ds_buffer *buf) { return buf ? buf->size : 0; }

const char *ds_buffer_name(const ds_buffer *buf) { return buf ? buf->name : "buffer"; }

/* ---- the protocol ---- */

/* The replica a device uses: CPU devices all use the host replica. */
static int32_t ds__buffer_space(const ds_buffer *b, int32_t dev) {
  const struct ds__fabric_device *d = &b->fab->dev[dev];
  return d->info.kind == DS_FABRIC_DEVICE_CPU ? b->host_space : d->info.memory_space;
}

static ds_status ds__buffer_fail(ds_buffer *b, int32_t dev, ds_status st, const char *what,
                                 const char *why) {
  char label[160];
  return ds__error(b->ctx, st, "fabric", "buffer '%s' on %s: %s%s%s", b->name,
                   ds__fabric_device_label(b->ctx, dev, label, sizeof label), what,
                   why && *why ? ": " : "", why ? why : "");
}

static ds_status ds__buffer_check(ds_buffer *b, int32_t dev, const char *op) {
  int32_t n = ds__fabric_ndev(b->fab);
  if (dev < 0 || dev >= n)
    return ds__error(b->ctx, DS_ERR_NOT_FOUND, "fabric", "buffer '%s': %s on device %d: no such "
                     "device (this context has %d)", b->name, op, (int)dev, (int)n);
  if (!(b->mask >> dev & 1))
    return ds__buffer_fail(b, dev, DS_ERR_UNSUPPORTED, op,
                           "the device cannot reach this buffer (not in its device_mask)");
  return DS_OK;
}

/* The device's replica of a non-CPU device, allocated on first use; aliases the host bytes
 * when the device can use them in place and zero-copy is allowed. */
static ds_status ds__buffer_replica(ds_buffer *b, int32_t dev, struct ds__replica **out) {
  const struct ds__fabric_device *d = &b->fab->dev[dev];
  struct ds__replica *r = &b->rep[d->info.memory_space];
  *out = r;
  if (r->mem) return DS_OK;
  uint32_t caps = d->info.caps;
  int zc = (caps & DS_DEVICE_CAP_MAP_HOST) && !(b->flags & DS_BUFFER_NO_ZERO_COPY) &&
           (!(caps & DS_DEVICE_CAP_PREFER_COPY) || (b->flags & DS_BUFFER_MAP_HOST)) &&
           ds__param(b->ctx, DS_PARAM_FABRIC_ZERO_COPY);
  char msg[DS__FABRIC_MSG] = "";
  int aliased = 0;
  ds_status st = d->be->ops.alloc(d->be->user, d->local, b->size, zc ? b->host : NULL, &r->mem,
                                  &aliased, msg, sizeof msg);
  if (st != DS_OK) {
    r->mem = NULL;
    return ds__buffer_fail(b, dev, st, "allocating the replica failed", msg);
  }
  r->device = dev;
  r->aliased = aliased;
  r->state = DS_REPLICA_INVALID;
  return DS_OK;
}

/* Any valid replica other than space 'except', preferring the host one; -1 if none. */
static int32_t ds__buffer_valid_source(const ds_buffer *b, int32_t except) {
  if (b->host_space != except && b->rep[b->host_space].state != DS_REPLICA_INVALID)
    return b->host_space;
  for (int32_t s = 0; s < DS__FABRIC_MAX_DEVICES; s++)
    if (s != except && b->rep[s].mem && b->rep[s].state != DS_REPLICA_INVALID) return s;
  return -1;
}

/* Waits for everything queued so far on r's device: a marker recorded now on its in-order
 * queue completes after the earlier copies and launches. */
static ds_status ds__buffer_quiesce(ds_buffer *b, struct ds__replica *r) {
  const struct ds__fabric_device *d = &b->fab->dev[r->device];
  char msg[DS__FABRIC_MSG] = "";
  void *ev = NULL;
  ds_status st = DS_OK;
  if (d->be->ops.event_record) {
    st = d->be->ops.event_record(d->be->user, d->local, &ev, msg, sizeof msg);
    if (st == DS_OK && ev && d->be->ops.event_wait)
      st = d->be->ops.event_wait(d->be->user, ev, msg, sizeof msg);
    if (ev && d->be->ops.event_release) d->be->ops.event_release(d->be->user, ev);
  }
  if (st != DS_OK) return ds__buffer_fail(b, r->device, DS_ERR_DEVICE, "waiting for the device", msg);
  return DS_OK;
}

/* Waits for an asynchronous copy into r that a previous acquire started. Every later use of
 * the buffer goes through here, so a second reader never sees bytes still in flight. */
static ds_status ds__buffer_settle(ds_buffer *b, struct ds__replica *r) {
  if (!r->pending) return DS_OK;
  ds_status st = ds__buffer_quiesce(b, r);
  if (st != DS_OK) return st;
  r->pending = 0;
  b->npending--;
  return DS_OK;
}

/* Before another device overwrites the host bytes, device work still queued on a valid
 * aliasing replica (a kernel launched through the fabric) must be done: it uses those bytes. */
static ds_status ds__buffer_quiesce_aliases(ds_buffer *b, int32_t space) {
  for (int32_t s = 0; s < DS__FABRIC_MAX_DEVICES; s++) {
    struct ds__replica *r = &b->rep[s];
    if (s == space || !r->aliased || r->state == DS_REPLICA_INVALID) continue;
    ds_status st = ds__buffer_quiesce(b, r);
    if (st != DS_OK) return st;
  }
  return DS_OK;
}

/* Makes the host replica valid from the valid replica in space src (a device's). */
static ds_status ds__buffer_to_host(ds_buffer *b, int32_t src) {
  struct ds__replica *r = &b->rep[src];
  const struct ds__fabric_device *d = &b->fab->dev[r->device];
  char msg[DS__FABRIC_MSG] = "";
  ds_status st = DS_OK;
  if (r->aliased) {
    if (d->be->ops.sync_alias)
      st = d->be->ops.sync_alias(d->be->user, d->local, r->mem, b->size, 1, msg, sizeof msg);
    if (st == DS_OK) ds__fabric_count_avoided(b->fab, r->device);
  } else {
    st = d->be->ops.copy_out(d->be->user, d->local, b->host, r->mem, 0, b->size, NULL, msg,
                             sizeof msg);
    if (st == DS_OK) ds__fabric_count_copy(b->fab, r->device, b->size);
  }
  if (st != DS_OK) return ds__buffer_fail(b, r->device, DS_ERR_DEVICE, "copy to host failed", msg);
  r->state = DS_REPLICA_SHARED;
  b->rep[b->host_space].state = DS_REPLICA_SHARED;
  return DS_OK;
}

/* Makes device dev's replica r valid from the (valid) host replica; the copy may be
 * asynchronous when event is not NULL. */
static ds_status ds__buffer_from_host(ds_buffer *b, int32_t dev, struct ds__replica *r,
                                     void **event) {
  const struct ds__fabric_device *d = &b->fab->dev[dev];
  char msg[DS__FABRIC_MSG] = "";
  ds_status st = DS_OK;
  if (r->aliased) {
    if (d->be->ops.sync_alias)
      st = d->be->ops.sync_alias(d->be->user, d->local, r->mem, b->size, 0, msg, sizeof msg);
    if (st == DS_OK) ds__fabric_count_avoided(b->fab, dev);
  } else {
    st = d->be->ops.copy_in(d->be->user, d->local, r->mem, 0, b->host, b->size, event, msg,
                            sizeof msg);
    if (st == DS_OK) ds__fabric_count_copy(b->fab, dev, b->size);
    if (st == DS_OK && event && *event) r->pending = 1, b->npending++;
  }
  if (st != DS_OK) return ds__buffer_fail(b, dev, DS_ERR_DEVICE, "copy from host failed", msg);
  r->state = DS_REPLICA_SHARED;
  b->rep[b->host_space].state = DS_REPLICA_SHARED;
  return DS_OK;
}

/* Makes device dev's replica (space) valid straight from the device replica in space src, when
 * both are separate allocations of one backend that copies between its devices. Returns
 * DS_ERR_UNSUPPORTED, with nothing changed or recorded, when it cannot: the caller stages
 * through the host replica. With event not NULL and the backend's copy_peer_async, the copy
 * may still run on return (the replica is then pending, as after an asynchronous copy_in). */
static ds_status ds__buffer_peer(ds_buffer *b, int32_t dev, int32_t space, int32_t src,
                                 void **event) {
  struct ds__replica *r = &b->rep[space], *from = &b->rep[src];
  const struct ds__fabric_device *d = &b->fab->dev[dev], *sd = &b->fab->dev[from->device];
  const ds_fabric_backend *ops = &d->be->ops;
  if (space == b->host_space || r->aliased || from->aliased || d->be != sd->be ||
      (!ops->copy_peer && !ops->copy_peer_async) || !ds__param(b->ctx, DS_PARAM_FABRIC_PEER_COPY))
    return DS_ERR_UNSUPPORTED;
  char msg[DS__FABRIC_MSG] = "";
  ds_status st;
  if (ops->copy_peer_async)
    st = ops->copy_peer_async(d->be->user, d->local, r->mem, sd->local, from->mem, b->size,
                              event, msg, sizeof msg);
  else
    st = ops->copy_peer(d->be->user, d->local, r->mem, sd->local, from->mem, b->size, msg,
                        sizeof msg);
  if (st == DS_ERR_UNSUPPORTED) return st;
  if (st != DS_OK) return ds__buffer_fail(b, dev, DS_ERR_DEVICE, "direct device copy failed", msg);
  ds__fabric_count_peer(b->fab, dev, b->size);
  if (ops->copy_peer_async && event && *event) r->pending = 1, b->npending++;
  r->state = from->state = DS_REPLICA_SHARED; /* the host replica stays invalid */
  return DS_OK;
}

/* READ part of an acquire: the replica of 'space' becomes valid. */
static ds_status ds__buffer_fetch(ds_buffer *b, int32_t dev, int32_t space, void **event) {
  struct ds__replica *r = &b->rep[space];
  if (r->state != DS_REPLICA_INVALID) return DS_OK;
  int32_t src = ds__buffer_valid_source(b, space);
  if (src < 0) return ds__buffer_fail(b, dev, DS_ERR_INTERNAL, "read", "no valid replica");
  if (src != b->host_space) { /* device -> device directly, else device -> host first */
    ds_status st = ds__buffer_peer(b, dev, space, src, event);
    if (st != DS_ERR_UNSUPPORTED) return st;
    st = ds__buffer_to_host(b, src);
    if (st != DS_OK || space == b->host_space) return st;
  }
  if (space == b->host_space) return DS_OK;
  return ds__buffer_from_host(b, dev, r, event);
}

static void ds__buffer_make_modified(ds_buffer *b, int32_t space) {
  for (int32_t s = 0; s < DS__FABRIC_MAX_DEVICES; s++)
    if (b->rep[s].mem) b->rep[s].state = DS_REPLICA_INVALID;
  b->rep[space].state = DS_REPLICA_MODIFIED;
}

/* Settles every replica with a copy in flight: the sources and targets of what follows. */
static ds_status ds__buffer_settle_all(ds_buffer *b) {
  for (int32_t s = 0; s < DS__FABRIC_MAX_DEVICES && b->npending > 0; s++) {
    ds_status st = b->rep[s].pending ? ds__buffer_settle(b, &b->rep[s]) : DS_OK;
    if (st != DS_OK) return st;
  }
  return DS_OK;
}

static ds_status ds__buffer_conflict(ds_buffer *b, int32_t dev, ds_access mode) {
  if (b->writer || ((mode & DS_ACCESS_WRITE) && b->holders > 0)) {
    char why[96];
    snprintf(why, sizeof why, "%d other acquire(s) outstanding%s", (int)b->holders,
             b->writer ? ", one of them writing" : "");
    return ds__buffer_fail(b, dev, DS_ERR_BUSY,
                           mode & DS_ACCESS_WRITE ? "acquire for writing" : "acquire for reading",
                           why);
  }
  return DS_OK;
}

static ds_status ds__buffer_acquire_locked(void **out, void **event, ds_buffer *b, int32_t dev,
                                           ds_access mode) {
  ds_status st = ds__buffer_check(b, dev, "acquire");
  if (st == DS_OK) st = ds__buffer_conflict(b, dev, mode);
  if (st != DS_OK) return st;
  const struct ds__fabric_device *d = &b->fab->dev[dev];
  int32_t space = ds__buffer_space(b, dev);
  struct ds__replica *r = &b->rep[space];
  if (d->info.kind != DS_FABRIC_DEVICE_CPU) st = ds__buffer_replica(b, dev, &r);
  if (st == DS_OK) st = ds__buffer_settle_all(b);
  if (st == DS_OK && (mode & DS_ACCESS_READ)) st = ds__buffer_fetch(b, dev, space, event);
  if (st != DS_OK) return st;
  /* A CPU device of another node reads the home node's bytes in place. */
  if (d->info.kind == DS_FABRIC_DEVICE_CPU && dev != b->home) ds__fabric_count_avoided(b->fab, dev);
  if ((mode & DS_ACCESS_WRITE) && (st = ds__buffer_quiesce_aliases(b, space)) != DS_OK) return st;
  if (mode & DS_ACCESS_WRITE) ds__buffer_make_modified(b, space);
  b->held[dev]++;
  b->holders++;
  if (mode & DS_ACCESS_WRITE) b->writer = 1, b->wrote[dev] = 1;
  *out = r->mem;
  return DS_OK;
}

ds_status ds__buffer_acquire(void **out, void **event, ds_buffer *buf, int32_t device,
                             ds_access mode) {
  if (event) *event = NULL;
  if (!buf || !out)
    return ds__error(buf ? buf->ctx : NULL, DS_ERR_INVALID_ARG, "fabric",
                     "acquire: %s is NULL", buf ? "out" : "buffer");
  *out = NULL;
  if (mode != DS_ACCESS_READ && mode != DS_ACCESS_WRITE && mode != DS_ACCESS_RW)
    return ds__error(buf->ctx, DS_ERR_INVALID_ARG, "fabric",
                     "buffer '%s': acquire mode %d is not READ, WRITE or RW", buf->name, (int)mode);
  pthread_mutex_lock(&buf->mu);
  ds_status st = ds__buffer_acquire_locked(out, event, buf, device, mode);
  pthread_mutex_unlock(&buf->mu);
  return st;
}

ds_status ds__buffer_prefetch(ds_buffer *buf, int32_t device, void **event) {
  void *unused = NULL;
  ds_status st = ds__buffer_acquire(&unused, event, buf, device, DS_ACCESS_READ);
  if (st != DS_OK) return st;
  pthread_mutex_lock(&buf->mu); /* drop the hold; the replica stays valid */
  buf->held[device]--;
  buf->holders--;
  pthread_mutex_unlock(&buf->mu);
  return DS_OK;
}

ds_status ds_buffer_acquire(void **out, ds_buffer *buf, int32_t device, ds_access mode) {
  return ds__buffer_acquire(out, NULL, buf, device, mode);
}

ds_status ds_buffer_release(ds_buffer *buf, int32_t device) {
  if (!buf) return ds__error(NULL, DS_ERR_INVALID_ARG, "fabric", "release: buffer is NULL");
  pthread_mutex_lock(&buf->mu);
  ds_status st = DS_OK;
  int32_t n = ds__fabric_ndev(buf->fab);
  if (device < 0 || device >= n)
    st = ds__error(buf->ctx, DS_ERR_NOT_FOUND, "fabric",
                   "buffer '%s': release on device %d: no such device", buf->name, (int)device);
  else if (buf->held[device] == 0)
    st = ds__buffer_fail(buf, device, DS_ERR_STATE, "release",
                         "no acquire outstanding on this device");
  void (*hook)(void *, ds_buffer *) = NULL;
  void *hook_arg = NULL;
  if (st == DS_OK) {
    buf->held[device]--;
    buf->holders--;
    if (buf->wrote[device]) {
      buf->wrote[device] = 0, buf->writer = 0;
      hook = buf->on_write, hook_arg = buf->on_write_arg;
    }
  }
  pthread_mutex_unlock(&buf->mu);
  if (hook) hook(hook_arg, buf); /* outside mu: it may take its own locks and send */
  return st;
}

void ds__buffer_set_write_hook(ds_buffer *buf, void (*fn)(void *arg, ds_buffer *buf), void *arg) {
  pthread_mutex_lock(&buf->mu);
  buf->on_write = fn;
  buf->on_write_arg = fn ? arg : NULL;
  pthread_mutex_unlock(&buf->mu);
}

ds_status ds_buffer_state(ds_replica_state *out, ds_buffer *buf, int32_t device) {
  if (!out || !buf) return ds__error(buf ? buf->ctx : NULL, DS_ERR_INVALID_ARG, "fabric",
                                     "buffer_state: NULL argument");
  if (device < 0 || device >= ds__fabric_ndev(buf->fab))
    return ds__error(buf->ctx, DS_ERR_NOT_FOUND, "fabric", "buffer '%s': no device %d",
                     buf->name, (int)device);
  pthread_mutex_lock(&buf->mu);
  *out = (ds_replica_state)buf->rep[ds__buffer_space(buf, device)].state;
  pthread_mutex_unlock(&buf->mu);
  return DS_OK;
}

uint64_t ds__buffer_valid_spaces(ds_buffer *buf) {
  uint64_t m = 0;
  pthread_mutex_lock(&buf->mu);
  for (int32_t s = 0; s < DS__FABRIC_MAX_DEVICES; s++)
    if ((s == buf->host_space || buf->rep[s].mem) && buf->rep[s].state != DS_REPLICA_INVALID)
      m |= (uint64_t)1 << s;
  pthread_mutex_unlock(&buf->mu);
  return m;
}

/* ---- events ---- */

ds_status ds__fabric_event_wait(ds_context *ctx, int32_t dev, void *event) {
  if (!event) return DS_OK;
  const struct ds__fabric_device *d = &ctx->fabric->dev[dev];
  char msg[DS__FABRIC_MSG] = "";
  ds_status st = d->be->ops.event_wait ? d->be->ops.event_wait(d->be->user, event, msg, sizeof msg)
                                       : DS_OK;
  if (st != DS_OK) {
    char label[160];
    return ds__error(ctx, DS_ERR_DEVICE, "fabric", "waiting on %s: %s",
                     ds__fabric_device_label(ctx, dev, label, sizeof label), msg);
  }
  return DS_OK;
}

void ds__fabric_event_release(ds_context *ctx, int32_t dev, void *event) {
  if (!event) return;
  const struct ds__fabric_device *d = &ctx->fabric->dev[dev];
  if (d->be->ops.event_release) d->be->ops.event_release(d->be->user, event);
}

ds_status ds_buffer_acquire_async(void **out, ds_fabric_event **event, ds_buffer *buf,
                                  int32_t device, ds_access mode) {
  if (!event) return ds__error(buf ? buf->ctx : NULL, DS_ERR_INVALID_ARG, "fabric",
                               "acquire_async: event is NULL");
  *event = NULL;
  void *ev = NULL;
  ds_status st = ds__buffer_acquire(out, &ev, buf, device, mode);
  if (st != DS_OK || !ev) return st;
  ds_fabric_event *e = ds__alloc(buf->ctx, sizeof *e);
  if (!e) { /* fall back to waiting now: the acquire itself succeeded */
    st = ds__fabric_event_wait(buf->ctx, device, ev);
    ds__fabric_event_release(buf->ctx, device, ev);
    return st;
  }
  e->ctx = buf->ctx, e->device = device, e->event = ev;
  *event = e;
  return DS_OK;
}

ds_status ds_fabric_event_wait(ds_fabric_event *event) {
  if (!event) return DS_OK;
  ds_context *ctx = event->ctx;
  ds_status st = ds__fabric_event_wait(ctx, event->device, event->event);
  ds__fabric_event_release(ctx, event->device, event->event);
  ds__free(ctx, event);
  return st;
}
