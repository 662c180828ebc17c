// BuildManager with the real BaseResolver and RegistryClient against the real registry
// (docker-registry) on loopback: FROM an image in the registry, jobs in the fake broker, the
// result pushed to another repository of the same registry. Skips without docker-registry.

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/blob/directory_blob_store.h"
#include "common/context/context_scanner.h"
#include "common/context/context_tar.h"
#include "common/oci/manifest.h"
#include "common/registry/image_transfer.h"
#include "coordinator/builds/build_manager.h"
#include "tests/common/registry/test_image.h"
#include "tests/coordinator/builds/fake_job_broker.h"
#include "tests/support/registry_server.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using lf::testing::RegistryServer;
using lf::testing::TempDir;
using testing::FakeJobBroker;
using namespace std::chrono_literals;

class BuildManagerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryServer::available()) GTEST_SKIP() << "docker-registry is not installed";
    auto server = RegistryServer::start();
    ASSERT_TRUE(server.isOk()) << server.status().toString();
    server_ = std::move(*server);
    registry::RegistryConfig config;
    config.insecure_registries = {server_->host()};
    config.initial_backoff_ms = 10;
    auto client = registry::RegistryClient::create(std::move(config));
    ASSERT_TRUE(client.isOk()) << client.status().toString();
    client_ = std::move(*client);

    auto src = blob::DirectoryBlobStore::open(dir_ / "src");
    ASSERT_TRUE(src.isOk());
    base_ = registry::testing::makeTestImage(**src, {30'000, 5'000}, 1);
    auto base_ref = registry::Reference::parse(server_->host() + "/library/base:1");
    ASSERT_TRUE(base_ref.isOk());
    auto pushed = registry::pushImage(*client_, *base_ref, base_.manifest_digest, **src);
    ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();

    auto blobs = blob::DirectoryBlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(blobs.isOk());
    blobs_ = std::move(*blobs);
    auto state = StateStore::open({.dir = dir_ / "state", .sync_writes = false});
    ASSERT_TRUE(state.isOk());
    state_ = std::move(*state);
    resolver_ = std::make_unique<BaseResolver>(*client_, *blobs_);
    broker_ = std::make_unique<FakeJobBroker>(*blobs_, /*auto_run=*/true);
    BuildManagerOptions options;
    options.data_dir = dir_.path();
    manager_ = std::make_unique<BuildManager>(
        BuildManagerDeps{*state_, *blobs_, resolver_.get(), *broker_, client_.get(), nullptr},
        options);
  }

  void TearDown() override {
    // The coordinator's order: manager stopped, broker stopped, then the manager goes.
    if (manager_) manager_->stop();
    broker_.reset();
    manager_.reset();
  }

  Digest context(const std::string& dockerfile) {
    TempDir ctx;
    ctx.write("Dockerfile", dockerfile);
    auto snapshot = context::scanContext(ctx.path(), context::ScanOptions{});
    EXPECT_TRUE(snapshot.isOk());
    auto info = context::writeContextTarToStore(ctx.path(), *snapshot, *blobs_);
    EXPECT_TRUE(info.isOk());
    EXPECT_TRUE(manager_->addContext(info->digest, info->size).isOk());
    return info->digest;
  }

  TempDir dir_;
  std::unique_ptr<RegistryServer> server_;
  std::unique_ptr<registry::RegistryClient> client_;
  registry::testing::TestImage base_;
  std::unique_ptr<blob::DirectoryBlobStore> blobs_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<BaseResolver> resolver_;
  std::unique_ptr<FakeJobBroker> broker_;
  std::unique_ptr<BuildManager> manager_;
};

TEST_F(BuildManagerRegistryTest, BuildsFromARegistryImageAndPushes) {
  const std::string from = server_->host() + "/library/base:1";
  BuildRequest request;
  request.context_digest = context("FROM " + from + "\nRUN make\n");
  const std::string tag = server_->host() + "/team/app:1";
  request.tags = {tag};
  request.push = true;
  Caller team{.tenant = "team", .namespaces = {"team"}, .any_namespace = false};
  auto submitted = manager_->submit(team, request);
  ASSERT_TRUE(submitted.isOk()) << submitted.status().toString();

  auto log = manager_->events(submitted->id);
  ASSERT_TRUE(log.isOk());
  std::vector<nlohmann::json> events;
  size_t next = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto slice = (*log)->read(next, deadline);
    for (const auto& e : slice.events) events.push_back(nlohmann::json::parse(e));
    next = slice.next;
    if (slice.closed) break;
  }
  auto record = manager_->getBuild(submitted->id);
  ASSERT_TRUE(record.isOk() && record->has_value());
  const BuildRecord& build = **record;
  ASSERT_EQ(build.state, BuildState::kSucceeded) << build.failure_reason;
  EXPECT_EQ(build.steps[0].instruction, "FROM " + from + "@" + base_.manifest_digest.toString());

  // The job started from the base's two layers.
  auto jobs = broker_->submitted();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].parent_diff_ids.size(), 2u);
  EXPECT_EQ(jobs[0].spec.parent().layers_size(), 2);

  // The pushed manifest is the build's.
  auto pushed = client_->headManifest({server_->host(), "team/app"}, "1");
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  EXPECT_EQ(pushed->digest, build.manifest_digest);
  nlohmann::json result;
  for (const auto& e : events) {
    if (e["type"] == "result") result = e;
  }
  ASSERT_FALSE(result.is_null());
  EXPECT_EQ(result["pushed"], nlohmann::json::array({tag}));
  auto image = manager_->image(tag);
  ASSERT_TRUE(image.isOk() && image->has_value());
  EXPECT_EQ((*image)->history.size(), 3u);  // two base entries and the RUN
  // What the farm reports and records is what the registry holds.
  EXPECT_EQ(result["manifest_digest"], pushed->digest.toString());
  EXPECT_EQ((*image)->manifest_digest, pushed->digest);
}

// Build layers are stored uncompressed; the pushed image has gzip layers whose manifest digest is
// the one the build reports; a second push of the same layers compresses nothing.
TEST_F(BuildManagerRegistryTest, PushedLayersAreGzipAndCompressedOnce) {
  const std::string from = server_->host() + "/library/base:1";
  Caller team{.tenant = "team", .namespaces = {"team"}, .any_namespace = false};
  auto build = [&](const std::string& tag) {
    BuildRequest request;
    request.context_digest = context("FROM " + from + "\nRUN make\n");
    request.tags = {tag};
    request.push = true;
    auto submitted = manager_->submit(team, request);
    EXPECT_TRUE(submitted.isOk()) << submitted.status().toString();
    std::vector<std::string> messages;
    if (!submitted.isOk()) return std::make_pair(BuildRecord{}, messages);
    auto log = manager_->events(submitted->id);
    EXPECT_TRUE(log.isOk());
    size_t next = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (log.isOk() && std::chrono::steady_clock::now() < deadline) {
      auto slice = (*log)->read(next, deadline);
      for (const auto& e : slice.events) {
        auto json = nlohmann::json::parse(e);
        if (json["type"] == "message") messages.push_back(json["text"]);
      }
      next = slice.next;
      if (slice.closed) break;
    }
    auto record = manager_->getBuild(submitted->id);
    EXPECT_TRUE(record.isOk() && record->has_value());
    return std::make_pair(record.isOk() && record->has_value() ? **record : BuildRecord{},
                          messages);
  };
  auto compressing = [](const std::vector<std::string>& messages) {
    return std::count_if(messages.begin(), messages.end(), [](const std::string& m) {
      return m.rfind("compressing layer sha256:", 0) == 0;
    });
  };

  auto [first, first_messages] = build(server_->host() + "/team/app:1");
  ASSERT_EQ(first.state, BuildState::kSucceeded) << first.failure_reason;
  ASSERT_EQ(first.steps.size(), 2u);
  ASSERT_TRUE(first.steps[1].layer.has_value());
  EXPECT_EQ(first.steps[1].layer->media_type, "application/vnd.oci.image.layer.v1.tar");
  EXPECT_EQ(first.steps[1].layer->digest, first.steps[1].diff_id);
  // The base's two layers (uncompressed in this registry) and the RUN layer.
  EXPECT_EQ(compressing(first_messages), 3);

  auto fetched = client_->getManifest({server_->host(), "team/app"}, "1");
  ASSERT_TRUE(fetched.isOk()) << fetched.status().toString();
  EXPECT_EQ(fetched->digest, first.manifest_digest);
  auto manifest = oci::Manifest::fromJson(fetched->bytes);
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  ASSERT_EQ(manifest->layers.size(), 3u);
  for (const auto& layer : manifest->layers) {
    EXPECT_EQ(layer.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    auto stat = client_->statBlob({server_->host(), "team/app"}, layer.digest);
    ASSERT_TRUE(stat.isOk()) << stat.status().toString();
    EXPECT_EQ(*stat, std::optional<uint64_t>(layer.size)) << layer.digest.toString();
  }
  EXPECT_EQ(manifest->config.digest, first.config_digest);

  // Same layers again (a cache hit) to another tag: the variants are reused.
  auto [second, second_messages] = build(server_->host() + "/team/app:2");
  ASSERT_EQ(second.state, BuildState::kSucceeded) << second.failure_reason;
  EXPECT_EQ(compressing(second_messages), 0);
  EXPECT_EQ(second.manifest_digest, first.manifest_digest);
  auto head = client_->headManifest({server_->host(), "team/app"}, "2");
  ASSERT_TRUE(head.isOk()) << head.status().toString();
  EXPECT_EQ(head->digest, second.manifest_digest);
}

}  // namespace
}  // namespace lf::coordinator
