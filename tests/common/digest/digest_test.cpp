#include "common/digest/digest.h"

#include <gtest/gtest.h>

namespace lf {
namespace {

TEST(Digest, KnownVectors) {
  EXPECT_EQ(Digest::sha256Of("").toString(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Digest::sha256Of("abc").hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Digest, StreamingEqualsOneShot) {
  std::string data(100000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  Sha256 h;
  for (size_t off = 0; off < data.size(); off += 4093) {
    h.update(std::string_view(data).substr(off, 4093));
  }
  EXPECT_EQ(h.finish(), Digest::sha256Of(data));
}

TEST(Digest, ParseValid) {
  auto d = Digest::parse("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ASSERT_TRUE(d.isOk()) << d.status().toString();
  EXPECT_EQ(d->shortHex(), "e3b0c44298fc");
  EXPECT_EQ(*d, Digest::sha256Of(""));
}

TEST(Digest, ParseRejects) {
  EXPECT_FALSE(Digest::parse("").isOk());
  EXPECT_FALSE(Digest::parse("e3b0c44298fc").isOk());
  EXPECT_FALSE(Digest::parse("sha256:abc").isOk());
  EXPECT_FALSE(
      Digest::parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
          .isOk());
  auto md5 = Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e");
  ASSERT_FALSE(md5.isOk());
  EXPECT_NE(md5.status().message().find("unsupported digest algorithm \"md5\""), std::string::npos);
}

}  // namespace
}  // namespace lf
