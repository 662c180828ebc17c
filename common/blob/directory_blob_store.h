#pragma once

// DirectoryBlobStore: the embedded default BlobStore, blobs as files in a directory.
//
// Layout (the same as an OCI image layout's blob area, so a layout directory can be opened as a
// store):
//   <root>/blobs/sha256/<hex>   one file per blob, read-only once it lands
//   <root>/tmp/                 writers' temporary files (same filesystem, so rename is atomic)
//   <root>/quarantine/          blobs found damaged on read, moved aside for inspection
// A writer streams into a temporary file while hashing, then on commit fsyncs it, renames it onto
// its final name and fsyncs the directory: readers see a whole blob or none. Several writers of
// the same blob, in threads or in processes sharing the directory (NFS included), each write their
// own temporary file and the renames replace identical bytes, so no lock is needed. Readers
// verify the digest as they read and report kDataLoss at the end of a damaged blob, which is then
// moved to quarantine/ (unless read_only) so it is not served again. Memory use per reader and
// writer is one fixed buffer. Thread-safe: the object holds no mutable state after open().

#include <filesystem>

#include "common/blob/blob_store.h"

namespace lf::blob {

struct DirectoryBlobStoreOptions {
  // Create <root> and its subdirectories when missing. Off: open() fails if blobs/sha256 is absent.
  bool create = true;
  // Never modify the directory: openWriter() and remove() fail, damaged blobs stay in place.
  // For reading an OCI layout someone else owns.
  bool read_only = false;
  // fsync blob files and the blob directory on commit. Off only for scratch stores in tests.
  bool fsync = true;
};

class DirectoryBlobStore : public BlobStore {
 public:
  static Result<std::unique_ptr<DirectoryBlobStore>> open(std::filesystem::path root,
                                                          DirectoryBlobStoreOptions options = {});

  const std::filesystem::path& root() const { return root_; }
  // Where the blob with this digest lives (whether or not it exists).
  std::filesystem::path blobPath(const Digest& digest) const;

  Result<std::unique_ptr<BlobWriter>> openWriter() override;
  Result<std::unique_ptr<BlobReader>> openReader(const Digest& digest) override;
  Result<std::optional<BlobInfo>> stat(const Digest& digest) override;
  Status remove(const Digest& digest) override;
  Status list(const std::function<void(const BlobInfo&)>& fn) override;

 private:
  DirectoryBlobStore(std::filesystem::path root, DirectoryBlobStoreOptions options);

  std::filesystem::path root_;
  std::filesystem::path blob_dir_;
  std::filesystem::path tmp_dir_;
  std::filesystem::path quarantine_dir_;
  DirectoryBlobStoreOptions options_;
};

}  // namespace lf::blob
