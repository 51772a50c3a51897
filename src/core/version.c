/* Run-time version and build-feature queries. */
#include "build_config.h"
#include "internal.h"

unsigned ds_version_number(void) { return DS_VERSION_NUMBER; }

const char *ds_version_string(void) { return DS_VERSION_STRING; }

uint32_t ds_build_features(void) {
  uint32_t f = DS_FEATURE_HWLOC | DS_FEATURE_DLPACK;
  if (DS_HAVE_CUDA) f |= DS_FEATURE_CUDA;
  if (DS_HAVE_OPENCL) f |= DS_FEATURE_OPENCL;
  if (DS_HAVE_MPI) f |= DS_FEATURE_MPI;
  return f;
}

const char *ds_build_summary(void) { return DS_BUILD_SUMMARY; }
