// WorkerDaemon against a fake coordinator (fake_coordinator.h: a Beast WebSocket server on
// 127.0.0.1, port 0). Steps run through a fake StepExecutor: these tests need no root.

#include "worker/daemon/worker_daemon.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "tests/worker/daemon/daemon_test_util.h"

namespace lf::worker::daemon_test {
namespace {

TEST(WorkerDaemonTest, RegistersHeartbeatsRunsJobAndStreamsLog) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  exec.hold("sha256:" + std::string(64, 'b'));
  RunningDaemon d(optionsFor(coord, "tok"), exec);

  auto reg = coord.waitFor(isRegister);
  ASSERT_TRUE(reg);
  const v1::Register& r = reg->register_();
  EXPECT_EQ(r.protocol_version().major(), 1u);
  EXPECT_EQ(r.worker_id(), "test-worker");
  EXPECT_EQ(r.slots(), 2u);
  EXPECT_EQ(r.labels().at("zone"), "test");
  ASSERT_EQ(r.diff_ids_size(), 1);
  EXPECT_EQ(r.diff_ids(0), "sha256:" + std::string(64, 'b'));
  EXPECT_FALSE(r.draining());
  ASSERT_TRUE(coord.waitFor(isHeartbeat));

  coord.send(assign("job-1", 1, "echo hello world"));
  auto log = coord.waitFor([](const v1::WorkerMessage& m) { return m.has_job_log(); });
  ASSERT_TRUE(log);
  EXPECT_EQ(log->job_log().job_id(), "job-1");
  EXPECT_EQ(log->job_log().attempt(), 1u);
  ASSERT_EQ(log->job_log().lines_size(), 1);
  EXPECT_EQ(log->job_log().lines(0).line(), "hello world");
  auto result = coord.waitFor(resultOf("job-1"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->job_result().attempt(), 1u);
  EXPECT_EQ(result->job_result().result().outcome(), v1::STEP_OUTCOME_SUCCEEDED);

  // A layer the store gained shows up in a heartbeat.
  exec.hold("sha256:" + std::string(64, 'c'));
  auto added = coord.waitFor([](const v1::WorkerMessage& m) {
    return m.has_heartbeat() && m.heartbeat().diff_ids_added_size() == 1;
  });
  ASSERT_TRUE(added);
  EXPECT_EQ(added->heartbeat().diff_ids_added(0), "sha256:" + std::string(64, 'c'));
  EXPECT_EQ(added->heartbeat().free_slots(), 2u);
}

TEST(WorkerDaemonTest, CancelStopsARunningJob) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  RunningDaemon d(optionsFor(coord, "tok"), exec);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.send(assign("long", 3, "wait"));
  ASSERT_TRUE(exec.waitStarted(1));
  auto busy = coord.waitFor([](const v1::WorkerMessage& m) {
    return m.has_heartbeat() && m.heartbeat().running_size() == 1;
  });
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->heartbeat().running(0).job_id(), "long");
  EXPECT_EQ(busy->heartbeat().free_slots(), 1u);
  v1::CoordinatorMessage cancel;
  cancel.mutable_cancel()->set_job_id("long");
  cancel.mutable_cancel()->set_attempt(3);
  coord.send(cancel);
  auto result = coord.waitFor(resultOf("long"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->job_result().attempt(), 3u);
  EXPECT_EQ(result->job_result().result().outcome(), v1::STEP_OUTCOME_CANCELLED);
}

TEST(WorkerDaemonTest, MoreJobsThanSlotsAreRejected) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  RunningDaemon d(optionsFor(coord, "tok"), exec);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.send(assign("a", 1, "gate"));
  coord.send(assign("b", 1, "gate"));
  coord.send(assign("c", 1, "gate"));
  auto rejected = coord.waitFor([](const v1::WorkerMessage& m) { return m.has_job_rejected(); });
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->job_rejected().job_id(), "c");
  EXPECT_NE(rejected->job_rejected().reason().find("no free slot"), std::string::npos);
  exec.release();
  EXPECT_TRUE(coord.waitFor(resultOf("a")));
  EXPECT_TRUE(coord.waitFor(resultOf("b")));
}

TEST(WorkerDaemonTest, ReconnectsAfterDropAndDeliversResultsFinishedMeanwhile) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  RunningDaemon d(optionsFor(coord, "tok"), exec);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.send(assign("j", 2, "gate"));
  ASSERT_TRUE(exec.waitStarted(1));
  // Refuse to register the next connection for now, so the result is surely finished while
  // the worker is not registered.
  coord.setAutoRegister(false);
  coord.dropConnection();
  auto second = coord.waitFor(isRegister);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->register_().running_size(), 1);
  EXPECT_EQ(second->register_().running(0).job_id(), "j");
  exec.release();
  // Nothing may be sent before Registered.
  coord.dropConnection();
  coord.setAutoRegister(true);
  auto result = coord.waitFor(resultOf("j"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->job_result().attempt(), 2u);
  EXPECT_EQ(result->job_result().result().outcome(), v1::STEP_OUTCOME_SUCCEEDED);
  EXPECT_GE(coord.handshakes(), 3);
  EXPECT_GE(d.daemon.stats().connection_failures, 2u);
  EXPECT_GE(d.daemon.stats().registrations, 2u);
}

TEST(WorkerDaemonTest, MalformedFrameClosesConnectionAndWorkerReconnects) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  RunningDaemon d(optionsFor(coord, "tok"), exec);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.sendRaw(std::string("\xff\xff\xff garbage", 12), false);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.sendRaw("hello", true);  // a text frame
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.send(v1::CoordinatorMessage());  // no kind set: unknown
  ASSERT_TRUE(coord.waitFor(isRegister));
  EXPECT_EQ(d.daemon.stats().bad_frames, 3u);
  EXPECT_NE(d.daemon.stats().last_error.find("malformed frame"), std::string::npos);
  // Still works.
  coord.send(assign("after", 1, "echo ok"));
  EXPECT_TRUE(coord.waitFor(resultOf("after")));
}

TEST(WorkerDaemonTest, WrongTokenIsAFatalErrorNamingTheCause) {
  FakeCoordinator coord("right");
  FakeExecutor exec;
  WorkerDaemon daemon(optionsFor(coord, "wrong"), exec);
  Status status = daemon.run();
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(status.message().find("refused the worker's token: HTTP 401"), std::string::npos)
      << status.message();
  EXPECT_EQ(coord.refused(), 1);
}

TEST(WorkerDaemonTest, UnsupportedVersionErrorIsFatal) {
  FakeCoordinator coord("tok");
  coord.setAutoRegister(false);
  FakeExecutor exec;
  WorkerDaemon daemon(optionsFor(coord, "tok"), exec);
  std::thread t([&] {
    ASSERT_TRUE(coord.waitFor(isRegister));
    v1::CoordinatorMessage e;
    e.mutable_error()->set_code(v1::Error::CODE_UNSUPPORTED_VERSION);
    e.mutable_error()->set_message("this coordinator speaks 2.x");
    coord.send(e);
  });
  Status status = daemon.run();
  t.join();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("speaks 2.x"), std::string::npos) << status.message();
}

TEST(WorkerDaemonTest, DrainFinishesRunningJobsRejectsNewOnesAndSaysGoodbye) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  RunningDaemon d(optionsFor(coord, "tok"), exec);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.send(assign("running", 1, "gate"));
  ASSERT_TRUE(exec.waitStarted(1));
  d.daemon.requestDrain("SIGTERM");
  auto notice = coord.waitFor([](const v1::WorkerMessage& m) { return m.has_drain_notice(); });
  ASSERT_TRUE(notice);
  EXPECT_EQ(notice->drain_notice().reason(), "SIGTERM");
  ASSERT_EQ(notice->drain_notice().running_size(), 1);
  coord.send(assign("new", 1, "echo no"));
  auto rejected = coord.waitFor([](const v1::WorkerMessage& m) { return m.has_job_rejected(); });
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->job_rejected().job_id(), "new");
  EXPECT_FALSE(d.done);
  exec.release();
  auto result = coord.waitFor(resultOf("running"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->job_result().result().outcome(), v1::STEP_OUTCOME_SUCCEEDED);
  ASSERT_TRUE(coord.waitFor([](const v1::WorkerMessage& m) { return m.has_goodbye(); }));
  EXPECT_TRUE(d.join().isOk());
  // Goodbye was the last frame.
  auto all = coord.all();
  ASSERT_FALSE(all.empty());
  EXPECT_TRUE(all.back().has_goodbye());
  d.thread = std::thread([] {});  // joined above; give the destructor something to join
}

TEST(WorkerDaemonTest, SecondDrainCancelsRunningSteps) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  RunningDaemon d(optionsFor(coord, "tok"), exec);
  ASSERT_TRUE(coord.waitFor(isRegister));
  coord.send(assign("stuck", 1, "wait"));
  ASSERT_TRUE(exec.waitStarted(1));
  d.daemon.requestDrain("SIGTERM");
  d.daemon.requestDrain("SIGTERM");
  auto result = coord.waitFor(resultOf("stuck"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->job_result().result().outcome(), v1::STEP_OUTCOME_CANCELLED);
  EXPECT_TRUE(d.join().isOk());
  d.thread = std::thread([] {});
}

TEST(WorkerDaemonTest, SigtermDrainsWhenSignalsAreHandled) {
  FakeCoordinator coord("tok");
  FakeExecutor exec;
  WorkerDaemonOptions options = optionsFor(coord, "tok");
  options.handle_signals = true;
  RunningDaemon d(options, exec);
  ASSERT_TRUE(coord.waitFor(isRegister));  // run() installed its handlers before connecting
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  auto notice = coord.waitFor([](const v1::WorkerMessage& m) { return m.has_drain_notice(); });
  ASSERT_TRUE(notice);
  EXPECT_EQ(notice->drain_notice().reason(), "SIGTERM");
  ASSERT_TRUE(coord.waitFor([](const v1::WorkerMessage& m) { return m.has_goodbye(); }));
  EXPECT_TRUE(d.join().isOk());
  d.thread = std::thread([] {});
}

TEST(WorkerDaemonTest, DrainWithoutCoordinatorExitsWhenNothingIsPending) {
  FakeExecutor exec;
  WorkerDaemonOptions o;
  // Nobody listens on this port any more: every connect fails.
  uint16_t port = FakeCoordinator("t").port();
  auto parsed =
      parseWorkerConfig("coordinator: ws://127.0.0.1:" + std::to_string(port) +
                            "/\ntoken: t\nworker_id: w\nblob_store: {directory: /x}\n"
                            "reconnect_backoff_min_ms: 20\nreconnect_backoff_max_ms: 50\n",
                        "t.yaml");
  ASSERT_TRUE(parsed.isOk());
  o.config = *parsed;
  WorkerDaemon daemon(o, exec);
  std::thread t([&] {
    // Let it fail a few connects first.
    for (int i = 0; i < 2000 && daemon.stats().connection_failures < 3; ++i) {
      std::this_thread::sleep_for(5ms);
    }
    daemon.requestDrain("test");
  });
  Status status = daemon.run();
  t.join();
  EXPECT_TRUE(status.isOk()) << status.toString();
  EXPECT_GE(daemon.stats().connection_failures, 3u);
  EXPECT_NE(daemon.stats().last_error.find("connect"), std::string::npos);
}

}  // namespace
}  // namespace lf::worker::daemon_test
