/* The L1 value arena: slots of 44 size classes (16 B to 64 KiB, four per doubling, so a value
 * wastes at most 20% of its slot; 4 KiB is a class) carved from 2 MiB chunks. A chunk is
 * mapped 2 MiB-aligned with mmap and advised MADV_HUGEPAGE, so with transparent huge pages
 * (mode "madvise" or "always") it is one TLB entry instead of 512: with 4 KiB values and a
 * working set beyond the TLB's reach, a zero-copy hit otherwise takes a page walk for the
 * value. The way slab allocators of item caches (memcached, CacheLib) keep their memory.
 *
 * A chunk starts with its header, so a free finds its class from the address alone (chunks
 * are aligned). Free slots form an intrusive list per chunk; slots never used are carved in
 * order, so a fresh chunk is not touched before it is used. One mutex per class: allocations
 * and frees come from puts, evictions and releases, never from the lock-free hit path. */
#include <string.h>
#include <sys/mman.h>

#include "arena.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DS__ARENA_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DS__ARENA_ASAN 1
#endif
#ifdef DS__ARENA_ASAN
/* The arena's memory is invisible to ASan's allocator: free and unused slot bytes are
 * poisoned by hand, so a use after free or an overflow past a value is still reported. */
#include <sanitizer/asan_interface.h>
#define DS__POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define DS__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define DS__POISON(p, n) ((void)(p), (void)(n))
#define DS__UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define DS__ARENA_CLASSES 44
#define DS__ARENA_HDR 64 /* a chunk's header, before its first slot */

typedef struct ds__aclass ds__aclass;

typedef struct ds__achunk {
  ds__aclass *cls;
  struct ds__achunk *prev, *next; /* in cls->avail while it has room, else in cls->full */
  void *free;                     /* free slots; each holds the next one's address */
  uint32_t used, carved, nslots, first; /* first: the first slot's offset in the chunk */
} ds__achunk;

struct ds__aclass {
  pthread_mutex_t mu;
  ds__arena *arena;
  ds__achunk *avail; /* chunks with a free or uncarved slot */
  ds__achunk *full;  /* the others */
  uint32_t size;
  uint32_t empty;    /* chunks with no allocated slot (at most one stays mapped) */
};

struct ds__arena {
  ds_context *ctx;
  int stat_id;
  uint64_t cap;
  ds__atomic_u64 mapped;
  ds__aclass cls[DS__ARENA_CLASSES];
};

_Static_assert(sizeof(ds__achunk) <= DS__ARENA_HDR, "a chunk's header fits before its first slot");

/* Class index of n (1..DS__ARENA_MAX): 16-byte steps up to 64, then four per doubling. */
static int ds__arena_class(size_t n) {
  if (n <= 64) return (int)((n + 15) / 16) - 1;
  int k = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^k < n <= 2^(k+1) */
  size_t step = (size_t)1 << (k - 2);
  return 4 + (k - 6) * 4 + (int)((n + step - 1) / step) - 5;
}

static uint32_t ds__arena_class_bytes(int i) {
  if (i < 4) return 16u * (uint32_t)(i + 1);
  int k = 6 + (i - 4) / 4;
  return (uint32_t)((5 + (i - 4) % 4) << (k - 2));
}

size_t ds__arena_class_size(size_t n) {
  if (n == 0 || n > DS__ARENA_MAX) return 0;
  return ds__arena_class_bytes(ds__arena_class(n));
}

ds__arena *ds__arena_create(ds_context *ctx, uint64_t cap, int stat_id) {
  ds__arena *a = ds__calloc(ctx, 1, sizeof *a);
  if (!a) return NULL;
  a->ctx = ctx;
  a->stat_id = stat_id;
  a->cap = cap - cap % DS__ARENA_CHUNK;
  for (int i = 0; i < DS__ARENA_CLASSES; i++) {
    pthread_mutex_init(&a->cls[i].mu, NULL);
    a->cls[i].arena = a;
    a->cls[i].size = ds__arena_class_bytes(i);
  }
  return a;
}

/* 2 MiB of fresh memory aligned to 2 MiB (the huge page frame), or NULL. */
static void *ds__arena_map(void) {
  size_t len = 2 * DS__ARENA_CHUNK;
  char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return NULL;
  size_t head = (DS__ARENA_CHUNK - (uintptr_t)m % DS__ARENA_CHUNK) % DS__ARENA_CHUNK;
  if (head) munmap(m, head);
  munmap(m + head + DS__ARENA_CHUNK, DS__ARENA_CHUNK - head);
  m += head;
#ifdef MADV_HUGEPAGE
  (void)madvise(m, DS__ARENA_CHUNK, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
#endif
  return m;
}

static void ds__arena_list(ds__achunk **head, ds__achunk *ch) {
  ch->prev = NULL;
  ch->next = *head;
  if (*head) (*head)->prev = ch;
  *head = ch;
}

static void ds__arena_unlist(ds__achunk **head, ds__achunk *ch) {
  if (ch->prev) ch->prev->next = ch->next;
  else *head = ch->next;
  if (ch->next) ch->next->prev = ch->prev;
  ch->prev = ch->next = NULL;
}

/* A new chunk for cls, listed in cls->avail (cls->mu held); NULL at the cap or on failure. */
static ds__achunk *ds__arena_grow(ds__aclass *cls) {
  ds__arena *a = cls->arena;
  uint64_t m = ds__load_relaxed(&a->mapped);
  do {
    if (m + DS__ARENA_CHUNK > a->cap) return NULL;
  } while (!ds__cas(&a->mapped, &m, m + DS__ARENA_CHUNK));
  ds__achunk *ch = ds__arena_map();
  if (!ch) {
    ds__fetch_sub(&a->mapped, DS__ARENA_CHUNK);
    return NULL;
  }
  ds__stat_add(a->ctx, a->stat_id, (double)DS__ARENA_CHUNK);
  memset(ch, 0, sizeof *ch);
  ch->cls = cls;
  /* slots start right after the header, so page-multiple slots start 64 bytes past a page,
   * not on one: a copy out of a page-aligned value into a buffer 16 bytes past a page (where
   * large malloc blocks start) has its stores just ahead of its loads modulo 4 KiB, which the
   * CPU takes for a dependence (4 KiB aliasing): 226-325 ns per 4 KiB copy against 58-105 ns
   * for the other offsets measured; hot 4 KiB copying gets in bench_cache_hit ran 5.5 M per
   * CPU second page-aligned against 6.8 M so (five alternated runs each) */
  ch->first = DS__ARENA_HDR;
  ch->nslots = (uint32_t)((DS__ARENA_CHUNK - ch->first) / cls->size);
  DS__POISON((char *)ch + sizeof *ch, DS__ARENA_CHUNK - sizeof *ch);
  ds__arena_list(&cls->avail, ch);
  cls->empty++;
  return ch;
}

static void ds__arena_unmap(ds__arena *a, ds__achunk *ch) {
  DS__UNPOISON(ch, DS__ARENA_CHUNK); /* the range may be mapped again by anyone */
  munmap(ch, DS__ARENA_CHUNK);
  ds__fetch_sub(&a->mapped, DS__ARENA_CHUNK);
  ds__stat_add(a->ctx, a->stat_id, -(double)DS__ARENA_CHUNK);
}

void *ds__arena_alloc(ds__arena *a, size_t n) {
  if (!a || n == 0 || n > DS__ARENA_MAX) return NULL;
  ds__aclass *cls = &a->cls[ds__arena_class(n)];
  pthread_mutex_lock(&cls->mu);
  ds__achunk *ch = cls->avail ? cls->avail : ds__arena_grow(cls);
  if (!ch) {
    pthread_mutex_unlock(&cls->mu);
    return NULL;
  }
  char *p;
  if (ch->free) {
    p = ch->free;
    DS__UNPOISON(p, sizeof(void *));
    memcpy(&ch->free, p, sizeof(void *));
  } else {
    p = (char *)ch + ch->first + (size_t)ch->carved++ * cls->size;
  }
  if (ch->used++ == 0) cls->empty--;
  if (ch->used == ch->nslots) {
    ds__arena_unlist(&cls->avail, ch);
    ds__arena_list(&cls->full, ch);
  }
  pthread_mutex_unlock(&cls->mu);
  DS__POISON(p, cls->size);
  DS__UNPOISON(p, n); /* the slot's tail stays poisoned: an overflow is reported */
  return p;
}

void ds__arena_free(ds__arena *a, void *p) {
  if (!p) return;
  ds__achunk *ch = (ds__achunk *)((uintptr_t)p & ~(uintptr_t)(DS__ARENA_CHUNK - 1));
  ds__aclass *cls = ch->cls;
  pthread_mutex_lock(&cls->mu);
  DS__UNPOISON(p, sizeof(void *));
  memcpy(p, &ch->free, sizeof(void *));
  DS__POISON(p, cls->size);
  ch->free = p;
  if (ch->used-- == ch->nslots) { /* was full: has room again */
    ds__arena_unlist(&cls->full, ch);
    ds__arena_list(&cls->avail, ch);
  }
  if (ch->used == 0 && cls->empty++ > 0) { /* another empty chunk is kept: this one goes */
    cls->empty--;
    ds__arena_unlist(&cls->avail, ch);
    ds__arena_unmap(a, ch);
  }
  pthread_mutex_unlock(&cls->mu);
}

uint64_t ds__arena_mapped(ds__arena *a) { return a ? ds__load_relaxed(&a->mapped) : 0; }

uint64_t ds__arena_destroy(ds__arena *a) {
  if (!a) return 0;
  uint64_t live = 0;
  for (int i = 0; i < DS__ARENA_CLASSES; i++) {
    ds__aclass *cls = &a->cls[i];
    for (int l = 0; l < 2; l++)
      for (ds__achunk *ch = l ? cls->full : cls->avail, *nx; ch; ch = nx) {
        nx = ch->next;
        live += ch->used;
        ds__arena_unmap(a, ch);
      }
    pthread_mutex_destroy(&cls->mu);
  }
  ds__free(a->ctx, a);
  return live;
}
