#!/usr/bin/env bash
# Installs every Debian package that building, testing and running layerfarm needs.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-14 lld-14
  libclang-rt-14-dev libfuzzer-14-dev
  # fixed stack
  libboost1.74-dev libboost-system1.74-dev
  librocksdb-dev libprotobuf-dev protobuf-compiler libssl-dev
  prometheus-cpp-dev libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  # chosen libraries (see commit messages for why)
  libarchive-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libzstd-dev zlib1g-dev
  libseccomp-dev
  # real peers used by tests and benchmarks
  openssl pigz zstd docker-registry skopeo umoci runc busybox-static apache2-utils
  prometheus  # promtool checks the coordinator's /metrics
  xfsprogs  # mkfs.xfs: the worker's reflink path (FICLONE) is tested on a loop-mounted XFS
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# docker-registry's postinst tries to start a service; with no init system that is harmless.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
