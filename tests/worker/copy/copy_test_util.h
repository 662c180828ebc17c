#pragma once

// Shared fixture for the worker/copy tests: a build context dir and an image root in a temp dir.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"
#include "worker/copy/copy_executor.h"

namespace lf::worker {

namespace fs = std::filesystem;

class CopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(ctx());
    fs::create_directories(root());
  }

  fs::path ctx() const { return tmp_ / "ctx"; }
  fs::path root() const { return tmp_ / "root"; }
  const lf::testing::TempDir& tmp() const { return tmp_; }

  // Without root, chown to anything but our own ids fails; asking for our own ids keeps the
  // ownership step in the path while letting the other rules be tested unprivileged.
  static CopyRequest request(std::vector<std::string> sources, std::string destination) {
    CopyRequest r;
    r.sources = std::move(sources);
    r.destination = std::move(destination);
    if (geteuid() != 0) {
      r.chown = std::to_string(geteuid()) + ":" + std::to_string(getegid());
    }
    return r;
  }

  Result<CopyStats> copy(const CopyRequest& r) const { return copyIntoRoot(ctx(), root(), r); }

  void writeCtx(const std::string& rel, const std::string& content) const {
    tmp_.write("ctx/" + rel, content);
  }

  static mode_t modeOf(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }

  static struct stat lstatOf(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st;
  }

 private:
  lf::testing::TempDir tmp_;
};

}  // namespace lf::worker
