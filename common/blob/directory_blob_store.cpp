#include "common/blob/directory_blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace lf::blob {

namespace fs = std::filesystem;

namespace {

constexpr size_t kWriteBufferBytes = 256 * 1024;

Status mkdirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return errnoStatus(ec.value(), "create directory " + dir.string());
  }
  return Status::ok();
}

Status fsyncPath(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return errnoStatus(errno, "open " + path.string() + " for fsync");
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return errnoStatus(err, "fsync " + path.string());
  }
  return Status::ok();
}

Status writeAll(int fd, const char* data, size_t size, const fs::path& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoStatus(errno, "write " + path.string());
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

// Streams into <root>/tmp/put-XXXXXX while hashing; commit() renames it into place.
class DirectoryBlobWriter : public BlobWriter {
 public:
  DirectoryBlobWriter(int fd, fs::path tmp_path, fs::path blob_dir, bool fsync)
      : fd_(fd), tmp_path_(std::move(tmp_path)), blob_dir_(std::move(blob_dir)), fsync_(fsync) {
    buffer_.reserve(kWriteBufferBytes);
  }
  ~DirectoryBlobWriter() override { discard(); }

  Status write(const void* data, size_t size) override {
    if (fd_ < 0) {
      return failedPrecondition("blob writer is already committed or failed");
    }
    const char* p = static_cast<const char*>(data);
    hash_.update(p, size);
    written_ += size;
    if (buffer_.size() + size > kWriteBufferBytes) {
      LF_RETURN_IF_ERROR(flush());
    }
    if (size >= kWriteBufferBytes) {
      return failOnError(writeAll(fd_, p, size, tmp_path_));
    }
    buffer_.insert(buffer_.end(), p, p + size);
    return Status::ok();
  }

  uint64_t written() const override { return written_; }

  Result<BlobInfo> commit(std::optional<Digest> expected) override {
    if (fd_ < 0) {
      return failedPrecondition("blob writer is already committed or failed");
    }
    LF_RETURN_IF_ERROR(flush());
    BlobInfo info{hash_.finish(), written_};
    if (expected.has_value() && *expected != info.digest) {
      discard();
      return dataLoss("blob content does not match: expected " + expected->toString() + ", got " +
                      info.digest.toString() + " (" + std::to_string(written_) + " bytes)");
    }
    // Blobs are shared read-only files; mkstemp made this one 0600.
    if (::fchmod(fd_, 0444) != 0) {
      return failOnError(errnoStatus(errno, "chmod " + tmp_path_.string()));
    }
    if (fsync_ && ::fsync(fd_) != 0) {
      return failOnError(errnoStatus(errno, "fsync " + tmp_path_.string()));
    }
    ::close(fd_);
    fd_ = -1;
    fs::path final_path = blob_dir_ / info.digest.hex();
    // rename() atomically replaces a copy another writer landed first; the bytes are identical.
    if (::rename(tmp_path_.c_str(), final_path.c_str()) != 0) {
      Status s = errnoStatus(errno, "rename " + tmp_path_.string() + " to " + final_path.string());
      discard();
      return s;
    }
    tmp_path_.clear();
    if (fsync_) {
      LF_RETURN_IF_ERROR(fsyncPath(blob_dir_, O_RDONLY | O_DIRECTORY));
    }
    return info;
  }

 private:
  Status flush() {
    if (buffer_.empty()) {
      return Status::ok();
    }
    Status s = writeAll(fd_, buffer_.data(), buffer_.size(), tmp_path_);
    buffer_.clear();
    return failOnError(std::move(s));
  }

  Status failOnError(Status s) {
    if (!s.isOk()) {
      discard();
    }
    return s;
  }

  void discard() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!tmp_path_.empty()) {
      ::unlink(tmp_path_.c_str());  // best effort: a leftover temp file is only wasted space
      tmp_path_.clear();
    }
  }

  int fd_;
  fs::path tmp_path_;
  fs::path blob_dir_;
  bool fsync_;
  std::vector<char> buffer_;
  Sha256 hash_;
  uint64_t written_ = 0;
};

// Hashes while reading; the read that reaches the end checks the digest.
class DirectoryBlobReader : public BlobReader {
 public:
  DirectoryBlobReader(int fd, uint64_t size, Digest digest, fs::path path, fs::path quarantine_dir)
      : fd_(fd),
        size_(size),
        digest_(std::move(digest)),
        path_(std::move(path)),
        quarantine_dir_(std::move(quarantine_dir)) {}
  ~DirectoryBlobReader() override { ::close(fd_); }

  Result<size_t> read(void* data, size_t size) override {
    if (!failure_.isOk()) {
      return failure_;
    }
    if (done_) {
      return size_t{0};
    }
    while (true) {
      ssize_t n = ::read(fd_, data, size);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        failure_ = errnoStatus(errno, "read blob " + path_.string());
        return failure_;
      }
      if (n > 0 || size == 0) {
        hash_.update(data, static_cast<size_t>(n));
        read_ += static_cast<uint64_t>(n);
        return static_cast<size_t>(n);
      }
      return finish();
    }
  }

  uint64_t size() const override { return size_; }

 private:
  Result<size_t> finish() {
    Digest actual = hash_.finish();
    if (actual == digest_ && read_ == size_) {
      done_ = true;
      return size_t{0};
    }
    failure_ =
        dataLoss("blob " + digest_.toString() + " at " + path_.string() + " is damaged: its " +
                 std::to_string(read_) + " bytes hash to " + actual.toString() + quarantine());
    return failure_;
  }

  // Moves the damaged file aside, but only if the name still points at the file we read: a
  // concurrent writer may already have replaced it with a good copy.
  std::string quarantine() {
    if (quarantine_dir_.empty()) {
      return "";
    }
    struct stat ours {};
    struct stat named {};
    if (::fstat(fd_, &ours) != 0 || ::stat(path_.c_str(), &named) != 0 ||
        ours.st_dev != named.st_dev || ours.st_ino != named.st_ino) {
      return "";
    }
    std::error_code ec;
    fs::create_directories(quarantine_dir_, ec);
    fs::path dest = quarantine_dir_ / (digest_.hex() + "." + std::to_string(::getpid()) + "." +
                                       std::to_string(ours.st_ino));
    if (ec || ::rename(path_.c_str(), dest.c_str()) != 0) {
      return " (could not move it to quarantine)";
    }
    return "; moved to " + dest.string();
  }

  int fd_;
  uint64_t size_;
  Digest digest_;
  fs::path path_;
  fs::path quarantine_dir_;
  Sha256 hash_;
  uint64_t read_ = 0;
  bool done_ = false;
  Status failure_;
};

}  // namespace

DirectoryBlobStore::DirectoryBlobStore(fs::path root, DirectoryBlobStoreOptions options)
    : root_(std::move(root)),
      blob_dir_(root_ / "blobs" / "sha256"),
      tmp_dir_(root_ / "tmp"),
      quarantine_dir_(root_ / "quarantine"),
      options_(options) {}

Result<std::unique_ptr<DirectoryBlobStore>> DirectoryBlobStore::open(
    fs::path root, DirectoryBlobStoreOptions options) {
  if (root.empty()) {
    return invalidArgument("blob store directory must not be empty");
  }
  std::unique_ptr<DirectoryBlobStore> store(new DirectoryBlobStore(root, options));
  if (options.create && !options.read_only) {
    LF_RETURN_IF_ERROR(mkdirs(store->blob_dir_));
    LF_RETURN_IF_ERROR(mkdirs(store->tmp_dir_));
  } else {
    std::error_code ec;
    if (!fs::is_directory(store->blob_dir_, ec)) {
      return notFound("blob store " + root.string() + ": no blobs/sha256 directory");
    }
  }
  return store;
}

fs::path DirectoryBlobStore::blobPath(const Digest& digest) const {
  return blob_dir_ / digest.hex();
}

Result<std::unique_ptr<BlobWriter>> DirectoryBlobStore::openWriter() {
  if (options_.read_only) {
    return failedPrecondition("blob store " + root_.string() + " is read-only");
  }
  std::string tmpl = (tmp_dir_ / "put-XXXXXX").string();
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    // tmp/ is missing (an OCI layout opened as a store, or a cleanup job removed it): create it
    // once. The failed call may have filled in the X's, so the template is rebuilt.
    LF_RETURN_IF_ERROR(mkdirs(tmp_dir_));
    tmpl = (tmp_dir_ / "put-XXXXXX").string();
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  }
  if (fd < 0) {
    return errnoStatus(errno, "create temporary blob file in " + tmp_dir_.string());
  }
  return std::unique_ptr<BlobWriter>(
      new DirectoryBlobWriter(fd, fs::path(tmpl), blob_dir_, options_.fsync));
}

Result<std::unique_ptr<BlobReader>> DirectoryBlobStore::openReader(const Digest& digest) {
  if (digest.empty()) {
    return invalidArgument("empty digest");
  }
  fs::path path = blobPath(digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      return notFound("blob " + digest.toString() + " not found in " + root_.string());
    }
    return errnoStatus(errno, "open blob " + path.string());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return dataLoss("blob " + path.string() + " is not a regular file");
  }
  fs::path quarantine = options_.read_only ? fs::path() : quarantine_dir_;
  return std::unique_ptr<BlobReader>(new DirectoryBlobReader(
      fd, static_cast<uint64_t>(st.st_size), digest, std::move(path), std::move(quarantine)));
}

Result<std::optional<BlobInfo>> DirectoryBlobStore::stat(const Digest& digest) {
  if (digest.empty()) {
    return invalidArgument("empty digest");
  }
  fs::path path = blobPath(digest);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return std::optional<BlobInfo>();
    }
    return errnoStatus(errno, "stat blob " + path.string());
  }
  if (!S_ISREG(st.st_mode)) {
    return dataLoss("blob " + path.string() + " is not a regular file");
  }
  return std::optional<BlobInfo>(BlobInfo{digest, static_cast<uint64_t>(st.st_size)});
}

Status DirectoryBlobStore::remove(const Digest& digest) {
  if (options_.read_only) {
    return failedPrecondition("blob store " + root_.string() + " is read-only");
  }
  if (digest.empty()) {
    return invalidArgument("empty digest");
  }
  fs::path path = blobPath(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return errnoStatus(errno, "remove blob " + path.string());
  }
  return Status::ok();
}

Status DirectoryBlobStore::list(const std::function<void(const BlobInfo&)>& fn) {
  DIR* dir = ::opendir(blob_dir_.c_str());
  if (dir == nullptr) {
    return errnoStatus(errno, "list " + blob_dir_.string());
  }
  while (true) {
    errno = 0;
    struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      break;
    }
    // Names that are not digests (editor backups, stray files) are not blobs.
    auto digest = Digest::parse(std::string("sha256:") + entry->d_name);
    if (!digest.isOk()) {
      continue;
    }
    struct stat st {};
    if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;  // removed since readdir, or not a blob file
    }
    fn(BlobInfo{*digest, static_cast<uint64_t>(st.st_size)});
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) {
    return errnoStatus(err, "list " + blob_dir_.string());
  }
  return Status::ok();
}

}  // namespace lf::blob
