#!/usr/bin/env bash
# End-to-end tests of the farm with real processes: docker-registry, layerfarm-coordinator and
# two layerfarm-worker daemons on loopback (deploy/local/farm.sh with free ports and a temp dir),
# driven by the real `layerfarm` CLI; images checked with skopeo, umoci and runc.
#
#   tests/e2e/farm_test.sh BUILD_DIR [SCENARIO...]
#
# Scenarios (default: all): reference multistage cache edit second_client kill_worker
# kill_coordinator, tenants (this one configures API clients, so run it in its own group).
# Needs root; exits 77 (ctest: skipped) without it or without the tools.
set -euo pipefail
build=$(cd "${1:?usage: farm_test.sh BUILD_DIR [SCENARIO...]}" && pwd); shift
root=$(cd "$(dirname "$0")/../.." && pwd)
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(reference multistage cache edit second_client kill_worker kill_coordinator)

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (workers use namespaces)"; exit 77; fi
for tool in docker-registry skopeo umoci runc curl python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

work=$(mktemp -d /tmp/lf-e2e-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export LAYERFARM_LOCAL_DIR=$work/farm LAYERFARM_BIN=$build
export LF_REGISTRY_PORT=$(free_port) LF_API_PORT=$(free_port) LF_WORKER_PORT=$(free_port)
export LAYERFARM_SERVER=http://127.0.0.1:$LF_API_PORT
registry=127.0.0.1:$LF_REGISTRY_PORT
lf=$build/cli/layerfarm
farm=$root/deploy/local/farm.sh

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -d "$work/farm/logs" ]; then
    for f in "$work"/farm/logs/*.log; do echo "---- $f (last 40 lines)"; tail -40 "$f"; done
  fi
  "$farm" stop >/dev/null 2>&1 || true
  for id in $(runc list -q 2>/dev/null | grep '^lf-e2e-' || true); do runc delete -f "$id" || true; done
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { local what=$1; shift; "$@" || fail "$what"; echo "ok: $what"; }
api() { curl -fsS ${LAYERFARM_TOKEN:+-H "Authorization: Bearer $LAYERFARM_TOKEN"} "$LAYERFARM_SERVER$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
metric() {  # NAME{LABELS} -> value (0 when absent)
  api /metrics | python3 -c '
import sys
name = sys.argv[1]; total = 0.0
for line in sys.stdin:
    if line.startswith(name): total += float(line.rsplit(" ", 1)[1])
print(int(total))' "$1"
}

# Builds CONTEXT with extra args; prints the build id; the digest goes to $work/last.digest.
build_image() {
  local out=$work/build.out
  if ! "$lf" build --progress plain "$@" >"$out" 2>&1; then
    cat "$out"; return 1
  fi
  cat "$out" >&2
  grep -o 'sha256:[0-9a-f]\{64\}' "$out" | tail -1 >"$work/last.digest"
  api "/v1/builds?limit=1" | json 'd["builds"][0]["id"]'
}

latest_build() {  # the newest build's id, or "" (never fails: for polling loops under set -e)
  api "/v1/builds?limit=1" 2>/dev/null |
    python3 -c 'import json,sys; b=json.load(sys.stdin)["builds"]; print(b[0]["id"] if b else "")' 2>/dev/null || true
}

steps_run() {  # BUILD_ID -> number of layer steps that were not cache hits
  api "/v1/builds/$1" | json 'sum(1 for s in d["steps"] if s["kind"] in ("RUN","COPY","ADD") and not s["cached"])'
}

run_image() {  # REF -> what the image prints when run under runc
  local name=lf-e2e-$RANDOM dir=$work/run-$RANDOM
  mkdir -p "$dir"
  skopeo copy -q --src-tls-verify=false "docker://$1" "oci:$dir/layout:img" >/dev/null
  umoci unpack --image "$dir/layout:img" "$dir/bundle" >/dev/null
  python3 - "$dir/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
  (cd "$dir/bundle" && runc run "$name")
  runc delete -f "$name" >/dev/null 2>&1 || true
}

make_reference_context() {  # DIR: the issue's reference build, a 20 MB context
  "$root/tests/e2e/make_reference_context.sh" "$1" "$registry"
}

scenario_reference() {
  make_reference_context "$work/ref"
  local ref=$registry/team/ref:1 id
  id=$(build_image -t "$ref" --push "$work/ref") || fail "reference build"
  local digest; digest=$(cat "$work/last.digest")
  cp "$work/last.digest" "$work/ref.digest"
  check "reference build succeeded" test "$(api "/v1/builds/$id" | json 'd["state"]')" = succeeded
  check "skopeo sees the digest the farm reported" \
    test "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$ref")" = "$digest"
  local want_sum; want_sum=$(sha256sum "$work/ref/data/blob.bin" | cut -c1-16)
  local got; got=$(run_image "$ref")
  check "the image runs and prints what it should ($got)" \
    test "$got" = "app in /opt/app: version 1, $want_sum"
  "$lf" history --no-trunc "$ref" >"$work/history.txt"
  check "history lists the RUN that made the checksum" grep -q 'sha256sum /opt/app/data/blob.bin' "$work/history.txt"
}

scenario_multistage() {
  local ref=$registry/demo/hello:1 id
  id=$(build_image -t "$ref" --push --build-arg "BASE=$registry/library/busybox:latest" \
       "$root/examples/hello-farm") || fail "multi-stage build"
  local got; got=$(run_image "$ref")
  check "multi-stage image prints its page" grep -q "Hello from the farm, layerfarm user!" <<<"$got"
  check "dockerignored NOTES.md did not reach the build" grep -q "built from 2 source files" <<<"$got"
}

scenario_cache() {
  [ -d "$work/ref" ] || scenario_reference
  local before id; before=$(metric layerfarm_jobs_submitted_total)
  id=$(build_image -t "$registry/team/ref:1" --push "$work/ref") || fail "cached rebuild"
  check "unchanged rebuild ran no step" test "$(steps_run "$id")" -eq 0
  check "unchanged rebuild dispatched zero jobs" test "$(metric layerfarm_jobs_submitted_total)" -eq "$before"
  check "a fully cached rebuild gives the same image digest" \
    test "$(cat "$work/last.digest")" = "$(cat "$work/ref.digest")"
}

scenario_edit() {
  [ -d "$work/ref" ] || scenario_reference
  echo "version 2" >"$work/ref/data/version.txt"
  local id; id=$(build_image -t "$registry/team/ref:2" --push "$work/ref") || fail "edited rebuild"
  local states
  states=$(api "/v1/builds/$id" | json '" ".join(("C" if s["cached"] else "R") + ":" + s["kind"] for s in d["steps"] if s["kind"] in ("RUN","COPY","ADD"))')
  check "one-file edit rebuilds from the COPY on ($states)" test "$states" = "C:RUN R:COPY R:RUN"
  check "the edited image prints version 2" grep -q "version 2" <<<"$(run_image "$registry/team/ref:2")"
}

scenario_second_client() {
  [ -d "$work/ref" ] || scenario_reference
  # A second client: its own copy of the context in another directory, its own CLI process.
  cp -a "$work/ref" "$work/ref-client2"
  local id; id=$(build_image -t "$registry/team/ref:client2" "$work/ref-client2") || fail "second client"
  check "a second client's build of the same Dockerfile is all cache hits" test "$(steps_run "$id")" -eq 0
}

scenario_kill_worker() {
  mkdir -p "$work/slow"
  cat >"$work/slow/Dockerfile" <<DOCKERFILE
FROM $registry/library/busybox:latest
RUN echo start-\$RANDOM; sleep 8; echo slow-step-done > /done.txt
DOCKERFILE
  local before; before=$(latest_build)
  "$lf" build --progress plain -t "$registry/team/slow:1" --push "$work/slow" >"$work/slow.out" 2>&1 &
  local cli=$!
  # Wait until the step runs somewhere, then kill -9 that worker.
  local deadline=$(( $(date +%s) + 30 )) worker=""
  while [ -z "$worker" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the slow step never started"
    local latest; latest=$(latest_build)
    [ -z "$latest" ] || [ "$latest" = "$before" ] ||
      worker=$(api "/v1/builds/$latest" | json 'next((s["worker"] for s in d["steps"] if s["state"]=="running"), "")' || true)
    sleep 0.2
  done
  local n=${worker##*w}
  kill -9 "$(cat "$work/farm/run/worker-$n.pid")"
  echo "killed worker $worker"
  wait "$cli" || { cat "$work/slow.out"; fail "the build did not survive the worker's death"; }
  local id; id=$(api "/v1/builds?limit=1" | json 'd["builds"][0]["id"]')
  local ran_on; ran_on=$(api "/v1/builds/$id" | json '[s["worker"] for s in d["steps"] if s["kind"]=="RUN"][0]')
  check "the job moved to the other worker ($worker -> $ran_on)" test "$ran_on" != "$worker"
  "$farm" start >/dev/null  # restarts the killed worker
}

scenario_tenants() {
  mkdir -p "$work/ta" "$work/tb"
  printf 'FROM %s/library/busybox:latest\nRUN echo shared-prefix > /prefix.txt\nRUN echo team-a > /team.txt\n' "$registry" >"$work/ta/Dockerfile"
  printf 'FROM %s/library/busybox:latest\nRUN echo shared-prefix > /prefix.txt\nRUN echo team-b > /team.txt\n' "$registry" >"$work/tb/Dockerfile"
  local id
  id=$(LAYERFARM_TOKEN=team-a-token build_image -t "$registry/team-a/app:1" --push "$work/ta") || fail "team-a build"
  check "team-a's build ran on the farm as tenant team-a" test "$(api "/v1/builds/$id" | json 'd["tenant"]')" = team-a
  local seen
  seen=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer team-b-token" "$LAYERFARM_SERVER/v1/builds/$id")
  check "team-b cannot see team-a's build (HTTP $seen)" test "$seen" = 404
  if LAYERFARM_TOKEN=team-b-token "$lf" logs "$id" >/dev/null 2>&1; then fail "team-b read team-a's build log"; fi
  id=$(LAYERFARM_TOKEN=team-b-token build_image -t "$registry/team-b/app:1" --push "$work/tb") || fail "team-b build"
  local states
  states=$(api "/v1/builds/$id" | json '" ".join("C" if s["cached"] else "R" for s in d["steps"] if s["kind"]=="RUN")')
  check "team-b reuses team-a's layer for the shared prefix and runs its own step ($states)" test "$states" = "C R"
  local out=$work/refused.out
  if LAYERFARM_TOKEN=team-b-token "$lf" build --progress plain -t "$registry/team-a/app:2" --push "$work/tb" >"$out" 2>&1; then
    fail "team-b pushed into team-a's namespace"
  fi
  check "pushing into another team's namespace is refused, naming it" grep -q "team-a" "$out"
  if LAYERFARM_TOKEN=team-b-token "$lf" build --progress plain -t "$registry/app:1" --push "$work/tb" >"$out" 2>&1; then
    fail "an ordinary client pushed to library/"
  fi
  check "a name without an account goes to library/, which ordinary clients may not push to" grep -q "library" "$out"
  id=$(LAYERFARM_TOKEN=ops-token build_image -t "$registry/app:1" --push "$work/tb") || fail "admin push to library/"
  check "an admin may push to library/" skopeo inspect --tls-verify=false --format "{{.Name}}" "docker://$registry/library/app:1"
  if LAYERFARM_TOKEN= "$lf" build --progress plain "$work/tb" >"$out" 2>&1; then
    fail "a build without a token was accepted"
  fi
  check "a client without a token is refused" grep -qi "token\|unauthenticated\|401" "$out"
}

scenario_kill_coordinator() {
  mkdir -p "$work/slow2"
  cat >"$work/slow2/Dockerfile" <<DOCKERFILE
FROM $registry/library/busybox:latest
RUN echo first > /first.txt
RUN sleep 6; echo second > /second.txt
DOCKERFILE
  # Something finished before the crash: a build and its cache entries.
  mkdir -p "$work/pre"
  printf 'FROM %s/library/busybox:latest\nRUN echo before-the-crash > /pre.txt\n' "$registry" >"$work/pre/Dockerfile"
  build_image -t "$registry/team/pre:1" "$work/pre" >/dev/null || fail "build before the crash"
  api "/v1/builds?limit=100" | json '"\n".join(sorted(b["id"] for b in d["builds"] if b["state"]=="succeeded"))' >"$work/finished.before"
  local entries_before; entries_before=$(api /v1/cache/stats | json 'd["entries"]')
  "$lf" build --progress plain -t "$registry/team/slow2:1" "$work/slow2" >"$work/slow2.out" 2>&1 &
  local cli=$!
  local deadline=$(( $(date +%s) + 30 )) id="" state=""
  while [ "$state" != running ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the sleeping step never started"
    id=$(latest_build)
    [ -z "$id" ] || state=$(api "/v1/builds/$id" | json 'next((s["state"] for s in d["steps"] if "sleep" in s["instruction"]), "")' || true)
    sleep 0.2
  done
  kill -9 "$(cat "$work/farm/run/coordinator.pid")"
  wait "$cli" || true  # the CLI loses its server
  "$farm" start >/dev/null
  check "there was a finished build and a cache entry before the crash" \
    test -s "$work/finished.before" -a "$entries_before" -gt 0
  api "/v1/builds?limit=100" | json '"\n".join(sorted(b["id"] for b in d["builds"] if b["state"]=="succeeded"))' >"$work/finished.after"
  check "every finished build survived the crash" \
    test -z "$(comm -23 "$work/finished.before" "$work/finished.after")"
  check "no cache entry was lost" test "$(api /v1/cache/stats | json 'd["entries"]')" -ge "$entries_before"
  # The interrupted build resumes (or fails with a stated reason): wait for it to finish.
  deadline=$(( $(date +%s) + 60 ))
  while :; do
    state=$(api "/v1/builds/$id" | json 'd["state"]')
    case $state in succeeded|failed|cancelled) break ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || fail "the interrupted build neither resumed nor failed (state $state)"
    sleep 0.2
  done
  local reason; reason=$(api "/v1/builds/$id" | json 'd["failure_reason"]')
  echo "interrupted build ended $state ${reason:+($reason)}"
  if [ "$state" = succeeded ]; then
    check "the resumed build reused the step finished before the crash" \
      test "$(api "/v1/builds/$id" | json '[s["cached"] for s in d["steps"] if "first" in s["instruction"]][0]')" = True
  else
    check "the failed build states why" test -n "$reason"
  fi
}

if [[ " ${scenarios[*]} " == *" tenants "* ]]; then
  # Three API clients: two teams owning their namespace, and an admin.
  export LF_COORDINATOR_EXTRA='clients:
  - {token: team-a-token, tenant: team-a, namespaces: [team-a]}
  - {token: team-b-token, tenant: team-b, namespaces: [team-b]}
  - {token: ops-token, tenant: ops, admin: true}'
  export LAYERFARM_TOKEN=ops-token
fi
"$farm" start
for s in "${scenarios[@]}"; do
  echo "== $s"
  "scenario_$s"
done
echo "PASS: ${scenarios[*]}"
