#include "common/layer/secure_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace lf::layer {

Result<std::vector<std::string>> splitEntryPath(std::string_view name) {
  if (name.find('\0') != std::string_view::npos) {
    return invalidArgument("path contains a NUL byte");
  }
  if (!name.empty() && name.front() == '/') {
    return invalidArgument("absolute path is not allowed in a layer");
  }
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) {
      slash = name.size();
    }
    std::string_view part = name.substr(pos, slash - pos);
    if (part == "..") {
      return invalidArgument("path component '..' is not allowed in a layer");
    }
    if (!part.empty() && part != ".") {
      parts.emplace_back(part);
    }
    pos = slash + 1;
  }
  return parts;
}

std::string joinPath(const std::vector<std::string>& components, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < components.size(); ++i) {
    if (i > 0) {
      out.push_back('/');
    }
    out += components[i];
  }
  return out;
}

int openInRootRaw(int root_fd, const std::string& rel, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  const char* path = rel.empty() ? "." : rel.c_str();
  while (true) {
    long fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
    if (fd >= 0) {
      return static_cast<int>(fd);
    }
    if (errno != EINTR && errno != EAGAIN) {  // EAGAIN: a concurrent rename raced the lookup
      return -errno;
    }
  }
}

Result<UniqueFd> openInRoot(int root_fd, const std::string& rel, int flags) {
  int fd = openInRootRaw(root_fd, rel, flags);
  if (fd >= 0) {
    return UniqueFd(fd);
  }
  if (fd == -ENOSYS) {
    return failedPrecondition("openat2 is not available (Linux >= 5.6 is required)");
  }
  return errnoStatus(-fd, "open '" + std::string(rel.empty() ? "." : rel) + "'");
}

Result<UniqueFd> openDirInRoot(int root_fd, const std::vector<std::string>& components,
                               size_t count, bool create) {
  auto whole = openInRoot(root_fd, joinPath(components, count), O_PATH | O_DIRECTORY);
  if (whole.isOk() || !create || whole.status().code() != StatusCode::kNotFound) {
    return whole;
  }
  // Some ancestor is missing: create from the top, resolving each prefix afresh (a prefix may be
  // a symlink; resolving from the root keeps the in-root semantics for every step).
  UniqueFd parent;
  LF_ASSIGN_OR_RETURN(parent, openInRoot(root_fd, "", O_PATH | O_DIRECTORY));
  for (size_t i = 0; i < count; ++i) {
    auto next = openInRoot(root_fd, joinPath(components, i + 1), O_PATH | O_DIRECTORY);
    if (!next.isOk() && next.status().code() == StatusCode::kNotFound) {
      if (mkdirat(parent.get(), components[i].c_str(), 0755) != 0 && errno != EEXIST) {
        return errnoStatus(errno, "create directory '" + joinPath(components, i + 1) + "'");
      }
      next = openInRoot(root_fd, joinPath(components, i + 1), O_PATH | O_DIRECTORY);
    }
    if (!next.isOk()) {
      return next.status();
    }
    parent = std::move(next).value();
  }
  return parent;
}

Result<std::vector<std::string>> listDirectory(int dir_fd, const std::string& path) {
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return errnoStatus(errno, "open directory '" + path + "'");
  }
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    close(fd);
    return errnoStatus(err, "open directory '" + path + "'");
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* d = readdir(dir)) {
    std::string_view n(d->d_name);
    if (n != "." && n != "..") {
      names.emplace_back(n);
    }
    errno = 0;
  }
  int err = errno;
  closedir(dir);
  if (err != 0) {
    return errnoStatus(err, "read directory '" + path + "'");
  }
  return names;
}

namespace {

Status removeChildren(int dir_fd, const std::string& path, int depth) {
  if (depth > 4096) {
    return resourceExhausted("'" + path + "' is nested too deeply to remove");
  }
  LF_ASSIGN_OR_RETURN(std::vector<std::string> names, listDirectory(dir_fd, path));
  for (const auto& name : names) {
    if (unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) {
      continue;
    }
    if (errno != EISDIR) {
      return errnoStatus(errno, "remove '" + path + "/" + name + "'");
    }
    UniqueFd child(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!child) {
      return errnoStatus(errno, "open '" + path + "/" + name + "'");
    }
    LF_RETURN_IF_ERROR(removeChildren(child.get(), path + "/" + name, depth + 1));
    if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return errnoStatus(errno, "remove directory '" + path + "/" + name + "'");
    }
  }
  return Status::ok();
}

}  // namespace

Status removeAllAt(int dir_fd, const std::string& name) {
  if (unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) {
    return Status::ok();
  }
  if (errno != EISDIR) {
    return errnoStatus(errno, "remove '" + name + "'");
  }
  UniqueFd child(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!child) {
    return errnoStatus(errno, "open '" + name + "'");
  }
  LF_RETURN_IF_ERROR(removeChildren(child.get(), name, 0));
  if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return errnoStatus(errno, "remove directory '" + name + "'");
  }
  return Status::ok();
}

}  // namespace lf::layer
