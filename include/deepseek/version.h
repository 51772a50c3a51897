/* libdeepseek: version numbers. The shared library's SONAME carries the major version. */
#ifndef DEEPSEEK_VERSION_H
#define DEEPSEEK_VERSION_H

#include "deepseek/export.h"

/** @defgroup version Version
 *  Compile-time and run-time version. A header/library mismatch in the major version, or a
 *  header newer than the library, makes ds_context_create() fail with DS_ERR_VERSION.
 *  @{ */
#define DS_VERSION_MAJOR 0
#define DS_VERSION_MINOR 1
#define DS_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH, as zstd and SQLite do. */
#define DS_VERSION_NUMBER (DS_VERSION_MAJOR * 10000 + DS_VERSION_MINOR * 100 + DS_VERSION_PATCH)

#define DS__STR2(x) #x
#define DS__STR(x) DS__STR2(x)
#define DS_VERSION_STRING \
  DS__STR(DS_VERSION_MAJOR) "." DS__STR(DS_VERSION_MINOR) "." DS__STR(DS_VERSION_PATCH)

DS_EXTERN_C_BEGIN
/** The library's DS_VERSION_NUMBER. Thread-safe. */
DS_API unsigned ds_version_number(void);
/** The library's version as "MAJOR.MINOR.PATCH"; static storage. Thread-safe. */
DS_API const char *ds_version_string(void);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_VERSION_H */
