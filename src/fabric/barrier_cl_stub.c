/* The OpenCL entry points of the timestamp barrier in builds without OpenCL: they exist (the
 * ABI does not depend on the build) and answer DS_ERR_UNSUPPORTED. */
#include "barrier_internal.h"
#include "build_config.h"

#if !DS_HAVE_OPENCL
ds_status ds_fabric_barrier_publish_opencl(ds_fabric_barrier *b, uint32_t participant,
                                           void *cl_queue, uint64_t t) {
  (void)participant, (void)cl_queue, (void)t;
  return ds__error(b ? b->ctx : NULL, DS_ERR_UNSUPPORTED, "fabric",
                   "barrier publish_opencl: built without OpenCL");
}

ds_status ds_fabric_barrier_wait_opencl(ds_fabric_barrier *b, void *cl_queue, uint64_t t,
                                        void **out_event) {
  (void)cl_queue, (void)t;
  if (out_event) *out_event = NULL;
  return ds__error(b ? b->ctx : NULL, DS_ERR_UNSUPPORTED, "fabric",
                   "barrier wait_opencl: built without OpenCL");
}
#else
typedef int ds__barrier_cl_stub_unused; /* ISO C forbids an empty translation unit */
#endif
