/* Internal: the CUDA half of the fabric's CUDA backend, shared by the nvcc-compiled side
 * (cuda/cuda_fabric.cu) and the C side (cuda_glue.c). Plain C types only; failures come back
 * as a status plus a reason in msg. Device numbers are CUDA runtime ordinals. Built only with
 * CUDA. */
#ifndef DS_FABRIC_CUDA_FABRIC_H
#define DS_FABRIC_CUDA_FABRIC_H

#include <stddef.h>
#include <stdint.h>

#include "deepseek/context.h"

DS_EXTERN_C_BEGIN

/* Devices the runtime sees (0 on any error). */
int ds__fcuda_device_count(void);
/* Name, memory, SMs and mapping abilities of device dev. */
ds_status ds__fcuda_describe(int dev, char *name, size_t name_size, uint64_t *mem, int *sms,
                             int *can_map, int *integrated, int *unified);
/* A non-blocking stream of device dev, for its copies. */
ds_status ds__fcuda_stream_create(int dev, void **stream, char *msg, size_t msg_size);
void ds__fcuda_stream_destroy(int dev, void *stream);
/* Device memory, or (host not NULL) host memory pinned and mapped with cudaHostRegister: then
 * *mem is its device address and *aliased is 1. */
ds_status ds__fcuda_alloc(int dev, size_t size, void *host, void **mem, int *aliased, char *msg,
                          size_t msg_size);
/* Frees device memory, or unregisters mapped host memory. */
void ds__fcuda_free(int dev, void *mem);
/* Copies n bytes host->device (to_device 1) or device->host on the stream; with event NULL it
 * is complete on return, otherwise *event is a CUDA event recorded after it. */
ds_status ds__fcuda_copy(int dev, void *stream, void *dst, const void *src, size_t n,
                         int to_device, void **event, char *msg, size_t msg_size);
ds_status ds__fcuda_event_record(int dev, void *stream, void **event, char *msg, size_t msg_size);
ds_status ds__fcuda_event_wait(void *event, char *msg, size_t msg_size);
void ds__fcuda_event_release(void *event);
/* Copies n bytes from src (device src_dev) to dst (device dst_dev) on the destination's
 * stream, after the work queued on the source's stream; with event NULL complete on return,
 * otherwise *event is a CUDA event recorded after it. */
ds_status ds__fcuda_copy_peer(int dst_dev, void *dst_stream, void *dst, int src_dev,
                              void *src_stream, const void *src, size_t n, void **event,
                              char *msg, size_t msg_size);
/* Makes device dev current on the calling thread. */
ds_status ds__fcuda_set_device(int dev);
/* Enables direct access between every pair of the first n devices that supports it. */
void ds__fcuda_enable_peers(int n);
/* Waits for everything queued on the device (for mapped memory written by kernels). */
ds_status ds__fcuda_device_sync(int dev, char *msg, size_t msg_size);

DS_EXTERN_C_END

#endif /* DS_FABRIC_CUDA_FABRIC_H */
