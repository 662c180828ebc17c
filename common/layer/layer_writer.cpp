#include "common/layer/layer_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"

namespace lf::layer {
namespace {

constexpr size_t kReadBytes = 1 << 20;
constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Xattrs carried into layers. Overlay markers are translated, never copied.
bool keepXattr(std::string_view name) {
  if (startsWith(name, "trusted.overlay.") || startsWith(name, "user.overlay.")) {
    return false;
  }
  return name == "security.capability" || startsWith(name, "user.");
}

// Reads every xattr of an open file: name -> value.
Result<std::map<std::string, std::string>> readXattrs(int fd, const std::string& path) {
  std::map<std::string, std::string> out;
  std::string names(4096, '\0');
  ssize_t n;
  while ((n = flistxattr(fd, names.data(), names.size())) < 0 && errno == ERANGE) {
    names.resize(names.size() * 4);
  }
  if (n < 0) {
    if (errno == ENOTSUP) {
      return out;
    }
    return errnoStatus(errno, "list xattrs of '" + path + "'");
  }
  for (size_t pos = 0; pos < static_cast<size_t>(n);) {
    std::string name(names.data() + pos);
    pos += name.size() + 1;
    std::string value(256, '\0');
    ssize_t v;
    while ((v = fgetxattr(fd, name.c_str(), value.data(), value.size())) < 0 && errno == ERANGE) {
      value.resize(value.size() * 4);
    }
    if (v < 0) {
      if (errno == ENODATA) {
        continue;  // removed between list and get
      }
      return errnoStatus(errno, "read xattr " + name + " of '" + path + "'");
    }
    value.resize(static_cast<size_t>(v));
    out.emplace(std::move(name), std::move(value));
  }
  return out;
}

bool isOverlayFlag(const std::map<std::string, std::string>& xattrs, std::string_view suffix) {
  for (const char* prefix : {"trusted.overlay.", "user.overlay."}) {
    auto it = xattrs.find(std::string(prefix) + std::string(suffix));
    if (it != xattrs.end() && (suffix != "opaque" || it->second == "y")) {
      return true;
    }
  }
  return false;
}

// Sorted names in a directory, without "." and "..".
Result<std::vector<std::string>> listDir(int dirfd, const std::string& path) {
  LF_ASSIGN_OR_RETURN(std::vector<std::string> names, listDirectory(dirfd, path));
  std::sort(names.begin(), names.end());
  return names;
}

// Walks a tree and writes it as tar entries into an open libarchive writer.
class TreeWriter {
 public:
  TreeWriter(archive* ar, const LayerOptions& options) : ar_(ar), options_(options) {}

  Status writeTree(const std::filesystem::path& dir) {
    UniqueFd root(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
      return errnoStatus(errno, "open layer directory '" + dir.string() + "'");
    }
    struct stat st;
    if (fstat(root.get(), &st) != 0) {
      return errnoStatus(errno, "stat '" + dir.string() + "'");
    }
    root_dev_ = st.st_dev;
    buf_.resize(kReadBytes);
    return walk(root.get(), "", 0);
  }

 private:
  Status walk(int dirfd, const std::string& prefix, int depth) {
    if (depth > 1024) {
      return resourceExhausted("directory tree deeper than 1024 levels at '" + prefix + "'");
    }
    LF_ASSIGN_OR_RETURN(std::vector<std::string> names, listDir(dirfd, prefix));
    for (const std::string& name : names) {
      LF_RETURN_IF_ERROR(writeEntry(dirfd, prefix, name, depth));
    }
    return Status::ok();
  }

  Status writeEntry(int dirfd, const std::string& prefix, const std::string& name, int depth) {
    const std::string path = prefix + name;
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return errnoStatus(errno, "stat '" + path + "'");
    }
    if (st.st_dev != root_dev_ || S_ISSOCK(st.st_mode)) {
      return Status::ok();  // another filesystem's mount point, or a socket: not layer content
    }
    if (options_.overlay_upper && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      return writeMarker(prefix + kWhiteoutPrefix + name, st);
    }
    if (S_ISDIR(st.st_mode)) {
      return writeDir(dirfd, path, name, st, depth);
    }
    if (S_ISREG(st.st_mode)) {
      return writeFile(dirfd, path, name, st);
    }
    ArchiveEntry entry(path, st, options_);
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = readlinkat(dirfd, name.c_str(), target.data(), target.size());
      if (n < 0) {
        return errnoStatus(errno, "read symlink '" + path + "'");
      }
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(entry.get(), target.c_str());
    } else {
      archive_entry_set_rdevmajor(entry.get(), major(st.st_rdev));
      archive_entry_set_rdevminor(entry.get(), minor(st.st_rdev));
    }
    return writeHeader(entry, path);
  }

  Status writeDir(int dirfd, const std::string& path, const std::string& name,
                  const struct stat& st, int depth) {
    UniqueFd fd(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      return errnoStatus(errno, "open directory '" + path + "'");
    }
    LF_ASSIGN_OR_RETURN(auto xattrs, readXattrs(fd.get(), path));
    ArchiveEntry entry(path + "/", st, options_);
    addXattrs(entry, xattrs);
    LF_RETURN_IF_ERROR(writeHeader(entry, path));
    if (options_.overlay_upper && isOverlayFlag(xattrs, "opaque")) {
      LF_RETURN_IF_ERROR(writeMarker(path + "/" + kOpaqueMarker, st));
    }
    return walk(fd.get(), path + "/", depth + 1);
  }

  Status writeFile(int dirfd, const std::string& path, const std::string& name,
                   const struct stat& st) {
    ArchiveEntry entry(path, st, options_);
    if (st.st_nlink > 1) {
      auto [it, inserted] = links_.emplace(std::make_pair(st.st_dev, st.st_ino), path);
      if (!inserted) {
        archive_entry_set_hardlink(entry.get(), it->second.c_str());
        archive_entry_set_size(entry.get(), 0);
        return writeHeader(entry, path);
      }
    }
    UniqueFd fd(openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      return errnoStatus(errno, "open '" + path + "'");
    }
    LF_ASSIGN_OR_RETURN(auto xattrs, readXattrs(fd.get(), path));
    if (options_.overlay_upper && st.st_size == 0 && isOverlayFlag(xattrs, "whiteout")) {
      const size_t slash = path.rfind('/');
      const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash + 1);
      return writeMarker(parent + kWhiteoutPrefix + name, st);
    }
    addXattrs(entry, xattrs);
    LF_RETURN_IF_ERROR(writeHeader(entry, path));
    return copyData(fd.get(), path, static_cast<uint64_t>(st.st_size),
                    static_cast<uint64_t>(st.st_blocks) * 512 < static_cast<uint64_t>(st.st_size));
  }

  // Streams exactly `size` bytes; holes of sparse files are produced from memory, not read.
  Status copyData(int fd, const std::string& path, uint64_t size, bool sparse) {
    uint64_t off = 0;
    while (off < size) {
      if (sparse) {
        off_t data = lseek(fd, static_cast<off_t>(off), SEEK_DATA);
        uint64_t hole_end = data < 0 ? size : std::min<uint64_t>(data, size);
        if (hole_end > off) {
          std::fill(buf_.begin(), buf_.end(), '\0');
          while (off < hole_end) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(buf_.size(), hole_end - off));
            LF_RETURN_IF_ERROR(writeData(buf_.data(), n, path));
            off += n;
          }
          continue;
        }
      }
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), size - off));
      ssize_t n = pread(fd, buf_.data(), want, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errnoStatus(errno, "read '" + path + "'");
      }
      if (n == 0) {
        return failedPrecondition("'" + path + "' shrank while the layer was written");
      }
      LF_RETURN_IF_ERROR(writeData(buf_.data(), static_cast<size_t>(n), path));
      off += static_cast<uint64_t>(n);
    }
    return Status::ok();
  }

  // An empty regular file standing for a whiteout or an opaque marker, owned like `st`.
  Status writeMarker(const std::string& path, const struct stat& st) {
    struct stat marker = st;
    marker.st_mode = S_IFREG | 0600;
    marker.st_size = 0;
    ArchiveEntry entry(path, marker, options_);
    return writeHeader(entry, path);
  }

  // archive_entry with the fields every entry shares.
  class ArchiveEntry {
   public:
    ArchiveEntry(const std::string& path, const struct stat& st, const LayerOptions& options)
        : e_(archive_entry_new()) {
      archive_entry_copy_pathname(e_, path.c_str());
      archive_entry_set_filetype(e_, st.st_mode & S_IFMT);
      archive_entry_set_perm(e_, st.st_mode & 07777);
      archive_entry_set_uid(e_, options.force_uid.value_or(st.st_uid));
      archive_entry_set_gid(e_, options.force_gid.value_or(st.st_gid));
      int64_t mtime = st.st_mtim.tv_sec;
      if (options.source_date_epoch && mtime > *options.source_date_epoch) {
        mtime = *options.source_date_epoch;
      }
      archive_entry_set_mtime(e_, mtime, 0);
      archive_entry_set_size(e_, S_ISREG(st.st_mode) ? st.st_size : 0);
    }
    ~ArchiveEntry() { archive_entry_free(e_); }
    ArchiveEntry(const ArchiveEntry&) = delete;
    ArchiveEntry& operator=(const ArchiveEntry&) = delete;
    archive_entry* get() const { return e_; }

   private:
    archive_entry* e_;
  };

  static void addXattrs(ArchiveEntry& entry, const std::map<std::string, std::string>& xattrs) {
    for (const auto& [name, value] : xattrs) {
      if (keepXattr(name)) {
        archive_entry_xattr_add_entry(entry.get(), name.c_str(), value.data(), value.size());
      }
    }
  }

  Status writeHeader(const ArchiveEntry& entry, const std::string& path) {
    if (archive_write_header(ar_, entry.get()) < ARCHIVE_WARN) {
      return archiveError("write tar header for '" + path + "'");
    }
    return Status::ok();
  }

  Status writeData(const char* data, size_t size, const std::string& path) {
    la_ssize_t n = archive_write_data(ar_, data, size);
    if (n < 0 || static_cast<size_t>(n) != size) {
      return archiveError("write tar data of '" + path + "'");
    }
    return Status::ok();
  }

 public:
  // The sink's own error, when the failure came from downstream (compression, blob store).
  Status* downstream_error = nullptr;

  Status archiveError(const std::string& what) {
    if (downstream_error != nullptr && !downstream_error->isOk()) {
      return downstream_error->withContext(what);
    }
    const char* msg = archive_error_string(ar_);
    return internalError(what + ": " + (msg ? msg : "libarchive error"));
  }

 private:
  archive* ar_;
  const LayerOptions& options_;
  dev_t root_dev_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::string buf_;
};

// Tar bytes from libarchive: hashed for the diff ID, then compressed.
struct TarSink {
  Sha256 diff_sha;
  Compressor* compressor = nullptr;
  Status error;
};

la_ssize_t tarWrite(archive*, void* client, const void* buffer, size_t length) {
  auto* sink = static_cast<TarSink*>(client);
  sink->diff_sha.update(buffer, length);
  sink->error = sink->compressor->write(buffer, length);
  return sink->error.isOk() ? static_cast<la_ssize_t>(length) : -1;
}

}  // namespace

Result<std::optional<int64_t>> sourceDateEpochFromEnv() {
  const char* env = std::getenv("SOURCE_DATE_EPOCH");
  if (env == nullptr || *env == '\0') {
    return std::optional<int64_t>();
  }
  std::string_view text(env);
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > (INT64_MAX - 9) / 10) {
      return invalidArgument("SOURCE_DATE_EPOCH='" + std::string(text) +
                             "': expected a non-negative integer number of seconds");
    }
    value = value * 10 + (c - '0');
  }
  return std::optional<int64_t>(value);
}

Result<LayerInfo> writeLayerTo(const std::filesystem::path& dir, const LayerOptions& options,
                               const Sink& sink) {
  // Uncompressed, the blob is the tar: one hash serves as both digest and diff ID.
  const bool hash_blob = options.compression != Compression::kNone;
  Sha256 blob_sha;
  uint64_t blob_size = 0;
  Sink counting = [&](const void* data, size_t size) {
    if (hash_blob) {
      blob_sha.update(data, size);
    }
    blob_size += size;
    return sink(data, size);
  };
  CompressorOptions copts{options.threads, options.gzip_level, options.zstd_level};
  LF_ASSIGN_OR_RETURN(auto compressor, makeCompressor(options.compression, copts, counting));

  TarSink tar_sink;
  tar_sink.compressor = compressor.get();
  std::unique_ptr<archive, decltype(&archive_write_free)> ar(archive_write_new(),
                                                             &archive_write_free);
  // pax_restricted: plain ustar headers unless an entry needs more (long names, big sizes or
  // ids, xattrs), then a PAX extended header. No padding of the last 10 KiB block.
  // The block size only sets how libarchive batches its output (256 KiB per callback); with
  // bytes_in_last_block 1 it does not change the bytes.
  if (archive_write_set_format_pax_restricted(ar.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_per_block(ar.get(), 256 * 1024) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(ar.get(), 1) != ARCHIVE_OK ||
      archive_write_open2(ar.get(), &tar_sink, nullptr, tarWrite, nullptr, nullptr) != ARCHIVE_OK) {
    const char* msg = archive_error_string(ar.get());
    return internalError(std::string("start tar writer: ") + (msg ? msg : "libarchive error"));
  }
  TreeWriter writer(ar.get(), options);
  writer.downstream_error = &tar_sink.error;
  Status walked = writer.writeTree(dir);
  if (!walked.isOk()) {
    return walked.withContext("write layer from '" + dir.string() + "'");
  }
  if (archive_write_close(ar.get()) != ARCHIVE_OK) {
    return writer.archiveError("finish tar of '" + dir.string() + "'");
  }
  LF_RETURN_IF_ERROR(compressor->finish());

  LayerInfo info;
  info.media_type = std::string(layerMediaType(options.compression));
  info.diff_id = tar_sink.diff_sha.finish();
  info.digest = hash_blob ? blob_sha.finish() : info.diff_id;
  info.size = blob_size;
  return info;
}

Result<LayerInfo> writeLayer(const std::filesystem::path& dir, const LayerOptions& options,
                             blob::BlobStore& store) {
  LF_ASSIGN_OR_RETURN(std::unique_ptr<blob::BlobWriter> writer, store.openWriter());
  LF_ASSIGN_OR_RETURN(LayerInfo info, writeLayerTo(dir, options, [&](const void* d, size_t n) {
                        return writer->write(d, n);
                      }));
  // The store hashes independently; passing our digest makes it refuse a mismatch.
  LF_ASSIGN_OR_RETURN(blob::BlobInfo stored, writer->commit(info.digest));
  if (stored.size != info.size) {
    return dataLoss("layer blob " + info.digest.toString() + ": store recorded " +
                    std::to_string(stored.size) + " bytes, wrote " + std::to_string(info.size));
  }
  return info;
}

}  // namespace lf::layer
