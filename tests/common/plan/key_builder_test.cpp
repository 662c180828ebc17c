#include "common/plan/key_builder.h"

#include <gtest/gtest.h>

namespace lf::plan {
namespace {

TEST(KeyBuilder, FieldBoundariesDoNotCollide) {
  auto a = KeyBuilder("run").field("x", "ab").field("y", "c").finish();
  auto b = KeyBuilder("run").field("x", "a").field("y", "bc").finish();
  EXPECT_NE(a, b);
  auto c = KeyBuilder("run").list("l", {"a", "b"}).finish();
  auto d = KeyBuilder("run").list("l", {"ab"}).finish();
  EXPECT_NE(c, d);
}

TEST(KeyBuilder, KindAndTypeMatter) {
  EXPECT_NE(KeyBuilder("run").field("x", "1").finish(),
            KeyBuilder("copy").field("x", "1").finish());
  EXPECT_NE(KeyBuilder("run").field("x", "1").finish(),
            KeyBuilder("run").field("x", int64_t{1}).finish());
}

TEST(KeyBuilder, Deterministic) {
  auto make = [] {
    return KeyBuilder("copy").field("dest", "/app").map("m", {{"b", "2"}, {"a", "1"}}).finish();
  };
  EXPECT_EQ(make(), make());
  EXPECT_EQ(make().hex().size(), 64u);
}

}  // namespace
}  // namespace lf::plan
