#include "common/context/safe_open.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace lf::context {

namespace {

std::atomic<bool> g_openat2_unavailable{false};

int rawOpenat2(int dir_fd, const char* path, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof(how));
    // EAGAIN: the kernel saw a concurrent rename and could not prove containment; retry.
    if (fd < 0 && errno == EAGAIN && attempt < 8) {
      continue;
    }
    return static_cast<int>(fd);
  }
}

// One component at a time: every intermediate directory with O_DIRECTORY|O_NOFOLLOW, then the
// last component with O_NOFOLLOW. Returns -1 with errno set on failure.
int openByComponents(int root_fd, std::string_view rel, int flags) {
  UniqueFd dir;
  int cur = root_fd;
  size_t pos = 0;
  while (true) {
    size_t slash = rel.find('/', pos);
    std::string name(rel.substr(pos, slash == std::string_view::npos ? rel.npos : slash - pos));
    if (slash == std::string_view::npos) {
      return openat(cur, name.c_str(), flags | O_NOFOLLOW);
    }
    int next = openat(cur, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      // O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR; report it as openat2 would (ELOOP).
      struct stat st {};
      if (errno == ENOTDIR && fstatat(cur, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode)) {
        errno = ELOOP;
      }
      return -1;
    }
    dir.reset(next);
    cur = next;
    pos = slash + 1;
  }
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) {
    // close() can only fail with EINTR/EIO here, and the descriptor is released either way.
    ::close(fd_);
  }
  fd_ = fd;
}

void forceOpenat2FallbackForTesting() {
  g_openat2_unavailable.store(true, std::memory_order_relaxed);
}

Result<UniqueFd> openBeneath(int root_fd, std::string_view rel, int flags, int* err_out) {
  std::string path(rel);
  return openBeneathCStr(root_fd, path.c_str(), flags, err_out);
}

Result<UniqueFd> openBeneathCStr(int root_fd, const char* rel_cstr, int flags, int* err_out) {
  flags |= O_CLOEXEC;
  std::string_view rel(rel_cstr);
  const char* path = rel.empty() ? "." : rel_cstr;
  int fd = -1;
  bool fallback = g_openat2_unavailable.load(std::memory_order_relaxed);
  if (!fallback) {
    fd = rawOpenat2(root_fd, path, flags);
    // Container seccomp profiles deny syscalls they do not know with EPERM, old kernels with
    // ENOSYS. Plain openat never answers EPERM for a read-only open of a file we may read, so a
    // genuine EPERM shows up again below.
    if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
      g_openat2_unavailable.store(true, std::memory_order_relaxed);
      fallback = true;
    }
  }
  if (fallback) {
    fd = rel.empty() ? openat(root_fd, ".", flags) : openByComponents(root_fd, rel, flags);
  }
  if (fd >= 0) {
    if (err_out != nullptr) {
      *err_out = 0;
    }
    return UniqueFd(fd);
  }
  int err = errno;
  if (err_out != nullptr) {
    *err_out = err;
  }
  if (err == ELOOP) {
    return failedPrecondition("\"" + std::string(rel) +
                              "\": a symlink is in the way (the context changed during the scan?)");
  }
  return errnoStatus(err, "\"" + std::string(rel) + "\"");
}

}  // namespace lf::context
