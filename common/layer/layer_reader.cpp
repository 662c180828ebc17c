#include "common/layer/layer_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/layer/secure_fs.h"

namespace lf::layer {
namespace {

constexpr size_t kTarChunkBytes = 256 * 1024;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Decompressed tar bytes for libarchive, hashed on the way (the diff ID).
struct TarSource {
  Decompressor* decompressor = nullptr;
  Sha256 sha;
  uint64_t bytes = 0;
  std::string buf = std::string(kTarChunkBytes, '\0');
  Status error;

  Result<size_t> pull() {
    LF_ASSIGN_OR_RETURN(size_t n, decompressor->read(buf.data(), buf.size()));
    sha.update(buf.data(), n);
    bytes += n;
    return n;
  }
  // Reads what libarchive left after the end-of-archive marker, so the diff ID covers it all.
  Status drain() {
    while (true) {
      LF_ASSIGN_OR_RETURN(size_t n, pull());
      if (n == 0) {
        return Status::ok();
      }
    }
  }
};

la_ssize_t tarRead(archive* ar, void* client, const void** buffer) {
  auto* src = static_cast<TarSource*>(client);
  auto n = src->pull();
  if (!n.isOk()) {
    src->error = n.status();
    archive_set_error(ar, EIO, "%s", n.status().message().c_str());
    return -1;
  }
  *buffer = src->buf.data();
  return static_cast<la_ssize_t>(*n);
}

// libarchive may fail without setting a message (archive_error_string returns NULL).
std::string archiveErrorText(archive* ar) {
  const char* msg = archive_error_string(ar);
  return msg != nullptr ? msg : "malformed archive (no detail from libarchive)";
}

std::string entryName(archive_entry* e) {
  const char* p = archive_entry_pathname(e);
  if (p == nullptr) {
    p = archive_entry_pathname_utf8(e);
  }
  return p == nullptr ? std::string() : std::string(p);
}

const char* linkTarget(archive_entry* e, bool hard) {
  const char* p = hard ? archive_entry_hardlink(e) : archive_entry_symlink(e);
  if (p == nullptr) {
    p = hard ? archive_entry_hardlink_utf8(e) : archive_entry_symlink_utf8(e);
  }
  return p;
}

bool applyXattr(std::string_view name) {
  if (startsWith(name, "user.overlay.")) {
    return false;
  }
  return name == "security.capability" || startsWith(name, "user.");
}

// Applies the entries of one tar stream beneath root_fd.
class Applier {
 public:
  Applier(int root_fd, const ApplyOptions& options, archive* ar)
      : root_fd_(root_fd), options_(options), ar_(ar) {
    chown_ = options.preserve_ownership && geteuid() == 0;
    is_root_ = geteuid() == 0;
  }

  Status apply(archive_entry* e, const std::string& name) {
    LF_ASSIGN_OR_RETURN(std::vector<std::string> parts, splitEntryPath(name));
    if (parts.empty()) {
      return Status::ok();  // the layer root itself ("./"): the target keeps its own metadata
    }
    if (startsWith(parts.back(), kWhiteoutPrefix)) {
      return applyWhiteout(parts);
    }
    if (const char* hard = linkTarget(e, true); hard != nullptr) {
      return makeHardlink(parts, hard);
    }
    switch (archive_entry_filetype(e)) {
      case AE_IFDIR:
        return makeDir(e, parts);
      case AE_IFREG:
        return makeFile(e, parts);
      case AE_IFLNK:
        return makeSymlink(e, parts);
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO:
        return makeNode(e, parts);
      default:
        return Status::ok();  // sockets and unknown types carry no content
    }
  }

  // Sets the directories' final modes and mtimes, deepest last-created first.
  Status finish() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      auto fd = openInRoot(root_fd_, it->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (!fd.isOk()) {
        continue;  // removed or replaced by a later entry of the layer
      }
      if (fchmod(fd->get(), it->mode) != 0) {
        return errnoStatus(errno, "chmod directory '" + it->path + "'");
      }
      struct timespec times[2] = {{0, UTIME_OMIT}, it->mtime};
      if (futimens(fd->get(), times) != 0) {
        return errnoStatus(errno, "set mtime of directory '" + it->path + "'");
      }
    }
    return Status::ok();
  }

 private:
  struct DeferredDir {
    std::string path;
    mode_t mode;
    struct timespec mtime;
  };

  Result<UniqueFd> parentOf(const std::vector<std::string>& parts, bool create) {
    return openDirInRoot(root_fd_, parts, parts.size() - 1, create);
  }

  // Makes room for a new entry: removes whatever is at parent/name (a directory recursively),
  // unless it is a directory and `keep_dir` is set. Returns true when a directory was kept.
  Result<bool> clearSlot(int parent, const std::string& name, bool keep_dir) {
    struct stat st;
    if (fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        return false;
      }
      return errnoStatus(errno, "stat existing entry");
    }
    if (keep_dir && S_ISDIR(st.st_mode)) {
      return true;
    }
    LF_RETURN_IF_ERROR(removeAllAt(parent, name));
    return false;
  }

  Status applyWhiteout(const std::vector<std::string>& parts) {
    const std::string& base = parts.back();
    const std::string parent_path = joinPath(parts, parts.size() - 1);
    if (base == kOpaqueMarker) {
      return applyOpaque(parts, parent_path);
    }
    if (startsWith(base, std::string(kWhiteoutPrefix) + std::string(kWhiteoutPrefix))) {
      return Status::ok();  // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content
    }
    std::string victim = base.substr(kWhiteoutPrefix.size());
    if (victim.empty() || victim == "." || victim == "..") {
      return invalidArgument("whiteout names no file");
    }
    std::vector<std::string> victim_parts(parts.begin(), parts.end() - 1);
    victim_parts.push_back(victim);
    const std::string victim_path = joinPath(victim_parts, victim_parts.size());
    if (options_.whiteouts == WhiteoutMode::kOverlay) {
      LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
      LF_RETURN_IF_ERROR(clearSlot(parent.get(), victim, false).status());
      if (mknodat(parent.get(), victim.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
        return errnoStatus(errno, "create overlay whiteout '" + victim_path + "'");
      }
      created_.insert(victim_path);
      return Status::ok();
    }
    if (created_.count(victim_path) != 0) {
      return Status::ok();  // whiteouts hide lower layers only, never this layer's entries
    }
    auto parent = parentOf(parts, false);
    if (!parent.isOk()) {
      return parent.status().code() == StatusCode::kNotFound ? Status::ok() : parent.status();
    }
    return removeAllAt(parent->get(), victim);
  }

  Status applyOpaque(const std::vector<std::string>& parts, const std::string& dir_path) {
    LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
    UniqueFd dir;
    LF_ASSIGN_OR_RETURN(dir, openInRoot(root_fd_, dir_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (options_.whiteouts == WhiteoutMode::kOverlay) {
      if (fsetxattr(dir.get(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
        return errnoStatus(errno, "mark '" + dir_path + "' opaque");
      }
      return Status::ok();
    }
    LF_ASSIGN_OR_RETURN(std::vector<std::string> children, listChildren(dir.get(), dir_path));
    for (const std::string& child : children) {
      std::string child_path = dir_path.empty() ? child : dir_path + "/" + child;
      if (created_.count(child_path) == 0) {
        LF_RETURN_IF_ERROR(removeAllAt(dir.get(), child));
      }
    }
    return Status::ok();
  }

  static Result<std::vector<std::string>> listChildren(int dir_fd, const std::string& path);

  Status makeDir(archive_entry* e, const std::vector<std::string>& parts) {
    const std::string path = joinPath(parts, parts.size());
    LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
    LF_ASSIGN_OR_RETURN(bool kept, clearSlot(parent.get(), parts.back(), true));
    if (!kept && mkdirat(parent.get(), parts.back().c_str(), 0700) != 0) {
      return errnoStatus(errno, "create directory");
    }
    UniqueFd fd(openat(parent.get(), parts.back().c_str(),
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      return errnoStatus(errno, "open directory");
    }
    LF_RETURN_IF_ERROR(setOwner(fd.get(), e));
    LF_RETURN_IF_ERROR(setXattrs(fd.get(), e));
    created_.insert(path);
    DeferredDir d{path,
                  static_cast<mode_t>(archive_entry_perm(e) & 07777),
                  {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    auto [it, inserted] = dir_index_.emplace(path, dirs_.size());
    if (inserted) {
      dirs_.push_back(std::move(d));
    } else {
      dirs_[it->second] = std::move(d);
    }
    return Status::ok();
  }

  Status makeFile(archive_entry* e, const std::vector<std::string>& parts) {
    LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
    LF_RETURN_IF_ERROR(clearSlot(parent.get(), parts.back(), false).status());
    UniqueFd fd(openat(parent.get(), parts.back().c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
      return errnoStatus(errno, "create file");
    }
    created_.insert(joinPath(parts, parts.size()));
    while (true) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(ar_, &block, &size, &offset);
      if (r == ARCHIVE_EOF) {
        break;
      }
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
        return dataLoss(std::string("read file data: ") + archiveMessage());
      }
      LF_RETURN_IF_ERROR(writeAll(fd.get(), static_cast<const char*>(block), size, offset));
    }
    if (ftruncate(fd.get(), archive_entry_size(e)) != 0) {
      return errnoStatus(errno, "set file size");
    }
    LF_RETURN_IF_ERROR(setOwner(fd.get(), e));
    if (fchmod(fd.get(), archive_entry_perm(e) & 07777) != 0) {
      return errnoStatus(errno, "chmod");
    }
    LF_RETURN_IF_ERROR(setXattrs(fd.get(), e));
    struct timespec times[2] = {{0, UTIME_OMIT},
                                {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (futimens(fd.get(), times) != 0) {
      return errnoStatus(errno, "set mtime");
    }
    return Status::ok();
  }

  static Status writeAll(int fd, const char* data, size_t size, int64_t offset) {
    if (offset < 0) {
      return dataLoss("negative data offset");
    }
    while (size > 0) {
      ssize_t n = pwrite(fd, data, size, offset);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errnoStatus(errno, "write file data");
      }
      data += n;
      size -= static_cast<size_t>(n);
      offset += n;
    }
    return Status::ok();
  }

  Status makeSymlink(archive_entry* e, const std::vector<std::string>& parts) {
    const char* target = linkTarget(e, false);
    if (target == nullptr || *target == '\0') {
      return invalidArgument("symlink without a target");
    }
    LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
    LF_RETURN_IF_ERROR(clearSlot(parent.get(), parts.back(), false).status());
    if (symlinkat(target, parent.get(), parts.back().c_str()) != 0) {
      return errnoStatus(errno, "create symlink");
    }
    created_.insert(joinPath(parts, parts.size()));
    return setLinkMeta(parent.get(), parts.back(), e);
  }

  Status setLinkMeta(int parent, const std::string& name, archive_entry* e) {
    if (chown_ && fchownat(parent, name.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
                           static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "chown");
    }
    struct timespec times[2] = {{0, UTIME_OMIT},
                                {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
    if (utimensat(parent, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "set mtime");
    }
    return Status::ok();
  }

  Status makeHardlink(const std::vector<std::string>& parts, const char* link) {
    auto target_parts = splitEntryPath(link);
    if (!target_parts.isOk()) {
      return target_parts.status().withContext(std::string("hardlink target '") + link + "'");
    }
    if (target_parts->empty()) {
      return invalidArgument("hardlink to the layer root");
    }
    const std::string target_path = joinPath(*target_parts, target_parts->size());
    if (target_path == joinPath(parts, parts.size())) {
      return Status::ok();  // a link to itself: nothing to do
    }
    auto target_parent = openDirInRoot(root_fd_, *target_parts, target_parts->size() - 1, false);
    struct stat st;
    if (!target_parent.isOk() || fstatat(target_parent->get(), target_parts->back().c_str(), &st,
                                         AT_SYMLINK_NOFOLLOW) != 0) {
      return invalidArgument("hardlink target '" + target_path +
                             "' does not exist (a link must point to an earlier entry)");
    }
    if (S_ISDIR(st.st_mode)) {
      return invalidArgument("hardlink target '" + target_path + "' is a directory");
    }
    LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
    LF_RETURN_IF_ERROR(clearSlot(parent.get(), parts.back(), false).status());
    if (linkat(target_parent->get(), target_parts->back().c_str(), parent.get(),
               parts.back().c_str(), 0) != 0) {
      return errnoStatus(errno, "create hardlink to '" + target_path + "'");
    }
    created_.insert(joinPath(parts, parts.size()));
    return Status::ok();
  }

  Status makeNode(archive_entry* e, const std::vector<std::string>& parts) {
    mode_t type = archive_entry_filetype(e);
    dev_t dev = 0;
    if (type != AE_IFIFO) {
      if (options_.devices == DevicePolicy::kSkip) {
        return Status::ok();
      }
      if (options_.devices == DevicePolicy::kReject) {
        return permissionDenied("device nodes are not allowed in this layer");
      }
      dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
    }
    LF_ASSIGN_OR_RETURN(UniqueFd parent, parentOf(parts, true));
    LF_RETURN_IF_ERROR(clearSlot(parent.get(), parts.back(), false).status());
    if (mknodat(parent.get(), parts.back().c_str(), type | (archive_entry_perm(e) & 07777), dev) !=
        0) {
      return errnoStatus(errno, "create special file");
    }
    created_.insert(joinPath(parts, parts.size()));
    LF_RETURN_IF_ERROR(setLinkMeta(parent.get(), parts.back(), e));
    if (fchmodat(parent.get(), parts.back().c_str(), archive_entry_perm(e) & 07777, 0) != 0) {
      return errnoStatus(errno, "chmod");
    }
    return Status::ok();
  }

  Status setOwner(int fd, archive_entry* e) {
    if (chown_ && fchown(fd, static_cast<uid_t>(archive_entry_uid(e)),
                         static_cast<gid_t>(archive_entry_gid(e))) != 0) {
      return errnoStatus(errno, "chown");
    }
    return Status::ok();
  }

  Status setXattrs(int fd, archive_entry* e) {
    archive_entry_xattr_reset(e);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      if (name == nullptr || !applyXattr(name)) {
        continue;
      }
      if (fsetxattr(fd, name, value, size, 0) != 0) {
        if (errno == ENOTSUP || (errno == EPERM && !is_root_)) {
          continue;  // the filesystem or our privileges cannot carry it; not fatal
        }
        return errnoStatus(errno, std::string("set xattr ") + name);
      }
    }
    return Status::ok();
  }

  std::string archiveMessage() const {
    const char* msg = archive_error_string(ar_);
    return msg ? msg : "libarchive error";
  }

  int root_fd_;
  const ApplyOptions& options_;
  archive* ar_;
  bool chown_ = false;
  bool is_root_ = false;
  std::unordered_set<std::string> created_;  // paths this layer put in place
  std::vector<DeferredDir> dirs_;
  std::unordered_map<std::string, size_t> dir_index_;
};

Result<std::vector<std::string>> Applier::listChildren(int dir_fd, const std::string& path) {
  return listDirectory(dir_fd, path);
}

}  // namespace

namespace {

Result<ApplyStats> applyStream(Source source, const std::filesystem::path& target,
                               const ApplyOptions& options) {
  UniqueFd root(open(target.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return errnoStatus(errno, "open target directory '" + target.string() + "'");
  }
  std::unique_ptr<Decompressor> decompressor = makeDecompressor(std::move(source));
  TarSource tar;
  tar.decompressor = decompressor.get();
  std::unique_ptr<archive, decltype(&archive_read_free)> ar(archive_read_new(), &archive_read_free);
  if (archive_read_support_format_tar(ar.get()) != ARCHIVE_OK ||
      archive_read_open(ar.get(), &tar, nullptr, tarRead, nullptr) != ARCHIVE_OK) {
    if (!tar.error.isOk()) {
      return tar.error.withContext("read layer");
    }
    return invalidArgument(std::string("layer is not a tar archive: ") +
                           archiveErrorText(ar.get()));
  }
  Applier applier(root.get(), options, ar.get());
  ApplyStats stats;
  std::string last = "(none)";
  while (true) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(ar.get(), &entry);
    if (r == ARCHIVE_EOF) {
      break;
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      std::string where = "layer tar after entry '" + last + "'";
      if (!tar.error.isOk()) {
        return tar.error.withContext(where);
      }
      return dataLoss(where + ": " + archiveErrorText(ar.get()));
    }
    if (++stats.entries > options.max_entries) {
      return resourceExhausted("layer has more than " + std::to_string(options.max_entries) +
                               " entries");
    }
    last = entryName(entry);
    Status s = applier.apply(entry, last);
    if (!s.isOk()) {
      return s.withContext("layer entry '" + last + "'");
    }
  }
  LF_RETURN_IF_ERROR(tar.drain().withContext("layer data after the tar end"));
  LF_RETURN_IF_ERROR(applier.finish());
  stats.compression = decompressor->detected();
  stats.diff_id = tar.sha.finish();
  stats.tar_bytes = tar.bytes;
  if (options.expected_diff_id && *options.expected_diff_id != stats.diff_id) {
    return dataLoss("layer diff ID is " + stats.diff_id.toString() + ", expected " +
                    options.expected_diff_id->toString());
  }
  return stats;
}

Source readerSource(blob::BlobReader& reader) {
  return [&reader](void* data, size_t size) { return reader.read(data, size); };
}

// A file read as a Source; owns the descriptor.
Result<Source> fileSource(const std::filesystem::path& file) {
  auto fd = std::make_shared<UniqueFd>(open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!*fd) {
    return errnoStatus(errno, "open layer file '" + file.string() + "'");
  }
  return Source([fd, file](void* data, size_t size) -> Result<size_t> {
    while (true) {
      ssize_t n = read(fd->get(), data, size);
      if (n >= 0) {
        return static_cast<size_t>(n);
      }
      if (errno != EINTR) {
        return errnoStatus(errno, "read layer file '" + file.string() + "'");
      }
    }
  });
}

using SourceOpener = std::function<Result<Source>(size_t index)>;

// Applies `count` layers into a fresh sibling temp dir, then renames it to `target`.
Status unpackInto(size_t count, const SourceOpener& open_source, const std::vector<Digest>& ids,
                  const std::filesystem::path& target, const ApplyOptions& options,
                  const std::function<std::string(size_t)>& describe) {
  if (!ids.empty() && ids.size() != count) {
    return invalidArgument("unpack: " + std::to_string(count) + " layers but " +
                           std::to_string(ids.size()) + " diff IDs");
  }
  std::filesystem::path clean = target.lexically_normal();
  if (clean.filename().empty()) {
    clean = clean.parent_path();
  }
  struct stat st;
  if (lstat(clean.c_str(), &st) == 0) {
    return alreadyExists("unpack target '" + clean.string() + "' already exists");
  }
  std::filesystem::path parent = clean.parent_path().empty() ? "." : clean.parent_path();
  std::string tmpl = (parent / ("." + clean.filename().string() + ".partial-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return errnoStatus(errno, "create temporary directory next to '" + clean.string() + "'");
  }
  const std::filesystem::path tmp(tmpl);
  auto cleanup = [&] {
    UniqueFd dir(open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (dir) {
      removeAllAt(dir.get(), tmp.filename().string()).ignore();  // best effort; error wins
    }
  };
  Status status = chmod(tmp.c_str(), 0755) == 0 ? Status::ok() : errnoStatus(errno, "chmod");
  for (size_t i = 0; status.isOk() && i < count; ++i) {
    ApplyOptions layer_options = options;
    if (!ids.empty()) {
      layer_options.expected_diff_id = ids[i];
    }
    auto source = open_source(i);
    if (!source.isOk()) {
      status = source.status();
    } else {
      status = applyStream(std::move(source).value(), tmp, layer_options).status();
    }
    if (!status.isOk()) {
      status = status.withContext("unpack layer " + std::to_string(i + 1) + "/" +
                                  std::to_string(count) + " (" + describe(i) + ")");
    }
  }
  if (status.isOk() &&
      renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, clean.c_str(), RENAME_NOREPLACE) != 0) {
    status = errnoStatus(errno, "rename unpacked layers to '" + clean.string() + "'");
  }
  if (!status.isOk()) {
    cleanup();
  }
  return status;
}

}  // namespace

Result<ApplyStats> applyLayer(Source source, const std::filesystem::path& target,
                              const ApplyOptions& options) {
  return applyStream(std::move(source), target, options);
}

Result<ApplyStats> applyLayer(blob::BlobReader& reader, const std::filesystem::path& target,
                              const ApplyOptions& options) {
  return applyStream(readerSource(reader), target, options);
}

Result<ApplyStats> applyLayerFile(const std::filesystem::path& layer_file,
                                  const std::filesystem::path& target,
                                  const ApplyOptions& options) {
  LF_ASSIGN_OR_RETURN(Source source, fileSource(layer_file));
  auto stats = applyStream(std::move(source), target, options);
  if (!stats.isOk()) {
    return stats.status().withContext(layer_file.string());
  }
  return stats;
}

Status unpackLayers(blob::BlobStore& store, const std::vector<Digest>& layers,
                    const std::filesystem::path& target, const ApplyOptions& options,
                    const std::vector<Digest>& expected_diff_ids) {
  std::unique_ptr<blob::BlobReader> reader;
  SourceOpener open = [&](size_t i) -> Result<Source> {
    LF_ASSIGN_OR_RETURN(reader, store.openReader(layers[i]));
    return readerSource(*reader);
  };
  return unpackInto(layers.size(), open, expected_diff_ids, target, options,
                    [&](size_t i) { return layers[i].toString(); });
}

Status unpackLayerFiles(const std::vector<std::filesystem::path>& layer_files,
                        const std::filesystem::path& target, const ApplyOptions& options) {
  SourceOpener open = [&](size_t i) { return fileSource(layer_files[i]); };
  return unpackInto(layer_files.size(), open, {}, target, options,
                    [&](size_t i) { return layer_files[i].string(); });
}

Result<ApplyStats> inspectLayer(Source source) {
  std::unique_ptr<Decompressor> decompressor = makeDecompressor(std::move(source));
  TarSource tar;
  tar.decompressor = decompressor.get();
  LF_RETURN_IF_ERROR(tar.drain());
  ApplyStats stats;
  stats.compression = decompressor->detected();
  stats.diff_id = tar.sha.finish();
  stats.tar_bytes = tar.bytes;
  return stats;
}

}  // namespace lf::layer
