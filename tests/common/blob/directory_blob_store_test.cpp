#include "common/blob/directory_blob_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "common/blob/blob_util.h"
#include "tests/support/temp_dir.h"

namespace lf::blob {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;
using lf::testing::TempDir;

std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) {
    c = static_cast<char>(rng() & 0xff);
  }
  return out;
}

std::unique_ptr<DirectoryBlobStore> openStore(const fs::path& root,
                                              DirectoryBlobStoreOptions options = {}) {
  auto store = DirectoryBlobStore::open(root, options);
  EXPECT_TRUE(store.isOk()) << store.status().toString();
  return std::move(store).value();
}

size_t countFiles(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) {
    ++n;
  }
  return n;
}

// Writes `data` in small uneven chunks so the writer's buffering is exercised.
Result<BlobInfo> putChunked(BlobStore& store, std::string_view data,
                            std::optional<Digest> expected) {
  LF_ASSIGN_OR_RETURN(auto writer, store.openWriter());
  size_t chunk = 1;
  for (size_t off = 0; off < data.size(); off += chunk, chunk = chunk * 3 % 100003 + 1) {
    LF_RETURN_IF_ERROR(writer->write(data.substr(off, chunk)));
  }
  return writer->commit(std::move(expected));
}

TEST(DirectoryBlobStore, PutThenGetRoundTrips) {
  TempDir dir;
  auto store = openStore(dir.path());
  std::string data = randomBytes(3 * 1024 * 1024 + 17, 1);
  Digest digest = Digest::sha256Of(data);

  auto info = putChunked(*store, data, digest);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->digest, digest);
  EXPECT_EQ(info->size, data.size());

  EXPECT_EQ(readFile(dir.path() / "blobs" / "sha256" / digest.hex()), data);
  auto got = store->getBytes(digest);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, data);
  auto st = store->stat(digest);
  ASSERT_TRUE(st.isOk());
  ASSERT_TRUE(st->has_value());
  EXPECT_EQ((*st)->size, data.size());
  EXPECT_TRUE(*store->has(digest));
  EXPECT_EQ(countFiles(dir.path() / "tmp"), 0u);
}

// An OCI image layout has blobs/sha256 but no tmp/: opened without `create`, the first write
// makes tmp/ (the retry must not reuse a template the failed call filled in).
TEST(DirectoryBlobStore, WritesIntoALayoutWithoutTmpDir) {
  TempDir dir;
  fs::create_directories(dir.path() / "blobs" / "sha256");
  DirectoryBlobStoreOptions options;
  options.create = false;
  auto store = openStore(dir.path(), options);
  auto info = store->putBytes("layout blob");
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(readFile(dir.path() / "blobs" / "sha256" / info->digest.hex()), "layout blob");
}

TEST(DirectoryBlobStore, EmptyBlob) {
  TempDir dir;
  auto store = openStore(dir.path());
  auto info = store->putBytes("");
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(info->digest.toString(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto got = store->getBytes(info->digest);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, "");
}

TEST(DirectoryBlobStore, WrongExpectedDigestStoresNothing) {
  TempDir dir;
  auto store = openStore(dir.path());
  Digest other = Digest::sha256Of("something else");
  auto info = store->putBytes("hello", other);
  ASSERT_FALSE(info.isOk());
  EXPECT_EQ(info.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(info.status().message().find(other.toString()), std::string::npos);
  EXPECT_FALSE(*store->has(other));
  EXPECT_FALSE(*store->has(Digest::sha256Of("hello")));
  EXPECT_EQ(countFiles(dir.path() / "blobs" / "sha256"), 0u);
  EXPECT_EQ(countFiles(dir.path() / "tmp"), 0u);
}

TEST(DirectoryBlobStore, UncommittedWriterIsInvisibleAndLeavesNothing) {
  TempDir dir;
  auto store = openStore(dir.path());
  std::string data = randomBytes(1 << 20, 2);
  Digest digest = Digest::sha256Of(data);
  {
    auto writer = store->openWriter();
    ASSERT_TRUE(writer.isOk());
    ASSERT_TRUE((*writer)->write(data.substr(0, data.size() / 2)).isOk());
    EXPECT_EQ((*writer)->written(), data.size() / 2);
    // Half written: readers must not see anything under the final name.
    EXPECT_FALSE(*store->has(digest));
    EXPECT_EQ(store->openReader(digest).status().code(), StatusCode::kNotFound);
    ASSERT_TRUE((*writer)->write(data.substr(data.size() / 2)).isOk());
    EXPECT_FALSE(*store->has(digest));
  }
  EXPECT_FALSE(*store->has(digest));
  EXPECT_EQ(countFiles(dir.path() / "tmp"), 0u);
}

TEST(DirectoryBlobStore, CommitTwiceFails) {
  TempDir dir;
  auto store = openStore(dir.path());
  auto writer = store->openWriter();
  ASSERT_TRUE(writer.isOk());
  ASSERT_TRUE((*writer)->write("abc").isOk());
  ASSERT_TRUE((*writer)->commit().isOk());
  EXPECT_EQ((*writer)->commit().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*writer)->write("x").isOk());
}

TEST(DirectoryBlobStore, DamagedBlobIsDetectedAndQuarantined) {
  TempDir dir;
  auto store = openStore(dir.path());
  std::string data = randomBytes(200000, 3);
  auto info = store->putBytes(data);
  ASSERT_TRUE(info.isOk());
  fs::path path = store->blobPath(info->digest);
  // Flip one byte in the middle, same size.
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  std::string damaged = data;
  damaged[100000] ^= 0x01;
  ASSERT_TRUE(lf::testing::writeFile(path, damaged));

  auto reader = store->openReader(info->digest);
  ASSERT_TRUE(reader.isOk());
  std::string got;
  char buf[4096];
  Status final_status;
  while (true) {
    auto n = (*reader)->read(buf, sizeof(buf));
    if (!n.isOk()) {
      final_status = n.status();
      break;
    }
    if (*n == 0) {
      break;
    }
    got.append(buf, *n);
  }
  EXPECT_EQ(final_status.code(), StatusCode::kDataLoss) << "damaged blob was served silently";
  EXPECT_EQ(got.size(), data.size());
  EXPECT_NE(final_status.message().find("quarantine"), std::string::npos) << final_status.message();
  // Quarantined: the damaged copy is no longer served, and a good copy can land again.
  EXPECT_FALSE(*store->has(info->digest));
  EXPECT_EQ(countFiles(dir.path() / "quarantine"), 1u);
  ASSERT_TRUE(store->putBytes(data, info->digest).isOk());
  auto again = store->getBytes(info->digest);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(*again, data);
}

TEST(DirectoryBlobStore, TruncatedBlobIsDetected) {
  TempDir dir;
  auto store = openStore(dir.path());
  std::string data = randomBytes(5000, 4);
  auto info = store->putBytes(data);
  ASSERT_TRUE(info.isOk());
  fs::resize_file(store->blobPath(info->digest), 4000);
  auto got = store->getBytes(info->digest);
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
}

TEST(DirectoryBlobStore, ReadOnlyStoreRefusesWritesAndKeepsDamagedBlobInPlace) {
  TempDir dir;
  Digest digest;
  {
    auto store = openStore(dir.path());
    auto info = store->putBytes("payload");
    ASSERT_TRUE(info.isOk());
    digest = info->digest;
  }
  fs::path path = dir.path() / "blobs" / "sha256" / digest.hex();
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(lf::testing::writeFile(path, "paylaod"));

  auto store = openStore(dir.path(), {.create = false, .read_only = true});
  EXPECT_EQ(store->openWriter().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->remove(digest).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->getBytes(digest).status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(fs::exists(path));
}

TEST(DirectoryBlobStore, OpenWithoutCreateNeedsExistingStore) {
  TempDir dir;
  auto store = DirectoryBlobStore::open(dir.path() / "missing", {.create = false});
  EXPECT_EQ(store.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir.path() / "missing"));
}

TEST(DirectoryBlobStore, ListStatRemove) {
  TempDir dir;
  auto store = openStore(dir.path());
  std::map<Digest, uint64_t> expected;
  for (int i = 0; i < 5; ++i) {
    std::string data = randomBytes(100 * i + 1, 10 + i);
    auto info = store->putBytes(data);
    ASSERT_TRUE(info.isOk());
    expected[info->digest] = data.size();
  }
  // Stray files in the blob directory are not blobs.
  dir.write("blobs/sha256/README", "not a blob");
  dir.write("blobs/sha256/" + std::string(64, 'A'), "upper-case hex is not a digest");

  std::map<Digest, uint64_t> listed;
  ASSERT_TRUE(store->list([&](const BlobInfo& info) { listed[info.digest] = info.size; }).isOk());
  EXPECT_EQ(listed, expected);

  Digest victim = expected.begin()->first;
  ASSERT_TRUE(store->remove(victim).isOk());
  EXPECT_FALSE(*store->has(victim));
  auto st = store->stat(victim);
  ASSERT_TRUE(st.isOk());
  EXPECT_FALSE(st->has_value());
  EXPECT_EQ(store->openReader(victim).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store->remove(victim).isOk()) << "removing an absent blob is not an error";

  size_t count = 0;
  ASSERT_TRUE(store->list([&](const BlobInfo&) { ++count; }).isOk());
  EXPECT_EQ(count, expected.size() - 1);
}

TEST(DirectoryBlobStore, GetBytesHonoursLimit) {
  TempDir dir;
  auto store = openStore(dir.path());
  auto info = store->putBytes(std::string(1000, 'x'));
  ASSERT_TRUE(info.isOk());
  EXPECT_EQ(store->getBytes(info->digest, 999).status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(store->getBytes(info->digest, 1000).isOk());
}

TEST(DirectoryBlobStore, ConcurrentWritersOfTheSameBlobInThreads) {
  TempDir dir;
  auto store = openStore(dir.path());
  std::string data = randomBytes(2 * 1024 * 1024, 5);
  Digest digest = Digest::sha256Of(data);
  constexpr int kThreads = 8;
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto info = putChunked(*store, data, digest);
      results[t] = info.status();
      // Readers racing with the other writers see the whole blob or nothing.
      if (info.isOk()) {
        auto got = store->getBytes(digest);
        if (!got.isOk() || *got != data) {
          results[t] = internalError("read back differs");
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(results[t].isOk()) << "writer " << t << ": " << results[t].toString();
  }
  EXPECT_EQ(countFiles(dir.path() / "blobs" / "sha256"), 1u);
  EXPECT_EQ(countFiles(dir.path() / "tmp"), 0u);
  EXPECT_EQ(readFile(store->blobPath(digest)), data);
}

TEST(DirectoryBlobStore, ConcurrentWritersOfTheSameBlobInProcesses) {
  TempDir dir;
  std::string data = randomBytes(2 * 1024 * 1024, 6);
  Digest digest = Digest::sha256Of(data);
  constexpr int kProcs = 6;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: its own store object over the shared directory; report through the exit code.
      auto store = DirectoryBlobStore::open(dir.path());
      if (!store.isOk()) {
        ::_exit(10);
      }
      for (int round = 0; round < 3; ++round) {
        if (!putChunked(**store, data, digest).isOk()) {
          ::_exit(11);
        }
        auto got = (*store)->getBytes(digest);
        if (!got.isOk() || *got != data) {
          ::_exit(12);
        }
      }
      // Plus one blob only this process writes.
      if (!(*store)->putBytes("process " + std::to_string(p)).isOk()) {
        ::_exit(13);
      }
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto store = openStore(dir.path());
  EXPECT_EQ(countFiles(dir.path() / "blobs" / "sha256"), 1u + kProcs);
  EXPECT_EQ(countFiles(dir.path() / "tmp"), 0u);
  auto got = store->getBytes(digest);
  ASSERT_TRUE(got.isOk()) << got.status().toString();
  EXPECT_EQ(*got, data);
}

TEST(BlobUtil, CopyBlobVerifiesAndSkipsExisting) {
  TempDir a;
  TempDir b;
  auto from = openStore(a.path());
  auto to = openStore(b.path());
  std::string data = randomBytes(700000, 7);
  auto info = from->putBytes(data);
  ASSERT_TRUE(info.isOk());
  auto copied = copyBlob(*from, *to, info->digest);
  ASSERT_TRUE(copied.isOk()) << copied.status().toString();
  EXPECT_EQ(copied->size, data.size());
  EXPECT_EQ(*to->getBytes(info->digest), data);
  EXPECT_TRUE(copyBlob(*from, *to, info->digest).isOk());

  // A damaged source is not copied.
  auto other = from->putBytes("other blob");
  ASSERT_TRUE(other.isOk());
  fs::path p = from->blobPath(other->digest);
  fs::permissions(p, fs::perms::owner_write, fs::perm_options::add);
  ASSERT_TRUE(lf::testing::writeFile(p, "other blub"));
  EXPECT_EQ(copyBlob(*from, *to, other->digest).status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(*to->has(other->digest));
}

}  // namespace
}  // namespace lf::blob
