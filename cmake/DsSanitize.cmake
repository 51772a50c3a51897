# DS_SANITIZE=address,undefined or thread: instruments every target of the project.
if(DS_SANITIZE)
  if(DS_SANITIZE MATCHES "thread" AND DS_SANITIZE MATCHES "address")
    message(FATAL_ERROR "DS_SANITIZE: thread cannot be combined with address")
  endif()
  set(_ds_san_flags -fsanitize=${DS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # Quoted so the list stays inside the generator expression (unquoted, its ';' splits it).
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:${_ds_san_flags}>")
  add_link_options(-fsanitize=${DS_SANITIZE})
  # GCC warns that TSan does not model atomic_thread_fence (used by the seqlock and the trace
  # recorder); the fences are paired with acquire/release operations TSan does see.
  if(DS_SANITIZE MATCHES "thread" AND CMAKE_C_COMPILER_ID STREQUAL "GNU")
    add_compile_options($<$<COMPILE_LANGUAGE:C,CXX>:-Wno-tsan>)
  endif()
endif()
