#pragma once

// HashCache: remembers the SHA-256 of a context's files by their stat data, so a rebuild of an
// unchanged context stats its files instead of reading them (git's index does the same for
// `git status`). A cached rebuild of the reference 20 MB context went from hashing 20 MB twice to
// one walk.
//
// Use (the CLI; scanContext does the rest):
//   auto cache = HashCache::open(*HashCache::defaultFileFor(root));
//   ScanOptions scan; scan.hash_cache = cache.get();
//   auto snapshot = scanContext(root, scan);
//   if (snapshot.isOk()) (void)cache->save();   // best effort: a lost cache only costs time
//
// When an entry is trusted: the file at the same relative path has the same device, inode, size,
// mtime and ctime (nanoseconds) as when it was hashed, and it is not "racily clean". ctime is
// the guard against content changes that keep size and mtime (`touch -d` after an edit, rsync -t,
// cp -p, tar x over an existing file): every write, chmod or utimensat sets ctime to the current
// time, and no unprivileged call can set it back. dev/ino catch a file replaced by rename (an
// editor's atomic save) even where ctime alone would not differ.
//
// Racily clean entries (why a margin): a file's timestamps have a granularity: the kernel's
// coarse clock tick on ext4/xfs/btrfs/tmpfs (1-10 ms), a whole second on ext4 with 128-byte
// inodes and on many network filesystems, two seconds for FAT's mtime. A write that lands after
// the scan stat'ed a file but within the same tick gives it the same mtime and ctime, and with
// the same size the cached stat data would vouch for bytes that are no longer there. Such a
// write can only happen if the file's timestamps were at most one granule before the stat. So an
// entry is trusted only when the file's mtime and ctime are older than the start of the scan that
// recorded it (stored in the cache file, kept per file) by more than `racy_margin_ns`
// (default 2 s: FAT's granule; 1 s filesystems and clock ticks are finer). Files changed in the
// last two seconds before a scan are hashed again by the next scan too, then trusted: an edited
// file costs one extra hash, a just-cloned context one extra full hash. The scan start is taken
// from CLOCK_REALTIME before the walk, i.e. no later than any stat of that scan (git uses the
// index file's mtime, written after the stats; using it would trust files that a long scan
// stat'ed early). Timestamps in the future (clock skew, extracted archives) are never trusted.
//
// Limits: files on a network filesystem whose server clock runs more than the margin behind this
// machine's, or whose attributes the client caches (NFS actimeo), can be edited on another host
// without this machine seeing new stat data; git has the same blind spot. Relative paths are the
// key, so a cache is per context root (defaultFileFor).
//
// File format (version 1, host byte order; a cache never leaves its machine):
//   "LFHASHC1" | u32 version | u32 entry count | i64 scan start (ns since the epoch)
//   entries sorted by path: u32 path length | path | u64 dev | u64 ino | u64 size |
//     i64 mtime_ns | i64 ctime_ns | 32 bytes SHA-256
//   32 bytes SHA-256 of everything before it.
// Written to a temp file in the same directory and renamed over the old one: concurrent CLIs on
// one context each write a whole file and the last rename wins. A missing, truncated, corrupt,
// foreign or other-version file reads as an empty cache (worst case: a full hash), never an
// error. Bounded: at most kMaxEntries entries and kMaxFileBytes bytes per file (a larger context
// is still scanned, its cache just is not written), and save() keeps at most kMaxCacheFiles files
// in the cache directory, removing the least recently written.
//
// Thread-safety: none; one scan at a time uses a HashCache (scanContext calls it from the
// scanning thread only). Distinct HashCache objects, in one process or several, may share a file.

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::context {

// What identifies one version of a file without reading it.
struct FileStamp {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // since the epoch
  int64_t ctime_ns = 0;

  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

class HashCache {
 public:
  static constexpr size_t kMaxEntries = 1'000'000;
  static constexpr size_t kMaxFileBytes = size_t{256} << 20;
  static constexpr size_t kMaxCacheFiles = 256;

  struct Options {
    // See "Racily clean entries" above.
    int64_t racy_margin_ns = 2'000'000'000;
    // CLOCK_REALTIME in ns when unset; tests move it forward instead of sleeping.
    std::function<int64_t()> now_ns;
  };

  // The cache file for the context at `root`: <dir>/<hex SHA-256 of root's canonical absolute
  // path>, where <dir> is $LAYERFARM_CACHE_DIR/hashes, else $XDG_CACHE_HOME/layerfarm/hashes,
  // else $HOME/.cache/layerfarm/hashes. Fails only when none of these variables is set.
  static Result<std::filesystem::path> defaultFileFor(const std::filesystem::path& root);

  // Loads `file`; any problem reading it gives an empty cache (see above). Never fails.
  static std::unique_ptr<HashCache> open(std::filesystem::path file, Options options);
  static std::unique_ptr<HashCache> open(std::filesystem::path file) {
    return open(std::move(file), Options{});
  }

  ~HashCache();
  HashCache(const HashCache&) = delete;
  HashCache& operator=(const HashCache&) = delete;

  // --- One scan (scanContext calls these) ---

  // Starts a scan: notes its start time and forgets what an earlier scan recorded.
  void beginScan();

  // The cached SHA-256 of the file at `path` if the cache vouches for `stamp` (see above).
  std::optional<std::array<uint8_t, 32>> lookup(std::string_view path,
                                                const FileStamp& stamp) const;

  // Records the digest of the file at `path` seen by this scan (from lookup() or hashed).
  void record(std::string_view path, const FileStamp& stamp, const std::array<uint8_t, 32>& sha256);

  // Writes what this scan recorded (files not seen are dropped) atomically, unless it equals what
  // was loaded (a cached rebuild writes nothing). Afterwards lookup() answers from the new
  // entries. Errors name the file; callers may ignore them (a lost cache only costs time).
  Status save();

  // Counters of the current scan, for tests and progress output.
  struct Stats {
    uint64_t loaded = 0;  // entries read from the file
    uint64_t hits = 0;
    uint64_t misses = 0;   // no entry, or stat data differ
    uint64_t racy = 0;     // entry matched but too recent to trust (also counted in misses)
    bool written = false;  // the last save() wrote the file
  };
  const Stats& stats() const { return stats_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  struct Entry;
  HashCache(std::filesystem::path file, Options options);
  void load();
  int64_t now() const;
  Status writeAtomically(const std::string& bytes) const;

  std::filesystem::path file_;
  Options options_;
  int64_t loaded_scan_start_ns_ = 0;
  std::vector<Entry> loaded_;  // sorted by path
  int64_t scan_start_ns_ = 0;
  std::vector<Entry> recorded_;  // this scan's, in record() order
  mutable Stats stats_;
};

}  // namespace lf::context
