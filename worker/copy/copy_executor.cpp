#include "worker/copy/copy_executor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "common/context/pattern.h"
#include "common/layer/secure_fs.h"
#include "worker/copy/archive_extract.h"
#include "worker/copy/copy_fs.h"
#include "worker/exec/user_db.h"

namespace lf::worker {
namespace {

using copy_internal::DestTree;
using copy_internal::openInRootRaw;
using layer::UniqueFd;

// One source path after wildcard expansion.
struct Selected {
  std::string rel;      // beneath source_root, "" for the root itself
  std::string written;  // the source as the user wrote it, for messages
};

bool isUrl(std::string_view s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

bool hasMeta(std::string_view component) {
  return component.find_first_of("*?[\\") != std::string_view::npos;
}

Result<mode_t> parseChmod(const std::string& what, const std::string& text) {
  bool ok = !text.empty() && text.size() <= 4 &&
            std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!ok) {
    return invalidArgument(what + ": invalid --chmod=" + text +
                           ": expected an octal mode like 755 or 0644");
  }
  return static_cast<mode_t>(std::stoul(text, nullptr, 8));
}

// Splits a path into components with ".." applied lexically. `clamp` keeps ".." at the root (a
// container path); otherwise climbing above the root returns nullopt.
std::optional<std::vector<std::string>> normalize(std::string_view path, bool clamp) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = std::min(path.find('/', pos), path.size());
    std::string_view part = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part != "..") {
      parts.emplace_back(part);
    } else if (!parts.empty()) {
      parts.pop_back();
    } else if (!clamp) {
      return std::nullopt;
    }
  }
  return parts;
}

// Expands one source (wildcards per component, Go filepath.Glob style) beneath the source root.
Result<std::vector<Selected>> expandSource(int src_root, const std::string& what,
                                           const std::string& written, bool from_context) {
  auto parts = normalize(written, false);
  if (!parts) {
    return invalidArgument(what + ": forbidden path outside the " +
                           std::string(from_context ? "build context" : "source") + ": " + written);
  }
  std::vector<std::string> current = {""};
  bool wildcard = false;
  for (const std::string& part : *parts) {
    std::vector<std::string> next;
    for (const std::string& prefix : current) {
      std::string joined = prefix.empty() ? part : prefix + "/" + part;
      if (!hasMeta(part)) {
        // After a wildcard, a literal component only filters (as in Go's Glob): a dir1/x that
        // does not exist drops out instead of failing the whole pattern.
        int fd = wildcard ? openInRootRaw(src_root, joined, O_PATH) : -1;
        if (!wildcard || fd >= 0) {
          next.push_back(joined);
        }
        if (fd >= 0) {
          close(fd);
        }
        continue;
      }
      wildcard = true;
      int fd = openInRootRaw(src_root, prefix, O_RDONLY | O_DIRECTORY);
      if (fd < 0) {
        continue;  // not a directory (or missing): matches nothing, as in Go
      }
      UniqueFd dir(fd);
      // The planner selects (and keys) COPY sources with the same GlobPattern, so the worker
      // copies exactly the files the cache key covers.
      auto glob = context::GlobPattern::compile(part, context::GlobSyntax::kFilepath);
      if (!glob.isOk()) {
        return glob.status().withContext(what + ": " + written);
      }
      LF_ASSIGN_OR_RETURN(std::vector<std::string> names, layer::listDirectory(dir.get(), prefix));
      std::sort(names.begin(), names.end());
      for (const std::string& name : names) {
        if (glob->matches(name)) {
          next.push_back(prefix.empty() ? name : prefix + "/" + name);
        }
      }
    }
    current = std::move(next);
  }
  if (wildcard && current.empty()) {
    return notFound(what + ": no source files were specified: nothing in the " +
                    std::string(from_context ? "build context" : "source") + " matches " + written);
  }
  std::vector<Selected> out;
  for (std::string& rel : current) {
    out.push_back({std::move(rel), written});
  }
  return out;
}

std::string instructionText(const CopyRequest& request) {
  std::string text = request.add ? "ADD" : "COPY";
  for (const std::string& s : request.sources) {
    text += " " + s;
  }
  return text + " " + request.destination;
}

// The destination's container path components and whether it names a directory ("dir/", ".").
struct Destination {
  std::vector<std::string> components;
  bool is_directory = false;
};

Destination parseDestination(const CopyRequest& request) {
  const std::string& d = request.destination;
  std::string full = !d.empty() && d.front() == '/' ? d : request.working_dir + "/" + d;
  Destination out;
  out.components = *normalize(full, true);
  std::string_view last = d;
  if (size_t slash = last.rfind('/'); slash != std::string_view::npos) {
    last = last.substr(slash + 1);
  }
  out.is_directory =
      d.empty() || d.back() == '/' || last == "." || last == ".." || out.components.empty();
  return out;
}

// Copies one selected source that is a directory: its contents go into the destination.
Status copyDirectorySource(DestTree& dest, int src_fd, const struct stat& st, const Selected& src,
                           const Destination& dst, bool keep_ids) {
  std::vector<std::string> comps = dst.components;
  UniqueFd dir;
  bool created = false;
  if (comps.empty()) {
    LF_ASSIGN_OR_RETURN(dir, copy_internal::ensureDirectory(dest, comps, 0));
  } else {
    LF_ASSIGN_OR_RETURN(UniqueFd parent,
                        copy_internal::ensureDirectory(dest, comps, comps.size() - 1));
    struct stat existing;
    created = fstatat(parent.get(), comps.back().c_str(), &existing, AT_SYMLINK_NOFOLLOW) != 0;
    LF_ASSIGN_OR_RETURN(dir, copy_internal::ensureDirectory(dest, comps, comps.size()));
  }
  UniqueFd src_dir(openat(src_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src_dir) {
    return dest.errnoError(errno, "open " + src.written);
  }
  LF_RETURN_IF_ERROR(copy_internal::copyDirectoryContents(dest, src_dir.get(), src.written,
                                                          dir.get(), comps, keep_ids, 0));
  if (created) {  // a destination made for this copy takes the source directory's metadata
    std::string path = dest.path(comps, comps.size());
    LF_RETURN_IF_ERROR(copy_internal::applyMeta(
        dest, dir.get(), copy_internal::metaFromStat(dest, st, keep_ids), path));
  }
  return Status::ok();
}

// Copies one selected source that is not a directory (a file, or a device/fifo).
Status copyFileSource(DestTree& dest, int src_root, const struct stat& st, const Selected& src,
                      const Destination& dst, bool keep_ids) {
  std::vector<std::string> comps = dst.components;
  bool into = dst.is_directory;
  if (!into) {
    int fd =
        openInRootRaw(dest.root.get(), layer::joinPath(comps, comps.size()), O_PATH | O_DIRECTORY);
    into = fd >= 0;
    if (fd >= 0) {
      close(fd);
    }
  }
  if (into) {
    size_t slash = src.rel.rfind('/');
    comps.push_back(slash == std::string::npos ? src.rel : src.rel.substr(slash + 1));
  }
  LF_ASSIGN_OR_RETURN(UniqueFd dir, copy_internal::ensureDirectory(dest, comps, comps.size() - 1));
  std::string path = dest.path(comps, comps.size());
  if (!S_ISREG(st.st_mode)) {
    return copy_internal::copySpecial(dest, st, dir.get(), comps.back(), path, keep_ids);
  }
  int fd = openInRootRaw(src_root, src.rel, O_RDONLY | O_NONBLOCK);
  if (fd < 0) {
    return dest.errnoError(-fd, "open " + src.written);
  }
  UniqueFd file(fd);
  return copy_internal::copyFile(dest, file.get(), st, dir.get(), comps.back(), path, keep_ids);
}

Status copySelected(DestTree& dest, int src_root, const CopyRequest& request, const Selected& src,
                    const Destination& dst) {
  int fd = openInRootRaw(src_root, src.rel, O_PATH);  // the named source itself is followed
  if (fd < 0) {
    if (fd == -ENOENT || fd == -ENOTDIR) {
      return notFound(dest.what + ": no such file or directory in the " +
                      (request.from_other_filesystem ? "source" : "build context") + ": " +
                      src.written);
    }
    return dest.errnoError(-fd, "open " + src.written);
  }
  UniqueFd src_fd(fd);
  struct stat st;
  if (fstat(src_fd.get(), &st) != 0) {
    return dest.errnoError(errno, "stat " + src.written);
  }
  bool keep_ids = request.from_other_filesystem;
  if (S_ISDIR(st.st_mode)) {
    return copyDirectorySource(dest, src_fd.get(), st, src, dst, keep_ids);
  }
  if (request.add && S_ISREG(st.st_mode)) {
    int file = openInRootRaw(src_root, src.rel, O_RDONLY | O_NONBLOCK);
    if (file < 0) {
      return dest.errnoError(-file, "open " + src.written);
    }
    UniqueFd archive_fd(file);
    if (copy_internal::looksLikeArchive(archive_fd.get())) {
      LF_ASSIGN_OR_RETURN(bool extracted, copy_internal::extractArchive(
                                              dest, archive_fd.get(), dst.components, src.written));
      if (extracted) {
        return Status::ok();
      }
    }
  }
  return copyFileSource(dest, src_root, st, src, dst, keep_ids);
}

Result<UniqueFd> openRoot(const std::filesystem::path& path, const std::string& what) {
  UniqueFd fd(open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    return errnoStatus(errno, what + ": open " + path.string());
  }
  return fd;
}

// Checks of the request itself, before any file is touched.
Status validateRequest(const CopyRequest& request, const std::string& what) {
  if (request.sources.empty() || request.destination.empty()) {
    return invalidArgument(what + ": needs at least one source and a destination");
  }
  auto has_nul = [](const std::string& s) { return s.find('\0') != std::string::npos; };
  if (has_nul(request.destination) || has_nul(request.working_dir) ||
      std::any_of(request.sources.begin(), request.sources.end(), has_nul)) {
    return invalidArgument(what + ": a path contains a NUL byte");
  }
  for (const std::string& s : request.sources) {
    if (isUrl(s)) {
      if (request.add) {
        return unimplemented("ADD " + s + ": remote sources are not supported by the worker yet");
      }
      return invalidArgument(what + ": source can't be a URL for COPY: " + s);
    }
  }
  return Status::ok();
}

}  // namespace

Result<CopyStats> copyIntoRoot(const std::filesystem::path& source_root,
                               const std::filesystem::path& dest_root, const CopyRequest& request) {
  DestTree dest;
  dest.what = instructionText(request);
  LF_RETURN_IF_ERROR(validateRequest(request, dest.what));
  if (!request.chmod.empty()) {
    LF_ASSIGN_OR_RETURN(dest.chmod, parseChmod(dest.what, request.chmod));
  }
  LF_ASSIGN_OR_RETURN(UniqueFd src_root, openRoot(source_root, dest.what));
  LF_ASSIGN_OR_RETURN(dest.root, openRoot(dest_root, dest.what));
  if (!request.chown.empty()) {
    LF_ASSIGN_OR_RETURN(UserDatabase db, loadUserDatabase(dest.root.get()));
    auto ids = resolveChown(db, request.chown);
    if (!ids.isOk()) {
      return ids.status().withContext(dest.what);
    }
    dest.chown = std::make_pair(ids->uid, ids->gid);
  }
  std::vector<Selected> selected;
  for (const std::string& s : request.sources) {
    LF_ASSIGN_OR_RETURN(std::vector<Selected> one,
                        expandSource(src_root.get(), dest.what, s, !request.from_other_filesystem));
    selected.insert(selected.end(), one.begin(), one.end());
  }
  Destination dst = parseDestination(request);
  if (selected.size() > 1 && !dst.is_directory) {
    return invalidArgument(dest.what + ": When using " + (request.add ? "ADD" : "COPY") +
                           " with more than one source file, the destination must be a "
                           "directory and end with a /");
  }
  for (const Selected& src : selected) {
    LF_RETURN_IF_ERROR(copySelected(dest, src_root.get(), request, src, dst));
  }
  return dest.stats;
}

}  // namespace lf::worker
