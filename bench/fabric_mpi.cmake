# The MPI transport's benchmarks run under mpirun -np 2 (their anchor is raw MPI, linked through
# the library). Without MPI in the build they compile to a line saying so.
foreach(b bench_fabric_mpi_transfer bench_fabric_mpi_task bench_fabric_mpi_dag)
  if(TARGET ${b} AND NOT DS_HAVE_MPI)
    target_compile_definitions(${b} PRIVATE DS_BENCH_NO_MPI)
  endif()
endforeach()
