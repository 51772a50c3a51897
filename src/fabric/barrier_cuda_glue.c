/* CUDA participants of the timestamp barrier, C side: the public publish/wait entry points,
 * reaching the nvcc-compiled half only through its table of functions (barrier_cuda.h), and
 * the per-barrier state of the device-side wait (one mapped host word that the host raises to
 * T once T is passed, and that streams wait on with cuStreamWaitValue64). */
#include <string.h>

#include "barrier_cuda.h"
#include "barrier_internal.h"
#include "build_config.h"

#define MOD "fabric"

struct ds__barrier_cuda {
  uint64_t *word; /* pinned, mapped; written by the host, read by the device */
  uint64_t dev_addr;
};

/* A marker in flight: what its host function publishes. */
struct cuda_marker {
  ds_fabric_barrier *b;
  uint32_t participant;
  uint64_t t;
};

static const struct ds__barrier_cuda_ops *cuda_ops(void) {
#if DS_HAVE_CUDA
  return ds__barrier_cuda_ops_get();
#else
  return NULL;
#endif
}

static ds_status cuda_status(ds_fabric_barrier *b, int r, const char *msg) {
  return ds__error(b->ctx, r == 1 ? DS_ERR_UNAVAILABLE : DS_ERR_DEVICE, MOD, "%s: %s",
                   b->name ? b->name : "barrier", msg);
}

static void marker_reached(void *arg) {
  struct cuda_marker *m = arg;
  ds_fabric_barrier *b = m->b;
  ds__barrier_advance(b, m->participant, m->t, 1);
  ds__free(b->ctx, m);
  ds__fetch_sub(&b->device_pending, 1); /* last touch of b */
}

ds_status ds_fabric_barrier_publish_cuda(ds_fabric_barrier *b, uint32_t participant,
                                         void *cuda_stream, uint64_t t) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier publish_cuda: b is NULL");
  const struct ds__barrier_cuda_ops *ops = cuda_ops();
  if (!ops)
    return ds__error(b->ctx, DS_ERR_UNSUPPORTED, MOD, "barrier publish_cuda: built without CUDA");
  ds_status st = ds__barrier_claim(b, participant, t, "publish_cuda");
  if (st != DS_OK) return st;
  struct cuda_marker *m = ds__alloc(b->ctx, sizeof *m);
  if (!m) return ds__error(b->ctx, DS_ERR_NO_MEMORY, MOD, "barrier publish_cuda: out of memory");
  *m = (struct cuda_marker){b, participant, t};
  ds__fetch_add(&b->device_pending, 1);
  char msg[200];
  int r = ops->host_func(cuda_stream, marker_reached, m, msg, sizeof msg);
  if (r != 0) {
    ds__free(b->ctx, m);
    ds__fetch_sub(&b->device_pending, 1);
    return cuda_status(b, r, msg);
  }
  return DS_OK;
}

/* Raises the mapped word to t (never lowers it): run when t is passed, or at close, so no
 * stream waits forever. */
static void raise_word(void *arg, uint64_t t, int ok) {
  (void)ok;
  ds__atomic_u64 *w = arg;
  uint64_t cur = ds__load_relaxed(w);
  while (cur < t && !ds__cas(w, &cur, t)) {
  }
}

static ds_status ensure_state(ds_fabric_barrier *b, const struct ds__barrier_cuda_ops *ops) {
  int r = 0; /* 0 ok, -1 out of memory, else the table's code */
  char msg[200];
  pthread_mutex_lock(&b->mu);
  if (!b->cuda) {
    struct ds__barrier_cuda *c = ds__calloc(b->ctx, 1, sizeof *c);
    r = c ? ops->alloc_word(&c->word, &c->dev_addr, msg, sizeof msg) : -1;
    if (r == 0)
      b->cuda = c;
    else
      ds__free(b->ctx, c);
  }
  pthread_mutex_unlock(&b->mu);
  if (r < 0) return ds__error(b->ctx, DS_ERR_NO_MEMORY, MOD, "barrier wait_cuda: out of memory");
  return r != 0 ? cuda_status(b, r, msg) : DS_OK;
}

ds_status ds_fabric_barrier_wait_cuda(ds_fabric_barrier *b, void *cuda_stream, uint64_t t) {
  if (!b) return ds__error(NULL, DS_ERR_INVALID_ARG, MOD, "barrier wait_cuda: b is NULL");
  const struct ds__barrier_cuda_ops *ops = cuda_ops();
  if (!ops)
    return ds__error(b->ctx, DS_ERR_UNSUPPORTED, MOD, "barrier wait_cuda: built without CUDA");
  if (ds__barrier_passed(b, t)) return DS_OK;
  ds_status st = ensure_state(b, ops);
  if (st != DS_OK) return st;
  char msg[200];
  int r = ops->wait_geq(cuda_stream, b->cuda->dev_addr, t, msg, sizeof msg);
  if (r != 0) return cuda_status(b, r, msg);
  /* The word is the device's view of the barrier; C11 atomics on it are fine from the host. */
  return ds__barrier_on_passed(b, t, raise_word, (void *)b->cuda->word);
}

void ds__barrier_cuda_release(ds_fabric_barrier *b) {
  const struct ds__barrier_cuda_ops *ops = cuda_ops();
  if (!b->cuda) return;
  if (ops) ops->free_word(b->cuda->word);
  ds__free(b->ctx, b->cuda);
  b->cuda = NULL;
}
