# Required dependencies. Each failure names the Debian package that provides it
# (scripts/debian-packages.txt lists them all; scripts/deps.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig)

function(ds_require_library var lib header pkg)
  find_library(${var}_LIB NAMES ${lib})
  find_path(${var}_INCLUDE NAMES ${header})
  if(NOT ${var}_LIB OR NOT ${var}_INCLUDE)
    message(FATAL_ERROR "libdeepseek needs ${lib} (${header}): install the Debian package ${pkg}\n"
                        "  apt-get install -y ${pkg}    (or run: make deps)")
  endif()
endfunction()

ds_require_library(DS_HWLOC hwloc hwloc.h libhwloc-dev)
find_path(DS_DLPACK_INCLUDE NAMES dlpack/dlpack.h)
if(NOT DS_DLPACK_INCLUDE)
  message(FATAL_ERROR "libdeepseek needs dlpack/dlpack.h: install the Debian package libdlpack-dev")
endif()
if(DS_BUILD_TESTS AND BUILD_TESTING)
  ds_require_library(DS_CMOCKA cmocka cmocka.h libcmocka-dev)
endif()
