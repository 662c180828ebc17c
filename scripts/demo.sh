#!/usr/bin/env bash
# The farm at work on one machine (fresh Debian 12, root):
#   1. installs the Debian packages and builds layerfarm;
#   2. starts the local all-in-one farm (deploy/local/farm.sh): a registry on loopback seeded
#      with a busybox base made offline, the coordinator, and two workers;
#   3. `layerfarm build`s the two-stage examples/hello-farm and pushes it to that registry;
#   4. runs the pushed image (skopeo copy, umoci unpack, runc run);
#   5. builds it again (every step a cache hit, no worker touched) and prints its history;
#   6. stops the farm (DEMO_KEEP=1 leaves it running: LAYERFARM_SERVER=http://127.0.0.1:7070).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target layerfarm layerfarm-coordinator layerfarm-worker
lf=$root/build/cli/layerfarm

export LAYERFARM_LOCAL_DIR=${LAYERFARM_LOCAL_DIR:-/tmp/layerfarm-local}
export LAYERFARM_SERVER=http://127.0.0.1:${LF_API_PORT:-7070}
registry=127.0.0.1:${LF_REGISTRY_PORT:-5000}
work=$(mktemp -d /tmp/layerfarm-demo-XXXXXX)
cleanup() {
  runc delete -f "lf-demo-$$" >/dev/null 2>&1 || true
  [ "${DEMO_KEEP:-0}" = 1 ] || deploy/local/farm.sh stop
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== the local farm: registry, coordinator, two workers"
deploy/local/farm.sh start
"$lf" workers

echo
echo "== layerfarm build: examples/hello-farm (two stages), pushed to the local registry"
ref=$registry/demo/hello:1
"$lf" build --progress plain -t "$ref" --push \
  --build-arg "BASE=$registry/library/busybox:latest" examples/hello-farm

echo
echo "== skopeo reads it from the registry; umoci unpacks it; runc runs it"
skopeo inspect --tls-verify=false --format '{{.Digest}} {{.Architecture}} {{.Layers}}' "docker://$ref"
skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/layout:1"
umoci unpack --image "$work/layout:1" "$work/bundle" >/dev/null
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
(cd "$work/bundle" && runc run "lf-demo-$$")

echo
echo "== the same build again: every step comes from the layer cache"
"$lf" build --progress plain -t "$ref" --push \
  --build-arg "BASE=$registry/library/busybox:latest" examples/hello-farm

echo
echo "== layerfarm history $ref"
"$lf" history "$ref"
echo
"$lf" cache stats
