// WorkerConfig parsing: defaults, every field, and bad files reported all at once with lines.

#include "worker/daemon/worker_config.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace lf::worker {
namespace {

TEST(WorkerConfigTest, MinimalConfigGetsDefaults) {
  auto c = parseWorkerConfig(
      "coordinator: ws://coord.example:7070/v1/workers\n"
      "token: s3cret\n"
      "worker_id: w1\n"
      "blob_store: {directory: /srv/blobs}\n",
      "worker.yaml");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->coordinator_host, "coord.example");
  EXPECT_EQ(c->coordinator_port, 7070);
  EXPECT_EQ(c->coordinator_path, "/v1/workers");
  EXPECT_EQ(c->token, "s3cret");
  EXPECT_EQ(c->worker_id, "w1");
  EXPECT_EQ(c->blob_dir, "/srv/blobs");
  EXPECT_EQ(c->slots, 2u);
  EXPECT_EQ(c->state_dir, "/var/lib/layerfarm/worker");
  EXPECT_EQ(c->layer_budget_bytes, 20ull << 30);
  EXPECT_FALSE(c->allow_host_network);
  EXPECT_TRUE(c->use_cgroups);
  EXPECT_EQ(c->cgroup_parent, "layerfarm/w1");
  EXPECT_EQ(c->heartbeat_interval_ms, 5000u);
  EXPECT_EQ(c->reconnect_backoff_min_ms, 500u);
  EXPECT_EQ(c->reconnect_backoff_max_ms, 30000u);
  EXPECT_EQ(c->default_limits.timeout_ms, 2 * 60 * 60 * 1000);
}

TEST(WorkerConfigTest, EveryFieldIsRead) {
  testing::TempDir dir;
  auto token = dir.write("token", "  tok-from-file\n");
  std::string yaml =
      "coordinator: ws://10.0.0.1:9000\n"
      "token_file: " +
      token.string() +
      "\n"
      "worker_id: build-7\n"
      "slots: 8\n"
      "labels: {zone: a, disk: ssd}\n"
      "state_dir: /data/worker\n"
      "blob_store:\n  directory: /mnt/blobs\n"
      "layer_budget_bytes: 1073741824\n"
      "allow_host_network: true\n"
      "default_limits: {timeout_ms: 60000, memory_bytes: 1048576, pids_max: 100}\n"
      "cgroups: false\n"
      "cgroup_parent: farm/w\n"
      "heartbeat_interval_ms: 250\n"
      "reconnect_backoff_min_ms: 20\n"
      "reconnect_backoff_max_ms: 400\n"
      "connect_timeout_ms: 3000\n"
      "log_queue_bytes: 65536\n"
      "log_block_ms: 10\n"
      "drain_deliver_timeout_ms: 5000\n";
  auto c = parseWorkerConfig(yaml, "w.yaml");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->coordinator_port, 9000);
  EXPECT_EQ(c->coordinator_path, "/");
  EXPECT_EQ(c->token, "tok-from-file");
  EXPECT_EQ(c->slots, 8u);
  EXPECT_EQ(c->labels.at("zone"), "a");
  EXPECT_EQ(c->labels.at("disk"), "ssd");
  EXPECT_EQ(c->state_dir, "/data/worker");
  EXPECT_EQ(c->blob_dir, "/mnt/blobs");
  EXPECT_EQ(c->layer_budget_bytes, 1073741824u);
  EXPECT_TRUE(c->allow_host_network);
  EXPECT_EQ(c->default_limits.timeout_ms, 60000);
  EXPECT_EQ(c->default_limits.memory_bytes, 1048576);
  EXPECT_EQ(c->default_limits.pids_max, 100);
  EXPECT_FALSE(c->use_cgroups);
  EXPECT_EQ(c->cgroup_parent, "farm/w");
  EXPECT_EQ(c->heartbeat_interval_ms, 250u);
  EXPECT_EQ(c->reconnect_backoff_min_ms, 20u);
  EXPECT_EQ(c->reconnect_backoff_max_ms, 400u);
  EXPECT_EQ(c->connect_timeout_ms, 3000u);
  EXPECT_EQ(c->log_queue_bytes, 65536u);
  EXPECT_EQ(c->log_block_ms, 10u);
  EXPECT_EQ(c->drain_deliver_timeout_ms, 5000u);
}

TEST(WorkerConfigTest, AllProblemsAreReportedWithLines) {
  auto c = parseWorkerConfig(
      "coordinator: http://x:1\n"  // 1: wrong scheme
      "token: t\n"
      "slots: 0\n"                           // 3: out of range
      "slotz: 3\n"                           // 4: unknown key
      "blob_store: {directory: relative}\n"  // 5: not absolute
      "allow_host_network: maybe\n"          // 6: not a bool
      "default_limits: {timeout: 5}\n"       // 7: unknown nested key
      "reconnect_backoff_min_ms: 5000\n"     // 8: above max
      "reconnect_backoff_max_ms: 1000\n",
      "bad.yaml");
  ASSERT_FALSE(c.isOk());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("bad.yaml:1: coordinator: must start with ws://"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.yaml:3: slots: must be between 1 and 1024, got 0"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.yaml:4: slotz: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.yaml:5: blob_store.directory: must be an absolute path"), std::string::npos)
      << m;
  EXPECT_NE(m.find("bad.yaml:6: allow_host_network: must be true or false"), std::string::npos)
      << m;
  EXPECT_NE(m.find("bad.yaml:7: default_limits.timeout: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("bad.yaml:8: reconnect_backoff_min_ms: must not exceed"), std::string::npos)
      << m;
}

TEST(WorkerConfigTest, RequiredFieldsAndTokenRules) {
  auto empty = parseWorkerConfig("worker_id: w\n", "e.yaml");
  ASSERT_FALSE(empty.isOk());
  const std::string& m = empty.status().message();
  EXPECT_NE(m.find("coordinator: required"), std::string::npos) << m;
  EXPECT_NE(m.find("token or token_file: required"), std::string::npos) << m;
  EXPECT_NE(m.find("blob_store.directory: required"), std::string::npos) << m;

  auto both = parseWorkerConfig(
      "coordinator: ws://h:1/\ntoken: a\ntoken_file: /nonexistent\nworker_id: w\n"
      "blob_store: {directory: /b}\n",
      "b.yaml");
  ASSERT_FALSE(both.isOk());
  EXPECT_NE(both.status().message().find("give one, not both"), std::string::npos);

  auto spaces = parseWorkerConfig(
      "coordinator: ws://h:1/\ntoken: 'a b'\nworker_id: 'bad id'\nblob_store: {directory: /b}\n",
      "s.yaml");
  ASSERT_FALSE(spaces.isOk());
  EXPECT_NE(spaces.status().message().find("s.yaml:2: token:"), std::string::npos)
      << spaces.status().message();
  EXPECT_NE(spaces.status().message().find("s.yaml:3: worker_id:"), std::string::npos)
      << spaces.status().message();
}

TEST(WorkerConfigTest, SyntaxErrorNamesLineAndColumn) {
  auto c = parseWorkerConfig("coordinator: ws://h:1\nlabels: {a: b\n", "syn.yaml");
  ASSERT_FALSE(c.isOk());
  EXPECT_NE(c.status().message().find("syn.yaml:"), std::string::npos) << c.status().message();
}

TEST(WorkerConfigTest, MissingFileIsNotFound) {
  auto c = loadWorkerConfig("/nonexistent/worker.yaml");
  ASSERT_FALSE(c.isOk());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find("/nonexistent/worker.yaml"), std::string::npos);
}

}  // namespace
}  // namespace lf::worker
