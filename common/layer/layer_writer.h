#pragma once

// writeLayer: turns a directory into an OCI layer blob in one streaming pass.
//
// The directory is walked in a deterministic order (children sorted by byte value, a directory
// before its children), each entry becomes a tar entry (PAX headers where ustar cannot hold a
// long name, a large size or xattrs), the tar stream is hashed (the diff ID), compressed (see
// compression.h), hashed again (the blob digest) and streamed into a BlobWriter, all at once and
// with bounded memory whatever the layer's size.
//
// Kept per entry: type, permission bits (incl. setuid/setgid/sticky), uid/gid (numeric only, no
// user names), mtime in whole seconds, symlink targets, hardlinks between files of the layer (the
// first path in walk order holds the data, later ones link to it), device numbers, and the xattrs
// that matter in images: security.capability and user.* (never the overlay ones).
//
// With overlay_upper, the directory is an overlayfs upper dir and its markers become OCI
// whiteouts (image-spec layer.md): a 0:0 character device `x` becomes an empty file `.wh.x`; a
// directory with xattr trusted.overlay.opaque=y (or user.overlay.opaque=y, userxattr mounts)
// gets a `.wh..wh..opq` entry right after it, before its children; an empty regular file with
// xattr trusted.overlay.whiteout / user.overlay.whiteout (kernel >= 6.7 xattr whiteouts) is also
// a whiteout. overlayfs metacopy/redirect_dir uppers are not supported (mount without them).
//
// With source_date_epoch, every mtime later than it is clamped to it (reproducible builds), so
// the same tree gives the same diff ID and digest whatever the files' recent mtimes.
// The walk does not cross into other filesystems' mount points below `dir` (they are skipped).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"
#include "common/layer/compression.h"

namespace lf::layer {

// A finished layer: what goes into a manifest (media_type, digest, size) and into the image
// config's rootfs.diff_ids (diff_id = SHA-256 of the uncompressed tar).
struct LayerInfo {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  Digest diff_id;
};

struct LayerOptions {
  Compression compression = Compression::kGzip;
  // Clamp mtimes to this many seconds since the epoch (SOURCE_DATE_EPOCH). When unset, the
  // SOURCE_DATE_EPOCH environment variable is NOT consulted; callers decide (see
  // sourceDateEpochFromEnv()).
  std::optional<int64_t> source_date_epoch;
  // Translate overlayfs whiteouts and opaque directories (dir is an overlay upper dir).
  bool overlay_upper = false;
  // Compression threads; 0 = hardware concurrency.
  int threads = 0;
  int gzip_level = 6;
  int zstd_level = 3;
  // When set, every entry gets this uid/gid instead of the file's own (image import, COPY
  // without preserving the builder's ids).
  std::optional<uint32_t> force_uid;
  std::optional<uint32_t> force_gid;
};

// Parses the SOURCE_DATE_EPOCH environment variable: nullopt when unset, an error when set but
// not a non-negative decimal integer.
Result<std::optional<int64_t>> sourceDateEpochFromEnv();

// Writes the layer into `store` (committed, digest-verified) and describes it.
Result<LayerInfo> writeLayer(const std::filesystem::path& dir, const LayerOptions& options,
                             blob::BlobStore& store);

// Same, but streams the compressed blob to `sink` instead (a file, a socket, a test buffer).
Result<LayerInfo> writeLayerTo(const std::filesystem::path& dir, const LayerOptions& options,
                               const Sink& sink);

}  // namespace lf::layer
