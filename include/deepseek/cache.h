/* libdeepseek: the multi-level cache (GPU tier, memory tier, compressed memory tier, disk). */
#ifndef DEEPSEEK_CACHE_H
#define DEEPSEEK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

/** @defgroup cache Cache
 *  A key-value cache of byte strings in tiers: L1 keeps values uncompressed within a byte
 *  budget; L2 keeps them compressed (lz4, or zstd at a chosen level, optionally byte-shuffled,
 *  optionally fp32 stored as bf16 — lossy, opt-in) within its own byte budget. An entry evicted
 *  from L1 moves down to L2; an L2 hit moves it back up. Either tier may be absent (budget 0).
 *  Each tier's eviction policy is chosen by name (default "lruk+", see docs/architecture.md).
 *
 *  **GPU tier** (optional, above L1; ds_cache_options.gpu_bytes > 0): values kept in one
 *  device's memory (a CUDA GPU, or any fabric device with its own memory: an OpenCL device,
 *  a registered backend's), within its own byte budget. With it, a put lands in device memory;
 *  an entry evicted from it is copied back down to L1 (and from there to L2); a hit in L1 or
 *  L2 moves the entry up to it (a promotion competes for admission, as into L1). A get of a
 *  GPU entry copies it from the device (ds_cache_get_ref gives a host copy). When the device
 *  allocation or copy fails (device memory full), the entry stays in the tier below: nothing
 *  is lost and the put still succeeds (counted in ds_cache_tier_stats.io_errors and
 *  .rejected of DS_CACHE_GPU). On CUDA, copies go through a pinned host staging buffer.
 *  Admission: a value given to ds_cache_put / ds_cache_put_owned, or moved up by prefetch,
 *  always enters L1 (policies with an admission filter, lruk+ and wtinylfu, evict other
 *  entries instead of declining it); the filter only decides whether an older entry leaving
 *  L1's window, or an L2 entry promoted by a get, stays in L1 (else it goes to L2, or out
 *  when there is no L2; counted in ds_cache_tier_stats.rejected).
 *
 *  A tier's budget counts key and value bytes (stored bytes in L2) and is split evenly over
 *  the shards, so one value larger than budget/shards is not kept in that tier; a put of a
 *  value that exceeds the per-shard budget of every tier fails with DS_ERR_FULL.
 *
 *  **Memory of L1 values** (tunable DS_PARAM_CACHE_L1_HUGE_PAGES, read at ds_cache_create):
 *  by default a cache whose L1 budget is 2 MiB or more, in a context with no allocator hook,
 *  keeps its entries and its L1 values of up to 64 KiB in an arena of its own: 2 MiB chunks
 *  mapped with mmap and advised for transparent huge pages, cut into slots of 44 size classes
 *  (at most 20% of a slot unused; 4 KiB values fill theirs). With values beyond the TLB's
 *  reach this saves a page walk per hit. The arena maps at most 1.25x the L1 budget (larger
 *  values and the overflow go to the heap); a chunk left empty is unmapped (one kept per size
 *  class). The budgets still count key and value bytes; the arena's mapped bytes are the
 *  context stat cache.l1.arena_bytes (the sum over the context's caches). Its memory does not
 *  go through the context's allocator hook and is not in core.mem.*.
 *
 *  Threading: every ds_cache_* call on one cache is thread-safe (keys are spread over shards,
 *  each with its own mutex), except ds_cache_destroy, which must not run concurrently with any
 *  other call on the cache.
 *  @{ */

typedef struct ds_cache ds_cache;
/** A pinned reference to a value, from ds_cache_get_ref(); release with ds_cache_release(). */
typedef struct ds_cache_ref ds_cache_ref;

/** L2 codecs. */
typedef enum ds_cache_codec {
  DS_CACHE_CODEC_LZ4 = 0,  /**< fast (default) */
  DS_CACHE_CODEC_ZSTD = 1, /**< better ratio; level in ds_cache_options.zstd_level */
  DS_CACHE_CODEC_NONE = 2  /**< stored as is */
} ds_cache_codec;

/** ds_cache_options.flags */
#define DS_CACHE_SHUFFLE 0x1u    /**< byte-shuffle 4-byte elements before L2 compression */
#define DS_CACHE_LOSSY_BF16 0x2u /**< L2 keeps values whose size is a multiple of 4 as bf16
                                      (fp32 rounded to nearest even): LOSSY, for fp32 tensors */

/** Options for ds_cache_create(). Initialise with DS_CACHE_OPTIONS_INIT. */
typedef struct ds_cache_options {
  uint32_t struct_size; /**< sizeof(ds_cache_options) */
  uint32_t flags;       /**< DS_CACHE_* */
  uint64_t l1_bytes;    /**< L1 (uncompressed) budget; 0: no L1. Default 64 MiB. */
  uint64_t l2_bytes;    /**< L2 (compressed) budget; 0: no L2. Default 0. */
  int32_t codec;        /**< a ds_cache_codec for L2 */
  int32_t zstd_level;   /**< 1..19 (default 3) */
  const char *policy;   /**< eviction policy of both tiers: "lru", "lru2", "arc", "s3fifo",
                             "wtinylfu", "sieve", "lruk+" (NULL: the context's
                             DS_PARAM_CACHE_POLICY, default "lruk+"). Copied. */
  uint32_t shards;      /**< power of two, 1..256 (0: up to 16, keeping >= 4 MiB of the
                             larger budget per shard) */
  uint32_t prefetch_depth; /**< 0: no prefetch. n (1..16): on each get, up to n predicted next
                                keys are moved from L2 to L1 in a background task. Predictors,
                                per stream (ds_cache_get_stream; ds_cache_get is stream 0): a
                                constant stride in a key's trailing number (ASCII digits, or a
                                4/8-byte integer key; sequential is stride 1), else the key
                                that followed this one in its stream last time (Markov). */
  uint64_t gpu_bytes;   /**< GPU tier budget (device memory); 0: no GPU tier (default) */
  int32_t gpu_device;   /**< fabric device index of the GPU tier (see ds_fabric_device_find;
                             not a CPU device); -1 (default): the first CUDA device, and no
                             GPU tier, without an error, when there is none */
} ds_cache_options;

#define DS_CACHE_OPTIONS_INIT \
  { sizeof(ds_cache_options), 0u, (uint64_t)64 << 20, 0u, 0, 3, NULL, 0u, 0u, 0u, -1 }

/** Tiers, for ds_cache_stats(). */
#define DS_CACHE_L1 1
#define DS_CACHE_L2 2
#define DS_CACHE_L3 3 /**< the disk tier of a persistent cache */
#define DS_CACHE_GPU 4 /**< the GPU tier (device memory) of a memory cache */

/** Durability of a persistent cache's puts. */
typedef enum ds_cache_durability {
  DS_CACHE_SYNC_EVERY_PUT = 0, /**< a put returns after its record is on stable storage
                                    (fdatasync); a crash loses no acknowledged put */
  DS_CACHE_SYNC_BATCHED = 1    /**< a background thread syncs every sync_interval_ms; a
                                    crash loses at most the puts of the last interval */
} ds_cache_durability;

/** Options for ds_cache_open_persistent_ex(). Initialise with DS_CACHE_PERSIST_OPTIONS_INIT. */
typedef struct ds_cache_persist_options {
  uint32_t struct_size;      /**< sizeof(ds_cache_persist_options) */
  int32_t codec;             /**< a ds_cache_codec (default lz4) */
  int32_t zstd_level;        /**< 1..19 (default 3) */
  int32_t durability;        /**< a ds_cache_durability (default DS_CACHE_SYNC_BATCHED) */
  uint32_t sync_interval_ms; /**< for DS_CACHE_SYNC_BATCHED, 1..60000 (default 1000) */
  uint32_t read_only;        /**< 1: open without the writer lock; puts and removes fail */
  uint64_t max_bytes;        /**< budget for the segment files (required, >= 1 MiB) */
} ds_cache_persist_options;

#define DS_CACHE_PERSIST_OPTIONS_INIT \
  { sizeof(ds_cache_persist_options), 0, 3, 1, 1000u, 0u, 0u }

/** Per-tier counters since creation (bytes and entries are current values). */
typedef struct ds_cache_tier_stats {
  uint32_t struct_size;   /**< sizeof(ds_cache_tier_stats), set by the caller */
  uint32_t tier;
  uint64_t bytes;         /**< stored bytes (keys + values as stored; L1 also counts the kept
                               L2 encoding of entries promoted from L2, so that moving them
                               down again costs no compression) */
  uint64_t raw_bytes;     /**< the same values uncompressed */
  uint64_t entries;
  uint64_t hits, misses;  /**< misses: lookups that reached this tier and missed */
  uint64_t evictions;     /**< entries pushed out of this tier (down, or out of the cache) */
  uint64_t rejected;      /**< puts the tier's admission policy declined */
  double compression_ratio; /**< raw_bytes / value bytes as stored (bytes less keys and,
                                 in L1, the kept encodings): 1 for L1 and the GPU tier */
  double p50_ns, p99_ns;  /**< hit latency of sampled gets in this tier (bucket upper bounds) */
  uint64_t corrupt;       /**< L3: records found torn or corrupt (skipped) */
  uint64_t io_errors;     /**< L3: failed writes or reads; GPU: failed device allocations or
                               copies (those entries stayed in a lower tier) */
  uint64_t prefetched;    /**< L1: entries moved up from L2 by prefetch */
} ds_cache_tier_stats;

DS_EXTERN_C_BEGIN

/** Creates a cache. @param out receives it (NULL on failure). @param opts NULL: every option
 *  from the context's cache tunables (DS_PARAM_CACHE_POLICY, _L1_BYTES, _L2_BYTES, _SHARDS,
 *  _CODEC, _ZSTD_LEVEL, _PREFETCH_DEPTH, _GPU_BYTES, _GPU_DEVICE; config keys cache_*,
 *  environment DS_CACHE_*), whose defaults are those of DS_CACHE_OPTIONS_INIT. A struct_size
 *  of the options struct before gpu_bytes was added (this library's 1.x callers) is accepted:
 *  the missing fields take their defaults.
 *  @return DS_OK; DS_ERR_INVALID_ARG (NULL out/ctx, bad policy name, codec, level, shards,
 *  gpu_device a CPU device or out of range); DS_ERR_NOT_FOUND (no device gpu_device);
 *  DS_ERR_ABI (unknown struct_size); DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_cache_create(ds_cache **out, ds_context *ctx, const ds_cache_options *opts);

/** Opens (creating if needed) a persistent cache with only the disk tier in directory @p path
 *  (created 0700; files 0600): append-only segment files of checksummed records (XXH3), and a
 *  MANIFEST replaced by write, fsync, rename. A full segment is sealed with an index file of
 *  its records (offsets, lengths, keys; checksummed; write, fsync, rename). Reopening rebuilds
 *  the index from those files, and scans (verifying every record's checksum) the last
 *  segment and any segment whose index file is missing, damaged or stale; a torn or corrupt
 *  record is skipped, counted (ds_cache_tier_stats.corrupt) and logged with its segment and
 *  offset. Gets read the memory-mapped segments, check the record header against the index
 *  and verify the record's checksum once after open unless the scan did
 *  (DS_PARAM_CACHE_VERIFY_READS: 1 the first get of a record not verified since open,
 *  default; 2 every get; 0 never; a mismatch is DS_ERR_CORRUPT, counted, logged, and the
 *  entry dropped). The directory's files (segments, index files, MANIFEST, LOCK) never exceed
 *  @p max_bytes in total: the oldest segment is dropped (its entries evicted) to make room;
 *  when the cache is full, a segment this process wrote is recycled instead of deleted (renamed
 *  to the new segment and written over, so synced puts overwrite blocks the file already has;
 *  its old records are never served again; counted in the context stat
 *  "cache.l3.recycled_segments"); a new segment is allocated at its full size when it fits
 *  (counted in @p max_bytes, cut to its data when sealed or reopened). Records written by
 *  earlier versions are still read, and a writer marks such a directory as the current format
 *  (MANIFEST version 2) before it adds a record, so that earlier versions of the library refuse
 *  it with DS_ERR_FORMAT instead of misreading it. Durability, sync interval and zstd
 *  level come from the context's tunables (DS_PARAM_CACHE_DURABILITY, default batched every
 *  DS_PARAM_CACHE_SYNC_INTERVAL_MS = 1000 ms; DS_PARAM_CACHE_ZSTD_LEVEL).
 *  @param compression a ds_cache_codec, or -1 for the context's DS_PARAM_CACHE_CODEC.
 *  @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_BUSY (another process has it open for writing);
 *  DS_ERR_IO; DS_ERR_FORMAT (not a cache directory of this format); DS_ERR_NO_MEMORY.
 *  Thread-safe. Pins are not supported on this tier (DS_ERR_UNSUPPORTED). */
DS_API ds_status ds_cache_open_persistent(ds_cache **out, ds_context *ctx, const char *path,
                                          uint64_t max_bytes, int compression);

/** ds_cache_open_persistent() with options (durability, read-only). @return as it, and
 *  DS_ERR_ABI for an unknown struct_size. Thread-safe. */
DS_API ds_status ds_cache_open_persistent_ex(ds_cache **out, ds_context *ctx, const char *path,
                                             const ds_cache_persist_options *opts);

/** Frees the cache and every value (owned values through their free function), including the
 *  values and handles of references still outstanding (L1 values, held L2 values, GPU-tier
 *  and persistent values' host copies): those references become invalid and must not be
 *  released; their number is logged as a warning. NULL is a no-op.
 *  Not concurrent with other calls on @p c. */
DS_API void ds_cache_destroy(ds_cache *c);

/** Stores a copy of @p val under @p key (replacing any value; a pinned old value is replaced
 *  too, its pins are dropped). @return DS_OK; DS_ERR_INVALID_ARG (NULL c/key, klen 0 or
 *  > 65535, NULL val with vlen > 0, vlen >= 4 GiB); DS_ERR_NO_MEMORY; DS_ERR_FULL (key +
 *  value larger than every tier's per-shard budget: nothing changed); persistent cache also
 *  DS_ERR_FULL (record larger than max_bytes), DS_ERR_NO_SPACE (disk full), DS_ERR_IO,
 *  DS_ERR_STATE (read-only): the cache stays usable after any of them. Thread-safe. */
DS_API ds_status ds_cache_put(ds_cache *c, const void *key, size_t klen, const void *val,
                              size_t vlen);

/** Function that frees a value given to ds_cache_put_owned(). */
typedef void (*ds_cache_free_fn)(void *user, void *val);

/** Like ds_cache_put() but takes ownership of @p val without copying: the cache calls
 *  free_fn(user, val) once it no longer needs it (evicted from L1, removed, replaced,
 *  destroyed). On an error other than ownership being taken, the caller keeps val.
 *  @return as ds_cache_put(); DS_ERR_INVALID_ARG also for a NULL free_fn. Thread-safe. */
DS_API ds_status ds_cache_put_owned(ds_cache *c, const void *key, size_t klen, void *val,
                                    size_t vlen, ds_cache_free_fn free_fn, void *user);

/** Copies the value of @p key into @p buf (capacity @p cap); *len receives its size.
 *  @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_FULL when cap is too small (*len tells the size,
 *  nothing copied); DS_ERR_INVALID_ARG; DS_ERR_CORRUPT (L2 data failed to decompress, or
 *  an L3 record failed its checksum: the entry was dropped, and buf may hold the record's
 *  bytes, since an uncompressed record is checked while it is copied out);
 *  DS_ERR_DEVICE (the copy from the GPU tier failed; the entry was dropped);
 *  DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_cache_get(ds_cache *c, const void *key, size_t klen, void *buf, size_t cap,
                              size_t *len);

/** ds_cache_get() as part of access stream @p stream (any id, e.g. one per data loader or
 *  thread): with prefetch on, each stream has its own stride detector and learns its own
 *  key successors, so interleaved streams do not hide each other's patterns. ds_cache_get()
 *  is stream 0. Up to 64 streams are tracked at once (more share detectors, which then
 *  restart). Counters in the context's stats: cache.prefetch.predicted_stride and
 *  .predicted_markov (keys predicted), cache.prefetch.correct (gets of a key predicted at
 *  its stream's previous get). A persistent cache ignores @p stream.
 *  @return as ds_cache_get(). Thread-safe. */
DS_API ds_status ds_cache_get_stream(ds_cache *c, uint64_t stream, const void *key, size_t klen,
                                     void *buf, size_t cap, size_t *len);

/** Gives a read-only pointer to the value of @p key, valid and unchanged until
 *  ds_cache_release(*ref), even if the key is replaced, removed or evicted or the cache is
 *  flushed meanwhile.
 *
 *  A reference to an L1 value costs no allocation and, with the lruk+ policy and no GPU
 *  tier, no lock: it is counted in the entry, which stays in its policy. When the entry is
 *  removed, replaced, evicted or moved down while referenced, it leaves the cache at once
 *  (lookups miss, it is in no tier's bytes or entries) and its value is freed at the last
 *  release. Such values are not counted against L1's budget: they are reported apart as the
 *  context stats "cache.l1.zombie_bytes" (key + value bytes) and "cache.l1.zombies", published
 *  by ds_cache_stats(c, DS_CACHE_L1, ...) and ds_cache_flush(). A referenced L1 entry is not
 *  moved up to the GPU tier and not dropped by ds_cache_flush().
 *  A reference to an L2 value decodes it into L1 and keeps it out of eviction until release
 *  (removed or replaced meanwhile, it is a zombie as above); one to a GPU-tier or persistent
 *  value holds a host copy.
 *  @return as ds_cache_get() (no DS_ERR_FULL). Thread-safe. */
DS_API ds_status ds_cache_get_ref(ds_cache *c, const void *key, size_t klen, const void **data,
                                  size_t *len, ds_cache_ref **ref);

/** Releases a reference from ds_cache_get_ref() (any thread may release it).
 *  @return DS_OK (also for a NULL @p ref: a no-op); DS_ERR_INVALID_ARG (NULL @p c with a
 *  reference); DS_ERR_STATE when an L1 reference is released more times than it was taken
 *  while its entry is still cached (detected, nothing changed). A release after the value was
 *  freed (a second release of a reference whose value left the cache, or any release after
 *  ds_cache_destroy()) is undefined, like a second free(). Thread-safe. */
DS_API ds_status ds_cache_release(ds_cache *c, ds_cache_ref *ref);

/** Hint that @p key will be read soon: if it is in L2, a background task moves it up to L1.
 *  Memory caches only (a persistent cache returns DS_OK and does nothing). @return DS_OK;
 *  DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_cache_prefetch(ds_cache *c, const void *key, size_t klen);

/** 1 if @p key is in any tier, else 0 (also for bad arguments). Does not count as a hit or
 *  change eviction order. Thread-safe. */
DS_API int ds_cache_contains(ds_cache *c, const void *key, size_t klen);

/** Removes @p key. @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG. Thread-safe. */
DS_API ds_status ds_cache_remove(ds_cache *c, const void *key, size_t klen);

/** Pins @p key: it stays in its tier until as many ds_cache_unpin() calls. Pinned bytes still
 *  count in the tier's budget (a tier may then be over budget). @return DS_OK;
 *  DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG; DS_ERR_STATE (unpin of an unpinned key). Thread-safe. */
DS_API ds_status ds_cache_pin(ds_cache *c, const void *key, size_t klen);
DS_API ds_status ds_cache_unpin(ds_cache *c, const void *key, size_t klen);

/** Memory tiers: drops every entry that is neither pinned nor referenced. Persistent cache:
 *  makes every put durable (fdatasync) instead. Both publish the stats
 *  ("cache.l1.hits", ...) to the context's stats registry. @return DS_OK; DS_ERR_INVALID_ARG.
 *  Thread-safe. */
DS_API ds_status ds_cache_flush(ds_cache *c);

/** Fills @p out (out->struct_size set by the caller) for tier DS_CACHE_L1, DS_CACHE_L2 or
 *  (when the cache has one) DS_CACHE_GPU of a memory cache, DS_CACHE_L3 of a persistent one,
 *  and publishes the stats to the context ("cache.l1.hits", "cache.gpu.hits", ...).
 *  @return DS_OK; DS_ERR_INVALID_ARG (bad tier, NULL);
 *  DS_ERR_ABI. Thread-safe. */
DS_API ds_status ds_cache_stats(ds_cache *c, int tier, ds_cache_tier_stats *out);

DS_EXTERN_C_END

/** @} */
#endif /* DEEPSEEK_CACHE_H */
