// Outbox: log merging, backpressure with a bounded wait, dropped-line accounting, and what
// survives the end of a connection.

#include "worker/daemon/outbox.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace lf::worker {
namespace {

namespace v1 = layerfarm::v1;
using namespace std::chrono_literals;

v1::StepLog line(const std::string& text) {
  v1::StepLog l;
  l.set_line(text);
  return l;
}

v1::WorkerMessage result(const std::string& job) {
  v1::WorkerMessage m;
  m.mutable_job_result()->set_job_id(job);
  return m;
}

TEST(OutboxTest, ConsecutiveLinesOfOneJobShareAFrame) {
  std::atomic<int> wakes{0};
  Outbox box(OutboxOptions{}, [&] { ++wakes; });
  EXPECT_TRUE(box.pushLog("a", 1, line("one")));
  EXPECT_TRUE(box.pushLog("a", 1, line("two")));
  EXPECT_TRUE(box.pushLog("b", 1, line("other job")));
  EXPECT_TRUE(box.pushLog("a", 1, line("three")));
  box.push(result("a"));
  EXPECT_EQ(box.size(), 4u);
  EXPECT_EQ(box.pendingResults(), 1u);
  auto first = box.pop();
  ASSERT_TRUE(first && first->has_job_log());
  ASSERT_EQ(first->job_log().lines_size(), 2);
  EXPECT_EQ(first->job_log().lines(1).line(), "two");
  EXPECT_EQ(box.pop()->job_log().job_id(), "b");
  EXPECT_EQ(box.pop()->job_log().lines(0).line(), "three");
  EXPECT_TRUE(box.pop()->has_job_result());
  EXPECT_FALSE(box.pop());
  EXPECT_EQ(box.pendingResults(), 0u);
  EXPECT_EQ(wakes, 4);  // a merged line does not wake the writer again
}

TEST(OutboxTest, FullQueueBlocksThenDropsAndReportsTheCount) {
  OutboxOptions options;
  options.log_queue_bytes = 4096;
  options.log_block = 20ms;
  Outbox box(options, [] {});
  std::string big(3000, 'x');
  EXPECT_TRUE(box.pushLog("a", 1, line(big)));
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(box.pushLog("a", 1, line(big)));  // no room; waits log_block, then drops
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  EXPECT_EQ(box.droppedLines(), 1u);
  ASSERT_TRUE(box.pop());  // room again
  EXPECT_TRUE(box.pushLog("a", 1, line("after")));
  auto next = box.pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->job_log().dropped_lines(), 1u);
  EXPECT_EQ(next->job_log().lines(0).line(), "after");
}

TEST(OutboxTest, ABlockedStepResumesWhenTheWriterCatchesUp) {
  OutboxOptions options;
  options.log_queue_bytes = 4096;
  options.log_block = 20s;
  Outbox box(options, [] {});
  std::string big(3000, 'x');
  ASSERT_TRUE(box.pushLog("a", 1, line(big)));
  std::atomic<bool> pushed{false};
  std::thread step([&] { pushed = box.pushLog("a", 1, line(big)); });
  std::this_thread::sleep_for(10ms);  // give it the chance to block (not needed for correctness)
  EXPECT_FALSE(pushed);
  ASSERT_TRUE(box.pop());
  step.join();
  EXPECT_TRUE(pushed);
  EXPECT_EQ(box.droppedLines(), 0u);
}

TEST(OutboxTest, CloseReleasesBlockedSteps) {
  OutboxOptions options;
  options.log_queue_bytes = 4096;
  options.log_block = 20s;
  Outbox box(options, [] {});
  ASSERT_TRUE(box.pushLog("a", 1, line(std::string(3000, 'x'))));
  std::thread step([&] { EXPECT_FALSE(box.pushLog("a", 1, line(std::string(3000, 'y')))); });
  box.close();
  step.join();
}

TEST(OutboxTest, ConnectionFramesAreDroppedResultsAndLogsKeptAndRequeued) {
  Outbox box(OutboxOptions{}, [] {});
  v1::WorkerMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_free_slots(1);
  box.push(heartbeat);
  ASSERT_TRUE(box.pushLog("a", 1, line("x")));
  box.push(result("a"));
  v1::WorkerMessage bye;
  bye.mutable_goodbye()->set_reason("r");
  box.push(bye);
  box.dropConnectionFrames();
  EXPECT_EQ(box.size(), 2u);
  auto log = box.pop();
  ASSERT_TRUE(log && log->has_job_log());
  auto res = box.pop();
  ASSERT_TRUE(res && res->has_job_result());
  EXPECT_EQ(box.pendingResults(), 0u);
  box.requeueFront(*res);       // its write failed
  box.requeueFront(heartbeat);  // dropped: only results and logs come back
  EXPECT_EQ(box.size(), 1u);
  EXPECT_EQ(box.pendingResults(), 1u);
}

}  // namespace
}  // namespace lf::worker
