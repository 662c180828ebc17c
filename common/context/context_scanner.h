#pragma once

// scanContext(): walks a build context directory, applies .dockerignore, and hashes every file
// that will be sent, producing the canonical ContextSnapshot the build plan keys COPY/ADD on.
//
// Safety: the walk never follows a symlink (a symlink is recorded with its target) and opens
// every directory and file with openBeneath(), so nothing outside `root` is ever read, even if
// the tree changes while it is scanned. Sockets are skipped and listed in skipped(), as Docker
// skips them; FIFOs and device nodes are recorded (type and device numbers, never opened).
//
// Speed: the walk collects metadata first (one fstatat per entry); then the regular files are
// hashed on all cores, largest first (see file_hasher.h). Hard links to one inode are hashed once.
// With a HashCache (ScanOptions::hash_cache), a file whose stat data the cache vouches for is not
// read at all (hash_cache.h says when it does); the others are hashed and recorded in it.
//
// Errors name the path: an unreadable file or directory, a file that vanished, changed size or was
// replaced between the walk and its hashing, a path too long to open. The call is synchronous and
// thread-safe (it shares no state between calls).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/base/status.h"
#include "common/context/context_snapshot.h"
#include "common/context/dockerignore.h"
#include "common/context/hash_cache.h"

namespace lf::context {

// What the walk found, before any file is read.
struct WalkStats {
  uint64_t regular_files = 0;  // files that will be hashed (hard links counted once)
  uint64_t regular_bytes = 0;
  uint64_t cached_files = 0;  // files the hash cache answered for (not read)
  uint64_t cached_bytes = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
};

struct ScanOptions {
  // Patterns to apply instead of reading an ignore file from the context (e.g. patterns that came
  // with a build request). When unset, the scan reads "<dockerfile>.dockerignore" if it exists
  // (BuildKit's per-Dockerfile ignore file), else ".dockerignore", else excludes nothing.
  std::optional<DockerIgnore> ignore;

  // The Dockerfile's path relative to the context root; "" when it is not in the context (read
  // from stdin or from outside). If .dockerignore excludes it, or excludes the ignore file, the
  // file still goes into builderOnly(): Docker sends both to the builder regardless and only
  // hides them from COPY/ADD (docker CLI TrimBuildFilesFromExcludes + the daemon removing them).
  std::string dockerfile = "Dockerfile";

  // Hashing threads; 0 means one per core.
  unsigned threads = 0;

  // Called once after the walk and before the first file is opened for hashing: for progress
  // output, and for tests that change the tree mid-scan.
  std::function<void(const WalkStats&)> after_walk;

  // Digests of unchanged files come from here instead of being read; the scan calls beginScan()
  // and records every regular file it saw. Not owned; the caller saves it after a good scan.
  HashCache* hash_cache = nullptr;
};

// Per-entry facts a ContextSnapshot leaves out (they change no cache key) that the context
// manifest carries.
struct ScanDetails {
  // Every entry of entries() and builderOnly() by path: st_mtime in whole seconds (rounded down,
  // as a tar header carries it).
  std::unordered_map<std::string, int64_t> mtimes;
};

Result<ContextSnapshot> scanContext(const std::filesystem::path& root, const ScanOptions& options);

// The same, also filling `*details` (when not null).
Result<ContextSnapshot> scanContext(const std::filesystem::path& root, const ScanOptions& options,
                                    ScanDetails* details);

}  // namespace lf::context
