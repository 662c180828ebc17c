#!/usr/bin/env bash
# What layerfarm does today, end to end on one machine (fresh Debian 12, root):
#   1. installs the Debian packages and builds layerfarm;
#   2. prints the build plan of examples/hello-c (stages, steps, cache keys);
#   3. makes a real image: a busybox root filesystem from the busybox-static package, imported
#      with `layerfarm import`, pushed to a local registry (docker-registry on loopback), checked
#      with skopeo, unpacked with umoci and run with runc.
# The farm itself (coordinator, workers, `layerfarm build`) is not built yet: see README "Status".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target layerfarm
lf=$root/build/cli/layerfarm

echo
echo "== the build plan of examples/hello-c (alpine pinned to a placeholder digest)"
"$lf" dockerfile plan examples/hello-c \
  --base "alpine:3.20=sha256:$(printf 'alpine:3.20 placeholder' | sha256sum | cut -c1-64)"

work=$(mktemp -d /tmp/layerfarm-demo-XXXXXX)
registry_pid=""
cleanup() {
  runc delete -f "lf-demo-$$" >/dev/null 2>&1 || true
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== a local registry on loopback"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "registry at 127.0.0.1:$port"

echo
echo "== layerfarm import: busybox root filesystem -> image, pushed"
tests/data/make-busybox-rootfs.sh "$work/rootfs"
ref="127.0.0.1:$port/demo/busybox:1"
"$lf" import "$work/rootfs" -t "$ref" \
  --change 'CMD ["/bin/echo", "hello from layerfarm"]' \
  --output "type=oci,dest=$work/layout" --push --insecure-registry "127.0.0.1:$port"

echo
echo "== skopeo reads it back from the registry"
skopeo inspect --tls-verify=false "docker://$ref" | head -20

echo
echo "== umoci unpacks it, runc runs it"
umoci unpack --image "$work/layout:1" "$work/bundle" >/dev/null
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
(cd "$work/bundle" && runc run "lf-demo-$$")
