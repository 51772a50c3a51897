/* libdeepseek: the one status type. */
#ifndef DEEPSEEK_STATUS_H
#define DEEPSEEK_STATUS_H

#include "deepseek/export.h"

/** @defgroup status Status codes
 *  Every fallible function returns a ds_status. The numbers are fixed and only ever appended.
 *  The detail of a failure (which argument, which file and line) is in
 *  ds_context_last_error() for the calling thread.
 *  @{ */

/** X(NAME, NUMBER, DESCRIPTION): the single list from which the enum and ds_status_str() are
 *  made. */
#define DS_STATUS_MAP(X)                                                                     \
  X(DS_OK, 0, "success")                                                                     \
  X(DS_ERR_INVALID_ARG, 1, "invalid argument")                                               \
  X(DS_ERR_NO_MEMORY, 2, "out of memory")                                                    \
  X(DS_ERR_ABI, 3, "struct_size does not match any version of this structure")               \
  X(DS_ERR_VERSION, 4, "header and library versions are incompatible")                       \
  X(DS_ERR_CONFIG, 5, "configuration error")                                                 \
  X(DS_ERR_IO, 6, "input/output error")                                                      \
  X(DS_ERR_NOT_FOUND, 7, "not found")                                                        \
  X(DS_ERR_UNSUPPORTED, 8, "not supported by this build or this machine")                    \
  X(DS_ERR_UNAVAILABLE, 9, "resource or measurement unavailable")                            \
  X(DS_ERR_CORRUPT, 10, "data is corrupt")                                                   \
  X(DS_ERR_TIMEOUT, 11, "timed out")                                                         \
  X(DS_ERR_CANCELLED, 12, "cancelled")                                                       \
  X(DS_ERR_BUSY, 13, "resource busy")                                                        \
  X(DS_ERR_FULL, 14, "capacity exhausted")                                                   \
  X(DS_ERR_STATE, 15, "call not allowed in the object's current state")                      \
  X(DS_ERR_DEVICE, 16, "device error")                                                       \
  X(DS_ERR_INTERNAL, 17, "internal error")                                                   \
  X(DS_ERR_SHUTDOWN, 18, "the context or object is shutting down")                           \
  X(DS_ERR_NO_SPACE, 19, "no space left on the device")                                      \
  X(DS_ERR_SHAPE, 20, "tensor shapes do not match")                                          \
  X(DS_ERR_DTYPE, 21, "tensor dtype not supported or not matching")                          \
  X(DS_ERR_FORMAT, 22, "file or message format not recognised")

typedef enum ds_status {
#define DS__STATUS_ENUM(name, num, desc) name = num,
  DS_STATUS_MAP(DS__STATUS_ENUM)
#undef DS__STATUS_ENUM
} ds_status;

DS_EXTERN_C_BEGIN
/** A short English description of @p s ("out of memory"); "unknown status" for a number not in
 *  the list. Static storage; thread-safe. */
DS_API const char *ds_status_str(ds_status s);
/** The identifier of @p s ("DS_ERR_NO_MEMORY"); "DS_UNKNOWN" for a number not in the list.
 *  Static storage; thread-safe. */
DS_API const char *ds_status_name(ds_status s);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_STATUS_H */
