#pragma once

// Image-level pull and push over RegistryClient.
//
// Pull: resolve a reference to a manifest (selecting the platform from an index or manifest
// list), then fetch the config and layers into a BlobStore, verified, in parallel (bounded),
// skipping blobs the store already has. The manifest (and the index, if any) are stored too, so
// the store holds everything needed to push or export the image again.
// Push: for each blob, HEAD in the target repository; else try a cross-repository mount from
// the candidate repositories; else upload (bounded parallelism). The manifest goes last, once
// per tag.

#include <functional>
#include <string>
#include <vector>

#include "common/blob/blob_store.h"
#include "common/oci/descriptor.h"
#include "common/oci/manifest.h"
#include "common/registry/reference.h"
#include "common/registry/registry_client.h"

namespace lf::registry {

struct ResolvedImage {
  Reference reference;
  Digest digest;           // what the reference names: an index or a manifest
  Digest manifest_digest;  // the platform's manifest (== digest without an index)
  std::string manifest_media_type;
  std::string manifest_bytes;
  oci::Manifest manifest;
  std::string index_bytes;   // empty without an index
  std::string config_bytes;  // the image config JSON, verified against manifest.config
};

// HEAD only: the digest the reference points at now (an index or a manifest).
Result<ManifestHead> resolveDigest(RegistryClient& client, const Reference& ref);

// Manifest for `platform` + its config, without fetching layers.
Result<ResolvedImage> resolveImage(RegistryClient& client, const Reference& ref,
                                   const oci::Platform& platform);

// Picks the platform's manifest from an index. Errors list what the index offers.
Result<oci::Descriptor> selectPlatform(const oci::Index& index, const oci::Platform& platform,
                                       std::string_view what);

// resolveImage + every layer, the config, the manifest (and the index) into `store`.
Result<ResolvedImage> pullImage(RegistryClient& client, const Reference& ref,
                                const oci::Platform& platform, blob::BlobStore& store);

struct PushOptions {
  // More tags besides the reference's own (same repository).
  std::vector<std::string> extra_tags;
  // Repositories of the same registry that may already hold the blobs ("library/base").
  std::vector<std::string> mount_from;
  // Put a one-component name ("app") under "library/" as Docker Hub does ("library/app").
  bool default_library_namespace = true;
  // Told where the push goes before anything is sent, then about each blob.
  std::function<void(std::string_view message)> progress;
};

struct PushResult {
  std::string repository;  // "127.0.0.1:5000/library/app"
  Digest manifest_digest;
  size_t blobs_uploaded = 0;
  size_t blobs_mounted = 0;
  size_t blobs_present = 0;
};

// The repository a push of `ref` lands in, after the push rules.
Repository pushRepository(const Reference& ref, bool default_library_namespace);

// Pushes the image whose manifest (an image manifest, OCI or Docker) is `manifest_digest` in
// `store`, with its config and layers, to `target`.
Result<PushResult> pushImage(RegistryClient& client, const Reference& target,
                             const Digest& manifest_digest, blob::BlobStore& store,
                             const PushOptions& options = {});

// Runs fn(0..n-1) on up to `parallel` threads; returns the first error (the rest still finish).
Status parallelFor(size_t n, size_t parallel, const std::function<Status(size_t)>& fn);

}  // namespace lf::registry
