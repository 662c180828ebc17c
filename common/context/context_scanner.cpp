#include "common/context/context_scanner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "common/context/file_hasher.h"
#include "common/context/safe_open.h"

namespace lf::context {

namespace {

std::string quotePath(std::string_view path) { return "\"" + std::string(path) + "\""; }

// An entry plus what the hashing step needs to find and verify it.
struct WalkedEntry {
  ContextEntry entry;
  dev_t dev = 0;
  ino_t ino = 0;
  nlink_t nlink = 1;
  int64_t mtime_ns = 0;  // for the hash cache and the manifest
  int64_t ctime_ns = 0;
};

int64_t nanos(const timespec& ts) { return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec; }

FileStamp stampOf(const WalkedEntry& w) {
  return FileStamp{static_cast<uint64_t>(w.dev), static_cast<uint64_t>(w.ino), w.entry.size,
                   w.mtime_ns, w.ctime_ns};
}

struct DirClose {
  void operator()(DIR* d) const { closedir(d); }
};

Result<std::string> readLink(int dir_fd, const char* name, std::string_view rel, off_t hint) {
  std::string target(static_cast<size_t>(std::max<off_t>(hint, 64)) + 1, '\0');
  while (true) {
    ssize_t n = readlinkat(dir_fd, name, target.data(), target.size());
    if (n < 0) {
      return errnoStatus(errno, "context symlink " + quotePath(rel) + ": readlink");
    }
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(static_cast<size_t>(n));
      return target;
    }
    if (target.size() > (1u << 20)) {
      return failedPrecondition("context symlink " + quotePath(rel) + ": target is too long");
    }
    target.resize(target.size() * 2);  // the link grew since lstat
  }
}

// Builds a WalkedEntry from lstat data; kUnimplemented for sockets (Docker skips them).
Result<WalkedEntry> describe(int dir_fd, const char* name, std::string rel, const struct stat& st) {
  WalkedEntry w;
  w.dev = st.st_dev;
  w.ino = st.st_ino;
  w.nlink = st.st_nlink;
  w.mtime_ns = nanos(st.st_mtim);
  w.ctime_ns = nanos(st.st_ctim);
  ContextEntry& e = w.entry;
  e.mode = static_cast<uint32_t>(st.st_mode & 07777);
  if (S_ISREG(st.st_mode)) {
    e.type = EntryType::kRegular;
    e.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISDIR(st.st_mode)) {
    e.type = EntryType::kDirectory;
  } else if (S_ISLNK(st.st_mode)) {
    e.type = EntryType::kSymlink;
    LF_ASSIGN_OR_RETURN(e.link_target, readLink(dir_fd, name, rel, st.st_size));
    e.size = e.link_target.size();
  } else if (S_ISFIFO(st.st_mode)) {
    e.type = EntryType::kFifo;
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    e.type = S_ISCHR(st.st_mode) ? EntryType::kCharDevice : EntryType::kBlockDevice;
    e.dev_major = major(st.st_rdev);
    e.dev_minor = minor(st.st_rdev);
  } else {
    return unimplemented("socket");  // the caller turns this into a SkippedEntry
  }
  e.path = std::move(rel);
  return w;
}

// The directory walk: metadata only, no file content.
class Walker {
 public:
  Walker(int root_fd, const DockerIgnore& ignore) : root_fd_(root_fd), ignore_(ignore) {}

  Status walk() {
    std::vector<PendingDir> stack;
    stack.push_back(PendingDir{std::string(), ignore_.rootState()});
    while (!stack.empty()) {
      PendingDir dir = std::move(stack.back());
      stack.pop_back();
      LF_RETURN_IF_ERROR(visit(dir, &stack));
    }
    return Status::ok();
  }

  std::vector<WalkedEntry>& entries() { return entries_; }
  std::vector<SkippedEntry>& skipped() { return skipped_; }

 private:
  struct PendingDir {
    std::string rel;
    DockerIgnore::MatchState state;
  };

  Status visit(const PendingDir& dir, std::vector<PendingDir>* stack) {
    auto fd = openBeneath(root_fd_, dir.rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd.isOk()) {
      return fd.status().withContext("context directory");
    }
    std::unique_ptr<DIR, DirClose> d(fdopendir(fd->get()));
    if (!d) {
      return errnoStatus(errno, "context directory " + quotePath(dir.rel) + ": fdopendir");
    }
    fd->release();  // now owned by `d`
    while (true) {
      errno = 0;
      dirent* de = readdir(d.get());
      if (de == nullptr) {
        if (errno != 0) {
          return errnoStatus(errno, "context directory " + quotePath(dir.rel) + ": readdir");
        }
        return Status::ok();
      }
      std::string_view name(de->d_name);
      if (name == "." || name == "..") {
        continue;
      }
      std::string rel = dir.rel.empty() ? std::string(name) : dir.rel + "/" + std::string(name);
      LF_RETURN_IF_ERROR(visitChild(dirfd(d.get()), de->d_name, std::move(rel), dir, stack));
    }
  }

  Status visitChild(int dir_fd, const char* name, std::string rel, const PendingDir& parent,
                    std::vector<PendingDir>* stack) {
    struct stat st {};
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        return Status::ok();  // removed between readdir and stat: it is not in the context
      }
      return errnoStatus(errno, "context entry " + quotePath(rel) + ": lstat");
    }
    DockerIgnore::MatchState state;
    bool excluded = ignore_.isExcludedUnder(rel, parent.state, &state);
    if (S_ISDIR(st.st_mode)) {
      // An excluded directory is entered only when an exception could bring back something
      // inside it; the directory itself is still not sent.
      if (excluded && !ignore_.mayReincludeUnder(rel)) {
        return Status::ok();
      }
      if (!excluded) {
        LF_ASSIGN_OR_RETURN(WalkedEntry w, describe(dir_fd, name, rel, st));
        entries_.push_back(std::move(w));
      }
      stack->push_back(PendingDir{std::move(rel), std::move(state)});
      return Status::ok();
    }
    if (excluded) {
      return Status::ok();
    }
    auto w = describe(dir_fd, name, rel, st);
    if (!w.isOk() && w.status().code() == StatusCode::kUnimplemented) {
      skipped_.push_back(SkippedEntry{std::move(rel), "socket: Docker does not send sockets"});
      return Status::ok();
    }
    LF_RETURN_IF_ERROR(w.status());
    entries_.push_back(std::move(w).value());
    return Status::ok();
  }

  int root_fd_;
  const DockerIgnore& ignore_;
  std::vector<WalkedEntry> entries_;
  std::vector<SkippedEntry> skipped_;
};

// Reads a small file below the root, refusing symlinks. Returns std::nullopt if absent.
Result<std::optional<std::string>> readSmallFile(int root_fd, const std::string& rel,
                                                 size_t max_bytes) {
  int err = 0;
  auto fd = openBeneath(root_fd, rel, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, &err);
  if (!fd.isOk()) {
    if (err == ENOENT) {
      return std::optional<std::string>();
    }
    return fd.status().withContext("reading " + rel);
  }
  struct stat st {};
  if (fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return failedPrecondition(quotePath(rel) + " is not a regular file");
  }
  std::string data;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd->get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, "reading " + quotePath(rel));
    }
    if (n == 0) {
      return std::optional<std::string>(std::move(data));
    }
    if (data.size() + static_cast<size_t>(n) > max_bytes) {
      return resourceExhausted(quotePath(rel) + " is larger than " + std::to_string(max_bytes) +
                               " bytes");
    }
    data.append(buf, static_cast<size_t>(n));
  }
}

// Chooses the ignore rules; *used_file receives the ignore file's path ("" if none was read).
Result<DockerIgnore> loadIgnore(int root_fd, const ScanOptions& options,
                                const std::string& dockerfile, std::string* used_file) {
  used_file->clear();
  if (options.ignore.has_value()) {
    return *options.ignore;
  }
  std::vector<std::string> candidates;
  if (!dockerfile.empty()) {
    candidates.push_back(dockerfile + ".dockerignore");
  }
  candidates.push_back(".dockerignore");
  for (const std::string& name : candidates) {
    LF_ASSIGN_OR_RETURN(auto content, readSmallFile(root_fd, name, DockerIgnore::kMaxFileBytes));
    if (content.has_value()) {
      *used_file = name;
      return DockerIgnore::parse(*content, name);
    }
  }
  return DockerIgnore();
}

bool byPath(const WalkedEntry& a, const WalkedEntry& b) { return a.entry.path < b.entry.path; }

// Docker sends the Dockerfile and the ignore file even when .dockerignore excludes them; record
// the ones the walk left out as builder-only entries.
Status addBuildFiles(int root_fd, const std::vector<std::string>& names,
                     const std::vector<WalkedEntry>& sent, std::vector<WalkedEntry>* builder_only) {
  for (const std::string& name : names) {
    if (name.empty() || std::any_of(builder_only->begin(), builder_only->end(),
                                    [&](const WalkedEntry& w) { return w.entry.path == name; })) {
      continue;
    }
    WalkedEntry key;
    key.entry.path = name;
    if (std::binary_search(sent.begin(), sent.end(), key, byPath)) {
      continue;
    }
    size_t slash = name.rfind('/');
    std::string parent = slash == std::string::npos ? std::string() : name.substr(0, slash);
    std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
    int err = 0;
    auto dir = openBeneath(root_fd, parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, &err);
    if (!dir.isOk()) {
      if (err == ENOENT || err == ENOTDIR) {
        continue;  // not in the context at all
      }
      return dir.status().withContext("context build file");
    }
    struct stat st {};
    if (fstatat(dir->get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        continue;
      }
      return errnoStatus(errno, "context build file " + quotePath(name) + ": lstat");
    }
    auto w = describe(dir->get(), base.c_str(), name, st);
    if (w.isOk()) {
      builder_only->push_back(std::move(w).value());
    } else if (w.status().code() != StatusCode::kUnimplemented) {
      return w.status();
    }
  }
  std::sort(builder_only->begin(), builder_only->end(), byPath);
  return Status::ok();
}

// Hashes every regular file of both lists (each inode once) and fills in the digests; files the
// hash cache vouches for are not read. Every regular file ends up recorded in the cache.
Status hashAll(int root_fd, const ScanOptions& options, std::vector<WalkedEntry>* a,
               std::vector<WalkedEntry>* b) {
  HashCache* cache = options.hash_cache;
  std::vector<HashJob> jobs;
  std::vector<std::pair<WalkedEntry*, size_t>> targets;  // entry -> job index
  std::map<std::pair<dev_t, ino_t>, size_t> by_inode;    // only for files with several links
  WalkStats stats;
  for (auto* list : {a, b}) {
    for (WalkedEntry& w : *list) {
      stats.directories += w.entry.type == EntryType::kDirectory ? 1 : 0;
      stats.symlinks += w.entry.type == EntryType::kSymlink ? 1 : 0;
      if (w.entry.type != EntryType::kRegular) {
        continue;
      }
      if (cache != nullptr) {
        if (auto sha = cache->lookup(w.entry.path, stampOf(w))) {
          w.entry.content = Digest::fromSha256Bytes(*sha);
          cache->record(w.entry.path, stampOf(w), *sha);
          stats.cached_files += 1;
          stats.cached_bytes += w.entry.size;
          continue;
        }
      }
      if (w.nlink > 1) {
        auto [it, fresh] = by_inode.try_emplace({w.dev, w.ino}, jobs.size());
        if (!fresh) {
          targets.emplace_back(&w, it->second);
          continue;
        }
      }
      targets.emplace_back(&w, jobs.size());
      jobs.push_back(HashJob{w.entry.path, w.entry.size, w.dev, w.ino, {}});
      stats.regular_files += 1;
      stats.regular_bytes += w.entry.size;
    }
  }
  if (options.after_walk) {
    options.after_walk(stats);
  }
  LF_RETURN_IF_ERROR(hashFiles(root_fd, jobs, options.threads));
  for (auto& [entry, job] : targets) {
    entry->entry.content = Digest::fromSha256Bytes(jobs[job].sha256);
    if (cache != nullptr) {
      cache->record(entry->entry.path, stampOf(*entry), jobs[job].sha256);
    }
  }
  return Status::ok();
}

void collectMtimes(const std::vector<WalkedEntry>& walked, ScanDetails* details) {
  for (const WalkedEntry& w : walked) {
    // Floor division: a tar header carries whole seconds, rounded down, also before 1970.
    int64_t secs = w.mtime_ns / 1'000'000'000;
    if (w.mtime_ns % 1'000'000'000 < 0) {
      secs -= 1;
    }
    details->mtimes.emplace(w.entry.path, secs);
  }
}

std::vector<ContextEntry> takeEntries(std::vector<WalkedEntry>& walked) {
  std::vector<ContextEntry> out;
  out.reserve(walked.size());
  for (WalkedEntry& w : walked) {
    out.push_back(std::move(w.entry));
  }
  return out;
}

}  // namespace

Result<ContextSnapshot> scanContext(const std::filesystem::path& root, const ScanOptions& options) {
  return scanContext(root, options, nullptr);
}

Result<ContextSnapshot> scanContext(const std::filesystem::path& root, const ScanOptions& options,
                                    ScanDetails* details) {
  if (options.hash_cache != nullptr) {
    options.hash_cache->beginScan();  // before the first stat: see "Racily clean" in hash_cache.h
  }
  // The root itself may be reached through a symlink: the user named it.
  UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) {
    return errnoStatus(errno, "build context " + quotePath(root.string()));
  }
  std::string dockerfile;
  if (!options.dockerfile.empty()) {
    auto norm = normalizeContextPath(options.dockerfile);
    dockerfile = norm.isOk() ? *norm : std::string();  // outside the context: nothing to keep
  }
  std::string ignore_file;
  LF_ASSIGN_OR_RETURN(DockerIgnore ignore,
                      loadIgnore(root_fd.get(), options, dockerfile, &ignore_file));

  Walker walker(root_fd.get(), ignore);
  Status walked = walker.walk();
  if (!walked.isOk()) {
    return walked.withContext("scanning build context " + quotePath(root.string()));
  }
  std::vector<WalkedEntry>& sent = walker.entries();
  std::sort(sent.begin(), sent.end(), byPath);
  std::vector<WalkedEntry> builder_only;
  LF_RETURN_IF_ERROR(addBuildFiles(root_fd.get(), {dockerfile, ignore_file}, sent, &builder_only));
  Status hashed = hashAll(root_fd.get(), options, &sent, &builder_only);
  if (!hashed.isOk()) {
    return hashed.withContext("hashing build context " + quotePath(root.string()));
  }
  if (details != nullptr) {
    details->mtimes.clear();
    collectMtimes(sent, details);
    collectMtimes(builder_only, details);
  }
  std::vector<SkippedEntry> skipped = std::move(walker.skipped());
  std::sort(skipped.begin(), skipped.end(),
            [](const SkippedEntry& x, const SkippedEntry& y) { return x.path < y.path; });
  return ContextSnapshot(takeEntries(sent), takeEntries(builder_only), std::move(skipped));
}

}  // namespace lf::context
