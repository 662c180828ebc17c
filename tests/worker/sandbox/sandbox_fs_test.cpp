// The sandbox's filesystems: what reaches the upper dir, layers, RUN mounts, /dev, /proc, /sys,
// the classic overlay path and withMountedOverlays. Need root.

#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/worker/sandbox/sandbox_fixture.h"
#include "worker/sandbox/rootfs.h"

namespace lf::worker::sandbox {
namespace {

using namespace testing_support;  // NOLINT(google-build-using-namespace)
namespace fs = std::filesystem;
using lf::testing::TempDir;

TEST_F(SandboxTest, TrueExitsZeroAndLeavesTheUpperDirEmpty) {
  Outcome r = run({"true"});
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_TRUE(r.result->exited);
  EXPECT_EQ(r.result->exit_code, 0);
  EXPECT_EQ(r.result->signal, 0);
  EXPECT_FALSE(r.result->timed_out);
  EXPECT_GE(r.result->setup_ms, 0);
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, ReadingTheEtcFilesLeavesTheUpperDirEmpty) {
  sh("cat /etc/hosts /etc/resolv.conf /etc/hostname >/dev/null && ls /proc /sys /dev >/dev/null");
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, WritesLandInTheUpperDirAndNothingElse) {
  sh("echo hello > /tmp/x");
  EXPECT_EQ(listTree(root_.upper_dir), (std::set<std::string>{"tmp", "tmp/x"}));
  EXPECT_EQ(testing::readFile(root_.upper_dir / "tmp/x"), "hello\n");
}

TEST_F(SandboxTest, CopiedUpDirKeepsTheImageMetadata) {
  // /etc is shadowed by the skeleton layer; a copy-up must still carry the image's mode.
  fs::permissions(*base_dir_ / "busybox/etc", fs::perms(0750));
  sh("echo x > /etc/newfile");
  fs::permissions(*base_dir_ / "busybox/etc", fs::perms(0755));
  struct stat st;
  ASSERT_EQ(lstat((root_.upper_dir / "etc").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(listTree(root_.upper_dir), (std::set<std::string>{"etc", "etc/newfile"}));
}

TEST_F(SandboxTest, UpperDirIsPlainWithoutMetacopyOrRedirects) {
  // chown would be a metadata-only copy-up with metacopy=on, a directory rename a redirect with
  // redirect_dir=on: the layer writer supports neither.
  sh("chown 65534 /bin/busybox && mv /bin /bin2 && echo x > /bin2/newfile");
  struct stat st;
  ASSERT_EQ(lstat((root_.upper_dir / "bin2/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(fs::file_size(*base_dir_ / "busybox/bin/busybox")));
  EXPECT_GT(st.st_blocks, 0);
  for (const auto& entry : fs::recursive_directory_iterator(root_.upper_dir)) {
    char names[4096];
    ssize_t n = llistxattr(entry.path().c_str(), names, sizeof names);
    ASSERT_GE(n, 0) << entry.path();
    std::string all(names, n);
    EXPECT_EQ(all.find("metacopy"), std::string::npos) << entry.path();
    EXPECT_EQ(all.find("redirect"), std::string::npos) << entry.path();
  }
  // The renamed dir was copied: /bin2 holds real files, /bin is a whiteout.
  EXPECT_TRUE(fs::is_symlink(root_.upper_dir / "bin2/sh"));
  ASSERT_EQ(lstat((root_.upper_dir / "bin").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(SandboxTest, DeletingABaseFileMakesAWhiteout) {
  sh("rm /etc/group");
  struct stat st;
  ASSERT_EQ(lstat((root_.upper_dir / "etc/group").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
}

TEST_F(SandboxTest, LayersStackTopLast) {
  // lower 2 (on top) deletes /etc/group through a whiteout and replaces /etc/passwd.
  fs::path top = dir_ / "top";
  fs::create_directories(top / "etc");
  ASSERT_EQ(mknod((top / "etc/group").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  testing::writeFile(top / "etc/motd", "from the top layer\n");
  root_.lower_dirs.push_back(top);
  Outcome r = sh("test ! -e /etc/group && cat /etc/motd && test -e /etc/passwd");
  EXPECT_EQ(r.out, "from the top layer\n");
}

TEST_F(SandboxTest, ScratchRootWorks) {
  root_.lower_dirs.clear();
  // No shell in scratch: a static busybox bind-mounted from the host image runs it.
  ProcessSpec proc;
  proc.mounts.push_back({MountSpec::kBind, *base_dir_ / "busybox/bin", "/bin", true, 0});
  Outcome r = run({"/bin/busybox", "ls", "/"}, proc);
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_EQ(r.result->exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "bin\ndev\netc\nproc\nsys\n");
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, WritingEtcHostsDoesNotReachTheLayer) {
  sh("echo '1.2.3.4 extra' >> /etc/hosts && grep -q extra /etc/hosts");
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, ProcAndSysAreProtected) {
  Outcome r =
      sh("echo 1 > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?; "
         "touch /sys/x 2>/dev/null; echo sys=$?; cat /proc/kcore | wc -c");
  EXPECT_EQ(r.out, "sysrq=1\nsys=1\n0\n");
}

TEST_F(SandboxTest, CgroupFilesystemIsVisibleReadOnlyThroughItsNamespace) {
  std::string probe = fs::exists("/sys/fs/cgroup/cgroup.controllers")
                          ? "/sys/fs/cgroup/cgroup.controllers"
                          : "/sys/fs/cgroup/memory/memory.limit_in_bytes";
  if (!fs::exists(probe)) {
    GTEST_SKIP() << "no cgroup filesystem on this host";
  }
  Outcome r = sh("test -f " + probe +
                 " && echo found; mkdir /sys/fs/cgroup/x 2>/dev/null || echo read-only; "
                 "grep -v ':/$' /proc/self/cgroup || echo all-at-root");
  EXPECT_EQ(r.out, "found\nread-only\nall-at-root\n");
}

TEST_F(SandboxTest, DevHasTheUsualNodes) {
  Outcome r =
      sh("ls /dev | tr '\\n' ' '; head -c 4 /dev/zero | wc -c; echo x > /dev/null; "
         "test -c /dev/urandom && test -L /dev/ptmx && test -d /dev/pts && test -d /dev/shm && "
         "echo ok");
  EXPECT_EQ(r.out,
            "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero 4\nok\n");
}

TEST_F(SandboxTest, RunMountsDoNotReachTheLayer) {
  TempDir cache;
  ProcessSpec proc;
  proc.mounts.push_back({MountSpec::kTmpfs, "", "/scratch/tmp", false, 1 << 20});
  proc.mounts.push_back({MountSpec::kBind, cache.path(), "/var/cache/app", false, 0});
  proc.mounts.push_back({MountSpec::kBind, cache.path(), "/ro", true, 0});
  sh("echo a > /scratch/tmp/a && echo b > /var/cache/app/b && ! touch /ro/c 2>/dev/null", proc);
  EXPECT_EQ(testing::readFile(cache / "b"), "b\n");
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, MountTargetsAreValidated) {
  ProcessSpec proc;
  proc.mounts.push_back({MountSpec::kTmpfs, "", "relative", false, 0});
  EXPECT_EQ(run({"true"}, proc).result.status().code(), StatusCode::kInvalidArgument);
  proc.mounts = {{MountSpec::kTmpfs, "", "/a/../b", false, 0}};
  EXPECT_EQ(run({"true"}, proc).result.status().code(), StatusCode::kInvalidArgument);
  for (const char* reserved : {"/proc/x", "/", "/dev", "/etc/hosts"}) {
    proc.mounts = {{MountSpec::kTmpfs, "", reserved, false, 0}};
    EXPECT_EQ(run({"true"}, proc).result.status().code(), StatusCode::kInvalidArgument) << reserved;
  }
  proc.mounts = {{MountSpec::kTmpfs, "", "/cache", false, 0},
                 {MountSpec::kTmpfs, "", "/cache/sub", false, 0}};
  EXPECT_EQ(run({"true"}, proc).result.status().code(), StatusCode::kInvalidArgument);
  proc.mounts = {{MountSpec::kTmpfs, "", "/devices", false, 0},
                 {MountSpec::kTmpfs, "", "/cache2", false, 0}};
  EXPECT_TRUE(run({"true"}, proc).result.isOk());
}

TEST_F(SandboxTest, BrokenRootIsAnErrorNamingTheProblem) {
  root_.lower_dirs = {dir_ / "does-not-exist"};
  Outcome r = run({"true"});
  ASSERT_FALSE(r.result.isOk());
  EXPECT_NE(r.result.status().message().find("does-not-exist"), std::string::npos)
      << r.result.status().toString();
}

// The classic mount(2) path kernels before 6.8 take, with a chain too long for a page of options.
TEST_F(SandboxTest, ClassicOverlayMountTakesLongChains) {
  std::vector<std::string> lowers_top_first;
  for (int i = 0; i < 150; ++i) {
    fs::path layer =
        dir_ / ("a-layer-directory-with-a-long-name-to-overflow-a-page-" + std::to_string(i));
    fs::create_directories(layer);
    testing::writeFile(layer / ("file" + std::to_string(i)), "x");
    testing::writeFile(layer / "shared", std::to_string(i));
    lowers_top_first.insert(lowers_top_first.begin(), layer.string());
  }
  fs::path target = dir_ / "merged";
  fs::create_directories(target);
  int result_pipe[2];
  ASSERT_EQ(pipe(result_pipe), 0);
  pid_t child = fork();
  if (child == 0) {
    std::string answer;
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
      answer = "unshare failed";
    } else {
      Status status = mountOverlayClassic(lowers_top_first, root_.upper_dir.string(),
                                          root_.work_dir.string(), target.string());
      if (!status.isOk()) {
        answer = status.toString();
      } else {
        testing::writeFile(target / "new", "n");
        answer = std::to_string(
                     std::distance(fs::directory_iterator(target), fs::directory_iterator())) +
                 " " + testing::readFile(target / "shared");
      }
    }
    (void)!write(result_pipe[1], answer.data(), answer.size());
    _exit(0);
  }
  close(result_pipe[1]);
  char buf[4096];
  ssize_t n = read(result_pipe[0], buf, sizeof buf);
  close(result_pipe[0]);
  waitpid(child, nullptr, 0);
  // 150 files, "shared" and "new"; "shared" from the top-most layer.
  EXPECT_EQ(std::string(buf, std::max<ssize_t>(n, 0)), "152 149");
  EXPECT_EQ(listTree(root_.upper_dir), (std::set<std::string>{"new"}));
}

class MountedOverlaysTest : public SandboxTest {};

TEST_F(MountedOverlaysTest, ReadWriteAndReadOnlyRootsAreMountedAndCleanedUp) {
  fs::path scratch = dir_ / "scratch";
  fs::create_directories(scratch);
  fs::path top = dir_ / "top";
  fs::create_directories(top / "etc");
  testing::writeFile(top / "etc/motd", "top\n");
  std::vector<MountedOverlay> overlays(3);
  overlays[0].root = root_;  // read-write on busybox
  overlays[1].root.lower_dirs = {*base_dir_ / "busybox", top};
  overlays[1].read_only = true;
  overlays[2].root.lower_dirs = {top};
  overlays[2].read_only = true;
  Status status =
      withMountedOverlays(overlays, scratch, [&](const std::vector<fs::path>& paths) -> Status {
        if (paths.size() != 3) {
          return internalError("want 3 paths");
        }
        if (!fs::exists(paths[0] / "bin/busybox") || !fs::exists(paths[1] / "etc/motd") ||
            !fs::exists(paths[1] / "bin/sh") || !fs::exists(paths[2] / "etc/motd")) {
          return internalError("layer content missing");
        }
        if (!testing::writeFile(paths[0] / "copied", "data")) {
          return internalError("cannot write to the read-write root");
        }
        if (testing::writeFile(paths[1] / "nope", "x") ||
            testing::writeFile(paths[2] / "nope", "x")) {
          return internalError("a read-only root was writable");
        }
        return Status::ok();
      });
  EXPECT_TRUE(status.isOk()) << status.toString();
  EXPECT_EQ(listTree(root_.upper_dir), (std::set<std::string>{"copied"}));
  EXPECT_FALSE(fs::exists(top / "nope"));
}

TEST_F(MountedOverlaysTest, TheCallbacksErrorIsReturned) {
  fs::path scratch = dir_ / "scratch";
  fs::create_directories(scratch);
  std::vector<MountedOverlay> overlays(1);
  overlays[0].root = root_;
  Status status = withMountedOverlays(overlays, scratch, [](const std::vector<fs::path>&) {
    return notFound("COPY missing.txt: no such file in the context");
  });
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "COPY missing.txt: no such file in the context");
}

TEST_F(MountedOverlaysTest, ScratchReadWriteRootIsTheUpperDir) {
  fs::path scratch = dir_ / "scratch";
  fs::create_directories(scratch);
  std::vector<MountedOverlay> overlays(1);
  overlays[0].root.upper_dir = root_.upper_dir;
  overlays[0].root.work_dir = root_.work_dir;
  Status status = withMountedOverlays(overlays, scratch, [](const std::vector<fs::path>& p) {
    return testing::writeFile(p[0] / "f", "x") ? Status::ok() : internalError("write failed");
  });
  EXPECT_TRUE(status.isOk()) << status.toString();
  EXPECT_EQ(listTree(root_.upper_dir), (std::set<std::string>{"f"}));
}

}  // namespace
}  // namespace lf::worker::sandbox
