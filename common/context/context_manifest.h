#pragma once

// ContextManifest: a build context described by its entries and the SHA-256 of each regular
// file's bytes, without the bytes. It is how a context travels since the incremental upload
// (docs/http-api.md, "Contexts"):
//
//   1. the CLI scans the context (hashing only files its stat cache does not vouch for), encodes
//      the manifest and POSTs it; the coordinator stores it as a blob named by the SHA-256 of the
//      encoded bytes (the context's id) and answers with the file digests its blob store lacks;
//   2. the CLI sends just those files (one tar whose entries are named "sha256:<hex>"), each
//      stored as its own content-addressed blob and verified on arrival;
//   3. builds name the context by the manifest's digest. The coordinator derives the
//      ContextSnapshot (cache keys) from the manifest without reading a file's bytes, except the
//      Dockerfile and the ignore file; workers materialize the tree from the manifest and the
//      file blobs (worker/layer_store), where a context used to be a tar unpacked as a layer.
//
// A one-file edit thus sends one file, not the context. File contents are deduplicated across
// contexts, clients and tenants by digest.
//
// Encoding (encodeContextManifest, the canonical form; parseContextManifest accepts exactly the
// JSON structure below, whitespace aside, and refuses unknown keys):
//
//   {"mediaType":"application/vnd.layerfarm.context.manifest.v1+json","entries":[
//   {"path":"Dockerfile","type":"file","mode":420,"mtime":1700000000,"size":120,"digest":"sha256:..."},
//   {"path":"data","type":"dir","mode":493,"mtime":1700000000},
//   {"path":"data/link","type":"symlink","mode":511,"mtime":1700000000,"target":"blob.bin"},
//   {"path":"p","type":"fifo","mode":420,"mtime":1700000000},
//   {"path":"d","type":"char","mode":420,"mtime":1700000000,"major":1,"minor":3}
//   ]}
//
// One entry per line, keys in that order; "size" and "digest" only for "file" ("size" for
// "symlink" is the target's length and is not written); "target" only for "symlink"; "major"
// and "minor" only for "char" and "block". Types: file, dir, symlink, fifo, char, block. Entries
// are every entry of snapshot.entries() and snapshot.builderOnly() merged, sorted by path in byte
// order, unique. Paths as in ContextEntry (relative, '/'-separated, no "./", no trailing '/', no
// "..", not empty). mtime is whole seconds (what the context tar carried; COPY keeps it); it is
// part of the manifest's digest but, as in the tar, of no cache key.
//
// Validation (parseContextManifest) refuses, naming the entry ("context manifest: entry 3
// \"../x\": path leaves the context"): malformed JSON, unknown or missing keys, a wrong
// mediaType, paths that are absolute, contain "." or ".." components, are empty, longer than
// 4096 bytes, or have a component of the layer whiteout form (".wh.*"); entries out of order or
// twice; an entry below a non-directory entry; a file without a valid sha256 digest; modes above
// 07777; a symlink target empty or longer than 4096 bytes; more than kMaxManifestEntries entries
// or more than kMaxManifestBytes bytes. A parent directory need not be listed (it is then created
// with mode 0755 and mtime 0, as a tar unpack would).
//
// Thread-safety: free functions over caller-owned values.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/context/context_snapshot.h"
#include "common/digest/digest.h"

namespace lf::context {

inline constexpr std::string_view kContextManifestMediaType =
    "application/vnd.layerfarm.context.manifest.v1+json";

inline constexpr size_t kMaxManifestBytes = size_t{64} << 20;
inline constexpr size_t kMaxManifestEntries = 1'000'000;

// One entry: what ContextSnapshot records (ContextEntry) plus the mtime a worker gives the file.
struct ManifestEntry {
  ContextEntry entry;
  int64_t mtime = 0;  // seconds since the epoch

  friend bool operator==(const ManifestEntry&, const ManifestEntry&) = default;
};

struct ContextManifest {
  std::vector<ManifestEntry> entries;  // sorted by entry.path, unique

  friend bool operator==(const ContextManifest&, const ContextManifest&) = default;
};

// --- Writing (the CLI) ---

// The manifest of `snapshot` (entries() and builderOnly() merged in path order). `mtime_of` gives
// each entry's mtime (whole seconds), e.g. from the stat the scan made; it is called once per entry.
// Fails (kInvalidArgument naming the path) on a path or symlink target that is not valid UTF-8:
// JSON carries only UTF-8, as pax tar headers do ("rename the file or list it in .dockerignore").
Result<ContextManifest> manifestOf(const ContextSnapshot& snapshot,
                                   const std::function<int64_t(const ContextEntry&)>& mtime_of);

// The canonical bytes described above. Deterministic: equal manifests give equal bytes.
std::string encodeContextManifest(const ContextManifest& manifest);

// --- Reading (the coordinator and the workers) ---

// Parses and validates `bytes` as described above. Errors are kInvalidArgument (or
// kResourceExhausted over the limits) with a message naming the entry.
Result<ContextManifest> parseContextManifest(std::string_view bytes);

// The distinct digests of the manifest's regular files, sorted.
std::vector<Digest> manifestFileDigests(const ContextManifest& manifest);

// The snapshot the plan keys COPY/ADD on, split exactly as scanContext() and readContextTar()
// split it: the Dockerfile (`dockerfile`, its path in the context) and the ignore file
// ("<dockerfile>.dockerignore", else ".dockerignore") go to builderOnly() when the ignore file
// excludes them. `read_file` returns the bytes of a regular file by digest (the ignore file;
// at most DockerIgnore::kMaxFileBytes, larger is refused before it is called).
Result<ContextSnapshot> snapshotOfManifest(
    const ContextManifest& manifest, std::string_view dockerfile,
    const std::function<Result<std::string>(const Digest& digest)>& read_file);

}  // namespace lf::context
