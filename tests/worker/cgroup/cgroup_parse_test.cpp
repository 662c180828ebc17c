// Parsers of the kernel's cgroup files; no root needed.

#include <gtest/gtest.h>

#include "worker/cgroup/cgroup.h"

namespace lf::worker::cgroup {
namespace {

TEST(CgroupParseTest, MemoryEventsV2) {
  constexpr std::string_view kEvents =
      "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n";
  EXPECT_EQ(parseKeyedValue(kEvents, "oom_kill"), 1);
  EXPECT_EQ(parseKeyedValue(kEvents, "oom"), 2);  // not confused with oom_kill / oom_group_kill
  EXPECT_EQ(parseKeyedValue(kEvents, "max"), 17);
  EXPECT_EQ(parseKeyedValue(kEvents, "missing"), -1);
}

TEST(CgroupParseTest, PidsEventsAndOomControlV1) {
  EXPECT_EQ(parseKeyedValue("max 3\n", "max"), 3);
  EXPECT_EQ(parseKeyedValue("max 0", "max"), 0);  // no trailing newline
  constexpr std::string_view kOomControl = "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n";
  EXPECT_EQ(parseKeyedValue(kOomControl, "oom_kill"), 4);
  EXPECT_EQ(parseKeyedValue(kOomControl, "under_oom"), 0);
  // Kernels before 4.13 have no oom_kill line.
  EXPECT_EQ(parseKeyedValue("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"), -1);
}

TEST(CgroupParseTest, CpuStatAndMalformedValues) {
  EXPECT_EQ(parseKeyedValue("usage_usec 123456\nuser_usec 100000\n", "usage_usec"), 123456);
  EXPECT_EQ(parseKeyedValue("usage_usec abc\n", "usage_usec"), -1);
  EXPECT_EQ(parseKeyedValue("usage_usec -5\n", "usage_usec"), -1);
  EXPECT_EQ(parseKeyedValue("usage_usec 12x\n", "usage_usec"), -1);
  EXPECT_EQ(parseKeyedValue("", "usage_usec"), -1);
}

TEST(CgroupParseTest, ProcCgroupV1Hybrid) {
  constexpr std::string_view kProc =
      "9:name=systemd:/\n"
      "8:pids:/user.slice\n"
      "4:memory:/process_api/abc\n"
      "3:cpu,cpuacct:/a:b\n"
      "0::/unified/path\n";
  EXPECT_EQ(*parseProcCgroup(kProc, "memory"), "/process_api/abc");
  EXPECT_EQ(*parseProcCgroup(kProc, "pids"), "/user.slice");
  EXPECT_EQ(*parseProcCgroup(kProc, "cpu"), "/a:b");  // co-mounted, path with ':'
  EXPECT_EQ(*parseProcCgroup(kProc, "cpuacct"), "/a:b");
  EXPECT_EQ(*parseProcCgroup(kProc, ""), "/unified/path");
  Result<std::string> freezer = parseProcCgroup(kProc, "freezer");
  ASSERT_FALSE(freezer.isOk());
  EXPECT_EQ(freezer.status().code(), StatusCode::kNotFound);
  EXPECT_NE(freezer.status().message().find("freezer"), std::string::npos);
}

TEST(CgroupParseTest, ProcCgroupV2Only) {
  EXPECT_EQ(*parseProcCgroup("0::/kubepods/pod1/ctr\n", ""), "/kubepods/pod1/ctr");
  EXPECT_FALSE(parseProcCgroup("0::/\n", "memory").isOk());
  EXPECT_FALSE(parseProcCgroup("4:memory:/x\n", "").isOk());
}

TEST(CgroupParseTest, PidList) {
  Result<std::vector<pid_t>> pids = parsePidList("12\n345\n\n");
  ASSERT_TRUE(pids.isOk());
  EXPECT_EQ(*pids, (std::vector<pid_t>{12, 345}));
  EXPECT_TRUE(parsePidList("")->empty());
  Result<std::vector<pid_t>> bad = parsePidList("12\nx\n");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("\"x\""), std::string::npos);
  EXPECT_FALSE(parsePidList("0\n").isOk());
}

TEST(CgroupParseTest, VersionNames) {
  EXPECT_EQ(cgroupVersionName(CgroupVersion::kV1), "v1");
  EXPECT_EQ(cgroupVersionName(CgroupVersion::kV2), "v2");
}

}  // namespace
}  // namespace lf::worker::cgroup
