#include "worker/layer_store/layer_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/layer_store_fixture.h"
#include "worker/layer_store/layer_meta.h"

namespace lf::worker::testing {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;

std::string bytesOf(size_t n, char c) { return std::string(n, c); }

TEST_F(LayerStoreTest, AcquireUnpacksChainBottomFirst) {
  LayerRef l1 = makeLayer({{"a.txt", "one"}, {"dir/x", "xx"}});
  LayerRef l2 = makeLayer({{"b.txt", "two"}});
  LayerRef l3 = makeLayer({{"a.txt", "three"}});
  auto store = openStore();
  ASSERT_TRUE(store);

  auto lease = store->acquire({l1, l2, l3});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  const auto& dirs = lease->dirs();
  ASSERT_EQ(dirs.size(), 3u);
  EXPECT_EQ(readFile(dirs[0] / "a.txt"), "one");
  EXPECT_EQ(readFile(dirs[0] / "dir/x"), "xx");
  EXPECT_FALSE(fs::exists(dirs[0] / "b.txt"));
  EXPECT_EQ(readFile(dirs[1] / "b.txt"), "two");
  EXPECT_FALSE(fs::exists(dirs[1] / "a.txt"));
  EXPECT_EQ(readFile(dirs[2] / "a.txt"), "three");
  for (size_t i = 0; i < dirs.size(); ++i) {
    EXPECT_EQ(dirs[i], store->layersDir() / lease->relativeDirs()[i]);
    EXPECT_EQ(dirs[i].parent_path().parent_path(), root() / "l");
  }
  EXPECT_EQ(dirs[1].parent_path().filename().string(), LayerStore::layerName(l2.diff_id));
  EXPECT_EQ(LayerStore::layerName(l2.diff_id).size(), 32u);

  auto stats = store->stats();
  EXPECT_EQ(stats.layers, 3u);
  EXPECT_EQ(stats.misses, 3u);
  EXPECT_EQ(stats.hits, 0u);
  EXPECT_EQ(stats.pinned, 3u);
  EXPECT_EQ(stats.bytes, 3u + 2u + 3u + 5u);  // sum of file sizes
  EXPECT_TRUE(entries("tmp").empty());

  // The metadata records the full diff ID and the blob.
  auto meta = readLayerMeta(AT_FDCWD, (dirs[0].parent_path() / "meta").string(), "meta");
  ASSERT_TRUE(meta.isOk()) << meta.status().toString();
  EXPECT_EQ(meta->meta.diff_id, l1.diff_id);
  EXPECT_EQ(meta->meta.digest, l1.digest);
  EXPECT_EQ(meta->meta.bytes, 5u);

  lease->release();
  EXPECT_EQ(store->stats().pinned, 0u);
}

TEST_F(LayerStoreTest, SyncedStoreWorksTheSame) {
  sync_ = true;
  LayerRef a = makeLayer({{"f", "synced"}});
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({a});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[0] / "f"), "synced");
  fs::path upper = makeDir({{"g", "adopted"}});
  ASSERT_TRUE(store->adopt(layerOf(upper), upper).isOk());
  EXPECT_EQ(store->stats().layers, 2u);
}

TEST_F(LayerStoreTest, SecondAcquireHitsWithoutTheBlobStore) {
  LayerRef l1 = makeLayer({{"a", "1"}});
  LayerRef l2 = makeLayer({{"b", "2"}});
  auto store = openStore();
  ASSERT_TRUE(store);
  {
    auto lease = store->acquire({l1, l2});
    ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  }
  ASSERT_TRUE(blobs_->remove(l1.digest).isOk());
  ASSERT_TRUE(blobs_->remove(l2.digest).isOk());
  // Metadata is read at open only: a hit must not even look at it.
  ASSERT_TRUE(
      lf::testing::writeFile(root() / "l" / LayerStore::layerName(l1.diff_id) / "meta", "garbage"));
  auto lease = store->acquire({l1, l2});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[1] / "b"), "2");
  auto stats = store->stats();
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.hits, 2u);
}

TEST_F(LayerStoreTest, MissingBlobIsNotFoundAndLeavesNothing) {
  LayerRef l1 = makeLayer({{"a", "1"}});
  LayerRef l2 = makeLayer({{"b", "2"}});
  ASSERT_TRUE(blobs_->remove(l2.digest).isOk());
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({l1, l2});
  ASSERT_FALSE(lease.isOk());
  EXPECT_EQ(lease.status().code(), StatusCode::kNotFound);
  EXPECT_NE(lease.status().message().find(l2.digest.toString()), std::string::npos)
      << lease.status().message();
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_EQ(store->stats().pinned, 0u);  // l1 was pinned, then unpinned by the failure
  EXPECT_EQ(entries("l").size(), 1u);    // l1 is fine and stays cached
}

TEST_F(LayerStoreTest, DiffIdMismatchIsDataLossAndLeavesNothing) {
  LayerRef l1 = makeLayer({{"a", "1"}});
  LayerRef l2 = makeLayer({{"b", "2"}});
  LayerRef lying = l1;
  lying.diff_id = l2.diff_id;  // l1's blob claimed to be l2
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({lying});
  ASSERT_FALSE(lease.isOk());
  EXPECT_EQ(lease.status().code(), StatusCode::kDataLoss) << lease.status().toString();
  EXPECT_NE(lease.status().message().find(l1.diff_id.toString()), std::string::npos)
      << lease.status().message();
  EXPECT_NE(lease.status().message().find(l2.diff_id.toString()), std::string::npos)
      << lease.status().message();
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_TRUE(entries("l").empty());
  EXPECT_FALSE(store->contains(l2.diff_id));
}

TEST_F(LayerStoreTest, DamagedBlobIsDataLoss) {
  LayerRef l1 = makeLayer({{"a", bytesOf(100000, 'a')}});
  fs::path blob = blobs_->blobPath(l1.digest);
  std::string bytes = readFile(blob);
  bytes[bytes.size() / 2] ^= 0x55;
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(lf::testing::writeFile(blob, bytes));
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({l1});
  ASSERT_FALSE(lease.isOk());
  EXPECT_EQ(lease.status().code(), StatusCode::kDataLoss) << lease.status().toString();
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_TRUE(entries("l").empty());
}

TEST_F(LayerStoreTest, ConcurrentAcquiresUnpackOnce) {
  LayerRef big = makeLayer({{"big", bytesOf(4 << 20, 'b')}, {"small", "s"}});
  LayerRef top = makeLayer({{"top", "t"}});
  auto store = openStore();
  ASSERT_TRUE(store);
  constexpr int kThreads = 8;
  std::atomic<int> ready{0};
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  std::vector<LayerStore::Lease> leases(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kThreads) {
        std::this_thread::yield();
      }
      auto lease = store->acquire({big, top});
      if (lease.isOk() && readFile(lease->dirs()[0] / "small") == "s") {
        leases[i] = std::move(lease).value();
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), kThreads);
  auto stats = store->stats();
  EXPECT_EQ(stats.misses, 2u);
  EXPECT_EQ(stats.hits, 2u * (kThreads - 1));
  EXPECT_EQ(stats.layers, 2u);
  EXPECT_EQ(stats.pinned, 2u);
  leases.clear();
  EXPECT_EQ(store->stats().pinned, 0u);
}

// Threads of two store instances on one root (as two processes would) acquire, check and
// release chains under a budget that forces evictions all the time.
TEST_F(LayerStoreTest, ConcurrentAcquiresAndEvictionsStayConsistent) {
  constexpr int kLayers = 6;
  constexpr size_t kSize = 1000;
  std::vector<LayerRef> layers;
  for (int i = 0; i < kLayers; ++i) {
    layers.push_back(makeLayer({{"f", bytesOf(kSize, static_cast<char>('a' + i))}}));
  }
  auto one = openStore(2 * kSize);
  auto two = openStore(2 * kSize);
  ASSERT_TRUE(one && two);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    LayerStore* store = (t % 2 == 0 ? one : two).get();
    threads.emplace_back([&, store, t] {
      for (int i = 0; i < 40; ++i) {
        int x = (t + i) % kLayers, y = (t * 7 + i * 3 + 1) % kLayers;
        auto lease = store->acquire({layers[x], layers[y]});
        if (!lease.isOk()) {
          ADD_FAILURE() << lease.status().toString();
          ++failures;
        } else if (readFile(lease->dirs()[0] / "f") != bytesOf(kSize, 'a' + x) ||
                   readFile(lease->dirs()[1] / "f") != bytesOf(kSize, 'a' + y)) {
          ADD_FAILURE() << "wrong contents in " << lease->dirs()[0] << " or " << lease->dirs()[1];
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(one->evictToBudget().isOk());
  ASSERT_TRUE(two->evictToBudget().isOk());
  for (LayerStore* store : {one.get(), two.get()}) {
    auto stats = store->stats();
    EXPECT_EQ(stats.pinned, 0u);
    EXPECT_LE(stats.bytes, 2 * kSize);
    EXPECT_EQ(stats.hits + stats.misses, 2u * 40 * 2);
  }
  EXPECT_GT(one->stats().evictions + two->stats().evictions, 0u);
  EXPECT_LE(entries("l").size(), 2u);
  EXPECT_TRUE(entries("tmp").empty());
}

TEST_F(LayerStoreTest, EvictsLeastRecentlyUsedUnderBudget) {
  const size_t kSize = 1000;
  LayerRef a = makeLayer({{"f", bytesOf(kSize, 'a')}});
  LayerRef b = makeLayer({{"f", bytesOf(kSize, 'b')}});
  LayerRef c = makeLayer({{"f", bytesOf(kSize, 'c')}});
  LayerRef d = makeLayer({{"f", bytesOf(kSize, 'd')}});
  auto store = openStore(2 * kSize);
  ASSERT_TRUE(store);
  for (const LayerRef& ref : {a, b, c}) {
    ASSERT_TRUE(store->acquire({ref}).isOk());
  }
  // Three layers over a budget of two: the least recently used (a) went.
  EXPECT_FALSE(store->contains(a.diff_id));
  EXPECT_TRUE(store->contains(b.diff_id));
  EXPECT_TRUE(store->contains(c.diff_id));
  ASSERT_TRUE(store->acquire({b}).isOk());  // b is now more recent than c
  ASSERT_TRUE(store->acquire({d}).isOk());
  EXPECT_FALSE(store->contains(c.diff_id));
  EXPECT_TRUE(store->contains(b.diff_id));
  EXPECT_TRUE(store->contains(d.diff_id));
  auto stats = store->stats();
  EXPECT_EQ(stats.evictions, 2u);
  EXPECT_EQ(stats.bytes, 2 * kSize);
  EXPECT_EQ(entries("l").size(), 2u);
  EXPECT_TRUE(entries("tmp").empty());  // evicted dirs are deleted, not just moved
}

TEST_F(LayerStoreTest, TheBudgetCountsLayersOtherInstancesAdded) {
  const size_t kSize = 1000;
  LayerRef a = makeLayer({{"f", bytesOf(kSize, 'a')}});
  LayerRef b = makeLayer({{"f", bytesOf(kSize, 'b')}});
  LayerRef c = makeLayer({{"f", bytesOf(kSize, 'c')}});
  auto one = openStore(2 * kSize);
  auto two = openStore(2 * kSize);  // opened before `one` adds anything
  ASSERT_TRUE(one && two);
  ASSERT_TRUE(one->acquire({a}).isOk());
  ASSERT_TRUE(one->acquire({b}).isOk());
  ASSERT_TRUE(two->acquire({c}).isOk());  // its own view: one layer; the root: three
  EXPECT_FALSE(fs::exists(root() / "l" / LayerStore::layerName(a.diff_id)));
  EXPECT_EQ(entries("l").size(), 2u);
  EXPECT_EQ(two->stats().evictions, 1u);
  EXPECT_EQ(two->stats().bytes, 2 * kSize);
}

TEST_F(LayerStoreTest, NeverEvictsALeasedLayer) {
  LayerRef a = makeLayer({{"f", "aaaa"}});
  LayerRef b = makeLayer({{"f", "bbbb"}});
  auto store = openStore(0);
  ASSERT_TRUE(store);
  auto lease_a = store->acquire({a});
  ASSERT_TRUE(lease_a.isOk());
  {
    auto lease_b = store->acquire({b});
    ASSERT_TRUE(lease_b.isOk());
    EXPECT_EQ(store->stats().evictions, 0u);  // both pinned
  }
  ASSERT_TRUE(store->evictToBudget().isOk());
  EXPECT_FALSE(store->contains(b.diff_id));
  EXPECT_TRUE(store->contains(a.diff_id));
  EXPECT_EQ(readFile(lease_a->dirs()[0] / "f"), "aaaa");
  // A moved lease keeps the pin; the moved-from one releases nothing.
  LayerStore::Lease moved = std::move(lease_a).value();
  ASSERT_TRUE(store->evictToBudget().isOk());
  EXPECT_TRUE(store->contains(a.diff_id));
  moved.release();
  ASSERT_TRUE(store->evictToBudget().isOk());
  EXPECT_FALSE(store->contains(a.diff_id));
  EXPECT_EQ(store->stats().bytes, 0u);
  EXPECT_EQ(store->stats().evictions, 2u);
}

TEST_F(LayerStoreTest, AdoptMovesADirIntoTheStore) {
  fs::path upper = makeDir({{"new.txt", "made by a step"}, {"sub/y", "yy"}});
  LayerRef ref = layerOf(upper);
  auto store = openStore();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->adopt(ref, upper).isOk());
  EXPECT_FALSE(fs::exists(upper));
  EXPECT_TRUE(store->contains(ref.diff_id));
  EXPECT_EQ(store->stats().bytes, 14u + 2u);

  ASSERT_TRUE(blobs_->remove(ref.digest).isOk());  // the next step needs no download
  auto lease = store->acquire({ref});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[0] / "new.txt"), "made by a step");
  EXPECT_EQ(store->stats().misses, 0u);
  EXPECT_EQ(store->stats().hits, 1u);

  // The same layer again: refused, and the caller's dir stays where it was.
  fs::path again = makeDir({{"new.txt", "made by a step"}, {"sub/y", "yy"}});
  Status status = store->adopt(ref, again);
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.toString();
  EXPECT_EQ(readFile(again / "new.txt"), "made by a step");
  EXPECT_TRUE(entries("tmp").empty());
}

TEST_F(LayerStoreTest, AdoptOfALayerAnotherInstancePublishedFailsCleanly) {
  fs::path first = makeDir({{"f", "same"}});
  LayerRef ref = layerOf(first);
  auto store1 = openStore();
  auto store2 = openStore();
  ASSERT_TRUE(store1 && store2);
  ASSERT_TRUE(store1->adopt(ref, first).isOk());
  fs::path second = makeDir({{"f", "same"}});
  Status status = store2->adopt(ref, second);  // store2's index does not know the layer
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.toString();
  EXPECT_EQ(readFile(second / "f"), "same");
  EXPECT_TRUE(entries("tmp").empty());
  // Once another instance evicted it, store1's stale index entry does not block a new adoption.
  ASSERT_TRUE(openStore(0));
  EXPECT_TRUE(store1->contains(ref.diff_id));
  ASSERT_TRUE(store1->adopt(ref, second).isOk());
  EXPECT_FALSE(fs::exists(second));
  EXPECT_EQ(store1->stats().layers, 1u);
}

TEST_F(LayerStoreTest, RestartFindsLayersAndTheirLruOrder) {
  const size_t kSize = 500;
  LayerRef a = makeLayer({{"f", bytesOf(kSize, 'a')}});
  LayerRef b = makeLayer({{"f", bytesOf(kSize, 'b')}});
  LayerRef c = makeLayer({{"f", bytesOf(kSize, 'c')}});
  {
    auto store = openStore();
    ASSERT_TRUE(store);
    for (const LayerRef& ref : {a, b, c, a}) {
      ASSERT_TRUE(store->acquire({ref}).isOk());
    }
  }
  {
    auto store = openStore();
    ASSERT_TRUE(store);
    auto stats = store->stats();
    EXPECT_EQ(stats.layers, 3u);
    EXPECT_EQ(stats.bytes, 3 * kSize);
  }
  // Reopened with a smaller budget: b is the least recently used.
  auto store = openStore(2 * kSize);
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->contains(b.diff_id));
  EXPECT_TRUE(store->contains(a.diff_id));
  EXPECT_TRUE(store->contains(c.diff_id));
  EXPECT_EQ(store->stats().evictions, 1u);
  ASSERT_TRUE(blobs_->remove(a.digest).isOk());
  auto lease = store->acquire({a, c});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(store->stats().hits, 2u);
}

TEST_F(LayerStoreTest, OpenCleansLeftoversAndBrokenLayers) {
  LayerRef good = makeLayer({{"f", "good"}});
  LayerRef no_meta = makeLayer({{"f", "no meta"}});
  LayerRef bad_meta = makeLayer({{"f", "bad meta"}});
  LayerRef wrong_name = makeLayer({{"f", "wrong name"}});
  {
    auto store = openStore();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->acquire({good, no_meta, bad_meta, wrong_name}).isOk());
  }
  fs::path l = root() / "l";
  fs::remove(l / LayerStore::layerName(no_meta.diff_id) / "meta");
  ASSERT_TRUE(lf::testing::writeFile(l / LayerStore::layerName(bad_meta.diff_id) / "meta",
                                     "layerfarm-layer-meta 1\ndiff_id sha256:zz\n"));
  // Metadata that is well formed but names another diff ID than its directory.
  fs::copy_file(l / LayerStore::layerName(good.diff_id) / "meta",
                l / LayerStore::layerName(wrong_name.diff_id) / "meta",
                fs::copy_options::overwrite_existing);
  // A crashed unpack and a crashed eviction.
  ASSERT_TRUE(lf::testing::writeFile(root() / "tmp" / "unpack-abc123" / "fs" / "half", "x"));
  ASSERT_TRUE(lf::testing::writeFile(root() / "tmp" / "evicted-def456" / "fs" / "y", "y"));

  auto store = openStore();
  ASSERT_TRUE(store);
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_EQ(entries("l"), std::vector<std::string>{LayerStore::layerName(good.diff_id)});
  EXPECT_EQ(store->stats().layers, 1u);
  EXPECT_TRUE(store->contains(good.diff_id));
  // The broken layers come back from the blob store on demand.
  auto lease = store->acquire({no_meta, bad_meta});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[1] / "f"), "bad meta");
}

TEST_F(LayerStoreTest, InstancesSharingARootSeeEachOthersLayers) {
  LayerRef a = makeLayer({{"f", "a"}});
  auto one = openStore(1 << 20);
  auto two = openStore(1 << 20);
  ASSERT_TRUE(one && two);
  ASSERT_TRUE(one->acquire({a}).isOk());
  // Published by `one` after `two` loaded its index: found on disk, not fetched again.
  ASSERT_TRUE(blobs_->remove(a.digest).isOk());
  ASSERT_TRUE(two->acquire({a}).isOk());
  EXPECT_EQ(two->stats().hits, 1u);
  EXPECT_EQ(two->stats().misses, 0u);
  // Evicted by `two`: `one`'s index is stale; its next acquire notices and fetches again.
  auto zero = openStore(0);
  ASSERT_TRUE(zero);
  EXPECT_FALSE(fs::exists(root() / "l" / LayerStore::layerName(a.diff_id)));
  LayerRef a2 = makeLayer({{"f", "a"}});
  ASSERT_EQ(a2.digest, a.digest);
  auto lease = one->acquire({a});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[0] / "f"), "a");
  EXPECT_EQ(one->stats().misses, 2u);
}

TEST_F(LayerStoreTest, OpenKeepsStagingDirsThatALiveOwnerHolds) {
  auto first = openStore();  // another store open on the root does not stop the cleaning
  ASSERT_TRUE(first);
  fs::path held = root() / "tmp" / "unpack-held01";
  fs::path dead = root() / "tmp" / "unpack-dead01";
  ASSERT_TRUE(lf::testing::writeFile(held / "fs" / "f", "x"));
  ASSERT_TRUE(lf::testing::writeFile(dead / "fs" / "f", "x"));
  ASSERT_TRUE(lf::testing::writeFile(root() / "tmp" / "stray-file", "x"));
  int fd = ::open(held.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_SH), 0);  // as a live unpacker holds its staging dir
  auto second = openStore();
  ASSERT_TRUE(second);
  EXPECT_TRUE(fs::exists(held / "fs" / "f"));
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(root() / "tmp" / "stray-file"));
  close(fd);
  auto third = openStore();
  ASSERT_TRUE(third);
  EXPECT_TRUE(entries("tmp").empty());
}

// Reads through to a real reader and exits the process once `die_after` bytes were read: a
// worker killed in the middle of an unpack.
class DyingReader : public blob::BlobReader {
 public:
  DyingReader(std::unique_ptr<blob::BlobReader> inner, uint64_t die_after)
      : inner_(std::move(inner)), die_after_(die_after) {}
  Result<size_t> read(void* data, size_t size) override {
    if (read_ >= die_after_) {
      _exit(7);
    }
    auto n = inner_->read(data, size);
    if (n.isOk()) {
      read_ += *n;
    }
    return n;
  }
  uint64_t size() const override { return inner_->size(); }

 private:
  std::unique_ptr<blob::BlobReader> inner_;
  uint64_t die_after_;
  uint64_t read_ = 0;
};

// Forwards to a real blob store and runs a hook before opening a reader, to interleave another
// store's work with an unpack deterministically; or kills the process during a read.
class HookedBlobStore : public blob::BlobStore {
 public:
  explicit HookedBlobStore(blob::BlobStore& inner) : inner_(inner) {}
  std::function<void()> before_read;
  std::optional<uint64_t> die_after_bytes;

  Result<std::unique_ptr<blob::BlobWriter>> openWriter() override { return inner_.openWriter(); }
  Result<std::unique_ptr<blob::BlobReader>> openReader(const Digest& digest) override {
    if (before_read) {
      std::exchange(before_read, nullptr)();
    }
    auto reader = inner_.openReader(digest);
    if (reader.isOk() && die_after_bytes) {
      return std::unique_ptr<blob::BlobReader>(
          new DyingReader(std::move(reader).value(), *die_after_bytes));
    }
    return reader;
  }
  Result<std::optional<blob::BlobInfo>> stat(const Digest& digest) override {
    return inner_.stat(digest);
  }
  Status remove(const Digest& digest) override { return inner_.remove(digest); }
  Status list(const std::function<void(const blob::BlobInfo&)>& fn) override {
    return inner_.list(fn);
  }

 private:
  blob::BlobStore& inner_;
};

TEST_F(LayerStoreTest, UnpackRacingAnotherProcessUsesThePublishedCopy) {
  LayerRef a = makeLayer({{"f", "contended"}});
  HookedBlobStore hooked(*blobs_);
  LayerStoreOptions options;
  options.root = root();
  options.sync = false;
  auto slow = LayerStore::open(options, hooked);
  auto fast = openStore();
  ASSERT_TRUE(slow.isOk() && fast);
  // While `slow` is about to unpack, `fast` unpacks and publishes the same layer.
  hooked.before_read = [&] { ASSERT_TRUE(fast->acquire({a}).isOk()); };
  auto lease = (*slow)->acquire({a});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[0] / "f"), "contended");
  EXPECT_EQ((*slow)->stats().misses, 1u);
  EXPECT_EQ(fast->stats().misses, 1u);
  EXPECT_EQ(entries("l").size(), 1u);
  EXPECT_TRUE(entries("tmp").empty());  // the losing copy is deleted
}

// Bytes that do not compress, so a reader dies in the middle of a layer's files.
std::string noise(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  for (char& c : out) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return out;
}

TEST_F(LayerStoreTest, AProcessKilledMidUnpackLeavesOnlyWhatOpenCleans) {
  LayerRef a = makeLayer({{"1", noise(200000, 1)}, {"2", noise(200000, 2)}});
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    HookedBlobStore dying(*blobs_);
    dying.die_after_bytes = 250000;
    LayerStoreOptions options;
    options.root = root();
    options.sync = false;
    auto store = LayerStore::open(options, dying);
    if (!store.isOk()) {
      _exit(2);
    }
    auto lease = (*store)->acquire({a});
    _exit(3);  // not reached: the reader exits with 7
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 7) << wstatus;
  auto left = entries("tmp");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].rfind("unpack-", 0), 0u) << left[0];
  EXPECT_TRUE(fs::exists(root() / "tmp" / left[0] / "fs" / "1"));  // it died with files out
  EXPECT_TRUE(entries("l").empty());

  auto store = openStore();
  ASSERT_TRUE(store);
  EXPECT_TRUE(entries("tmp").empty());
  auto lease = store->acquire({a});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(readFile(lease->dirs()[0] / "2"), noise(200000, 2));
}

TEST_F(LayerStoreTest, AdoptFromAnotherFilesystemFailsAndKeepsTheDir) {
  struct stat a, b;
  if (::stat(tmp_.path().c_str(), &a) != 0 || ::stat("/dev/shm", &b) != 0 || a.st_dev == b.st_dev) {
    GTEST_SKIP() << "/dev/shm is on the test dir's filesystem";
  }
  lf::testing::TempDir dummy;  // for a unique name under /dev/shm
  fs::path other = fs::path("/dev/shm") / dummy.path().filename();
  ASSERT_TRUE(lf::testing::writeFile(other / "f", "x"));
  LayerRef ref = layerOf(other);
  auto store = openStore();
  ASSERT_TRUE(store);
  Status status = store->adopt(ref, other);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.toString();
  EXPECT_EQ(readFile(other / "f"), "x");
  EXPECT_TRUE(entries("tmp").empty());
  EXPECT_FALSE(store->contains(ref.diff_id));
  fs::remove_all(other);
}

TEST_F(LayerStoreTest, OverlayLowerDirsAreTopFirstWithEachLayerOnce) {
  LayerRef a = makeLayer({{"a", "a"}});
  LayerRef b = makeLayer({{"b", "b"}});
  LayerRef c = makeLayer({{"c", "c"}});
  auto store = openStore();
  ASSERT_TRUE(store);
  auto lease = store->acquire({a, b, a, c});
  ASSERT_TRUE(lease.isOk()) << lease.status().toString();
  EXPECT_EQ(lease->dirs().size(), 4u);
  auto name = [](const LayerRef& r) { return LayerStore::layerName(r.diff_id) + "/fs"; };
  EXPECT_EQ(lease->overlayLowerDirs(), (std::vector<std::string>{name(c), name(a), name(b)}));
  EXPECT_EQ(store->stats().misses, 3u);
  EXPECT_EQ(store->stats().hits, 1u);
  lease->release();
  EXPECT_EQ(store->stats().pinned, 0u);  // the repeated layer was pinned twice, unpinned twice
}

TEST_F(LayerStoreTest, ScratchDirHoldsAnUpperDirForAdoption) {
  auto store = openStore();
  ASSERT_TRUE(store);
  auto scratch = store->makeScratchDir();
  ASSERT_TRUE(scratch.isOk()) << scratch.status().toString();
  fs::path upper = scratch->path() / "upper";
  ASSERT_TRUE(lf::testing::writeFile(upper / "out", "step output"));
  fs::create_directories(scratch->path() / "work");
  EXPECT_EQ(scratch->path().parent_path(), root() / "tmp");

  auto other = openStore();  // a live scratch dir is not a leftover
  ASSERT_TRUE(other);
  EXPECT_TRUE(fs::exists(upper / "out"));

  LayerRef ref = layerOf(upper);
  ASSERT_TRUE(store->adopt(ref, upper).isOk());
  LayerStore::ScratchDir moved = std::move(scratch).value();
  ASSERT_TRUE(moved.remove().isOk());  // work/ and the scratch dir itself
  EXPECT_TRUE(entries("tmp").empty());
  auto lease = store->acquire({ref});
  ASSERT_TRUE(lease.isOk());
  EXPECT_EQ(readFile(lease->dirs()[0] / "out"), "step output");
  {
    auto dropped = store->makeScratchDir();
    ASSERT_TRUE(dropped.isOk());
    ASSERT_TRUE(lf::testing::writeFile(dropped->path() / "upper" / "x", "x"));
  }
  EXPECT_TRUE(entries("tmp").empty());  // the destructor deletes it
}

// Waits for one byte on `fd`; false on EOF or error.
bool readByte(int fd) {
  char c;
  return ::read(fd, &c, 1) == 1;
}

TEST_F(LayerStoreTest, AnotherProcessCannotEvictALeasedLayer) {
  LayerRef a = makeLayer({{"f", "held by the child"}});
  LayerRef b = makeLayer({{"f", "free"}});
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    LayerStoreOptions options;
    options.root = root();
    options.sync = false;
    auto store = LayerStore::open(options, *blobs_);
    if (!store.isOk()) {
      _exit(2);
    }
    auto lease = (*store)->acquire({a});
    if (!lease.isOk()) {
      _exit(3);
    }
    if (::write(to_parent[1], "h", 1) != 1 || !readByte(to_child[0])) {
      _exit(4);
    }
    lease->release();
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  ASSERT_TRUE(readByte(to_parent[0])) << "child failed before holding its lease";

  auto store = openStore(0);  // budget 0: evicts all it can, at open and below
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->acquire({b}).isOk());
  ASSERT_TRUE(store->evictToBudget().isOk());
  EXPECT_TRUE(store->contains(a.diff_id));
  EXPECT_FALSE(store->contains(b.diff_id));
  EXPECT_EQ(readFile(root() / "l" / LayerStore::layerName(a.diff_id) / "fs" / "f"),
            "held by the child");

  ASSERT_EQ(::write(to_child[1], "g", 1), 1);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
  close(to_child[1]);
  close(to_parent[0]);

  ASSERT_TRUE(store->evictToBudget().isOk());
  EXPECT_FALSE(store->contains(a.diff_id));
  EXPECT_TRUE(entries("l").empty());
}

TEST(LayerMetaTest, RoundTripsAndRejectsDamage) {
  LayerMeta meta{Digest::sha256Of("tar"), Digest::sha256Of("blob"),
                 "application/vnd.oci.image.layer.v1.tar+gzip", 1234, ""};
  std::string text = formatLayerMeta(meta);
  auto parsed = parseLayerMeta(text, "m");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().toString();
  EXPECT_EQ(parsed->diff_id, meta.diff_id);
  EXPECT_EQ(parsed->digest, meta.digest);
  EXPECT_EQ(parsed->media_type, meta.media_type);
  EXPECT_EQ(parsed->bytes, 1234u);
  for (std::string bad : {std::string(""), text.substr(0, text.size() - 1),
                          text.substr(0, text.size() - 6), text + "extra 1\n", "x" + text}) {
    auto r = parseLayerMeta(bad, "m");
    EXPECT_FALSE(r.isOk()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  }
  std::string bad_bytes = text;
  bad_bytes.replace(bad_bytes.find("1234"), 4, "12x4");
  EXPECT_FALSE(parseLayerMeta(bad_bytes, "m").isOk());
}

}  // namespace
}  // namespace lf::worker::testing
