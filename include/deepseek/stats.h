/* libdeepseek: stats snapshot and the per-process memory-mapped stats file. */
#ifndef DEEPSEEK_STATS_H
#define DEEPSEEK_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

/** @defgroup stats Stats
 *  Modules publish named counters and gauges ("telemetry.cpu_util", "cache.l1.hits") into
 *  their context. ds_stats_snapshot() copies them; the same values are mirrored, once per
 *  telemetry period, into a memory-mapped file (mode 0600, in $XDG_RUNTIME_DIR/deepseek, else
 *  /tmp/deepseek-UID) that deepseek-monitor reads with ds_stats_file_read(). The file is
 *  updated under a sequence lock, so a reader never sees a torn snapshot; it is removed at
 *  ds_context_destroy(). DS_PARAM_STATS_FILE=0 disables the file. The environment variable
 *  DS_STATS_DIR (ignored under DS_CONTEXT_NO_ENV) names another directory. A directory that is
 *  a symbolic link, is not owned by the effective user, or is group- or other-writable is
 *  refused: the context is created without a file and a warning is logged.
 *  A ds_stats snapshot is immutable: any thread may read it; free it once. Snapshots are
 *  allocated with malloc(), not the context's allocator, and may outlive their context.
 *  @{ */

typedef enum ds_stat_kind {
  DS_STAT_COUNTER = 0, /**< only grows */
  DS_STAT_GAUGE = 1    /**< a current value; NaN until first set (unknown, not zero) */
} ds_stat_kind;

typedef struct ds_stat {
  const char *name; /**< owned by the snapshot */
  int32_t kind;     /**< a ds_stat_kind */
  int32_t reserved;
  double value;
} ds_stat;

typedef struct ds_stats ds_stats;

DS_EXTERN_C_BEGIN
/** Copies the context's current stats. @return DS_OK; DS_ERR_INVALID_ARG; DS_ERR_NO_MEMORY.
 *  Thread-safe. */
DS_API ds_status ds_stats_snapshot(ds_stats **out, ds_context *ctx);
/** Reads the stats file of a running process (see ds_stats_file_path()). Needs no context;
 *  detail goes to ds_context_last_error(NULL). @return DS_OK; DS_ERR_IO (cannot open);
 *  DS_ERR_CORRUPT (not a stats file, or of another version); DS_ERR_BUSY (the writer kept
 *  updating during every retry); DS_ERR_NO_MEMORY. Thread-safe. */
DS_API ds_status ds_stats_file_read(ds_stats **out, const char *path);
/** Path of the context's stats file, or NULL when it has none. Valid for the context's life.
 *  Thread-safe. */
DS_API const char *ds_stats_file_path(const ds_context *ctx);

/** The directory where this process's contexts create their stats files and where
 *  deepseek-monitor looks for them: $DS_STATS_DIR, else $XDG_RUNTIME_DIR/deepseek when that
 *  runtime directory belongs to the effective user, else /tmp/deepseek-UID. Files in it are
 *  named "<pid>-<serial>.stats". The directory may not exist yet.
 *  @param buf receives the NUL-terminated path; @param cap its size in bytes.
 *  @return DS_OK; DS_ERR_INVALID_ARG (buf NULL or cap 0); DS_ERR_NO_SPACE (the path does not
 *  fit: buf is set to ""). Detail goes to ds_context_last_error(NULL). Thread-safe. */
DS_API ds_status ds_stats_dir(char *buf, size_t cap);

/** Number of stats in @p s (0 for NULL). */
DS_API size_t ds_stats_count(const ds_stats *s);
/** The @p index-th stat; its name belongs to @p s. @return DS_OK; DS_ERR_NOT_FOUND (index out
 *  of range, or @p s NULL); DS_ERR_INVALID_ARG (out NULL). */
DS_API ds_status ds_stats_at(ds_stat *out, const ds_stats *s, size_t index);
/** Value of the stat named @p name. @return DS_OK; DS_ERR_NOT_FOUND; DS_ERR_INVALID_ARG (out or
 *  name NULL). */
DS_API ds_status ds_stats_find(double *out, const ds_stats *s, const char *name);
/** Process id and label (ds_context_options.name) of the snapshot's producer. */
DS_API int64_t ds_stats_pid(const ds_stats *s);
DS_API const char *ds_stats_label(const ds_stats *s);
/** Frees a snapshot. NULL is a no-op. */
DS_API void ds_stats_free(ds_stats *s);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_STATS_H */
