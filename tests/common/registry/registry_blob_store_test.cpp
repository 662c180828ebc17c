// RegistryBlobStore against the real registry on loopback.

#include "common/registry/registry_blob_store.h"

#include <gtest/gtest.h>

#include "common/blob/directory_blob_store.h"
#include "common/registry/image_transfer.h"
#include "tests/common/registry/test_image.h"
#include "tests/support/registry_server.h"
#include "tests/support/temp_dir.h"

namespace lf::registry {
namespace {

using lf::testing::RegistryServer;

TEST(RegistryBlobStoreTest, StoresReadsListsRemovesAndFeedsMounts) {
  if (!RegistryServer::available()) GTEST_SKIP() << "docker-registry is not installed";
  lf::testing::TempDir dir;
  auto server = RegistryServer::start();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  RegistryConfig config;
  config.insecure_registries = {(*server)->host()};
  std::shared_ptr<RegistryClient> client = std::move(*RegistryClient::create(config));
  auto opened = RegistryBlobStore::open(client, {(*server)->host(), "farm/cache"}, dir / "spool");
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  RegistryBlobStore& store = **opened;

  std::string data = testing::randomBytes(300'000, 9);
  Digest digest = Digest::sha256Of(data);
  EXPECT_FALSE(*store.has(digest));
  auto put = store.putBytes(data, digest);
  ASSERT_TRUE(put.isOk()) << put.status().toString();
  EXPECT_EQ(put->size, data.size());
  auto info = store.stat(digest);
  ASSERT_TRUE(info.isOk());
  ASSERT_TRUE(info->has_value());
  EXPECT_EQ((*info)->size, data.size());
  auto back = store.getBytes(digest);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_TRUE(*back == data);
  // Committing the same blob again succeeds (HEAD finds it, nothing is uploaded).
  auto uploads = client->counters().blob_uploads;
  ASSERT_TRUE(store.putBytes(data).isOk());
  EXPECT_EQ(client->counters().blob_uploads, uploads);

  // A write that does not match the expected digest stores nothing.
  Digest other = Digest::sha256Of("other");
  auto bad = store.putBytes("not other", other);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(*store.has(Digest::sha256Of("not other")));
  EXPECT_EQ(store.openReader(other).status().code(), StatusCode::kNotFound);

  // An image pushed into the cache repository is listed, and a push elsewhere mounts from it.
  auto local = std::move(*blob::DirectoryBlobStore::open(dir / "local"));
  auto image = testing::makeTestImage(*local, {5000, 6000}, 10);
  auto cache_ref = *Reference::parse((*server)->host() + "/farm/cache:img");
  ASSERT_TRUE(pushImage(*client, cache_ref, image.manifest_digest, *local).isOk());
  std::set<Digest> listed;
  ASSERT_TRUE(store.list([&](const blob::BlobInfo& b) { listed.insert(b.digest); }).isOk());
  for (const auto& d : image.blobs) EXPECT_TRUE(listed.count(d)) << d.toString();
  EXPECT_TRUE(listed.count(image.manifest_digest));

  PushOptions options;
  options.mount_from = {"farm/cache"};
  auto pushed = pushImage(*client, *Reference::parse((*server)->host() + "/team/app:v1"),
                          image.manifest_digest, *local, options);
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  EXPECT_EQ(pushed->blobs_mounted, 3u);

  ASSERT_TRUE(store.remove(digest).isOk());
  EXPECT_FALSE(*store.has(digest));
  EXPECT_TRUE(store.remove(digest).isOk());  // absent: not an error
}

}  // namespace
}  // namespace lf::registry
