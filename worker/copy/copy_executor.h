#pragma once

// COPY and ADD without a process: copies from a source tree into an image root filesystem with
// Docker's destination rules.
//
// The step runner mounts both trees (the unpacked build context, or an overlay of another
// stage's layers for --from, read-only; and the image rootfs whose overlay upper dir becomes the
// layer) in a private mount namespace and calls copyIntoRoot(). Both trees are read with
// container semantics (common/layer/secure_fs.h): "/" is the tree's root, ".." stops there, and
// every symlink met on the way resolves inside the tree, so neither a hostile context nor a
// hostile image can make the copy read or write outside them.
//
// Rules (Docker's, see the Dockerfile reference for COPY and ADD):
//   - A source that is a directory has its contents copied into the destination, not itself.
//   - A source file goes to dest/basename when the destination ends with "/" or is an existing
//     directory; otherwise the destination is the file's new path.
//   - Several sources (or a wildcard matching several) need a destination ending with "/".
//   - Wildcards follow Go's filepath.Match per path component; no match is an error.
//   - Missing parents of the destination are created (0755, owned like the copied files).
//   - The named source itself is followed if it is a symlink; symlinks found inside a source
//     directory are copied as symlinks with their target verbatim.
//   - Permission bits and mtimes are kept unless --chmod; ownership is --chown, else 0:0 for
//     context sources, else the source's own ids (--from).
//   - ADD extracts a local tar archive (plain or gzip/bzip2/xz/zstd, detected by content) into
//     the destination directory; other files are copied like COPY. Remote URLs are kUnimplemented.
//
// Where Docker's two builders differ or the reference is silent, this is what we do:
//   - ".." above the source root is an error (the classic builder's "forbidden path outside the
//     build context"), not clamped to the root as BuildKit does.
//   - A wildcard matching several sources needs a trailing "/" like several written sources; a
//     destination "." or ending in "/." or ".." counts as a directory.
//   - An existing symlink in the image where a directory is needed (/lib -> usr/lib) is followed
//     inside the root (the classic builder); BuildKit fails with "cannot copy to non-directory".
//     A symlink to a missing directory is an error, as for both builders.
//   - Directories inside a copied tree take the source's metadata even when they existed; the
//     destination directory itself keeps its own unless this copy created it (BuildKit).
//   - --chmod applies to copied files and directories (not to created parents, not to symlinks),
//     and to the entries an ADD extracts.
//   - ADD's archive entries resolve with the destination directory as their root (Docker's
//     untar scoping), keep the archive's ids unless --chown, and replace existing entries, even
//     directories, like tar. Only sources named in the instruction are extracted.
//
// Thread-safety: copyIntoRoot() keeps no state; concurrent calls on distinct destination trees
// are safe. Errors: every error names the instruction and the path as the user wrote it
// ("COPY app/ /srv/: no such file or directory in the build context: app/"). A failed copy may
// leave a partial result in dest_root; the caller discards the layer.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace lf::worker {

struct CopyRequest {
  // As written in the Dockerfile (after ARG/ENV expansion), relative to source_root ("/" is the
  // root of the source tree). May contain wildcards (Go filepath.Match: * ? [..] and \ escapes).
  std::vector<std::string> sources;
  // Absolute, or relative to working_dir. A trailing "/" means "a directory".
  std::string destination;
  std::string working_dir = "/";
  // "user[:group]" by name or id, resolved in dest_root's /etc/passwd and /etc/group
  // (worker/exec/user_db.h resolveChown). Empty: 0:0 for context sources, the source's own ids
  // for --from.
  std::string chown;
  // Octal mode like "755" or "0644" applied to every copied file and directory. Empty: keep the
  // source modes. Anything else is kInvalidArgument.
  std::string chmod;
  // ADD: a local archive is extracted instead of copied; URL sources are kUnimplemented.
  bool add = false;
  // COPY --from: keep the source's uid/gid when no chown is given.
  bool from_other_filesystem = false;
};

struct CopyStats {
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t bytes = 0;
};

// Copies request.sources from source_root into dest_root. Both must be existing directories;
// the process needs CAP_CHOWN/CAP_FOWNER when ownership differs from its own (the step runner
// runs as root in its namespace).
Result<CopyStats> copyIntoRoot(const std::filesystem::path& source_root,
                               const std::filesystem::path& dest_root, const CopyRequest& request);

// Go filepath.Match for one path component (no '/' in name): * ? [set] [^set] [a-z] and
// backslash escapes. A malformed pattern is kInvalidArgument. Exposed for tests.
Result<bool> matchPattern(std::string_view pattern, std::string_view name);

}  // namespace lf::worker
