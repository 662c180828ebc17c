// HashCache with scanContext on real files: which files are read again and which are not, the
// racily-clean rule, corrupt and concurrently written cache files.

#include "common/context/hash_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/context/context_scanner.h"
#include "tests/support/temp_dir.h"

namespace lf::context {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

constexpr int64_t kSecond = 1'000'000'000;

int64_t realNow() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * kSecond + ts.tv_nsec;
}

// A clock `offset_ns` ahead of the real one: "the scan happens that much later".
HashCache::Options laterBy(int64_t offset_ns) {
  HashCache::Options o;
  o.now_ns = [offset_ns] { return realNow() + offset_ns; };
  return o;
}

struct Scan {
  ContextSnapshot snap;
  WalkStats walk;  // regular_files = files read, cached_files = files answered by the cache
};

Scan scanWith(const fs::path& root, HashCache* cache, ScanDetails* details = nullptr) {
  Scan out;
  ScanOptions options;
  options.hash_cache = cache;
  options.after_walk = [&out](const WalkStats& s) { out.walk = s; };
  auto snap = scanContext(root, options, details);
  EXPECT_TRUE(snap.isOk()) << snap.status().toString();
  if (snap.isOk()) out.snap = std::move(snap).value();
  return out;
}

Digest digestOf(const Scan& s, const std::string& path) {
  const ContextEntry* e = s.snap.find(path);
  return e == nullptr ? Digest() : e->content;
}

void setMtime(const fs::path& p, int64_t sec, long nsec = 0) {
  timespec times[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << p;
}

int64_t ctimeNs(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return int64_t{st.st_ctim.tv_sec} * kSecond + st.st_ctim.tv_nsec;
}

// Waits (deadline, no fixed sleep) until a new file's ctime is later than `ctime_ns`: the
// filesystem's coarse clock has ticked, so the next change of any file gets a different ctime.
void waitForCtimeAfter(const fs::path& dir, int64_t ctime_ns) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  fs::path probe = dir / ".probe";
  while (std::chrono::steady_clock::now() < deadline) {
    lf::testing::writeFile(probe, "x");
    if (ctimeNs(probe) > ctime_ns) {
      fs::remove(probe);
      return;
    }
    std::this_thread::yield();
  }
  FAIL() << "the filesystem clock did not move in 10 s";
}

TEST(HashCache, UnchangedFilesAreNotReadAgainAndNothingIsWritten) {
  TempDir ctx, cache_dir;
  ctx.write("Dockerfile", "FROM scratch\n");
  ctx.write("data/blob.bin", std::string(100000, 'b'));
  ctx.write("data/v.txt", "version 1\n");
  fs::path file = cache_dir / "hashes/ctx";

  auto first = HashCache::open(file, laterBy(10 * kSecond));
  Scan cold = scanWith(ctx.path(), first.get());
  EXPECT_EQ(cold.walk.regular_files, 3u);
  EXPECT_EQ(cold.walk.cached_files, 0u);
  ASSERT_TRUE(first->save().isOk());
  EXPECT_TRUE(first->stats().written);
  EXPECT_TRUE(fs::exists(file));
  auto written_at = fs::last_write_time(file);

  auto second = HashCache::open(file, laterBy(20 * kSecond));
  EXPECT_EQ(second->stats().loaded, 3u);
  Scan warm = scanWith(ctx.path(), second.get());
  EXPECT_EQ(warm.walk.regular_files, 0u) << "a file the cache vouches for was read";
  EXPECT_EQ(warm.walk.cached_files, 3u);
  EXPECT_EQ(warm.walk.cached_bytes, 100000u + 13u + 10u);
  EXPECT_EQ(second->stats().hits, 3u);
  EXPECT_EQ(warm.snap.entries(), cold.snap.entries());
  EXPECT_EQ(warm.snap.contextDigest(), cold.snap.contextDigest());
  ASSERT_TRUE(second->save().isOk());
  EXPECT_FALSE(second->stats().written) << "an all-hit scan rewrote the cache";
  EXPECT_EQ(fs::last_write_time(file), written_at);
}

TEST(HashCache, SameSizeAndRestoredMtimeStillRehashesBecauseCtimeChanged) {
  TempDir ctx, cache_dir;
  fs::path f = ctx.write("a.txt", "aaaa");
  setMtime(f, 1'600'000'000);
  fs::path file = cache_dir / "c";
  auto cache = HashCache::open(file, laterBy(10 * kSecond));
  Scan before = scanWith(ctx.path(), cache.get());
  ASSERT_TRUE(cache->save().isOk());
  EXPECT_EQ(digestOf(before, "a.txt"), Digest::sha256Of("aaaa"));

  // Edit in place, same size, then `touch -d` the old mtime back, after the clock ticked (else
  // the ctime could legitimately be equal: that is the racy case, tested below).
  waitForCtimeAfter(ctx.path(), ctimeNs(f));
  ASSERT_TRUE(lf::testing::writeFile(f, "bbbb"));
  setMtime(f, 1'600'000'000);

  auto again = HashCache::open(file, laterBy(20 * kSecond));
  Scan after = scanWith(ctx.path(), again.get());
  EXPECT_EQ(again->stats().hits, 0u);
  EXPECT_EQ(after.walk.regular_files, 1u);
  EXPECT_EQ(digestOf(after, "a.txt"), Digest::sha256Of("bbbb"));
}

TEST(HashCache, RenamedOverFileAndChangedSizeAreMisses) {
  TempDir ctx, cache_dir;
  ctx.write("same-size.txt", "1111");
  ctx.write("grows.txt", "x");
  ctx.write("stays.txt", "s");
  fs::path file = cache_dir / "c";
  auto cache = HashCache::open(file, laterBy(10 * kSecond));
  scanWith(ctx.path(), cache.get());
  ASSERT_TRUE(cache->save().isOk());

  // An editor's atomic save: a new inode under the old name, same size.
  ctx.write("tmp", "2222");
  fs::rename(ctx / "tmp", ctx / "same-size.txt");
  ctx.write("grows.txt", "xy");

  auto again = HashCache::open(file, laterBy(20 * kSecond));
  Scan after = scanWith(ctx.path(), again.get());
  EXPECT_EQ(again->stats().hits, 1u);
  EXPECT_EQ(after.walk.regular_files, 2u);
  EXPECT_EQ(digestOf(after, "same-size.txt"), Digest::sha256Of("2222"));
  EXPECT_EQ(digestOf(after, "grows.txt"), Digest::sha256Of("xy"));
  EXPECT_EQ(digestOf(after, "stays.txt"), Digest::sha256Of("s"));
}

TEST(HashCache, RacilyCleanFilesAreRehashedUntilAScanSawThemOldEnough) {
  TempDir ctx, cache_dir;
  fs::path f = ctx.write("a.txt", "aaaa");
  fs::path file = cache_dir / "c";
  // Real clock: the file is younger than the 2 s margin at the first scan.
  auto first = HashCache::open(file);
  scanWith(ctx.path(), first.get());
  ASSERT_TRUE(first->save().isOk());

  // Changed right after the scan within the same timestamp granule (same size; the mtime put
  // back, ctime possibly equal): only the racy rule stops the stale digest.
  ASSERT_TRUE(lf::testing::writeFile(f, "bbbb"));
  auto second = HashCache::open(file);
  Scan s2 = scanWith(ctx.path(), second.get());
  EXPECT_EQ(digestOf(s2, "a.txt"), Digest::sha256Of("bbbb"));
  EXPECT_EQ(second->stats().hits, 0u);
  EXPECT_EQ(s2.walk.regular_files, 1u);
  ASSERT_TRUE(second->save().isOk());

  // The entry recorded by a scan that started only just after the file changed is racy too...
  auto third = HashCache::open(file, laterBy(10 * kSecond));
  Scan s3 = scanWith(ctx.path(), third.get());
  EXPECT_EQ(third->stats().racy, 1u);
  EXPECT_EQ(s3.walk.regular_files, 1u);
  ASSERT_TRUE(third->save().isOk());
  EXPECT_TRUE(third->stats().written);

  // ...and trusted once recorded by a scan that began more than the margin after the change.
  auto fourth = HashCache::open(file, laterBy(20 * kSecond));
  Scan s4 = scanWith(ctx.path(), fourth.get());
  EXPECT_EQ(fourth->stats().hits, 1u);
  EXPECT_EQ(s4.walk.regular_files, 0u);
  EXPECT_EQ(digestOf(s4, "a.txt"), Digest::sha256Of("bbbb"));
}

TEST(HashCache, FutureTimestampsAreNeverTrusted) {
  TempDir ctx, cache_dir;
  fs::path f = ctx.write("a.txt", "a");
  setMtime(f, realNow() / kSecond + 3600);  // an archive from a clock an hour ahead
  fs::path file = cache_dir / "c";
  for (int i = 0; i < 3; ++i) {
    auto cache = HashCache::open(file, laterBy(10 * kSecond));
    Scan s = scanWith(ctx.path(), cache.get());
    EXPECT_EQ(cache->stats().hits, 0u) << i;
    EXPECT_EQ(s.walk.regular_files, 1u) << i;
    ASSERT_TRUE(cache->save().isOk());
  }
}

TEST(HashCache, DeletedFilesAreDroppedFromTheFile) {
  TempDir ctx, cache_dir;
  ctx.write("a", "a");
  ctx.write("b", "b");
  fs::path file = cache_dir / "c";
  auto cache = HashCache::open(file, laterBy(10 * kSecond));
  scanWith(ctx.path(), cache.get());
  ASSERT_TRUE(cache->save().isOk());
  EXPECT_EQ(HashCache::open(file)->stats().loaded, 2u);
  fs::remove(ctx / "b");
  auto again = HashCache::open(file, laterBy(20 * kSecond));
  Scan s = scanWith(ctx.path(), again.get());
  EXPECT_EQ(again->stats().hits, 1u);
  ASSERT_TRUE(again->save().isOk());
  EXPECT_TRUE(again->stats().written);
  EXPECT_EQ(HashCache::open(file)->stats().loaded, 1u);
}

TEST(HashCache, CorruptTruncatedOrForeignFilesReadAsEmpty) {
  TempDir ctx, cache_dir;
  ctx.write("a", "a");
  ctx.write("b", "bb");
  fs::path file = cache_dir / "c";
  auto cache = HashCache::open(file, laterBy(10 * kSecond));
  Scan cold = scanWith(ctx.path(), cache.get());
  ASSERT_TRUE(cache->save().isOk());
  std::string good = lf::testing::readFile(file);
  ASSERT_FALSE(good.empty());

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x20;
  std::string other_version = good;
  other_version[8] = 2;
  for (const std::string& bad :
       {std::string(), std::string("garbage"), good.substr(0, good.size() - 1), flipped,
        other_version, good + "x", std::string(good.size(), '\0')}) {
    ASSERT_TRUE(lf::testing::writeFile(file, bad));
    auto c = HashCache::open(file, laterBy(20 * kSecond));
    EXPECT_EQ(c->stats().loaded, 0u) << "size " << bad.size();
    Scan s = scanWith(ctx.path(), c.get());
    EXPECT_EQ(s.walk.regular_files, 2u);
    EXPECT_EQ(s.snap.entries(), cold.snap.entries());
    ASSERT_TRUE(c->save().isOk());  // replaces the bad file with a good one
    EXPECT_EQ(HashCache::open(file)->stats().loaded, 2u);
  }
  // A directory where the file should be: no cache, and save() reports (the CLI ignores it).
  fs::remove(file);
  fs::create_directories(file / "sub");
  auto c = HashCache::open(file, laterBy(20 * kSecond));
  EXPECT_EQ(c->stats().loaded, 0u);
  scanWith(ctx.path(), c.get());
  EXPECT_FALSE(c->save().isOk());
}

TEST(HashCache, ConcurrentWritersLeaveOneWholeFile) {
  TempDir ctx, cache_dir;
  for (int i = 0; i < 20; ++i) ctx.write("f" + std::to_string(i), std::string(i * 100, 'x'));
  fs::path file = cache_dir / "hashes/c";
  auto writer = [&](int id) {
    for (int round = 0; round < 15; ++round) {
      auto cache = HashCache::open(file, laterBy((10 + round) * kSecond));
      ScanOptions options;
      options.hash_cache = cache.get();
      auto snap = scanContext(ctx.path(), options);
      EXPECT_TRUE(snap.isOk()) << id << ": " << snap.status().toString();
      if (snap.isOk()) {
        EXPECT_EQ(snap->find("f3")->content, Digest::sha256Of(std::string(300, 'x')));
      }
      Status saved = cache->save();
      EXPECT_TRUE(saved.isOk()) << saved.toString();
    }
  };
  std::thread a(writer, 1), b(writer, 2);
  a.join();
  b.join();
  EXPECT_EQ(HashCache::open(file)->stats().loaded, 20u);
  for (const auto& de : fs::directory_iterator(file.parent_path())) {
    EXPECT_EQ(de.path(), file) << "left behind: " << de.path();
  }
}

TEST(HashCache, DirectoryKeepsAtMostMaxCacheFiles) {
  TempDir ctx, cache_dir;
  ctx.write("a", "a");
  fs::path dir = cache_dir / "hashes";
  fs::create_directories(dir);
  for (size_t i = 0; i < HashCache::kMaxCacheFiles + 10; ++i) {
    fs::path old = dir / ("old" + std::to_string(i));
    lf::testing::writeFile(old, "x");
    setMtime(old, 1'600'000'000 + static_cast<int64_t>(i));
  }
  auto cache = HashCache::open(dir / "mine", laterBy(10 * kSecond));
  scanWith(ctx.path(), cache.get());
  ASSERT_TRUE(cache->save().isOk());
  size_t n = 0;
  for (const auto& de : fs::directory_iterator(dir)) {
    (void)de;
    ++n;
  }
  EXPECT_EQ(n, HashCache::kMaxCacheFiles);
  EXPECT_TRUE(fs::exists(dir / "mine"));
  EXPECT_FALSE(fs::exists(dir / "old0")) << "the oldest go first";
  EXPECT_TRUE(fs::exists(dir / ("old" + std::to_string(HashCache::kMaxCacheFiles + 9))));
}

TEST(HashCache, DefaultFileFollowsTheEnvironment) {
  TempDir ctx;
  std::string key = Digest::sha256Of(fs::canonical(ctx.path()).string()).hex();
  const char* saved_home = std::getenv("HOME");
  std::string home = saved_home ? saved_home : "";
  ::setenv("LAYERFARM_CACHE_DIR", "/tmp/lfc", 1);
  ::setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  EXPECT_EQ(HashCache::defaultFileFor(ctx.path()).value(), fs::path("/tmp/lfc/hashes") / key);
  // The same key through a path with "." and ".." in it.
  EXPECT_EQ(HashCache::defaultFileFor(ctx.path() / "." / ".." / ctx.path().filename()).value(),
            fs::path("/tmp/lfc/hashes") / key);
  ::unsetenv("LAYERFARM_CACHE_DIR");
  EXPECT_EQ(HashCache::defaultFileFor(ctx.path()).value(),
            fs::path("/tmp/xdg/layerfarm/hashes") / key);
  ::setenv("XDG_CACHE_HOME", "relative", 1);  // ignored, as the XDG spec says
  ::setenv("HOME", "/home/u", 1);
  EXPECT_EQ(HashCache::defaultFileFor(ctx.path()).value(),
            fs::path("/home/u/.cache/layerfarm/hashes") / key);
  ::unsetenv("XDG_CACHE_HOME");
  ::unsetenv("HOME");
  EXPECT_FALSE(HashCache::defaultFileFor(ctx.path()).isOk());
  if (saved_home) ::setenv("HOME", home.c_str(), 1);
}

TEST(ScanDetails, GivesEveryEntrysMtimeInWholeSeconds) {
  TempDir ctx;
  ctx.write("Dockerfile", "FROM scratch\n");
  ctx.write(".dockerignore", "Dockerfile\n");
  fs::path f = ctx.write("d/f", "x");
  setMtime(f, 1'700'000'000, 999'999'999);
  setMtime(ctx / "d", 1'600'000'000, 1);
  setMtime(ctx / "Dockerfile", -5, 500'000'000);  // before 1970: rounded down, as in a tar
  ScanDetails details;
  Scan s = scanWith(ctx.path(), nullptr, &details);
  EXPECT_EQ(s.snap.builderOnly().size(), 1u);
  EXPECT_EQ(details.mtimes.size(), 4u);  // .dockerignore, d, d/f and the builder-only Dockerfile
  EXPECT_EQ(details.mtimes.at("d/f"), 1'700'000'000);
  EXPECT_EQ(details.mtimes.at("d"), 1'600'000'000);
  EXPECT_EQ(details.mtimes.at("Dockerfile"), -5);
  EXPECT_TRUE(details.mtimes.count(".dockerignore"));
}

}  // namespace
}  // namespace lf::context
