#include "worker/copy/archive_extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string_view>

#include "common/layer/secure_fs.h"

namespace lf::worker::copy_internal {
namespace {

using ArchivePtr = std::unique_ptr<archive, decltype(&archive_read_free)>;

struct PendingDir {
  std::string rel;  // beneath the extraction root
  EntryMeta meta;
};

// State of one extraction: the destination directory as its root.
struct Extraction {
  DestTree tree;
  std::string source;
  archive* ar = nullptr;
  std::set<std::string> linkable;  // non-directory entries written so far (hardlink targets)
  std::vector<PendingDir> dirs;    // metadata applied after all entries, deepest first
};

Status entryError(const Extraction& x, std::string_view name, const std::string& message) {
  return x.tree.error(x.source + ": archive entry '" + std::string(name) + "' " + message);
}

// Splits an entry name; absolute names become relative, ".." is refused.
Result<std::vector<std::string>> entryComponents(const Extraction& x, std::string_view name) {
  std::string_view rel = name;
  while (!rel.empty() && rel.front() == '/') {
    rel.remove_prefix(1);
  }
  auto parts = layer::splitEntryPath(rel);
  if (!parts.isOk()) {
    return entryError(x, name,
                      "would land outside the destination (" + parts.status().message() + ")");
  }
  return parts;
}

EntryMeta entryMeta(const Extraction& x, archive_entry* e) {
  EntryMeta meta;
  auto [uid, gid] = x.tree.owner(static_cast<uint32_t>(archive_entry_uid(e)),
                                 static_cast<uint32_t>(archive_entry_gid(e)));
  meta.uid = uid;
  meta.gid = gid;
  meta.mode = x.tree.mode(archive_entry_perm(e));
  meta.mtime = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
  meta.atime = meta.mtime;
  return meta;
}

// File capabilities and user.* attributes recorded in the archive (PAX SCHILY.xattr), set after
// the chown that would clear security.capability. Best effort, like copyXattrs().
void setEntryXattrs(archive_entry* e, int fd) {
  archive_entry_xattr_reset(e);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string_view n(name != nullptr ? name : "");
    if (n == "security.capability" || n.rfind("user.", 0) == 0) {
      (void)fsetxattr(fd, name, value, size, 0);  // best effort, as documented
    }
  }
}

Status writeRegular(Extraction& x, archive_entry* e, int dir, const std::string& leaf,
                    const std::string& path) {
  UniqueFd fd(
      openat(dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    return x.tree.errnoError(errno, "create " + path);
  }
  const void* block = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  int r;
  while ((r = archive_read_data_block(x.ar, &block, &size, &offset)) == ARCHIVE_OK) {
    const char* p = static_cast<const char*>(block);
    for (size_t done = 0; done < size;) {
      ssize_t n = pwrite(fd.get(), p + done, size - done, offset + static_cast<off_t>(done));
      if (n < 0 && errno != EINTR) {
        return x.tree.errnoError(errno, "write " + path);
      }
      done += n > 0 ? static_cast<size_t>(n) : 0;
    }
  }
  if (r != ARCHIVE_EOF) {
    return x.tree.error(x.source + ": read " + path + ": " + archive_error_string(x.ar));
  }
  // Sparse entries end in a hole: the size comes from the header, not the last block.
  if (ftruncate(fd.get(), archive_entry_size(e)) != 0) {
    return x.tree.errnoError(errno, "write " + path);
  }
  LF_RETURN_IF_ERROR(applyMeta(x.tree, fd.get(), entryMeta(x, e), path));
  setEntryXattrs(e, fd.get());
  ++x.tree.stats.files;
  x.tree.stats.bytes += static_cast<uint64_t>(archive_entry_size(e));
  return Status::ok();
}

Status writeHardlink(Extraction& x, std::string_view target_name, int dir, const std::string& leaf,
                     const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto target, entryComponents(x, target_name));
  std::string rel = layer::joinPath(target, target.size());
  if (x.linkable.count(rel) == 0) {
    return entryError(x, target_name,
                      "is the target of a hardlink but not an earlier file of "
                      "the archive");
  }
  int fd = openInRootRaw(x.tree.root.get(), rel, O_PATH | O_NOFOLLOW);
  if (fd < 0) {
    return x.tree.errnoError(-fd, "open hardlink target " + x.tree.path(target, target.size()));
  }
  UniqueFd target_fd(fd);
  if (linkat(target_fd.get(), "", dir, leaf.c_str(), AT_EMPTY_PATH) != 0) {
    std::string proc = "/proc/self/fd/" + std::to_string(target_fd.get());
    if (linkat(AT_FDCWD, proc.c_str(), dir, leaf.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return x.tree.errnoError(errno, "create hardlink " + path);
    }
  }
  ++x.tree.stats.files;
  return Status::ok();
}

Status writeDirectory(Extraction& x, archive_entry* e, int dir, const std::string& leaf,
                      const std::string& rel, const std::string& path) {
  struct stat st;
  if (fstatat(dir, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
    LF_RETURN_IF_ERROR(clearForFile(x.tree, dir, leaf, path, true));
    if (mkdirat(dir, leaf.c_str(), 0700) != 0) {
      return x.tree.errnoError(errno, "create directory " + path);
    }
    ++x.tree.stats.directories;
  }
  x.dirs.push_back({rel, entryMeta(x, e)});
  return Status::ok();
}

Status writeOther(Extraction& x, archive_entry* e, int dir, const std::string& leaf,
                  const std::string& path) {
  EntryMeta meta = entryMeta(x, e);
  mode_t type = archive_entry_filetype(e);
  if (type == AE_IFLNK) {
    const char* target = archive_entry_symlink(e);
    if (symlinkat(target != nullptr ? target : "", dir, leaf.c_str()) != 0) {
      return x.tree.errnoError(errno, "create symlink " + path);
    }
    ++x.tree.stats.symlinks;
    return applySymlinkMeta(x.tree, dir, leaf, meta, path);
  }
  if (type != AE_IFCHR && type != AE_IFBLK && type != AE_IFIFO) {
    return Status::ok();  // sockets and unknown types: nothing tar would create either
  }
  struct stat st = {};
  st.st_mode = type | meta.mode;
  st.st_rdev = archive_entry_rdev(e);
  st.st_uid = meta.uid;
  st.st_gid = meta.gid;
  st.st_mtim = meta.mtime;
  // Ids and mode are already final; keep_ids=true with the request's chown gives the same.
  return copySpecial(x.tree, st, dir, leaf, path, true);
}

Status extractEntry(Extraction& x, archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  std::string_view name = raw != nullptr ? raw : "";
  LF_ASSIGN_OR_RETURN(std::vector<std::string> parts, entryComponents(x, name));
  if (parts.empty()) {
    // "./" (tar -C dir -c .): like Docker's untar, it gives the destination its metadata.
    if (archive_entry_filetype(e) == AE_IFDIR) {
      x.dirs.push_back({"", entryMeta(x, e)});
    }
    return Status::ok();
  }
  LF_ASSIGN_OR_RETURN(UniqueFd dir, ensureDirectory(x.tree, parts, parts.size() - 1));
  const std::string& leaf = parts.back();
  std::string rel = layer::joinPath(parts, parts.size());
  std::string path = x.tree.path(parts, parts.size());
  if (archive_entry_filetype(e) == AE_IFDIR) {
    return writeDirectory(x, e, dir.get(), leaf, rel, path);
  }
  // Like tar, an archive entry replaces whatever the image had there, directories included.
  LF_RETURN_IF_ERROR(clearForFile(x.tree, dir.get(), leaf, path, true));
  if (const char* link = archive_entry_hardlink(e)) {
    LF_RETURN_IF_ERROR(writeHardlink(x, link, dir.get(), leaf, path));
  } else if (archive_entry_filetype(e) == AE_IFREG) {
    LF_RETURN_IF_ERROR(writeRegular(x, e, dir.get(), leaf, path));
  } else {
    LF_RETURN_IF_ERROR(writeOther(x, e, dir.get(), leaf, path));
  }
  x.linkable.insert(rel);
  return Status::ok();
}

Status finishDirectories(Extraction& x) {
  for (auto it = x.dirs.rbegin(); it != x.dirs.rend(); ++it) {
    int fd = openInRootRaw(x.tree.root.get(), it->rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0) {
      continue;  // a later entry replaced the directory with something else
    }
    UniqueFd dir(fd);
    std::string path = x.tree.prefix + "/" + it->rel;
    LF_RETURN_IF_ERROR(applyMeta(x.tree, dir.get(), it->meta, path));
  }
  return Status::ok();
}

}  // namespace

bool looksLikeArchive(int fd) {
  std::array<unsigned char, 512> head{};
  ssize_t n = pread(fd, head.data(), head.size(), 0);
  if (n < 4) {
    return false;
  }
  auto starts = [&](std::initializer_list<unsigned char> magic) {
    return static_cast<size_t>(n) >= magic.size() &&
           std::equal(magic.begin(), magic.end(), head.begin());
  };
  if (starts({0x1f, 0x8b}) || starts({'B', 'Z', 'h'}) || starts({0xfd, '7', 'z', 'X', 'Z', 0x00}) ||
      starts({0x28, 0xb5, 0x2f, 0xfd})) {
    return true;
  }
  return n == 512 && std::memcmp(head.data() + 257, "ustar", 5) == 0;
}

Result<bool> extractArchive(DestTree& dest, int src_fd,
                            const std::vector<std::string>& dest_components,
                            const std::string& source) {
  ArchivePtr ar(archive_read_new(), &archive_read_free);
  if (!ar || archive_read_support_format_tar(ar.get()) != ARCHIVE_OK ||
      archive_read_support_filter_all(ar.get()) != ARCHIVE_OK) {
    return internalError("libarchive: cannot set up a tar reader");
  }
  if (lseek(src_fd, 0, SEEK_SET) != 0 ||
      archive_read_open_fd(ar.get(), src_fd, 64 * 1024) != ARCHIVE_OK) {
    return false;
  }
  archive_entry* entry = nullptr;
  int r = archive_read_next_header(ar.get(), &entry);
  if (r != ARCHIVE_OK && r != ARCHIVE_WARN && r != ARCHIVE_EOF) {
    return false;  // compressed but not a tar, or a file that only looked like one
  }
  LF_ASSIGN_OR_RETURN(UniqueFd dir, ensureDirectory(dest, dest_components, dest_components.size()));
  Extraction x;
  x.tree.root.reset(openat(dir.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!x.tree.root) {
    return dest.errnoError(errno, "open " + dest.path(dest_components, dest_components.size()));
  }
  x.tree.what = dest.what;
  x.tree.prefix =
      dest_components.empty() ? dest.prefix : dest.path(dest_components, dest_components.size());
  x.tree.chown = dest.chown;
  x.tree.chmod = dest.chmod;
  x.source = source;
  x.ar = ar.get();
  for (; r != ARCHIVE_EOF; r = archive_read_next_header(ar.get(), &entry)) {
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return dest.error(source + ": damaged archive: " + archive_error_string(ar.get()));
    }
    LF_RETURN_IF_ERROR(extractEntry(x, entry));
  }
  LF_RETURN_IF_ERROR(finishDirectories(x));
  dest.stats.files += x.tree.stats.files;
  dest.stats.directories += x.tree.stats.directories;
  dest.stats.symlinks += x.tree.stats.symlinks;
  dest.stats.bytes += x.tree.stats.bytes;
  return true;
}

}  // namespace lf::worker::copy_internal
