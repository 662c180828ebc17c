#!/usr/bin/env bash
# The local all-in-one farm: a registry, the coordinator and two workers on loopback.
#
#   deploy/local/farm.sh start     starts everything (idempotent), seeds a busybox base image
#   deploy/local/farm.sh stop      drains the workers, stops the coordinator and the registry
#   deploy/local/farm.sh status    what runs, and the farm's workers as the coordinator sees them
#
# Environment (all optional):
#   LAYERFARM_LOCAL_DIR   where state, blobs, logs and pid files live (default /tmp/layerfarm-local)
#   LAYERFARM_BIN         directory holding layerfarm, layerfarm-coordinator, layerfarm-worker
#                         (default: build/ of this checkout)
#   LF_REGISTRY_PORT, LF_API_PORT, LF_WORKER_PORT   (defaults 5000, 7070, 7071)
#   LF_WORKERS            number of workers (default 2)
#   LF_COORDINATOR_EXTRA  YAML appended to coordinator.yaml (e.g. API `clients`; then set
#                         LAYERFARM_TOKEN to one of their tokens for this script's own checks)
# Needs root (the workers use namespaces, overlayfs and cgroups).
# After `start`: LAYERFARM_SERVER=http://127.0.0.1:$LF_API_PORT, and the registry at
# 127.0.0.1:$LF_REGISTRY_PORT holds library/busybox:latest for examples to build on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${LAYERFARM_LOCAL_DIR:-/tmp/layerfarm-local}
bin=${LAYERFARM_BIN:-$root/build}
registry_port=${LF_REGISTRY_PORT:-5000}
api_port=${LF_API_PORT:-7070}
worker_port=${LF_WORKER_PORT:-7071}
workers=${LF_WORKERS:-2}

lf_cli=$bin/cli/layerfarm
lf_coordinator=$bin/coordinator/server/layerfarm-coordinator
lf_worker=$bin/worker/layerfarm-worker
[ -x "$lf_cli" ] || lf_cli=$bin/layerfarm
[ -x "$lf_coordinator" ] || lf_coordinator=$bin/layerfarm-coordinator
[ -x "$lf_worker" ] || lf_worker=$bin/layerfarm-worker

log() { echo "farm: $*"; }
auth=()
[ -z "${LAYERFARM_TOKEN:-}" ] || auth=(-H "Authorization: Bearer $LAYERFARM_TOKEN")
die() { echo "farm: $*" >&2; exit 1; }

running() {  # NAME -> 0 when its pid file names a live process
  local pid_file=$dir/run/$1.pid
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

wait_for() {  # WHAT URL SECONDS
  local deadline=$(( $(date +%s) + $3 ))
  until curl -fs "$2" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$1 did not come up within $3 s (logs: $dir/logs)"
    sleep 0.1
  done
}

start_process() {  # NAME COMMAND... : runs in the background, logs to logs/NAME.log
  local name=$1; shift
  if running "$name"; then
    log "$name already running (pid $(cat "$dir/run/$name.pid"))"
    return
  fi
  "$@" >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/run/$name.pid"
  log "$name started (pid $!, log $dir/logs/$name.log)"
}

write_configs() {
  [ -f "$dir/worker-token" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$dir/worker-token"
  cat >"$dir/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $dir/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$registry_port}
YAML
  cat >"$dir/coordinator.yaml" <<YAML
listen: 127.0.0.1:$api_port
worker_listen: 127.0.0.1:$worker_port
data_dir: $dir/coordinator
blob_store: {directory: $dir/blobs}
worker_token_file: $dir/worker-token
registry: {insecure: ["127.0.0.1:$registry_port", "localhost:$registry_port"]}
heartbeat_interval_ms: 1000
scheduler: {lease_ms: 30000, heartbeat_timeout_ms: 5000, max_attempts: 3}
${LF_COORDINATOR_EXTRA:-}
YAML
  local i
  for i in $(seq 1 "$workers"); do
    cat >"$dir/worker-$i.yaml" <<YAML
coordinator: ws://127.0.0.1:$worker_port/v1/workers
token_file: $dir/worker-token
worker_id: local-w$i
slots: 2
state_dir: $dir/worker-$i
blob_store: {directory: $dir/blobs}
cgroup_parent: layerfarm-local-$api_port/w$i
layer_budget_bytes: 10737418240
default_limits: {timeout_ms: 3600000}
reconnect_backoff_min_ms: 200
reconnect_backoff_max_ms: 2000
YAML
  done
}

seed_base() {  # library/busybox:latest, made offline from the busybox-static package
  local ref=127.0.0.1:$registry_port/library/busybox:latest
  if curl -fs -o /dev/null \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://127.0.0.1:$registry_port/v2/library/busybox/manifests/latest"; then
    return
  fi
  rm -rf "$dir/busybox-rootfs"
  "$root/tests/data/make-busybox-rootfs.sh" "$dir/busybox-rootfs"
  "$lf_cli" import "$dir/busybox-rootfs" -t "$ref" --push \
    --insecure-registry "127.0.0.1:$registry_port" >/dev/null
  log "seeded $ref"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "needs root (workers use namespaces, overlayfs and cgroups)"
  for b in "$lf_cli" "$lf_coordinator" "$lf_worker"; do
    [ -x "$b" ] || die "$b not built (cmake --build build)"
  done
  mkdir -p "$dir/run" "$dir/logs" "$dir/blobs"
  write_configs
  start_process registry docker-registry serve "$dir/registry.yml"
  wait_for registry "http://127.0.0.1:$registry_port/v2/" 20
  seed_base
  start_process coordinator "$lf_coordinator" --config "$dir/coordinator.yaml"
  wait_for coordinator "http://127.0.0.1:$api_port/readyz" 30
  local i
  for i in $(seq 1 "$workers"); do
    start_process "worker-$i" "$lf_worker" --config "$dir/worker-$i.yaml"
  done
  local deadline=$(( $(date +%s) + 30 ))
  until [ "$(curl -fs "${auth[@]}" "http://127.0.0.1:$api_port/v1/workers" | grep -o '"id"' | wc -l)" -ge "$workers" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "workers did not register within 30 s (logs: $dir/logs)"
    sleep 0.1
  done
  log "up: LAYERFARM_SERVER=http://127.0.0.1:$api_port, registry 127.0.0.1:$registry_port, $workers workers"
}

stop_process() {  # NAME SIGNAL SECONDS
  local pid_file=$dir/run/$1.pid
  [ -f "$pid_file" ] || return 0
  local pid; pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$2" "$pid" 2>/dev/null || true
    local deadline=$(( $(date +%s) + $3 ))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        log "$1 still running after $3 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
    log "$1 stopped"
  fi
  rm -f "$pid_file"
}

stop() {
  local f
  for f in "$dir"/run/worker-*.pid; do
    [ -e "$f" ] || continue
    stop_process "$(basename "$f" .pid)" TERM 60
  done
  stop_process coordinator TERM 30
  stop_process registry TERM 10
}

status() {
  local f
  for f in "$dir"/run/*.pid; do
    [ -e "$f" ] || continue
    local name; name=$(basename "$f" .pid)
    if running "$name"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: dead"; fi
  done
  curl -fs "${auth[@]}" "http://127.0.0.1:$api_port/v1/workers" || echo "coordinator: not answering"
  echo
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
