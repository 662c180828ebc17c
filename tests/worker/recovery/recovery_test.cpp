// recoverAfterCrash against real mounts, directories and cgroups left by a simulated crash.
// Needs root; runs in a private mount namespace of the test process so nothing it mounts can
// outlive it, and uses its own cgroup parent.

#include "worker/recovery/recovery.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/support/temp_dir.h"
#include "tests/worker/cgroup/test_child.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
using lf::testing::readFile;
using lf::testing::waitExit;

std::vector<std::string> mountsBelow(const fs::path& root) {
  Result<std::vector<MountInfoEntry>> mounts = parseMountInfo(readFile("/proc/self/mountinfo"));
  EXPECT_TRUE(mounts.isOk()) << mounts.status().toString();
  return mounts.isOk() ? mountPointsBelow(*mounts, root) : std::vector<std::string>{};
}

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root for mounts and cgroups";
    }
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
      GTEST_SKIP() << "cannot create a private mount namespace";
    }
    if (!cgroup::Cgroup::detect(cgroups_).isOk()) {
      GTEST_SKIP() << "no cgroup support under /sys/fs/cgroup";
    }
    // Orphans of the "crashed worker" become our children, so the test can reap them.
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    cgroups_.parent = "layerfarm-test-recovery-" + std::to_string(getpid());
  }
  void TearDown() override {
    if (geteuid() == 0) {
      for (const std::string& point : mountsBelow(state_.path())) {
        umount2(point.c_str(), MNT_DETACH);
      }
      EXPECT_TRUE(cgroup::removeStaleCgroups(cgroups_).isOk());
    }
  }

  // A child that creates a step cgroup holding a sleeping process, then dies without cleaning
  // up, as a crashed worker would. Returns the sleeper's pid.
  pid_t crashWithLiveCgroup() {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    pid_t worker = fork();
    if (worker == 0) {
      close(ready[0]);
      auto cg = cgroup::Cgroup::create(cgroups_, "step-x", {.pids_max = 10});
      pid_t sleeper = fork();
      if (sleeper == 0) {
        execl("/bin/sleep", "sleep", "1000", nullptr);
        _exit(127);
      }
      if (!cg.isOk() || !(*cg)->addProcess(sleeper).isOk()) {
        _exit(1);
      }
      [[maybe_unused]] ssize_t n = write(ready[1], &sleeper, sizeof(sleeper));
      _exit(0);  // no destructors: the cgroup and its process stay behind
    }
    close(ready[1]);
    pid_t sleeper = -1;
    EXPECT_EQ(read(ready[0], &sleeper, sizeof(sleeper)), static_cast<ssize_t>(sizeof(sleeper)));
    close(ready[0]);
    EXPECT_TRUE(waitExit(worker).has_value());
    return sleeper;
  }

  lf::testing::TempDir state_;
  lf::testing::TempDir outside_;  // must survive: bind-mounted in, and a symlink target
  cgroup::CgroupConfig cgroups_;
};

TEST_F(RecoveryTest, LeavesNothingMountedNoStepDirsAndNoCgroups) {
  fs::path step = state_ / "steps" / "x";
  fs::create_directories(step / "tmp");
  fs::create_directories(step / "bind");
  fs::create_directories(step / "work" / "deep");
  lf::testing::writeFile(step / "work" / "deep" / "file", "scratch");
  outside_.write("keep.txt", "precious");
  fs::create_symlink(outside_.path(), state_ / "steps" / "link-out");
  fs::create_directories(state_ / "layers");
  lf::testing::writeFile(state_ / "layers" / "kept", "layer store");

  ASSERT_EQ(mount("tmpfs", (step / "tmp").c_str(), "tmpfs", 0, "size=1m"), 0);
  fs::create_directories(step / "tmp" / "inner");
  ASSERT_EQ(mount("tmpfs", (step / "tmp" / "inner").c_str(), "tmpfs", 0, "size=1m"), 0);
  ASSERT_EQ(mount("tmpfs", (step / "tmp" / "inner").c_str(), "tmpfs", 0, "size=1m"), 0);  // stacked
  ASSERT_EQ(mount(outside_.path().c_str(), (step / "bind").c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(mountsBelow(state_.path()).size(), 4u);
  pid_t sleeper = crashWithLiveCgroup();
  ASSERT_GT(sleeper, 0);

  Result<RecoverySummary> summary = recoverAfterCrash(state_.path(), cgroups_);
  ASSERT_TRUE(summary.isOk()) << summary.status().toString();

  EXPECT_EQ(summary->mounts_unmounted, 4);
  EXPECT_TRUE(mountsBelow(state_.path()).empty());
  EXPECT_EQ(summary->step_dirs_removed, 2);  // x and the symlink itself
  EXPECT_TRUE(fs::exists(state_ / "steps"));
  EXPECT_TRUE(fs::is_empty(state_ / "steps"));
  EXPECT_EQ(readFile(outside_ / "keep.txt"), "precious");  // not deleted through a mount/link
  EXPECT_EQ(readFile(state_ / "layers" / "kept"), "layer store");  // only steps/ is scratch

  EXPECT_EQ(summary->processes_killed, 1);
  EXPECT_GE(summary->cgroups_removed, 1);
  std::optional<int> status = waitExit(sleeper);
  ASSERT_TRUE(status.has_value()) << "the crashed step's process is still running";
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
  Result<cgroup::StaleCgroupSummary> again = cgroup::removeStaleCgroups(cgroups_);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->cgroups_removed, 0);  // nothing was left under the parent
}

TEST_F(RecoveryTest, NothingToDoIsFine) {
  Result<RecoverySummary> summary = recoverAfterCrash(state_ / "missing", cgroups_);
  ASSERT_TRUE(summary.isOk()) << summary.status().toString();
  EXPECT_EQ(summary->mounts_unmounted, 0);
  EXPECT_EQ(summary->step_dirs_removed, 0);
  EXPECT_EQ(summary->cgroups_removed, 0);
  EXPECT_EQ(summary->processes_killed, 0);
}

TEST_F(RecoveryTest, ResolvesASymlinkedStateRoot) {
  fs::path real = state_ / "real";
  fs::create_directories(real / "steps" / "y" / "mnt");
  fs::create_symlink(real, state_ / "alias");
  ASSERT_EQ(mount("tmpfs", (real / "steps" / "y" / "mnt").c_str(), "tmpfs", 0, "size=1m"), 0);
  Result<RecoverySummary> summary = recoverAfterCrash(state_ / "alias", cgroups_);
  ASSERT_TRUE(summary.isOk()) << summary.status().toString();
  EXPECT_EQ(summary->mounts_unmounted, 1);
  EXPECT_EQ(summary->step_dirs_removed, 1);
  EXPECT_TRUE(mountsBelow(state_.path()).empty());
}

}  // namespace
}  // namespace lf::worker
