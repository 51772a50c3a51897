/* Fuzz target: the batcher's shape checks, padding and gather/scatter. The input chooses the
 * constraint (dims fixed or varying, maximum lengths, output dims following the input, allowed
 * batch sizes, length buckets) and up to four requests' tensors (ndim, dims, dtype); accepted
 * requests run through a handler that writes every byte of the batch output, so any
 * out-of-bounds gather or scatter shows under ASan. One context for the whole run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ds_context *fz_ctx;

static ds_status fz_handler(void *user, const ds_batch *b) {
  (void)user;
  memset(b->output->data, 0x7f, ds_tensor_nbytes(b->output));
  const uint8_t *in = b->input->data;
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < ds_tensor_nbytes(b->input); i++) sink ^= in[i]; /* read it all */
  (void)sink;
  return DS_OK;
}

typedef struct {
  const uint8_t *p;
  size_t n;
} fz_in;

static uint8_t fz_byte(fz_in *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

static void fz_options(fz_in *in, ds_batcher_options *o, int32_t *sizes, int64_t *bounds) {
  o->handler = fz_handler;
  o->ndim = fz_byte(in) % 4;
  o->output_ndim = fz_byte(in) % 4;
  o->max_batch_size = 1 + fz_byte(in) % 8;
  uint8_t flags = fz_byte(in);
  o->dtype = flags & 0x80 ? DS_DTYPE_U8 : DS_DTYPE_F32;
  o->output_dtype = flags & 0x40 ? DS_DTYPE_BF16 : DS_DTYPE_F32;
  for (int d = 0; d < 4; d++) {
    o->shape[d] = fz_byte(in) % 6 - 1; /* -1 (varies) .. 4 */
    o->max_shape[d] = fz_byte(in) % 5;
    o->output_shape[d] = fz_byte(in) % 6 - 1;
  }
  if (flags & 1) {
    o->nallowed = 1 + fz_byte(in) % 3;
    for (size_t i = 0; i < o->nallowed; i++) sizes[i] = fz_byte(in) % 10;
    o->allowed_batch_sizes = sizes;
  }
  if (flags & 2) {
    o->nbuckets = 1 + fz_byte(in) % 3;
    for (size_t i = 0; i < o->nbuckets; i++) bounds[i] = fz_byte(in) % 8;
    o->bucket_bounds = bounds;
  }
  if (flags & 4) {
    o->npreferred = 1;
    o->preferred_batch_sizes = sizes + 4;
    sizes[4] = fz_byte(in) % 10;
  }
}

/* A request's tensors, dims 0..4 each (at most 4^3 elements of at most 4 bytes). */
static void fz_tensor(fz_in *in, ds_tensor *t, void *buf, int32_t dtype) {
  int32_t ndim = fz_byte(in) % 4;
  int64_t shape[4];
  for (int d = 0; d < ndim; d++) shape[d] = fz_byte(in) % 5;
  ds_device cpu = {DS_DEVICE_CPU, 0};
  if (ds_tensor_init(t, NULL, buf, (ds_dtype)dtype, ndim, shape, NULL, cpu) != DS_OK)
    memset(t, 0, sizeof *t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fz_ctx) {
    ds_context_options co = DS_CONTEXT_OPTIONS_INIT;
    co.flags = DS_CONTEXT_NO_ENV;
    ds_param_value p[] = {{DS_PARAM_TELEMETRY_ENABLE, 0, 0},
                          {DS_PARAM_STATS_FILE, 0, 0},
                          {DS_PARAM_LOG_LEVEL, 0, DS_LOG_OFF},
                          {DS_PARAM_SCHED_WORKERS, 0, 2},
                          {DS_PARAM_SCHED_BIND, 0, 0}};
    co.params = p;
    co.nparams = 5;
    if (ds_context_create(&fz_ctx, &co) != DS_OK) __builtin_trap();
  }
  fz_in in = {data, size};
  ds_batcher_options o = DS_BATCHER_OPTIONS_INIT;
  int32_t sizes[5] = {0};
  int64_t bounds[3] = {0};
  fz_options(&in, &o, sizes, bounds);
  ds_batcher *b = NULL;
  if (ds_batcher_create(&b, fz_ctx, &o) != DS_OK) return 0;
  static uint64_t inbuf[4][16], outbuf[4][16]; /* 128 bytes each: 4^3 elements of 2 bytes... */
  static float big_in[4][64], big_out[4][64];  /* ...or of 4 bytes */
  ds_tensor ti[4], to[4];
  ds_batch_request *req[4] = {NULL};
  int nreq = fz_byte(&in) % 5;
  for (int i = 0; i < nreq; i++) {
    uint8_t dt = fz_byte(&in);
    int32_t idt = dt & 1 ? o.dtype : DS_DTYPE_I16;
    fz_tensor(&in, &ti[i], ds_dtype_size((ds_dtype)idt) > 2 ? (void *)big_in[i] : inbuf[i], idt);
    fz_tensor(&in, &to[i], ds_dtype_size((ds_dtype)o.output_dtype) > 2 ? (void *)big_out[i]
                                                                       : outbuf[i],
              o.output_dtype);
    if (ds_batcher_submit(&req[i], b, ti[i].data ? &ti[i] : NULL, &to[i], NULL) != DS_OK)
      req[i] = NULL;
  }
  for (int i = 0; i < nreq; i++) {
    if (req[i]) (void)ds_batch_request_wait(req[i], -1);
    ds_batch_request_release(req[i]);
  }
  ds_batcher_destroy(b);
  return 0;
}
