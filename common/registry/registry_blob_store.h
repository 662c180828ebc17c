#pragma once

// RegistryBlobStore: a BlobStore whose blobs live in one repository of an OCI registry (the
// farm's cache repository). Pushing to another repository of the same registry can then mount
// blobs instead of uploading them.
//
// - openWriter() spools to a temporary file in `spool_dir` while hashing; commit() checks the
//   digest, and uploads unless the repository has the blob already. Nothing is visible in the
//   registry before commit(), and a damaged write (kDataLoss) uploads nothing.
// - openReader() downloads the blob into a spool file, verified against its digest, then reads
//   from there (the file is unlinked at once, so it vanishes with the reader).
// - stat() is a HEAD, remove() a DELETE (the registry must have deletes enabled).
// - list() can only see what the registry API exposes: blobs referenced by the manifests of the
//   repository's tags (configs, layers, and the manifests themselves). Blobs pushed without a
//   manifest naming them are not listed.
// Thread-safe: each call is independent; the client is shared.

#include <filesystem>
#include <memory>

#include "common/blob/blob_store.h"
#include "common/registry/registry_client.h"

namespace lf::registry {

class RegistryBlobStore : public blob::BlobStore {
 public:
  static Result<std::unique_ptr<RegistryBlobStore>> open(std::shared_ptr<RegistryClient> client,
                                                         Repository repo,
                                                         std::filesystem::path spool_dir);

  const Repository& repository() const { return repo_; }

  Result<std::unique_ptr<blob::BlobWriter>> openWriter() override;
  Result<std::unique_ptr<blob::BlobReader>> openReader(const Digest& digest) override;
  Result<std::optional<blob::BlobInfo>> stat(const Digest& digest) override;
  Status remove(const Digest& digest) override;
  Status list(const std::function<void(const blob::BlobInfo&)>& fn) override;

 private:
  RegistryBlobStore(std::shared_ptr<RegistryClient> client, Repository repo,
                    std::filesystem::path spool_dir);

  std::shared_ptr<RegistryClient> client_;
  Repository repo_;
  std::filesystem::path spool_dir_;
};

}  // namespace lf::registry
