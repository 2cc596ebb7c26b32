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
#   FUZZ_JOBS=1 bash scripts/fuzz.sh              one target at a time
# The working corpus (build-fuzz/corpus/<target>/) is kept between runs, so repeated local runs go
# deeper; the committed seeds are never modified. FUZZ_JOBS fuzzer processes at a time (default:
# one per core), each with its own corpus folder, log and time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
seconds=${FUZZ_SECONDS:-60}
targets=(${FUZZ_TARGETS:-request_frame record_batch control_record checkpoint delay_entry segment_recovery peer_frame})
declare -A max_len=([request_frame]=4096 [record_batch]=4096 [control_record]=2048 [checkpoint]=1024
                    [delay_entry]=1024 [segment_recovery]=16384 [peer_frame]=4096)

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

# One target: replay its regressions, then fuzz it. Writes its summary line to
# build-fuzz/fuzz-<target>.summary and exits non-zero if it crashed.
fuzz_one() {
  local t=$1
  local bin=build-fuzz/tests/fuzz/fuzz_$t seeds=tests/fuzz/corpus/$t work=build-fuzz/corpus/$t
  local artifacts=build-fuzz/artifacts/$t log=build-fuzz/fuzz-$t.log out=build-fuzz/fuzz-$t.summary
  mkdir -p "$work" "$artifacts"
  rm -f "$out"

  local regressions
  mapfile -t regressions < <(find "tests/fuzz/regressions/$t" -type f 2>/dev/null | sort)
  if [ ${#regressions[@]} -gt 0 ]; then
    if ! "$bin" -runs=1 "${regressions[@]}" >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz: $t: a crash regression input fails again (tests/fuzz/regressions/$t)" >&2
      echo "$t: a crash regression fails again  CRASHED" >"$out"
      return 1
    fi
  fi

  local rc=0
  timeout $(( seconds + 300 )) "$bin" -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=25 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  local runs final cov ft corp files line
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
    line="$line  CRASHED"
  fi
  echo "$line" >"$out"
  echo "fuzz: $line"
  return "$rc"
}

# FUZZ_JOBS targets at a time (default: one per core); each still gets `seconds` of its own.
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$(( running - 1 ))
  fi
  fuzz_one "$t" &
  running=$(( running + 1 ))
done
wait || true

failed=()
summary=()
for t in "${targets[@]}"; do
  line=$(cat "build-fuzz/fuzz-$t.summary" 2>/dev/null || echo "$t: no summary (the run did not finish)  CRASHED")
  summary+=("$line")
  if [[ "$line" == *CRASHED ]]; then failed+=("$t"); fi
done

echo "fuzz: summary (${seconds} s per target, total $(( $(date +%s) - start )) s):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
