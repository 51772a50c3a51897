# The cache module: eviction policies, trace loading, the tiered cache (its GPU tier reaches
# device memory through the fabric's backend table).
# Required: zlib (zlib1g-dev, gzip traces), zstd (libzstd-dev), lz4 (liblz4-dev),
# xxHash (libxxhash-dev). Optional: liblzma (liblzma-dev, .xz traces).
file(GLOB _cache_c CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
list(APPEND DS_SOURCES ${_cache_c})
# the GPU tier's pinned staging memory (cudaHostAlloc), compiled when CUDA is found
file(GLOB _cache_cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cu)
list(APPEND DS_CUDA_SOURCES ${_cache_cu})
ds_require_library(DS_ZLIB z zlib.h zlib1g-dev)
list(APPEND DS_PRIVATE_INCLUDES ${DS_ZLIB_INCLUDE})
list(APPEND DS_PRIVATE_LIBS $<BUILD_INTERFACE:${DS_ZLIB_LIB}> $<INSTALL_INTERFACE:z>)
list(APPEND DS_PC_LIBS -lz)
find_library(DS_LZMA_LIB NAMES lzma)
find_path(DS_LZMA_INCLUDE NAMES lzma.h)
if(DS_LZMA_LIB AND DS_LZMA_INCLUDE)
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/cachetrace.c PROPERTIES
    COMPILE_DEFINITIONS DS_HAVE_LZMA=1)
  list(APPEND DS_PRIVATE_LIBS $<BUILD_INTERFACE:${DS_LZMA_LIB}> $<INSTALL_INTERFACE:lzma>)
  list(APPEND DS_PC_LIBS -llzma)
else()
  message(STATUS "cache: liblzma not found (liblzma-dev): .xz traces are skipped")
endif()
ds_require_library(DS_ZSTD zstd zstd.h libzstd-dev)
ds_require_library(DS_LZ4 lz4 lz4.h liblz4-dev)
ds_require_library(DS_XXHASH xxhash xxhash.h libxxhash-dev)
list(APPEND DS_PRIVATE_INCLUDES ${DS_ZSTD_INCLUDE} ${DS_LZ4_INCLUDE} ${DS_XXHASH_INCLUDE})
list(APPEND DS_PRIVATE_LIBS $<BUILD_INTERFACE:${DS_ZSTD_LIB}> $<INSTALL_INTERFACE:zstd>
  $<BUILD_INTERFACE:${DS_LZ4_LIB}> $<INSTALL_INTERFACE:lz4>
  $<BUILD_INTERFACE:${DS_XXHASH_LIB}> $<INSTALL_INTERFACE:xxhash>)
list(APPEND DS_PC_LIBS -lzstd -llz4 -lxxhash)
# xxh3_avx2.c alone is built for AVX2 (XXH3's AVX2 loop, chosen at run time by CPU detection
# in xxh3.c); the rest of the library stays baseline x86-64.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/xxh3_avx2.c PROPERTIES
    COMPILE_OPTIONS -mavx2)
endif()
