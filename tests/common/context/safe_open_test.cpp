#include "common/context/safe_open.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/support/temp_dir.h"

namespace lf::context {
namespace {

using lf::testing::TempDir;

// Runs the same checks with openat2 and with the component-by-component fallback.
void checkContainment(bool fallback) {
  if (fallback) forceOpenat2FallbackForTesting();
  TempDir outside;
  outside.write("secret", "s");
  TempDir root;
  root.write("dir/file", "f");
  ASSERT_EQ(::symlink(outside.path().c_str(), (root / "escape").c_str()), 0);
  ASSERT_EQ(::symlink("file", (root / "dir/link").c_str()), 0);
  UniqueFd root_fd(::open(root.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root_fd.valid());

  auto ok = openBeneath(root_fd.get(), "dir/file", O_RDONLY);
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  char c = 0;
  EXPECT_EQ(::read(ok->get(), &c, 1), 1);
  EXPECT_EQ(c, 'f');
  EXPECT_TRUE(openBeneath(root_fd.get(), "", O_RDONLY | O_DIRECTORY).isOk());

  auto through_dir = openBeneath(root_fd.get(), "escape/secret", O_RDONLY);
  ASSERT_FALSE(through_dir.isOk());
  EXPECT_EQ(through_dir.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(through_dir.status().message().find("escape/secret"), std::string::npos);

  auto last = openBeneath(root_fd.get(), "dir/link", O_RDONLY | O_NOFOLLOW);
  EXPECT_FALSE(last.isOk());

  int err = 0;
  auto missing = openBeneath(root_fd.get(), "dir/nope", O_RDONLY, &err);
  EXPECT_EQ(err, ENOENT);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(OpenBeneath, Openat2NeverLeavesTheRoot) { checkContainment(false); }

// Declared after the openat2 test: the fallback switch lasts for the rest of the process, and
// ctest runs each test in its own process anyway.
TEST(OpenBeneath, FallbackNeverLeavesTheRoot) { checkContainment(true); }

}  // namespace
}  // namespace lf::context
