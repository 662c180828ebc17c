// mountinfo parsing and the choice of mounts to detach; no root needed.

#include <gtest/gtest.h>

#include "worker/recovery/recovery.h"

namespace lf::worker {
namespace {

constexpr std::string_view kFirstLine = "22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n";
constexpr std::string_view kMountInfo =
    "22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n"
    "60 22 0:30 / /var/lib/lf rw,relatime shared:30 - ext4 /dev/sda2 rw\n"
    "61 60 0:31 / /var/lib/lf/steps/s1/rootfs rw - overlay overlay rw,lowerdir=/a:/b\n"
    "62 61 0:32 / /var/lib/lf/steps/s1/rootfs/proc rw - proc proc rw\n"
    "63 60 0:33 / /var/lib/lf/steps/with\\040space rw - tmpfs my\\134src rw\n"
    "64 1 0:34 / /var/lib/lfother rw - tmpfs tmpfs rw\n"
    "65 61 0:35 /ctx /var/lib/lf/steps/s1/rootfs/ctx ro master:3 propagate_from:2 - ext4 "
    "/dev/sda2 rw\n"
    "66 65 0:36 / /var/lib/lf/steps/s1/rootfs/ctx rw - tmpfs tmpfs rw\n";

TEST(MountInfoTest, ParsesFieldsAndOptionalFields) {
  Result<std::vector<MountInfoEntry>> mounts = parseMountInfo(kMountInfo);
  ASSERT_TRUE(mounts.isOk()) << mounts.status().toString();
  ASSERT_EQ(mounts->size(), 8u);
  const MountInfoEntry& overlay = (*mounts)[2];
  EXPECT_EQ(overlay.mount_id, 61);
  EXPECT_EQ(overlay.parent_id, 60);
  EXPECT_EQ(overlay.root, "/");
  EXPECT_EQ(overlay.mount_point, "/var/lib/lf/steps/s1/rootfs");
  EXPECT_EQ(overlay.fs_type, "overlay");
  EXPECT_EQ(overlay.source, "overlay");
  const MountInfoEntry& bind = (*mounts)[6];  // two optional fields before "-"
  EXPECT_EQ(bind.root, "/ctx");
  EXPECT_EQ(bind.fs_type, "ext4");
  EXPECT_EQ(bind.source, "/dev/sda2");
}

TEST(MountInfoTest, DecodesOctalEscapes) {
  Result<std::vector<MountInfoEntry>> mounts = parseMountInfo(kMountInfo);
  ASSERT_TRUE(mounts.isOk());
  EXPECT_EQ((*mounts)[4].mount_point, "/var/lib/lf/steps/with space");
  EXPECT_EQ((*mounts)[4].source, "my\\src");
  EXPECT_EQ(decodeMountInfoPath("a\\011b\\012c\\134d"), "a\tb\nc\\d");
  // Not an escape: left as is.
  EXPECT_EQ(decodeMountInfoPath("a\\9zz\\01"), "a\\9zz\\01");
}

TEST(MountInfoTest, MalformedLinesNameTheLine) {
  for (std::string_view bad : {"22 1 0:21 / /sys rw shared:7 sysfs sysfs rw\n",  // no "-"
                               "x 1 0:21 / /sys rw - sysfs sysfs rw\n",          // bad id
                               "22 1 0:21 / /sys rw -\n",                        // no fs type
                               "22 1 0:21 / sys rw - sysfs sysfs rw\n"}) {       // relative
    Result<std::vector<MountInfoEntry>> parsed =
        parseMountInfo(std::string(kFirstLine) + std::string(bad));
    ASSERT_FALSE(parsed.isOk()) << bad;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("line 2"), std::string::npos)
        << parsed.status().message();
  }
  EXPECT_TRUE(parseMountInfo("")->empty());
}

TEST(MountInfoTest, MountsBelowAreDeepestFirstAndComponentWise) {
  Result<std::vector<MountInfoEntry>> mounts = parseMountInfo(kMountInfo);
  ASSERT_TRUE(mounts.isOk());
  std::vector<std::string> below = mountPointsBelow(*mounts, "/var/lib/lf");
  // Not /var/lib/lf itself (the state volume), not /var/lib/lfother, not /sys.
  ASSERT_EQ(below.size(), 5u);
  EXPECT_EQ(below[0], "/var/lib/lf/steps/s1/rootfs/proc");
  EXPECT_EQ(below[1], "/var/lib/lf/steps/s1/rootfs/ctx");  // stacked twice
  EXPECT_EQ(below[2], "/var/lib/lf/steps/s1/rootfs/ctx");
  EXPECT_EQ(below[3], "/var/lib/lf/steps/s1/rootfs");
  EXPECT_EQ(below[4], "/var/lib/lf/steps/with space");
  EXPECT_EQ(mountPointsBelow(*mounts, "/var/lib/lf/").size(), 5u);  // trailing slash
  EXPECT_EQ(mountPointsBelow(*mounts, "/var/lib/lf/steps/s1/rootfs/proc").size(), 0u);
  EXPECT_EQ(mountPointsBelow(*mounts, "/var/lib/l").size(), 0u);
}

}  // namespace
}  // namespace lf::worker
