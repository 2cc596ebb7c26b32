# ferry-timer-bench: the timing wheel's throughput and lateness on virtual time (bench/timer_bench.cc).
add_executable(ferry-timer-bench ${CMAKE_CURRENT_LIST_DIR}/timer_bench.cc)
target_link_libraries(ferry-timer-bench PRIVATE ferry_scheduler)
