/* libdeepseek: machine topology (hwloc) and CUDA devices. */
#ifndef DEEPSEEK_TOPOLOGY_H
#define DEEPSEEK_TOPOLOGY_H

#include <stdint.h>

#include "deepseek/context.h"

/** @defgroup topology Topology
 *  What the machine has: packages, NUMA nodes, cores, hardware threads (PUs), caches and
 *  memory, from hwloc; CUDA devices from the CUDA driver when one is installed. The topology is
 *  discovered once per process on first use and shared, reference-counted, by all contexts: a
 *  context takes its reference on its first topology call and gives it back when destroyed,
 *  and the last one frees it. Counts are of what this process may use (its cgroup/cpuset).
 *
 *  CUDA devices are found through the driver library (libcuda.so.1, loaded at run time), so
 *  they are reported even by a library built without CUDA; with no driver or no GPU there are
 *  0 devices and no error. The driver is probed once per process and the result kept.
 *
 *  Output structures start with struct_size, which the caller sets (use the _INIT macros):
 *  from the size of the first version of the structure up to the size this library knows;
 *  anything else is DS_ERR_ABI. The library fills only that many bytes and leaves struct_size
 *  as the caller set it. @p ctx must not be NULL. All functions are thread-safe.
 *  @{ */

#define DS_TOPOLOGY_CACHE_LEVELS 4

typedef struct ds_topology_info {
  uint32_t struct_size;
  int32_t packages; /**< at least 1 */
  int32_t numa_nodes; /**< at least 1 */
  int32_t cores; /**< physical cores; the PUs when the platform does not tell cores apart */
  int32_t pus; /**< hardware threads */
  int32_t cuda_devices; /**< 0 when no CUDA driver or no GPU */
  uint64_t total_memory_bytes;
  /** Size in bytes of one cache at level i+1 (data or unified; 0 = none), and how many. */
  uint64_t cache_bytes[DS_TOPOLOGY_CACHE_LEVELS];
  int32_t cache_count[DS_TOPOLOGY_CACHE_LEVELS];
} ds_topology_info;
#define DS_TOPOLOGY_INFO_INIT { sizeof(ds_topology_info), 0, 0, 0, 0, 0, 0, {0, 0, 0, 0}, {0, 0, 0, 0} }

typedef struct ds_numa_node_info {
  uint32_t struct_size;
  int32_t os_index; /**< the kernel's node number */
  int32_t cores;
  int32_t pus;
  uint64_t memory_bytes; /**< local memory of this node */
} ds_numa_node_info;
#define DS_NUMA_NODE_INFO_INIT { sizeof(ds_numa_node_info), 0, 0, 0, 0 }

typedef struct ds_cuda_device_info {
  uint32_t struct_size;
  int32_t index;
  char name[256];
  int32_t sm_count;
  int32_t cc_major; /**< compute capability */
  int32_t cc_minor;
  uint64_t memory_bytes;
} ds_cuda_device_info;
#define DS_CUDA_DEVICE_INFO_INIT { sizeof(ds_cuda_device_info), 0, {0}, 0, 0, 0, 0 }

DS_EXTERN_C_BEGIN
/** Machine summary. @return DS_OK; DS_ERR_ABI (struct_size); DS_ERR_INVALID_ARG (@p out or
 *  @p ctx NULL); DS_ERR_UNAVAILABLE (hwloc could not read the machine). */
DS_API ds_status ds_topology_get(ds_topology_info *out, ds_context *ctx);
/** NUMA node @p index (0 .. numa_nodes-1). Its cores and PUs are those whose cpuset
 *  intersects the node's (a node with memory only has none). @return as ds_topology_get, or
 *  DS_ERR_NOT_FOUND. */
DS_API ds_status ds_topology_numa_node(ds_numa_node_info *out, ds_context *ctx, int32_t index);
/** CUDA device @p index (0 .. cuda_devices-1). @return as ds_topology_get, or DS_ERR_NOT_FOUND
 *  (no such device, which includes "no GPU"). */
DS_API ds_status ds_topology_cuda_device(ds_cuda_device_info *out, ds_context *ctx, int32_t index);
DS_EXTERN_C_END
/** @} */

#endif /* DEEPSEEK_TOPOLOGY_H */
