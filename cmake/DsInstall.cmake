# Installation: headers, both libraries, CMake package (deepseek::deepseek,
# deepseek::deepseek_static) and pkg-config file.
include(CMakePackageConfigHelpers)

install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(TARGETS deepseek deepseek_static EXPORT deepseekTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(DS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/deepseek)
install(EXPORT deepseekTargets NAMESPACE deepseek:: DESTINATION ${DS_CMAKE_DIR})

configure_package_config_file(cmake/deepseekConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/deepseekConfig.cmake INSTALL_DESTINATION ${DS_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/deepseekConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/deepseekConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/deepseekConfigVersion.cmake DESTINATION ${DS_CMAKE_DIR})

if(DS_HAVE_CUDA)
  string(APPEND DS_PC_LIBS_PRIVATE " -L${CUDAToolkit_LIBRARY_DIR} -lcudart_static -lrt")
endif()
# Relocatable: the prefix is found from the .pc file's own place, so `cmake --install --prefix`
# anywhere gives a working file.
file(RELATIVE_PATH DS_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/deepseek.pc.in ${CMAKE_CURRENT_BINARY_DIR}/deepseek.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/deepseek.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The Python bindings: the package goes to <prefix>/lib/python3/dist-packages/deepseek (where
# Debian's python3 finds it for the prefix /usr; for another prefix add that folder to
# PYTHONPATH). _libpath.py names the installed library; it is written at install time so that
# `cmake --install --prefix` and DESTDIR are honoured.
set(DS_PYTHON_INSTALL_DIR lib/python3/dist-packages CACHE STRING
  "Where make install puts the Python package, relative to the prefix")
install(DIRECTORY bindings/python/deepseek DESTINATION ${DS_PYTHON_INSTALL_DIR}
  PATTERN __pycache__ EXCLUDE PATTERN _libpath.py EXCLUDE)
install(CODE "file(WRITE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${DS_PYTHON_INSTALL_DIR}/deepseek/_libpath.py\"
  \"LIBRARY = '\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/libdeepseek.so.${PROJECT_VERSION_MAJOR}'\\n\")")
