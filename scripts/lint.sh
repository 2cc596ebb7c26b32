#!/usr/bin/env bash
# Style checks CI runs (STYLE.md): project includes follow the layers (tests/lint/include_layers.py),
# every C++ file formatted by the committed .clang-format, and
# clang-tidy's bugprone/performance checks clean on every translation unit, warnings as errors.
# clang-tidy checks the units whose inputs changed since the commit at which every unit was last
# found clean (scripts/tidy-clean; tests/lint/tidy_scope.py says how units are picked), the way CI
# lints a change; --full checks every unit, and --record (with --full, on a clean work tree) writes
# HEAD as the new baseline when nothing was found.
# Needs a built build folder (compile_commands.json, the flatc-generated headers, the depfiles):
#   bash scripts/lint.sh [build-dir] [--full [--record]]        (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
full=0
record=0
for a in "$@"; do
  case "$a" in
    --full) full=1 ;;
    --record) record=1 ;;
    -*) echo "usage: $0 [build-dir] [--full [--record]]" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
if [ "$record" = 1 ] && { [ "$full" = 0 ] || [ -n "$(git status --porcelain)" ]; }; then
  echo "lint: --record needs --full and a clean work tree (the baseline names a commit)" >&2
  exit 2
fi
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
python3 tests/lint/tidy_scope.py --self-test >/dev/null
scope=()
[ "$full" = 1 ] && scope=(--all)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 tests/lint/tidy_scope.py "$build" "${scope[@]}" >"$out/units"
mapfile -t units <"$out/units"
jobs=$(nproc 2>/dev/null || echo 2)
# One clang-tidy per unit, $jobs at a time; each writes its findings to its own file.
[ ${#units[@]} -gt 0 ] && printf '%s\n' "${units[@]}" | xargs -P "$jobs" -I{} sh -c \
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
if [ "$record" = 1 ]; then
  python3 tests/lint/tidy_scope.py "$build" --baseline >"$out/baseline"
  mv "$out/baseline" scripts/tidy-clean
  echo "lint: recorded $(git rev-parse --short HEAD) in scripts/tidy-clean; commit it"
fi
