#pragma once

// Converting a legacy context tar (PUT /v1/contexts/<tar digest>, context_tar.h) into the form
// builds read since the incremental upload (context_manifest.h): every regular file as its own
// content-addressed blob, and a ContextManifest describing the tree.
//
// The tar is checked exactly as readContextTar() checks it (no absolute paths, "..", whiteout
// names, hard links, duplicates, entries below non-directories, ...): the conversion runs that
// reader first and only then stores anything, so a refused tar leaves no file blobs behind. The
// manifest's entries are the snapshot readContextTar() gives (so the cache keys of a context are
// the same whichever way it was uploaded), with each entry's mtime taken from the tar.
//
// Cost: the tar blob is read twice (check, then split); files already in the store are skipped,
// not rewritten. Memory: one entry per context path (the snapshot), never a file's bytes.
//
// Thread-safety: a free function; as thread-safe as the BlobStore.
// Errors: kInvalidArgument / kResourceExhausted naming the entry for a tar that is not a valid
// context (as readContextTar, or a name that is not UTF-8); kNotFound when the tar blob is absent;
// kDataLoss when the blob changed under the conversion; the store's errors otherwise.

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/context/context_manifest.h"
#include "common/digest/digest.h"

namespace lf::context {

// Splits the context tar `tar` (a blob in `store`) into file blobs in `store` and returns its
// manifest. The manifest itself is not stored (the caller encodes and stores it).
Result<ContextManifest> convertContextTar(blob::BlobStore& store, const Digest& tar);

}  // namespace lf::context
