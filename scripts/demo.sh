#!/usr/bin/env bash
# The most complete thing layerfarm does today, on a fresh Debian 12 machine: install, build, and
# run the front end on the example multi-stage build in examples/hello-c. The farm itself
# (coordinator, workers, push) is not built yet; see README.md "Status".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target layerfarm
./build/cli/layerfarm --version
