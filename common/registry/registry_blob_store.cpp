#include "common/registry/registry_blob_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "common/oci/manifest.h"
#include "common/oci/media_types.h"

namespace lf::registry {
namespace {

// An anonymous spool file: created with mkstemp and unlinked at once.
Result<int> makeSpoolFile(const std::filesystem::path& dir) {
  std::string tmpl = (dir / "spool-XXXXXX").string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0) return errnoStatus(errno, "create spool file in " + dir.string());
  unlink(tmpl.c_str());
  return fd;
}

Status writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoStatus(errno, "write spool file");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

// Reads a spool file from offset 0 with pread, so several readers can share one descriptor.
class SpoolReader : public blob::BlobReader {
 public:
  SpoolReader(std::shared_ptr<int> fd, uint64_t size) : fd_(std::move(fd)), size_(size) {}
  Result<size_t> read(void* data, size_t size) override {
    while (true) {
      ssize_t n =
          pread(*fd_, data, std::min<uint64_t>(size, size_ - offset_), static_cast<off_t>(offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errnoStatus(errno, "read spool file");
      offset_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }
  uint64_t size() const override { return size_; }

 private:
  std::shared_ptr<int> fd_;
  uint64_t size_;
  uint64_t offset_ = 0;
};

std::shared_ptr<int> ownFd(int fd) {
  return std::shared_ptr<int>(new int(fd), [](int* p) {
    close(*p);
    delete p;
  });
}

class SpoolWriter : public blob::BlobWriter {
 public:
  SpoolWriter(RegistryClient& client, Repository repo, int fd)
      : client_(client), repo_(std::move(repo)), fd_(ownFd(fd)) {}

  Status write(const void* data, size_t size) override {
    if (committed_) return failedPrecondition("write after commit");
    hasher_.update(data, size);
    LF_RETURN_IF_ERROR(writeAll(*fd_, static_cast<const char*>(data), size));
    written_ += size;
    return Status::ok();
  }
  uint64_t written() const override { return written_; }

  Result<blob::BlobInfo> commit(std::optional<Digest> expected) override {
    if (committed_) return failedPrecondition("commit called twice");
    committed_ = true;
    blob::BlobInfo info{hasher_.finish(), written_};
    if (expected && *expected != info.digest) {
      return dataLoss(fmt::format("blob for {}: bytes written hash to {}, expected {}",
                                  repo_.toString(), info.digest.toString(), expected->toString()));
    }
    LF_ASSIGN_OR_RETURN(auto present, client_.statBlob(repo_, info.digest));
    if (present) return info;
    auto fd = fd_;
    uint64_t size = written_;
    LF_RETURN_IF_ERROR(client_.uploadFrom(repo_, info, [fd, size] {
      return Result<std::unique_ptr<blob::BlobReader>>(std::make_unique<SpoolReader>(fd, size));
    }));
    return info;
  }

 private:
  RegistryClient& client_;
  Repository repo_;
  std::shared_ptr<int> fd_;
  Sha256 hasher_;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace

RegistryBlobStore::RegistryBlobStore(std::shared_ptr<RegistryClient> client, Repository repo,
                                     std::filesystem::path spool_dir)
    : client_(std::move(client)), repo_(std::move(repo)), spool_dir_(std::move(spool_dir)) {}

Result<std::unique_ptr<RegistryBlobStore>> RegistryBlobStore::open(
    std::shared_ptr<RegistryClient> client, Repository repo, std::filesystem::path spool_dir) {
  LF_RETURN_IF_ERROR(validateRepository(repo.name));
  std::error_code ec;
  std::filesystem::create_directories(spool_dir, ec);
  if (ec) return errnoStatus(ec.value(), "create spool directory " + spool_dir.string());
  return std::unique_ptr<RegistryBlobStore>(
      new RegistryBlobStore(std::move(client), std::move(repo), std::move(spool_dir)));
}

Result<std::unique_ptr<blob::BlobWriter>> RegistryBlobStore::openWriter() {
  LF_ASSIGN_OR_RETURN(int fd, makeSpoolFile(spool_dir_));
  return std::unique_ptr<blob::BlobWriter>(new SpoolWriter(*client_, repo_, fd));
}

Result<std::unique_ptr<blob::BlobReader>> RegistryBlobStore::openReader(const Digest& digest) {
  LF_ASSIGN_OR_RETURN(int raw_fd, makeSpoolFile(spool_dir_));
  auto fd = ownFd(raw_fd);
  uint64_t size = 0;
  Status s = client_->readBlob(repo_, digest, [&](std::string_view chunk) {
    size += chunk.size();
    return writeAll(*fd, chunk.data(), chunk.size());
  });
  if (!s.isOk()) return s;
  return std::unique_ptr<blob::BlobReader>(new SpoolReader(fd, size));
}

Result<std::optional<blob::BlobInfo>> RegistryBlobStore::stat(const Digest& digest) {
  LF_ASSIGN_OR_RETURN(auto size, client_->statBlob(repo_, digest));
  if (!size) return std::optional<blob::BlobInfo>();
  return std::optional<blob::BlobInfo>(blob::BlobInfo{digest, *size});
}

Status RegistryBlobStore::remove(const Digest& digest) {
  return client_->deleteBlob(repo_, digest);
}

Status RegistryBlobStore::list(const std::function<void(const blob::BlobInfo&)>& fn) {
  LF_ASSIGN_OR_RETURN(auto tags, client_->listTags(repo_));
  std::set<Digest> seen;
  auto emit = [&](const Digest& d, uint64_t size) {
    if (seen.insert(d).second) fn(blob::BlobInfo{d, size});
  };
  std::vector<std::string> pending(tags.begin(), tags.end());
  while (!pending.empty()) {
    std::string ref = pending.back();
    pending.pop_back();
    LF_ASSIGN_OR_RETURN(FetchedManifest m, client_->getManifest(repo_, ref));
    if (seen.count(m.digest)) continue;
    emit(m.digest, m.bytes.size());
    if (oci::isIndexMediaType(m.media_type)) {
      LF_ASSIGN_OR_RETURN(oci::Index index, oci::Index::fromJson(m.bytes));
      for (const auto& d : index.manifests) pending.push_back(d.digest.toString());
      continue;
    }
    LF_ASSIGN_OR_RETURN(oci::Manifest manifest, oci::Manifest::fromJson(m.bytes));
    emit(manifest.config.digest, manifest.config.size);
    for (const auto& l : manifest.layers) emit(l.digest, l.size);
  }
  return Status::ok();
}

}  // namespace lf::registry
