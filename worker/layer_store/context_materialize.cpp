#include "worker/layer_store/context_materialize.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/blob/directory_blob_store.h"
#include "common/context/safe_open.h"
#include "common/layer/unique_fd.h"

namespace lf::worker {
namespace {

using context::ContextEntry;
using context::EntryType;
using context::ManifestEntry;
using layer::UniqueFd;

constexpr size_t kCopyBufferBytes = size_t{256} << 10;

const Digest& emptyDigest() {
  static const Digest digest = Digest::sha256Of("");
  return digest;
}

std::string quote(const std::string& path) { return "'" + path + "'"; }

// The components of a manifest path. The manifest parser refuses bad paths already; this is the
// second line, so that no "..", "." or empty component ever reaches an *at() call.
Result<std::vector<std::string>> componentsOf(const std::string& path) {
  if (path.empty() || path.find('\0') != std::string::npos) {
    return invalidArgument("empty path or a NUL byte in it");
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string part = path.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") {
      return invalidArgument("the path has an empty, \".\" or \"..\" component");
    }
    parts.push_back(std::move(part));
    if (slash == std::string::npos) {
      return parts;
    }
    start = slash + 1;
  }
}

std::string joinParts(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    out += (i == 0 ? "" : "/") + parts[i];
  }
  return out;
}

// A create that found something at the name: the manifest lists the path twice.
Status createError(int err, const std::string& what) {
  if (err == EEXIST) {
    return invalidArgument(what + ": the path exists already (listed twice)");
  }
  return errnoStatus(err, what);
}

// The caller adds the entry's path to these.
Status missingBlob(const ContextEntry& e) {
  return notFound("blob " + e.content.toString() + " is not in the blob store");
}

Status sizeMismatch(const ContextEntry& e, uint64_t blob_size) {
  return dataLoss("blob " + e.content.toString() + " is " + std::to_string(blob_size) +
                  " bytes, the manifest says " + std::to_string(e.size));
}

Status writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, "write");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::ok();
}

// Reads `size` bytes of a file (its size, as fstat said), hashing them; with `copy_to` >= 0 also
// writes every chunk there, so what is hashed is exactly what the copy holds. `buf` holds
// kCopyBufferBytes. A file that ends early is kDataLoss; bytes past `size` are not read (the hash
// could not match if the file had changed size under a fixed digest anyway).
Result<Digest> hashAndCopy(int fd, int copy_to, uint64_t size, char* buf) {
  Sha256 hash;
  uint64_t done = 0;
  while (done < size) {
    ssize_t n =
        ::read(fd, buf, static_cast<size_t>(std::min<uint64_t>(kCopyBufferBytes, size - done)));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, "read");
    }
    if (n == 0) {
      return dataLoss("the blob ended after " + std::to_string(done) + " of " +
                      std::to_string(size) + " bytes");
    }
    hash.update(buf, static_cast<size_t>(n));
    if (copy_to >= 0) {
      LF_RETURN_IF_ERROR(writeAll(copy_to, buf, static_cast<size_t>(n)));
    }
    done += static_cast<uint64_t>(n);
  }
  return hash.finish();
}

// Whether created entries need an fchown to be 0:0: only as root (others cannot chown), and then
// only if the kernel would not make them 0:0 anyway. New inodes get the fsuid and fsgid, or the
// group of a setgid parent; the directories made here stay 0700 until finish(), so only the
// target's own setgid bit could interfere. Saves a syscall per entry.
bool needChown(int root_fd) {
  if (geteuid() != 0) {
    return false;
  }
  struct stat st;
  return getegid() != 0 || fstat(root_fd, &st) != 0 || (st.st_mode & S_ISGID) != 0;
}

// Builds the tree; see materializeContext. One per call, single-threaded.
class Materializer {
 public:
  Materializer(blob::BlobStore& blobs, int root_fd, const MaterializeOptions& options)
      : blobs_(blobs),
        direct_(dynamic_cast<blob::DirectoryBlobStore*>(&blobs)),
        root_fd_(root_fd),
        options_(options),
        chown_(needChown(root_fd)) {}

  Status add(const ManifestEntry& m) {
    const ContextEntry& e = m.entry;
    LF_ASSIGN_OR_RETURN(std::vector<std::string> parts, componentsOf(e.path));
    if ((e.mode & ~07777u) != 0) {
      return invalidArgument("mode " + std::to_string(e.mode) + " has bits above 07777");
    }
    LF_ASSIGN_OR_RETURN(int parent, parentFd(parts));
    const std::string& name = parts.back();
    switch (e.type) {
      case EntryType::kDirectory:
        return makeDir(parent, name, m);
      case EntryType::kRegular:
        return makeFile(parent, name, m);
      case EntryType::kSymlink:
        return makeSymlink(parent, name, m);
      case EntryType::kFifo:
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
        return makeNode(parent, name, m);
    }
    return invalidArgument("unknown entry type");
  }

  // Gives the directories their modes, owners and mtimes, now that nothing more is created in
  // them. Deepest first (a path sorts after its parent's), so a directory made unsearchable does
  // not block the way to its children when not running as root.
  Status finish() {
    std::sort(dirs_.begin(), dirs_.end(),
              [](const Dir& a, const Dir& b) { return a.path > b.path; });
    for (const Dir& d : dirs_) {
      LF_ASSIGN_OR_RETURN(context::UniqueFd fd,
                          context::openBeneath(root_fd_, d.path, O_RDONLY | O_DIRECTORY));
      LF_RETURN_IF_ERROR(setOwner(fd.get(), d.path));
      if (fchmod(fd.get(), d.mode) != 0) {
        return errnoStatus(errno, "chmod directory " + quote(d.path));
      }
      struct timespec times[2] = {{0, UTIME_OMIT}, {d.mtime, 0}};
      if (futimens(fd.get(), times) != 0) {
        return errnoStatus(errno, "set the mtime of directory " + quote(d.path));
      }
    }
    return Status::ok();
  }

  const MaterializeStats& stats() const { return stats_; }

 private:
  struct Level {
    std::string name;
    UniqueFd fd;
  };
  struct Dir {
    std::string path;
    mode_t mode;
    int64_t mtime;
    bool listed;  // by the manifest; else made as a missing parent
  };

  // The directory holding parts.back(), opened (created if missing) one component at a time
  // with O_NOFOLLOW. The open directories of the previous entry's parent are kept on a stack:
  // entries come in path order, so most entries reuse all of it.
  Result<int> parentFd(const std::vector<std::string>& parts) {
    const size_t depth = parts.size() - 1;
    size_t keep = 0;
    while (keep < stack_.size() && keep < depth && stack_[keep].name == parts[keep]) {
      ++keep;
    }
    stack_.erase(stack_.begin() + static_cast<ptrdiff_t>(keep), stack_.end());
    for (size_t i = keep; i < depth; ++i) {
      int at = i == 0 ? root_fd_ : stack_[i - 1].fd.get();
      LF_ASSIGN_OR_RETURN(UniqueFd fd, openOrMakeDir(at, parts, i));
      stack_.push_back({parts[i], std::move(fd)});
    }
    return depth == 0 ? root_fd_ : stack_[depth - 1].fd.get();
  }

  Result<UniqueFd> openOrMakeDir(int at, const std::vector<std::string>& parts, size_t i) {
    const char* name = parts[i].c_str();
    constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    UniqueFd fd(openat(at, name, kFlags));
    if (!fd && errno == ENOENT) {
      // A parent the manifest does not list: 0755, mtime 0, as a tar unpack makes it.
      if (mkdirat(at, name, 0700) != 0) {
        return errnoStatus(errno, "create parent directory " + quote(joinParts(parts, i + 1)));
      }
      recordDir(joinParts(parts, i + 1), 0755, 0, /*listed=*/false);
      fd.reset(openat(at, name, kFlags));
    }
    if (!fd) {
      if (errno == ENOTDIR || errno == ELOOP) {
        return invalidArgument("parent " + quote(joinParts(parts, i + 1)) + " is not a directory");
      }
      return errnoStatus(errno, "open parent directory " + quote(joinParts(parts, i + 1)));
    }
    return fd;
  }

  // Returns false when the manifest listed this directory already.
  bool recordDir(std::string path, mode_t mode, int64_t mtime, bool listed) {
    auto [it, inserted] = dir_index_.emplace(path, dirs_.size());
    if (inserted) {
      dirs_.push_back({std::move(path), mode, mtime, listed});
      return true;
    }
    Dir& d = dirs_[it->second];
    if (d.listed) {
      return false;
    }
    d.mode = mode;
    d.mtime = mtime;
    d.listed = listed;
    return true;
  }

  Status makeDir(int parent, const std::string& name, const ManifestEntry& m) {
    const std::string& path = m.entry.path;
    if (mkdirat(parent, name.c_str(), 0700) != 0) {
      // EEXIST is fine for a directory made as a missing parent of an earlier entry: impossible
      // in a sorted manifest, and harmless; the listed mode and mtime then win.
      if (errno != EEXIST || dir_index_.count(path) == 0) {
        return createError(errno, "create directory");
      }
    }
    if (!recordDir(path, static_cast<mode_t>(m.entry.mode), m.mtime, /*listed=*/true)) {
      return createError(EEXIST, "create directory");
    }
    ++stats_.entries;
    return Status::ok();
  }

  Status makeFile(int parent, const std::string& name, const ManifestEntry& m) {
    const ContextEntry& e = m.entry;
    UniqueFd fd(
        openat(parent, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
      return createError(errno, "create file");
    }
    LF_RETURN_IF_ERROR(writeContent(fd.get(), e));
    LF_RETURN_IF_ERROR(setOwner(fd.get(), e.path));  // before chmod: chown clears setuid bits
    if (fchmod(fd.get(), static_cast<mode_t>(e.mode)) != 0) {
      return errnoStatus(errno, "chmod");
    }
    struct timespec times[2] = {{0, UTIME_OMIT}, {m.mtime, 0}};
    if (futimens(fd.get(), times) != 0) {
      return errnoStatus(errno, "set mtime");
    }
    ++stats_.entries;
    ++stats_.files;
    stats_.file_bytes += e.size;
    return Status::ok();
  }

  Status writeContent(int dst, const ContextEntry& e) {
    if (e.size == 0 && e.content == emptyDigest()) {
      return Status::ok();  // nothing to read, and the CLI may never have uploaded it
    }
    if (direct_ != nullptr) {
      return copyBlobFile(dst, e);
    }
    return copyFromReader(dst, e);
  }

  // A DirectoryBlobStore blob: copied by the kernel where it can, then hashed (see the header);
  // else read, hashed and written in one pass.
  Status copyBlobFile(int dst, const ContextEntry& e) {
    if (!blob_dir_) {
      // All blobs are sha256 and live in one directory: open it once, then each blob by name.
      std::filesystem::path dir = direct_->blobPath(e.content).parent_path();
      blob_dir_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!blob_dir_) {
        return errnoStatus(errno, "open the blob directory '" + dir.string() + "'");
      }
    }
    const std::string name = direct_->blobPath(e.content).filename().string();
    UniqueFd src(openat(blob_dir_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!src) {
      return errno == ENOENT ? missingBlob(e)
                             : errnoStatus(errno, "open blob " + e.content.toString());
    }
    struct stat st;
    if (fstat(src.get(), &st) != 0) {
      return errnoStatus(errno, "stat blob " + e.content.toString());
    }
    if (static_cast<uint64_t>(st.st_size) != e.size) {
      return sizeMismatch(e, static_cast<uint64_t>(st.st_size));
    }
    // The bytes must be hashed either way, so they pass through user space once: read, hash,
    // write. (copy_file_range followed by hashing the copy was measured slower: two passes.) A
    // reflink costs no copy at all; the clone is then read back and hashed, since it shares the
    // blob's blocks as they are on disk.
    Digest got;
    if (try_reflink_ && ioctl(dst, FICLONE, src.get()) == 0) {
      ++stats_.reflinks;
      if (lseek(dst, 0, SEEK_SET) != 0) {
        return errnoStatus(errno, "seek");
      }
      LF_ASSIGN_OR_RETURN(got, hashAndCopy(dst, -1, e.size, buffer()));
    } else {
      // Not on this filesystem (or across two): no use asking again for every file.
      try_reflink_ = try_reflink_ && !(errno == EOPNOTSUPP || errno == ENOTTY || errno == EXDEV ||
                                       errno == EINVAL || errno == ENOSYS);
      LF_ASSIGN_OR_RETURN(got, hashAndCopy(src.get(), dst, e.size, buffer()));
    }
    if (got != e.content) {
      // Read it once through the store, whose reader moves a damaged blob to quarantine so it is
      // not served again. Its result adds nothing to the error below.
      auto reader = blobs_.openReader(e.content);
      while (reader.isOk()) {
        auto n = (*reader)->read(buffer(), kCopyBufferBytes);
        if (!n.isOk() || *n == 0) {
          break;
        }
      }
      return dataLoss("blob " + e.content.toString() +
                      " does not match its digest (its bytes hash to " + got.toString() + ")");
    }
    return Status::ok();
  }

  // Any other store: its reader verifies the digest and fails the last read if it does not match.
  Status copyFromReader(int dst, const ContextEntry& e) {
    auto reader = blobs_.openReader(e.content);
    if (!reader.isOk()) {
      return reader.status().code() == StatusCode::kNotFound
                 ? missingBlob(e)
                 : reader.status().withContext("open blob " + e.content.toString());
    }
    if ((*reader)->size() != e.size) {
      return sizeMismatch(e, (*reader)->size());
    }
    uint64_t copied = 0;
    while (true) {
      auto n = (*reader)->read(buffer(), kCopyBufferBytes);
      if (!n.isOk()) {
        return n.status();
      }
      if (*n == 0) {
        break;
      }
      LF_RETURN_IF_ERROR(writeAll(dst, buffer(), *n));
      copied += *n;
    }
    if (copied != e.size) {
      return sizeMismatch(e, copied);
    }
    return Status::ok();
  }

  Status makeSymlink(int parent, const std::string& name, const ManifestEntry& m) {
    const std::string& target = m.entry.link_target;
    if (target.empty() || target.find('\0') != std::string::npos) {
      return invalidArgument("symlink target empty or with a NUL byte");
    }
    if (symlinkat(target.c_str(), parent, name.c_str()) != 0) {
      return createError(errno, "create symlink");
    }
    LF_RETURN_IF_ERROR(setLinkMeta(parent, name, m));
    ++stats_.entries;
    return Status::ok();
  }

  Status makeNode(int parent, const std::string& name, const ManifestEntry& m) {
    const ContextEntry& e = m.entry;
    mode_t type = S_IFIFO;
    dev_t dev = 0;
    if (e.type != EntryType::kFifo) {
      if (options_.devices == layer::DevicePolicy::kSkip) {
        return Status::ok();
      }
      if (options_.devices == layer::DevicePolicy::kReject) {
        return permissionDenied("device nodes are not allowed in a build context here");
      }
      type = e.type == EntryType::kCharDevice ? S_IFCHR : S_IFBLK;
      dev = makedev(e.dev_major, e.dev_minor);
    }
    if (mknodat(parent, name.c_str(), type | 0600, dev) != 0) {
      return createError(errno, "create special file");
    }
    LF_RETURN_IF_ERROR(setLinkMeta(parent, name, m));
    // fchmodat follows a symlink at the name, but the name is the node just made, in a directory
    // only this process writes to (the caller's private staging dir).
    if (fchmodat(parent, name.c_str(), static_cast<mode_t>(e.mode), 0) != 0) {
      return errnoStatus(errno, "chmod");
    }
    ++stats_.entries;
    return Status::ok();
  }

  // Owner and mtime of something that must not be opened (a symlink, a device, a FIFO).
  Status setLinkMeta(int parent, const std::string& name, const ManifestEntry& m) {
    if (chown_ && fchownat(parent, name.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "chown");
    }
    struct timespec times[2] = {{0, UTIME_OMIT}, {m.mtime, 0}};
    if (utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "set mtime");
    }
    return Status::ok();
  }

  // Contexts are owned by root, as the context tar says (uid/gid 0). Not running as root, files
  // stay the caller's, as in a layer unpack.
  Status setOwner(int fd, const std::string& path) {
    if (chown_ && fchown(fd, 0, 0) != 0) {
      return errnoStatus(errno, "chown " + quote(path));
    }
    return Status::ok();
  }

  char* buffer() {
    if (buffer_.empty()) {
      buffer_.resize(kCopyBufferBytes);
    }
    return buffer_.data();
  }

  blob::BlobStore& blobs_;
  blob::DirectoryBlobStore* direct_;
  const int root_fd_;
  const MaterializeOptions options_;
  const bool chown_;
  UniqueFd blob_dir_;
  bool try_reflink_ = true;
  MaterializeStats stats_;
  std::vector<Level> stack_;
  std::vector<Dir> dirs_;
  std::unordered_map<std::string, size_t> dir_index_;
  std::vector<char> buffer_;
};

}  // namespace

Result<context::ContextManifest> readContextManifest(blob::BlobStore& blobs, const Digest& digest) {
  auto bytes = blobs.getBytes(digest, context::kMaxManifestBytes);
  if (!bytes.isOk()) {
    if (bytes.status().code() == StatusCode::kNotFound) {
      return notFound("context manifest " + digest.toString() + " is not in the blob store");
    }
    return bytes.status().withContext("read context manifest " + digest.toString());
  }
  auto manifest = context::parseContextManifest(*bytes);
  if (!manifest.isOk()) {
    return manifest.status().withContext("blob " + digest.toString());
  }
  return manifest;
}

Result<MaterializeStats> materializeContext(const context::ContextManifest& manifest,
                                            blob::BlobStore& blobs, int target_fd,
                                            const MaterializeOptions& options) {
  Materializer m(blobs, target_fd, options);
  for (size_t i = 0; i < manifest.entries.size(); ++i) {
    const ManifestEntry& entry = manifest.entries[i];
    Status added = m.add(entry);
    if (!added.isOk()) {
      return added.withContext("context entry " + std::to_string(i) + " " +
                               quote(entry.entry.path));
    }
  }
  LF_RETURN_IF_ERROR(m.finish());
  return m.stats();
}

}  // namespace lf::worker
