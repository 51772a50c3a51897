/* A task graph across the devices of the fabric: C = A * B in 2 x 2 tiles, each tile product
 * one node with a CPU and an OpenCL implementation. The partitioner (HEFT) decides where each
 * node runs; the first runs calibrate the kernel's cost model, which a persistent cache keeps
 * for the next process.
 *
 *   fabric_graph_gemm [model-cache-dir]
 */
#include <stdio.h>
#include <string.h>

#include <deepseek.h>

enum { T = 64, NT = 2 }; /* tile size, tiles per side */

/* CPU implementation: bufs are host pointers of A(i,k), B(k,j), C(i,j) in access order. */
static ds_status tile_gemm(void *const *bufs, const size_t *sizes, size_t nbufs,
                           const void *args, size_t args_len) {
  (void)sizes, (void)nbufs, (void)args, (void)args_len;
  const float *a = bufs[0], *b = bufs[1];
  float *c = bufs[2];
  for (int i = 0; i < T; i++)
    for (int k = 0; k < T; k++)
      for (int j = 0; j < T; j++) c[i * T + j] += a[i * T + k] * b[k * T + j];
  return DS_OK;
}

/* OpenCL implementation: buffers first, then the by-value arguments (here the tile size). */
static const char *tile_gemm_cl =
    "__kernel void tile_gemm(__global const float *a, __global const float *b,\n"
    "                        __global float *c, int n) {\n"
    "  int i = get_global_id(1), j = get_global_id(0);\n"
    "  float acc = c[i * n + j];\n"
    "  for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];\n"
    "  c[i * n + j] = acc;\n"
    "}\n";

static int fail(ds_context *ctx, const char *what) {
  fprintf(stderr, "%s: %s\n", what, ds_context_last_error(ctx));
  return 1;
}

int main(int argc, char **argv) {
  ds_context *ctx = NULL;
  if (ds_context_create(&ctx, NULL) != DS_OK) return fail(NULL, "context");
  ds_cache *models = NULL; /* optional: where cost models persist between processes */
  if (argc > 1 && ds_cache_open_persistent(&models, ctx, argv[1], 1 << 20, DS_CACHE_CODEC_NONE))
    return fail(ctx, "model cache");

  static const uint32_t cl_args[] = {sizeof(int32_t)};
  ds_kernel_options ko = DS_KERNEL_OPTIONS_INIT;
  ko.name = "example_tile_gemm";
  ko.cpu = tile_gemm;
  ko.opencl_source = tile_gemm_cl;
  ko.opencl_name = "tile_gemm";
  ko.opencl_arg_sizes = cl_args;
  ko.opencl_nargs = 1;
  ko.model_cache = models;
  ds_kernel *k = NULL;
  if (ds_kernel_create(&k, ctx, &ko) != DS_OK) return fail(ctx, "kernel");

  /* Tiles: A all 1, B all 2, C zero (ds_buffer_create zero-fills). */
  ds_buffer *A[NT][NT], *B[NT][NT], *C[NT][NT];
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++) {
      ds_buffer_create(&A[i][j], ctx, T * T * sizeof(float), NULL);
      ds_buffer_create(&B[i][j], ctx, T * T * sizeof(float), NULL);
      ds_buffer_create(&C[i][j], ctx, T * T * sizeof(float), NULL);
      float *a, *b;
      ds_buffer_acquire((void **)&a, A[i][j], 0, DS_ACCESS_WRITE); /* device 0: the CPU */
      ds_buffer_acquire((void **)&b, B[i][j], 0, DS_ACCESS_WRITE);
      for (int e = 0; e < T * T; e++) a[e] = 1.0f, b[e] = 2.0f;
      ds_buffer_release(A[i][j], 0);
      ds_buffer_release(B[i][j], 0);
    }

  /* The graph: the accesses give the order (the k products into one C tile are chained). */
  ds_graph *g = NULL;
  ds_graph_create(&g, ctx);
  int32_t n = T;
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++)
      for (int kk = 0; kk < NT; kk++) {
        ds_graph_access acc[3] = {{A[i][kk], DS_ACCESS_READ},
                                  {B[kk][j], DS_ACCESS_READ},
                                  {C[i][j], DS_ACCESS_RW}};
        ds_node_options no = DS_NODE_OPTIONS_INIT;
        no.args = &n;
        no.args_len = sizeof n;
        no.global[0] = T; /* OpenCL work items: one per element */
        no.global[1] = T;
        if (ds_graph_add(NULL, g, k, acc, 3, &no) != DS_OK) return fail(ctx, "add");
      }

  /* Plan and run a few times: the first plans calibrate, later ones use the learned times. */
  for (int round = 0; round < 3; round++) {
    ds_plan *p = NULL;
    if (ds_graph_plan(&p, g, NULL) != DS_OK) return fail(ctx, "plan");
    ds_plan_info pi = {sizeof pi, 0, 0, 0, 0};
    ds_plan_get_info(p, &pi);
    ds_graph_run_info ri = {sizeof ri, 0, 0};
    if (ds_graph_run(g, p, &ri) != DS_OK) return fail(ctx, "run");
    printf("round %d: placement", round);
    for (int32_t v = 0; v < (int32_t)pi.nodes; v++) {
      int32_t d = 0;
      ds_plan_device(p, v, &d);
      printf(" %d", (int)d);
    }
    printf("; predicted %.3f ms, ran %.3f ms, %u calibration nodes\n", pi.makespan_s * 1e3,
           ri.makespan_s * 1e3, pi.calibrating);
    ds_plan_destroy(p);
  }

  /* Each C element accumulated 1*2 over T*NT terms per run, three runs. */
  float *c = NULL;
  ds_buffer_acquire((void **)&c, C[0][0], 0, DS_ACCESS_READ);
  printf("C[0][0] = %.0f (expected %d)\n", c[0], 3 * 2 * T * NT);
  ds_buffer_release(C[0][0], 0);

  ds_graph_destroy(g);
  ds_kernel_destroy(k); /* saves the model into the cache, if any */
  for (int i = 0; i < NT; i++)
    for (int j = 0; j < NT; j++)
      ds_buffer_destroy(A[i][j]), ds_buffer_destroy(B[i][j]), ds_buffer_destroy(C[i][j]);
  ds_cache_destroy(models);
  ds_context_destroy(ctx);
  return 0;
}
