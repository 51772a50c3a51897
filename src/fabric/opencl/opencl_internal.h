/* Internal to the OpenCL backend folder: its per-device state, shared by the backend table
 * (opencl.c) and the kernel cache (kernel.c). */
#ifndef DS_FABRIC_OPENCL_INTERNAL_H
#define DS_FABRIC_OPENCL_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "fabric_internal.h"

/* One cached kernel, built from (source, name) on one device. */
struct ds__cl_kernel {
  struct ds__cl_kernel *next;
  uint64_t source_hash;
  char *source; /* copy, compared on a hash match */
  char *name;
  cl_program program;
  cl_kernel kernel;
};

struct ds__cl_device {
  cl_device_id id;
  cl_context context;
  cl_command_queue queue; /* in order: copies and launches run in submission order */
  int is_cpu;             /* CL_DEVICE_TYPE_CPU (PoCL): host memory can be used in place */
  int host_unified;       /* CL_DEVICE_HOST_UNIFIED_MEMORY */
  int platform, index;    /* numbers for the device name */
  pthread_mutex_t mu;     /* guards kernels and the set-args + enqueue pair of a launch */
  struct ds__cl_kernel *kernels;
};

struct ds__cl_backend {
  ds_context *ctx;
  int32_t n;
  struct ds__cl_device dev[DS__FABRIC_MAX_DEVICES];
};

/* "CL_OUT_OF_RESOURCES (-5)" style text of an OpenCL error code. */
const char *ds__cl_err(cl_int err, char *buf, size_t size);
/* Frees the kernel cache of one device (kernel.c). */
void ds__cl_kernels_free(struct ds__cl_backend *be, struct ds__cl_device *d);

#endif /* DS_FABRIC_OPENCL_INTERNAL_H */
