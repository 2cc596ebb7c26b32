#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (build-fuzz/, FERRY_FUZZ: ASan+UBSan and
# coverage instrumentation), replays each target's crash regressions (tests/fuzz/regressions/),
# then fuzzes each target for a bounded time from its seed corpus (tests/fuzz/corpus/). Fails if
# any regression or fuzzing run crashes, leaks, hits undefined behaviour or a failed check; the
# crashing input is left in build-fuzz/artifacts/<target>/. Prints runs, coverage and corpus size
# per target.
#   bash scripts/fuzz.sh                          every target, 60 s each
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh         longer
#   FUZZ_TARGETS="record_batch checkpoint" bash scripts/fuzz.sh
# The working corpus (build-fuzz/corpus/<target>/) is kept between runs, so repeated local runs go
# deeper; the committed seeds are never modified. One fuzzer process at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
seconds=${FUZZ_SECONDS:-60}
targets=(${FUZZ_TARGETS:-request_frame record_batch control_record checkpoint delay_entry segment_recovery})
declare -A max_len=([request_frame]=4096 [record_batch]=4096 [control_record]=2048 [checkpoint]=1024
                    [delay_entry]=1024 [segment_recovery]=16384)

start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DFERRY_TESTS=OFF -DFERRY_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]/#/fuzz_}"
echo "fuzz: build took $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# segment_recovery writes its segment files here: memory-backed if possible, removed afterwards.
tmp=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/ferry-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp

failed=()
summary=()
for t in "${targets[@]}"; do
  bin=build-fuzz/tests/fuzz/fuzz_$t
  seeds=tests/fuzz/corpus/$t
  work=build-fuzz/corpus/$t
  artifacts=build-fuzz/artifacts/$t
  log=build-fuzz/fuzz-$t.log
  mkdir -p "$work" "$artifacts"

  mapfile -t regressions < <(find "tests/fuzz/regressions/$t" -type f 2>/dev/null | sort)
  if [ ${#regressions[@]} -gt 0 ]; then
    if ! "$bin" -runs=1 "${regressions[@]}" >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz: $t: a crash regression input fails again (tests/fuzz/regressions/$t)" >&2
      failed+=("$t (regression)")
      continue
    fi
  fi

  rc=0
  timeout $(( seconds + 300 )) "$bin" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=25 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  final=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$final")
  files=$(find "$work" -type f | wc -l)
  line=$(printf '%-17s runs %-10s cov %-6s ft %-6s corpus %s (%s files in %s, %s regressions)' "$t" "${runs:-?}" \
         "${cov:-?}" "${ft:-?}" "${corp:-?}" "$files" "$work" "${#regressions[@]}")
  if [ "$rc" -ne 0 ]; then
    grep -E 'ERROR|runtime error|SUMMARY|FERRY_ASSERT|assert|Test unit written' "$log" | head -n 20 || true
    tail -n 40 "$log"
    echo "fuzz: $t crashed (exit $rc); input in $artifacts/, log $log" >&2
    failed+=("$t")
    line="$line  CRASHED"
  fi
  summary+=("$line")
  echo "fuzz: $line"
done

echo "fuzz: summary (${seconds} s per target, total $(( $(date +%s) - start )) s):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
