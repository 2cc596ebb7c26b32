#!/usr/bin/env bash
# Installs the Debian packages Ferry builds and tests with. Idempotent: installs only what is missing.
# Package choices and why Boost 1.81: see DEPENDENCIES.md in the shared docs and README.md.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libboost1.81-dev libflatbuffers-dev flatbuffers-compiler
      librocksdb-dev libspdlog-dev libcli11-dev nlohmann-json3-dev prometheus-cpp-dev
      libgtest-dev python3 git clang-format clang-tidy
      clang libclang-rt-14-dev)  # clang and its runtimes: libFuzzer and the sanitizers (scripts/fuzz.sh)
missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
