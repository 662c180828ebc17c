// The WorkerServer with the worker's own protocol implementation (WorkerDaemon, in-process)
// and a fake step executor: the two ends of worker_protocol.proto agree. No root needed; the
// root test runs the real binary with real steps.

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

#include "coordinator/workers/worker_server.h"
#include "tests/coordinator/workers/worker_test_util.h"
#include "worker/daemon/worker_config.h"
#include "worker/daemon/worker_daemon.h"

namespace lf::coordinator::workers_test {
namespace {

namespace v1 = layerfarm::v1;

const std::string kDiffB = "sha256:" + std::string(64, 'b');

// "echo <text>": logs <text> and succeeds with layer kDiffB. "wait": blocks until cancelled.
class EchoExecutor : public worker::StepExecutor {
 public:
  v1::StepResult run(const v1::StepSpec& spec, const LogCallback& log,
                     worker::sandbox::Canceller* cancel) override {
    v1::StepResult result;
    result.set_step_id(spec.step_id());
    std::string cmd = spec.run().command_size() > 0 ? spec.run().command(0) : "";
    if (cmd == "wait") {
      pollfd fd{cancel->fd(), POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(std::chrono::milliseconds(kDeadline).count()));
      result.set_outcome(cancel->isCancelled() ? v1::STEP_OUTCOME_CANCELLED
                                               : v1::STEP_OUTCOME_FAILED);
      return result;
    }
    v1::StepLog line;
    line.set_step_id(spec.step_id());
    line.set_line(cmd.substr(cmd.find(' ') + 1));
    log(line);
    result.set_outcome(v1::STEP_OUTCOME_SUCCEEDED);
    result.mutable_layer()->set_diff_id(kDiffB);
    return result;
  }
  std::vector<std::string> heldDiffIds() const override { return {}; }
  uint64_t layerStoreBytes() const override { return 0; }
};

// A WorkerDaemon on its own thread, stopped at scope exit.
struct Daemon {
  Daemon(uint16_t port, const std::string& id, worker::StepExecutor& executor)
      : daemon(optionsFor(port, id), executor) {
    thread = std::thread([this] { status = daemon.run(); });
  }
  ~Daemon() {
    daemon.requestStop();
    thread.join();
  }
  static worker::WorkerDaemonOptions optionsFor(uint16_t port, const std::string& id) {
    auto parsed = worker::parseWorkerConfig(
        "coordinator: ws://127.0.0.1:" + std::to_string(port) +
            "/v1/workers\ntoken: tok\nworker_id: " + id +
            "\nslots: 2\nblob_store: {directory: /unused}\nreconnect_backoff_min_ms: 20\n",
        "test.yaml");
    EXPECT_TRUE(parsed.isOk()) << parsed.status().toString();
    worker::WorkerDaemonOptions o;
    o.config = *parsed;
    o.platform = "linux/amd64";
    return o;
  }
  worker::WorkerDaemon daemon;
  std::thread thread;
  Status status;
};

TEST(WorkerDaemonInteropTest, DaemonRunsJobsIsCancelledAndDrains) {
  RecordingListener listener;
  WorkerServer server(testOptions());
  server.setListener(&listener);
  ASSERT_TRUE(server.start().isOk());
  EchoExecutor executor;
  Daemon d(server.port(), "daemon-1", executor);
  ASSERT_TRUE(eventually([&] { return server.stats().workers == 1; }));
  EXPECT_EQ(server.workers()[0].slots, 2);
  EXPECT_EQ(server.workers()[0].platform, "linux/amd64");

  auto echo = server.submit(runJob("b1", "key-echo", "echo out-of-the-daemon"));
  ASSERT_TRUE(echo.isOk());
  auto done = listener.waitEvent([](const JobEvent& e) { return true; });
  ASSERT_TRUE(done);
  EXPECT_EQ(done->kind, JobEvent::Kind::kSucceeded) << done->reason;
  EXPECT_EQ(done->worker_id, "daemon-1");
  EXPECT_EQ(done->result.layer().diff_id(), kDiffB);
  EXPECT_TRUE(listener.waitLog([&](const JobLogBatch& b) {
    return b.job_id == echo->job_id && !b.lines.empty() &&
           b.lines[0].line() == "out-of-the-daemon" &&
           b.build_ids == std::vector<std::string>{"b1"};
  }));
  // The layer the step made is now held by the worker (affinity for the next step).
  EXPECT_TRUE(eventually([&] { return server.workers()[0].held_layers >= 1; }));

  // A cancelled build's running step is stopped on the daemon and its slot comes back.
  auto waiting = server.submit(runJob("b2", "key-wait", "wait"));
  ASSERT_TRUE(waiting.isOk());
  ASSERT_TRUE(
      listener.waitAssigned([&](const JobAssigned& a) { return a.job_id == waiting->job_id; }));
  server.cancelBuild("b2");
  ASSERT_TRUE(
      listener.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kCancelled; }));
  EXPECT_TRUE(eventually([&] { return server.workers()[0].running == 0; }));

  // Drain: the daemon says DrainNotice, then Goodbye, and run() returns ok.
  ASSERT_TRUE(server.drainWorker("daemon-1", "test").isOk());
  EXPECT_TRUE(eventually([&] { return server.stats().workers == 0; }));
  d.thread.join();
  EXPECT_TRUE(d.status.isOk()) << d.status.toString();
  d.thread = std::thread([] {});  // the destructor joins again
  EXPECT_EQ(server.drainWorker("daemon-1", "again").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace lf::coordinator::workers_test
