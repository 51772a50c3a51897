# Optional backends (AUTO/ON/OFF). AUTO enables a backend when its toolchain is found; ON makes
# its absence an error; OFF skips it. Ends with DS_BUILD_SUMMARY, one line naming each backend.

# --- CUDA: nvcc compiles for sm_80 and sm_90; the library links the static CUDA runtime so it
# loads on machines with no GPU driver, and falls back to CPU paths at run time.
set(DS_HAVE_CUDA OFF)
if(NOT DS_WITH_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(DS_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH PATH_SUFFIXES bin
                 PATHS /usr/local/cuda/bin)
    if(DS_NVCC)
      set(CMAKE_CUDA_COMPILER ${DS_NVCC})
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND AND TARGET CUDA::cudart_static)
      set(DS_HAVE_CUDA ON)
    endif()
  endif()
  if(DS_WITH_CUDA STREQUAL "ON" AND NOT DS_HAVE_CUDA)
    message(FATAL_ERROR "DS_WITH_CUDA=ON but no CUDA toolkit (nvcc, cudart) was found")
  endif()
endif()

# --- OpenCL: ICD loader and headers (Debian: ocl-icd-opencl-dev, opencl-headers).
set(DS_HAVE_OPENCL OFF)
if(NOT DS_WITH_OPENCL STREQUAL "OFF")
  find_package(OpenCL QUIET)
  if(OpenCL_FOUND)
    set(DS_HAVE_OPENCL ON)
  elseif(DS_WITH_OPENCL STREQUAL "ON")
    message(FATAL_ERROR "DS_WITH_OPENCL=ON but OpenCL was not found: apt-get install -y ocl-icd-opencl-dev opencl-headers")
  endif()
endif()

# --- MPI (Debian: libopenmpi-dev, openmpi-bin).
set(DS_HAVE_MPI OFF)
if(NOT DS_WITH_MPI STREQUAL "OFF")
  find_package(MPI QUIET COMPONENTS C)
  if(MPI_C_FOUND)
    set(DS_HAVE_MPI ON)
  elseif(DS_WITH_MPI STREQUAL "ON")
    message(FATAL_ERROR "DS_WITH_MPI=ON but MPI was not found: apt-get install -y libopenmpi-dev openmpi-bin")
  endif()
endif()

function(ds_onoff out val)
  if(val)
    set(${out} on PARENT_SCOPE)
  else()
    set(${out} off PARENT_SCOPE)
  endif()
endfunction()
ds_onoff(_c ${DS_HAVE_CUDA})
ds_onoff(_o ${DS_HAVE_OPENCL})
ds_onoff(_m ${DS_HAVE_MPI})
if(DS_SANITIZE)
  set(_s "${DS_SANITIZE}")
else()
  set(_s none)
endif()
set(DS_BUILD_SUMMARY "backends: cpu=on hwloc=on cuda=${_c} opencl=${_o} mpi=${_m} dlpack=on; sanitize=${_s}")

# The point cloud graph example's CUDA kernels (examples/fabric_point_cloud_graph_cuda.cu) into
# @p target, which links deepseek_static, when CUDA is found (used by examples/ and bench/).
# -fmad=false: no fused multiply-adds, as in the C twin.
function(ds_point_cloud_graph_cuda target)
  if(NOT DS_HAVE_CUDA)
    return()
  endif()
  target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/examples/fabric_point_cloud_graph_cuda.cu)
  target_compile_definitions(${target} PRIVATE DS_EXAMPLE_CUDA=1)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-fmad=false>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
    $<$<AND:$<BOOL:${DS_WERROR}>,$<COMPILE_LANGUAGE:CUDA>>:--Werror=all-warnings>)
  target_link_libraries(${target} PRIVATE CUDA::cudart_static)
endfunction()
