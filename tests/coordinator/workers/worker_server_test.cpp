// WorkerServer against scripted workers (TestWorker) over real WebSockets on loopback.

#include "coordinator/workers/worker_server.h"

#include <gtest/gtest.h>

#include <thread>

#include "coordinator/metrics/coordinator_metrics.h"
#include "tests/coordinator/workers/test_worker.h"
#include "tests/coordinator/workers/worker_test_util.h"

namespace lf::coordinator::workers_test {
namespace {

namespace v1 = layerfarm::v1;

const std::string kDiffA = "sha256:" + std::string(64, 'a');

auto isCancel = [](const v1::CoordinatorMessage& m) { return m.has_cancel(); };
auto isError = [](v1::Error::Code code) {
  return
      [code](const v1::CoordinatorMessage& m) { return m.has_error() && m.error().code() == code; };
};

class WorkerServerTest : public ::testing::Test {
 protected:
  void startServer(WorkerServerOptions o = testOptions()) {
    o.metrics = &metrics_;
    server_ = std::make_unique<WorkerServer>(std::move(o));
    server_->setListener(&listener_);
    ASSERT_TRUE(server_->start().isOk());
    ASSERT_NE(server_->port(), 0);
  }
  // A worker connected with the right token and registered.
  std::unique_ptr<TestWorker> worker(const std::string& id, int slots = 1) {
    auto w = std::make_unique<TestWorker>();
    Status connected = w->connect(server_->port(), "tok");
    EXPECT_TRUE(connected.isOk()) << connected.toString();
    auto reply = w->registerAs(id, slots);
    EXPECT_TRUE(reply && reply->has_registered() && reply->registered().accepted());
    return w;
  }
  bool hasWorker(const std::string& id) {
    for (const WorkerView& v : server_->workers()) {
      if (v.id == id) {
        return true;
      }
    }
    return false;
  }

  CoordinatorMetrics metrics_;
  RecordingListener listener_;
  std::unique_ptr<WorkerServer> server_;
};

// (1) The whole life of a job: assign, logs, result; every build attached gets the events.
TEST_F(WorkerServerTest, RunsAJobFromSubmitToSucceeded) {
  startServer();
  auto w = worker("w1");
  w->startHeartbeats(50ms);
  auto first = w->all();
  ASSERT_FALSE(first.empty());
  const v1::Registered& reg = first.front().registered();
  EXPECT_EQ(reg.heartbeat_interval_ms(), 100u);
  EXPECT_EQ(reg.protocol_version().major(), 1u);
  EXPECT_FALSE(reg.server_version().empty());

  auto submitted = server_->submit(runJob("b1", "key-1"));
  ASSERT_TRUE(submitted.isOk()) << submitted.status().toString();
  EXPECT_FALSE(submitted->deduplicated);
  auto second = server_->submit(runJob("b2", "key-1"));
  ASSERT_TRUE(second.isOk());
  EXPECT_TRUE(second->deduplicated);
  EXPECT_EQ(second->job_id, submitted->job_id);

  auto assign = w->waitAssign();
  ASSERT_TRUE(assign);
  const v1::JobAssign& a = assign->job_assign();
  EXPECT_EQ(a.job_id(), submitted->job_id);
  EXPECT_EQ(a.attempt(), 1u);
  EXPECT_EQ(a.lease_ms(), WorkerServerOptions{}.scheduler.lease.count());
  EXPECT_EQ(a.spec().step_id(), submitted->job_id);
  EXPECT_EQ(a.spec().run().command(0), "echo hi");
  auto assigned =
      listener_.waitAssigned([&](const JobAssigned& x) { return x.job_id == a.job_id(); });
  ASSERT_TRUE(assigned);
  EXPECT_EQ(assigned->worker_id, "w1");
  EXPECT_EQ(assigned->attempt, 1);

  v1::WorkerMessage log;
  log.mutable_job_log()->set_job_id(a.job_id());
  log.mutable_job_log()->set_attempt(1);
  log.mutable_job_log()->add_lines()->set_line("hello");
  log.mutable_job_log()->add_lines()->set_line("world");
  log.mutable_job_log()->set_dropped_lines(3);
  w->send(log);
  auto batch = listener_.waitLog([](const JobLogBatch&) { return true; });
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->job_id, a.job_id());
  EXPECT_EQ(batch->worker_id, "w1");
  EXPECT_EQ(batch->build_ids, (std::vector<std::string>{"b1", "b2"}));
  ASSERT_EQ(batch->lines.size(), 2u);
  EXPECT_EQ(batch->lines[1].line(), "world");
  EXPECT_EQ(batch->dropped_lines, 3u);

  w->sendResult(a.job_id(), 1, v1::STEP_OUTCOME_SUCCEEDED, kDiffA);
  auto done = listener_.waitEvent([](const JobEvent& e) { return true; });
  ASSERT_TRUE(done);
  EXPECT_EQ(done->kind, JobEvent::Kind::kSucceeded);
  EXPECT_EQ(done->job_id, a.job_id());
  EXPECT_EQ(done->worker_id, "w1");
  EXPECT_EQ(done->build_ids, (std::vector<std::string>{"b1", "b2"}));
  EXPECT_EQ(done->result.layer().diff_id(), kDiffA);

  // A duplicate result (resent after a reconnect) is ignored: no second event.
  w->sendResult(a.job_id(), 1, v1::STEP_OUTCOME_SUCCEEDED, kDiffA);
  ASSERT_TRUE(eventually([&] { return server_->serverStats().stale_results == 1; }));
  EXPECT_EQ(listener_.events().size(), 1u);
  SchedulerStats s = server_->stats();
  EXPECT_EQ(s.succeeded, 1u);
  EXPECT_EQ(s.running, 0u);
  std::string text = metrics_.serialize();
  EXPECT_NE(text.find("layerfarm_jobs_total{outcome=\"succeeded\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("layerfarm_jobs_deduplicated_total 1"), std::string::npos) << text;
  EXPECT_NE(text.find("layerfarm_workers 1"), std::string::npos) << text;
  EXPECT_NE(text.find("layerfarm_worker_slots_free 1"), std::string::npos) << text;
}

// (2) No token or a wrong one: HTTP 401 before the upgrade, nothing registered.
TEST_F(WorkerServerTest, RefusesAWrongTokenWith401) {
  startServer();
  TestWorker wrong;
  Status s = wrong.connect(server_->port(), "nope");
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(wrong.httpStatus(), 401);
  TestWorker none;
  EXPECT_FALSE(none.connect(server_->port(), "").isOk());
  EXPECT_EQ(none.httpStatus(), 401);
  TestWorker elsewhere;
  EXPECT_FALSE(elsewhere.connect(server_->port(), "tok", "/v1/other").isOk());
  EXPECT_EQ(elsewhere.httpStatus(), 404);
  // The second accepted token works.
  TestWorker good;
  ASSERT_TRUE(good.connect(server_->port(), "other-tok").isOk());
  auto reply = good.registerAs("w-good");
  ASSERT_TRUE(reply && reply->has_registered());
  EXPECT_EQ(server_->stats().workers, 1u);
  EXPECT_TRUE(hasWorker("w-good"));
  EXPECT_EQ(server_->serverStats().refused_handshakes, 3u);
}

// (3) Bad frames close that one connection (its job goes elsewhere); another worker goes on.
TEST_F(WorkerServerTest, MalformedFramesCloseOnlyThatConnection) {
  startServer();
  auto w1 = worker("w1");
  auto w2 = worker("w2");
  w2->startHeartbeats(50ms);
  auto submitted = server_->submit(runJob("b1", "key-bad"));
  ASSERT_TRUE(submitted.isOk());
  // Ties go to the earliest registered: w1 runs it, then sends a text frame.
  ASSERT_TRUE(w1->waitAssign());
  w1->sendRaw("{\"hello\": 1}", /*text=*/true);
  ASSERT_TRUE(w1->waitFor(isError(v1::Error::CODE_MALFORMED_FRAME)));
  ASSERT_TRUE(w1->waitClosed());
  EXPECT_TRUE(eventually([&] { return !hasWorker("w1"); }));
  auto requeued =
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kRequeued; });
  ASSERT_TRUE(requeued);
  EXPECT_EQ(requeued->worker_id, "w1");

  auto again = w2->waitAssign();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_assign().job_id(), submitted->job_id);
  EXPECT_EQ(again->job_assign().attempt(), 2u);
  w2->sendResult(submitted->job_id, 2, v1::STEP_OUTCOME_SUCCEEDED, kDiffA);
  auto done =
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kSucceeded; });
  ASSERT_TRUE(done);
  EXPECT_EQ(done->worker_id, "w2");

  // Bytes that are not a WorkerMessage, an empty message (unknown kind), a frame before
  // Register: each closes its connection with MALFORMED_FRAME.
  struct Bad {
    std::string bytes;
    bool register_first;
  };
  v1::WorkerMessage heartbeat;
  heartbeat.mutable_heartbeat();
  for (const Bad& bad : {Bad{"\xff\xff\xff garbage", true}, Bad{"", true},
                         Bad{heartbeat.SerializeAsString(), false}}) {
    TestWorker w;
    ASSERT_TRUE(w.connect(server_->port(), "tok").isOk());
    if (bad.register_first) {
      ASSERT_TRUE(w.registerAs("w-bad"));
    }
    w.sendRaw(bad.bytes, false);
    EXPECT_TRUE(w.waitFor(isError(v1::Error::CODE_MALFORMED_FRAME)));
    EXPECT_TRUE(w.waitClosed());
  }
  EXPECT_EQ(server_->serverStats().malformed_frames, 4u);
  EXPECT_TRUE(hasWorker("w2"));
  EXPECT_FALSE(w2->closed());
}

TEST_F(WorkerServerTest, RefusesAnotherProtocolMajor) {
  startServer();
  TestWorker w;
  ASSERT_TRUE(w.connect(server_->port(), "tok").isOk());
  auto reply = w.registerAs("w-future", 1, {}, /*major=*/2);
  ASSERT_TRUE(reply);
  ASSERT_TRUE(reply->has_error());
  EXPECT_EQ(reply->error().code(), v1::Error::CODE_UNSUPPORTED_VERSION);
  EXPECT_TRUE(w.waitClosed());
  EXPECT_EQ(server_->stats().workers, 0u);
}

// (4) A worker that stops heartbeating is lost: its socket closed, its job run elsewhere.
TEST_F(WorkerServerTest, SilentWorkerIsLostAndItsJobReassigned) {
  WorkerServerOptions o = testOptions();
  o.scheduler.heartbeat_timeout = 400ms;
  o.scheduler.lease = 2000ms;
  startServer(o);
  auto silent = worker("silent");
  auto submitted = server_->submit(runJob("b1", "key-lost"));
  ASSERT_TRUE(submitted.isOk());
  ASSERT_TRUE(silent->waitAssign());
  auto alive = worker("alive");
  alive->startHeartbeats(50ms);

  auto requeued =
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kRequeued; });
  ASSERT_TRUE(requeued);
  EXPECT_EQ(requeued->worker_id, "silent");
  EXPECT_EQ(requeued->attempt, 1);
  EXPECT_NE(requeued->reason.find("missed heartbeats"), std::string::npos) << requeued->reason;
  EXPECT_TRUE(silent->waitClosed());
  auto again = alive->waitAssign();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_assign().job_id(), submitted->job_id);
  EXPECT_EQ(again->job_assign().attempt(), 2u);
  auto assigned = listener_.waitAssigned([](const JobAssigned& a) { return a.attempt == 2; });
  ASSERT_TRUE(assigned);
  EXPECT_EQ(assigned->worker_id, "alive");
  EXPECT_EQ(assigned->build_ids, std::vector<std::string>{"b1"});
  alive->sendResult(submitted->job_id, 2, v1::STEP_OUTCOME_SUCCEEDED, kDiffA);
  ASSERT_TRUE(
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kSucceeded; }));
  EXPECT_EQ(server_->serverStats().workers_lost, 1u);
  EXPECT_FALSE(hasWorker("silent"));
  EXPECT_TRUE(hasWorker("alive"));
}

// (5) Cancelling the build sends Cancel to the worker running its job.
TEST_F(WorkerServerTest, CancelBuildSendsCancelToTheWorker) {
  startServer();
  auto w = worker("w1");
  w->startHeartbeats(50ms);
  auto submitted = server_->submit(runJob("b1", "key-cancel"));
  ASSERT_TRUE(submitted.isOk());
  ASSERT_TRUE(w->waitAssign());
  server_->cancelBuild("b1");
  auto cancel = w->waitFor(isCancel);
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->cancel().job_id(), submitted->job_id);
  EXPECT_EQ(cancel->cancel().attempt(), 1u);
  auto cancelled =
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kCancelled; });
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->build_ids, std::vector<std::string>{"b1"});
  // The worker confirms; its slot is free again and the result is not an event.
  w->sendResult(submitted->job_id, 1, v1::STEP_OUTCOME_CANCELLED);
  EXPECT_TRUE(eventually([&] {
    auto ws = server_->workers();
    return ws.size() == 1 && ws[0].running == 0;
  }));
  EXPECT_EQ(listener_.events().size(), 1u);
}

// A JobRejected hands the job back: it goes to another worker without using up an attempt.
TEST_F(WorkerServerTest, RejectedJobGoesToAnotherWorker) {
  WorkerServerOptions o = testOptions();
  o.scheduler.max_attempts = 1;  // a rejection must not count as a failure
  startServer(o);
  auto w1 = worker("w1");
  auto w2 = worker("w2");
  auto submitted = server_->submit(runJob("b1", "key-reject"));
  ASSERT_TRUE(submitted.isOk());
  auto first = w1->waitAssign();
  ASSERT_TRUE(first);
  v1::WorkerMessage rejected;
  rejected.mutable_job_rejected()->set_job_id(submitted->job_id);
  rejected.mutable_job_rejected()->set_attempt(1);
  rejected.mutable_job_rejected()->set_reason("draining");
  w1->send(rejected);
  auto again = w2->waitAssign();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->job_assign().attempt(), 2u);
  auto requeued =
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kRequeued; });
  ASSERT_TRUE(requeued);
  EXPECT_EQ(requeued->worker_id, "w1");
}

// Goodbye and a dropped connection both remove the worker; a job it ran goes elsewhere.
// A worker reconnecting with the same id replaces its old connection and keeps its job.
TEST_F(WorkerServerTest, DisconnectRequeuesAndReconnectKeepsRunningJobs) {
  startServer();
  auto w1 = worker("w1");
  auto submitted = server_->submit(runJob("b1", "key-drop"));
  ASSERT_TRUE(submitted.isOk());
  ASSERT_TRUE(w1->waitAssign());
  w1->dropConnection();
  ASSERT_TRUE(
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kRequeued; }));
  EXPECT_TRUE(eventually([&] { return server_->stats().workers == 0; }));

  // The job waits for a worker; w2 registers, gets attempt 2, reconnects listing it.
  auto w2 = worker("w2");
  auto a2 = w2->waitAssign();
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->job_assign().attempt(), 2u);
  TestWorker w2b;
  ASSERT_TRUE(w2b.connect(server_->port(), "tok").isOk());
  v1::WorkerMessage reg;
  reg.mutable_register_()->mutable_protocol_version()->set_major(1);
  reg.mutable_register_()->set_worker_id("w2");
  reg.mutable_register_()->set_platform("linux/amd64");
  reg.mutable_register_()->set_slots(1);
  v1::JobId* running = reg.mutable_register_()->add_running();
  running->set_job_id(submitted->job_id);
  running->set_attempt(2);
  w2b.send(reg);
  auto reply = w2b.waitFor([](const v1::CoordinatorMessage& m) { return m.has_registered(); });
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->registered().accepted());
  EXPECT_TRUE(w2->waitClosed());  // replaced
  w2b.sendResult(submitted->job_id, 2, v1::STEP_OUTCOME_SUCCEEDED, kDiffA);
  auto done =
      listener_.waitEvent([](const JobEvent& e) { return e.kind == JobEvent::Kind::kSucceeded; });
  ASSERT_TRUE(done);
  EXPECT_EQ(done->attempt, 2);

  v1::WorkerMessage bye;
  bye.mutable_goodbye()->set_reason("drained");
  w2b.send(bye);
  EXPECT_TRUE(eventually([&] { return server_->stats().workers == 0; }));
}

TEST_F(WorkerServerTest, StopClosesConnectionsAndIsIdempotent) {
  startServer();
  auto w = worker("w1");
  server_->stop();
  EXPECT_TRUE(w->waitClosed());
  server_->stop();
  // Submitting after stop still records the job; nothing is sent.
  EXPECT_TRUE(server_->submit(runJob("b1", "key-late")).isOk());
}

TEST(WorkerServerStartTest, ListensOnAHostNameAndRefusesABadAddress) {
  WorkerServerOptions o = testOptions();
  o.listen_address = "localhost";
  WorkerServer by_name(o);
  ASSERT_TRUE(by_name.start().isOk());
  EXPECT_NE(by_name.port(), 0);
  TestWorker w;
  EXPECT_TRUE(w.connect(by_name.port(), "tok").isOk());

  o.listen_address = "no such host.invalid";
  WorkerServer bad(o);
  Status s = bad.start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.toString();

  o.listen_address = "127.0.0.1";
  o.port = by_name.port();
  o.tokens = {};
  WorkerServer taken(o);
  EXPECT_EQ(taken.start().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lf::coordinator::workers_test
