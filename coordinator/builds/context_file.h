#pragma once

// Reading one file (the Dockerfile) out of an uploaded build context: the uncompressed tar in
// the blob store (common/context/context_tar.h describes its format). The plan's snapshot comes
// from context::readContextTar; this gives the bytes of the one file the coordinator itself
// needs.
//
// Free function, thread-safe as far as the BlobStore is. Errors: kNotFound when the context has
// no such regular file ("context sha256:ab..: Dockerfile \"sub/Dockerfile\" not found"),
// kInvalidArgument for a bad path, kResourceExhausted past max_bytes, kDataLoss for a damaged
// tar or blob.

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"

namespace lf::coordinator {

// `path` is relative to the context root ("Dockerfile", "./docker/Dockerfile.dev"); absolute
// paths and ".." are refused. A symlink is not followed (Docker does not follow it either).
Result<std::string> readContextFile(blob::BlobStore& store, const Digest& context,
                                    std::string_view path, uint64_t max_bytes);

// The path as the context tar names it ("./a//b" -> "a/b"); kInvalidArgument for "", absolute
// paths and "..".
Result<std::string> normalizeContextPath(std::string_view path);

}  // namespace lf::coordinator
