// The WorkerServer with REAL workers: `layerfarm-worker --config` processes dial it, run RUN
// steps in the sandbox on a busybox base layer and report layers. Root only (namespaces,
// overlayfs, start-up recovery).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_writer.h"
#include "coordinator/workers/worker_server.h"
#include "tests/coordinator/workers/worker_test_util.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "worker/cgroup/cgroup.h"
#include "worker/recovery/recovery.h"

namespace lf::coordinator::workers_test {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;

constexpr auto kStepDeadline = 120s;

// A `layerfarm-worker --config` child process; killed (and its state dir cleaned up) at scope
// exit unless it exited.
class WorkerProcess {
 public:
  WorkerProcess(const lf::testing::TempDir& dir, uint16_t port, const std::string& id)
      : state_(dir / ("state-" + id)) {
    fs::path config =
        dir.write(id + ".yaml", "coordinator: ws://127.0.0.1:" + std::to_string(port) +
                                    "/v1/workers\n"
                                    "token: root-tok\n"
                                    "worker_id: " +
                                    id +
                                    "\n"
                                    "slots: 1\n"
                                    "state_dir: " +
                                    state_.string() +
                                    "\n"
                                    "blob_store: {directory: " +
                                    (dir / "blobs").string() +
                                    "}\n"
                                    "cgroups: false\n"
                                    "reconnect_backoff_min_ms: 50\n");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(LF_WORKER_BINARY, LF_WORKER_BINARY, "--config", config.c_str(), nullptr);
      ::_exit(127);
    }
  }
  ~WorkerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    // What a crashed worker leaves behind (mounts below its state dir, step dirs) would keep the
    // temp dir from being removed; the next start of a worker would clean it up the same way.
    worker::cgroup::CgroupConfig none;
    none.parent = "layerfarm/none-" + std::to_string(::getpid());
    auto recovered = worker::recoverAfterCrash(state_, none);
    recovered.status().ignore();  // best effort: cleanup of a test's leftovers
  }
  pid_t pid() const { return pid_; }
  void kill9() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
  }
  // Waits for the process to exit; its exit code, or -1 (killed, or still running at the
  // deadline: then it is killed).
  int waitExit(std::chrono::milliseconds timeout = kDeadline) {
    int status = 0;
    auto end = std::chrono::steady_clock::now() + timeout;
    pid_t done = 0;
    while ((done = ::waitpid(pid_, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(10ms);
    }
    if (done != pid_) {
      return -1;  // the destructor kills it
    }
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  fs::path state_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

class WorkerServerRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root (namespaces, overlayfs, start-up recovery)";
    }
    fs::path rootfs = dir_ / "rootfs";
    auto made = lf::testing::runShell(std::string(LF_TEST_DATA_DIR) + "/make-busybox-rootfs.sh " +
                                      rootfs.string());
    ASSERT_EQ(made.code, 0) << made.text;
    auto blobs = blob::DirectoryBlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
    blobs_ = std::move(*blobs);
    layer::LayerOptions layer_options;
    layer_options.source_date_epoch = 1704067200;
    auto base = layer::writeLayer(rootfs, layer_options, *blobs_);
    ASSERT_TRUE(base.isOk()) << base.status().toString();
    base_.mutable_blob()->set_media_type(base->media_type);
    base_.mutable_blob()->set_digest(base->digest.toString());
    base_.mutable_blob()->set_size(static_cast<int64_t>(base->size));
    base_.set_diff_id(base->diff_id.toString());

    WorkerServerOptions o = testOptions();
    o.tokens = {"root-tok"};
    o.heartbeat_interval_ms = 200;
    o.scheduler.heartbeat_timeout = 3000ms;
    server_ = std::make_unique<WorkerServer>(std::move(o));
    server_->setListener(&listener_);
    ASSERT_TRUE(server_->start().isOk());
  }

  JobRequest shellJob(const std::string& build, const std::string& command) {
    JobRequest r;
    r.build_id = build;
    r.key = Digest::sha256Of(build + command);
    r.parent_diff_ids = {base_.diff_id()};
    r.spec.set_kind(v1::STEP_KIND_RUN);
    r.spec.mutable_run()->add_command(command);
    r.spec.mutable_run()->set_shell_form(true);
    r.spec.mutable_config()->add_env("PATH=/bin");
    *r.spec.mutable_parent()->add_layers() = base_;
    return r;
  }
  bool registered(const std::string& id) {
    return eventually([&] {
      for (const WorkerView& w : server_->workers()) {
        if (w.id == id) {
          return true;
        }
      }
      return false;
    });
  }
  bool sawLine(const std::string& job_id, const std::string& line,
               std::chrono::milliseconds timeout = kStepDeadline) {
    return listener_
        .waitLog(
            [&](const JobLogBatch& b) {
              if (b.job_id != job_id) {
                return false;
              }
              for (const v1::StepLog& l : b.lines) {
                if (l.line() == line) {
                  return true;
                }
              }
              return false;
            },
            timeout)
        .has_value();
  }

  lf::testing::TempDir dir_;
  std::unique_ptr<blob::DirectoryBlobStore> blobs_;
  v1::LayerRef base_;
  RecordingListener listener_;
  std::unique_ptr<WorkerServer> server_;
};

TEST_F(WorkerServerRootTest, RealWorkerRunsAStepToSucceeded) {
  WorkerProcess worker(dir_, server_->port(), "real-1");
  ASSERT_TRUE(registered("real-1"));
  auto submitted = server_->submit(shellJob("b1", "echo from-the-sandbox && echo hi > /hello"));
  ASSERT_TRUE(submitted.isOk()) << submitted.status().toString();
  auto done = listener_.waitEvent([](const JobEvent&) { return true; }, kStepDeadline);
  ASSERT_TRUE(done);
  ASSERT_EQ(done->kind, JobEvent::Kind::kSucceeded) << done->reason << " " << done->result.error();
  EXPECT_EQ(done->worker_id, "real-1");
  EXPECT_EQ(done->build_ids, std::vector<std::string>{"b1"});
  EXPECT_EQ(done->result.outcome(), v1::STEP_OUTCOME_SUCCEEDED);
  auto digest = Digest::parse(done->result.layer().blob().digest());
  ASSERT_TRUE(digest.isOk()) << done->result.layer().blob().digest();
  EXPECT_TRUE(fs::exists(blobs_->blobPath(*digest)));
  EXPECT_TRUE(sawLine(submitted->job_id, "from-the-sandbox", 1s));
  // SIGTERM drains it: Goodbye, removed, exit 0.
  ASSERT_EQ(::kill(worker.pid(), SIGTERM), 0);
  EXPECT_EQ(worker.waitExit(), 0);
  EXPECT_TRUE(eventually([&] { return server_->stats().workers == 0; }));
}

TEST_F(WorkerServerRootTest, KilledWorkersJobFinishesOnTheOther) {
  auto a = std::make_unique<WorkerProcess>(dir_, server_->port(), "real-a");
  ASSERT_TRUE(registered("real-a"));
  WorkerProcess b(dir_, server_->port(), "real-b");
  ASSERT_TRUE(registered("real-b"));
  auto submitted =
      server_->submit(shellJob("b1", "echo started && sleep 3 && echo finished > /done"));
  ASSERT_TRUE(submitted.isOk());
  auto first = listener_.waitAssigned([](const JobAssigned&) { return true; });
  ASSERT_TRUE(first);
  ASSERT_TRUE(sawLine(submitted->job_id, "started"));
  const std::string victim = first->worker_id;
  const std::string survivor = victim == "real-a" ? "real-b" : "real-a";
  if (victim == "real-a") {
    a->kill9();
  } else {
    b.kill9();
  }
  auto requeued = listener_.waitEvent(
      [](const JobEvent& e) { return e.kind == JobEvent::Kind::kRequeued; }, kStepDeadline);
  ASSERT_TRUE(requeued);
  EXPECT_EQ(requeued->worker_id, victim);
  auto done = listener_.waitEvent(
      [](const JobEvent& e) { return e.kind != JobEvent::Kind::kRequeued; }, kStepDeadline);
  ASSERT_TRUE(done);
  ASSERT_EQ(done->kind, JobEvent::Kind::kSucceeded) << done->reason << " " << done->result.error();
  EXPECT_EQ(done->worker_id, survivor);
  EXPECT_EQ(done->attempt, 2);
  auto digest = Digest::parse(done->result.layer().blob().digest());
  ASSERT_TRUE(digest.isOk());
  EXPECT_TRUE(fs::exists(blobs_->blobPath(*digest)));
}

}  // namespace
}  // namespace lf::coordinator::workers_test
