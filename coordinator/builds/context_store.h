#pragma once

// ContextStore: the coordinator's uploaded build contexts (docs/http-api.md, "Contexts").
//
// A context is a ContextManifest blob (common/context/context_manifest.h) plus one blob per
// distinct file content, all in the shared BlobStore, and a ContextRecord (StateStore) per id a
// build may name it by:
//   - the manifest id (POST /v1/contexts, then PUT .../files for the files the store lacked);
//   - a legacy tar digest (PUT /v1/contexts/<tar digest>): the tar is converted on upload
//     (context_tar_convert.h) and recorded under both ids.
// A record is written only once the manifest and every file it lists are in the store, so a
// record naming a manifest means READY; ready() then checks only that the manifest blob is there
// (one stat, as the tar path did), not every file: file blobs are never deleted while a context
// may name them (nothing in the coordinator deletes them; see removal below).
//
// Removal: nothing removes contexts today. Whoever adds clean-up must delete only the record and,
// when no other record names it, the manifest blob; never a file blob, which other contexts
// (other clients, other tenants) share by digest.
//
// Thread-safety: thread-safe (StateStore and BlobStore are). Two uploads of the same manifest
// race harmlessly: both write the same blobs and the same record.
// Errors: kInvalidArgument / kResourceExhausted for bad manifests and tars (naming the entry),
// kNotFound for a manifest never posted, the store's errors otherwise.

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/context/context_manifest.h"
#include "common/digest/digest.h"
#include "coordinator/builds/build_service.h"
#include "coordinator/state/state_store.h"

namespace lf::coordinator {

class CoordinatorMetrics;

class ContextStore {
 public:
  // Borrows all three; `metrics` may be null.
  ContextStore(StateStore& state, blob::BlobStore& blobs, CoordinatorMetrics* metrics)
      : state_(state), blobs_(blobs), metrics_(metrics) {}

  // HEAD /v1/contexts/<id>: the record exists, names a manifest, and the manifest blob is there.
  Result<bool> ready(const Digest& id) const;
  // The manifest blob a build naming `id` reads. kInvalidArgument saying what to upload when the
  // context is unknown, or recorded before manifests existed ("upload it again").
  Result<Digest> resolve(const Digest& id) const;

  // POST /v1/contexts.
  Result<ContextUploadStatus> addManifest(std::string_view bytes) const;
  // The distinct file digests of manifest `id` with their sizes; kNotFound when it was never
  // posted (or the blob is not a manifest).
  Result<std::map<Digest, uint64_t>> manifestFiles(const Digest& id) const;
  // After PUT .../files: recomputes what is missing; records the context when nothing is.
  Result<ContextUploadStatus> filesAdded(const Digest& id) const;
  // Legacy PUT: converts the tar blob `tar` (already committed) and records it under both ids.
  Status addTar(const Digest& tar, uint64_t size) const;

 private:
  Result<context::ContextManifest> loadManifest(const Digest& id) const;
  // Fills files/bytes/missing/missing_bytes for `manifest`; records the context READY under its
  // id when nothing is missing. Sets *recorded when it wrote a record that was not READY before.
  // *reused_bytes (optional): the bytes of the files already present.
  Result<ContextUploadStatus> check(const Digest& id, const context::ContextManifest& manifest,
                                    bool* recorded, uint64_t* reused_bytes = nullptr) const;
  Status record(const Digest& id, uint64_t size, const Digest& manifest, bool* created) const;

  StateStore& state_;
  blob::BlobStore& blobs_;
  CoordinatorMetrics* metrics_;
};

}  // namespace lf::coordinator
