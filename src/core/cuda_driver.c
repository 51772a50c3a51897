/* CUDA device discovery through the driver API, loaded with dlopen: it needs no CUDA toolkit at
 * build time and no driver at run time (then there are simply no devices). Probed once per
 * process; the results are kept for the process's lifetime, as is the driver library, because
 * unloading libcuda after cuInit is not safe. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "topology_internal.h"

/* The few driver entry points used, with their documented signatures (cuda.h); CUresult and
 * CUdevice are ints. The numbers are fixed CUdevice_attribute values. */
typedef int (*ds__cu_init_fn)(unsigned flags);
typedef int (*ds__cu_count_fn)(int *count);
typedef int (*ds__cu_get_fn)(int *dev, int ordinal);
typedef int (*ds__cu_name_fn)(char *name, int len, int dev);
typedef int (*ds__cu_attr_fn)(int *value, int attr, int dev);
typedef int (*ds__cu_mem_fn)(size_t *bytes, int dev);
enum { DS__CU_SM_COUNT = 16, DS__CU_CC_MAJOR = 75, DS__CU_CC_MINOR = 76 };

struct ds__cu_api {
  ds__cu_init_fn init;
  ds__cu_count_fn count;
  ds__cu_get_fn get;
  ds__cu_name_fn name;
  ds__cu_attr_fn attr;
  ds__cu_mem_fn mem;
};

#define DS__MAX_CUDA_DEVICES 64 /* more than any single machine has */

static pthread_mutex_t ds__cu_mu = PTHREAD_MUTEX_INITIALIZER;
static int ds__cu_probed;
static int32_t ds__cu_ndev;
static ds_cuda_device_info ds__cu_dev[DS__MAX_CUDA_DEVICES];

/* dlsym returns void *; ISO C has no conversion to a function pointer, POSIX guarantees the
 * representation, so copy the bytes. */
static int ds__sym(void *lib, const char *name, void *fnptr, size_t size) {
  void *p = dlsym(lib, name);
  if (p) memcpy(fnptr, &p, size);
  return p != NULL;
}

static const char *ds__cu_load(struct ds__cu_api *api) {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return "libcuda.so.1 not found";
  int ok = ds__sym(lib, "cuInit", &api->init, sizeof api->init) &&
           ds__sym(lib, "cuDeviceGetCount", &api->count, sizeof api->count) &&
           ds__sym(lib, "cuDeviceGet", &api->get, sizeof api->get) &&
           ds__sym(lib, "cuDeviceGetName", &api->name, sizeof api->name) &&
           ds__sym(lib, "cuDeviceGetAttribute", &api->attr, sizeof api->attr) &&
           ds__sym(lib, "cuDeviceTotalMem_v2", &api->mem, sizeof api->mem);
  if (!ok) {
    dlclose(lib); /* not initialised yet, so unloading is safe */
    return "libcuda.so.1 lacks a driver entry point";
  }
  return NULL;
}

static int ds__cu_describe(const struct ds__cu_api *api, int ordinal, ds_cuda_device_info *d) {
  int dev, sm = 0, major = 0, minor = 0;
  size_t mem = 0;
  if (api->get(&dev, ordinal) != 0) return 0;
  if (api->name(d->name, (int)sizeof d->name, dev) != 0) d->name[0] = '\0';
  d->name[sizeof d->name - 1] = '\0';
  api->attr(&sm, DS__CU_SM_COUNT, dev);
  api->attr(&major, DS__CU_CC_MAJOR, dev);
  api->attr(&minor, DS__CU_CC_MINOR, dev);
  api->mem(&mem, dev);
  d->struct_size = sizeof *d;
  d->index = ordinal;
  d->sm_count = sm;
  d->cc_major = major;
  d->cc_minor = minor;
  d->memory_bytes = mem;
  return 1;
}

/* Fills the device table; returns 0, or -1 with the reason in why[]. */
static int ds__cu_probe(char *why, size_t why_size) {
  struct ds__cu_api api;
  const char *load_err = ds__cu_load(&api);
  int rc = 0, n = 0;
  if (load_err)
    snprintf(why, why_size, "%s", load_err);
  else if ((rc = api.init(0)) != 0)
    snprintf(why, why_size, "cuInit returned %d", rc);
  else if ((rc = api.count(&n)) != 0 || n <= 0)
    snprintf(why, why_size, "the driver reports no device (cuDeviceGetCount returned %d)", rc);
  if (load_err || rc != 0 || n <= 0) return -1;
  if (n > DS__MAX_CUDA_DEVICES) n = DS__MAX_CUDA_DEVICES;
  for (int i = 0; i < n; i++)
    if (ds__cu_describe(&api, i, &ds__cu_dev[ds__cu_ndev])) ds__cu_ndev++;
  return 0;
}

int32_t ds__cuda_driver_devices(ds_context *ctx, const ds_cuda_device_info **devs) {
  char why[128];
  int first = 0, failed = 0;
  pthread_mutex_lock(&ds__cu_mu);
  if (!ds__cu_probed) {
    failed = ds__cu_probe(why, sizeof why) != 0;
    ds__cu_probed = first = 1;
  }
  int32_t n = ds__cu_ndev;
  pthread_mutex_unlock(&ds__cu_mu);
  /* Logged once per process, to the context that happened to probe. */
  if (first && failed) ds__log(ctx, DS_LOG_DEBUG, "topology", "no CUDA devices: %s", why);
  if (first && !failed) ds__log(ctx, DS_LOG_DEBUG, "topology", "%d CUDA device(s)", (int)n);
  if (devs) *devs = ds__cu_dev;
  return n;
}
