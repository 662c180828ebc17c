#!/usr/bin/env bash
# The reference build of issue 6, shared by tests/e2e/farm_test.sh, tests/e2e/compare_buildkit.sh
# and bench/farm_bench.sh: a busybox base from REGISTRY; LABEL, RUN, COPY of a 20 MB context,
# RUN, ENV, WORKDIR, ENTRYPOINT. The image prints "app in /opt/app: version 1, <checksum>".
#
#   tests/e2e/make_reference_context.sh DIR REGISTRY
set -euo pipefail
dir=${1:?usage: make_reference_context.sh DIR REGISTRY}
registry=${2:?usage: make_reference_context.sh DIR REGISTRY}
mkdir -p "$dir/data"
head -c $((20 << 20)) /dev/urandom >"$dir/data/blob.bin"
echo "version 1" >"$dir/data/version.txt"
cat >"$dir/Dockerfile" <<DOCKERFILE
FROM $registry/library/busybox:latest
LABEL org.example.team="farm"
RUN mkdir -p /opt/app && echo "prepared" > /opt/app/prepared.txt
COPY data/ /opt/app/data/
RUN sha256sum /opt/app/data/blob.bin | cut -c1-16 > /opt/app/blob.sum && cat /opt/app/data/version.txt
ENV APP_HOME=/opt/app
WORKDIR /opt/app
ENTRYPOINT ["/bin/sh", "-c", "echo \"app in \$APP_HOME: \$(cat data/version.txt), \$(cat blob.sum)\""]
DOCKERFILE
