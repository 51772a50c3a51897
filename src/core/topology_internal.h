/* Internal access to the process-wide hwloc topology, for modules that place work (sched). */
#ifndef DS_CORE_TOPOLOGY_INTERNAL_H
#define DS_CORE_TOPOLOGY_INTERNAL_H

#include <hwloc.h>

#include "internal.h"

/* The topology shared by every context of the process, loaded on first use. The first call on
 * a context takes that context's reference (dropped by ds__topology_context_release at destroy),
 * so the result stays valid for the context's lifetime; later calls are cheap. Callers only read
 * it (hwloc allows concurrent readers once loaded). NULL, with the error recorded on ctx
 * (DS_ERR_UNAVAILABLE), if hwloc cannot read the machine. Thread-safe. */
hwloc_topology_t ds__topology_acquire(ds_context *ctx);

/* Contexts holding a reference on the process topology (0 when it is not loaded). For tests. */
int ds__topology_refcount(void);

/* CUDA devices as the driver reports them (cuda_driver.c), probed once per process on first
 * call and kept: the number of devices, and in *devs (if devs is not NULL) their descriptions.
 * No driver, no GPU or a failing cuInit give 0 devices and no error. Works whether or not the
 * library was built with CUDA, since it only needs the driver at run time. Thread-safe. */
int32_t ds__cuda_driver_devices(ds_context *ctx, const ds_cuda_device_info **devs);

#endif /* DS_CORE_TOPOLOGY_INTERNAL_H */
