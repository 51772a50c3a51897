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
