#include "common/context/context_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/context/archive_read.h"
#include "common/context/dockerignore.h"
#include "common/context/safe_open.h"

namespace lf::context {

namespace {

constexpr size_t kMaxNameBytes = 4096;
constexpr size_t kBufferBytes = 1 << 20;

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Why `path` may not be in a context tar, or "" when it may. Shared by the writer (which refuses
// up front) and the reader (which refuses hostile tars).
std::string pathProblem(std::string_view path) {
  if (path.empty()) {
    return "empty name";
  }
  if (path.size() > kMaxNameBytes) {
    return "name longer than 4096 bytes";
  }
  if (path.front() == '/') {
    return "absolute path";
  }
  for (size_t pos = 0;;) {
    size_t slash = path.find('/', pos);
    std::string_view part =
        path.substr(pos, slash == std::string_view::npos ? path.npos : slash - pos);
    if (part == "..") {
      return "path leaves the context";
    }
    if (part.empty() || part == ".") {
      return "not a clean relative path";
    }
    if (part.substr(0, 4) == ".wh.") {
      return "name of the layer whiteout form (.wh.*)";
    }
    if (slash == std::string_view::npos) {
      break;
    }
    pos = slash + 1;
  }
  return std::string();
}

// The two lists of a snapshot merged in path order (both are sorted).
std::vector<const ContextEntry*> mergedEntries(const ContextSnapshot& snapshot) {
  std::vector<const ContextEntry*> all;
  all.reserve(snapshot.entries().size() + snapshot.builderOnly().size());
  for (const auto* list : {&snapshot.entries(), &snapshot.builderOnly()}) {
    for (const ContextEntry& e : *list) {
      all.push_back(&e);
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const ContextEntry* a, const ContextEntry* b) { return a->path < b->path; });
  return all;
}

// Owns a libarchive writer whose output goes to the caller's sink. The sink's first error is
// kept, so the caller gets it instead of libarchive's generic "write failed".
class TarSink {
 public:
  explicit TarSink(const std::function<Status(std::string_view)>& sink) : sink_(sink) {}
  ~TarSink() {
    if (ar_ != nullptr) {
      archive_write_free(ar_);
    }
  }

  Status open() {
    ar_ = archive_write_new();
    if (ar_ == nullptr) {
      return resourceExhausted("context tar: out of memory");
    }
    // pax_restricted writes plain ustar headers and adds a pax header only where ustar cannot
    // say it (long names, big sizes, non-ASCII names: see ScopedUtf8Locale).
    if (archive_write_set_format_pax_restricted(ar_) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(ar_, 1) != ARCHIVE_OK ||
        archive_write_open2(ar_, this, nullptr, &TarSink::onWrite, nullptr, nullptr) !=
            ARCHIVE_OK) {
      return error("open");
    }
    return Status::ok();
  }

  archive* get() { return ar_; }

  Status error(std::string_view what) {
    if (!sink_status_.isOk()) {
      return sink_status_;
    }
    const char* msg = archive_error_string(ar_);
    return internalError("context tar: " + std::string(what) + ": " +
                         (msg != nullptr ? msg : "unknown libarchive error"));
  }

  Status close() {
    if (archive_write_close(ar_) != ARCHIVE_OK) {
      return error("close");
    }
    return Status::ok();
  }

 private:
  static la_ssize_t onWrite(archive*, void* self, const void* data, size_t size) {
    auto* me = static_cast<TarSink*>(self);
    Status s = me->sink_(std::string_view(static_cast<const char*>(data), size));
    if (!s.isOk()) {
      me->sink_status_ = std::move(s);
      return -1;
    }
    return static_cast<la_ssize_t>(size);
  }

  const std::function<Status(std::string_view)>& sink_;
  archive* ar_ = nullptr;
  Status sink_status_;
};

struct EntryClose {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using EntryPtr = std::unique_ptr<archive_entry, EntryClose>;

// Writes the entries, reading each from below the root through a cached parent directory fd.
class ContextTarWriter {
 public:
  ContextTarWriter(int root_fd, TarSink* tar) : root_fd_(root_fd), tar_(tar) {}

  Status write(const ContextEntry& e) {
    std::string problem = pathProblem(e.path);
    if (problem.empty() && e.link_target.size() > kMaxNameBytes) {
      problem = "symlink target longer than 4096 bytes";
    }
    if (problem.empty() && (!isUtf8(e.path) || !isUtf8(e.link_target))) {
      // pax headers carry names as UTF-8; rename the file or list it in .dockerignore.
      problem = "name or symlink target is not valid UTF-8";
    }
    if (!problem.empty()) {
      return invalidArgument("context entry " + quote(e.path) + ": " + problem +
                             "; the builder would refuse it");
    }
    size_t slash = e.path.rfind('/');
    std::string parent = slash == std::string::npos ? std::string() : e.path.substr(0, slash);
    std::string base = slash == std::string::npos ? e.path : e.path.substr(slash + 1);
    LF_RETURN_IF_ERROR(openParent(parent, e.path));
    struct stat st {};
    if (fstatat(parent_fd_.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "context entry " + quote(e.path)).withContext(changedHint(e));
    }
    if (e.type == EntryType::kRegular) {
      return writeFile(e, base);
    }
    LF_RETURN_IF_ERROR(checkSame(e, st, base));
    EntryPtr entry = header(e, st);
    return writeHeader(entry.get(), e.path);
  }

 private:
  static std::string changedHint(const ContextEntry& e) {
    return e.path + " changed while the context was being sent";
  }

  Status changed(const ContextEntry& e, std::string_view detail) {
    return failedPrecondition(changedHint(e) + " (" + std::string(detail) + ")");
  }

  Status openParent(const std::string& parent, const std::string& path) {
    if (parent_fd_.valid() && parent == parent_) {
      return Status::ok();
    }
    parent_fd_.reset();
    auto fd = openBeneath(root_fd_, parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd.isOk()) {
      return fd.status().withContext("context entry " + quote(path));
    }
    parent_fd_ = std::move(fd).value();
    parent_ = parent;
    return Status::ok();
  }

  // Compares what is on disk now with the snapshot, for everything but file content.
  Status checkSame(const ContextEntry& e, const struct stat& st, const std::string& base) {
    bool same_type = false;
    switch (e.type) {
      case EntryType::kRegular:
        same_type = S_ISREG(st.st_mode);
        break;
      case EntryType::kDirectory:
        same_type = S_ISDIR(st.st_mode);
        break;
      case EntryType::kSymlink:
        same_type = S_ISLNK(st.st_mode);
        break;
      case EntryType::kFifo:
        same_type = S_ISFIFO(st.st_mode);
        break;
      case EntryType::kCharDevice:
        same_type = S_ISCHR(st.st_mode);
        break;
      case EntryType::kBlockDevice:
        same_type = S_ISBLK(st.st_mode);
        break;
    }
    if (!same_type) {
      return changed(e, std::string("no longer a ") + std::string(entryTypeName(e.type)));
    }
    if (e.type == EntryType::kSymlink) {
      std::string target(kMaxNameBytes + 2, '\0');
      ssize_t n = readlinkat(parent_fd_.get(), base.c_str(), target.data(), target.size());
      if (n < 0) {
        return errnoStatus(errno, "context symlink " + quote(e.path) + ": readlink");
      }
      target.resize(static_cast<size_t>(n));
      if (target != e.link_target) {
        return changed(e, "symlink target");
      }
    }
    if ((e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) &&
        (major(st.st_rdev) != e.dev_major || minor(st.st_rdev) != e.dev_minor)) {
      return changed(e, "device numbers");
    }
    return Status::ok();
  }

  EntryPtr header(const ContextEntry& e, const struct stat& st) {
    EntryPtr entry(archive_entry_new());
    archive_entry* a = entry.get();
    std::string name = e.type == EntryType::kDirectory ? e.path + "/" : e.path;
    archive_entry_copy_pathname(a, name.c_str());
    mode_t type = AE_IFREG;
    switch (e.type) {
      case EntryType::kRegular:
        type = AE_IFREG;
        break;
      case EntryType::kDirectory:
        type = AE_IFDIR;
        break;
      case EntryType::kSymlink:
        type = AE_IFLNK;
        break;
      case EntryType::kFifo:
        type = AE_IFIFO;
        break;
      case EntryType::kCharDevice:
        type = AE_IFCHR;
        break;
      case EntryType::kBlockDevice:
        type = AE_IFBLK;
        break;
    }
    archive_entry_set_filetype(a, type);
    archive_entry_set_perm(a, e.mode & 07777);
    archive_entry_set_uid(a, 0);
    archive_entry_set_gid(a, 0);
    archive_entry_set_mtime(a, st.st_mtim.tv_sec, 0);  // whole seconds: see the header
    archive_entry_set_size(a, e.type == EntryType::kRegular ? static_cast<la_int64_t>(e.size) : 0);
    if (e.type == EntryType::kSymlink) {
      archive_entry_copy_symlink(a, e.link_target.c_str());
    }
    if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
      archive_entry_set_rdevmajor(a, e.dev_major);
      archive_entry_set_rdevminor(a, e.dev_minor);
    }
    return entry;
  }

  Status writeHeader(archive_entry* entry, const std::string& path) {
    int rc = archive_write_header(tar_->get(), entry);
    if (rc != ARCHIVE_OK) {
      return tar_->error("entry " + quote(path));
    }
    return Status::ok();
  }

  // Streams a regular file, hashing it: the bytes sent must be the bytes the snapshot names.
  Status writeFile(const ContextEntry& e, const std::string& base) {
    UniqueFd fd(openat(parent_fd_.get(), base.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ELOOP || errno == ENOENT || errno == ENXIO) {
        return changed(e, errno == ENOENT ? "removed" : "no longer a regular file");
      }
      return errnoStatus(errno, "context file " + quote(e.path));
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
      return errnoStatus(errno, "context file " + quote(e.path) + ": fstat");
    }
    LF_RETURN_IF_ERROR(checkSame(e, st, base));
    if (static_cast<uint64_t>(st.st_size) < e.size) {
      return changed(e, "shrank");
    }
    EntryPtr entry = header(e, st);
    LF_RETURN_IF_ERROR(writeHeader(entry.get(), e.path));
    if (buf_.empty()) {
      buf_.resize(kBufferBytes);
    }
    Sha256 sha;
    uint64_t off = 0;
    while (off < e.size) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), e.size - off));
      ssize_t n = ::read(fd.get(), buf_.data(), want);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return errnoStatus(errno, "reading context file " + quote(e.path));
      }
      if (n == 0) {
        return changed(e, "shrank");
      }
      sha.update(buf_.data(), static_cast<size_t>(n));
      if (archive_write_data(tar_->get(), buf_.data(), static_cast<size_t>(n)) != n) {
        return tar_->error("entry " + quote(e.path));
      }
      off += static_cast<uint64_t>(n);
    }
    if (sha.finish() != e.content) {
      return changed(e, "content");
    }
    return Status::ok();
  }

  int root_fd_;
  TarSink* tar_;
  std::string parent_;
  UniqueFd parent_fd_;
  std::vector<char> buf_;
};

// One entry as read, with the content of small files that may be the ignore file.
struct ReadEntry {
  ContextEntry entry;
  std::optional<std::string> data;
};

Status entryError(std::string_view name, std::string_view problem) {
  return invalidArgument("context tar: entry " + quote(name) + ": " + std::string(problem));
}

Result<EntryType> entryType(archive_entry* a, std::string_view name) {
  if (archive_entry_hardlink(a) != nullptr) {
    return entryError(name, "hard links are not allowed");
  }
  switch (archive_entry_filetype(a)) {
    case AE_IFREG:
      return EntryType::kRegular;
    case AE_IFDIR:
      return EntryType::kDirectory;
    case AE_IFLNK:
      return EntryType::kSymlink;
    case AE_IFIFO:
      return EntryType::kFifo;
    case AE_IFCHR:
      return EntryType::kCharDevice;
    case AE_IFBLK:
      return EntryType::kBlockDevice;
    default:
      return entryError(name, "entry kind not allowed");
  }
}

// Checks the header of one entry and fills in everything but the content digest.
Result<ContextEntry> describeEntry(archive_entry* a) {
  const char* raw = archive_entry_pathname(a);
  if (raw == nullptr) {
    return invalidArgument("context tar: an entry has no readable name");
  }
  std::string name(raw);
  ContextEntry e;
  LF_ASSIGN_OR_RETURN(e.type, entryType(a, name));
  e.path = name;
  if (e.type == EntryType::kDirectory && !e.path.empty() && e.path.back() == '/') {
    e.path.pop_back();
  }
  std::string problem = pathProblem(e.path);
  if (!problem.empty()) {
    return entryError(name, problem);
  }
  if (archive_entry_xattr_count(a) > 0 ||
      archive_entry_acl_count(a, ARCHIVE_ENTRY_ACL_TYPE_ACCESS | ARCHIVE_ENTRY_ACL_TYPE_DEFAULT |
                                     ARCHIVE_ENTRY_ACL_TYPE_NFS4) > 0) {
    return entryError(name, "extended attributes and ACLs are not allowed");
  }
  if (archive_entry_sparse_count(a) > 0) {
    return entryError(name, "sparse entries are not allowed");
  }
  e.mode = static_cast<uint32_t>(archive_entry_perm(a) & 07777);
  if (e.type == EntryType::kRegular) {
    la_int64_t size = archive_entry_size(a);
    if (size < 0) {
      return entryError(name, "negative size");
    }
    e.size = static_cast<uint64_t>(size);
  } else if (e.type == EntryType::kSymlink) {
    const char* target = archive_entry_symlink(a);
    if (target == nullptr || *target == '\0') {
      return entryError(name, "symlink without a target");
    }
    e.link_target = target;
    if (e.link_target.size() > kMaxNameBytes) {
      return entryError(name, "symlink target longer than 4096 bytes");
    }
    e.size = e.link_target.size();
  } else if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
    e.dev_major = static_cast<uint32_t>(archive_entry_rdevmajor(a));
    e.dev_minor = static_cast<uint32_t>(archive_entry_rdevminor(a));
  }
  return e;
}

// Hashes an entry's data; keeps it in *keep when asked (bounded by the ignore file limit).
Status readData(archive* ar, ReadEntry* r, bool keep_data, ArchiveSource& src) {
  Sha256 sha;
  uint64_t total = 0;
  if (keep_data) {
    r->data.emplace();
  }
  const void* block = nullptr;
  size_t len = 0;
  la_int64_t offset = 0;
  while (true) {
    int rc = archive_read_data_block(ar, &block, &len, &offset);
    if (rc == ARCHIVE_EOF) {
      break;
    }
    if (rc != ARCHIVE_OK) {
      if (!src.status().isOk()) {
        return src.status();
      }
      const char* msg = archive_error_string(ar);
      return entryError(r->entry.path, std::string("reading data: ") +
                                           (msg != nullptr ? msg : "unknown libarchive error"));
    }
    if (static_cast<uint64_t>(offset) != total) {
      return entryError(r->entry.path, "sparse data is not allowed");
    }
    sha.update(block, len);
    total += len;
    if (keep_data && r->data->size() + len <= DockerIgnore::kMaxFileBytes) {
      r->data->append(static_cast<const char*>(block), len);
    }
  }
  if (total != r->entry.size) {
    return entryError(r->entry.path, "data is shorter than its header says");
  }
  r->entry.content = sha.finish();
  return Status::ok();
}

// Rejects an entry below a non-directory ("link/x" under the symlink "link"): unpacking it would
// write through the symlink.
Status checkParents(const std::vector<ReadEntry>& sorted) {
  std::map<std::string_view, EntryType> types;
  for (const ReadEntry& r : sorted) {
    types.emplace(r.entry.path, r.entry.type);
  }
  for (const ReadEntry& r : sorted) {
    std::string_view p = r.entry.path;
    for (size_t slash = p.rfind('/'); slash != std::string_view::npos; slash = p.rfind('/')) {
      p = p.substr(0, slash);
      auto it = types.find(p);
      if (it != types.end() && it->second != EntryType::kDirectory) {
        return entryError(r.entry.path, "parent " + quote(p) + " is not a directory");
      }
    }
  }
  return Status::ok();
}

// Splits the entries as scanContext() would have: the Dockerfile and the ignore file go to
// builderOnly when the ignore file excludes them.
Result<ContextSnapshot> buildSnapshot(std::vector<ReadEntry> all, const std::string& dockerfile) {
  auto find = [&](const std::string& path) -> ReadEntry* {
    auto it =
        std::lower_bound(all.begin(), all.end(), path,
                         [](const ReadEntry& r, const std::string& p) { return r.entry.path < p; });
    return it != all.end() && it->entry.path == path ? &*it : nullptr;
  };
  std::string ignore_file;
  DockerIgnore ignore;
  for (const std::string& name : {dockerfile.empty() ? std::string() : dockerfile + ".dockerignore",
                                  std::string(".dockerignore")}) {
    ReadEntry* r = name.empty() ? nullptr : find(name);
    if (r == nullptr) {
      continue;
    }
    if (r->entry.type != EntryType::kRegular || !r->data.has_value()) {
      return invalidArgument("context tar: " + quote(name) + " is not a regular file");
    }
    if (r->entry.size > DockerIgnore::kMaxFileBytes) {
      return resourceExhausted("context tar: " + quote(name) + " is larger than " +
                               std::to_string(DockerIgnore::kMaxFileBytes) + " bytes");
    }
    auto parsed = DockerIgnore::parse(*r->data, name);
    if (!parsed.isOk()) {
      return parsed.status().withContext("context tar");
    }
    ignore = std::move(parsed).value();
    ignore_file = name;
    break;
  }
  std::vector<ContextEntry> entries;
  std::vector<ContextEntry> builder_only;
  entries.reserve(all.size());
  for (ReadEntry& r : all) {
    bool build_file =
        !r.entry.path.empty() && (r.entry.path == dockerfile || r.entry.path == ignore_file);
    if (build_file && ignore.isExcluded(r.entry.path)) {
      builder_only.push_back(std::move(r.entry));
    } else {
      entries.push_back(std::move(r.entry));
    }
  }
  return ContextSnapshot(std::move(entries), std::move(builder_only), {});
}

Result<std::vector<ReadEntry>> readEntries(archive* ar, ArchiveSource& src,
                                           const std::string& dockerfile) {
  std::vector<ReadEntry> all;
  while (true) {
    archive_entry* a = nullptr;
    int rc = archive_read_next_header(ar, &a);
    if (rc == ARCHIVE_EOF) {
      return all;
    }
    if (rc != ARCHIVE_OK) {
      if (!src.status().isOk()) {
        return src.status();
      }
      const char* msg = archive_error_string(ar);
      return invalidArgument(std::string("context tar: after ") + std::to_string(all.size()) +
                             " entries: " + (msg != nullptr ? msg : "unreadable header"));
    }
    ReadEntry r;
    LF_ASSIGN_OR_RETURN(r.entry, describeEntry(a));
    if (r.entry.type == EntryType::kRegular) {
      const std::string& p = r.entry.path;
      bool maybe_ignore =
          p == ".dockerignore" || (!dockerfile.empty() && p == dockerfile + ".dockerignore");
      LF_RETURN_IF_ERROR(readData(ar, &r, maybe_ignore, src));
    }
    all.push_back(std::move(r));
  }
}

}  // namespace

Status writeContextTar(const std::filesystem::path& root, const ContextSnapshot& snapshot,
                       const std::function<Status(std::string_view chunk)>& sink) {
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) {
    return errnoStatus(errno, "build context " + quote(root.string()));
  }
  ScopedUtf8Locale utf8;
  TarSink tar(sink);
  LF_RETURN_IF_ERROR(tar.open());
  ContextTarWriter writer(root_fd.get(), &tar);
  const ContextEntry* prev = nullptr;
  for (const ContextEntry* e : mergedEntries(snapshot)) {
    if (prev != nullptr && prev->path == e->path) {
      return invalidArgument("context entry " + quote(e->path) + " is listed twice");
    }
    LF_RETURN_IF_ERROR(writer.write(*e));
    prev = e;
  }
  return tar.close();
}

Result<ContextTarInfo> writeContextTarToStore(const std::filesystem::path& root,
                                              const ContextSnapshot& snapshot,
                                              blob::BlobStore& store) {
  LF_ASSIGN_OR_RETURN(auto writer, store.openWriter());
  LF_RETURN_IF_ERROR(writeContextTar(root, snapshot,
                                     [&](std::string_view chunk) { return writer->write(chunk); }));
  LF_ASSIGN_OR_RETURN(blob::BlobInfo info, writer->commit());
  return ContextTarInfo{info.digest, info.size};
}

Result<ContextSnapshot> readContextTar(
    const std::function<Result<size_t>(void* buf, size_t size)>& read,
    std::string_view dockerfile) {
  std::string df;
  if (!dockerfile.empty()) {
    auto norm = normalizeContextPath(dockerfile);
    df = norm.isOk() ? *norm : std::string();  // outside the context: as scanContext does
  }
  ScopedUtf8Locale utf8;
  std::unique_ptr<archive, ArchiveReadFree> ar(archive_read_new());
  if (!ar) {
    return resourceExhausted("context tar: out of memory");
  }
  ArchiveSource src(read, kBufferBytes);
  // Only tar, and no decompression filter: a context is an uncompressed tar by contract.
  if (archive_read_support_format_tar(ar.get()) != ARCHIVE_OK ||
      archive_read_support_format_empty(ar.get()) != ARCHIVE_OK ||
      archive_read_open(ar.get(), &src, nullptr, &ArchiveSource::onRead, nullptr) != ARCHIVE_OK) {
    if (!src.status().isOk()) {
      return src.status();
    }
    const char* msg = archive_error_string(ar.get());
    return invalidArgument(std::string("context tar: ") + (msg != nullptr ? msg : "unreadable"));
  }
  LF_ASSIGN_OR_RETURN(std::vector<ReadEntry> all, readEntries(ar.get(), src, df));
  LF_RETURN_IF_ERROR(src.drain());
  std::sort(all.begin(), all.end(),
            [](const ReadEntry& a, const ReadEntry& b) { return a.entry.path < b.entry.path; });
  for (size_t i = 1; i < all.size(); ++i) {
    if (all[i].entry.path == all[i - 1].entry.path) {
      return entryError(all[i].entry.path, "appears twice");
    }
  }
  LF_RETURN_IF_ERROR(checkParents(all));
  return buildSnapshot(std::move(all), df);
}

Result<ContextSnapshot> readContextTar(blob::BlobStore& store, const Digest& digest,
                                       std::string_view dockerfile) {
  LF_ASSIGN_OR_RETURN(auto reader, store.openReader(digest));
  auto result =
      readContextTar([&](void* buf, size_t size) { return reader->read(buf, size); }, dockerfile);
  if (!result.isOk()) {
    return result.status().withContext("context " + digest.toString());
  }
  return result;
}

}  // namespace lf::context
