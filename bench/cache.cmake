# Cache module benchmarks. cache_sim (trace replay) uses the module's internal policy engine.
add_executable(cache_sim ${CMAKE_CURRENT_SOURCE_DIR}/cache_sim.c)
target_include_directories(cache_sim PRIVATE ${PROJECT_SOURCE_DIR}/src/cache)
target_link_libraries(cache_sim PRIVATE ds_internal ds_warnings m)
