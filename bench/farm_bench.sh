#!/usr/bin/env bash
# layerfarm vs BuildKit (Debian's docker.io, dockerd started here by hand) on the reference
# build (issue 6): busybox base from a local registry; LABEL, RUN, COPY of a 20 MB context, RUN,
# ENV, WORKDIR, ENTRYPOINT. Same machine, same registry, same run:
#   cold      first build (base pulled from the registry, empty caches)
#   cached    unchanged rebuild
#   edited    rebuild after one source file changed
#   push      cached rebuild + push of a new tag to a new repository
# Then the coordinator alone: fully cached builds/s and p99 with 50 clients
# (bench/coordinator_bench.py).
#
#   bench/farm_bench.sh [BUILD_DIR]     (root; needs docker.io installed, not running)
# Prints one line per measurement; median of RUNS (default 3) for cached/edited.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
runs=${RUNS:-3}
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
command -v dockerd >/dev/null || { echo "needs docker.io (apt-get install docker.io)" >&2; exit 1; }
docker_cli=/usr/bin/docker

work=$(mktemp -d /tmp/lf-bench-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export LAYERFARM_LOCAL_DIR=$work/farm LAYERFARM_BIN=$build
export LF_REGISTRY_PORT=$(free_port) LF_API_PORT=$(free_port) LF_WORKER_PORT=$(free_port)
export LAYERFARM_SERVER=http://127.0.0.1:$LF_API_PORT
registry=127.0.0.1:$LF_REGISTRY_PORT
lf=$build/cli/layerfarm
export DOCKER_HOST=unix://$work/docker.sock DOCKER_BUILDKIT=1
dockerd_pid=""
cleanup() {
  "$root/deploy/local/farm.sh" stop >/dev/null 2>&1 || true
  [ -n "$dockerd_pid" ] && { kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null; } || true
  umount -R "$work/docker" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.2f}')" "$@"; }

"$root/deploy/local/farm.sh" start >/dev/null
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "$DOCKER_HOST" \
  --pidfile "$work/docker.pid" --iptables=false --ip-masq=false --bridge=none \
  --insecure-registry "$registry" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 200); do $docker_cli info >/dev/null 2>&1 && break; sleep 0.1; done
$docker_cli info >/dev/null || { tail "$work/dockerd.log"; exit 1; }

ctx=$work/ref
"$root/tests/e2e/make_reference_context.sh" "$ctx" "$registry"

lf_build() { "$lf" build --progress plain "$@" >"$work/lf.out" 2>&1 || { cat "$work/lf.out"; exit 1; }; }
bk_build() { $docker_cli build --network=none "$@" >"$work/bk.out" 2>&1 || { cat "$work/bk.out"; exit 1; }; }
measure() {  # NAME CMD... -> seconds
  local t0; t0=$(now); "$@"; secs "$t0" "$(now)"
}

echo "reference build, 20 MB context, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
lf_cold=$(measure lf_build -t "$registry/bench/lf:cold" "$ctx")
bk_cold=$(measure bk_build -t "$registry/bench/bk:cold" "$ctx")
lf_c=(); bk_c=(); lf_e=(); bk_e=(); lf_p=(); bk_p=()
for i in $(seq 1 "$runs"); do
  lf_c+=("$(measure lf_build -t "$registry/bench/lf:cached" "$ctx")")
  bk_c+=("$(measure bk_build -t "$registry/bench/bk:cached" "$ctx")")
  echo "version edit $i" >"$ctx/data/version.txt"
  lf_e+=("$(measure lf_build -t "$registry/bench/lf:edit$i" "$ctx")")
  bk_e+=("$(measure bk_build -t "$registry/bench/bk:edit$i" "$ctx")")
  lf_p+=("$(measure lf_build -t "$registry/bench/lf-push$i:1" --push "$ctx")")
  bk_push() { bk_build -t "$registry/bench/bk-push$i:1" "$ctx" && $docker_cli push -q "$registry/bench/bk-push$i:1" >/dev/null; }
  bk_p+=("$(measure bk_push)")
done
printf '%-34s %10s %10s %8s\n' "" layerfarm BuildKit ratio
row() { printf '%-34s %9ss %9ss %8s\n' "$1" "$2" "$3" "$(python3 -c "print(f'{$2/$3:.2f}x')")"; }
row "cold build" "$lf_cold" "$bk_cold"
row "fully cached rebuild (median)" "$(median "${lf_c[@]}")" "$(median "${bk_c[@]}")"
row "rebuild after one edit (median)" "$(median "${lf_e[@]}")" "$(median "${bk_e[@]}")"
row "cached rebuild + push (median)" "$(median "${lf_p[@]}")" "$(median "${bk_p[@]}")"

# The coordinator alone: the context is uploaded and fully cached by now.
context=$(curl -fsS "$LAYERFARM_SERVER/v1/builds?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["builds"][0]["request"]["context"])')
python3 "$root/bench/coordinator_bench.py" --server "$LAYERFARM_SERVER" --context "$context" \
  --clients "${CLIENTS:-50}" --seconds "${SECONDS_COORD:-20}"
