#pragma once

// ADD's local-archive rule: a tar file (plain, gzip, bzip2, xz or zstd, recognised by its
// content, never its name) is extracted into the destination directory instead of copied.
//
// Entries resolve inside the destination directory the way Docker's untar scopes them: the
// destination is the root for every entry, so ".." entries are rejected, absolute names are
// made relative, a symlink from the archive (absolute or relative) used as a parent resolves
// beneath the destination, and a hardlink may only point at an earlier entry of the same archive.
// Internal to worker/copy.

#include <string>
#include <vector>

#include "common/base/status.h"
#include "worker/copy/copy_fs.h"

namespace lf::worker::copy_internal {

// True when the first bytes of the open file look like a tar or a compressed stream.
bool looksLikeArchive(int fd);

// Extracts the archive open as `src_fd` into dest_components (created like COPY's destination)
// beneath dest.root. Returns false, having written nothing, when the content turns out not to be
// a tar archive (a gzip of a plain file): the caller copies it as a file then. `source` names
// the archive in errors. The fd's offset is left undefined.
Result<bool> extractArchive(DestTree& dest, int src_fd,
                            const std::vector<std::string>& dest_components,
                            const std::string& source);

}  // namespace lf::worker::copy_internal
