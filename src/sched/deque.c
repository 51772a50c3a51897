/* The per-worker work-stealing deque: a lock-free Chase-Lev deque (Chase & Lev 2005, in the
 * C11 formulation of Lê, Pop, Cohen & Zappa Nardelli 2013). The owning worker pushes and pops
 * at the bottom without a lock in the common case; thieves take from the top with one CAS.
 *
 * Memory ordering, and why each is needed:
 *  - push writes the slot (relaxed) and then publishes it with a release store of bottom; a
 *    thief's seq_cst load of bottom acquires it, so it sees the slot and the task's fields.
 *  - pop stores bottom-1 and then loads top, and steal loads top and then bottom: these two
 *    store->load pairs must not be reordered (else owner and thief could both take the last
 *    entry), so they are seq_cst operations (the paper uses seq_cst fences; the operations
 *    say the same thing in a form ThreadSanitizer checks).
 *  - the last entry is claimed by a seq_cst CAS on top, by the owner or a thief, never both.
 * Growing copies into a buffer twice the size; old buffers stay allocated until the deque is
 * finalised, because a thief may still read from one (no reclamation scheme needed). */
#include "sched_internal.h"

struct ds__deque_buf {
  int64_t mask; /* capacity - 1; capacity a power of two */
  struct ds__deque_buf *older;
  ds__atomic_ptr slot[];
};

static struct ds__deque_buf *ds__deque_buf_new(ds_context *ctx, int64_t cap) {
  struct ds__deque_buf *b = ds__calloc(ctx, 1, sizeof *b + (size_t)cap * sizeof(ds__atomic_ptr));
  if (b) b->mask = cap - 1; /* calloc's zero bytes are null slots on every target we build for */
  return b;
}

int ds__deque_init(ds__deque *d, ds_context *ctx) {
  ds__store_relaxed(&d->top, 0);
  ds__store_relaxed(&d->bottom, 0);
  struct ds__deque_buf *b = ds__deque_buf_new(ctx, DS__DEQUE_INITIAL);
  ds__store(&d->buf, b);
  return b != NULL;
}

void ds__deque_fini(ds__deque *d, ds_context *ctx) {
  struct ds__deque_buf *b = ds__load(&d->buf);
  while (b) {
    struct ds__deque_buf *older = b->older;
    ds__free(ctx, b);
    b = older;
  }
  ds__store(&d->buf, NULL);
}

/* Owner only: doubles the buffer, copying the live entries [t, bt). NULL if out of memory. */
static struct ds__deque_buf *ds__deque_grow(ds__deque *d, ds_context *ctx, struct ds__deque_buf *a,
                                            int64_t t, int64_t bt) {
  struct ds__deque_buf *n = ds__deque_buf_new(ctx, (a->mask + 1) * 2);
  if (!n) return NULL;
  for (int64_t i = t; i < bt; i++)
    ds__store_relaxed(&n->slot[i & n->mask], ds__load_relaxed(&a->slot[i & a->mask]));
  n->older = a;
  ds__store(&d->buf, n); /* release: a thief that sees n sees its slots */
  return n;
}

int ds__deque_push(ds__deque *d, ds_context *ctx, struct ds_task *t) {
  int64_t bt = ds__load_relaxed(&d->bottom), tp = ds__load(&d->top);
  struct ds__deque_buf *a = ds__load_relaxed(&d->buf);
  if (!a) return 0;
  if (bt - tp > a->mask && !(a = ds__deque_grow(d, ctx, a, tp, bt))) return 0;
  ds__store_relaxed(&a->slot[bt & a->mask], t);
  ds__store(&d->bottom, bt + 1);
  return 1;
}

struct ds_task *ds__deque_pop(ds__deque *d) {
  int64_t bt = ds__load_relaxed(&d->bottom) - 1;
  struct ds__deque_buf *a = ds__load_relaxed(&d->buf);
  ds__store_seq_cst(&d->bottom, bt);
  int64_t tp = ds__load_seq_cst(&d->top);
  if (tp > bt) { /* empty */
    ds__store(&d->bottom, bt + 1); /* release, so a thief reading it still sees the pushes */
    return NULL;
  }
  struct ds_task *t = ds__load_relaxed(&a->slot[bt & a->mask]);
  if (tp == bt) { /* the last entry: race the thieves for it */
    if (!ds__cas_seq_cst(&d->top, &tp, tp + 1)) t = NULL;
    ds__store(&d->bottom, bt + 1);
  }
  return t;
}

struct ds_task *ds__deque_steal(ds__deque *d) {
  int64_t tp = ds__load_seq_cst(&d->top);
  int64_t bt = ds__load_seq_cst(&d->bottom);
  if (tp >= bt) return NULL;
  struct ds__deque_buf *a = ds__load(&d->buf);
  struct ds_task *t = ds__load_relaxed(&a->slot[tp & a->mask]);
  return ds__cas_seq_cst(&d->top, &tp, tp + 1) ? t : NULL; /* lost the race: try elsewhere */
}

int64_t ds__deque_size(ds__deque *d) {
  int64_t n = ds__load_relaxed(&d->bottom) - ds__load_relaxed(&d->top);
  return n > 0 ? n : 0;
}
