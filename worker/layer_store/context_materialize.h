#pragma once

// Materializing a build context from its manifest (common/context/context_manifest.h): the
// worker-side half of the incremental context upload.
//
// A COPY/ADD step names its context by a LayerRef whose media type is
// context::kContextManifestMediaType and whose digest and diff ID are both the manifest blob's
// digest. LayerStore::acquire() meets such a ref like any missing layer: it reads the manifest
// (readContextManifest), builds the tree in a staging dir (materializeContext) and publishes it
// under the diff ID, so a context is fetched once per worker and shared, pinned, evicted and
// recovered exactly like an unpacked layer. The tree is the one an unpacked context tar gives:
// the same entries, modes (setuid/setgid/sticky included), mtimes (whole seconds; atimes are left
// alone), symlink targets, uid/gid 0 when running as root; parent directories the manifest does
// not list are created 0755 with mtime 0; device nodes follow the DevicePolicy (skipped by
// default, as in layers). The COPY executor cannot tell the two apart.
//
// Regular files get their bytes from the blob named by their content digest, and those bytes are
// verified against it whatever the store: a blob file's bytes are only as good as the disk they
// sit on, and the stores verify on every read, so we do too. From a DirectoryBlobStore the blob
// file is opened directly (blobPath) and read, hashed and written in one pass, or, where the
// filesystem can share extents (FICLONE: btrfs, XFS), reflinked and the clone read back and
// hashed; a damaged blob is then read once through the store so that it lands in quarantine.
// From any other store the BlobReader streams and verifies. The empty file needs no blob.
//
// Safety: every create is made relative to an open parent directory fd with O_NOFOLLOW / O_EXCL
// / mkdirat / symlinkat / mknodat, and every directory on the way is opened with O_NOFOLLOW, so
// nothing is created, changed or followed outside `target_fd`, whatever the manifest says. The
// manifest is validated by parseContextManifest (no "..", no duplicates, nothing below a
// non-directory), and materializeContext checks again on its own: a second entry at a path
// already created, or an entry below something that is not a directory, is kInvalidArgument.
//
// Errors name the entry: a file blob missing from the store is kNotFound naming the path and the
// digest; a file blob whose size differs from the entry, or whose bytes do not hash to the
// digest, is kDataLoss naming both; a device under DevicePolicy::kReject is kPermissionDenied. On
// error the target holds a partial tree: the caller discards it (the layer store deletes its
// staging dir). Durability is the caller's: nothing here syncs (the layer store syncs once per
// publish or per background flush, see "Durability" in layer_store.h).
//
// Thread-safety: free functions; concurrent calls need distinct targets.

#include <cstdint>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/context/context_manifest.h"
#include "common/digest/digest.h"
#include "common/layer/layer_reader.h"

namespace lf::worker {

struct MaterializeOptions {
  // Character and block devices: skipped (the default, as for layers), refused, or created.
  // FIFOs are always created.
  layer::DevicePolicy devices = layer::DevicePolicy::kSkip;
};

struct MaterializeStats {
  uint64_t entries = 0;     // entries created (skipped devices and implicit parents not counted)
  uint64_t files = 0;       // regular files among them
  uint64_t file_bytes = 0;  // the sum of their sizes: what the layer store counts for the budget
  uint64_t reflinks = 0;    // files whose blocks are shared with their blob (FICLONE)
};

// Reads the manifest blob `digest` (verified by the store, refused over
// context::kMaxManifestBytes) and parses it. kNotFound when the blob is absent, naming it.
Result<context::ContextManifest> readContextManifest(blob::BlobStore& blobs, const Digest& digest);

// Creates the manifest's entries beneath the directory open as `target_fd` (an empty directory the
// caller owns; its own mode and mtime are left alone), file bytes from `blobs`.
Result<MaterializeStats> materializeContext(const context::ContextManifest& manifest,
                                            blob::BlobStore& blobs, int target_fd,
                                            const MaterializeOptions& options = {});

}  // namespace lf::worker
