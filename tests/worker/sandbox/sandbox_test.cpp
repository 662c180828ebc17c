// runInSandbox on a busybox rootfs: processes, isolation, users, output, timeouts, privileges.
// Need root.

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

}  // namespace
}  // namespace lf::worker::sandbox
