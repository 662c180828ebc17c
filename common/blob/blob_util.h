#pragma once

// Helpers over any BlobStore: copying a blob between stores and streaming a blob to a callback.
// Both verify the source digest while reading (the reader's contract) and never hold a whole
// blob in memory.

#include <functional>

#include "common/blob/blob_store.h"

namespace lf::blob {

// Copies `digest` from `from` into `to`; a blob `to` already has is not copied again.
Result<BlobInfo> copyBlob(BlobStore& from, BlobStore& to, const Digest& digest);

// Reads the blob in chunks and hands each to `sink`; a sink error stops the copy and is returned.
// The final call happens only after the digest was verified, so a sink that needs the data to be
// whole can finish its work when this returns ok.
Status streamBlob(BlobStore& store, const Digest& digest,
                  const std::function<Status(const void* data, size_t size)>& sink);

}  // namespace lf::blob
