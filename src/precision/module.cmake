# The precision module: conversions, GEMM (OpenBLAS for fp32, oneDNN for bf16/fp16), CPU
# kernels in cpu/ selected by feature detection. Both libraries are required.
file(GLOB _prec_c CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c ${CMAKE_CURRENT_LIST_DIR}/cpu/*.c)
file(GLOB _prec_cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cuda/*.cu)
ds_require_library(DS_OPENBLAS openblas cblas.h libopenblas-dev)
ds_require_library(DS_DNNL dnnl dnnl.h libdnnl-dev)
list(APPEND DS_SOURCES ${_prec_c})
list(APPEND DS_CUDA_SOURCES ${_prec_cu})
list(APPEND DS_PRIVATE_INCLUDES ${CMAKE_CURRENT_LIST_DIR} ${DS_OPENBLAS_INCLUDE} ${DS_DNNL_INCLUDE})
list(APPEND DS_PRIVATE_LIBS $<BUILD_INTERFACE:${DS_OPENBLAS_LIB}> $<INSTALL_INTERFACE:openblas>
  $<BUILD_INTERFACE:${DS_DNNL_LIB}> $<INSTALL_INTERFACE:dnnl>)
list(APPEND DS_PC_LIBS -lopenblas -ldnnl)
# The optimisers' update loops call sqrtf; without errno (never read here) the compiler
# vectorises them (AdamW's update was 7 ms per million parameters, scalar).
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/optimizer.c PROPERTIES
  COMPILE_OPTIONS -fno-math-errno)
