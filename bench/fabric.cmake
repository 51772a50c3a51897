# Anchors of the fabric benchmarks: raw OpenCL (clEnqueueWrite/ReadBuffer) for the transfer
# benchmark; the CUDA runtime (cudaMemcpy on pinned memory) and cuBLAS (a one-pass reduction as
# the "compute") for the GPU one, which builds only with CUDA and skips without a device.
if(TARGET bench_fabric_transfer)
  if(DS_HAVE_OPENCL)
    ds_bench_link(bench_fabric_transfer OpenCL::OpenCL)
    target_compile_definitions(bench_fabric_transfer PRIVATE DS_BENCH_OPENCL=1)
  else()
    message(STATUS "bench_fabric_transfer: no OpenCL, the benchmark will only print a skip")
  endif()
endif()
if(TARGET bench_fabric_transfer_gpu)
  if(DS_HAVE_CUDA AND TARGET CUDA::cudart AND TARGET CUDA::cublas)
    ds_bench_link(bench_fabric_transfer_gpu CUDA::cudart CUDA::cublas)
    target_compile_definitions(bench_fabric_transfer_gpu PRIVATE DS_BENCH_HAVE_CUDA)
  else()
    message(STATUS "bench_fabric_transfer_gpu: no CUDA toolkit, the benchmark will only print a skip")
  endif()
endif()
