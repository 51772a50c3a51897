/* The point cloud graph's CUDA kernels (fabric_point_cloud_graph_cuda.cu), declared for the C
 * example: launchers with the fabric's ds_kernel_cuda_fn signature, and the host mirror of
 * the per-point arithmetic. */
#ifndef FABRIC_POINT_CLOUD_GRAPH_CUDA_H
#define FABRIC_POINT_CLOUD_GRAPH_CUDA_H
#include <stddef.h>
#include <stdint.h>

#include <deepseek.h>

#ifdef __cplusplus
extern "C" {
#endif
/* bufs: points (READ), camera (READ), z-buffer (RW); args: the point count (uint32_t). */
ds_status pc_cuda_project(void *const *bufs, const size_t *sizes, size_t nbufs,
                          const void *args, size_t args_len, void *stream);
/* bufs: z-buffer (WRITE), every pixel set to empty. */
ds_status pc_cuda_clear(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                        size_t args_len, void *stream);
/* bufs: a (RW), b (READ): a = min(a, b) per pixel. */
ds_status pc_cuda_merge(void *const *bufs, const size_t *sizes, size_t nbufs, const void *args,
                        size_t args_len, void *stream);
/* The CUDA kernel's per-point code run on the host over @p count points into @p zb. */
void pc_cuda_project_host(const float *pts, uint32_t count, const float *cam, uint32_t *zb);
#ifdef __cplusplus
}
#endif
#endif
