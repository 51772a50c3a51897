# Load predictor benchmarks and tools. bench_predict_infer reads the model's internals (its
# anchor is the scalar reference forward pass); deepseek-predict-eval is the evaluation tool
# over real traces, built here because it is a measurement, not part of the library.
ds_bench_link(bench_predict_infer ds_internal)
add_executable(deepseek-predict-eval ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval.c
  ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_baselines.c
  ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_traces.c
  ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_ensemble.c
  ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_walk.c
  ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_models.c)
target_link_libraries(deepseek-predict-eval PRIVATE deepseek_static ds_warnings m)
target_include_directories(deepseek-predict-eval PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})

# A smoke run of the evaluation tool on the shared traces (one Alibaba machine and one
# Bitbrains VM, one short epoch) when they are present next to the source tree: both
# families' static and walk-forward tables must reach their last row (the ensemble at h=10).
set(_ds_loadtrace ${PROJECT_SOURCE_DIR}/../shared/data/loadtrace)
if(BUILD_TESTING AND EXISTS ${_ds_loadtrace}/alibaba2018/machine_usage.csv)
  add_test(NAME predict_eval_smoke COMMAND deepseek-predict-eval --max-series 1 --epochs 1
    --windows 64 --ft-epochs 1 --wf-epochs 1 --wf-every 480
    ${_ds_loadtrace}/alibaba2018/machine_usage.csv ${_ds_loadtrace}/bitbrains_rnd_2013-7/1.csv)
  set_tests_properties(predict_eval_smoke PROPERTIES TIMEOUT 120
    PASS_REGULAR_EXPRESSION
    "bitbrains +ensemble +10 .*walk_forward evaluation.*bitbrains +ensemble +10 .*alibaba +ensemble +10 .*walk_forward evaluation.*alibaba +ensemble +10 ")
elseif(BUILD_TESTING)
  message(STATUS "predict_eval_smoke: shared traces not found in ${_ds_loadtrace}; test skipped")
endif()
