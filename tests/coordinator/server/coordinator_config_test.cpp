// CoordinatorConfig parsing: defaults, every field, token files, and bad files reported at once
// with their lines.

#include "coordinator/server/coordinator_config.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

TEST(CoordinatorConfigTest, MinimalConfigGetsDefaults) {
  auto c = parseCoordinatorConfig(
      "data_dir: /var/lib/lf\n"
      "blob_store: {directory: /srv/blobs}\n",
      "coordinator.yaml");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->listen.toString(), "127.0.0.1:7070");
  EXPECT_EQ(c->worker_listen.toString(), "127.0.0.1:7071");
  EXPECT_EQ(c->data_dir, "/var/lib/lf");
  EXPECT_EQ(c->blob_dir, "/srv/blobs");
  EXPECT_EQ(c->platform, "linux/amd64");
  EXPECT_TRUE(c->worker_tokens.empty());
  EXPECT_TRUE(c->clients.empty());
  EXPECT_EQ(c->lease_ms, 30'000);
  EXPECT_EQ(c->max_attempts, 3);
  EXPECT_TRUE(c->resume_builds);
  EXPECT_EQ(c->layer_compression, layer::Compression::kNone);
  EXPECT_EQ(c->push_compression, layer::Compression::kGzip);
}

TEST(CoordinatorConfigTest, EveryFieldIsRead) {
  testing::TempDir dir;
  auto worker_token = dir.write("wt", "worker-secret\n");
  auto client_token = dir.write("ct", "  team-a-secret \n");
  auto c = parseCoordinatorConfig(
      "listen: 0.0.0.0:8080\n"
      "worker_listen: '[::1]:0'\n"
      "data_dir: /d\n"
      "blob_store: {directory: /b}\n"
      "platform: linux/arm64/v8\n"
      "worker_tokens: [t1]\n"
      "worker_token_file: " + worker_token.string() + "\n"
      "clients:\n"
      "  - {token_file: " + client_token.string() + ", tenant: team-a, namespaces: [team-a]}\n"
      "  - {token: ops-secret, tenant: ops, admin: true}\n"
      "registry: {insecure: ['127.0.0.1:5000'], docker_config: /root/.docker/config.json}\n"
      "scheduler: {lease_ms: 1000, heartbeat_timeout_ms: 500, max_attempts: 5}\n"
      "heartbeat_interval_ms: 100\n"
      "builds: {max_concurrent: 3, resolution_ttl_ms: 0}\n"
      "resume_builds: false\n"
      "max_context_bytes: 1000\n"
      "layer_compression: zstd\n"
      "push_compression: zstd\n",
      "c.yaml");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->listen.toString(), "0.0.0.0:8080");
  EXPECT_EQ(c->worker_listen.host, "::1");
  EXPECT_EQ(c->worker_listen.port, 0);
  EXPECT_EQ(c->platform, "linux/arm64/v8");
  EXPECT_EQ(c->worker_tokens, (std::vector<std::string>{"t1", "worker-secret"}));
  ASSERT_EQ(c->clients.size(), 2u);
  EXPECT_EQ(c->clients[0].token, "team-a-secret");
  EXPECT_EQ(c->clients[0].tenant, "team-a");
  EXPECT_EQ(c->clients[0].namespaces, std::vector<std::string>{"team-a"});
  EXPECT_FALSE(c->clients[0].admin);
  EXPECT_TRUE(c->clients[1].admin);
  EXPECT_EQ(c->insecure_registries, std::vector<std::string>{"127.0.0.1:5000"});
  EXPECT_EQ(c->docker_config, "/root/.docker/config.json");
  EXPECT_EQ(c->lease_ms, 1000);
  EXPECT_EQ(c->heartbeat_timeout_ms, 500);
  EXPECT_EQ(c->max_attempts, 5);
  EXPECT_EQ(c->heartbeat_interval_ms, 100u);
  EXPECT_EQ(c->max_concurrent_builds, 3);
  EXPECT_EQ(c->resolution_ttl_ms, 0);
  EXPECT_FALSE(c->resume_builds);
  EXPECT_EQ(c->max_context_bytes, 1000u);
  EXPECT_EQ(c->layer_compression, layer::Compression::kZstd);
  EXPECT_EQ(c->push_compression, layer::Compression::kZstd);
}

TEST(CoordinatorConfigTest, CompressionKeysNameTheAllowedValues) {
  auto c = parseCoordinatorConfig(
      "data_dir: /d\n"
      "blob_store: {directory: /b}\n"
      "layer_compression: gzip\n",
      "c.yaml");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->layer_compression, layer::Compression::kGzip);

  c = parseCoordinatorConfig(
      "data_dir: /d\n"
      "blob_store: {directory: /b}\n"
      "layer_compression: lz4\n"
      "push_compression: none\n",
      "c.yaml");
  ASSERT_FALSE(c.isOk());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("c.yaml:3"), std::string::npos) << m;
  EXPECT_NE(m.find("layer_compression: must be one of none, gzip, zstd, got \"lz4\""),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("push_compression: must be one of gzip, zstd, got \"none\""),
            std::string::npos)
      << m;
}

TEST(CoordinatorConfigTest, EveryProblemIsReportedWithItsLine) {
  auto c = parseCoordinatorConfig(
      "listen: localhost\n"
      "blob_store: {directory: relative}\n"
      "scheduler: {lease_ms: 5}\n"
      "clients:\n"
      "  - {token: a b, tenant: x}\n"
      "  - {tenant: y, colour: red}\n"
      "lisen: 1\n",
      "c.yaml");
  ASSERT_FALSE(c.isOk());
  const std::string m = c.status().message();
  EXPECT_NE(m.find("c.yaml:1: listen: must be \"address:port\""), std::string::npos) << m;
  EXPECT_NE(m.find("c.yaml:2: blob_store.directory: must be an absolute path"), std::string::npos)
      << m;
  EXPECT_NE(m.find("c.yaml:3: scheduler.lease_ms: must be between 100"), std::string::npos) << m;
  EXPECT_NE(m.find("clients[0]: token must be non-empty printable ASCII"), std::string::npos) << m;
  EXPECT_NE(m.find("clients[1].colour: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("c.yaml:7: lisen: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("data_dir: required"), std::string::npos) << m;
}

TEST(CoordinatorConfigTest, MissingTokenFileNamesIt) {
  auto c = parseCoordinatorConfig(
      "data_dir: /d\nblob_store: {directory: /b}\nworker_token_file: /nonexistent/token\n",
      "c.yaml");
  ASSERT_FALSE(c.isOk());
  EXPECT_NE(c.status().message().find("/nonexistent/token"), std::string::npos)
      << c.status().message();
}

TEST(CoordinatorConfigTest, SyntaxErrorNamesLineAndColumn) {
  auto c = parseCoordinatorConfig("data_dir: [unclosed\n", "c.yaml");
  ASSERT_FALSE(c.isOk());
  EXPECT_NE(c.status().message().find("c.yaml:"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace lf::coordinator
