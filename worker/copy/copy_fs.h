#pragma once

// File-level building blocks shared by COPY (tree copy) and ADD (archive extraction): creating
// directories beneath an image root with container semantics, replacing an entry, and applying
// ownership, mode and times in the order that keeps setuid bits and file capabilities.
//
// Every function works on directory fds already inside the destination root and on single path
// components, so nothing here can leave the root: components are opened with O_NOFOLLOW, and a
// symlink met on the way is resolved from the root with openat2(RESOLVE_IN_ROOT).
// Internal to worker/copy; not thread-safe per DestTree (it counts into one CopyStats).

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"
#include "worker/copy/copy_executor.h"

namespace lf::worker::copy_internal {

using layer::UniqueFd;

using layer::openInRootRaw;

// Metadata to give a created or copied entry.
struct EntryMeta {
  uint32_t uid = 0;
  uint32_t gid = 0;
  mode_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  timespec mtime{};
  timespec atime{};
};

// The destination tree and the policy for what is written into it.
struct DestTree {
  UniqueFd root;       // O_PATH | O_DIRECTORY fd of dest_root
  std::string what;    // "COPY a b /dst/": prefix of every error
  std::string prefix;  // container path of `root` in messages ("" for "/")
  std::optional<std::pair<uint32_t, uint32_t>> chown;  // --chown ids
  std::optional<mode_t> chmod;                         // --chmod bits
  CopyStats stats;
  // First copy of each multiply-linked source file, to link later names to it.
  std::map<std::pair<dev_t, ino_t>, UniqueFd> links;

  Status error(const std::string& message) const;
  Status errnoError(int err, const std::string& message) const;
  // The ids for an entry whose source has `uid`/`gid` (already chosen by the caller's policy).
  std::pair<uint32_t, uint32_t> owner(uint32_t uid, uint32_t gid) const;
  mode_t mode(mode_t source_bits) const { return chmod ? *chmod : (source_bits & 07777); }
  // prefix + "/" + components[0..count): the container path used in messages.
  std::string path(const std::vector<std::string>& components, size_t count) const;
};

// Opens (O_RDONLY | O_DIRECTORY) the directory components[0..count) beneath the root, creating
// missing ones with mode 0755 owned by --chown ids (else 0:0) and counting them in stats.
// An existing symlink on the way is followed inside the root. A non-directory is an error naming
// the container path.
Result<UniqueFd> ensureDirectory(DestTree& dest, const std::vector<std::string>& components,
                                 size_t count);

// Opens (O_RDONLY | O_DIRECTORY) components[0..count) resolved from the root, following
// symlinks inside it; errors name the container path.
Result<UniqueFd> openDirectoryInRoot(DestTree& dest, const std::vector<std::string>& components,
                                     size_t count);

// Makes room for a non-directory entry `name` in `dir_fd`: removes a file or symlink there; an
// existing directory is an error unless `replace_directory` (ADD extraction, like tar).
Status clearForFile(DestTree& dest, int dir_fd, const std::string& name, const std::string& path,
                    bool replace_directory);

// Applies ownership, mode and times to an open regular file or directory, in that order
// (chown clears setuid bits and security.capability, so both are set afterwards).
Status applyMeta(DestTree& dest, int fd, const EntryMeta& meta, const std::string& path);

// The same for a symlink `name` in `dir_fd` (no mode on Linux symlinks).
Status applySymlinkMeta(DestTree& dest, int dir_fd, const std::string& name, const EntryMeta& meta,
                        const std::string& path);

// Copies the bytes of `src_fd` into `dst_fd` with copy_file_range, falling back to read/write.
Result<uint64_t> copyData(int src_fd, int dst_fd, const std::string& path);

// Copies security.capability and user.* extended attributes (best effort: a filesystem without
// xattrs is not an error). Call after applyMeta's chown.
void copyXattrs(int src_fd, int dst_fd);

// Metadata from a stat of the source and the ownership policy of the request.
EntryMeta metaFromStat(const DestTree& dest, const struct stat& st, bool keep_source_ids);

// --- tree copy (tree_copy.cpp) ---

// Copies the regular file open as `src_fd` (stat `st`) to `name` in `dst_dir`, replacing a
// non-directory there; a second name of an already copied multiply-linked file becomes a
// hardlink. `path` names the destination in errors.
Status copyFile(DestTree& dest, int src_fd, const struct stat& st, int dst_dir,
                const std::string& name, const std::string& path, bool keep_ids);

// Creates a device node or fifo like `st` at `name` in `dst_dir` (sockets are skipped).
Status copySpecial(DestTree& dest, const struct stat& st, int dst_dir, const std::string& name,
                   const std::string& path, bool keep_ids);

// Copies the contents of the directory `src_dir` into `dst_dir`, which is dst_components
// beneath dest.root, recursively. Symlinks are copied as symlinks; subdirectories get the
// source's metadata after their contents.
Status copyDirectoryContents(DestTree& dest, int src_dir, const std::string& src_display,
                             int dst_dir, std::vector<std::string>& dst_components, bool keep_ids,
                             int depth);

}  // namespace lf::worker::copy_internal
