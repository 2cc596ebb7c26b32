#!/usr/bin/env bash
# Quick start, command 2: installs what is missing, builds, and runs every test
# (unit and integration; integration tests start real ferryd processes on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
start=$(date +%s)
# -g1 (line tables: backtraces and sanitizer reports keep file and line) compiles faster than -g.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
      -DFERRY_TESTS=ON -DFERRY_FAILPOINTS=ON >/dev/null
cmake --build build -j2
echo "build took $(( $(date +%s) - start )) s"
bash scripts/lint.sh build
ctest --test-dir build --output-on-failure -j2 --timeout 900
echo "build and tests took $(( $(date +%s) - start )) s"
