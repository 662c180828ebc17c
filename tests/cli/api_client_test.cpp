// The server-independent parts of the API client: error answers and NDJSON line splitting.

#include "cli/api_client.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lf::cli {
namespace {

TEST(StatusFromResponse, UsesTheServersErrorMessageAndCode) {
  Status s = statusFromResponse(ApiResponse{
      403, "application/json",
      R"({"error":{"code":"permission_denied","message":"tenant t may not push to library/x"}})"});
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "server: tenant t may not push to library/x");

  Status too_large = statusFromResponse(ApiResponse{
      413, "application/json", R"({"error":{"code":"too_large","message":"context over 4 GiB"}})"});
  EXPECT_EQ(too_large.code(), StatusCode::kResourceExhausted);

  Status plain = statusFromResponse(ApiResponse{502, "text/plain", "bad gateway\r\n"});
  EXPECT_EQ(plain.code(), StatusCode::kInternal);
  EXPECT_EQ(plain.message(), "server answered 502: bad gateway");

  Status empty = statusFromResponse(ApiResponse{404, "", ""});
  EXPECT_EQ(empty.code(), StatusCode::kNotFound);
  EXPECT_EQ(empty.message(), "server answered 404");
}

TEST(LineSplitter, SplitsAcrossChunksDropsCrAndKeepsALastPartialLine) {
  std::vector<std::string> lines;
  LineSplitter splitter([&](std::string_view l) {
    lines.emplace_back(l);
    return Status::ok();
  });
  ASSERT_TRUE(splitter.feed("{\"a\":").isOk());
  ASSERT_TRUE(splitter.feed("1}\r\n{\"b\":2}\n\n{\"c\"").isOk());
  ASSERT_TRUE(splitter.feed(":3}").isOk());
  ASSERT_TRUE(splitter.finish().isOk());
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "", "{\"c\":3}"}));
}

TEST(LineSplitter, BoundsLineLengthAndPassesHandlerErrors) {
  LineSplitter small([](std::string_view) { return Status::ok(); }, 8);
  EXPECT_EQ(small.feed("0123456789").code(), StatusCode::kResourceExhausted);
  LineSplitter failing([](std::string_view) { return dataLoss("bad line"); });
  EXPECT_EQ(failing.feed("x\n").code(), StatusCode::kDataLoss);
}

TEST(ApiClient, RejectsServersItCannotTalkTo) {
  EXPECT_NE(ApiClient::create({.server = "https://farm:7070"}).status().message().find("only http"),
            std::string::npos);
  EXPECT_NE(ApiClient::create({.server = "farm:7070"}).status().message().find("--server"),
            std::string::npos);
  EXPECT_NE(ApiClient::create({.server = "http://farm:7070/api"})
                .status()
                .message()
                .find("only http://HOST:PORT"),
            std::string::npos);
  auto ok = ApiClient::create({.server = "http://127.0.0.1:7070/"});
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ((*ok)->server(), "http://127.0.0.1:7070");
}

}  // namespace
}  // namespace lf::cli
