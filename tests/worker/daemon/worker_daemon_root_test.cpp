// A real RUN step in the sandbox through the WorkerDaemon and a fake coordinator. Root only.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "tests/worker/daemon/daemon_test_util.h"
#include "worker/cgroup/cgroup.h"
#include "worker/exec/step_runner.h"
#include "worker/exec/step_spec.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker::daemon_test {
namespace {

namespace fs = std::filesystem;

// The real thing: a RUN step in the sandbox through the daemon. Root only.
TEST(WorkerDaemonRootTest, RunsARealStepAndReportsItsLayer) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root (namespaces, overlayfs, cgroups)";
  }
  lf::testing::TempDir dir;
  fs::path rootfs = dir / "rootfs";
  auto made = lf::testing::runShell(std::string(LF_TEST_DATA_DIR) + "/make-busybox-rootfs.sh " +
                                    rootfs.string());
  ASSERT_EQ(made.code, 0) << made.text;
  auto blobs = blob::DirectoryBlobStore::open(dir / "blobs");
  ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
  layer::LayerOptions layer_options;
  layer_options.source_date_epoch = 1704067200;
  auto base = layer::writeLayer(rootfs, layer_options, **blobs);
  ASSERT_TRUE(base.isOk()) << base.status().toString();

  LayerStoreOptions store_options;
  store_options.root = dir / "state" / "layers";
  store_options.sync = false;
  auto layers = LayerStore::open(store_options, **blobs);
  ASSERT_TRUE(layers.isOk()) << layers.status().toString();
  StepRunnerOptions runner_options;
  runner_options.state_root = dir / "state";
  runner_options.cgroups.parent = "layerfarm/daemon-test-" + std::to_string(::getpid());
  auto version = cgroup::Cgroup::detect(runner_options.cgroups);
  if (version.isOk() && *version == cgroup::CgroupVersion::kV2) {
    runner_options.cgroups.nest_under_self = false;
  }
  StepRunner runner(runner_options, **blobs, **layers);
  StepRunnerExecutor executor(runner, **layers);

  FakeCoordinator coord("tok");
  RunningDaemon d(optionsFor(coord, "tok"), executor);
  ASSERT_TRUE(coord.waitFor(isRegister));
  v1::CoordinatorMessage m = assign("real", 1, "echo from-the-sandbox && echo hi > /hello");
  v1::StepSpec& spec = *m.mutable_job_assign()->mutable_spec();
  spec.mutable_run()->set_shell_form(true);
  spec.mutable_config()->add_env("PATH=/bin");
  *spec.mutable_parent()->add_layers() =
      fromLayerRef({base->digest, base->diff_id, base->size, base->media_type});
  coord.send(m);
  auto result = coord.waitFor(resultOf("real"), 120s);
  ASSERT_TRUE(result);
  const v1::StepResult& r = result->job_result().result();
  ASSERT_EQ(r.outcome(), v1::STEP_OUTCOME_SUCCEEDED) << r.error();
  EXPECT_FALSE(r.empty_layer());
  ASSERT_FALSE(r.layer().blob().digest().empty());
  auto digest = Digest::parse(r.layer().blob().digest());
  ASSERT_TRUE(digest.isOk());
  EXPECT_TRUE(fs::exists((*blobs)->blobPath(*digest)));
  bool saw_line = false;
  for (const auto& msg : coord.all()) {
    if (msg.has_job_log()) {
      for (const auto& line : msg.job_log().lines()) {
        saw_line = saw_line || line.line() == "from-the-sandbox";
      }
    }
  }
  EXPECT_TRUE(saw_line);
  // The new layer is held and reported by a later heartbeat.
  EXPECT_TRUE(coord.waitFor([&](const v1::WorkerMessage& msg) {
    if (!msg.has_heartbeat()) return false;
    for (const auto& id : msg.heartbeat().diff_ids_added()) {
      if (id == r.layer().diff_id()) return true;
    }
    return false;
  }));
  auto removed = cgroup::removeStaleCgroups(runner_options.cgroups);
  removed.status().ignore();  // best effort: the test's own parent cgroup
}

// The real binary: `layerfarm-worker --config worker.yaml` registers, and SIGTERM drains it:
// it says Goodbye and exits 0.
TEST(WorkerDaemonRootTest, BinaryRegistersAndDrainsOnSigterm) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root (start-up recovery unmounts below the state dir)";
  }
  lf::testing::TempDir dir;
  auto blobs = blob::DirectoryBlobStore::open(dir / "blobs");
  ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
  FakeCoordinator coord("cli-token");
  fs::path config = dir.write("worker.yaml", "coordinator: " + coord.url() +
                                                 "\n"
                                                 "token: cli-token\n"
                                                 "worker_id: cli-worker\n"
                                                 "state_dir: " +
                                                 (dir / "state").string() +
                                                 "\n"
                                                 "blob_store: {directory: " +
                                                 (dir / "blobs").string() +
                                                 "}\n"
                                                 "cgroups: false\n");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(LF_WORKER_BINARY, LF_WORKER_BINARY, "--config", config.c_str(), nullptr);
    ::_exit(127);
  }
  auto reg = coord.waitFor(isRegister);
  if (!reg) {
    ::kill(pid, SIGKILL);
  }
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->register_().worker_id(), "cli-worker");
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  EXPECT_TRUE(coord.waitFor([](const v1::WorkerMessage& m) { return m.has_goodbye(); }));
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + kDeadline;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (done != pid) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    FAIL() << "layerfarm-worker did not exit after SIGTERM";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace lf::worker::daemon_test
