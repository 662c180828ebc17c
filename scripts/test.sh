#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds (RelWithDebInfo, ccache) and runs ctest on
# every core. Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` or `-R Dockerfile`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# ccache keyed on paths relative to the checkout, so every clone (CI's included) shares hits.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR"
ctest --test-dir "$BUILD_DIR" -j"$(nproc)" --output-on-failure --timeout 600 "$@"
