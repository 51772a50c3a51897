# bench_fabric_barrier needs no anchor library (pthread_barrier_wait is in libc).
# bench_fabric_pointcloud is the example examples/fabric_point_cloud.c built with a smaller
# default cloud (4 M points, 3 frames) so its default run stays short; its row compares the
# split over every device with the best single device measured in the same run.
find_package(Threads REQUIRED)
ds_bench_link(bench_fabric_barrier Threads::Threads)
add_executable(bench_fabric_pointcloud ${PROJECT_SOURCE_DIR}/examples/fabric_point_cloud.c)
target_link_libraries(bench_fabric_pointcloud PRIVATE deepseek_static ds_warnings Threads::Threads m)
target_compile_definitions(bench_fabric_pointcloud PRIVATE POINT_CLOUD_POINTS=4000000
                           POINT_CLOUD_FRAMES=3)
if(DS_HAVE_OPENCL)
  target_link_libraries(bench_fabric_pointcloud PRIVATE OpenCL::OpenCL)
  target_compile_definitions(bench_fabric_pointcloud PRIVATE DS_EXAMPLE_OPENCL=1)
else()
  message(STATUS "bench_fabric_pointcloud: no OpenCL, the CPU is the only device")
endif()
# bench_fabric_pointcloud_graph: the graph version (examples/fabric_point_cloud_graph.c), HEFT
# over every device vs the best single device, both measured in the same run.
add_executable(bench_fabric_pointcloud_graph
               ${PROJECT_SOURCE_DIR}/examples/fabric_point_cloud_graph.c)
target_link_libraries(bench_fabric_pointcloud_graph PRIVATE deepseek_static ds_warnings m)
target_compile_definitions(bench_fabric_pointcloud_graph PRIVATE POINT_CLOUD_POINTS=4000000)
ds_point_cloud_graph_cuda(bench_fabric_pointcloud_graph) # its CUDA kernels (examples/)
