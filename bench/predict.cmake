# Load predictor benchmarks and tools. bench_predict_infer reads the model's internals (its
# anchor is the scalar reference forward pass); deepseek-predict-eval is the evaluation tool
# over real traces, built here because it is a measurement, not part of the library.
ds_bench_link(bench_predict_infer ds_internal)
add_executable(deepseek-predict-eval ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval.c
  ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_baselines.c ${CMAKE_CURRENT_SOURCE_DIR}/predict_eval_traces.c)
target_link_libraries(deepseek-predict-eval PRIVATE deepseek_static ds_warnings m)
target_include_directories(deepseek-predict-eval PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
