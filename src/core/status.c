/* ds_status strings, generated from the one X-macro list in status.h. */
#include "internal.h"

const char *ds_status_str(ds_status s) {
  switch (s) {
#define DS__STATUS_STR(name, num, desc) \
  case name:                            \
    return desc;
    DS_STATUS_MAP(DS__STATUS_STR)
#undef DS__STATUS_STR
  }
  return "unknown status";
}

const char *ds_status_name(ds_status s) {
  switch (s) {
#define DS__STATUS_NAME(name, num, desc) \
  case name:                             \
    return #name;
    DS_STATUS_MAP(DS__STATUS_NAME)
#undef DS__STATUS_NAME
  }
  return "DS_UNKNOWN";
}
