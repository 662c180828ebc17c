#!/usr/bin/env bash
# What layerfarm does today, end to end on one machine (fresh Debian 12, root):
#   1. installs the Debian packages and builds layerfarm;
#   2. prints the build plan of examples/hello-c (stages, steps, cache keys);
#   3. makes a real image: a busybox root filesystem from the busybox-static package, imported
#      with `layerfarm import`, pushed to a local registry (docker-registry on loopback), checked
#      with skopeo, unpacked with umoci and run with runc;
#   4. runs a RUN step on that image with `layerfarm-worker exec` (the worker's sandbox:
#      namespaces, overlayfs, cgroups) and lists the layer it made.
# The farm itself (coordinator, worker daemon, `layerfarm build`) is not built yet: see README
# "Status".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target layerfarm layerfarm-worker
lf=$root/build/cli/layerfarm
worker=$root/build/worker/layerfarm-worker

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

echo
echo "== layerfarm-worker runs a RUN step on that image, in its sandbox"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def blob(d):
    return json.load(open(f"{work}/layout/blobs/sha256/{d.split(':')[1]}"))
manifest = blob(json.load(open(f"{work}/layout/index.json"))["manifests"][0]["digest"])
config = blob(manifest["config"]["digest"])
layer = manifest["layers"][0]
json.dump({
    "stepId": "demo-run",
    "kind": "STEP_KIND_RUN",
    "parent": {"layers": [{"blob": {"mediaType": layer["mediaType"], "digest": layer["digest"],
                                    "size": str(layer["size"])},
                           "diffId": config["rootfs"]["diff_ids"][0]}]},
    "config": {"env": ["PATH=/bin"], "workingDir": "/srv"},
    "run": {"command": ["echo \"built on $(hostname) as uid $(id -u), $(ls /proc | grep -c '^[0-9]') processes visible\" | tee greeting"],
            "shellForm": True},
    "limits": {"timeoutMs": "60000", "memoryBytes": "268435456", "pidsMax": "256"},
}, open(f"{work}/step.json", "w"), indent=1)
PY
"$worker" exec --spec "$work/step.json" --blobs "$work/layout" --state "$work/worker" \
  >"$work/result.json"
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings"]
print(f"{r['outcome']}: layer {r['layer']['blob']['digest'][:19]}... "
      f"({r['layer']['blob']['size']} bytes), run {t.get('runMs', 0)} ms, "
      f"layer {t.get('layerMs', 0)} ms")
PY
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layer"]["blob"]["digest"][7:])' "$work/result.json")
echo "the layer holds exactly what the step changed:"
tar -tzvf "$work/layout/blobs/sha256/$digest"
