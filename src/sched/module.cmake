# The scheduler's sources (included by src/CMakeLists.txt). It needs only what the core
# already requires (hwloc, pthreads).
file(GLOB _sched_c CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
list(APPEND DS_SOURCES ${_sched_c})
list(APPEND DS_PRIVATE_INCLUDES ${CMAKE_CURRENT_LIST_DIR})
