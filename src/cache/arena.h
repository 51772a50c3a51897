/* The L1 value arena (arena.c): size-classed slots carved from 2 MiB-aligned chunks that are
 * mapped apart from the heap and advised for transparent huge pages, so that a working set of
 * L1 values lies on few TLB entries. */
#ifndef DS_CACHE_ARENA_H
#define DS_CACHE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define DS__ARENA_CHUNK ((size_t)2 << 20) /* a huge page: chunks are mapped and aligned so */
#define DS__ARENA_MAX ((size_t)64 << 10)  /* larger values stay on the heap (ds__alloc) */

typedef struct ds__arena ds__arena;

/* A new arena that maps at most cap bytes of chunks (rounded down to whole chunks; beyond it
 * ds__arena_alloc returns NULL). stat_id: a gauge of the context that mapped bytes are added
 * to and taken from (-1: none). NULL when out of memory. */
ds__arena *ds__arena_create(ds_context *ctx, uint64_t cap, int stat_id);
/* Unmaps every chunk, slots still allocated included; returns how many those were (a leak of
 * the caller's). NULL is a no-op. */
uint64_t ds__arena_destroy(ds__arena *a);
/* A slot of at least n bytes (1..DS__ARENA_MAX), 16-byte aligned (64-byte when n is a
 * multiple of 64); NULL when n is out of range, the cap is reached or mapping fails: the
 * caller then allocates from the heap. Thread-safe (a mutex per class). */
void *ds__arena_alloc(ds__arena *a, size_t n);
/* Returns a slot of ds__arena_alloc; a chunk left with no allocated slot is unmapped, except
 * one kept per class so that a class hovering at a chunk's edge does not map and unmap on
 * every put. Thread-safe. */
void ds__arena_free(ds__arena *a, void *p);
/* Bytes of chunks mapped now. */
uint64_t ds__arena_mapped(ds__arena *a);
/* The slot size that serves n bytes (0 when n is out of range). */
size_t ds__arena_class_size(size_t n);

#endif
