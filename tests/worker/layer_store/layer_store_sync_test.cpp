// Deferred durability of the LayerStore (layer_store.h, "Durability"): publishing without
// syncfs, flush() and its markers, the boot-id rule on load, the background flusher, a failed
// syncfs, and flushing while other threads acquire, adopt and evict.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/context_manifest_fixture.h"
#include "worker/layer_store/layer_meta.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker::testing {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;
using Clock = std::chrono::steady_clock;

constexpr const char* kBootA = "boot-a";
constexpr const char* kBootB = "boot-b";

std::string bytesOf(int kib) { return std::string(static_cast<size_t>(kib) * 1024, 'x'); }

class LayerSyncTest : public ContextManifestTest {
 protected:
  // A store with a counting sync function and no flusher thread unless `interval_ms` is set.
  std::unique_ptr<LayerStore> openSynced(const std::string& boot,
                                         LayerSyncMode mode = LayerSyncMode::kDeferred,
                                         uint32_t interval_ms = 0, uint64_t budget = 1ull << 40) {
    LayerStoreOptions options;
    options.root = root();
    options.budget_bytes = budget;
    options.sync = true;
    options.sync_mode = mode;
    options.sync_interval_ms = interval_ms;
    options.boot_id = boot;
    options.sync_fs = [this](int fd) { return countSync(fd); };
    auto store = LayerStore::open(options, *blobs_);
    EXPECT_TRUE(store.isOk()) << store.status().toString();
    return store.isOk() ? std::move(store).value() : nullptr;
  }

  Status countSync(int fd) {
    std::function<void()> during;
    {
      std::lock_guard lock(mu_);
      ++syncs_;
      cv_.notify_all();
      if (fail_sync_) {
        return errnoStatus(EIO, "injected syncfs failure");
      }
      during = during_sync_;
    }
    if (during) {
      during();
    }
    return syncfs(fd) == 0 ? Status::ok() : errnoStatus(errno, "syncfs");
  }

  int syncs() {
    std::lock_guard lock(mu_);
    return syncs_;
  }

  // Publishes `chain` (and adopts `upper` as `adopted`, if given) in a child process of boot
  // `boot` that then dies without flushing: what a crash leaves behind.
  void publishAndDie(const std::string& boot, const std::vector<LayerRef>& chain,
                     const fs::path& upper = {}, const LayerRef& adopted = {}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      LayerStoreOptions options;
      options.root = root();
      options.sync_interval_ms = 0;
      options.boot_id = boot;
      options.sync_fs = [](int) { return Status::ok(); };
      auto store = LayerStore::open(options, *blobs_);
      if (!store.isOk()) {
        _exit(2);
      }
      if (!(*store)->acquire(chain).isOk()) {
        _exit(3);
      }
      if (!upper.empty() && !(*store)->adopt(adopted, upper).isOk()) {
        _exit(4);
      }
      _exit(0);  // no destructor: nothing flushed
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
  }

  fs::path layerDir(const LayerRef& ref) const {
    return root() / "l" / LayerStore::layerName(ref.diff_id);
  }
  bool marked(const LayerRef& ref) const { return fs::is_regular_file(layerDir(ref) / "synced"); }

  std::mutex mu_;
  std::condition_variable cv_;
  int syncs_ = 0;
  bool fail_sync_ = false;
  std::function<void()> during_sync_;  // runs inside each sync, without mu_
};

TEST_F(LayerSyncTest, DeferredPublishDoesNotSyncAndFlushMarksAll) {
  LayerRef a = makeLayer({{"f", "unpacked"}});
  LayerRef ctx = storeManifest({file("c.txt", 0644, 5, "context file")});
  fs::path upper = makeDir({{"g", "adopted"}});
  LayerRef up = layerOf(upper);
  auto store = openSynced(kBootA);
  ASSERT_TRUE(store);
  {
    auto lease = store->acquire({a, ctx});
    ASSERT_TRUE(lease.isOk()) << lease.status().toString();
    EXPECT_EQ(readFile(lease->dirs()[1] / "c.txt"), "context file");
  }
  ASSERT_TRUE(store->adopt(up, upper).isOk());
  EXPECT_EQ(syncs(), 0);  // none of the three publishes synced
  EXPECT_EQ(store->stats().pending, 3u);
  EXPECT_FALSE(marked(a) || marked(ctx) || marked(up));
  auto meta = readLayerMeta(AT_FDCWD, (layerDir(up) / "meta").string(), "meta");
  ASSERT_TRUE(meta.isOk()) << meta.status().toString();
  EXPECT_EQ(meta->meta.boot_id, kBootA);

  ASSERT_TRUE(store->flush().isOk());
  EXPECT_EQ(syncs(), 1);  // one syncfs for all of them
  EXPECT_EQ(store->stats().flushes, 1u);
  EXPECT_EQ(store->stats().pending, 0u);
  EXPECT_TRUE(marked(a) && marked(ctx) && marked(up));
  ASSERT_TRUE(store->flush().isOk());
  EXPECT_EQ(syncs(), 1);  // nothing pending: no syncfs
  store.reset();
  EXPECT_EQ(syncs(), 1);  // nor at close
}

TEST_F(LayerSyncTest, EachPublishModeSyncsBeforeEveryPublish) {
  LayerRef a = makeLayer({{"f", "a"}});
  fs::path upper = makeDir({{"g", "b"}});
  LayerRef up = layerOf(upper);
  auto store = openSynced(kBootA, LayerSyncMode::kEachPublish);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->acquire({a}).isOk());
  EXPECT_EQ(syncs(), 1);
  ASSERT_TRUE(store->adopt(up, upper).isOk());
  EXPECT_EQ(syncs(), 2);
  EXPECT_EQ(store->stats().pending, 0u);
  // Format 1 metadata (no boot id): synced before it was published, kept after any reboot.
  auto meta = readLayerMeta(AT_FDCWD, (layerDir(up) / "meta").string(), "meta");
  ASSERT_TRUE(meta.isOk()) << meta.status().toString();
  EXPECT_TRUE(meta->meta.boot_id.empty());
  store.reset();
  store = openSynced(kBootB, LayerSyncMode::kEachPublish);
  EXPECT_TRUE(store->contains(a.diff_id) && store->contains(up.diff_id));
}

TEST_F(LayerSyncTest, ReopenInTheSameBootKeepsPendingLayers) {
  LayerRef a = makeLayer({{"f", "pending"}});
  fs::path upper = makeDir({{"g", "adopted"}});
  LayerRef up = layerOf(upper);
  publishAndDie(kBootA, {a}, upper, up);
  ASSERT_FALSE(marked(a) || marked(up));

  auto store = openSynced(kBootA);
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->contains(a.diff_id) && store->contains(up.diff_id));
  EXPECT_EQ(store->stats().pending, 2u);
  ASSERT_TRUE(store->flush().isOk());  // another process's layers are flushed too
  EXPECT_TRUE(marked(a) && marked(up));
  auto lease = store->acquire({a, up});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(store->stats().misses, 0u);
  EXPECT_EQ(readFile(lease->dirs()[1] / "g"), "adopted");
}

TEST_F(LayerSyncTest, ReopenAfterARebootDiscardsPendingLayersAndKeepsSyncedOnes) {
  LayerRef synced = makeLayer({{"f", "synced"}});
  LayerRef pending = makeLayer({{"f", "pending"}});
  LayerRef ctx = storeManifest({file("c.txt", 0644, 5, "pending context")});
  fs::path upper = makeDir({{"g", "adopted"}});
  LayerRef up = layerOf(upper);
  {
    auto store = openSynced(kBootA);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->acquire({synced}).isOk());
    ASSERT_TRUE(store->flush().isOk());
  }
  publishAndDie(kBootA, {pending, ctx}, upper, up);

  auto store = openSynced(kBootB);  // the machine went down and came back
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->contains(synced.diff_id));
  EXPECT_FALSE(store->contains(pending.diff_id) || store->contains(ctx.diff_id) ||
               store->contains(up.diff_id));
  EXPECT_EQ(entries("l"), std::vector<std::string>{LayerStore::layerName(synced.diff_id)});
  EXPECT_TRUE(entries("tmp").empty());
  // The discarded ones come back from the blob store (the adopted one has its blob too).
  auto lease = store->acquire({synced, pending, ctx, up});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(store->stats().misses, 3u);
  EXPECT_EQ(readFile(lease->dirs()[1] / "f"), "pending");
  EXPECT_EQ(readFile(lease->dirs()[2] / "c.txt"), "pending context");
  EXPECT_EQ(readFile(lease->dirs()[3] / "g"), "adopted");
}

TEST_F(LayerSyncTest, AMarkerThatIsNotAFileOrDamagedMetadataCountsAsLost) {
  LayerRef dir_marker = makeLayer({{"f", "1"}});
  LayerRef bad_boot = makeLayer({{"f", "2"}});
  publishAndDie(kBootA, {dir_marker, bad_boot});
  fs::create_directory(layerDir(dir_marker) / "synced");
  // A torn metadata file whose boot id line lost its value.
  std::string meta = readFile(layerDir(bad_boot) / "meta");
  meta.replace(meta.find(kBootA), std::string(kBootA).size(), "");
  ASSERT_TRUE(lf::testing::writeFile(layerDir(bad_boot) / "meta", meta));

  auto same_boot = openSynced(kBootA);
  ASSERT_TRUE(same_boot);
  EXPECT_TRUE(same_boot->contains(dir_marker.diff_id));  // still pending, still usable
  EXPECT_EQ(same_boot->stats().pending, 1u);
  EXPECT_FALSE(same_boot->contains(bad_boot.diff_id));  // corrupt metadata: always deleted
  // The marker cannot be made where a directory is: the layer stays pending, and is not retried
  // (no syncfs every interval for it).
  EXPECT_FALSE(same_boot->flush().isOk());
  const int syncs_before = syncs();
  EXPECT_TRUE(same_boot->flush().isOk());
  EXPECT_EQ(syncs(), syncs_before);
  EXPECT_EQ(same_boot->stats().pending, 1u);
  same_boot.reset();

  auto store = openSynced(kBootB);
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->contains(dir_marker.diff_id));
  EXPECT_TRUE(entries("l").empty());
}

TEST_F(LayerSyncTest, ALostLayerAnotherProcessLeftIsReplacedNotUsed) {
  LayerRef a = makeLayer({{"f", "fresh"}});
  auto store = openSynced(kBootB);  // opened before the stale layer appears
  ASSERT_TRUE(store);
  publishAndDie(kBootA, {a});  // as if left by the previous boot
  ASSERT_TRUE(lf::testing::writeFile(layerDir(a) / "fs" / "f", "lost data"));
  auto lease = store->acquire({a});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(store->stats().misses, 1u);  // fetched again, not used
  EXPECT_EQ(readFile(lease->dirs()[0] / "f"), "fresh");
}

TEST_F(LayerSyncTest, BackgroundThreadFlushesWithinItsInterval) {
  fs::path upper = makeDir({{"g", "adopted"}});
  LayerRef up = layerOf(upper);
  auto store = openSynced(kBootA, LayerSyncMode::kDeferred, /*interval_ms=*/20);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->adopt(up, upper).isOk());
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (store->stats().pending != 0 && Clock::now() < deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)));
  }
  EXPECT_EQ(store->stats().pending, 0u);
  EXPECT_TRUE(marked(up));
  store.reset();
  EXPECT_EQ(syncs(), 1);  // the thread syncs only while something is pending
}

TEST_F(LayerSyncTest, AFailedSyncDiscardsUnusedPendingLayersAndNeverMarksTheOthers) {
  LayerRef used = makeLayer({{"f", "in use"}});
  fs::path upper = makeDir({{"g", "unused"}});
  LayerRef unused = layerOf(upper);
  auto store = openSynced(kBootA);
  ASSERT_TRUE(store);
  auto lease = store->acquire({used});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  ASSERT_TRUE(store->adopt(unused, upper).isOk());
  {
    std::lock_guard lock(mu_);
    fail_sync_ = true;
  }
  Status flushed = store->flush();
  EXPECT_FALSE(flushed.isOk());
  EXPECT_NE(flushed.message().find("injected syncfs failure"), std::string::npos)
      << flushed.toString();
  EXPECT_FALSE(store->contains(unused.diff_id));
  EXPECT_FALSE(fs::exists(layerDir(unused)));
  EXPECT_TRUE(store->contains(used.diff_id));
  EXPECT_EQ(readFile(lease->dirs()[0] / "f"), "in use");
  {
    std::lock_guard lock(mu_);
    fail_sync_ = false;
  }
  ASSERT_TRUE(store->flush().isOk());
  EXPECT_EQ(syncs(), 1);  // the layer in use is not flushed again: a reboot must discard it
  EXPECT_FALSE(marked(used));
  lease->release();
}

TEST_F(LayerSyncTest, AnEvictorCannotTakeALayerWhileItIsBeingFlushed) {
  fs::path upper = makeDir({{"g", "adopted"}});
  LayerRef up = layerOf(upper);
  auto store = openSynced(kBootA);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->adopt(up, upper).isOk());  // unpinned, pending
  bool survived = false;
  during_sync_ = [&] {
    // Another process with a zero budget evicts everything it can while the syncfs runs.
    LayerStoreOptions options;
    options.root = root();
    options.budget_bytes = 0;
    options.sync = false;
    options.boot_id = kBootA;
    auto other = LayerStore::open(options, *blobs_);
    ASSERT_TRUE(other.isOk()) << other.status().toString();
    ASSERT_TRUE((*other)->evictToBudget().isOk());
    survived = fs::exists(layerDir(up) / "fs" / "g") && (*other)->stats().evictions == 0;
  };
  ASSERT_TRUE(store->flush().isOk());
  EXPECT_TRUE(survived);
  EXPECT_TRUE(marked(up));  // marked in place, after the syncfs
  during_sync_ = nullptr;
  // Once flushed it is an ordinary layer again: evictable, marker and all.
  LayerStoreOptions options;
  options.root = root();
  options.budget_bytes = 0;
  options.sync = false;
  options.boot_id = kBootA;
  auto other = LayerStore::open(options, *blobs_);
  ASSERT_TRUE(other.isOk()) << other.status().toString();
  EXPECT_EQ((*other)->stats().evictions, 1u);
  EXPECT_TRUE(entries("l").empty());
  EXPECT_TRUE(entries("tmp").empty());
}

TEST_F(LayerSyncTest, AcquireAdoptAndEvictWhileTheFlusherRuns) {
  constexpr int kLayers = 6;
  std::vector<LayerRef> layers;
  for (int i = 0; i < kLayers; ++i) {
    layers.push_back(makeLayer({{"f", "layer " + std::to_string(i)}, {"pad", bytesOf(i)}}));
  }
  std::vector<std::pair<fs::path, LayerRef>> uppers;
  for (int i = 0; i < 8; ++i) {
    fs::path dir = makeDir({{"u", "upper " + std::to_string(i)}});
    uppers.emplace_back(dir, layerOf(dir));
  }
  // A budget below the total keeps the evictor busy alongside the flusher.
  auto store = openSynced(kBootA, LayerSyncMode::kDeferred, /*interval_ms=*/1, /*budget=*/3000);
  ASSERT_TRUE(store);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 30; ++round) {
        const LayerRef& ref = layers[(t + round) % kLayers];
        auto lease = store->acquire({ref});
        if (!lease.isOk() ||
            readFile(lease->dirs()[0] / "f") != "layer " + std::to_string((t + round) % kLayers)) {
          ++failures;
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (auto& [dir, ref] : uppers) {
      Status adopted = store->adopt(ref, dir);
      if (!adopted.isOk() && adopted.code() != StatusCode::kAlreadyExists) {
        ++failures;
      }
      if (!store->flush().isOk()) {
        ++failures;
      }
    }
  });
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(store->flush().isOk());
  LayerStore::Stats stats = store->stats();
  EXPECT_EQ(stats.pinned, 0u);
  EXPECT_EQ(stats.pending, 0u);
  EXPECT_GT(stats.flushes, 0u);
  // Every layer left on disk is marked; nothing half-deleted is left.
  for (const std::string& name : entries("l")) {
    EXPECT_TRUE(fs::is_regular_file(root() / "l" / name / "synced")) << name;
  }
  EXPECT_TRUE(entries("tmp").empty());
}

// Not a test: the figures for the report (run with --gtest_also_run_disabled_tests). Times
// acquire() of a fresh 20 MB manifest context and adopt() of a fresh 20 MB upper dir, syncing
// before each publish and deferred, on the filesystem of the temp dir, with the real syncfs.
TEST_F(LayerSyncTest, DISABLED_MeasurePublishLatency) {
  constexpr int kFiles = 200;
  constexpr size_t kFileBytes = 100 * 1024;
  constexpr int kRounds = 5;
  int round_id = 0;
  auto content = [&](int file) {
    std::string bytes(kFileBytes, '\0');
    uint64_t x = (static_cast<uint64_t>(round_id) << 32) ^ static_cast<uint64_t>(file) ^ 0x9e37;
    for (char& c : bytes) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      c = static_cast<char>(x >> 56);
    }
    return bytes;
  };
  for (LayerSyncMode mode : {LayerSyncMode::kEachPublish, LayerSyncMode::kDeferred}) {
    const char* name = mode == LayerSyncMode::kDeferred ? "deferred" : "each-publish";
    LayerStoreOptions options;
    options.root = tmp_ / ("measure-" + std::string(name));
    options.sync_mode = mode;
    auto store = LayerStore::open(options, *blobs_);
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    for (int round = 0; round < kRounds; ++round) {
      ++round_id;
      std::vector<ManifestEntry> files;
      for (int f = 0; f < kFiles; ++f) {
        files.push_back(file("d/f" + std::to_string(f), 0644, 1, content(f)));
      }
      LayerRef ctx = storeManifest(files);
      sync();  // the blobs' writes must not be billed to the store's syncfs
      auto t0 = Clock::now();
      auto lease = (*store)->acquire({ctx});
      auto t1 = Clock::now();
      ASSERT_TRUE(lease.isOk()) << lease.status().toString();
      lease->release();

      auto scratch = (*store)->makeScratchDir();
      ASSERT_TRUE(scratch.isOk()) << scratch.status().toString();
      fs::path upper = scratch->path() / "upper";
      ++round_id;
      for (int f = 0; f < kFiles; ++f) {
        ASSERT_TRUE(lf::testing::writeFile(upper / ("f" + std::to_string(f)), content(f)));
      }
      LayerRef up{Digest::sha256Of("upper " + std::to_string(round_id)),
                  Digest::sha256Of("upper diff " + std::to_string(round_id)), 0,
                  "application/vnd.oci.image.layer.v1.tar"};
      auto t2 = Clock::now();
      ASSERT_TRUE((*store)->adopt(up, upper).isOk());
      auto t3 = Clock::now();
      auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
      std::printf("%-12s round %d: acquire 20 MB context %7.1f ms, adopt 20 MB upper %7.1f ms\n",
                  name, round, ms(t1 - t0), ms(t3 - t2));
    }
    auto t4 = Clock::now();
    ASSERT_TRUE((*store)->flush().isOk());
    std::printf("%-12s flush() of what is pending: %.1f ms\n", name,
                std::chrono::duration<double, std::milli>(Clock::now() - t4).count());
  }
}

}  // namespace
}  // namespace lf::worker::testing
