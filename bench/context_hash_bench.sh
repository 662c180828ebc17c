#!/usr/bin/env bash
# Build-context hashing: layerfarm's scanContext() against `openssl dgst -sha256` on the same
# ~1 GiB, 10,000-file context, in one run.
#
#   bench/context_hash_bench.sh [BUILD_DIR] [DATA_DIR]
#
# BUILD_DIR defaults to ./build (it must contain bench/context_hash_bench); DATA_DIR defaults to
# BUILD_DIR/bench-data/context and is generated once, then reused. The page cache is left warm
# on purpose: every tool first runs once untimed to warm it, then 3 timed runs, and the median is
# reported, so all tools read from memory and the comparison is of hashing, not of the disk.
#
# Columns: median wall seconds and GB/s, median CPU seconds (user + system, children included)
# and GB per CPU-second. Rows:
#   layerfarm scan (all cores)   walk + .dockerignore + SHA-256 of every file, all cores
#   layerfarm scan (1 thread)    the same on one core
#   openssl dgst (1 process)     every file through one `openssl dgst -sha256` (xargs)
#   openssl dgst (xargs -P2)     two openssl processes at once over two size-balanced halves
set -euo pipefail

BUILD_DIR=${1:-build}
DATA_DIR=${2:-$BUILD_DIR/bench-data/context}
DATA_DIR=${DATA_DIR%/}
BENCH=$BUILD_DIR/bench/context_hash_bench
RUNS=3

if [[ ! -x $BENCH ]]; then
  echo "missing $BENCH: cmake --build $BUILD_DIR --target context_hash_bench" >&2
  exit 1
fi
command -v openssl >/dev/null || { echo "openssl not installed" >&2; exit 1; }

"$BENCH" generate "$DATA_DIR"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# File lists: all files, and two halves balanced by size (largest first, each file to the lighter
# half), so the two-process openssl run is not starved by one half holding all the big files.
find "$DATA_DIR" -type f -name '*.bin' -printf '%s %p\n' | sort -rn >"$WORK/sized"
cut -d' ' -f2- "$WORK/sized" | tr '\n' '\0' >"$WORK/all"
awk -v a="$WORK/half0.txt" -v b="$WORK/half1.txt" '
  { size = $1; path = substr($0, length($1) + 2)
    if (s0 <= s1) { print path > a; s0 += size } else { print path > b; s1 += size } }
' "$WORK/sized"
tr '\n' '\0' <"$WORK/half0.txt" >"$WORK/half0"
tr '\n' '\0' <"$WORK/half1.txt" >"$WORK/half1"
BYTES=$(awk '{ s += $1 } END { printf "%d", s }' "$WORK/sized")
FILES=$(wc -l <"$WORK/sized")

# time_cmd CMD...: one warm-up run, then RUNS timed runs. Prints "<median wall s> <median CPU s>"
# where CPU is user + system time of the command and all its children: on a shared, loaded
# machine wall time mostly measures the other tenants, CPU time measures the work.
time_cmd() {
  "$@" >/dev/null
  local walls=() cpus=() line
  for ((i = 0; i < RUNS; i++)); do
    line=$({ TIMEFORMAT='%R %U %S'; time "$@" >/dev/null; } 2>&1 | tail -1)
    read -r real user sys <<<"$line"
    walls+=("$real")
    cpus+=("$(echo "$user + $sys" | bc -l)")
  done
  local mid=$(((RUNS + 1) / 2))
  echo "$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "${mid}p")" \
    "$(printf '%s\n' "${cpus[@]}" | sort -g | sed -n "${mid}p")"
}

openssl_one() { xargs -0 openssl dgst -sha256 <"$WORK/all"; }
openssl_two() {
  xargs -0 openssl dgst -sha256 <"$WORK/half0" >"$WORK/out0" &
  local p0=$!
  xargs -0 openssl dgst -sha256 <"$WORK/half1" >"$WORK/out1"
  wait "$p0"
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "context: $FILES files, $BYTES bytes in $DATA_DIR ($(nproc) cores, $(grep -o -m1 sha_ni /proc/cpuinfo || echo 'no sha_ni'))"

declare -A SECONDS_OF
SECONDS_OF["layerfarm scan (all cores)"]=$(time_cmd "$BENCH" scan "$DATA_DIR" 0)
SECONDS_OF["layerfarm scan (1 thread)"]=$(time_cmd "$BENCH" scan "$DATA_DIR" 1)
SECONDS_OF["openssl dgst (1 process)"]=$(time_cmd openssl_one)
SECONDS_OF["openssl dgst (xargs -P2)"]=$(time_cmd openssl_two)

printf '\n%-30s %9s %8s %9s %12s\n' "tool" "wall s" "GB/s" "CPU s" "GB/CPU-s"
for name in "layerfarm scan (all cores)" "layerfarm scan (1 thread)" "openssl dgst (1 process)" \
  "openssl dgst (xargs -P2)"; do
  read -r wall cpu <<<"${SECONDS_OF[$name]}"
  printf '%-30s %9.3f %8.2f %9.3f %12.2f\n' "$name" "$wall" \
    "$(echo "$BYTES / $wall / 1000000000" | bc -l)" "$cpu" "$(echo "$BYTES / $cpu / 1000000000" | bc -l)"
done
echo "(load average before the run: $LOAD; wall figures are only meaningful on an idle machine)"

# Same answers: every per-file digest must equal openssl's.
"$BENCH" list "$DATA_DIR" | sort >"$WORK/ours"
xargs -0 openssl dgst -sha256 -r <"$WORK/all" | sed 's/ \*/ /' | sort >"$WORK/theirs"
if cmp -s "$WORK/ours" "$WORK/theirs"; then
  echo "per-file digests identical to openssl's for all $FILES files"
else
  echo "MISMATCH between layerfarm and openssl digests:" >&2
  diff "$WORK/ours" "$WORK/theirs" | head >&2
  exit 1
fi
