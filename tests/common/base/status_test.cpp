#include "common/base/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace lf {
namespace {

Result<int> half(int x) {
  if (x % 2 != 0) return invalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> quarter(int x) {
  LF_ASSIGN_OR_RETURN(int h, half(x));
  LF_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status checkEven(int x) {
  LF_RETURN_IF_ERROR(half(x).status());
  return Status::ok();
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status::ok().isOk());
  Status s = notFound("blob sha256:ab");
  EXPECT_FALSE(s.isOk());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.toString(), "not found: blob sha256:ab");
  EXPECT_EQ(s.withContext("pull x").message(), "pull x: blob sha256:ab");
  EXPECT_EQ(s.withContext("pull x").code(), StatusCode::kNotFound);
}

TEST(Status, ResultPropagates) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message(), "odd: 3");
  EXPECT_TRUE(checkEven(4).isOk());
  EXPECT_EQ(checkEven(5).code(), StatusCode::kInvalidArgument);
}

TEST(Status, ErrnoMapping) {
  EXPECT_EQ(errnoStatus(ENOENT, "open x").code(), StatusCode::kNotFound);
  EXPECT_EQ(errnoStatus(EACCES, "open x").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(errnoStatus(ENOSPC, "write x").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(errnoStatus(ENOENT, "open x").message(), "open x: No such file or directory");
}

}  // namespace
}  // namespace lf
