#include "common/context/context_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "common/blob/directory_blob_store.h"
#include "common/context/context_scanner.h"
#include "tests/support/temp_dir.h"

namespace lf::context {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

ContextSnapshot scanOk(const fs::path& root, std::string dockerfile = "Dockerfile") {
  ScanOptions options;
  options.dockerfile = std::move(dockerfile);
  auto snap = scanContext(root, options);
  EXPECT_TRUE(snap.isOk()) << snap.status().toString();
  return snap.isOk() ? std::move(snap).value() : ContextSnapshot();
}

Result<std::string> tarOf(const fs::path& root, const ContextSnapshot& snap) {
  std::string out;
  LF_RETURN_IF_ERROR(writeContextTar(root, snap, [&](std::string_view chunk) {
    out.append(chunk);
    return Status::ok();
  }));
  return out;
}

Result<ContextSnapshot> readTar(std::string_view tar, std::string_view dockerfile = "Dockerfile") {
  size_t pos = 0;
  return readContextTar(
      [&](void* buf, size_t size) -> Result<size_t> {
        size_t n = std::min(size, tar.size() - pos);
        std::memcpy(buf, tar.data() + pos, n);
        pos += n;
        return n;
      },
      dockerfile);
}

// A tar written entry by entry with libarchive, for hostile inputs the writer refuses to make.
class RawTar {
 public:
  RawTar() {
    ar_ = archive_write_new();
    archive_write_set_format_pax_restricted(ar_);
    archive_write_open_memory(ar_, buf_.data(), buf_.size(), &used_);
  }
  ~RawTar() { archive_write_free(ar_); }

  RawTar& add(const std::string& name, mode_t type, std::string_view data = "",
              const char* link = nullptr, const char* hardlink = nullptr, bool xattr = false) {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    if (link != nullptr) archive_entry_copy_symlink(e, link);
    if (hardlink != nullptr) archive_entry_copy_hardlink(e, hardlink);
    if (xattr) archive_entry_xattr_add_entry(e, "security.capability", "\1", 1);
    EXPECT_EQ(archive_write_header(ar_, e), ARCHIVE_OK) << archive_error_string(ar_);
    if (!data.empty()) archive_write_data(ar_, data.data(), data.size());
    archive_entry_free(e);
    return *this;
  }
  std::string finish() {
    archive_write_close(ar_);
    return std::string(buf_.data(), used_);
  }

 private:
  archive* ar_;
  std::vector<char> buf_ = std::vector<char>(1 << 20);
  size_t used_ = 0;
};

void expectRefused(const std::string& tar, std::string_view needle) {
  auto snap = readTar(tar);
  ASSERT_FALSE(snap.isOk()) << "accepted a tar that should mention " << needle;
  EXPECT_NE(snap.status().message().find(needle), std::string::npos) << snap.status().toString();
}

void makeTree(const TempDir& dir) {
  dir.write("Dockerfile", "FROM scratch\nCOPY . /\n");
  dir.write("src/main.c", "int main() { return 0; }\n");
  dir.write("src/empty", "");
  dir.write("a b/caf\xc3\xa9 \xe2\x9c\x93.txt", "non-ascii name");
  dir.write(std::string(200, 'd') + "/" + std::string(150, 'f'), "long name");
  ASSERT_EQ(::chmod((dir / "src/main.c").c_str(), 04755), 0);
  ASSERT_EQ(::symlink("src/main.c", (dir / "link").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  fs::create_directories(dir / "emptydir");
}

TEST(ContextTar, RoundTripGivesTheSameSnapshot) {
  TempDir dir;
  makeTree(dir);
  dir.write(".dockerignore", "*.log\nDockerfile\n.dockerignore\n");
  dir.write("x.log", "ignored");
  ContextSnapshot snap = scanOk(dir.path());
  ASSERT_EQ(snap.builderOnly().size(), 2u);  // Dockerfile and .dockerignore ignore themselves
  auto tar = tarOf(dir.path(), snap);
  ASSERT_TRUE(tar.isOk()) << tar.status().toString();
  auto back = readTar(*tar);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->entries(), snap.entries());
  EXPECT_EQ(back->builderOnly(), snap.builderOnly());
  EXPECT_EQ(back->contextDigest(), snap.contextDigest());
  EXPECT_EQ(back->find("x.log"), nullptr);
  EXPECT_EQ(back->find("link")->link_target, "src/main.c");
  EXPECT_EQ(back->find("src/main.c")->mode, 04755u);
  EXPECT_EQ(back->find("fifo")->type, EntryType::kFifo);
}

TEST(ContextTar, PerDockerfileIgnoreFileDecidesBuilderOnly) {
  TempDir dir;
  dir.write("docker/app.Dockerfile", "FROM scratch\n");
  dir.write("docker/app.Dockerfile.dockerignore", "docker\n");
  dir.write(".dockerignore", "nothing-matches\n");
  dir.write("keep.txt", "k");
  ContextSnapshot snap = scanOk(dir.path(), "docker/app.Dockerfile");
  ASSERT_EQ(snap.builderOnly().size(), 2u);
  auto tar = tarOf(dir.path(), snap);
  ASSERT_TRUE(tar.isOk()) << tar.status().toString();
  auto back = readTar(*tar, "./docker/app.Dockerfile");
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->entries(), snap.entries());
  EXPECT_EQ(back->builderOnly(), snap.builderOnly());
  // Read with another Dockerfile name, the per-Dockerfile ignore file does not apply.
  auto other = readTar(*tar, "Dockerfile");
  ASSERT_TRUE(other.isOk()) << other.status().toString();
  EXPECT_TRUE(other->builderOnly().empty());
}

TEST(ContextTar, SameTreeGivesTheSameBytes) {
  TempDir dir;
  makeTree(dir);
  ContextSnapshot snap = scanOk(dir.path());
  auto a = tarOf(dir.path(), snap);
  auto b = tarOf(dir.path(), scanOk(dir.path()));
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ(Digest::sha256Of(*a), Digest::sha256Of(*b));

  auto store = blob::DirectoryBlobStore::open(dir.path() / "../" /
                                              (dir.path().filename().string() + "-store"));
  ASSERT_TRUE(store.isOk()) << store.status().toString();
  auto info = writeContextTarToStore(dir.path(), snap, **store);
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ(info->digest, Digest::sha256Of(*a));
  EXPECT_EQ(info->size, a->size());
  auto back = readContextTar(**store, info->digest);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(back->entries(), snap.entries());
  std::error_code ec;
  fs::remove_all(dir.path().parent_path() / (dir.path().filename().string() + "-store"), ec);
}

TEST(ContextTar, MtimeChangesTheTarButNotTheSnapshot) {
  TempDir dir;
  makeTree(dir);
  ContextSnapshot before = scanOk(dir.path());
  auto a = tarOf(dir.path(), before);
  struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "src/main.c").c_str(), times, 0), 0);
  ContextSnapshot after = scanOk(dir.path());
  auto b = tarOf(dir.path(), after);
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(before.contextDigest(), after.contextDigest());
}

TEST(ContextTar, WriterRefusesWhiteoutNames) {
  TempDir dir;
  dir.write("sub/.wh.x", "");
  auto tar = tarOf(dir.path(), scanOk(dir.path()));
  ASSERT_FALSE(tar.isOk());
  EXPECT_NE(tar.status().message().find("sub/.wh.x"), std::string::npos) << tar.status().toString();
}

TEST(ContextTar, WriterRefusesNamesThatAreNotUtf8) {
  TempDir dir;
  dir.write("ok-\xc3\xa9", "");
  dir.write("bad-\xff", "");
  auto tar = tarOf(dir.path(), scanOk(dir.path()));
  ASSERT_FALSE(tar.isOk());
  EXPECT_NE(tar.status().message().find("\"bad-\xff\": name or symlink target is not valid UTF-8"),
            std::string::npos)
      << tar.status().toString();
}

TEST(ContextTar, AsciiNamesGetPlainUstarHeaders) {
  // No pax header for short ASCII names: 512 header + 512 data per file, 1024 end marker.
  TempDir dir;
  dir.write("a.txt", "a");
  dir.write("b.txt", "b");
  auto tar = tarOf(dir.path(), scanOk(dir.path()));
  ASSERT_TRUE(tar.isOk()) << tar.status().toString();
  EXPECT_EQ(tar->size(), 4u * 512 + 1024);
  EXPECT_EQ(tar->find("PaxHeader"), std::string::npos);
}

TEST(ContextTar, FileChangedAfterTheScanIsAnError) {
  TempDir dir;
  dir.write("a.txt", "one");
  dir.write("b.txt", "two");
  ContextSnapshot snap = scanOk(dir.path());
  dir.write("b.txt", "TWO");  // same size, other bytes
  auto tar = tarOf(dir.path(), snap);
  ASSERT_FALSE(tar.isOk());
  EXPECT_NE(tar.status().message().find("b.txt changed while the context was being sent"),
            std::string::npos)
      << tar.status().toString();

  fs::remove(dir / "b.txt");
  ASSERT_EQ(::symlink("a.txt", (dir / "b.txt").c_str()), 0);
  tar = tarOf(dir.path(), snap);
  ASSERT_FALSE(tar.isOk());
  EXPECT_NE(tar.status().message().find("b.txt changed"), std::string::npos)
      << tar.status().toString();

  fs::remove(dir / "b.txt");
  tar = tarOf(dir.path(), snap);
  ASSERT_FALSE(tar.isOk());
  EXPECT_NE(tar.status().message().find("b.txt"), std::string::npos) << tar.status().toString();
}

TEST(ContextTar, SinkErrorIsReturned) {
  TempDir dir;
  dir.write("a.txt", std::string(100000, 'a'));
  ContextSnapshot snap = scanOk(dir.path());
  Status s = writeContextTar(dir.path(), snap,
                             [](std::string_view) { return unavailable("upload failed"); });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("upload failed"), std::string::npos);
}

TEST(ContextTar, ReaderRefusesHostileTars) {
  expectRefused(RawTar().add("../x", AE_IFREG, "x").finish(), "\"../x\": path leaves the context");
  expectRefused(RawTar().add("a/../../x", AE_IFREG, "x").finish(), "path leaves the context");
  expectRefused(RawTar().add("/etc/passwd", AE_IFREG, "x").finish(),
                "\"/etc/passwd\": absolute path");
  expectRefused(
      RawTar().add("a", AE_IFREG, "1").add("b", AE_IFREG).add("a", AE_IFREG, "2").finish(),
      "\"a\": appears twice");
  expectRefused(RawTar().add("d/", AE_IFDIR).add("d", AE_IFDIR).finish(), "\"d\": appears twice");
  expectRefused(RawTar().add("a", AE_IFREG, "1").add("b", AE_IFREG, "", nullptr, "a").finish(),
                "\"b\": hard links are not allowed");
  expectRefused(RawTar().add("x/.wh.y", AE_IFREG).finish(),
                "\"x/.wh.y\": name of the layer whiteout");
  expectRefused(RawTar().add(".wh..wh..opq", AE_IFREG).finish(), "whiteout");
  expectRefused(RawTar().add("./a", AE_IFREG).finish(), "\"./a\": not a clean relative path");
  expectRefused(RawTar().add("a//b", AE_IFREG).finish(), "not a clean relative path");
  expectRefused(RawTar().add(std::string(5000, 'n'), AE_IFREG).finish(), "longer than 4096");
  expectRefused(RawTar().add("l", AE_IFLNK, "", std::string(5000, 't').c_str()).finish(),
                "\"l\": symlink target longer than 4096");
  expectRefused(RawTar().add("x", AE_IFREG, "", nullptr, nullptr, true).finish(),
                "\"x\": extended attributes and ACLs are not allowed");
  expectRefused(RawTar().add("link", AE_IFLNK, "", "/etc").add("link/passwd", AE_IFREG).finish(),
                "\"link/passwd\": parent \"link\" is not a directory");
  expectRefused(RawTar().add(".dockerignore", AE_IFDIR).finish(), "not a regular file");
  expectRefused(
      "this is not a tar archive at all, just some bytes padded out" + std::string(600, 'x'),
      "context tar");
}

TEST(ContextTar, ReaderAcceptsDevicesFifosAndMissingParents) {
  // Devices and FIFOs are part of a snapshot (Docker sends them); the worker decides what it can
  // create. A file without its parent directory entry is what an exception inside an excluded
  // directory produces.
  RawTar raw;
  raw.add("dev/null", AE_IFCHR).add("fifo", AE_IFIFO).add("only/child", AE_IFREG, "c");
  auto snap = readTar(raw.finish());
  ASSERT_TRUE(snap.isOk()) << snap.status().toString();
  EXPECT_EQ(snap->entries().size(), 3u);
  EXPECT_EQ(snap->find("only/child")->content, Digest::sha256Of("c"));
}

TEST(ContextTar, EmptyContextRoundTrips) {
  TempDir dir;
  ContextSnapshot snap = scanOk(dir.path());
  auto tar = tarOf(dir.path(), snap);
  ASSERT_TRUE(tar.isOk()) << tar.status().toString();
  auto back = readTar(*tar);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_TRUE(back->entries().empty());
  auto zero = readTar("");
  EXPECT_TRUE(zero.isOk()) << zero.status().toString();
}

TEST(ContextTar, ReadErrorIsReturned) {
  auto snap = readContextTar([](void*, size_t) -> Result<size_t> { return dataLoss("bad blob"); });
  ASSERT_FALSE(snap.isOk());
  EXPECT_EQ(snap.status().code(), StatusCode::kDataLoss);
}

}  // namespace
}  // namespace lf::context
