# The fabric graph benchmark's anchor is StarPU 1.3 (Debian: libstarpu-dev) with its OpenCL
# driver, on the same DAG and tile kernels. Without StarPU (or OpenCL) the benchmark still runs
# and prints our rows with the anchor marked absent.
# bench_fabric_cholesky does the same for a tiled Cholesky DAG.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(DS_STARPU QUIET IMPORTED_TARGET starpu-1.3)
endif()
foreach(b bench_fabric_dag bench_fabric_cholesky)
  if(TARGET ${b})
    if(DS_STARPU_FOUND AND DS_HAVE_OPENCL)
      target_compile_definitions(${b} PRIVATE DS_BENCH_HAVE_STARPU)
      ds_bench_link(${b} PkgConfig::DS_STARPU OpenCL::OpenCL m)
    else()
      message(STATUS "${b}: StarPU 1.3 with OpenCL not found (libstarpu-dev): anchor skipped")
      ds_bench_link(${b} m)
    endif()
  endif()
endforeach()
