#!/usr/bin/env bash
# Worker benchmarks (needs root), each against a peer in the same run:
#
#   bench/worker_bench.sh [BUILD_DIR]
#
# 1. Start-to-exit of `true` in a prepared three-layer rootfs: layerfarm's sandbox vs `runc run`
#    of an equivalent bundle (bench/sandbox_bench.cpp says exactly what each side includes).
# 2. A RUN step that touches 10,000 files, through `layerfarm-worker exec` on a busybox base:
#    the StepResult's timings (layer_ms = upper dir -> tar -> gzip -> digests -> blob store),
#    against `tar -cf - | pigz | sha256sum` over the same upper dir (less work: no diff ID, no
#    blob store), median of RUNS.
set -euo pipefail

BUILD_DIR=${1:-build}
RUNS=${RUNS:-5}
WORKER=$BUILD_DIR/worker/layerfarm-worker
LAYERFARM=$BUILD_DIR/cli/layerfarm
SANDBOX_BENCH=$BUILD_DIR/bench/sandbox_bench
here=$(cd "$(dirname "$0")/.." && pwd)

for f in "$WORKER" "$LAYERFARM" "$SANDBOX_BENCH"; do
  [[ -x $f ]] || { echo "missing $f: build the tree first" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 1; }

echo "== 1. start-to-exit of true"
"$SANDBOX_BENCH" --runs "${SANDBOX_RUNS:-50}"

echo
echo "== 2. a RUN that touches 10,000 files"
work=$(mktemp -d /tmp/lf-worker-bench-XXXXXX)
trap '[[ -n ${KEEP:-} ]] || rm -rf "$work"' EXIT
"$here/tests/data/make-busybox-rootfs.sh" "$work/rootfs" >/dev/null
"$LAYERFARM" import "$work/rootfs" -t bench:1 --output "type=oci,dest=$work/layout" >/dev/null
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def blob(d):
    return json.load(open(f"{work}/layout/blobs/sha256/{d.split(':')[1]}"))
index = json.load(open(f"{work}/layout/index.json"))
manifest = blob(index["manifests"][0]["digest"])
config = blob(manifest["config"]["digest"])
layer = manifest["layers"][0]
spec = {
    "stepId": "bench-10k",
    "kind": "STEP_KIND_RUN",
    "parent": {"layers": [{"blob": {"mediaType": layer["mediaType"], "digest": layer["digest"],
                                    "size": str(layer["size"])},
                           "diffId": config["rootfs"]["diff_ids"][0]}]},
    "config": {"env": ["PATH=/bin"]},
    "run": {"command": ["mkdir -p /data && cd /data && i=0; while [ $i -lt 100 ]; do "
                        "mkdir d$i; seq 1 100 | sed \"s|^|d$i/f|\" | xargs touch; "
                        "echo $i > d$i/f1; i=$((i+1)); done"],
            "shellForm": True},
}
json.dump(spec, open(f"{work}/spec.json", "w"))
PY

layer_ms=()
peer_ms=()
for i in $(seq 0 "$RUNS"); do
  rm -rf "$work/state"
  "$WORKER" exec --spec "$work/spec.json" --blobs "$work/layout" --state "$work/state" \
    >"$work/result.json" 2>"$work/log"
  ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timings"].get("layerMs", "0"))' "$work/result.json")
  upper=
  for d in "$work"/state/layers/l/*/fs; do
    if [[ -d $d/data ]]; then upper=$d; fi
  done
  count=$(find "$upper" | wc -l)
  start=$(date +%s%N)
  tar -C "$upper" -cf - . | pigz | sha256sum >/dev/null
  end=$(date +%s%N)
  if [[ $i -gt 0 ]]; then
    layer_ms+=("$ms")
    peer_ms+=($(( (end - start) / 1000000 )))
  fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "upper dir entries: $count"
echo "  layerfarm layer (exec timings.layerMs)  median $(median "${layer_ms[@]}") ms"
echo "  tar | pigz | sha256sum                  median $(median "${peer_ms[@]}") ms"
