#include "common/registry/auth.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace lf::registry {
namespace {

TEST(ChallengeTest, ParsesBearerWithQuotedParams) {
  auto c = parseChallenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull")");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].params.at("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*c)[0].params.at("service"), "registry.docker.io");
  EXPECT_EQ((*c)[0].params.at("scope"), "repository:library/ubuntu:pull");
}

TEST(ChallengeTest, ParsesSeveralChallengesAndEscapes) {
  auto c =
      parseChallenges(R"(Basic realm="a \"quoted\" realm", Bearer realm=x, error=invalid_token)");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].params.at("realm"), "a \"quoted\" realm");
  EXPECT_EQ((*c)[1].params.at("realm"), "x");
  EXPECT_EQ((*c)[1].params.at("error"), "invalid_token");
}

TEST(ChallengeTest, RejectsGarbage) {
  EXPECT_FALSE(parseChallenges("").isOk());
  EXPECT_FALSE(parseChallenges("Bearer realm=\"unterminated").isOk());
  EXPECT_FALSE(parseChallenges("=x").isOk());
}

TEST(CredentialStoreTest, LoadsDockerConfig) {
  testing::TempDir dir;
  auto path = dir.write("config.json", R"({"auths": {
      "https://index.docker.io/v1/": {"auth": ")" +
                                           base64Encode("hubuser:hub:pass") + R"("},
      "127.0.0.1:5000": {"username": "u", "password": "p"},
      "tok.example": {"identitytoken": "refresh"}}})");
  CredentialStore store;
  store.add("127.0.0.1:5000", {"farm", "config", ""});  // the farm's config comes first and wins
  ASSERT_TRUE(store.loadDockerConfig(path.string()).isOk());
  auto hub = store.lookup("registry-1.docker.io");
  ASSERT_TRUE(hub.has_value());
  EXPECT_EQ(hub->username, "hubuser");
  EXPECT_EQ(hub->password, "hub:pass");
  EXPECT_EQ(store.lookup("127.0.0.1:5000")->username, "farm");
  EXPECT_EQ(store.lookup("tok.example")->identity_token, "refresh");
  EXPECT_FALSE(store.lookup("other.example").has_value());
}

TEST(CredentialStoreTest, BadConfigNamesTheEntry) {
  CredentialStore store;
  Status s =
      store.loadDockerConfigJson(R"({"auths": {"h": {"auth": "bm9jb2xvbg=="}}})", "cfg.json");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cfg.json: auths[\"h\"].auth"), std::string::npos) << s.message();
  EXPECT_FALSE(store.loadDockerConfigJson("[", "x").isOk());
  EXPECT_FALSE(store.loadDockerConfigJson(R"({"auths": []})", "x").isOk());
  EXPECT_EQ(store.loadDockerConfig("/nonexistent/config.json").code(), StatusCode::kNotFound);
}

TEST(TokenResponseTest, ParsesTokenAndExpiry) {
  auto now = std::chrono::steady_clock::now();
  auto t = parseTokenResponse(R"({"token": "abc", "expires_in": 300})", now);
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(t->token, "abc");
  EXPECT_EQ(t->expires - now, std::chrono::seconds(300));
  auto t2 = parseTokenResponse(R"({"access_token": "xyz"})", now);
  ASSERT_TRUE(t2.isOk());
  EXPECT_EQ(t2->expires - now, std::chrono::seconds(60));
  EXPECT_FALSE(parseTokenResponse(R"({"token": ""})", now).isOk());
  EXPECT_FALSE(parseTokenResponse(R"({"token": "a b"})", now).isOk());
  EXPECT_FALSE(parseTokenResponse(R"({"token": "a", "expires_in": "x"})", now).isOk());
  EXPECT_FALSE(parseTokenResponse("nope", now).isOk());
}

TEST(ErrorBodyTest, Summarises) {
  EXPECT_EQ(summariseErrorBody(
                R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"),
            "MANIFEST_UNKNOWN: manifest unknown");
  EXPECT_EQ(summariseErrorBody("plain\ntext"), "plain text");
}

TEST(Base64Test, RoundTrips) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "user:pass"}) {
    auto d = base64Decode(base64Encode(s));
    ASSERT_TRUE(d.isOk());
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64Encode("user:pass"), "dXNlcjpwYXNz");
  EXPECT_FALSE(base64Decode("a*b").isOk());
}

}  // namespace
}  // namespace lf::registry
