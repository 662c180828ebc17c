// Per-step cgroups on the host's cgroup v1 hierarchies (the development machines). Needs root;
// skips on a host without cgroup v1 memory and pids hierarchies. Every test uses its own
// parent, "layerfarm-test-<pid>-<test>", nested under this process's own cgroups, and removes
// it at the end.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/temp_dir.h"
#include "tests/worker/cgroup/test_child.h"
#include "worker/cgroup/cgroup.h"

namespace lf::worker::cgroup {
namespace {

using namespace std::chrono_literals;
using lf::testing::eventually;
using lf::testing::forkPaused;
using lf::testing::readFile;
using lf::testing::waitExit;

constexpr int64_t kMiB = 1024 * 1024;

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root to create cgroups";
    }
    config_.parent = "layerfarm-test-" + std::to_string(getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name();
    Result<CgroupVersion> version = Cgroup::detect(config_);
    if (!version.isOk() || *version != CgroupVersion::kV1) {
      GTEST_SKIP() << "no cgroup v1 hierarchies under /sys/fs/cgroup";
    }
  }
  void TearDown() override {
    if (geteuid() == 0) {
      Result<StaleCgroupSummary> cleaned = removeStaleCgroups(config_);
      EXPECT_TRUE(cleaned.isOk()) << cleaned.status().toString();
    }
  }

  std::unique_ptr<Cgroup> make(const CgroupLimits& limits, const std::string& name = "step") {
    Result<std::unique_ptr<Cgroup>> cg = Cgroup::create(config_, name, limits);
    EXPECT_TRUE(cg.isOk()) << cg.status().toString();
    return cg.isOk() ? std::move(cg).value() : nullptr;
  }

  // The directory of `cg` in the hierarchy whose path contains `controller`.
  static std::filesystem::path dirOf(const Cgroup& cg, const std::string& controller) {
    for (const auto& path : cg.paths()) {
      if (path.string().find("/" + controller + "/") != std::string::npos) {
        return path;
      }
    }
    return {};
  }

  CgroupConfig config_;
};

TEST_F(CgroupV1Test, LimitsAreWrittenToTheControllerFiles) {
  auto cg = make({.memory_bytes = 64 * kMiB, .pids_max = 20, .cpu_millis = 500});
  ASSERT_TRUE(cg);
  EXPECT_EQ(cg->version(), CgroupVersion::kV1);
  auto memory = dirOf(*cg, "memory");
  auto pids = dirOf(*cg, "pids");
  auto cpu = dirOf(*cg, "cpu");
  ASSERT_FALSE(memory.empty());
  ASSERT_FALSE(pids.empty());
  ASSERT_FALSE(cpu.empty());
  EXPECT_EQ(readFile(memory / "memory.limit_in_bytes"), std::to_string(64 * kMiB) + "\n");
  if (std::filesystem::exists(memory / "memory.memsw.limit_in_bytes")) {
    EXPECT_EQ(readFile(memory / "memory.memsw.limit_in_bytes"), std::to_string(64 * kMiB) + "\n");
  }
  EXPECT_EQ(readFile(pids / "pids.max"), "20\n");
  EXPECT_EQ(readFile(cpu / "cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(readFile(cpu / "cpu.cfs_quota_us"), "50000\n");
  // Nested below this process's own cgroup, under the test's parent.
  EXPECT_NE(memory.string().find(config_.parent + "/step"), std::string::npos);

  auto paths = cg->paths();
  ASSERT_TRUE(cg->destroy().isOk());
  for (const auto& path : paths) {
    EXPECT_FALSE(std::filesystem::exists(path)) << path;
  }
  EXPECT_TRUE(cg->destroy().isOk());  // idempotent
}

TEST_F(CgroupV1Test, RejectsBadNamesLimitsAndDuplicates) {
  auto bad = Cgroup::create(config_, "a/b", {});
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Cgroup::create(config_, "..", {}).isOk());
  EXPECT_FALSE(Cgroup::create(config_, "x", {.memory_bytes = -1}).isOk());
  EXPECT_FALSE(Cgroup::create(config_, "x", {.cpu_millis = 5}).isOk());

  auto cg = make({});
  ASSERT_TRUE(cg);
  auto again = Cgroup::create(config_, "step", {});
  ASSERT_FALSE(again.isOk());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(std::filesystem::exists(cg->paths().front()));  // the failed create left it alone
}

TEST_F(CgroupV1Test, PrepareWorkerCgroupsChangesNothingOnV1) {
  // v1 has no no-internal-process rule, and the worker's own cgroup differs per hierarchy.
  std::string before = readFile("/proc/self/cgroup");
  Result<CgroupConfig> prepared = prepareWorkerCgroups(config_);
  ASSERT_TRUE(prepared.isOk()) << prepared.status().toString();
  EXPECT_EQ(prepared->parent, config_.parent);
  EXPECT_TRUE(prepared->nest_under_self);
  EXPECT_EQ(readFile("/proc/self/cgroup"), before);
}

TEST_F(CgroupV1Test, AddProcessErrorNamesTheFile) {
  auto cg = make({});
  ASSERT_TRUE(cg);
  Status st = cg->addProcess(999999999);
  ASSERT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("cgroup v1: write "), std::string::npos) << st.toString();
  EXPECT_NE(st.message().find("/step/cgroup.procs"), std::string::npos) << st.toString();
}

TEST_F(CgroupV1Test, MemoryHogIsOomKilledAndReported) {
  auto cg = make({.memory_bytes = 32 * kMiB});
  ASSERT_TRUE(cg);
  auto child = forkPaused([] {
    // Touch 256 MiB page by page: far over the 32 MiB limit (and memsw, so no swapping out).
    size_t size = 256 * kMiB;
    void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      _exit(2);
    }
    auto* bytes = static_cast<volatile char*>(mem);
    for (size_t i = 0; i < size; i += 4096) {
      bytes[i] = 1;
    }
    _exit(3);  // reached only if the limit did not hold
  });
  ASSERT_GT(child.pid, 0);
  ASSERT_TRUE(cg->addProcess(child.pid).isOk());
  child.release();
  std::optional<int> status = waitExit(child.pid, 30s);
  ASSERT_TRUE(status.has_value()) << "the memory hog was not stopped";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "status " << *status;

  Result<CgroupEvents> events = cg->events();
  ASSERT_TRUE(events.isOk()) << events.status().toString();
  EXPECT_TRUE(events->oom_killed);
  EXPECT_FALSE(events->pids_limit_hit);
  EXPECT_GT(events->memory_peak_bytes, 16u * kMiB);
  EXPECT_LE(events->memory_peak_bytes, 32u * kMiB);
}

TEST_F(CgroupV1Test, NormalExitReportsNoLimitAndSomeCpu) {
  auto cg = make({.memory_bytes = 64 * kMiB, .pids_max = 50, .cpu_millis = 1000});
  ASSERT_TRUE(cg);
  auto child = forkPaused([] {
    execl("/bin/sh", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 7",
          nullptr);
    _exit(127);
  });
  ASSERT_TRUE(cg->addProcess(child.pid).isOk());
  child.release();
  std::optional<int> status = waitExit(child.pid, 30s);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 7);
  Result<CgroupEvents> events = cg->events();
  ASSERT_TRUE(events.isOk()) << events.status().toString();
  EXPECT_FALSE(events->oom_killed);
  EXPECT_FALSE(events->pids_limit_hit);
  EXPECT_GT(events->cpu_usage_ns, 0u);
  EXPECT_GT(events->memory_peak_bytes, 0u);
}

TEST_F(CgroupV1Test, ForkBombHitsPidsLimitAndKillAllEndsIt) {
  // Half a core, so the bomb's retry loops do not starve the machine meanwhile.
  auto cg = make({.pids_max = 20, .cpu_millis = 500});
  ASSERT_TRUE(cg);
  auto child = forkPaused([] {
    for (;;) {
      fork();  // every process keeps forking, and retries when the limit refuses
    }
  });
  ASSERT_TRUE(cg->addProcess(child.pid).isOk());
  child.release();
  ASSERT_TRUE(eventually([&] {
    Result<CgroupEvents> events = cg->events();
    return events.isOk() && events->pids_limit_hit;
  }));
  Result<std::vector<pid_t>> procs = cg->processes();
  ASSERT_TRUE(procs.isOk());
  EXPECT_LE(procs->size(), 20u);
  EXPECT_GT(procs->size(), 1u);

  auto start = std::chrono::steady_clock::now();
  Status killed = cg->killAll(5s);
  EXPECT_TRUE(killed.isOk()) << killed.toString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(cg->processes()->empty());
  std::optional<int> status = waitExit(child.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
}

TEST_F(CgroupV1Test, KillAllKillsTheWholeTree) {
  auto cg = make({});
  ASSERT_TRUE(cg);
  auto child = forkPaused([] {
    execl("/bin/sh", "sh", "-c", "sleep 1000 & sleep 1000 & wait", nullptr);
    _exit(127);
  });
  ASSERT_TRUE(cg->addProcess(child.pid).isOk());
  child.release();
  ASSERT_TRUE(eventually([&] {
    Result<std::vector<pid_t>> procs = cg->processes();
    return procs.isOk() && procs->size() == 3;
  }));
  std::vector<pid_t> members = *cg->processes();
  ASSERT_TRUE(cg->killAll(5s).isOk());
  EXPECT_TRUE(cg->processes()->empty());
  ASSERT_TRUE(waitExit(child.pid).has_value());
  for (pid_t pid : members) {
    // Gone or a zombie waiting for its (reparented) parent: either way, not running.
    std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    EXPECT_TRUE(stat.empty() || stat.find(") Z ") != std::string::npos) << stat;
  }
}

TEST_F(CgroupV1Test, DestroyKillsWhatIsLeftAndRemovesTheDirectories) {
  auto cg = make({.memory_bytes = 64 * kMiB});
  ASSERT_TRUE(cg);
  auto child = forkPaused([] {
    execl("/bin/sh", "sh", "-c", "sleep 1000", nullptr);
    _exit(127);
  });
  ASSERT_TRUE(cg->addProcess(child.pid).isOk());
  child.release();
  auto paths = cg->paths();
  ASSERT_TRUE(cg->destroy().isOk());
  ASSERT_TRUE(waitExit(child.pid).has_value());
  for (const auto& path : paths) {
    EXPECT_FALSE(std::filesystem::exists(path)) << path;
  }
}

TEST_F(CgroupV1Test, RemoveStaleCgroupsAfterACrash) {
  // A "worker" child creates two step cgroups with a sleeping process in each and dies without
  // cleaning up, as a crash would.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t worker = fork();
  if (worker == 0) {
    close(ready[0]);
    for (const char* name : {"step-a", "step-b"}) {
      auto cg = Cgroup::create(config_, name, {.memory_bytes = 64 * kMiB, .pids_max = 10});
      if (!cg.isOk()) {
        _exit(1);
      }
      pid_t sleeper = fork();
      if (sleeper == 0) {
        execl("/bin/sleep", "sleep", "1000", nullptr);
        _exit(127);
      }
      if (!(*cg)->addProcess(sleeper).isOk()) {
        _exit(2);
      }
      cg->release();  // leak on purpose: the "crash" leaves the cgroup behind
    }
    [[maybe_unused]] ssize_t n = write(ready[1], "r", 1);
    _exit(0);  // no destructors, like a crash
  }
  close(ready[1]);
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1) << "the crashing worker failed to set up";
  close(ready[0]);
  ASSERT_TRUE(waitExit(worker).has_value());

  Result<StaleCgroupSummary> summary = removeStaleCgroups(config_);
  ASSERT_TRUE(summary.isOk()) << summary.status().toString();
  EXPECT_EQ(summary->processes_killed, 2);
  EXPECT_GE(summary->cgroups_removed, 2 * 2);  // two steps, at least memory and pids each
  for (const char* hierarchy : {"memory", "pids"}) {
    Result<std::string> self = parseProcCgroup(readFile("/proc/self/cgroup"), hierarchy);
    ASSERT_TRUE(self.isOk());
    auto parent = std::filesystem::path("/sys/fs/cgroup") / hierarchy /
                  std::filesystem::path(*self).relative_path() / config_.parent;
    EXPECT_FALSE(std::filesystem::exists(parent)) << parent;
  }
  // Nothing of the parent is left in any hierarchy, and a second run has nothing to do.
  Result<StaleCgroupSummary> again = removeStaleCgroups(config_);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->cgroups_removed, 0);
  EXPECT_EQ(again->processes_killed, 0);
}

}  // namespace
}  // namespace lf::worker::cgroup
