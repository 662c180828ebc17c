#pragma once

// ContextSnapshot: the canonical description of a build context after .dockerignore, as the
// build plan needs it for COPY/ADD cache keys and as the CLI needs it to upload the context.
//
// An entry records exactly what can change a COPY result: path, type, permission bits (with
// setuid/setgid/sticky), size, symlink target, device numbers and the content SHA-256 of regular
// files. It deliberately leaves out mtime, atime, ctime, uid/gid, inode numbers and hard-link
// structure, so touching a file or checking it out as another user does not change any key.
//
// Entries are sorted by path in byte order, so equal contexts give equal snapshots and every
// subtree is one contiguous run. A snapshot is an immutable value once built; share it freely
// between threads.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::context {

// Docker sends regular files, directories, symlinks, FIFOs and device nodes in the context tar;
// it skips sockets (moby's archive package logs "skipping ... since it is a socket"), and so do
// we, listing them in ContextSnapshot::skipped().
enum class EntryType : uint8_t {
  kRegular = 0,
  kDirectory = 1,
  kSymlink = 2,
  kFifo = 3,
  kCharDevice = 4,
  kBlockDevice = 5,
};

std::string_view entryTypeName(EntryType type);

struct ContextEntry {
  std::string path;  // relative to the context root, '/'-separated, no "./", no trailing '/'
  EntryType type = EntryType::kRegular;
  uint32_t mode = 0;        // permission bits incl. setuid/setgid/sticky (st_mode & 07777)
  uint64_t size = 0;        // regular: bytes; symlink: target length; others: 0
  std::string link_target;  // symlinks only, exactly as stored (never resolved)
  Digest content;           // regular files only: SHA-256 of the bytes
  uint32_t dev_major = 0;   // character and block devices only
  uint32_t dev_minor = 0;

  friend bool operator==(const ContextEntry&, const ContextEntry&) = default;
};

// Appends the canonical encoding of `entry` under the name `rel_path` to `out`: length-prefixed
// fields in a fixed order, so no two different entries encode alike. The build plan uses it to
// put selected files into a COPY key exactly as digestOf() does.
void appendCanonical(const ContextEntry& entry, std::string_view rel_path, std::string* out);

// A socket or other file the scan did not send, with the reason.
struct SkippedEntry {
  std::string path;
  std::string reason;
};

class ContextSnapshot {
 public:
  ContextSnapshot() = default;
  // `entries` and `builder_only` must each be sorted by path with unique paths (LF_CHECKed).
  ContextSnapshot(std::vector<ContextEntry> entries, std::vector<ContextEntry> builder_only,
                  std::vector<SkippedEntry> skipped);

  // Everything COPY and ADD can see, sorted by path.
  const std::vector<ContextEntry>& entries() const { return entries_; }

  // The Dockerfile and .dockerignore when .dockerignore excludes them: Docker still sends them
  // (the builder must read them) but removes them from what COPY/ADD see. They are part of the
  // upload and of contextDigest(), never of entries(), find(), under() or digestOf().
  const std::vector<ContextEntry>& builderOnly() const { return builder_only_; }

  const std::vector<SkippedEntry>& skipped() const { return skipped_; }

  // The entry at `path` ("src/main.c"; "./src/main.c" and "src/" are accepted), or nullptr.
  const ContextEntry* find(std::string_view path) const;

  // Every entry strictly below directory `dir` ("" or "." for the whole context), in path order.
  std::span<const ContextEntry> under(std::string_view dir) const;

  // Canonical digest of `subtree` (a file, a directory, or "" / "." for the whole context) over
  // entries(): the subtree root itself (named "") and everything below it, named relative to it,
  // so moving a directory keeps its digest. kNotFound when nothing exists at `subtree`.
  Result<Digest> digestOf(std::string_view subtree) const;

  // Digest of everything the upload contains: entries() and builderOnly(). Two contexts with
  // the same contextDigest() send the same bytes to the builder.
  Digest contextDigest() const;

  // Sum of the sizes of the regular files in entries() and builderOnly().
  uint64_t totalFileBytes() const;

 private:
  std::vector<ContextEntry> entries_;
  std::vector<ContextEntry> builder_only_;
  std::vector<SkippedEntry> skipped_;
};

// Normalizes a user-supplied context path for lookups: drops "./" and trailing '/', cleans
// "a//b" and "a/./b"; "" and "." give "". Fails on paths that leave the context ("../x").
Result<std::string> normalizeContextPath(std::string_view path);

}  // namespace lf::context
