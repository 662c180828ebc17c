// Copying files, special files and directory trees from a source tree into the image root.
// Source entries are opened relative to their parent directory fd with O_NOFOLLOW (a symlink
// inside a copied directory is copied as a symlink, never followed); destination entries are
// created relative to a directory fd already resolved inside the root.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>

#include "common/layer/secure_fs.h"
#include "worker/copy/copy_fs.h"

namespace lf::worker::copy_internal {
namespace {

// Links `name` to the destination copy of an already copied file; false when it was not copied
// yet or the kernel refuses (the caller then copies the data instead).
bool linkToEarlierCopy(DestTree& dest, const struct stat& st, int dst_dir,
                       const std::string& name) {
  auto it = dest.links.find({st.st_dev, st.st_ino});
  if (it == dest.links.end()) {
    return false;
  }
  if (linkat(it->second.get(), "", dst_dir, name.c_str(), AT_EMPTY_PATH) == 0) {
    return true;
  }
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc form needs only /proc.
  std::string proc = "/proc/self/fd/" + std::to_string(it->second.get());
  return linkat(AT_FDCWD, proc.c_str(), dst_dir, name.c_str(), AT_SYMLINK_FOLLOW) == 0;
}

constexpr size_t kMaxRememberedLinks = 1024;  // bounds the open fds kept for hardlinks

Status copySymlink(DestTree& dest, int src_dir, const std::string& name, const struct stat& st,
                   int dst_dir, const std::string& path, bool keep_ids) {
  // st_size is the target length on real filesystems; some report 0, hence the PATH_MAX floor.
  std::string target(std::max<size_t>(static_cast<size_t>(st.st_size), PATH_MAX) + 1, '\0');
  ssize_t n = readlinkat(src_dir, name.c_str(), target.data(), target.size());
  if (n < 0 || static_cast<size_t>(n) >= target.size()) {
    return dest.errnoError(n < 0 ? errno : ENAMETOOLONG, "read symlink for " + path);
  }
  target.resize(static_cast<size_t>(n));
  LF_RETURN_IF_ERROR(clearForFile(dest, dst_dir, name, path, false));
  if (symlinkat(target.c_str(), dst_dir, name.c_str()) != 0) {
    return dest.errnoError(errno, "create symlink " + path);
  }
  LF_RETURN_IF_ERROR(applySymlinkMeta(dest, dst_dir, name, metaFromStat(dest, st, keep_ids), path));
  ++dest.stats.symlinks;
  return Status::ok();
}

// Opens (creating when missing) the destination directory `name` in `dst_dir`. An existing
// symlink is followed inside the root, so a copy into an image whose /lib -> usr/lib works.
Result<UniqueFd> openOrCreateChildDir(DestTree& dest, int dst_dir, const std::string& name,
                                      std::vector<std::string>& dst_components) {
  const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = openat(dst_dir, name.c_str(), flags);
  if (fd < 0 && errno == ENOENT) {
    if (mkdirat(dst_dir, name.c_str(), 0700) != 0 && errno != EEXIST) {
      return dest.errnoError(
          errno, "create directory " + dest.path(dst_components, dst_components.size()));
    }
    ++dest.stats.directories;
    fd = openat(dst_dir, name.c_str(), flags);
  }
  if (fd >= 0) {
    return UniqueFd(fd);
  }
  std::string path = dest.path(dst_components, dst_components.size());
  if (errno == ELOOP || errno == ENOTDIR) {
    struct stat st;
    if (fstatat(dst_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
      return openDirectoryInRoot(dest, dst_components, dst_components.size());
    }
    return dest.error("cannot copy a directory to " + path + ": it exists and is not a directory");
  }
  return dest.errnoError(errno, "open " + path);
}

Status copyChild(DestTree& dest, int src_dir, const std::string& src_display,
                 const std::string& name, int dst_dir, std::vector<std::string>& dst_components,
                 bool keep_ids, int depth) {
  struct stat st;
  if (fstatat(src_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return dest.errnoError(errno, "stat " + src_display);
  }
  std::string path = dest.path(dst_components, dst_components.size());
  if (S_ISLNK(st.st_mode)) {
    return copySymlink(dest, src_dir, name, st, dst_dir, path, keep_ids);
  }
  if (S_ISREG(st.st_mode)) {
    UniqueFd src(openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!src) {
      return dest.errnoError(errno, "open " + src_display);
    }
    return copyFile(dest, src.get(), st, dst_dir, name, path, keep_ids);
  }
  if (!S_ISDIR(st.st_mode)) {
    return copySpecial(dest, st, dst_dir, name, path, keep_ids);
  }
  UniqueFd src(openat(src_dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!src) {
    return dest.errnoError(errno, "open " + src_display);
  }
  LF_ASSIGN_OR_RETURN(UniqueFd dst, openOrCreateChildDir(dest, dst_dir, name, dst_components));
  LF_RETURN_IF_ERROR(copyDirectoryContents(dest, src.get(), src_display, dst.get(), dst_components,
                                           keep_ids, depth + 1));
  // Like BuildKit, a directory inside the copied tree takes the source's metadata even when it
  // existed in the image; only the destination directory itself keeps its own.
  LF_RETURN_IF_ERROR(applyMeta(dest, dst.get(), metaFromStat(dest, st, keep_ids), path));
  copyXattrs(src.get(), dst.get());
  return Status::ok();
}

}  // namespace

Status copyFile(DestTree& dest, int src_fd, const struct stat& st, int dst_dir,
                const std::string& name, const std::string& path, bool keep_ids) {
  LF_RETURN_IF_ERROR(clearForFile(dest, dst_dir, name, path, false));
  if (st.st_nlink > 1 && linkToEarlierCopy(dest, st, dst_dir, name)) {
    ++dest.stats.files;
    return Status::ok();
  }
  UniqueFd dst(
      openat(dst_dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!dst) {
    return dest.errnoError(errno, "create " + path);
  }
  auto copied = copyData(src_fd, dst.get(), path);
  if (!copied.isOk()) {
    return copied.status().withContext(dest.what);
  }
  LF_RETURN_IF_ERROR(applyMeta(dest, dst.get(), metaFromStat(dest, st, keep_ids), path));
  copyXattrs(src_fd, dst.get());
  ++dest.stats.files;
  dest.stats.bytes += *copied;
  if (st.st_nlink > 1 && dest.links.size() < kMaxRememberedLinks) {
    dest.links.emplace(std::make_pair(st.st_dev, st.st_ino), std::move(dst));
  }
  return Status::ok();
}

Status copySpecial(DestTree& dest, const struct stat& st, int dst_dir, const std::string& name,
                   const std::string& path, bool keep_ids) {
  if (S_ISSOCK(st.st_mode)) {
    return Status::ok();  // a socket is meaningless without its process; tar skips them too
  }
  LF_RETURN_IF_ERROR(clearForFile(dest, dst_dir, name, path, false));
  if (mknodat(dst_dir, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
    return dest.errnoError(errno, "create " + path);
  }
  EntryMeta meta = metaFromStat(dest, st, keep_ids);
  if (fchownat(dst_dir, name.c_str(), meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW) != 0 ||
      fchmodat(dst_dir, name.c_str(), meta.mode, 0) != 0) {
    return dest.errnoError(errno, "set owner and mode of " + path);
  }
  timespec times[2] = {meta.atime, meta.mtime};
  if (utimensat(dst_dir, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return dest.errnoError(errno, "set times of " + path);
  }
  ++dest.stats.files;
  return Status::ok();
}

Status copyDirectoryContents(DestTree& dest, int src_dir, const std::string& src_display,
                             int dst_dir, std::vector<std::string>& dst_components, bool keep_ids,
                             int depth) {
  if (depth > 4096) {
    return dest.error(src_display + " is nested too deeply");
  }
  auto listed = layer::listDirectory(src_dir, src_display);
  if (!listed.isOk()) {
    return listed.status().withContext(dest.what);
  }
  std::vector<std::string> names = std::move(listed).value();
  std::sort(names.begin(), names.end());  // a stable order makes hardlink choice reproducible
  for (const std::string& name : names) {
    std::string child_display = src_display.empty() || src_display.back() == '/'
                                    ? src_display + name
                                    : src_display + "/" + name;
    dst_components.push_back(name);
    Status s =
        copyChild(dest, src_dir, child_display, name, dst_dir, dst_components, keep_ids, depth);
    dst_components.pop_back();
    LF_RETURN_IF_ERROR(s);
  }
  return Status::ok();
}

}  // namespace lf::worker::copy_internal
