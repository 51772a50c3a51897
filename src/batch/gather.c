/* Gather and scatter of a batch: each request's input copied into its row of the padded
 * batch input (zero bytes in the padding), and each request's own region of the batch output
 * copied back into its output tensor. Counts real and padding elements for the stats. */
#include <string.h>

#include "batch_internal.h"

int ds__batch_rows(const struct ds_batcher *b, int n) {
  for (size_t i = 0; i < b->o.nallowed; i++)
    if (b->allowed[i] >= n) return b->allowed[i];
  return n;
}

static int64_t prod(const int64_t *shape, int nd) {
  int64_t p = 1;
  for (int d = 0; d < nd; d++) p *= shape[d];
  return p;
}

/* Copies the box of shape box[0..nd) at the origin from src (row-major, shape sshape) to
 * dst (row-major, shape dshape): one memcpy per innermost run. */
static void copy_box(char *dst, const int64_t *dshape, const char *src, const int64_t *sshape,
                     const int64_t *box, int nd, size_t es) {
  if (nd == 0) {
    memcpy(dst, src, es);
    return;
  }
  int64_t dstr[DS_TENSOR_MAX_DIMS], sstr[DS_TENSOR_MAX_DIMS], idx[DS_TENSOR_MAX_DIMS] = {0};
  dstr[nd - 1] = sstr[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--) {
    dstr[d] = dstr[d + 1] * dshape[d + 1];
    sstr[d] = sstr[d + 1] * sshape[d + 1];
  }
  size_t run = (size_t)box[nd - 1] * es;
  int64_t outer = prod(box, nd - 1);
  for (int64_t o = 0; o < outer; o++) {
    int64_t doff = 0, soff = 0;
    for (int d = 0; d < nd - 1; d++) {
      doff += idx[d] * dstr[d];
      soff += idx[d] * sstr[d];
    }
    memcpy(dst + (size_t)doff * es, src + (size_t)soff * es, run);
    for (int d = nd - 2; d >= 0 && ++idx[d] == box[d]; d--) idx[d] = 0;
  }
}

static int grow(ds_context *ctx, void **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 1;
  ds__free(ctx, *buf);
  *buf = ds__alloc(ctx, need ? need : 1);
  *cap = *buf ? need : 0;
  return *buf != NULL;
}

static void make_tensor(ds_tensor *t, void *data, int32_t dtype, int rows, const int64_t *row,
                        int nd) {
  memset(t, 0, sizeof *t);
  t->data = data;
  t->dtype = dtype;
  t->ndim = nd + 1;
  t->shape[0] = rows;
  for (int d = 0; d < nd; d++) t->shape[d + 1] = row[d];
  int64_t s = 1;
  for (int d = nd; d >= 0; d--) {
    t->strides[d] = s;
    s *= t->shape[d];
  }
  t->device.type = DS_DEVICE_CPU;
}

/* The batch's padded input row shape P and output row shape OP. */
static void padded_shapes(const struct ds__brun *run, int64_t *P, int64_t *OP) {
  const ds_batcher_options *o = &run->b->o;
  int nd = o->ndim;
  for (int d = 0; d < nd; d++) {
    P[d] = o->shape[d];
    if (P[d] >= 0) continue;
    for (int i = 0; i < run->n; i++)
      if (run->shapes[i * nd + d] > P[d]) P[d] = run->shapes[i * nd + d];
  }
  for (int d = 0; d < o->output_ndim; d++)
    OP[d] = o->output_shape[d] < 0 ? P[d] : o->output_shape[d];
}

ds_status ds__batch_gather(struct ds__brun *run, ds_tensor *in, ds_tensor *out, int rows) {
  struct ds_batcher *b = run->b;
  int nd = b->o.ndim, ond = b->o.output_ndim;
  for (int i = 0; i < run->n; i++)
    memcpy(&run->shapes[i * nd], run->reqs[i]->input.shape, (size_t)nd * sizeof(int64_t));
  int64_t P[DS_TENSOR_MAX_DIMS], OP[DS_TENSOR_MAX_DIMS];
  padded_shapes(run, P, OP);
  size_t in_row = (size_t)prod(P, nd), out_row = (size_t)prod(OP, ond);
  if (!grow(b->ctx, &run->in_buf, &run->in_cap, (size_t)rows * in_row * b->in_esize) ||
      !grow(b->ctx, &run->out_buf, &run->out_cap, (size_t)rows * out_row * b->out_esize))
    return ds__error(b->ctx, DS_ERR_NO_MEMORY, "batch", "%s: batch buffers", b->name);
  char *dst = run->in_buf;
  uint64_t real = 0;
  for (int i = 0; i < run->n; i++, dst += in_row * b->in_esize) {
    const ds_tensor *t = &run->reqs[i]->input;
    size_t own = (size_t)prod(t->shape, nd);
    real += own;
    if (own == in_row) {
      memcpy(dst, t->data, own * b->in_esize);
      continue;
    }
    memset(dst, 0, in_row * b->in_esize);
    copy_box(dst, P, t->data, t->shape, t->shape, nd, b->in_esize);
  }
  memset(dst, 0, (size_t)(rows - run->n) * in_row * b->in_esize);
  memset(run->out_buf, 0, (size_t)rows * out_row * b->out_esize);
  ds__fetch_add_relaxed(&b->real_elems, real);
  ds__fetch_add_relaxed(&b->padded_elems, (uint64_t)rows * in_row - real);
  make_tensor(in, run->in_buf, b->o.dtype, rows, P, nd);
  make_tensor(out, run->out_buf, b->o.output_dtype, rows, OP, ond);
  return DS_OK;
}

void ds__batch_scatter(struct ds__brun *run, const ds_tensor *out) {
  struct ds_batcher *b = run->b;
  int ond = b->o.output_ndim;
  const int64_t *OP = out->shape + 1;
  size_t out_row = (size_t)prod(OP, ond) * b->out_esize;
  for (int i = 0; i < run->n; i++) {
    const ds_tensor *t = &run->reqs[i]->output;
    const char *src = (const char *)out->data + (size_t)i * out_row;
    if ((size_t)prod(t->shape, ond) * b->out_esize == out_row) {
      memcpy(t->data, src, out_row);
      continue;
    }
    copy_box(t->data, t->shape, src, OP, t->shape, ond, b->out_esize);
  }
}
