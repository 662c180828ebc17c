// The registry client against a fake server that misbehaves on purpose: every failure must be a
// clear error, nothing damaged may land in the blob store, and nothing may hang.

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "common/blob/directory_blob_store.h"
#include "common/registry/image_transfer.h"
#include "common/registry/registry_client.h"
#include "tests/common/registry/fake_http_server.h"
#include "tests/common/registry/test_image.h"
#include "tests/support/temp_dir.h"

namespace lf::registry {
namespace {

using lf::testing::FakeHttpServer;
using lf::testing::FakeRequest;

std::unique_ptr<RegistryClient> clientFor(const FakeHttpServer& server, int io_timeout_ms = 5000,
                                          int attempts = 3) {
  RegistryConfig config;
  config.insecure_registries = {server.host()};
  config.initial_backoff_ms = 1;
  config.max_backoff_ms = 5;
  config.max_attempts = attempts;
  config.http.io_timeout_ms = io_timeout_ms;
  config.max_manifest_bytes = 64 * 1024;
  auto client = RegistryClient::create(config);
  EXPECT_TRUE(client.isOk());
  return std::move(*client);
}

std::unique_ptr<blob::DirectoryBlobStore> openStore(const std::filesystem::path& dir) {
  blob::DirectoryBlobStoreOptions options;
  options.fsync = false;
  return std::move(*blob::DirectoryBlobStore::open(dir, options));
}

class HostileRegistryTest : public ::testing::Test {
 protected:
  lf::testing::TempDir dir_;
  std::string blob_ = testing::randomBytes(200'000, 42);
  Digest digest_ = Digest::sha256Of(blob_);
};

TEST_F(HostileRegistryTest, BlobBytesNotMatchingDigestAreRejectedAndNotStored) {
  std::string wrong = blob_;
  wrong[1000] ^= 1;
  FakeHttpServer server(
      [&](const FakeRequest&) { return FakeHttpServer::response(200, {}, wrong); });
  auto store = openStore(dir_ / "store");
  Status s = clientFor(server)->fetchBlob({server.host(), "a/b"}, digest_, blob_.size(), *store);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.toString();
  EXPECT_NE(s.message().find(digest_.toString()), std::string::npos) << s.message();
  EXPECT_FALSE(*store->has(digest_));
  size_t count = 0;
  ASSERT_TRUE(store->list([&](const blob::BlobInfo&) { ++count; }).isOk());
  EXPECT_EQ(count, 0u);
}

TEST_F(HostileRegistryTest, MoreBytesThanTheDescriptorSaysIsRejected) {
  FakeHttpServer server(
      [&](const FakeRequest&) { return FakeHttpServer::response(200, {}, blob_ + "extra"); });
  auto store = openStore(dir_ / "store");
  Status s = clientFor(server)->fetchBlob({server.host(), "a/b"}, digest_, blob_.size(), *store);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.toString();
  EXPECT_FALSE(*store->has(digest_));
}

// The first answer breaks off half way; the client resumes with Range and gets the rest.
TEST_F(HostileRegistryTest, CleanlyTruncatedBodyResumes) {
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const FakeRequest& req) -> std::string {
    if (calls++ == 0) {
      std::string full = FakeHttpServer::response(200, {}, blob_);
      FakeHttpServer::closeAfterReply();
      return full.substr(0, full.size() - blob_.size() / 2);
    }
    size_t start = std::stoul(req.headers.at("range").substr(6));
    return FakeHttpServer::response(206,
                                    {{"Content-Range", "bytes " + std::to_string(start) + "-" +
                                                           std::to_string(blob_.size() - 1) + "/" +
                                                           std::to_string(blob_.size())}},
                                    blob_.substr(start));
  });
  auto store = openStore(dir_ / "store");
  auto client = clientFor(server);
  Status s = client->fetchBlob({server.host(), "a/b"}, digest_, blob_.size(), *store);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(client->counters().resumed_downloads, 1u);
  EXPECT_EQ(*store->getBytes(digest_), blob_);
}

TEST_F(HostileRegistryTest, AlwaysTruncatedBodyFailsClearly) {
  FakeHttpServer server([&](const FakeRequest&) {
    std::string full = FakeHttpServer::response(200, {}, blob_);
    FakeHttpServer::closeAfterReply();
    return full.substr(0, full.size() - 10);
  });
  auto store = openStore(dir_ / "store");
  // Without Range support the server restarts from 0 each time; 3 attempts, then the error.
  Status s = clientFor(server)->fetchBlob({server.host(), "a/b"}, digest_, blob_.size(), *store);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.toString();
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
  EXPECT_EQ(server.requestCount(), 3);
  EXPECT_FALSE(*store->has(digest_));
}

TEST_F(HostileRegistryTest, MalformedManifestJson) {
  FakeHttpServer server([&](const FakeRequest&) {
    return FakeHttpServer::response(200, {{"Content-Type", std::string(oci::kOciManifest)}},
                                    R"({"schemaVersion": 2, "config": {"digest": 5}, "layers": [)");
  });
  auto r = resolveImage(*clientFor(server), *Reference::parse(server.host() + "/a/b:v1"),
                        oci::Platform{"amd64", "linux", "", {}, ""});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
  EXPECT_NE(r.status().message().find("manifest"), std::string::npos) << r.status().message();
}

TEST_F(HostileRegistryTest, EnormousManifestIsRefused) {
  std::string huge = "{\"annotations\": {\"x\": \"" + std::string(1 << 20, 'a') + "\"}}";
  FakeHttpServer server([&](const FakeRequest&) {
    return FakeHttpServer::response(200, {{"Content-Type", std::string(oci::kOciManifest)}}, huge);
  });
  auto r = clientFor(server)->getManifest({server.host(), "a/b"}, "v1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().toString();
}

TEST_F(HostileRegistryTest, ManifestNotMatchingItsDigest) {
  FakeHttpServer server([&](const FakeRequest&) {
    return FakeHttpServer::response(200, {{"Content-Type", std::string(oci::kOciManifest)}}, "{}");
  });
  auto r = clientFor(server)->getManifest({server.host(), "a/b"}, digest_.toString());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().toString();
}

TEST_F(HostileRegistryTest, EndlessUnauthorizedStops) {
  FakeHttpServer* self = nullptr;
  FakeHttpServer server([&](const FakeRequest& req) {
    if (req.path() == "/token") {
      return FakeHttpServer::response(200, {}, R"({"token": "t", "expires_in": 60})");
    }
    return FakeHttpServer::response(
        401,
        {{"WWW-Authenticate",
          "Bearer realm=\"http://" + self->host() + "/token\",service=\"fake\""}},
        R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})");
  });
  self = &server;
  auto r = clientFor(server)->headManifest({server.host(), "a/b"}, "v1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().toString();
  EXPECT_NE(r.status().message().find("401"), std::string::npos) << r.status().message();
  EXPECT_LE(server.requestCount(), 8);
}

TEST_F(HostileRegistryTest, SlowResponseTimesOut) {
  FakeHttpServer* self = nullptr;
  FakeHttpServer server([&](const FakeRequest&) {
    self->waitUntilStopped();
    return std::string();
  });
  self = &server;
  auto start = std::chrono::steady_clock::now();
  auto r = clientFor(server, /*io_timeout_ms=*/300)->getManifest({server.host(), "a/b"}, "v1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().toString();
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(HostileRegistryTest, RetriesServerErrorsHonouringRetryAfter) {
  std::atomic<int> calls{0};
  FakeHttpServer server([&](const FakeRequest&) {
    int n = calls++;
    if (n == 0) return FakeHttpServer::response(503, {});
    if (n == 1) return FakeHttpServer::response(429, {{"Retry-After", "0"}});
    return FakeHttpServer::response(200, {{"Content-Length", std::to_string(blob_.size())}});
  });
  auto client = clientFor(server);
  auto r = client->statBlob({server.host(), "a/b"}, digest_);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(**r, blob_.size());
  EXPECT_EQ(client->counters().retries, 2u);
}

TEST_F(HostileRegistryTest, NoRetryOnClientErrors) {
  FakeHttpServer server([&](const FakeRequest&) {
    return FakeHttpServer::response(
        400, {}, R"({"errors":[{"code":"NAME_INVALID","message":"invalid repository name"}]})");
  });
  auto r = clientFor(server)->getManifest({server.host(), "a/b"}, "v1");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("NAME_INVALID: invalid repository name"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(server.requestCount(), 1);
}

TEST_F(HostileRegistryTest, FollowsRedirectsToAnotherOrigin) {
  FakeHttpServer storage([&](const FakeRequest& req) {
    if (req.headers.count("authorization")) return FakeHttpServer::response(400, {});
    return FakeHttpServer::response(200, {}, blob_);
  });
  FakeHttpServer server([&](const FakeRequest& req) {
    if (!req.headers.count("authorization")) {
      return FakeHttpServer::response(401, {{"WWW-Authenticate", "Basic realm=\"r\""}});
    }
    return FakeHttpServer::response(307, {{"Location", storage.url() + "/bucket/blob?sig=1"}});
  });
  RegistryConfig config;
  config.insecure_registries = {server.host()};
  config.credentials.add(server.host(), {"u", "p", ""});
  auto client = std::move(*RegistryClient::create(config));
  auto store = openStore(dir_ / "store");
  Status s = client->fetchBlob({server.host(), "a/b"}, digest_, blob_.size(), *store);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(*store->getBytes(digest_), blob_);
}

TEST_F(HostileRegistryTest, ConnectionRefused) {
  uint16_t port;
  {
    FakeHttpServer gone([](const FakeRequest&) { return std::string(); });
    port = gone.port();
  }
  RegistryConfig config;
  config.insecure_registries = {"127.0.0.1:" + std::to_string(port)};
  config.max_attempts = 2;
  config.initial_backoff_ms = 1;
  auto client = std::move(*RegistryClient::create(config));
  Status s = client->ping("127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("connect"), std::string::npos) << s.message();
}

TEST_F(HostileRegistryTest, KeepAliveReusesConnections) {
  FakeHttpServer server([&](const FakeRequest&) {
    return FakeHttpServer::response(200, {{"Content-Length", "5"}});
  });
  auto client = clientFor(server);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client->statBlob({server.host(), "a/b"}, digest_).isOk());
  EXPECT_EQ(server.requestCount(), 5);
  EXPECT_EQ(server.connectionCount(), 1);
}

}  // namespace
}  // namespace lf::registry
