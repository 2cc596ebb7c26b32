#!/usr/bin/env bash
# The test suite under the sanitizers (STYLE.md "Tests"), each build in its own folder:
#   asan  build-asan, -DFERRY_SANITIZE=address (ASan+UBSan): every test, unit and integration (the
#         integration tests start this build's own ferryd), halting on the first error, leak
#         checks on. A report from a ferryd or ferryctl the tests started fails the test too
#         (tests/support/sanitizer_report.h).
#   tsan  build-tsan, -DFERRY_SANITIZE=thread: the tests of the threaded parts: shards
#         (runtime_test), the metrics registry's per-thread cells (metrics_registry_test), partitions (commit_pipeline_test, delay_scheduler_test, producer_state_test), subscriptions
#         (subscription_test) and the timing wheel (wheel_test).
#   bash scripts/sanitize.sh [asan|tsan|all]     (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
what=${1:-all}
case "$what" in asan|tsan|all) ;; *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;; esac
jobs=2
# -O1 and line tables only (-g1): enough for the sanitizers' reports (function, file, line), and
# these builds compile faster than with -O2 -g (CI has two cores).
flags="-O1 -g1 -DNDEBUG"

if [ "$what" != tsan ]; then
  start=$(date +%s)
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_TESTS=ON -DFERRY_FAILPOINTS=ON \
        -DFERRY_SANITIZE=address -DFERRY_BENCH_TOOLS=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
  cmake --build build-asan -j"$jobs"
  built=$(date +%s)
  echo "sanitize: asan build took $(( built - start )) s"
  ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 1800
  echo "sanitize: asan tests took $(( $(date +%s) - built )) s"
fi

if [ "$what" != asan ]; then
  start=$(date +%s)
  tsan_tests=(runtime_test metrics_registry_test wheel_test subscription_test commit_pipeline_test delay_scheduler_test
              producer_state_test)
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_TESTS=ON -DFERRY_FAILPOINTS=ON \
        -DFERRY_SANITIZE=thread -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" >/dev/null
  cmake --build build-tsan -j"$jobs" --target "${tsan_tests[@]}"
  built=$(date +%s)
  echo "sanitize: tsan build took $(( built - start )) s"
  regex="^($(IFS='|'; echo "${tsan_tests[*]}"))\$"
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build-tsan -R "$regex" --output-on-failure -j"$jobs" --timeout 1800
  echo "sanitize: tsan tests took $(( $(date +%s) - built )) s"
fi
