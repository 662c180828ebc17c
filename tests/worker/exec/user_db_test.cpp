#include "worker/exec/user_db.h"

#include <fcntl.h>

#include <gtest/gtest.h>

#include "common/layer/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace lf::worker {
namespace {

constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "broken line\n"
    "bad:x:notanumber:1::/:/bin/sh\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n";
constexpr std::string_view kGroup =
    "root:x:0:\n"
    "wheel:x:10:root,app\n"
    "app:x:1001:\n"
    "audio:x:29:app\n"
    "staff:x:50:\n";

UserDatabase db() { return UserDatabase{parsePasswd(kPasswd), parseGroup(kGroup)}; }

TEST(UserDbTest, ParsesPasswdAndSkipsMalformedLines) {
  auto entries = parsePasswd(kPasswd);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2].name, "app");
  EXPECT_EQ(entries[2].uid, 1000u);
  EXPECT_EQ(entries[2].gid, 1001u);
  EXPECT_EQ(entries[2].home, "/home/app");
}

TEST(UserDbTest, ParsesGroupMembers) {
  auto groups = parseGroup(kGroup);
  ASSERT_EQ(groups.size(), 5u);
  EXPECT_EQ(groups[1].name, "wheel");
  EXPECT_EQ(groups[1].members, (std::vector<std::string>{"root", "app"}));
  EXPECT_TRUE(groups[0].members.empty());
}

TEST(UserDbTest, UserByNameTakesPrimaryGroupHomeAndSupplementaryGroups) {
  auto user = resolveUser(db(), "app");
  ASSERT_TRUE(user.isOk()) << user.status().toString();
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->gid, 1001u);
  EXPECT_EQ(user->home, "/home/app");
  EXPECT_EQ(user->groups, (std::vector<uint32_t>{10, 29}));
}

TEST(UserDbTest, ExplicitGroupReplacesPrimaryAndDropsSupplementary) {
  auto user = resolveUser(db(), "app:staff");
  ASSERT_TRUE(user.isOk()) << user.status().toString();
  EXPECT_EQ(user->gid, 50u);
  EXPECT_TRUE(user->groups.empty());
  auto numeric = resolveUser(db(), "app:4242");
  ASSERT_TRUE(numeric.isOk());
  EXPECT_EQ(numeric->gid, 4242u);
}

TEST(UserDbTest, UnknownNumericUidNeedsNoEntry) {
  auto user = resolveUser(db(), "4000");
  ASSERT_TRUE(user.isOk());
  EXPECT_EQ(user->uid, 4000u);
  EXPECT_EQ(user->gid, 0u);
  EXPECT_EQ(user->home, "/");
  auto known = resolveUser(db(), "1000");
  ASSERT_TRUE(known.isOk());
  EXPECT_EQ(known->gid, 1001u);
}

TEST(UserDbTest, EmptySpecIsRoot) {
  auto user = resolveUser(db(), "");
  ASSERT_TRUE(user.isOk());
  EXPECT_EQ(user->uid, 0u);
  EXPECT_EQ(user->home, "/root");
}

TEST(UserDbTest, UnknownNamesAreErrorsNamingTheFile) {
  auto user = resolveUser(db(), "nobody");
  ASSERT_FALSE(user.isOk());
  EXPECT_EQ(user.status().code(), StatusCode::kNotFound);
  EXPECT_NE(user.status().message().find("no user \"nobody\" in /etc/passwd"), std::string::npos);
  auto group = resolveUser(db(), "app:nogroup");
  ASSERT_FALSE(group.isOk());
  EXPECT_NE(group.status().message().find("no group \"nogroup\" in /etc/group"),
            std::string::npos);
  EXPECT_FALSE(resolveUser(db(), "app:").isOk());
  EXPECT_FALSE(resolveUser(db(), ":app").isOk());
  EXPECT_FALSE(resolveUser(db(), "a:b:c").isOk());
}

TEST(UserDbTest, ChownWithoutGroupUsesUidAsGid) {
  auto byName = resolveChown(db(), "app");
  ASSERT_TRUE(byName.isOk());
  EXPECT_EQ(byName->uid, 1000u);
  EXPECT_EQ(byName->gid, 1000u);
  auto byId = resolveChown(db(), "55");
  ASSERT_TRUE(byId.isOk());
  EXPECT_EQ(byId->uid, 55u);
  EXPECT_EQ(byId->gid, 55u);
  auto both = resolveChown(db(), "app:wheel");
  ASSERT_TRUE(both.isOk());
  EXPECT_EQ(both->gid, 10u);
  EXPECT_FALSE(resolveChown(db(), "ghost").isOk());
}

TEST(UserDbTest, ParseIdRejectsNonDecimal) {
  EXPECT_EQ(parseId("0"), 0u);
  EXPECT_EQ(parseId("4294967294"), 4294967294u);
  EXPECT_FALSE(parseId("4294967295"));
  EXPECT_FALSE(parseId("-1"));
  EXPECT_FALSE(parseId("1a"));
  EXPECT_FALSE(parseId(""));
}

TEST(UserDbTest, LoadsFilesBeneathTheRootAndSymlinksStayInside) {
  testing::TempDir root;
  testing::TempDir outside;
  outside.write("passwd", "evil:x:0:0::/:/bin/sh\n");
  root.write("etc/group", std::string(kGroup));
  // An absolute symlink resolves inside the root, as in the container: to a missing file.
  std::filesystem::create_symlink(outside.path() / "passwd", root.path() / "etc/passwd");
  layer::UniqueFd fd(::open(root.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  auto loaded = loadUserDatabase(fd.get());
  ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  EXPECT_TRUE(loaded->passwd.empty());
  EXPECT_EQ(loaded->group.size(), 5u);
}

}  // namespace
}  // namespace lf::worker
