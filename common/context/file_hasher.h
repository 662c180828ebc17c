#pragma once

// Parallel SHA-256 of many files below one directory: the hot loop of a context scan.
//
// hashFiles() starts a few std::threads for one batch and joins them before returning; it owns
// nothing afterwards. Files are handed out largest first from one shared counter, so a 100 MB
// file starts at once instead of being the last thing a core works on while the other idles
// (SHA-256 of one file cannot be split). Each worker owns one read buffer and one OpenSSL digest
// context for the whole batch: no allocation per file. Files are read exactly once, sequentially,
// with posix_fadvise(SEQUENTIAL); OpenSSL's EVP picks SHA-NI where the CPU has it.
// read() into a 1 MiB buffer measured faster than mmap(MAP_POPULATE) of big files on the
// benchmark context (less user time: no page-table churn), and 128 KiB-1 MiB buffers tie.
//
// Every file is opened with openBeneath() (never through a symlink) and checked to be the same
// regular file, of the same size, that the walk saw; the first failure stops the batch and is
// returned naming the file.

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/base/status.h"

namespace lf::context {

struct HashJob {
  std::string_view path;  // relative to the root descriptor; must be followed by a NUL (view a
                          // whole std::string), so the hot loop opens it without copying
  uint64_t size = 0;      // as the walk saw it
  dev_t dev = 0;          // identity as the walk saw it; the opened file must match
  ino_t ino = 0;
  std::array<uint8_t, 32> sha256{};  // output
};

// Hashes every job; `threads` 0 means one per core. Jobs may be in any order (they are scheduled
// by size internally, the outputs stay in place).
Status hashFiles(int root_fd, std::span<HashJob> jobs, unsigned threads);

}  // namespace lf::context
