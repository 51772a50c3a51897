# Compiler warnings for the project's own code (not for consumers).
add_library(ds_warnings INTERFACE)
target_compile_options(ds_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2>
  $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes -Wmissing-prototypes>
  $<$<AND:$<BOOL:${DS_WERROR}>,$<COMPILE_LANGUAGE:C,CXX>>:-Werror>)
