#pragma once

// TarWriter: writes a tar file (POSIX pax, entries owned by 0:0 with mtime 0 so the same content
// gives the same bytes) into a temporary file beside its destination and renames it into place
// on commit(), so a half-written archive never appears under the final name. Blob entries are
// streamed from a BlobStore and verified on the way (bounded memory). Used by the OCI archive
// and docker-archive exporters. Not thread-safe; one writer per archive.

#include <filesystem>
#include <memory>
#include <string_view>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/oci/descriptor.h"

struct archive;

namespace lf::oci {

class TarWriter {
 public:
  static Result<std::unique_ptr<TarWriter>> create(const std::filesystem::path& dest);
  ~TarWriter();  // without commit(), removes the temporary file
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  Status addDirectory(std::string_view name);
  Status addFile(std::string_view name, std::string_view content);
  // Streams the blob `desc` from `store` as entry `name`; fails with kDataLoss if the stored
  // blob's size or digest differ from the descriptor.
  Status addBlob(std::string_view name, blob::BlobStore& store, const Descriptor& desc);
  Status commit();

 private:
  TarWriter(struct archive* a, int fd, std::filesystem::path tmp, std::filesystem::path dest)
      : archive_(a), fd_(fd), tmp_(std::move(tmp)), dest_(std::move(dest)) {}
  Status header(std::string_view name, unsigned int type, unsigned int perm, int64_t size);
  Status archiveError(std::string_view what);

  struct archive* archive_;
  int fd_;
  std::filesystem::path tmp_;
  std::filesystem::path dest_;
  bool committed_ = false;
};

}  // namespace lf::oci
