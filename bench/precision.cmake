# Anchors of the precision benchmarks: OpenBLAS (cblas_sgemm/sgemv) and oneDNN called
# directly; OpenMP (oneDNN's thread runtime) to pin both sides to one thread.
if(TARGET bench_precision_gemm)
  find_package(OpenMP COMPONENTS C)
  if(OpenMP_C_FOUND)
    ds_bench_link(bench_precision_gemm OpenMP::OpenMP_C)
    target_compile_definitions(bench_precision_gemm PRIVATE DS_BENCH_HAVE_OPENMP)
  endif()
  target_include_directories(bench_precision_gemm PRIVATE ${DS_OPENBLAS_INCLUDE} ${DS_DNNL_INCLUDE})
endif()

# The GPU GEMM benchmark needs the CUDA runtime (device buffers) and cuBLAS (the anchor); it
# builds only with CUDA and skips at run time without a device.
if(TARGET bench_precision_gemm_gpu)
  if(DS_HAVE_CUDA AND TARGET CUDA::cublas AND TARGET CUDA::cudart)
    ds_bench_link(bench_precision_gemm_gpu CUDA::cublas CUDA::cudart)
    target_compile_definitions(bench_precision_gemm_gpu PRIVATE DS_BENCH_HAVE_CUDA)
  endif()
endif()

# The GPU training-kernel benchmark needs the CUDA runtime (device buffers); the anchor is a
# device-to-device cudaMemcpy. Builds only with CUDA; skips at run time without a device.
if(TARGET bench_precision_kernels_gpu)
  if(DS_HAVE_CUDA AND TARGET CUDA::cudart)
    ds_bench_link(bench_precision_kernels_gpu CUDA::cudart)
    target_compile_definitions(bench_precision_kernels_gpu PRIVATE DS_BENCH_HAVE_CUDA)
  endif()
endif()

# The GPU MLP-step benchmark: the CUDA runtime for device buffers. Builds only with CUDA;
# skips at run time without a device (fails then with DS_REQUIRE_GPU=1). The short ctest runs
# check that skip here (a small step loop where a GPU is present) and, with --cpu, the step's
# calls on host tensors (the loss must fall).
if(TARGET bench_precision_mlp_gpu)
  if(DS_HAVE_CUDA AND TARGET CUDA::cudart)
    ds_bench_link(bench_precision_mlp_gpu CUDA::cudart)
    target_compile_definitions(bench_precision_mlp_gpu PRIVATE DS_BENCH_HAVE_CUDA)
  endif()
  add_test(NAME precision_mlp_gpu_bench COMMAND bench_precision_mlp_gpu --batch 64 --reps 3)
  add_test(NAME precision_mlp_gpu_bench_cpu COMMAND bench_precision_mlp_gpu --cpu --batch 64
           --reps 3)
endif()
