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
# Rows:
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
awk -v a="$WORK/half0" -v b="$WORK/half1" '
  { size = $1; path = substr($0, length($1) + 2)
    if (s0 <= s1) { printf "%s\0", path > a; s0 += size } else { printf "%s\0", path > b; s1 += size } }
' "$WORK/sized"
BYTES=$(awk '{ s += $1 } END { printf "%d", s }' "$WORK/sized")
FILES=$(wc -l <"$WORK/sized")

now() { date +%s.%N; }

# time_cmd NAME CMD...: one warm-up run, then RUNS timed runs; prints the median seconds.
time_cmd() {
  "$@" >/dev/null
  local times=()
  for ((i = 0; i < RUNS; i++)); do
    local t0 t1
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((RUNS + 1) / 2))p"
}

openssl_one() { xargs -0 openssl dgst -sha256 <"$WORK/all"; }
openssl_two() {
  xargs -0 openssl dgst -sha256 <"$WORK/half0" >"$WORK/out0" &
  local p0=$!
  xargs -0 openssl dgst -sha256 <"$WORK/half1" >"$WORK/out1"
  wait "$p0"
}

echo "context: $FILES files, $BYTES bytes in $DATA_DIR ($(nproc) cores, $(grep -o -m1 sha_ni /proc/cpuinfo || echo 'no sha_ni'))"

declare -A SECONDS_OF
SECONDS_OF["layerfarm scan (all cores)"]=$(time_cmd "$BENCH" scan "$DATA_DIR" 0)
SECONDS_OF["layerfarm scan (1 thread)"]=$(time_cmd "$BENCH" scan "$DATA_DIR" 1)
SECONDS_OF["openssl dgst (1 process)"]=$(time_cmd openssl_one)
SECONDS_OF["openssl dgst (xargs -P2)"]=$(time_cmd openssl_two)

printf '\n%-30s %10s %10s\n' "tool" "seconds" "GB/s"
for name in "layerfarm scan (all cores)" "layerfarm scan (1 thread)" "openssl dgst (1 process)" \
  "openssl dgst (xargs -P2)"; do
  s=${SECONDS_OF[$name]}
  printf '%-30s %10.3f %10.2f\n' "$name" "$s" "$(echo "$BYTES / $s / 1000000000" | bc -l)"
done

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
