#pragma once

// The build context as it travels from the CLI to the coordinator and on to workers: one
// uncompressed POSIX (pax) tar, deterministic, named by the SHA-256 of its bytes
// (docs/http-api.md, "Contexts").
//
// Format (writeContextTar): every entry of snapshot.entries() and snapshot.builderOnly() (the
// Dockerfile and .dockerignore even when ignored), merged in path order; directories end in '/';
// uid/gid 0, no user/group names, mode = ContextEntry::mode, mtime kept from the file (whole
// seconds; COPY keeps mtimes as Docker does, and they are not part of any cache key), no
// atime/ctime, no xattrs; hard links are stored as separate files. The same files give the same
// bytes, so an unchanged context has the same digest and is not uploaded again.
//
// The coordinator reads a context back with readContextTar(): it rebuilds the ContextSnapshot
// (hashing every regular file) for the plan's COPY/ADD keys and checks the tar is sane: no
// absolute paths, no "..", no entry twice, no names of the layer whiteout form (".wh.*": the
// worker unpacks a context like a layer), no hard links or other tar entry kinds, names and
// link targets at most 4096 bytes. The CLI refuses such contexts up front (writeContextTar
// fails naming the file).
//
// Thread-safety: free functions over caller-owned values.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/context/context_snapshot.h"
#include "common/digest/digest.h"

namespace lf::context {

// Media type of a context blob when a worker treats it as a layer (an uncompressed tar).
inline constexpr std::string_view kContextMediaType = "application/vnd.oci.image.layer.v1.tar";

// Writes the tar of `snapshot`, reading file contents from `root`, into `sink` (called with
// consecutive chunks). A file whose content or type no longer matches the snapshot is an error
// naming it ("src/a.c changed while the context was being sent"), so the upload always matches
// the snapshot the keys were computed from.
Status writeContextTar(const std::filesystem::path& root, const ContextSnapshot& snapshot,
                       const std::function<Status(std::string_view chunk)>& sink);

struct ContextTarInfo {
  Digest digest;   // SHA-256 of the tar bytes
  uint64_t size = 0;
};

// writeContextTar into a blob store (the CLI's temp store, or tests).
Result<ContextTarInfo> writeContextTarToStore(const std::filesystem::path& root,
                                              const ContextSnapshot& snapshot,
                                              blob::BlobStore& store);

// Reads a context tar back into a snapshot. `read` fills `buf` and returns the bytes read (0 at
// the end). `dockerfile` is the Dockerfile's path in the context: when the ignore file in the tar
// (as scanContext picks it) excludes the Dockerfile or itself, those go to builderOnly(), exactly
// as scanContext() put them on the client. Errors name the entry ("context tar: entry \"../x\":
// path leaves the context").
Result<ContextSnapshot> readContextTar(
    const std::function<Result<size_t>(void* buf, size_t size)>& read,
    std::string_view dockerfile = "Dockerfile");
// Same, from a blob in a store.
Result<ContextSnapshot> readContextTar(blob::BlobStore& store, const Digest& digest,
                                       std::string_view dockerfile = "Dockerfile");

}  // namespace lf::context
