#include "worker/copy/copy_fs.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/layer/secure_fs.h"

namespace lf::worker::copy_internal {

Status DestTree::error(const std::string& message) const {
  return invalidArgument(what + ": " + message);
}

Status DestTree::errnoError(int err, const std::string& message) const {
  return errnoStatus(err, what + ": " + message);
}

std::pair<uint32_t, uint32_t> DestTree::owner(uint32_t uid, uint32_t gid) const {
  return chown ? *chown : std::make_pair(uid, gid);
}

std::string DestTree::path(const std::vector<std::string>& components, size_t count) const {
  return prefix + "/" + layer::joinPath(components, count);
}

Result<UniqueFd> openDirectoryInRoot(DestTree& dest, const std::vector<std::string>& components,
                                     size_t count) {
  int fd =
      openInRootRaw(dest.root.get(), layer::joinPath(components, count), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    return UniqueFd(fd);
  }
  std::string path = dest.path(components, count);
  if (fd == -ENOTDIR) {
    return dest.error(path + " exists in the image and is not a directory");
  }
  if (fd == -ENOENT) {
    return dest.error(path + " is a symlink to a missing directory in the image");
  }
  return dest.errnoError(-fd, "open " + path);
}

Result<UniqueFd> ensureDirectory(DestTree& dest, const std::vector<std::string>& components,
                                 size_t count) {
  int root = openat(dest.root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    return dest.errnoError(errno, "open the image root");
  }
  UniqueFd dir(root);
  for (size_t i = 0; i < count; ++i) {
    const std::string& name = components[i];
    int fd = openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      if (mkdirat(dir.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        return dest.errnoError(errno, "create directory " + dest.path(components, i + 1));
      }
      fd = openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        auto [uid, gid] = dest.owner(0, 0);
        if (fchown(fd, uid, gid) != 0 || fchmod(fd, 0755) != 0) {
          int err = errno;
          close(fd);
          return dest.errnoError(err, "set owner of " + dest.path(components, i + 1));
        }
        ++dest.stats.directories;
      }
    }
    if (fd >= 0) {
      dir.reset(fd);
      continue;
    }
    if (errno == ELOOP || errno == ENOTDIR) {  // a symlink or a non-directory
      LF_ASSIGN_OR_RETURN(dir, openDirectoryInRoot(dest, components, i + 1));
      continue;
    }
    return dest.errnoError(errno, "open " + dest.path(components, i + 1));
  }
  return dir;
}

Status clearForFile(DestTree& dest, int dir_fd, const std::string& name, const std::string& path,
                    bool replace_directory) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return Status::ok();
    }
    return dest.errnoError(errno, "stat " + path);
  }
  if (S_ISDIR(st.st_mode)) {
    if (!replace_directory) {
      return dest.error("cannot replace directory " + path + " with a file");
    }
    Status removed = layer::removeAllAt(dir_fd, name);
    return removed.isOk() ? removed : removed.withContext(dest.what);
  }
  if (unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
    return dest.errnoError(errno, "replace " + path);
  }
  return Status::ok();
}

Status applyMeta(DestTree& dest, int fd, const EntryMeta& meta, const std::string& path) {
  if (fchown(fd, meta.uid, meta.gid) != 0) {
    return dest.errnoError(errno, "set owner of " + path);
  }
  if (fchmod(fd, meta.mode) != 0) {
    return dest.errnoError(errno, "set mode of " + path);
  }
  std::array<timespec, 2> times = {meta.atime, meta.mtime};
  if (futimens(fd, times.data()) != 0) {
    return dest.errnoError(errno, "set times of " + path);
  }
  return Status::ok();
}

Status applySymlinkMeta(DestTree& dest, int dir_fd, const std::string& name, const EntryMeta& meta,
                        const std::string& path) {
  if (fchownat(dir_fd, name.c_str(), meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return dest.errnoError(errno, "set owner of " + path);
  }
  std::array<timespec, 2> times = {meta.atime, meta.mtime};
  if (utimensat(dir_fd, name.c_str(), times.data(), AT_SYMLINK_NOFOLLOW) != 0) {
    return dest.errnoError(errno, "set times of " + path);
  }
  return Status::ok();
}

namespace {

Result<uint64_t> copyDataReadWrite(int src_fd, int dst_fd, uint64_t done, const std::string& path) {
  std::vector<char> buf(256 * 1024);
  while (true) {
    ssize_t n = read(src_fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, "read " + path);
    }
    if (n == 0) {
      return done;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(dst_fd, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0) {
        return errnoStatus(errno, "write " + path);
      }
      off += w;
    }
    done += static_cast<uint64_t>(n);
  }
}

}  // namespace

Result<uint64_t> copyData(int src_fd, int dst_fd, const std::string& path) {
  uint64_t done = 0;
  while (true) {
    ssize_t n = copy_file_range(src_fd, nullptr, dst_fd, nullptr, 1 << 30, 0);
    if (n > 0) {
      done += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) {
      return done;
    }
    if (errno == EINTR) {
      continue;
    }
    // Across filesystems or on ones without support: plain copying from the current offsets.
    if (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
        errno == EPERM || errno == ETXTBSY) {
      return copyDataReadWrite(src_fd, dst_fd, done, path);
    }
    return errnoStatus(errno, "copy " + path);
  }
}

void copyXattrs(int src_fd, int dst_fd) {
  std::array<char, 4096> names{};
  ssize_t len = flistxattr(src_fd, names.data(), names.size());
  if (len <= 0) {
    return;  // none, no support, or an unusually long list: xattrs are a best-effort extra
  }
  std::vector<char> value(64 * 1024);
  for (ssize_t pos = 0; pos < len;) {
    std::string_view name(names.data() + pos);
    pos += static_cast<ssize_t>(name.size()) + 1;
    if (name != "security.capability" && name.rfind("user.", 0) != 0) {
      continue;
    }
    std::string key(name);
    ssize_t n = fgetxattr(src_fd, key.c_str(), value.data(), value.size());
    if (n >= 0) {
      // Best effort, as documented: a destination without xattr support keeps the file.
      (void)fsetxattr(dst_fd, key.c_str(), value.data(), static_cast<size_t>(n), 0);
    }
  }
}

EntryMeta metaFromStat(const DestTree& dest, const struct stat& st, bool keep_source_ids) {
  EntryMeta meta;
  auto [uid, gid] = keep_source_ids ? dest.owner(st.st_uid, st.st_gid) : dest.owner(0, 0);
  meta.uid = uid;
  meta.gid = gid;
  meta.mode = dest.mode(st.st_mode);
  meta.mtime = st.st_mtim;
  meta.atime = st.st_mtim;  // atime follows mtime: the host's access times are not content
  return meta;
}

}  // namespace lf::worker::copy_internal
