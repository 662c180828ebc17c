#pragma once

// Opening files strictly inside a directory, never through a symlink.
//
// The context scanner reads untrusted trees: a symlink anywhere in a path, or a directory swapped
// for a symlink while the scan runs, must not make it read outside the context root. openBeneath
// resolves a relative path under an open root directory with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS); where openat2 is missing (old kernels, seccomp filters answering ENOSYS
// or EPERM) it walks the path one component at a time with O_NOFOLLOW, which gives the same
// guarantee. Thread-safe.

#include <string_view>

#include "common/base/status.h"

namespace lf::context {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset(o.release());
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Opens `rel` ('/'-separated, relative, no "." or ".." components; "" opens the root itself)
// below `root_fd` with `flags` (O_CLOEXEC is always added). A symlink in any component, the last
// included, fails with ELOOP, reported as kFailedPrecondition. The errno is also stored in
// *err_out when given, for callers that treat ENOENT specially.
Result<UniqueFd> openBeneath(int root_fd, std::string_view rel, int flags, int* err_out = nullptr);

// The same for a NUL-terminated `rel` (the hashing hot loop: no copy, no allocation unless the
// openat2 fallback is in use or the open fails).
Result<UniqueFd> openBeneathCStr(int root_fd, const char* rel, int flags, int* err_out = nullptr);

// Makes every later call use the component-by-component fallback, as on a kernel without
// openat2; tests use it to cover that path. There is no way back (the fallback is as safe).
void forceOpenat2FallbackForTesting();

}  // namespace lf::context
