# The core module's sources and dependencies (included by src/CMakeLists.txt).
file(GLOB _core_c CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
file(GLOB _core_cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/cuda/*.cu)
list(APPEND DS_SOURCES ${_core_c})
list(APPEND DS_CUDA_SOURCES ${_core_cu})
list(APPEND DS_PRIVATE_INCLUDES ${DS_HWLOC_INCLUDE} ${DS_DLPACK_INCLUDE})
list(APPEND DS_PRIVATE_LIBS $<BUILD_INTERFACE:${DS_HWLOC_LIB}> $<INSTALL_INTERFACE:hwloc>
  Threads::Threads ${CMAKE_DL_LIBS} m)
list(APPEND DS_PC_LIBS -lhwloc -lpthread -ldl -lm)
