// Build-context scan benchmark.
//
//   context_hash_bench generate DIR   make the benchmark context in DIR unless DIR/.complete says
//                                     it is already there: 10,000 files, ~1 GiB (9,800 small of
//                                     0-20 KiB, 194 of 1-4 MiB, 6 of 50-100 MiB), pseudo-random
//                                     bytes from a fixed seed, spread over nested directories
//   context_hash_bench scan DIR [THREADS]
//                                     scanContext() with THREADS hashing threads (0 = all cores);
//                                     prints "files=N bytes=N seconds=S gbps=G digest=D"
//   context_hash_bench list DIR       one line per file, "<sha256 hex> DIR/<path>", to check the
//                                     digests against another tool's
//
// bench/context_hash_bench.sh drives both and runs openssl on the same files for comparison.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/context/context_scanner.h"

namespace {

namespace fs = std::filesystem;

// xorshift64*: fast, deterministic filler; content only needs to defeat dedup and compression.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  uint64_t uniform(uint64_t lo, uint64_t hi) { return lo + next() % (hi - lo + 1); }
};

bool writeRandomFile(const fs::path& path, uint64_t size, Rng& rng, std::vector<uint64_t>& buf) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  while (size > 0) {
    size_t words = buf.size();
    for (size_t i = 0; i < words; ++i) buf[i] = rng.next();
    uint64_t chunk = std::min<uint64_t>(size, words * 8);
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(chunk));
    size -= chunk;
  }
  return static_cast<bool>(out);
}

int generate(const fs::path& dir) {
  if (fs::exists(dir / ".complete")) {
    std::printf("reusing %s\n", dir.c_str());
    return 0;
  }
  fs::remove_all(dir);
  Rng rng{0x9E3779B97F4A7C15ull};
  std::vector<uint64_t> buf(1 << 17);  // 1 MiB
  constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 6; ++i) sizes.push_back(rng.uniform(50 * kMiB, 100 * kMiB));
  for (int i = 0; i < 194; ++i) sizes.push_back(rng.uniform(1 * kMiB, 4 * kMiB));
  for (int i = 0; i < 9800; ++i) sizes.push_back(rng.uniform(0, 20 * kKiB));
  uint64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    // Files land in a two-level tree, 100 directories of ~100 files, mixed sizes everywhere.
    size_t slot = (i * 7919) % sizes.size();
    fs::path sub = dir / ("d" + std::to_string(slot % 10)) / ("e" + std::to_string(slot / 10 % 10));
    fs::create_directories(sub);
    if (!writeRandomFile(sub / ("f" + std::to_string(i) + ".bin"), sizes[i], rng, buf)) {
      std::fprintf(stderr, "cannot write under %s\n", sub.c_str());
      return 1;
    }
    total += sizes[i];
  }
  std::ofstream(dir / ".complete") << total << "\n";
  std::printf("generated %zu files, %llu bytes in %s\n", sizes.size(),
              static_cast<unsigned long long>(total), dir.c_str());
  return 0;
}

int scan(const fs::path& dir, unsigned threads, bool list) {
  lf::context::ScanOptions options;
  options.threads = threads;
  options.dockerfile = "";
  // The marker file is the generator's, not part of the data set openssl hashes.
  std::vector<std::string> patterns = {".complete"};
  options.ignore = *lf::context::DockerIgnore::fromPatterns(patterns);
  auto start = std::chrono::steady_clock::now();
  auto snap = lf::context::scanContext(dir, options);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!snap.isOk()) {
    std::fprintf(stderr, "%s\n", snap.status().toString().c_str());
    return 1;
  }
  size_t files = 0;
  for (const auto& e : snap->entries()) {
    if (e.type != lf::context::EntryType::kRegular) {
      continue;
    }
    ++files;
    if (list) {
      std::printf("%s %s\n", e.content.hex().c_str(), (dir / e.path).c_str());
    }
  }
  if (list) {
    return 0;
  }
  uint64_t bytes = snap->totalFileBytes();
  std::printf("files=%zu bytes=%llu seconds=%.3f gbps=%.2f digest=%s\n", files,
              static_cast<unsigned long long>(bytes), seconds, bytes / seconds / 1e9,
              snap->contextDigest().toString().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "generate") {
    return generate(argv[2]);
  }
  if (argc >= 3 && std::string(argv[1]) == "scan") {
    unsigned threads = argc >= 4 ? static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)) : 0;
    return scan(argv[2], threads, false);
  }
  if (argc >= 3 && std::string(argv[1]) == "list") {
    return scan(argv[2], 0, true);
  }
  std::fprintf(stderr, "usage: %s generate DIR | scan DIR [THREADS] | list DIR\n", argv[0]);
  return 2;
}
