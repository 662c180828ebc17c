// Per-step cgroups on a cgroup v2 hierarchy. On a hybrid host (the development machines) the
// memory, pids and cpu controllers are bound to v1, so this mounts the unified hierarchy on a
// temp dir, in a private mount namespace of this test process, and tests what v2 offers
// without controllers: detection, membership, cgroup.kill and the freezer fallback, nested
// cgroups, crash leftovers, and the clear error when a limit's controller is missing. Needs
// root; skips where cgroup2 cannot be mounted.

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "tests/support/temp_dir.h"
#include "tests/worker/cgroup/test_child.h"
#include "worker/cgroup/cgroup.h"

namespace lf::worker::cgroup {
namespace {

using namespace std::chrono_literals;
using lf::testing::eventually;
using lf::testing::forkPaused;
using lf::testing::PausedChild;
using lf::testing::readFile;
using lf::testing::waitExit;
namespace fs = std::filesystem;

class CgroupV2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skip_reason_ = "needs root to mount cgroup2";
      return;
    }
    // A private mount namespace: the cgroup2 mount disappears with this process even if a
    // test aborts.
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
      skip_reason_ = "cannot create a private mount namespace";
      return;
    }
    mount_dir_ = new lf::testing::TempDir();
    if (mount("none", mount_dir_->path().c_str(), "cgroup2", 0, nullptr) != 0) {
      skip_reason_ = "cannot mount cgroup2 (kernel without cgroup v2?)";
      return;
    }
    mounted_ = true;
  }
  static void TearDownTestSuite() {
    if (mounted_) {
      EXPECT_EQ(umount2(mount_dir_->path().c_str(), MNT_DETACH), 0);
    }
    delete mount_dir_;
    mount_dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_.empty()) {
      GTEST_SKIP() << skip_reason_;
    }
    config_.mount_root = mount_dir_->path();
    config_.parent = "layerfarm-test-" + std::to_string(getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override {
    if (mounted_) {
      Result<StaleCgroupSummary> cleaned = removeStaleCgroups(config_);
      EXPECT_TRUE(cleaned.isOk()) << cleaned.status().toString();
    }
  }

  std::unique_ptr<Cgroup> make(const std::string& name = "step") {
    Result<std::unique_ptr<Cgroup>> cg = Cgroup::create(config_, name, {});
    EXPECT_TRUE(cg.isOk()) << cg.status().toString();
    return cg.isOk() ? std::move(cg).value() : nullptr;
  }

  // A shell with two background sleeps: three processes, in the cgroup once released.
  static PausedChild startTree() {
    return forkPaused([] {
      execl("/bin/sh", "sh", "-c", "sleep 1000 & sleep 1000 & wait", nullptr);
      _exit(127);
    });
  }

  void killTreeTest(bool use_cgroup_kill) {
    config_.use_cgroup_kill = use_cgroup_kill;
    auto cg = make();
    ASSERT_TRUE(cg);
    if (use_cgroup_kill && !std::filesystem::exists(cg->paths().front() / "cgroup.kill")) {
      GTEST_SKIP() << "no cgroup.kill (Linux < 5.14)";
    }
    PausedChild child = startTree();
    ASSERT_TRUE(cg->addProcess(child.pid).isOk());
    child.release();
    ASSERT_TRUE(eventually([&] {
      Result<std::vector<pid_t>> procs = cg->processes();
      return procs.isOk() && procs->size() == 3;
    }));
    Status killed = cg->killAll(5s);
    EXPECT_TRUE(killed.isOk()) << killed.toString();
    EXPECT_TRUE(cg->processes()->empty());
    std::optional<int> status = waitExit(child.pid);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
    // Not left frozen by the fallback path.
    EXPECT_NE(readFile(cg->paths().front() / "cgroup.events").find("frozen 0"), std::string::npos);
    auto path = cg->paths().front();
    ASSERT_TRUE(cg->destroy().isOk());
    EXPECT_FALSE(std::filesystem::exists(path));
  }

  static inline std::string skip_reason_;
  static inline lf::testing::TempDir* mount_dir_ = nullptr;
  static inline bool mounted_ = false;
  CgroupConfig config_;
};

TEST_F(CgroupV2Test, DetectsV2AndRejectsAPlainDirectory) {
  Result<CgroupVersion> version = Cgroup::detect(config_);
  ASSERT_TRUE(version.isOk()) << version.status().toString();
  EXPECT_EQ(*version, CgroupVersion::kV2);

  lf::testing::TempDir plain;
  Result<CgroupVersion> none = Cgroup::detect({.mount_root = plain.path()});
  ASSERT_FALSE(none.isOk());
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find(plain.path().string()), std::string::npos);
}

TEST_F(CgroupV2Test, CreateAddAndEventsWithoutControllers) {
  auto cg = make();
  ASSERT_TRUE(cg);
  EXPECT_EQ(cg->version(), CgroupVersion::kV2);
  ASSERT_EQ(cg->paths().size(), 1u);
  EXPECT_EQ(cg->paths().front(), mount_dir_->path() / config_.parent / "step");
  PausedChild child = forkPaused([] { _exit(0); });
  ASSERT_TRUE(cg->addProcess(child.pid).isOk());
  EXPECT_EQ(*cg->processes(), std::vector<pid_t>{child.pid});
  child.release();
  ASSERT_TRUE(waitExit(child.pid).has_value());
  Result<CgroupEvents> events = cg->events();
  ASSERT_TRUE(events.isOk()) << events.status().toString();
  EXPECT_FALSE(events->oom_killed);
  EXPECT_FALSE(events->pids_limit_hit);
}

TEST_F(CgroupV2Test, LimitWithoutItsControllerIsAClearError) {
  std::string available = readFile(mount_dir_->path() / "cgroup.controllers");
  if (available.find("memory") != std::string::npos) {
    GTEST_SKIP() << "memory is a v2 controller on this host; nothing to refuse";
  }
  Result<std::unique_ptr<Cgroup>> cg = Cgroup::create(config_, "step", {.memory_bytes = 1 << 26});
  ASSERT_FALSE(cg.isOk());
  EXPECT_EQ(cg.status().code(), StatusCode::kFailedPrecondition);
  const std::string& message = cg.status().message();
  EXPECT_NE(message.find("cgroup v2: controller memory"), std::string::npos) << message;
  EXPECT_NE(message.find("cgroup.controllers"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(mount_dir_->path() / config_.parent / "step"));
}

TEST_F(CgroupV2Test, KillAllWithCgroupKill) { killTreeTest(/*use_cgroup_kill=*/true); }

TEST_F(CgroupV2Test, KillAllWithTheFreezerFallback) { killTreeTest(/*use_cgroup_kill=*/false); }

TEST_F(CgroupV2Test, KillAllReachesNestedCgroups) {
  for (bool use_cgroup_kill : {true, false}) {
    config_.use_cgroup_kill = use_cgroup_kill;
    auto cg = make(use_cgroup_kill ? "kill" : "freeze");
    ASSERT_TRUE(cg);
    // A step that made its own sub-cgroup (possible with a cgroup namespace).
    auto nested = cg->paths().front() / "inner";
    ASSERT_TRUE(std::filesystem::create_directory(nested));
    PausedChild child = startTree();
    ASSERT_TRUE(lf::testing::writeFile(nested / "cgroup.procs", std::to_string(child.pid)));
    child.release();
    ASSERT_TRUE(eventually([&] {
      std::string procs = readFile(nested / "cgroup.procs");
      return std::count(procs.begin(), procs.end(), '\n') == 3;
    }));
    auto path = cg->paths().front();
    Status destroyed = cg->destroy();
    EXPECT_TRUE(destroyed.isOk()) << destroyed.toString();
    ASSERT_TRUE(waitExit(child.pid).has_value());
    EXPECT_FALSE(std::filesystem::exists(path));
  }
}

TEST_F(CgroupV2Test, RemoveStaleCgroupsAfterACrash) {
  PausedChild sleeper = forkPaused([] {
    execl("/bin/sleep", "sleep", "1000", nullptr);
    _exit(127);
  });
  // The "crashed worker's" leftovers: a step cgroup with a live process and a nested one.
  auto step = mount_dir_->path() / config_.parent / "step-1";
  ASSERT_TRUE(std::filesystem::create_directories(step / "inner"));
  ASSERT_TRUE(lf::testing::writeFile(step / "inner" / "cgroup.procs", std::to_string(sleeper.pid)));
  sleeper.release();

  Result<StaleCgroupSummary> summary = removeStaleCgroups(config_);
  ASSERT_TRUE(summary.isOk()) << summary.status().toString();
  EXPECT_EQ(summary->processes_killed, 1);
  EXPECT_EQ(summary->cgroups_removed, 2);
  EXPECT_FALSE(std::filesystem::exists(mount_dir_->path() / config_.parent));
  std::optional<int> status = waitExit(sleeper.pid);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
}

TEST_F(CgroupV2Test, PrepareWorkerCgroupsEmptiesTheWorkersOwnCgroup) {
  // Pretend this test process is a worker in a cgroup of its own, with a helper process beside
  // it, as in a Kubernetes container.
  Result<std::string> original = parseProcCgroup(readFile("/proc/self/cgroup"), "");
  ASSERT_TRUE(original.isOk());
  fs::path own = mount_dir_->path() / ("own-" + std::to_string(getpid()));
  ASSERT_TRUE(fs::create_directory(own));
  PausedChild helper = forkPaused([] { pause(); });
  ASSERT_TRUE(lf::testing::writeFile(own / "cgroup.procs", std::to_string(helper.pid)));
  ASSERT_TRUE(lf::testing::writeFile(own / "cgroup.procs", std::to_string(getpid())));
  auto restore = [&] {
    // Back to where this process was; then clean up.
    lf::testing::writeFile(
        mount_dir_->path() / fs::path(*original).relative_path() / "cgroup.procs",
        std::to_string(getpid()));
    kill(helper.pid, SIGKILL);
    waitExit(helper.pid);
    rmdir((own / "supervisor").c_str());
    rmdir(own.c_str());
  };

  Result<CgroupConfig> pinned = prepareWorkerCgroups(config_);
  if (!pinned.isOk()) {
    restore();
    FAIL() << pinned.status().toString();
  }
  std::string own_name = own.filename().string();
  EXPECT_FALSE(pinned->nest_under_self);
  EXPECT_EQ(pinned->parent, own_name + "/" + config_.parent);
  EXPECT_EQ(readFile(own / "cgroup.procs"), "");  // both processes moved out
  std::string supervisor = readFile(own / "supervisor" / "cgroup.procs");
  EXPECT_NE(supervisor.find(std::to_string(getpid())), std::string::npos);
  EXPECT_NE(supervisor.find(std::to_string(helper.pid)), std::string::npos);
  EXPECT_EQ(
      readFile("/proc/self/cgroup").find("0::/" + own_name + "/supervisor\n") != std::string::npos,
      true);

  // A restarted worker already in the leaf pins to the same place.
  Result<CgroupConfig> again = prepareWorkerCgroups(config_);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->parent, pinned->parent);

  // Steps go under the worker's own cgroup, beside the supervisor leaf.
  {
    Result<std::unique_ptr<Cgroup>> cg = Cgroup::create(*pinned, "step", {});
    ASSERT_TRUE(cg.isOk()) << cg.status().toString();
    EXPECT_EQ((*cg)->paths().front(), own / config_.parent / "step");
  }
  EXPECT_TRUE(removeStaleCgroups(*pinned).isOk());
  restore();
  EXPECT_FALSE(fs::exists(own));
}

TEST_F(CgroupV2Test, PrepareWorkerCgroupsLeavesTheRootCgroupAlone) {
  // In the root cgroup of the hierarchy nothing is moved.
  if (readFile("/proc/self/cgroup").find("0::/\n") == std::string::npos) {
    GTEST_SKIP() << "this process is not in the cgroup v2 root";
  }
  Result<CgroupConfig> pinned = prepareWorkerCgroups(config_);
  ASSERT_TRUE(pinned.isOk()) << pinned.status().toString();
  EXPECT_EQ(pinned->parent, config_.parent);
  EXPECT_FALSE(fs::exists(mount_dir_->path() / "supervisor"));
  EXPECT_FALSE(prepareWorkerCgroups(config_, "a/b").isOk());
}

}  // namespace
}  // namespace lf::worker::cgroup
