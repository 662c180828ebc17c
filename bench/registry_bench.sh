#!/bin/sh
# Push and pull a ~500 MB multi-layer image to a local docker-registry with layerfarm's registry
# client, and the same image with `skopeo copy`, in the same run.
#   bench/registry_bench.sh [BUILD_DIR] [TOTAL_MB] [LAYERS]
set -eu
BUILD=${1:-build}
TOTAL_MB=${2:-500}
LAYERS=${3:-5}
BENCH="$BUILD/bench/registry_bench"
[ -x "$BENCH" ] || { echo "build the registry_bench target in $BUILD first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/lf-registry-bench-XXXXXX)
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
mkdir -p "$WORK/root"
cat > "$WORK/config.yml" <<CFG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/root}}
http: {addr: "$HOST"}
CFG
docker-registry serve "$WORK/config.yml" > "$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 200); do
  curl -fs "http://$HOST/v2/" > /dev/null 2>&1 && break
  sleep 0.05
done

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

echo "generating a ${TOTAL_MB} MB image in $LAYERS layers..."
"$BENCH" generate "$WORK/layout" "$TOTAL_MB" "$LAYERS" > /dev/null

echo "== layerfarm registry client"
printf 'push: '; "$BENCH" push "$WORK/layout" "$HOST/lf/bench:v1"
printf 'pull: '; "$BENCH" pull "$HOST/lf/bench:v1" "$WORK/lf-pull"

echo "== skopeo $(skopeo --version | awk '{print $3}')"
t0=$(now)
skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:bench" "docker://$HOST/skopeo/bench:v1"
t1=$(now)
echo "push: seconds=$(elapsed "$t0" "$t1")"
t0=$(now)
skopeo copy -q --src-tls-verify=false "docker://$HOST/skopeo/bench:v1" "oci:$WORK/skopeo-pull:bench"
t1=$(now)
echo "pull: seconds=$(elapsed "$t0" "$t1")"
