#include "common/registry/reference.h"

#include <gtest/gtest.h>

namespace lf::registry {
namespace {

const char* kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

Reference parseOk(std::string_view text) {
  auto r = Reference::parse(text);
  EXPECT_TRUE(r.isOk()) << text << ": " << r.status().toString();
  return r.isOk() ? *r : Reference{};
}

std::string parseError(std::string_view text) {
  auto r = Reference::parse(text);
  EXPECT_FALSE(r.isOk()) << text << " parsed as " << (r.isOk() ? r->toString() : "");
  return r.isOk() ? "" : r.status().message();
}

TEST(ReferenceTest, NormalisesDockerHubNames) {
  EXPECT_EQ(parseOk("ubuntu").toString(), "docker.io/library/ubuntu:latest");
  EXPECT_EQ(parseOk("user/app").toString(), "docker.io/user/app:latest");
  EXPECT_EQ(parseOk("docker.io/ubuntu:22.04").toString(), "docker.io/library/ubuntu:22.04");
  EXPECT_EQ(parseOk("index.docker.io/library/ubuntu").toString(),
            "docker.io/library/ubuntu:latest");
  Reference r = parseOk("ubuntu");
  EXPECT_EQ(r.registryHost(), "registry-1.docker.io");
  EXPECT_EQ(r.repository, "library/ubuntu");
  EXPECT_EQ(r.manifestReference(), "latest");
}

TEST(ReferenceTest, RegistriesWithPortsAndLocalhost) {
  Reference r = parseOk("localhost:5000/app:v1");
  EXPECT_EQ(r.domain, "localhost:5000");
  EXPECT_EQ(r.repository, "app");
  EXPECT_EQ(r.tag, "v1");
  EXPECT_EQ(parseOk("localhost/app").domain, "localhost");
  EXPECT_EQ(parseOk("127.0.0.1:5000/a/b/c").repository, "a/b/c");
  EXPECT_EQ(parseOk("ghcr.io/org/app").toString(), "ghcr.io/org/app:latest");
  // An uppercase first component is a host name, as Docker treats it.
  EXPECT_EQ(parseOk("Registry/app").domain, "Registry");
  // "localhost" alone is a repository on Docker Hub.
  EXPECT_EQ(parseOk("localhost").toString(), "docker.io/library/localhost:latest");
}

TEST(ReferenceTest, DigestsAndBoth) {
  std::string digest = std::string("sha256:") + kHex;
  Reference r = parseOk("ubuntu@" + digest);
  EXPECT_EQ(r.tag, "");
  ASSERT_TRUE(r.digest.has_value());
  EXPECT_EQ(r.digest->toString(), digest);
  EXPECT_EQ(r.manifestReference(), digest);
  Reference both = parseOk("localhost:5000/app:v2@" + digest);
  EXPECT_EQ(both.tag, "v2");
  EXPECT_EQ(both.manifestReference(), digest);
  EXPECT_EQ(both.toString(), "localhost:5000/app:v2@" + digest);
}

TEST(ReferenceTest, ErrorsNameThePart) {
  EXPECT_NE(parseError("").find("empty"), std::string::npos);
  EXPECT_NE(parseError("Ubuntu").find("lowercase"), std::string::npos);
  EXPECT_NE(parseError("ubuntu:bad tag").find("tag"), std::string::npos);
  EXPECT_NE(parseError("ubuntu:-x").find("tag \"-x\""), std::string::npos);
  EXPECT_NE(parseError("ubuntu@sha256:abc").find("64 hex"), std::string::npos);
  EXPECT_NE(parseError("ubuntu@md5:" + std::string(kHex)).find("unsupported algorithm"),
            std::string::npos);
  EXPECT_NE(parseError("a//b").find("empty path component"), std::string::npos);
  EXPECT_NE(parseError("a/b-").find("separator"), std::string::npos);
  EXPECT_NE(parseError("a/b___c").find("b___c"), std::string::npos);
  EXPECT_NE(parseError("host:99999999/app").find("port"), std::string::npos);
  EXPECT_NE(parseError("-host.com/app").find("domain"), std::string::npos);
  EXPECT_NE(parseError(kHex).find("image ID"), std::string::npos);
  EXPECT_NE(parseError("a/" + std::string(300, 'b')).find("longer than 255"), std::string::npos);
  EXPECT_NE(parseError("ubuntu:" + std::string(129, 'x')).find("tag"), std::string::npos);
  EXPECT_NE(parseError("app/").find("empty path component"), std::string::npos);
  // The whole input is quoted in the message.
  EXPECT_NE(parseError("Ubuntu").find("invalid reference \"Ubuntu\""), std::string::npos);
}

TEST(ReferenceTest, SeparatorsFollowTheGrammar) {
  parseOk("a/b.c");
  parseOk("a/b_c");
  parseOk("a/b__c");
  parseOk("a/b---c");
  parseError("a/b..c");
  parseError("a/.b");
  parseError("a/b._c");
}

TEST(ReferenceTest, RoundTripsThroughToString) {
  for (const char* text :
       {"docker.io/library/ubuntu:latest", "localhost:5000/x/y:1.0", "ghcr.io/org/app:v1-rc.2"}) {
    EXPECT_EQ(parseOk(text).toString(), text);
    EXPECT_EQ(parseOk(parseOk(text).toString()), parseOk(text));
  }
}

}  // namespace
}  // namespace lf::registry
