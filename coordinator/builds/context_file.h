#pragma once

// Reading one file (the Dockerfile) out of an uploaded build context: its ContextManifest
// (common/context/context_manifest.h) names the file's content digest, and the bytes are that
// blob. The plan's snapshot comes from context::snapshotOfManifest; this gives the bytes of the
// one file the coordinator itself needs.
//
// Free functions, thread-safe as far as the BlobStore is. Errors: kNotFound when the context has
// no such entry ("context sha256:ab..: \"sub/Dockerfile\" not found in the context"),
// kInvalidArgument for a bad path or an entry that is not a regular file (a symlink is not
// followed: Docker does not follow it either), kResourceExhausted past max_bytes, kDataLoss for
// a missing or damaged blob.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/context/context_manifest.h"
#include "common/digest/digest.h"

namespace lf::coordinator {

// `path` is relative to the context root ("Dockerfile", "./docker/Dockerfile.dev"); absolute
// paths and ".." are refused. `context_id` (the manifest's digest) only names the context in
// errors.
Result<std::string> readContextFile(blob::BlobStore& store, const Digest& context_id,
                                    const context::ContextManifest& manifest, std::string_view path,
                                    uint64_t max_bytes);

// The manifest blob `digest`, parsed. kDataLoss naming it when it is absent or not a manifest
// (a record names it, so it was stored and checked once).
Result<context::ContextManifest> loadContextManifest(blob::BlobStore& store, const Digest& digest);

// The path as the manifest names it ("./a//b" -> "a/b"); kInvalidArgument for "", absolute
// paths and "..".
Result<std::string> normalizeContextPath(std::string_view path);

}  // namespace lf::coordinator
