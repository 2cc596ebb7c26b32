#!/usr/bin/env bash
# bench/run.sh: the reproducible way to record a ferry-bench result (bench/README.md).
#
#   bench/run.sh [options] produce|consume|e2e|subscribe|delayed [ferry-bench options...]
#
# Builds ferryd and ferry-bench in Release (its own build folder), starts a fresh ferryd on a
# temporary data folder and a free port, runs the ferry-bench command --runs times (3), prints
# every run and the medians of messages/s and p99 latency (from the --json files), and stops the
# broker. Nothing but the repository, CMake, make, a C++ compiler, bash and python3 is needed.
#
# Options (before the ferry-bench mode):
#   --runs N           runs to make (default 3)
#   --setup "ARGS"     a ferry-bench command run once before the measured runs, not measured
#                      (e.g. --setup "produce --topic c --messages 5000000" before a consume run)
#   --broker-args "A"  extra ferryd flags (e.g. "--shards 1")
#   --out DIR          keep the JSON results and the broker log here (default: a temporary folder,
#                      printed at the end)
#   --no-build         use the binaries already in the build folder
#   --keep-data        do not delete the broker's data folder
# Environment:
#   FERRY_BENCH_BUILD_DIR  build folder (default <repo>/build-bench-release)
#   FERRY_BENCH_DATA_DIR   parent of the broker's temporary data folder (default: the build folder,
#                          i.e. the repository's disk; keep it off tmpfs or fsync costs nothing)
#   JOBS                   parallel compile jobs (default 2)
#
# Each measured run gets its own topic (bench-<run>-<pid>) unless the command names --topic, so
# runs do not read or append to each other's data; --create-topic is added in that case.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="${FERRY_BENCH_BUILD_DIR:-$repo/build-bench-release}"
jobs="${JOBS:-2}"

runs=3
setup=""
broker_args=""
out=""
build_it=1
keep_data=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --setup) setup="$2"; shift 2 ;;
    --broker-args) broker_args="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build_it=0; shift ;;
    --keep-data) keep_data=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    produce|consume|e2e|subscribe|delayed) break ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $# -lt 1 ]]; then
  echo "usage: bench/run.sh [--runs N] [--setup ARGS] [--broker-args ARGS] [--out DIR] produce|consume|e2e|subscribe|delayed [ferry-bench options]" >&2
  exit 2
fi
bench_args=("$@")

if [[ $build_it -eq 1 ]]; then
  echo "== building Release in $build" >&2
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF -DFERRY_FAILPOINTS=OFF >/dev/null
  make -C "$build" -j"$jobs" ferryd ferry-bench >/dev/null
fi
ferryd="$build/broker/app/ferryd"
bench="$build/bench/ferry-bench"
for b in "$ferryd" "$bench"; do
  [[ -x "$b" ]] || { echo "run.sh: $b not built" >&2; exit 1; }
done

[[ -n "$out" ]] || out="$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-results.XXXXXX")"
mkdir -p "$out"
data_parent="${FERRY_BENCH_DATA_DIR:-$build}"
mkdir -p "$data_parent"
data="$(mktemp -d "$data_parent/ferry-bench-data.XXXXXX")"
fstype="$(findmnt -no FSTYPE -T "$data" 2>/dev/null || echo unknown)"
if [[ "$fstype" == "tmpfs" ]]; then
  echo "run.sh: WARNING: $data is on tmpfs: fsync is free there, results are not comparable" >&2
fi

broker_pid=""
# shellcheck disable=SC2317  # called through trap
cleanup() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  if [[ $keep_data -eq 0 ]]; then rm -rf "$data"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the broker binds a free port and reports it in the ready file (no race with a guessed one).
ready="$out/ready.json"
rm -f "$ready"
# shellcheck disable=SC2086  # broker_args is a list of flags
"$ferryd" --data-dir "$data" --listen 127.0.0.1:0 --http 127.0.0.1:0 --ready-file "$ready" $broker_args \
  >"$out/ferryd.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 300); do
  [[ -s "$ready" ]] && break
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "run.sh: ferryd exited during start-up; its log:" >&2
    cat "$out/ferryd.log" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -s "$ready" ]] || { echo "run.sh: no ready file after 30 s" >&2; exit 1; }
port="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_port"])' "$ready")"
bootstrap="127.0.0.1:$port"

echo "== machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB RAM; data $data ($fstype)"
echo "== ferryd pid $broker_pid at $bootstrap; git $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo '+dirty')"

if [[ -n "$setup" ]]; then
  echo "== setup: ferry-bench $setup --bootstrap $bootstrap"
  # shellcheck disable=SC2086
  "$bench" $setup --bootstrap "$bootstrap" >"$out/setup.txt" 2>&1 || { cat "$out/setup.txt"; exit 1; }
  tail -n 12 "$out/setup.txt" | grep -v '^\[' || true
fi

has_topic=0
for a in "${bench_args[@]}"; do [[ "$a" == --topic || "$a" == --topic=* ]] && has_topic=1; done

failed=0
jsons=()
for i in $(seq 1 "$runs"); do
  args=("${bench_args[@]}")
  if [[ $has_topic -eq 0 ]]; then args+=(--topic "bench-$i-$$" --create-topic); fi
  # delayed mode samples the broker's memory.
  if [[ "${bench_args[0]}" == delayed ]]; then args+=(--broker-pid "$broker_pid"); fi
  json="$out/run-$i.json"
  echo "== run $i/$runs: ferry-bench ${args[*]}"
  if ! "$bench" "${args[@]}" --bootstrap "$bootstrap" --json "$json" 2>"$out/run-$i.progress"; then
    echo "   (run $i exited non-zero; stderr tail:)"
    tail -n 5 "$out/run-$i.progress" | sed 's/^/   /'
    failed=1
  fi
  [[ -s "$json" ]] && jsons+=("$json")
done

if ! kill -0 "$broker_pid" 2>/dev/null; then
  echo "run.sh: ferryd died during the runs; log tail:" >&2
  tail -n 20 "$out/ferryd.log" >&2
  failed=1
fi

if [[ ${#jsons[@]} -gt 0 ]]; then
  python3 - "${jsons[@]}" <<'EOF'
import json, statistics, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
cols = [("msgs_per_sec", "msgs/s", "%.0f"), ("mb_per_sec", "MB/s", "%.2f"),
        ("latency_p50_ms", "ack p50 ms", "%.3f"), ("latency_p99_ms", "ack p99 ms", "%.3f"),
        ("latency_p999_ms", "ack p99.9 ms", "%.3f"), ("latency_max_ms", "ack max ms", "%.3f"),
        ("e2e_latency_p50_ms", "e2e p50 ms", "%.3f"), ("e2e_latency_p99_ms", "e2e p99 ms", "%.3f"),
        ("e2e_latency_p999_ms", "e2e p99.9 ms", "%.3f"),
        ("lateness_p50_ms", "late p50 ms", "%.3f"), ("lateness_p99_ms", "late p99 ms", "%.3f"),
        ("lateness_max_ms", "late max ms", "%.3f"), ("early", "early", "%d"), ("rss_max_mib", "RSS MiB", "%.1f")]
cols = [c for c in cols if all(c[0] in r for r in rows)]
print("== results (%d runs, mode %s)" % (len(rows), rows[0].get("mode")))
print("   run  " + "  ".join("%13s" % c[1] for c in cols) + "  errors")
for i, r in enumerate(rows, 1):
    print("   %-4d " % i + "  ".join("%13s" % (c[2] % r[c[0]]) for c in cols) + "  %s" % r.get("errors", 0))
med = {c[0]: statistics.median(r[c[0]] for r in rows) for c in cols}
print("   med  " + "  ".join("%13s" % (c[2] % med[c[0]]) for c in cols))
line = "== median of %d: %.0f msgs/s" % (len(rows), med["msgs_per_sec"])
if "latency_p99_ms" in med: line += ", p99 publish-to-ack %.3f ms" % med["latency_p99_ms"]
if "e2e_latency_p99_ms" in med: line += ", p99 end-to-end %.3f ms" % med["e2e_latency_p99_ms"]
if "lateness_p99_ms" in med: line += ", lateness p99 %.3f ms max %.3f ms" % (med["lateness_p99_ms"], med["lateness_max_ms"])
if "rss_max_mib" in med and med["rss_max_mib"] > 0: line += ", broker RSS max %.1f MiB" % med["rss_max_mib"]
print(line)
EOF
fi
echo "== results kept in $out"
exit "$failed"
