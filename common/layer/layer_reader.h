#pragma once

// Applying OCI layers (untrusted input) to directories.
//
// A layer blob is decompressed (gzip / zstd / none, detected by magic bytes), hashed (the diff
// ID of the uncompressed tar, checked against ApplyOptions::expected_diff_id when given) and its
// entries are applied in order:
//   - `.wh.<name>` removes <name> from the lower layers; `.wh..wh..opq` empties its directory of
//     everything the lower layers put there (entries of this layer stay); other `.wh..wh.*` names
//     (aufs metadata) are ignored. With WhiteoutMode::kOverlay they become overlayfs markers
//     instead (0:0 char devices, trusted.overlay.opaque=y), so the directory can serve as an
//     overlay lowerdir.
//   - directories merge with existing ones; any other entry replaces what is there.
//   - regular files (holes of sparse entries are kept), symlinks (targets are data, never
//     followed while unpacking), hardlinks to an entry already present in the target, FIFOs;
//     device nodes only when DevicePolicy::kCreate (default: skipped).
//   - permission bits, mtimes (directories' once their contents are in place), uid/gid when
//     running as root, xattrs security.capability and user.* (overlay ones never).
// Safety: names with ".." or a leading "/" are rejected; every path is resolved by the kernel
// beneath the target with container semantics (see secure_fs.h), so a symlink in the target,
// however it points, cannot make an entry land outside. A malformed, truncated or corrupt blob
// fails with an error naming the entry.
//
// Atomicity contract:
//   - unpackLayers()/unpackLayerFiles() build a NEW directory: they apply every layer into a
//     sibling temporary directory (".<name>.partial-XXXXXX") and rename it to `target` only when
//     all layers applied; on failure the temporary directory is removed and `target` never
//     exists. Use these to materialize images and parent chains.
//   - applyLayer*() modify `target` in place. On failure `target` is left partially modified and
//     must be discarded by the caller; only call them on a directory the caller is itself
//     building atomically (as unpackLayers does).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "common/layer/compression.h"

namespace lf::layer {

enum class WhiteoutMode { kApply, kOverlay };
enum class DevicePolicy { kSkip, kReject, kCreate };

struct ApplyOptions {
  WhiteoutMode whiteouts = WhiteoutMode::kApply;
  DevicePolicy devices = DevicePolicy::kSkip;
  // chown entries to their uid/gid. Only effective when running as root.
  bool preserve_ownership = true;
  // When set, the uncompressed tar must hash to this, or the apply fails with kDataLoss.
  std::optional<Digest> expected_diff_id;
  // Limits against hostile layers.
  uint64_t max_entries = 10'000'000;
};

struct ApplyStats {
  Compression compression = Compression::kNone;
  Digest diff_id;
  uint64_t entries = 0;
  uint64_t tar_bytes = 0;  // uncompressed size
};

Result<ApplyStats> applyLayer(Source source, const std::filesystem::path& target,
                              const ApplyOptions& options);
Result<ApplyStats> applyLayer(blob::BlobReader& reader, const std::filesystem::path& target,
                              const ApplyOptions& options);
Result<ApplyStats> applyLayerFile(const std::filesystem::path& layer_file,
                                  const std::filesystem::path& target, const ApplyOptions& options);

// Atomically creates `target` (which must not exist) from layers applied in order.
// `expected_diff_ids`, when not empty, must have one entry per layer and overrides
// options.expected_diff_id.
Status unpackLayers(blob::BlobStore& store, const std::vector<Digest>& layers,
                    const std::filesystem::path& target, const ApplyOptions& options,
                    const std::vector<Digest>& expected_diff_ids = {});
Status unpackLayerFiles(const std::vector<std::filesystem::path>& layer_files,
                        const std::filesystem::path& target, const ApplyOptions& options);

// Decompresses and hashes a layer without applying it: its diff ID and detected compression.
Result<ApplyStats> inspectLayer(Source source);

}  // namespace lf::layer
