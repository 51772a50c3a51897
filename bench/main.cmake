# The main job side by side with PyTorch: bench_main_fashion_mnist runs
# bench/reference/fashion_mnist_torch.py with Debian's python3 (python3-torch) against our
# examples/train_fashion_mnist. A wrapper script, so that `make bench` finds it with the other
# bench_* programs; skipped when the example is not built.
set(DS_PYTHON /usr/bin/python3 CACHE FILEPATH "Python interpreter for the bindings' tests")
if(TARGET train_fashion_mnist)
  file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/bench_main_fashion_mnist
    CONTENT "#!/bin/sh\nexec ${DS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/fashion_mnist_torch.py --ours $<TARGET_FILE:train_fashion_mnist> \"$@\"\n"
    FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
else()
  message(STATUS "bench_main_fashion_mnist skipped: examples/train_fashion_mnist is not built")
endif()
