// Tests of runInSandbox and withMountedOverlays on a real busybox rootfs. Need root.

#include "worker/sandbox/sandbox.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"
#include "worker/sandbox/rootfs.h"

namespace lf::worker::sandbox {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

struct Line {
  OutputStream stream;
  int64_t ns;
  std::string text;
};

struct Outcome {
  Result<RunResult> result = internalError("not run");
  std::vector<Line> lines;
  std::string out;  // stdout lines joined with '\n'
  std::string err;
  int64_t elapsed_ms = 0;
};

// Files and dirs under `dir`, relative, sorted ("tmp", "tmp/x").
std::set<std::string> listTree(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    out.insert(fs::relative(entry.path(), dir).string());
  }
  return out;
}

std::string hostMountInfo() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) {
      return;
    }
    base_dir_ = new TempDir();
    auto made = testing::runShell(std::string(LF_TEST_DATA_DIR) + "/make-busybox-rootfs.sh " +
                                  (*base_dir_ / "busybox").string());
    ASSERT_EQ(made.code, 0) << made.text;
  }
  static void TearDownTestSuite() {
    delete base_dir_;
    base_dir_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root (namespaces, overlayfs)";
    }
    ASSERT_NE(base_dir_, nullptr);
    root_.lower_dirs = {*base_dir_ / "busybox"};
    root_.upper_dir = dir_ / "upper";
    root_.work_dir = dir_ / "work";
    fs::create_directories(root_.upper_dir);
    fs::create_directories(root_.work_dir);
  }
  void TearDown() override {
    if (::geteuid() == 0) {
      // Nothing of this test may stay mounted on the host.
      EXPECT_EQ(hostMountInfo().find(dir_.path().string()), std::string::npos) << hostMountInfo();
    }
  }

  Outcome run(std::vector<std::string> argv, ProcessSpec proc = {}, const Hooks& hooks = {},
              Canceller* cancel = nullptr, const OutputCallback& extra = nullptr) {
    proc.argv = std::move(argv);
    Outcome r;
    auto start = std::chrono::steady_clock::now();
    r.result = runInSandbox(
        root_, proc,
        [&](OutputStream s, int64_t ns, std::string_view line) {
          r.lines.push_back({s, ns, std::string(line)});
          std::string& text = s == OutputStream::kStdout ? r.out : r.err;
          text += std::string(line) + "\n";
          if (extra) {
            extra(s, ns, line);
          }
        },
        hooks, cancel);
    r.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count();
    return r;
  }

  // Runs a shell command and expects exit code 0.
  Outcome sh(const std::string& script, ProcessSpec proc = {}) {
    Outcome r = run({"/bin/sh", "-c", script}, std::move(proc));
    EXPECT_TRUE(r.result.isOk()) << r.result.status().toString();
    if (r.result.isOk()) {
      EXPECT_TRUE(r.result->exited) << script;
      EXPECT_EQ(r.result->exit_code, 0) << script << "\nstdout:\n" << r.out << "stderr:\n" << r.err;
    }
    return r;
  }

  static TempDir* base_dir_;
  TempDir dir_;
  OverlayRoot root_;
};

TempDir* SandboxTest::base_dir_ = nullptr;

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

TEST_F(SandboxTest, ExitCodeIsReported) {
  Outcome r = run({"/bin/sh", "-c", "exit 3"});
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_TRUE(r.result->exited);
  EXPECT_EQ(r.result->exit_code, 3);
}

TEST_F(SandboxTest, SignalOfAChildShellIsSeen) {
  // pid 1 of a PID namespace cannot be killed from inside it, but its children can.
  Outcome r = run({"/bin/sh", "-c", "sh -c 'kill -9 $$'; echo status=$?"});
  ASSERT_TRUE(r.result.isOk());
  EXPECT_EQ(r.out, "status=137\n");
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

TEST_F(SandboxTest, HostFilesAreNotVisible) {
  TempDir host;
  fs::path marker = host.write("marker", "secret");
  Outcome r = run({"/bin/sh", "-c", "cat " + marker.string()});
  ASSERT_TRUE(r.result.isOk());
  EXPECT_NE(r.result->exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(SandboxTest, OnlyTheSandboxProcessesAreVisible) {
  Outcome r = sh("ls /proc | grep '^[0-9]' | tr '\\n' ' '");
  // sh (1), ls, grep and tr: no host pids.
  std::istringstream in(r.out);
  std::vector<int> pids;
  for (int pid; in >> pid;) {
    pids.push_back(pid);
  }
  ASSERT_FALSE(pids.empty());
  EXPECT_EQ(pids.front(), 1);
  EXPECT_LE(pids.size(), 4u) << r.out;
  for (int pid : pids) {
    EXPECT_LT(pid, 10) << r.out;
  }
}

TEST_F(SandboxTest, OnlyLoopbackIsVisibleAndUp) {
  Outcome r = sh("ls /sys/class/net; cat /sys/class/net/lo/flags; grep -c : /proc/net/dev");
  EXPECT_EQ(r.out, "lo\n0x9\n1\n");
}

TEST_F(SandboxTest, NetworkNoneHasLoopbackDown) {
  ProcessSpec proc;
  proc.network = NetworkMode::kNone;
  Outcome r = sh("ls /sys/class/net; cat /sys/class/net/lo/flags", proc);
  EXPECT_EQ(r.out, "lo\n0x8\n");
}

TEST_F(SandboxTest, HostNetworkSeesTheHostInterfaces) {
  ProcessSpec proc;
  proc.network = NetworkMode::kHost;
  Outcome r = sh("ls /sys/class/net | sort | tr '\\n' ' '", proc);
  auto host = testing::runShell("ls /sys/class/net | sort | tr '\\n' ' '");
  EXPECT_EQ(r.out, host.text + "\n");
}

TEST_F(SandboxTest, HostnameAndEtcFiles) {
  ProcessSpec proc;
  proc.hostname = "step-42";
  proc.extra_hosts = {"db:10.1.2.3", "v6:fd00::1"};
  proc.resolv_conf = "nameserver 192.0.2.53\n";
  Outcome r = sh("hostname; cat /etc/hostname; cat /etc/resolv.conf; cat /etc/hosts", proc);
  EXPECT_EQ(r.out.substr(0, 16), "step-42\nstep-42\n");
  EXPECT_NE(r.out.find("nameserver 192.0.2.53\n"), std::string::npos);
  EXPECT_NE(r.out.find("127.0.0.1\tlocalhost step-42\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10.1.2.3\tdb\n"), std::string::npos);
  EXPECT_NE(r.out.find("fd00::1\tv6\n"), std::string::npos);
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, InvalidHostnameIsRejected) {
  ProcessSpec proc;
  proc.hostname = "evil\n1.2.3.4 bank";
  EXPECT_EQ(run({"true"}, proc).result.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SandboxTest, WritingEtcHostsDoesNotReachTheLayer) {
  sh("echo '1.2.3.4 extra' >> /etc/hosts && grep -q extra /etc/hosts");
  EXPECT_TRUE(listTree(root_.upper_dir).empty());
}

TEST_F(SandboxTest, UserByNameFromTheImage) {
  ProcessSpec proc;
  proc.user = "nobody";
  Outcome r = sh("id -u; id -g; echo $HOME", proc);
  EXPECT_EQ(r.out, "65534\n65534\n/home\n");
}

TEST_F(SandboxTest, UnknownUserIsAnError) {
  ProcessSpec proc;
  proc.user = "nosuchuser";
  Outcome r = run({"true"}, proc);
  ASSERT_FALSE(r.result.isOk());
  EXPECT_NE(r.result.status().message().find("nosuchuser"), std::string::npos)
      << r.result.status().toString();
}

TEST_F(SandboxTest, WorkingDirIsCreated) {
  ProcessSpec proc;
  proc.working_dir = "/srv/app";
  Outcome r = sh("pwd", proc);
  EXPECT_EQ(r.out, "/srv/app\n");
  EXPECT_EQ(listTree(root_.upper_dir), (std::set<std::string>{"srv", "srv/app"}));
}

TEST_F(SandboxTest, EnvironmentIsPassedWithDefaults) {
  ProcessSpec proc;
  proc.env = {"FOO=bar baz"};
  Outcome r = sh("echo \"$FOO|$PATH|$HOME\"", proc);
  EXPECT_EQ(r.out, "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root\n");
}

TEST_F(SandboxTest, OutputLinesInOrderWithTimestamps) {
  const int64_t before = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  Outcome r = sh("echo one; echo two >&2; echo three; printf partial");
  EXPECT_EQ(r.out, "one\nthree\npartial\n");
  EXPECT_EQ(r.err, "two\n");
  int64_t last = before;
  for (const Line& line : r.lines) {
    EXPECT_GE(line.ns, before);
    (void)last;
  }
  ASSERT_TRUE(r.result.isOk());
  EXPECT_EQ(r.result->last_lines.back(), "partial");
}

TEST_F(SandboxTest, LongLinesAreSplitAt64KiB) {
  Outcome r = sh("head -c 200000 /dev/zero | tr '\\0' a; echo; echo end");
  ASSERT_EQ(r.lines.size(), 5u);
  EXPECT_EQ(r.lines[0].text.size(), 65536u);
  EXPECT_EQ(r.lines[1].text.size(), 65536u);
  EXPECT_EQ(r.lines[2].text.size(), 65536u);
  EXPECT_EQ(r.lines[3].text.size(), 200000u - 3 * 65536u);
  EXPECT_EQ(r.lines[4].text, "end");
}

TEST_F(SandboxTest, LastLinesKeepTwenty) {
  Outcome r = sh("for i in $(seq 1 50); do echo line$i; done");
  ASSERT_TRUE(r.result.isOk());
  ASSERT_EQ(r.result->last_lines.size(), 20u);
  EXPECT_EQ(r.result->last_lines.front(), "line31");
  EXPECT_EQ(r.result->last_lines.back(), "line50");
}

TEST_F(SandboxTest, TimeoutKillsTheWholeTree) {
  ProcessSpec proc;
  proc.timeout_ms = 300;
  Outcome r = run({"/bin/sh", "-c", "sleep 1000 & sleep 1000"}, proc);
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_TRUE(r.result->timed_out);
  EXPECT_FALSE(r.result->exited);
  EXPECT_EQ(r.result->signal, SIGKILL);
  EXPECT_LT(r.elapsed_ms, 5000);
  auto sleeps = testing::runShell("pgrep -f 'sleep 100[0]' || true");
  EXPECT_EQ(sleeps.text, "");
}

TEST_F(SandboxTest, CancelFromAnotherThread) {
  Canceller cancel;
  std::thread canceller;
  auto on_line = [&](OutputStream, int64_t, std::string_view line) {
    if (line == "started" && !canceller.joinable()) {
      canceller = std::thread([&] { cancel.cancel(); });
    }
  };
  Outcome r = run({"/bin/sh", "-c", "echo started; sleep 1000"}, {}, {}, &cancel, on_line);
  if (canceller.joinable()) {
    canceller.join();
  }
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_TRUE(r.result->cancelled);
  EXPECT_FALSE(r.result->timed_out);
  EXPECT_LT(r.elapsed_ms, 5000);
}

// The worker process dies (SIGKILL) in the middle of a step: the step's processes die with it
// (PDEATHSIG on monitor and init) and its mounts with their namespace.
TEST_F(SandboxTest, KilledCallerLeavesNoProcessesOrMounts) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t worker = fork();
  if (worker == 0) {
    close(pipe_fds[0]);
    ProcessSpec proc;
    proc.argv = {"/bin/sh", "-c", "sleep 1001 & echo started; sleep 1001"};
    auto result = runInSandbox(root_, proc, [&](OutputStream, int64_t, std::string_view line) {
      if (line == "started") {
        (void)!write(pipe_fds[1], "s", 1);
      }
    });
    _exit(result.isOk() ? 0 : 1);
  }
  close(pipe_fds[1]);
  pollfd started{pipe_fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&started, 1, 10000), 1) << "the step did not start";
  close(pipe_fds[0]);
  auto running = testing::runShell("pgrep -f 'sleep 100[1]' | wc -l");
  EXPECT_EQ(running.text, "2\n");
  ASSERT_EQ(kill(worker, SIGKILL), 0);
  ASSERT_EQ(waitpid(worker, nullptr, 0), worker);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string left;
  do {
    left = testing::runShell("pgrep -f 'sleep 100[1]' || true").text;
  } while (!left.empty() && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(left, "");
  // TearDown checks that nothing under this test's dir is still mounted.
}

TEST_F(SandboxTest, AlreadyCancelledDoesNotStart) {
  Canceller cancel;
  cancel.cancel();
  Outcome r = run({"/bin/sh", "-c", "echo no"}, {}, {}, &cancel);
  ASSERT_TRUE(r.result.isOk());
  EXPECT_TRUE(r.result->cancelled);
  EXPECT_TRUE(r.lines.empty());
}

TEST_F(SandboxTest, MissingExecutableGives127AndAMessage) {
  Outcome r = run({"no-such-tool", "arg"});
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_TRUE(r.result->exited);
  EXPECT_EQ(r.result->exit_code, 127);
  EXPECT_NE(r.err.find("\"no-such-tool\": executable file not found in $PATH"), std::string::npos)
      << r.err;
  ASSERT_FALSE(r.result->last_lines.empty());
}

TEST_F(SandboxTest, NonExecutableFileGives126) {
  Outcome r = run({"/etc/passwd"});
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_EQ(r.result->exit_code, 126);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
}

TEST_F(SandboxTest, RootHasDockersCapabilities) {
  Outcome r = sh("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status");
  EXPECT_EQ(defaultCapabilityMask(), 0xa80425fbull);
  EXPECT_NE(r.out.find("CapInh:\t0000000000000000\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapPrm:\t00000000a80425fb\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapEff:\t00000000a80425fb\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapBnd:\t00000000a80425fb\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapAmb:\t0000000000000000\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NoNewPrivs:\t1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Seccomp:\t2\n"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, NonRootUserHasNoCapabilities) {
  ProcessSpec proc;
  proc.user = "65534";
  Outcome r = sh("grep -E '^Cap' /proc/self/status", proc);
  EXPECT_NE(r.out.find("CapPrm:\t0000000000000000\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapEff:\t0000000000000000\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("CapBnd:\t00000000a80425fb\n"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, SeccompBlocksNamespacesAndMounts) {
  // A user namespace needs no capability: only the seccomp profile stops it.
  Outcome r = sh("unshare -U true 2>&1; echo rc=$?; mount -t tmpfs none /mnt 2>&1; echo rc=$?");
  EXPECT_NE(r.out.find("Operation not permitted"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("rc=0"), std::string::npos) << r.out;
}

TEST_F(SandboxTest, PersonalityIsRestricted) {
  // linux32 (PER_LINUX32) is allowed; disabling ASLR (setarch -R) is not.
  Outcome r = sh("linux32 true && echo ok32");
  EXPECT_EQ(r.out, "ok32\n");
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

TEST_F(SandboxTest, BeforeStartHookSeesTheMonitorAndCanAbort) {
  pid_t seen = 0;
  Hooks hooks;
  hooks.before_start = [&](pid_t pid) {
    seen = pid;
    return Status::ok();
  };
  Outcome r = run({"true"}, {}, hooks);
  ASSERT_TRUE(r.result.isOk());
  EXPECT_GT(seen, 0);
  hooks.before_start = [](pid_t) { return resourceExhausted("no cgroup for you"); };
  r = run({"/bin/sh", "-c", "echo should-not-run"}, {}, hooks);
  ASSERT_FALSE(r.result.isOk());
  EXPECT_EQ(r.result.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(r.lines.empty());
}

TEST_F(SandboxTest, BrokenRootIsAnErrorNamingTheProblem) {
  root_.lower_dirs = {dir_ / "does-not-exist"};
  Outcome r = run({"true"});
  ASSERT_FALSE(r.result.isOk());
  EXPECT_NE(r.result.status().message().find("does-not-exist"), std::string::npos)
      << r.result.status().toString();
}

TEST_F(SandboxTest, WorkingDirThatIsAFileIsAnError) {
  ProcessSpec proc;
  proc.working_dir = "/etc/passwd";
  Outcome r = run({"true"}, proc);
  ASSERT_FALSE(r.result.isOk());
  EXPECT_NE(r.result.status().message().find("working dir"), std::string::npos)
      << r.result.status().toString();
}

TEST_F(SandboxTest, ManyRunsInParallelThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      TempDir dir;
      OverlayRoot root = root_;
      root.upper_dir = dir / "upper";
      root.work_dir = dir / "work";
      fs::create_directories(root.upper_dir);
      fs::create_directories(root.work_dir);
      for (int i = 0; i < 5; ++i) {
        ProcessSpec proc;
        proc.argv = {"/bin/sh", "-c", "echo " + std::to_string(t)};
        std::string out;
        auto result =
            runInSandbox(root, proc, [&](OutputStream, int64_t, std::string_view l) { out += l; });
        if (result.isOk() && result->exit_code == 0 && out == std::to_string(t)) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 20);
}

// A COPY (withMountedOverlays) forked while a RUN is in flight inherits the RUN's descriptors
// and keeps them while its callback runs; the RUN must still end when its command does.
TEST_F(SandboxTest, LongCopyForkedDuringARunDoesNotHoldItUp) {
  int release[2];
  ASSERT_EQ(pipe(release), 0);
  fs::path scratch = dir_ / "copy-scratch";
  fs::create_directories(scratch);
  std::thread copier;
  Status copy_status;
  auto start_copy = [&](OutputStream, int64_t, std::string_view line) {
    if (line != "started" || copier.joinable()) {
      return;
    }
    copier = std::thread([&] {
      std::vector<MountedOverlay> overlays(1);
      overlays[0].root.lower_dirs = {*base_dir_ / "busybox"};
      overlays[0].read_only = true;
      copy_status = withMountedOverlays(overlays, scratch, [&](const std::vector<fs::path>&) {
        close(release[1]);  // the child's copy; the test holds the other
        pollfd fd{release[0], POLLIN, 0};
        return poll(&fd, 1, 20000) == 1 ? Status::ok() : internalError("never released");
      });
    });
  };
  Outcome r = run({"/bin/sh", "-c", "echo started; sleep 0.3"}, {}, {}, nullptr, start_copy);
  close(release[1]);
  if (copier.joinable()) {
    copier.join();
  }
  close(release[0]);
  ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
  EXPECT_EQ(r.result->exit_code, 0);
  EXPECT_LT(r.elapsed_ms, 5000);
  EXPECT_TRUE(copy_status.isOk()) << copy_status.toString();
}

TEST_F(SandboxTest, TrueIsFast) {
  fs::path l2 = dir_ / "l2";
  fs::path l3 = dir_ / "l3";
  fs::create_directories(l2 / "etc");
  fs::create_directories(l3 / "usr");
  testing::writeFile(l2 / "etc/motd", "2");
  testing::writeFile(l3 / "usr/x", "3");
  root_.lower_dirs = {*base_dir_ / "busybox", l2, l3};
  constexpr int kRuns = 20;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i) {
    Outcome r = run({"/bin/true"});
    ASSERT_TRUE(r.result.isOk()) << r.result.status().toString();
    ASSERT_EQ(r.result->exit_code, 0);
  }
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      kRuns;
  std::cout << "true in a 3-layer root: " << ms << " ms per run\n";
  EXPECT_LT(ms, 500);
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
