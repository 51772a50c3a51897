# The dynamic batcher's sources (included by src/CMakeLists.txt). It needs only what the core
# and the scheduler already require (pthreads, libm).
file(GLOB _batch_c CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
list(APPEND DS_SOURCES ${_batch_c})
list(APPEND DS_PRIVATE_INCLUDES ${CMAKE_CURRENT_LIST_DIR})
