#pragma once

// The fixture of the sandbox tests: a busybox rootfs (tests/data/make-busybox-rootfs.sh) built
// once per test binary as the lower dir, a fresh upper/work per test, and helpers that run a
// command and collect its output. The tests need root and skip without it.

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
#include "worker/sandbox/sandbox.h"

namespace lf::worker::sandbox::testing_support {

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
inline std::set<std::string> listTree(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    out.insert(fs::relative(entry.path(), dir).string());
  }
  return out;
}

inline std::string hostMountInfo() {
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

  static inline TempDir* base_dir_ = nullptr;
  TempDir dir_;
  OverlayRoot root_;
};

}  // namespace lf::worker::sandbox::testing_support
