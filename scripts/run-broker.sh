#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds, and starts ferryd on embedded
# defaults (data in ./ferry-data, client port 127.0.0.1:7070, HTTP 127.0.0.1:7072).
# Extra arguments go to ferryd, e.g. `bash scripts/run-broker.sh --listen 127.0.0.1:9090`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DFERRY_TESTS=OFF -DFERRY_FAILPOINTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target ferryd ferryctl ferry-bench
cat <<MSG

ferryd is starting (data in ./ferry-data; stop it with Ctrl-C). In another terminal:

  build-release/client/ferryctl topic create orders --partitions 4
  echo "hello" | build-release/client/ferryctl produce orders --key order-42
  build-release/client/ferryctl read orders --from-beginning
  build-release/client/ferryctl --output json topic describe orders
  curl -s 127.0.0.1:7072/metrics | head

(ferryctl talks to 127.0.0.1:7070 by default; set FERRY_BOOTSTRAP=host:port or --bootstrap to change.)

MSG
exec build-release/broker/app/ferryd --data-dir ./ferry-data "$@"
