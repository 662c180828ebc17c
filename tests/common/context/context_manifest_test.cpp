#include "common/context/context_manifest.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/context/context_scanner.h"
#include "tests/support/temp_dir.h"

namespace lf::context {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

void writeFile(const fs::path& path, const std::string& text, mode_t mode = 0644) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

ContextSnapshot scanOk(const fs::path& root) {
  auto snap = scanContext(root, ScanOptions{});
  EXPECT_TRUE(snap.isOk()) << snap.status().toString();
  return snap.isOk() ? std::move(snap).value() : ContextSnapshot();
}

ContextManifest manifestOk(const ContextSnapshot& snap) {
  auto m = manifestOf(snap, [](const ContextEntry& e) { return int64_t(e.path.size()) * 1000; });
  EXPECT_TRUE(m.isOk()) << m.status().toString();
  return m.isOk() ? std::move(m).value() : ContextManifest();
}

std::string entryJson(std::string_view fields) {
  return "{\"mediaType\":\"application/vnd.layerfarm.context.manifest.v1+json\",\"entries\":[" +
         std::string(fields) + "]}";
}

std::string errorOf(std::string_view bytes) {
  auto m = parseContextManifest(bytes);
  return m.isOk() ? std::string("(accepted)") : m.status().message();
}

const char* kDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

class ContextManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "ctx";
    writeFile(root_ / "Dockerfile", "FROM scratch\nCOPY . /\n");
    writeFile(root_ / "src/main.c", "int main() { return 0; }\n", 0755);
    writeFile(root_ / "src/copy.c", "int main() { return 0; }\n", 04711);
    writeFile(root_ / "weird \"name\"\t.txt", "x");
    fs::create_symlink("main.c", root_ / "src/link");
    ASSERT_EQ(::mkfifo((root_ / "pipe").c_str(), 0600), 0);
  }
  TempDir dir_;
  fs::path root_;
};

TEST_F(ContextManifestTest, RoundTripKeepsEveryFieldAndTheBytesAreCanonical) {
  ContextSnapshot snap = scanOk(root_);
  ContextManifest m = manifestOk(snap);
  ASSERT_EQ(m.entries.size(),
            7u);  // Dockerfile, pipe, src, src/copy.c, src/link, src/main.c, weird
  std::string bytes = encodeContextManifest(m);
  auto back = parseContextManifest(bytes);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, m);
  EXPECT_EQ(encodeContextManifest(*back), bytes);
  // One entry per line, keys in the documented order.
  EXPECT_NE(bytes.find("\n{\"path\":\"src/link\",\"type\":\"symlink\",\"mode\":511,\"mtime\":8000,"
                       "\"target\":\"main.c\"}"),
            std::string::npos)
      << bytes;
  EXPECT_NE(bytes.find("\"path\":\"src/copy.c\",\"type\":\"file\",\"mode\":2505,"),
            std::string::npos);
  EXPECT_NE(bytes.find("\"weird \\\"name\\\"\\u0009.txt\""), std::string::npos) << bytes;
  // Two paths with the same bytes give one digest.
  EXPECT_EQ(manifestFileDigests(m).size(), 3u);
}

TEST_F(ContextManifestTest, SnapshotMatchesTheScanIncludingTheBuilderOnlySplit) {
  writeFile(root_ / ".dockerignore", "Dockerfile\n.dockerignore\n*.txt\n");
  ContextSnapshot scanned = scanOk(root_);
  ASSERT_EQ(scanned.builderOnly().size(), 2u);
  ContextManifest m = manifestOk(scanned);
  std::map<std::string, std::string> blobs;
  for (const auto& e : m.entries) {
    if (e.entry.type == EntryType::kRegular) {
      std::ifstream in(root_ / e.entry.path, std::ios::binary);
      blobs[e.entry.content.toString()] = std::string(std::istreambuf_iterator<char>(in), {});
    }
  }
  int reads = 0;
  auto snap = snapshotOfManifest(m, "Dockerfile", [&](const Digest& d) -> Result<std::string> {
    ++reads;
    return blobs.at(d.toString());
  });
  ASSERT_TRUE(snap.isOk()) << snap.status().toString();
  EXPECT_EQ(snap->entries(), scanned.entries());
  EXPECT_EQ(snap->builderOnly(), scanned.builderOnly());
  EXPECT_EQ(snap->contextDigest(), scanned.contextDigest());
  EXPECT_EQ(reads, 1);  // only the ignore file is read
}

TEST_F(ContextManifestTest, NonUtf8NamesAreRefusedByTheWriterNamingThem) {
  writeFile(root_ / "bad\xff.txt", "x");
  auto m = manifestOf(scanOk(root_), [](const ContextEntry&) { return int64_t{0}; });
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.status().message().find("bad\xff.txt"), std::string::npos);
  EXPECT_NE(m.status().message().find("not valid UTF-8"), std::string::npos);
}

TEST(ContextManifestParse, RefusesMalformedDocumentsNamingTheProblem) {
  EXPECT_EQ(errorOf("not json"), "context manifest: not valid JSON");
  EXPECT_NE(errorOf("{\"mediaType\":\"x\",\"entries\":[]}").find("mediaType"), std::string::npos);
  EXPECT_NE(errorOf(entryJson("") + " ").find("(accepted)"), std::string::npos);
  std::string extra = entryJson("");
  extra.insert(extra.size() - 1, ",\"more\":1");
  EXPECT_NE(errorOf(extra).find("unknown top-level keys"), std::string::npos);
  EXPECT_NE(errorOf(entryJson("1")).find("entry 0: not a JSON object"), std::string::npos);
}

TEST(ContextManifestParse, RefusesBadEntriesNamingThem) {
  struct Case {
    std::string entries;
    std::string expected;
  };
  const std::string file = std::string(
                               ",\"type\":\"file\",\"mode\":420,\"mtime\":1,\"size\":1,"
                               "\"digest\":\"") +
                           kDigest + "\"}";
  const std::string dir = ",\"type\":\"dir\",\"mode\":493,\"mtime\":1}";
  const std::vector<Case> cases = {
      {"{\"path\":\"../x\"" + file, "entry 0 \"../x\": path leaves the context"},
      {"{\"path\":\"/etc\"" + file, "absolute path"},
      {"{\"path\":\"a//b\"" + file, "empty path component"},
      {"{\"path\":\"a/./b\"" + file, "\".\" component"},
      {"{\"path\":\"\"" + file, "empty path"},
      {"{\"path\":\"a/.wh.b\"" + file, "whiteout"},
      {"{\"path\":\"b\"" + file + ",{\"path\":\"a\"" + file, "entry 1 \"a\": out of order"},
      {"{\"path\":\"a\"" + file + ",{\"path\":\"a\"" + file, "listed twice"},
      {"{\"path\":\"a\"" + file + ",{\"path\":\"a/b\"" + file,
       "below \"a\", which is not a directory"},
      {"{\"path\":\"a\",\"type\":\"socket\",\"mode\":420,\"mtime\":1}", "unknown type \"socket\""},
      {"{\"path\":\"a\",\"type\":\"dir\",\"mode\":4096,\"mtime\":1}", "\"mode\" out of range"},
      {"{\"path\":\"a\",\"type\":\"dir\",\"mode\":-1,\"mtime\":1}", "\"mode\" out of range"},
      {"{\"path\":\"a\",\"type\":\"dir\",\"mode\":\"x\",\"mtime\":1}",
       "\"mode\" is not an integer"},
      {"{\"path\":\"a\",\"type\":\"dir\",\"mtime\":1}", "missing \"mode\""},
      {"{\"path\":\"a\",\"type\":\"dir\",\"mode\":1,\"mtime\":1,\"size\":3}", "unexpected keys"},
      {"{\"path\":\"a\",\"type\":\"file\",\"mode\":1,\"mtime\":1,\"size\":1,\"digest\":\"md5:x\"}",
       "digest:"},
      {"{\"path\":\"a\",\"type\":\"symlink\",\"mode\":511,\"mtime\":1,\"target\":\"\"}",
       "symlink target empty"},
      {"{\"path\":\"a\",\"type\":\"char\",\"mode\":438,\"mtime\":1,\"major\":1}",
       "missing \"minor\""},
      {"{\"path\":\"a\xc0\xaf\"" + dir, "(accepted)"},  // nlohmann refuses invalid UTF-8 itself
  };
  for (const Case& c : cases) {
    std::string got = errorOf(entryJson(c.entries));
    if (c.expected == "(accepted)") {
      EXPECT_NE(got, "(accepted)") << c.entries;
    } else {
      EXPECT_NE(got.find(c.expected), std::string::npos) << c.entries << " -> " << got;
    }
  }
}

TEST(ContextManifestParse, AcceptsAnEntryBelowADirectoryAndUnlistedParents) {
  const std::string dir = ",\"type\":\"dir\",\"mode\":493,\"mtime\":1}";
  auto m = parseContextManifest(entryJson("{\"path\":\"a\"" + dir +
                                          ",{\"path\":\"a-b\",\"type\":"
                                          "\"fifo\",\"mode\":420,\"mtime\":1},{\"path\":\"a/b\"" +
                                          dir + ",{\"path\":\"x/y/z\"" + dir));
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  EXPECT_EQ(m->entries.size(), 4u);
}

TEST(ContextManifestParse, RefusesOversizedDocuments) {
  std::string big(kMaxManifestBytes + 1, ' ');
  auto m = parseContextManifest(big);
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace lf::context
