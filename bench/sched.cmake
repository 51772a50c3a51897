# Anchors of the scheduler benchmarks: oneTBB (Debian libtbb-dev) for bench_sched_overhead and
# bench_sched_dag. Without it those two still build and run, printing that the anchor is absent.
find_package(TBB QUIET CONFIG)
if(TBB_FOUND)
  foreach(b bench_sched_overhead bench_sched_dag)
    ds_bench_link(${b} TBB::tbb)
    if(TARGET ${b})
      target_compile_definitions(${b} PRIVATE DS_HAVE_TBB=1)
    endif()
  endforeach()
else()
  message(STATUS "oneTBB not found (libtbb-dev): bench_sched_overhead/dag run without their anchor")
endif()
ds_bench_link(bench_sched_urgent m)
