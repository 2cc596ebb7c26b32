# ferry-log-bench: the storage engine alone (no network); see bench/log_bench.cc.
if(TARGET ferry_log)
  add_executable(ferry-log-bench log_bench.cc)
  target_link_libraries(ferry-log-bench PRIVATE ferry_log)
endif()
