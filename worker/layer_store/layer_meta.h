#pragma once

// The per-layer metadata file of the LayerStore (l/<name>/meta) and the size walk.
//
// The metadata is a few "key value" lines after a format line, small enough to read in one
// call. It is written inside a staging directory that is published by a rename, so it needs no
// atomic-replace dance of its own; it is never rewritten afterwards (the last use time is the
// file's mtime, see layer_store.h). Parsing is strict: a file that is not exactly what
// formatLayerMeta() writes is corrupt, and the store deletes its layer. Format 2 adds the boot id
// of the publish (layer_store.h, "Durability"); format 1, without it, is still read (boot_id
// empty: such a layer was synced before it was published; formatLayerMeta writes format 1 for
// an empty boot id).

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::worker {

struct LayerMeta {
  Digest diff_id;
  Digest digest;  // the blob it was unpacked from; may be empty for an adopted layer
  std::string media_type;
  uint64_t bytes = 0;
  // /proc/sys/kernel/random/boot_id at publish time; empty for a format-1 file. No whitespace.
  std::string boot_id;
};

std::string formatLayerMeta(const LayerMeta& meta);
// `where` names the file in errors.
Result<LayerMeta> parseLayerMeta(std::string_view text, std::string_view where);

// Reads and parses `name` beneath `dir_fd`; also returns the file's mtime in nanoseconds.
struct LayerMetaFile {
  LayerMeta meta;
  int64_t mtime_ns = 0;
};
Result<LayerMetaFile> readLayerMeta(int dir_fd, const std::string& name, std::string_view where);
// Creates `name` beneath `dir_fd` (which must not exist) holding `meta`.
Status writeLayerMeta(int dir_fd, const std::string& name, const LayerMeta& meta,
                      std::string_view where);

// Sum of the sizes of the regular files and symlinks beneath `dir` (hard-linked inodes counted
// once), without following symlinks.
Result<uint64_t> treeBytes(const std::filesystem::path& dir);

}  // namespace lf::worker
