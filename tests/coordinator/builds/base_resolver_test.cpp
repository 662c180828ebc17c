// BaseResolver against the real CNCF distribution registry (docker-registry) on loopback: images
// pushed with the project's own client, pulled through into a DirectoryBlobStore. Request counts
// come from RegistryClient::counters(), so "no registry request" is measured, not assumed.

#include "coordinator/builds/base_resolver.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/blob/directory_blob_store.h"
#include "common/oci/media_types.h"
#include "common/registry/image_transfer.h"
#include "tests/common/registry/test_image.h"
#include "tests/support/registry_server.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using lf::testing::RegistryServer;
using lf::testing::TempDir;
using namespace std::chrono_literals;

std::unique_ptr<blob::DirectoryBlobStore> openStore(const std::filesystem::path& dir) {
  blob::DirectoryBlobStoreOptions options;
  options.fsync = false;
  auto store = blob::DirectoryBlobStore::open(dir, options);
  EXPECT_TRUE(store.isOk()) << store.status().toString();
  return std::move(*store);
}

plan::Platform platform(std::string arch = "amd64") {
  plan::Platform p;
  p.architecture = std::move(arch);
  return p;
}

// An image like makeTestImage's, for another architecture, kept in `store`.
registry::testing::TestImage imageFor(blob::BlobStore& store, const std::string& arch,
                                      uint64_t seed) {
  registry::testing::TestImage image;
  std::string layer = registry::testing::randomBytes(20'000, seed);
  auto linfo = store.putBytes(layer);
  EXPECT_TRUE(linfo.isOk());
  nlohmann::json config = {
      {"architecture", arch},
      {"os", "linux"},
      {"config", {{"Env", {"ARCH=" + arch}}, {"WorkingDir", "/w"}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {linfo->digest.toString()}}}}};
  auto cinfo = store.putBytes(config.dump());
  EXPECT_TRUE(cinfo.isOk());
  image.manifest.media_type = std::string(oci::kOciManifest);
  image.manifest.config = {std::string(oci::kOciConfig), cinfo->digest, cinfo->size};
  image.manifest.layers = {{std::string(oci::kOciLayerTar), linfo->digest, linfo->size}};
  image.manifest_bytes = image.manifest.toJson();
  auto minfo = store.putBytes(image.manifest_bytes);
  EXPECT_TRUE(minfo.isOk());
  image.manifest_digest = minfo->digest;
  image.blobs = {cinfo->digest, linfo->digest};
  return image;
}

class BaseResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryServer::available()) GTEST_SKIP() << "docker-registry is not installed";
    auto server = RegistryServer::start();
    ASSERT_TRUE(server.isOk()) << server.status().toString();
    server_ = std::move(*server);
    src_ = openStore(dir_ / "src");
    image_ = registry::testing::makeTestImage(*src_, {30'000, 5'000}, 1);
    push(ref("busybox:1.36"), image_.manifest_digest);
  }

  std::string ref(const std::string& rest) const { return server_->host() + "/library/" + rest; }

  std::unique_ptr<registry::RegistryClient> makeClient() const {
    registry::RegistryConfig config;
    config.insecure_registries = {server_->host()};
    config.initial_backoff_ms = 10;
    config.http.io_timeout_ms = 20'000;
    auto client = registry::RegistryClient::create(std::move(config));
    EXPECT_TRUE(client.isOk()) << client.status().toString();
    return std::move(*client);
  }

  void push(const std::string& target, const Digest& manifest) {
    auto client = makeClient();
    auto parsed = registry::Reference::parse(target);
    ASSERT_TRUE(parsed.isOk());
    auto pushed = registry::pushImage(*client, *parsed, manifest, *src_);
    ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  }

  TempDir dir_;
  std::unique_ptr<RegistryServer> server_;
  std::unique_ptr<blob::DirectoryBlobStore> src_;
  registry::testing::TestImage image_;
};

TEST_F(BaseResolverTest, ResolvePullsConfigAndLayersIntoTheStore) {
  auto client = makeClient();
  auto store = openStore(dir_ / "coordinator");
  BaseResolver resolver(*client, *store);
  auto r = resolver.resolve(ref("busybox:1.36"), platform());
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->reference, ref("busybox:1.36"));
  EXPECT_EQ(r->repository, ref("busybox"));
  EXPECT_EQ(r->plan_base.manifest_digest, image_.manifest_digest);
  EXPECT_EQ(r->plan_base.layer_count, 2);
  ASSERT_TRUE(r->plan_base.config.has_value());
  EXPECT_EQ(r->plan_base.config->env, std::vector<std::string>{"SEED=1"});
  EXPECT_EQ(r->image.layers, image_.manifest.layers);
  EXPECT_EQ(r->image.config.rootfs.diff_ids.size(), 2u);
  EXPECT_EQ(r->image.config.architecture, "amd64");
  for (const auto& blob : image_.blobs) {
    auto has = store->has(blob);
    ASSERT_TRUE(has.isOk());
    EXPECT_TRUE(*has) << blob.toString() << " was not pulled into the store";
  }
  auto manifest = store->has(image_.manifest_digest);
  EXPECT_TRUE(manifest.isOk() && *manifest);

  // Within the TTL: answered from memory, not a single request.
  uint64_t before = client->counters().requests;
  auto again = resolver.resolve(ref("busybox:1.36"), platform());
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->plan_base.manifest_digest, image_.manifest_digest);
  EXPECT_EQ(client->counters().requests, before);
  // Docker Hub-style short forms normalise to the same key.
  auto spelled = resolver.resolve(server_->host() + "/library/busybox:1.36", platform());
  ASSERT_TRUE(spelled.isOk());
  EXPECT_EQ(client->counters().requests, before);
}

TEST_F(BaseResolverTest, AfterTheTtlOneHeadFollowsTheTag) {
  auto client = makeClient();
  auto store = openStore(dir_ / "coordinator");
  BaseResolver resolver(*client, *store, BaseResolverOptions{.resolution_ttl = 0ms});
  ASSERT_TRUE(resolver.resolve(ref("busybox:1.36"), platform()).isOk());

  // Expired, tag unmoved: one HEAD, nothing pulled again.
  uint64_t before = client->counters().requests;
  auto same = resolver.resolve(ref("busybox:1.36"), platform());
  ASSERT_TRUE(same.isOk()) << same.status().toString();
  EXPECT_EQ(same->plan_base.manifest_digest, image_.manifest_digest);
  EXPECT_EQ(client->counters().requests, before + 1);

  // The tag moves: the next resolution sees the new image.
  auto next = registry::testing::makeTestImage(*src_, {7'000}, 2);
  push(ref("busybox:1.36"), next.manifest_digest);
  auto moved = resolver.resolve(ref("busybox:1.36"), platform());
  ASSERT_TRUE(moved.isOk()) << moved.status().toString();
  EXPECT_EQ(moved->plan_base.manifest_digest, next.manifest_digest);
  EXPECT_EQ(moved->plan_base.layer_count, 1);
  EXPECT_EQ(moved->plan_base.config->env, std::vector<std::string>{"SEED=2"});
}

TEST_F(BaseResolverTest, RegistryDownServesTheLastKnownDigest) {
  auto client = makeClient();
  auto store = openStore(dir_ / "coordinator");
  BaseResolver resolver(*client, *store, BaseResolverOptions{.resolution_ttl = 0ms});
  const std::string busybox = ref("busybox:1.36");
  const std::string never_seen = ref("other:1");
  ASSERT_TRUE(resolver.resolve(busybox, platform()).isOk());
  server_.reset();  // the registry goes away

  auto stale = resolver.resolve(busybox, platform());
  ASSERT_TRUE(stale.isOk()) << stale.status().toString();
  EXPECT_EQ(stale->plan_base.manifest_digest, image_.manifest_digest);
  // Nothing to fall back on: the registry's error, named by the FROM.
  auto fresh = resolver.resolve(never_seen, platform());
  ASSERT_FALSE(fresh.isOk());
  EXPECT_EQ(fresh.status().code(), StatusCode::kUnavailable) << fresh.status().toString();
  EXPECT_EQ(fresh.status().message().rfind("FROM " + never_seen + ": ", 0), 0u);
}

TEST_F(BaseResolverTest, PinnedDigestIsNeverResolvedAgain) {
  auto client = makeClient();
  auto store = openStore(dir_ / "coordinator");
  const std::string pinned = ref("busybox@" + image_.manifest_digest.toString());
  {
    BaseResolver resolver(*client, *store, BaseResolverOptions{.resolution_ttl = 0ms});
    auto r = resolver.resolve(pinned, platform());
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->plan_base.manifest_digest, image_.manifest_digest);
    EXPECT_EQ(r->image.layers.size(), 2u);
    uint64_t before = client->counters().requests;
    ASSERT_TRUE(resolver.resolve(pinned, platform()).isOk());
    EXPECT_EQ(client->counters().requests, before) << "a pinned reference was resolved again";
  }
  // A restarted coordinator (new resolver, same store) finds everything locally.
  BaseResolver restarted(*client, *store);
  uint64_t before = client->counters().requests;
  auto r = restarted.resolve(pinned, platform());
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->plan_base.manifest_digest, image_.manifest_digest);
  EXPECT_EQ(r->plan_base.config->env, std::vector<std::string>{"SEED=1"});
  EXPECT_EQ(client->counters().requests, before);
}

TEST_F(BaseResolverTest, LayersAlreadyInTheStoreAreNotDownloaded) {
  auto measure = [&](bool prefill) {
    auto client = makeClient();
    auto store = openStore(dir_ / (prefill ? "prefilled" : "empty"));
    if (prefill) {
      for (const auto& layer : image_.manifest.layers) {
        auto bytes = src_->getBytes(layer.digest);
        EXPECT_TRUE(bytes.isOk());
        EXPECT_TRUE(store->putBytes(*bytes).isOk());
      }
    }
    BaseResolver resolver(*client, *store);
    auto r = resolver.resolve(ref("busybox:1.36"), platform());
    EXPECT_TRUE(r.isOk()) << r.status().toString();
    return client->counters().requests;
  };
  uint64_t cold = measure(false);
  uint64_t warm = measure(true);
  EXPECT_EQ(cold - warm, image_.manifest.layers.size()) << "cold " << cold << ", warm " << warm;
}

TEST_F(BaseResolverTest, MissingImageNamesTheFrom) {
  auto client = makeClient();
  auto store = openStore(dir_ / "coordinator");
  BaseResolver resolver(*client, *store);
  const std::string missing = ref("nope:1");
  auto r = resolver.resolve(missing, platform());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().toString();
  EXPECT_EQ(r.status().message().rfind("FROM " + missing + ": ", 0), 0u) << r.status().message();

  auto bad = resolver.resolve("Not A Reference!", platform());
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().message().rfind("FROM Not A Reference!: ", 0), 0u)
      << bad.status().message();
  // Failures are not cached: the image appears, the next resolve finds it.
  push(missing, image_.manifest_digest);
  EXPECT_TRUE(resolver.resolve(missing, platform()).isOk());
}

TEST_F(BaseResolverTest, ConcurrentResolvesShareOnePull) {
  uint64_t single = 0;
  {
    auto client = makeClient();
    auto store = openStore(dir_ / "single");
    BaseResolver resolver(*client, *store);
    ASSERT_TRUE(resolver.resolve(ref("busybox:1.36"), platform()).isOk());
    single = client->counters().requests;
  }
  auto client = makeClient();
  auto store = openStore(dir_ / "concurrent");
  BaseResolver resolver(*client, *store);
  constexpr int kThreads = 8;
  std::vector<std::optional<Result<ResolvedBase>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = resolver.resolve(ref("busybox:1.36"), platform()); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r->isOk()) << r->status().toString();
    EXPECT_EQ((*r)->plan_base.manifest_digest, image_.manifest_digest);
  }
  EXPECT_EQ(client->counters().requests, single);
}

TEST_F(BaseResolverTest, IndexSelectsThePlatformsManifest) {
  auto amd = imageFor(*src_, "amd64", 10);
  auto arm = imageFor(*src_, "arm64", 11);
  push(ref("multi@" + amd.manifest_digest.toString()), amd.manifest_digest);
  push(ref("multi@" + arm.manifest_digest.toString()), arm.manifest_digest);
  auto platformed = [](const registry::testing::TestImage& image, const std::string& arch) {
    return nlohmann::json{{"mediaType", oci::kOciManifest},
                          {"digest", image.manifest_digest.toString()},
                          {"size", image.manifest_bytes.size()},
                          {"platform", {{"architecture", arch}, {"os", "linux"}}}};
  };
  std::string index =
      nlohmann::json{{"schemaVersion", 2},
                     {"mediaType", oci::kOciIndex},
                     {"manifests", {platformed(amd, "amd64"), platformed(arm, "arm64")}}}
          .dump();
  auto client = makeClient();
  auto put = client->putManifest({server_->host(), "library/multi"}, "1", oci::kOciIndex, index);
  ASSERT_TRUE(put.isOk()) << put.status().toString();

  auto store = openStore(dir_ / "coordinator");
  BaseResolver resolver(*client, *store);
  auto r = resolver.resolve(ref("multi:1"), platform("arm64"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->plan_base.manifest_digest, arm.manifest_digest);
  EXPECT_EQ(r->plan_base.config->env, std::vector<std::string>{"ARCH=arm64"});
  EXPECT_EQ(r->plan_base.config->workdir, "/w");
  auto a = resolver.resolve(ref("multi:1"), platform("amd64"));
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_EQ(a->plan_base.manifest_digest, amd.manifest_digest);

  auto none = resolver.resolve(ref("multi:1"), platform("s390x"));
  ASSERT_FALSE(none.isOk());
  EXPECT_EQ(none.status().message().rfind("FROM " + ref("multi:1") + ": ", 0), 0u);
  EXPECT_NE(none.status().message().find("linux/arm64"), std::string::npos)
      << none.status().message();

  // Pinned to the index digest, after a restart: selected from the store, no registry request.
  BaseResolver restarted(*client, *store);
  uint64_t before = client->counters().requests;
  auto pinned = restarted.resolve(ref("multi@" + put->toString()), platform("arm64"));
  ASSERT_TRUE(pinned.isOk()) << pinned.status().toString();
  EXPECT_EQ(pinned->plan_base.manifest_digest, arm.manifest_digest);
  EXPECT_EQ(client->counters().requests, before);
}

}  // namespace
}  // namespace lf::coordinator
