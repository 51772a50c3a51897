# The load predictor (src/predict): pure C, plus xxHash for the model file checksum.
file(GLOB _predict_c CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
list(APPEND DS_SOURCES ${_predict_c})
ds_require_library(DS_XXHASH xxhash xxhash.h libxxhash-dev)
list(APPEND DS_PRIVATE_INCLUDES ${DS_XXHASH_INCLUDE})
list(APPEND DS_PRIVATE_LIBS $<BUILD_INTERFACE:${DS_XXHASH_LIB}> $<INSTALL_INTERFACE:xxhash>)
list(APPEND DS_PC_LIBS -lxxhash)
# The inference path's branch-free exp clamps with compares; without -fno-trapping-math GCC
# will not if-convert (and so not vectorise) them. It changes no result: nothing here traps.
if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/forward.c PROPERTIES
    COMPILE_OPTIONS "-fno-trapping-math")
endif()
