// The CLI's context upload against the real layerfarm-coordinator process (RocksDB state and a
// directory blob store in a temp dir, API on an ephemeral loopback port): a first upload sends
// every file; an unchanged context is only HEADed; an edit sends exactly the edited file; the
// same files in another directory send none; the farm takes a build naming the manifest id.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "cli/api_client.h"
#include "cli/context_upload.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace lf::cli {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

// One coordinator process, stopped (SIGTERM, then waited for) at scope exit.
class Coordinator {
 public:
  explicit Coordinator(const TempDir& dir) {
    lf::testing::writeFile(dir / "worker-token", "test-token-0123456789\n");
    fs::path config = dir / "coordinator.yaml";
    lf::testing::writeFile(config,
                           "listen: 127.0.0.1:0\n"
                           "worker_listen: 127.0.0.1:0\n"
                           "data_dir: " +
                               (dir / "data").string() + "\n" +
                               "blob_store: {directory: " + (dir / "blobs").string() + "}\n" +
                               "worker_token_file: " + (dir / "worker-token").string() + "\n");
    log_ = dir / "coordinator.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::string bin = LF_COORDINATOR_BIN, flag = "--config", path = config.string();
    char* argv[] = {bin.data(), flag.data(), path.data(), nullptr};
    int rc = posix_spawn(&pid_, bin.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "spawn " << bin;
    if (rc != 0) pid_ = -1;
  }
  ~Coordinator() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  // Waits for "coordinator ready api=HOST:PORT" in the log; "" if it did not come.
  std::string waitForUrl() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::regex ready("coordinator ready api=([0-9.]+):([0-9]+)");
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      std::string log = lf::testing::readFile(log_);
      if (std::regex_search(log, m, ready)) return "http://" + m[1].str() + ":" + m[2].str();
      int status = 0;
      if (pid_ <= 0 || ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "the coordinator exited:\n" << log;
        return "";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a log, not a wait
    }
    ADD_FAILURE() << "the coordinator did not get ready in 60 s:\n" << lf::testing::readFile(log_);
    return "";
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

Result<ContextUploadResult> upload(const ApiClient& client, const fs::path& ctx,
                                   std::string* progress) {
  std::ostringstream err;
  auto r = uploadContext(client, ctx, ContextUploadOptions{}, err);
  *progress = err.str();
  return r;
}

TEST(ContextUploadIntegration, OnlyWhatTheRealCoordinatorLacksIsSent) {
  TempDir farm, cache, ctx;
  ::setenv("LAYERFARM_CACHE_DIR", cache.path().c_str(), 1);
  Coordinator coordinator(farm);
  std::string url = coordinator.waitForUrl();
  ASSERT_FALSE(url.empty());
  ApiClientOptions options;
  options.server = url;
  auto client = ApiClient::create(options);
  ASSERT_TRUE(client.isOk()) << client.status().toString();

  ctx.write("Dockerfile", "FROM scratch\nCOPY data/ /data/\n");
  ctx.write("data/blob.bin", std::string(1 << 20, 'b'));
  ctx.write("data/version.txt", "version 1\n");
  ctx.write("data/copy.txt", "version 1\n");  // one digest, sent once

  std::string progress;
  auto first = upload(**client, ctx.path(), &progress);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  EXPECT_EQ(first->files, 4u);
  EXPECT_EQ(first->sent_files, 3u);
  EXPECT_EQ(first->sent_bytes, (1u << 20) + 10 + 31);
  EXPECT_NE(progress.find("in 4 files, 3 files ("), std::string::npos) << progress;
  auto head = (*client)->send("HEAD", "/v1/contexts/" + first->id.toString());
  ASSERT_TRUE(head.isOk());
  EXPECT_EQ(head->status, 200) << "the context is not ready after the upload";

  auto again = upload(**client, ctx.path(), &progress);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_TRUE(again->already_ready);
  EXPECT_EQ(again->id, first->id);
  EXPECT_EQ(again->sent_files, 0u);
  EXPECT_NE(progress.find("nothing to send"), std::string::npos) << progress;

  ctx.write("data/version.txt", "version 2\n");
  auto edited = upload(**client, ctx.path(), &progress);
  ASSERT_TRUE(edited.isOk()) << edited.status().toString();
  EXPECT_NE(edited->id, first->id);
  EXPECT_FALSE(edited->already_ready);
  EXPECT_EQ(edited->sent_files, 1u);
  EXPECT_EQ(edited->sent_bytes, 10u);
  EXPECT_NE(progress.find("in 4 files, 1 file (10B) sent"), std::string::npos) << progress;
  EXPECT_TRUE(fs::exists(farm / "blobs")) << "the test's blob store is not where it thinks";

  // The same bytes elsewhere, with another Dockerfile mtime: a new manifest, no file to send.
  TempDir other;
  other.write("Dockerfile", "FROM scratch\nCOPY data/ /data/\n");
  other.write("data/blob.bin", std::string(1 << 20, 'b'));
  other.write("data/version.txt", "version 2\n");
  other.write("data/copy.txt", "version 1\n");
  struct timespec old_times[2] = {{1'600'000'000, 0}, {1'600'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (other / "Dockerfile").c_str(), old_times, 0), 0);
  auto elsewhere = upload(**client, other.path(), &progress);
  ASSERT_TRUE(elsewhere.isOk()) << elsewhere.status().toString();
  EXPECT_FALSE(elsewhere->already_ready);
  EXPECT_EQ(elsewhere->sent_files, 0u);
  EXPECT_NE(progress.find("nothing to send"), std::string::npos) << progress;

  // A build may name the manifest id (no worker runs it here; accepting it is the point).
  nlohmann::json request = {{"context", edited->id.toString()}, {"dockerfile", "Dockerfile"}};
  auto build = (*client)->postJson("/v1/builds", request);
  EXPECT_TRUE(build.isOk()) << build.status().toString();
  ::unsetenv("LAYERFARM_CACHE_DIR");
}

}  // namespace
}  // namespace lf::cli
