#!/usr/bin/env bash
# Layer pipeline: layerfarm's one-pass layer writer and layer apply against the usual shell
# pipelines, on the same ~1 GiB, ~20,000-file tree, in one run.
#
#   bench/layer_bench.sh [BUILD_DIR] [DATA_DIR]
#
# BUILD_DIR defaults to ./build (it must contain bench/layer_bench); DATA_DIR defaults to
# BUILD_DIR/bench-data/layer and the tree is generated once (seeded, so always the same), then
# reused. Each command runs once untimed to warm the page cache, then RUNS times; the median
# wall time is reported. Peak RSS comes from /usr/bin/time -v.
#
# Rows (all write their output to a file in DATA_DIR):
#   layerfarm gzip   tar + parallel gzip + diff ID (SHA-256 of the tar) + blob SHA-256
#   tar|pigz|sha256  tar -cf - | pigz | tee file | sha256sum  (no diff ID: less work than ours)
#   layerfarm zstd   tar + zstd (workers) + diff ID + blob SHA-256
#   tar|zstd|sha256  tar -cf - | zstd -T0 | tee file | sha256sum
#   layerfarm apply  unpack the gzip layer into a fresh directory (decompress, diff ID, apply)
#   tar -xzf         GNU tar extracting the same blob (gzip -d through tar's pipe)
set -euo pipefail

BUILD_DIR=${1:-build}
DATA_DIR=${2:-$BUILD_DIR/bench-data/layer}
DATA_DIR=${DATA_DIR%/}
BENCH=$BUILD_DIR/bench/layer_bench
RUNS=${RUNS:-3}

if [[ ! -x $BENCH ]]; then
  echo "missing $BENCH: cmake --build $BUILD_DIR --target layer_bench" >&2
  exit 1
fi
for tool in pigz zstd tar python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool not installed" >&2; exit 1; }
done

TREE=$DATA_DIR/tree
if [[ ! -f $DATA_DIR/tree.done ]]; then
  echo "generating $TREE (once) ..."
  rm -rf "$TREE"
  mkdir -p "$TREE"
  python3 - "$TREE" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(20261127)
words = [bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10)))
         for _ in range(5000)]
text = b' '.join(rng.choice(words) + (b'\n' if rng.random() < 0.1 else b'') for _ in range(900000))
noise = rng.randbytes(8 << 20)
def content(size):
    kind = rng.random()
    if kind < 0.45:  # source-like text, compresses ~3x
        off = rng.randrange(0, len(text) - size) if size < len(text) else 0
        return (text * (1 + size // len(text)))[off:off + size]
    if kind < 0.75:  # already compressed data
        off = rng.randrange(0, len(noise) - size) if size < len(noise) else 0
        return (noise * (1 + size // len(noise)))[off:off + size]
    # binaries: random runs and zero runs
    out = bytearray()
    while len(out) < size:
        n = rng.randint(64, 4096)
        out += bytes(n) if rng.random() < 0.4 else noise[rng.randrange(0, len(noise) - n):][:n]
    return bytes(out[:size])
dirs = []
for i in range(40):
    for j in range(25):
        d = os.path.join(root, f'pkg{i:02d}', f'mod{j:02d}')
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
plan = ([rng.randint(1 << 10, 16 << 10) for _ in range(17000)] +
        [rng.randint(16 << 10, 256 << 10) for _ in range(2800)] +
        [rng.randint(1 << 20, 4 << 20) for _ in range(200)])
total = 0
for n, size in enumerate(plan):
    with open(os.path.join(rng.choice(dirs), f'file{n:05d}.dat'), 'wb') as f:
        f.write(content(size))
    total += size
print(f'{len(plan)} files, {total / (1 << 30):.2f} GiB')
PY
  touch "$DATA_DIR/tree.done"
fi
FILES=$(find "$TREE" -type f | wc -l)
BYTES=$(du -sb "$TREE" | cut -f1)
echo "tree: $TREE  files=$FILES  bytes=$BYTES  cores=$(nproc)"

OUT=$DATA_DIR/out
mkdir -p "$OUT"

# run NAME COMMAND...: warm-up, then RUNS timed runs; prints median seconds and peak RSS.
run() {
  local name=$1
  shift
  bash -c "$*" >/dev/null 2>&1 || { echo "$name: command failed: $*" >&2; bash -c "$*"; exit 1; }
  local times=() rss=0
  for ((i = 0; i < RUNS; i++)); do
    local log=$OUT/time.log
    /usr/bin/time -v -o "$log" bash -c "$*" >"$OUT/last.out"
    times+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2, t, ":"); \
      s = 0; for (k = 1; k <= length(t); k++) s = s * 60 + t[k]; print s}' "$log")")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  local mibps
  mibps=$(awk -v b="$BYTES" -v s="$median" 'BEGIN {printf "%.0f", b / 1048576 / s}')
  printf '%-18s %7.2f s  %6s MiB/s  peak RSS %7.1f MiB (largest process of the pipeline)\n' \
    "$name" "$median" "$mibps" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')"
}

echo "--- create: $RUNS runs each, median wall time; MiB/s of tree bytes"
run "layerfarm gzip" "$BENCH write gzip '$TREE' '$OUT/ours.tgz'"
cat "$OUT/last.out"
run "tar|pigz|sha256" "tar -cf - -C '$TREE' . | pigz | tee '$OUT/peer.tgz' | sha256sum"
echo "  sizes: ours $(stat -c %s "$OUT/ours.tgz") bytes, pigz $(stat -c %s "$OUT/peer.tgz") bytes"
run "layerfarm zstd" "$BENCH write zstd '$TREE' '$OUT/ours.tzst'"
cat "$OUT/last.out"
run "tar|zstd|sha256" "tar -cf - -C '$TREE' . | zstd -q -T0 | tee '$OUT/peer.tzst' | sha256sum"
echo "  sizes: ours $(stat -c %s "$OUT/ours.tzst") bytes, zstd $(stat -c %s "$OUT/peer.tzst") bytes"

echo "--- apply the gzip layer into a fresh directory"
run "layerfarm apply" "rm -rf '$OUT/a1' && $BENCH apply '$OUT/ours.tgz' '$OUT/a1'"
run "tar -xzf" "rm -rf '$OUT/a2' && mkdir '$OUT/a2' && tar -xzf '$OUT/ours.tgz' -C '$OUT/a2'"
if diff -r "$OUT/a1" "$OUT/a2" >/dev/null; then
  echo "  both unpacked trees are identical"
else
  echo "  WARNING: unpacked trees differ" >&2
fi
rm -rf "$OUT/a1" "$OUT/a2"
