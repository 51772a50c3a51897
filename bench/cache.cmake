# Cache module benchmarks. cache_sim (trace replay) uses the module's internal policy engine.
add_executable(cache_sim ${CMAKE_CURRENT_SOURCE_DIR}/cache_sim.c)
target_include_directories(cache_sim PRIVATE ${PROJECT_SOURCE_DIR}/src/cache)
target_link_libraries(cache_sim PRIVATE ds_internal ds_warnings m)

# bench_cache_persist: anchors LMDB (liblmdb-dev) and RocksDB (librocksdb-dev, C API).
find_library(DS_LMDB_LIB lmdb)
find_path(DS_LMDB_INCLUDE lmdb.h)
find_library(DS_ROCKSDB_LIB rocksdb)
find_path(DS_ROCKSDB_INCLUDE rocksdb/c.h)
if(TARGET bench_cache_persist)
  if(DS_LMDB_LIB AND DS_LMDB_INCLUDE AND DS_ROCKSDB_LIB AND DS_ROCKSDB_INCLUDE)
    ds_bench_link(bench_cache_persist ${DS_LMDB_LIB} ${DS_ROCKSDB_LIB})
    target_include_directories(bench_cache_persist PRIVATE ${DS_LMDB_INCLUDE} ${DS_ROCKSDB_INCLUDE})
  else()
    message(STATUS "bench_cache_persist skipped: needs liblmdb-dev and librocksdb-dev")
    set_target_properties(bench_cache_persist PROPERTIES EXCLUDE_FROM_ALL ON)
  endif()
endif()

# bench_cache_compress: anchors zstd, lz4 (library dependencies) and Blosc (libblosc-dev).
find_library(DS_BLOSC_LIB blosc)
find_path(DS_BLOSC_INCLUDE blosc.h)
if(TARGET bench_cache_compress)
  if(DS_BLOSC_LIB AND DS_BLOSC_INCLUDE)
    ds_bench_link(bench_cache_compress ${DS_BLOSC_LIB} ${DS_ZSTD_LIB} ${DS_LZ4_LIB} m)
    target_include_directories(bench_cache_compress PRIVATE ${DS_BLOSC_INCLUDE})
  else()
    message(STATUS "bench_cache_compress skipped: needs libblosc-dev")
    set_target_properties(bench_cache_compress PROPERTIES EXCLUDE_FROM_ALL ON)
  endif()
endif()

# cache_sim against libCacheSim's reference counts on two small real traces (LRU, Belady, ARC
# and SIEVE agree exactly); skipped when the shared data is not next to the checkout.
set(DS_SHARED_DATA "${PROJECT_SOURCE_DIR}/../shared/data" CACHE PATH "shared real-data folder")
if(BUILD_TESTING AND EXISTS "${DS_SHARED_DATA}/cachetrace/reference_miss_ratios.csv")
  set(_ct "${DS_SHARED_DATA}/cachetrace")
  add_test(NAME cache_sim_reference COMMAND cache_sim --policies lru,belady,arc,sieve
    --reference ${_ct}/reference_miss_ratios.csv ${_ct}/lirs/cpp.trace.gz ${_ct}/lirs/backf.trace.gz)
  # exit status 2 means an exact-policy row differs; also fail on any MISMATCH line
  set_tests_properties(cache_sim_reference PROPERTIES FAIL_REGULAR_EXPRESSION "MISMATCH")
elseif(BUILD_TESTING)
  message(STATUS "cache_sim_reference test skipped: ${DS_SHARED_DATA}/cachetrace absent")
endif()

# bench_cache_checksum: the disk tier's XXH3 table (internal) against libxxhash itself.
if(TARGET bench_cache_checksum)
  target_link_libraries(bench_cache_checksum PRIVATE ds_internal)
endif()
