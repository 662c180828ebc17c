// Ownership rules of COPY/ADD (--chown by name or id, 0:0 by default, source ids for --from),
// setuid bits after chown, xattrs and special files. Needs root to chown and mknod.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tests/support/temp_dir.h"
#include "tests/worker/copy/copy_test_util.h"
#include "tests/worker/copy/tar_builder.h"
#include "worker/copy/copy_executor.h"

namespace lf::worker {
namespace {

using lf::testing::TarEntry;
using lf::testing::writeTar;

class CopyOwnershipTest : public CopyTest {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root to chown and mknod";
    }
    CopyTest::SetUp();
    tmp().write("root/etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
    tmp().write("root/etc/group", "root:x:0:\napp:x:1001:\nstaff:x:50:app\n");
    writeCtx("tree/file", "data");
    writeCtx("tree/sub/inner", "inner");
    fs::create_symlink("file", ctx() / "tree/link");
    for (const char* rel : {"tree/file", "tree/sub/inner", "tree/sub", "tree"}) {
      EXPECT_EQ(lchown((ctx() / rel).c_str(), 1234, 4321), 0);
    }
    EXPECT_EQ(lchown((ctx() / "tree/link").c_str(), 1234, 4321), 0);
  }

  void expectOwner(const fs::path& p, uid_t uid, gid_t gid) const {
    struct stat st = lstatOf(p);
    EXPECT_EQ(st.st_uid, uid) << p;
    EXPECT_EQ(st.st_gid, gid) << p;
  }
};

TEST_F(CopyOwnershipTest, ContextSourcesBelongToRootByDefault) {
  ASSERT_TRUE(copy(request({"tree"}, "/t")).isOk());
  for (const char* rel : {"t", "t/file", "t/link", "t/sub", "t/sub/inner"}) {
    expectOwner(root() / rel, 0, 0);
  }
}

TEST_F(CopyOwnershipTest, FromAnotherFilesystemKeepsTheSourceIds) {
  CopyRequest r = request({"tree"}, "/t");
  r.from_other_filesystem = true;
  ASSERT_TRUE(copy(r).isOk());
  for (const char* rel : {"t", "t/file", "t/link", "t/sub", "t/sub/inner"}) {
    expectOwner(root() / rel, 1234, 4321);
  }
}

TEST_F(CopyOwnershipTest, ChownByNameResolvesInTheImage) {
  CopyRequest r = request({"tree"}, "/new/parent/t");
  r.chown = "app";  // no group: the gid is the uid, Docker's documented rule
  ASSERT_TRUE(copy(r).isOk());
  for (const char* rel : {"new", "new/parent", "new/parent/t", "new/parent/t/file",
                          "new/parent/t/link", "new/parent/t/sub/inner"}) {
    expectOwner(root() / rel, 1000, 1000);
  }
  CopyRequest g = request({"tree/file"}, "/g");
  g.chown = "app:staff";
  ASSERT_TRUE(copy(g).isOk());
  expectOwner(root() / "g", 1000, 50);
  CopyRequest ids = request({"tree/file"}, "/ids");
  ids.chown = "4242:4343";  // ids need not exist in the image
  ASSERT_TRUE(copy(ids).isOk());
  expectOwner(root() / "ids", 4242, 4343);

  CopyRequest bad = request({"tree/file"}, "/bad");
  bad.chown = "nobody";
  auto result = copy(bad);
  ASSERT_FALSE(result.isOk());
  EXPECT_NE(result.status().message().find("--chown=nobody"), std::string::npos)
      << result.status().message();
  EXPECT_FALSE(fs::exists(root() / "bad"));
}

TEST_F(CopyOwnershipTest, SetuidBitsAndUserXattrsSurviveChown) {
  writeCtx("suid", "binary");
  ASSERT_EQ(chmod((ctx() / "suid").c_str(), 06755), 0);
  bool xattrs = setxattr((ctx() / "suid").c_str(), "user.origin", "ctx", 3, 0) == 0;
  CopyRequest r = request({"suid"}, "/usr/bin/suid");
  r.chown = "app:app";
  ASSERT_TRUE(copy(r).isOk());
  EXPECT_EQ(modeOf(root() / "usr/bin/suid"), 06755u);
  expectOwner(root() / "usr/bin/suid", 1000, 1001);
  if (xattrs) {
    char value[16] = {};
    EXPECT_EQ(getxattr((root() / "usr/bin/suid").c_str(), "user.origin", value, sizeof(value)), 3);
    EXPECT_STREQ(value, "ctx");
  }
}

TEST_F(CopyOwnershipTest, FileCapabilitiesSurviveChown) {
  writeCtx("ping", "binary");
  // VFS_CAP_REVISION_2 with the effective bit; permitted = CAP_NET_RAW (13).
  const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  if (setxattr((ctx() / "ping").c_str(), "security.capability", cap, sizeof(cap), 0) != 0) {
    GTEST_SKIP() << "cannot set file capabilities here: " << strerror(errno);
  }
  CopyRequest r = request({"ping"}, "/bin/ping");
  r.chown = "app";
  ASSERT_TRUE(copy(r).isOk());
  unsigned char got[32] = {};
  ASSERT_EQ(getxattr((root() / "bin/ping").c_str(), "security.capability", got, sizeof(got)),
            static_cast<ssize_t>(sizeof(cap)));
  EXPECT_EQ(memcmp(got, cap, sizeof(cap)), 0);
}

TEST_F(CopyOwnershipTest, SpecialFilesAreRecreated) {
  fs::create_directories(ctx() / "dev");
  ASSERT_EQ(mkfifo((ctx() / "dev/pipe").c_str(), 0640), 0);
  if (mknod((ctx() / "dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    GTEST_SKIP() << "mknod is not permitted here";
  }
  ASSERT_TRUE(copy(request({"dev"}, "/dev")).isOk());
  struct stat pipe = lstatOf(root() / "dev/pipe");
  EXPECT_TRUE(S_ISFIFO(pipe.st_mode));
  EXPECT_EQ(pipe.st_mode & 07777, 0640u);
  struct stat null = lstatOf(root() / "dev/null");
  EXPECT_TRUE(S_ISCHR(null.st_mode));
  EXPECT_EQ(null.st_rdev, makedev(1, 3));
}

TEST_F(CopyOwnershipTest, AddKeepsArchiveIdsUnlessChown) {
  ASSERT_TRUE(writeTar(ctx() / "ids.tar",
                       {{.name = "www/", .type = 'd', .content = "", .uid = 33, .gid = 33},
                        {.name = "www/index.html", .content = "<html>", .uid = 33, .gid = 34}}));
  CopyRequest keep = request({"ids.tar"}, "/a");
  keep.add = true;
  ASSERT_TRUE(copy(keep).isOk());
  expectOwner(root() / "a/www", 33, 33);
  expectOwner(root() / "a/www/index.html", 33, 34);

  CopyRequest chown = request({"ids.tar"}, "/b");
  chown.add = true;
  chown.chown = "app";
  ASSERT_TRUE(copy(chown).isOk());
  expectOwner(root() / "b", 1000, 1000);
  expectOwner(root() / "b/www", 1000, 1000);
  expectOwner(root() / "b/www/index.html", 1000, 1000);
}

}  // namespace
}  // namespace lf::worker
