#pragma once

// Path resolution and removal that cannot leave a root directory, for unpacking untrusted layers.
//
// Paths are resolved by the kernel with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV): every symlink met on the way, absolute or with "..", is interpreted as if
// the root were "/" (the way a container sees its rootfs), so nothing resolves outside it, and
// there is no window between a check and a use. The last component is never followed when the
// caller creates or replaces it (O_NOFOLLOW / *at calls on the parent). Needs Linux >= 5.6.

#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/layer/unique_fd.h"

namespace lf::layer {

// Splits a tar entry name into components, dropping "" and "." components. Rejects absolute
// names, ".." components and NUL bytes with kInvalidArgument. An empty result is the root.
Result<std::vector<std::string>> splitEntryPath(std::string_view name);

// "a/b/c" from components.
std::string joinPath(const std::vector<std::string>& components, size_t count);

// Opens `rel` (relative, may be empty for the root itself) beneath `root_fd` with the resolve
// rules above. `flags` are open(2) flags (O_PATH, O_DIRECTORY, O_NOFOLLOW...).
Result<UniqueFd> openInRoot(int root_fd, const std::string& rel, int flags);

// The same resolution, returning the fd (the caller closes it) or -errno, for callers that must
// tell "missing" from "not a directory" (Status codes fold the two together).
int openInRootRaw(int root_fd, const std::string& rel, int flags);

// Opens the directory holding components[0..count) beneath the root, creating missing
// directories (mode 0755, root-owned by the caller) when `create` is set.
Result<UniqueFd> openDirInRoot(int root_fd, const std::vector<std::string>& components,
                               size_t count, bool create);

// Removes `name` in `dir_fd`, recursively if it is a directory, never following symlinks.
// A missing entry is not an error.
Status removeAllAt(int dir_fd, const std::string& name);

// The names in the directory open as `dir_fd` (without "." and ".."); `path` names it in errors.
Result<std::vector<std::string>> listDirectory(int dir_fd, const std::string& path);

}  // namespace lf::layer
