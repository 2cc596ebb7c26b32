#!/usr/bin/env bash
# Style checks CI runs (STYLE.md): project includes follow the layers (tests/lint/include_layers.py),
# every C++ file formatted by the committed .clang-format, and
# clang-tidy's bugprone/performance checks clean on every translation unit, warnings as errors.
# Needs a configured build folder (compile_commands.json and the flatc-generated headers):
#   bash scripts/lint.sh [build-dir]        (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
if [ ! -f "$build/compile_commands.json" ]; then
  echo "lint: $build/compile_commands.json missing; configure and build first" >&2
  exit 2
fi
start=$(date +%s)
# Include layers: which folder may include which (the table in the script); an arrow back up fails.
python3 tests/lint/include_layers.py --self-test >/dev/null
python3 tests/lint/include_layers.py .
mapfile -t sources < <(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run --Werror "${sources[@]}"; then
  echo "lint: formatting differs from .clang-format; run: clang-format -i \$(git ls-files '*.cc' '*.h')" >&2
  exit 1
fi
echo "lint: clang-format clean (${#sources[@]} files)"
mapfile -t units < <(git ls-files '*.cc')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)
# One clang-tidy per unit, $jobs at a time; each writes its findings to its own file.
printf '%s\n' "${units[@]}" | xargs -P "$jobs" -I{} sh -c \
  'clang-tidy -p "$1" --quiet --warnings-as-errors="*" "$2" >"$3/$(echo "$2" | tr / _).log" 2>&1 || echo "$2" >>"$3/failed"' \
  _ "$build" {} "$out"
if [ -s "$out/failed" ]; then
  while read -r u; do
    grep -E "(warning|error):" "$out/$(echo "$u" | tr / _).log" || cat "$out/$(echo "$u" | tr / _).log"
  done <"$out/failed"
  echo "lint: clang-tidy found problems in $(wc -l <"$out/failed") of ${#units[@]} units" >&2
  exit 1
fi
echo "lint: clang-tidy clean (${#units[@]} units) in $(( $(date +%s) - start )) s"
