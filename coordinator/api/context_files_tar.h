#pragma once

// The body of PUT /v1/contexts/<id>/files (docs/http-api.md, "Contexts"): an uncompressed tar
// whose entries are regular files named "sha256:<64 hex>", each the bytes of one file of the
// context's manifest. Each entry is streamed into the blob store under its name and kept only if
// its bytes hash to it; nothing of an entry that does not is stored. The body is pulled through
// `read` in pieces (libarchive's streaming reader): a files tar of a gigabyte is never in memory.
//
// Refused, naming the entry (kInvalidArgument): entries that are not regular files (directories,
// links, devices, ...), names that are not a digest, digests the manifest does not list, a size
// that is not the manifest's, bytes that do not hash to the name, sparse entries, and a tar that
// is truncated or not a tar. A digest already in the store (or sent twice) is read and discarded.
// Entries before a refused one stay stored: they are valid blobs the context needs anyway.
//
// Thread-safety: a free function; as thread-safe as the BlobStore. Errors of `read` (the client
// went away) are returned as they are; errors of the store with the entry named.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/digest/digest.h"

namespace lf::coordinator::api {

struct ContextFilesTarStats {
  uint64_t entries = 0;       // entries read
  uint64_t stored = 0;        // entries written to the store
  uint64_t stored_bytes = 0;  // their bytes
};

// `files`: the manifest's distinct file digests and their sizes. `read` fills `buf` and returns
// the bytes read, 0 at the end of the body.
Result<ContextFilesTarStats> readContextFilesTar(
    const std::function<Result<size_t>(void* buf, size_t size)>& read,
    const std::map<Digest, uint64_t>& files, blob::BlobStore& store);

}  // namespace lf::coordinator::api
