#include "common/context/context_scanner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/context/safe_open.h"
#include "tests/support/temp_dir.h"

namespace lf::context {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

std::vector<std::string> paths(const std::vector<ContextEntry>& entries) {
  std::vector<std::string> out;
  for (const ContextEntry& e : entries) out.push_back(e.path);
  return out;
}

ContextSnapshot scanOk(const fs::path& root, const ScanOptions& options = {}) {
  auto snap = scanContext(root, options);
  EXPECT_TRUE(snap.isOk()) << snap.status().toString();
  return snap.isOk() ? std::move(snap).value() : ContextSnapshot();
}

void chmodOrFail(const fs::path& p, mode_t mode) {
  ASSERT_EQ(::chmod(p.c_str(), mode), 0) << p << ": " << std::strerror(errno);
}

TEST(ScanContext, RecordsTypesModesSizesAndDigests) {
  TempDir dir;
  dir.write("b.txt", "hello");
  dir.write("a/z.bin", std::string("\0\1\2", 3));
  dir.write("a.txt", "");
  chmodOrFail(dir / "a.txt", 0640);
  ASSERT_EQ(::symlink("b.txt", (dir / "link").c_str()), 0);

  ContextSnapshot snap = scanOk(dir.path());
  // Byte order: "a.txt" < "a/z.bin" because '.' (0x2e) sorts before '/' (0x2f).
  EXPECT_EQ(paths(snap.entries()),
            (std::vector<std::string>{"a", "a.txt", "a/z.bin", "b.txt", "link"}));
  const ContextEntry* b = snap.find("b.txt");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, EntryType::kRegular);
  EXPECT_EQ(b->size, 5u);
  EXPECT_EQ(b->content, Digest::sha256Of("hello"));
  EXPECT_EQ(snap.find("a.txt")->mode, 0640u);
  EXPECT_EQ(snap.find("a.txt")->content, Digest::sha256Of(""));
  EXPECT_EQ(snap.find("a/z.bin")->content, Digest::sha256Of(std::string("\0\1\2", 3)));
  EXPECT_EQ(snap.find("./a/")->type, EntryType::kDirectory);
  const ContextEntry* link = snap.find("link");
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->type, EntryType::kSymlink);
  EXPECT_EQ(link->link_target, "b.txt");
  EXPECT_EQ(link->size, 5u);
  EXPECT_TRUE(link->content.empty());
  EXPECT_EQ(snap.totalFileBytes(), 8u);
}

TEST(ScanContext, IgnoredFilesAbsentAndExceptionsInsideExcludedDirsPresent) {
  TempDir dir;
  dir.write(".dockerignore", "build\n!build/keep\nnode_modules\n!**/LICENSE\n*.log\n");
  dir.write("build/keep", "k");
  dir.write("build/other", "o");
  dir.write("node_modules/pkg/index.js", "x");
  dir.write("node_modules/pkg/LICENSE", "MIT");
  dir.write("app.log", "log");
  dir.write("src/main.c", "int main;");
  ContextSnapshot snap = scanOk(dir.path());
  EXPECT_EQ(paths(snap.entries()),
            (std::vector<std::string>{".dockerignore", "build/keep", "node_modules/pkg/LICENSE",
                                      "src", "src/main.c"}));
  // The excluded directories themselves are not sent, but their re-included files are.
  EXPECT_EQ(snap.find("build"), nullptr);
  auto build_digest = snap.digestOf("build");
  ASSERT_TRUE(build_digest.isOk()) << build_digest.status().toString();
}

TEST(ScanContext, SymlinksAreRecordedNotFollowed) {
  TempDir outside;
  outside.write("secret/data", "do not read");
  TempDir dir;
  ASSERT_EQ(::symlink((outside / "secret").c_str(), (dir / "escape").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (dir / "passwd").c_str()), 0);
  ASSERT_EQ(::symlink("does/not/exist", (dir / "dangling").c_str()), 0);
  ContextSnapshot snap = scanOk(dir.path());
  EXPECT_EQ(paths(snap.entries()), (std::vector<std::string>{"dangling", "escape", "passwd"}));
  EXPECT_EQ(snap.find("escape")->link_target, (outside / "secret").string());
  EXPECT_EQ(snap.find("passwd")->type, EntryType::kSymlink);
  EXPECT_TRUE(snap.find("passwd")->content.empty());
  EXPECT_TRUE(snap.under("escape").empty());
}

TEST(ScanContext, SpecialBitsFifosAndSockets) {
  TempDir dir;
  dir.write("suid", "x");
  chmodOrFail(dir / "suid", 04755);
  fs::create_directories(dir / "sgid");
  chmodOrFail(dir / "sgid", 02775);
  fs::create_directories(dir / "tmp");
  chmodOrFail(dir / "tmp", 01777);
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0600), 0);  // must not be opened (it would block)

  int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock_path = (dir / "sock").string();
  ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);

  ContextSnapshot snap = scanOk(dir.path());
  ::close(sock);
  EXPECT_EQ(snap.find("suid")->mode, 04755u);
  EXPECT_EQ(snap.find("sgid")->mode, 02775u);
  EXPECT_EQ(snap.find("tmp")->mode, 01777u);
  EXPECT_EQ(snap.find("pipe")->type, EntryType::kFifo);
  EXPECT_EQ(snap.find("sock"), nullptr);
  ASSERT_EQ(snap.skipped().size(), 1u);
  EXPECT_EQ(snap.skipped()[0].path, "sock");
}

TEST(ScanContext, DigestIgnoresMtimeAndOwnerButNotContentOrMode) {
  TempDir dir;
  dir.write("src/a.c", "int a;");
  dir.write("src/b.c", "int b;");
  auto digests = [&] {
    ContextSnapshot s = scanOk(dir.path());
    return std::make_pair(*s.digestOf(""), s.contextDigest());
  };
  auto base = digests();

  timespec times[2] = {{1000000, 0}, {2000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "src/a.c").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir / "src").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(digests(), base) << "mtime must not change the digest";

  if (::geteuid() == 0) {
    ASSERT_EQ(::lchown((dir / "src/a.c").c_str(), 4321, 4321), 0);
    EXPECT_EQ(digests(), base) << "owner must not change the digest";
  }

  chmodOrFail(dir / "src/a.c", 0755);
  auto after_mode = digests();
  EXPECT_NE(after_mode.first, base.first) << "mode must change the digest";
  dir.write("src/a.c", "int A;");
  EXPECT_NE(digests().first, after_mode.first) << "content must change the digest";
}

TEST(ScanContext, SubtreeDigestsLookupsAndIteration) {
  TempDir dir;
  dir.write("one/x/f", "same");
  dir.write("two/x/f", "same");
  dir.write("src/a", "a");
  dir.write("src2/b", "b");
  dir.write("src.txt", "c");
  ContextSnapshot snap = scanOk(dir.path());
  EXPECT_EQ(*snap.digestOf("one"), *snap.digestOf("two/"));
  EXPECT_NE(*snap.digestOf("one"), *snap.digestOf("src"));
  EXPECT_EQ(*snap.digestOf("."), *snap.digestOf(""));
  EXPECT_EQ(snap.digestOf("missing").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(snap.digestOf("../x").isOk());
  std::vector<std::string> under;
  for (const ContextEntry& e : snap.under("src")) under.push_back(e.path);
  EXPECT_EQ(under, (std::vector<std::string>{"src/a"}));
  EXPECT_EQ(snap.under("").size(), snap.entries().size());
  EXPECT_EQ(snap.find("/src/a")->path, "src/a");
  EXPECT_EQ(snap.find("../src/a"), nullptr);

  ContextSnapshot empty;
  EXPECT_TRUE(empty.under("src").empty());
  EXPECT_EQ(empty.find("src"), nullptr);
  EXPECT_TRUE(empty.digestOf("").isOk());
  EXPECT_EQ(empty.digestOf("src").status().code(), StatusCode::kNotFound);
}

TEST(ScanContext, DockerfileAndIgnoreFileAreSentButNotCopyable) {
  TempDir dir;
  dir.write("Dockerfile", "FROM scratch\n");
  dir.write(".dockerignore", "Dockerfile\n.dockerignore\n");
  dir.write("app", "bin");
  ContextSnapshot snap = scanOk(dir.path());
  EXPECT_EQ(paths(snap.entries()), (std::vector<std::string>{"app"}));
  EXPECT_EQ(paths(snap.builderOnly()), (std::vector<std::string>{".dockerignore", "Dockerfile"}));
  EXPECT_EQ(snap.builderOnly()[1].content, Digest::sha256Of("FROM scratch\n"));
  Digest copy_digest = *snap.digestOf("");
  Digest upload_digest = snap.contextDigest();

  dir.write("Dockerfile", "FROM scratch\nCOPY app /\n");
  ContextSnapshot changed = scanOk(dir.path());
  EXPECT_EQ(*changed.digestOf(""), copy_digest) << "COPY cannot see the Dockerfile";
  EXPECT_NE(changed.contextDigest(), upload_digest) << "but the upload contains it";
}

TEST(ScanContext, PerDockerfileIgnoreFileAndExplicitPatterns) {
  TempDir dir;
  dir.write(".dockerignore", "a\n");
  dir.write("docker/app.Dockerfile.dockerignore", "b\n");
  dir.write("docker/app.Dockerfile", "FROM scratch\n");
  dir.write("a", "a");
  dir.write("b", "b");
  ScanOptions options;
  options.dockerfile = "docker/app.Dockerfile";
  ContextSnapshot snap = scanOk(dir.path(), options);
  EXPECT_NE(snap.find("a"), nullptr);
  EXPECT_EQ(snap.find("b"), nullptr);

  std::vector<std::string> patterns = {"docker", "a", "b"};
  options.ignore = *DockerIgnore::fromPatterns(patterns);
  ContextSnapshot explicit_snap = scanOk(dir.path(), options);
  EXPECT_EQ(paths(explicit_snap.entries()), (std::vector<std::string>{".dockerignore"}));
  // The Dockerfile sits in an excluded directory: still sent, for the builder only.
  EXPECT_EQ(paths(explicit_snap.builderOnly()),
            (std::vector<std::string>{"docker/app.Dockerfile"}));
}

TEST(ScanContext, BadIgnoreFileIsAnErrorNamingTheLine) {
  TempDir dir;
  dir.write(".dockerignore", "ok\n[oops\n");
  auto snap = scanContext(dir.path(), {});
  ASSERT_FALSE(snap.isOk());
  EXPECT_NE(snap.status().message().find(".dockerignore:2:"), std::string::npos)
      << snap.status().message();
}

TEST(ScanContext, IgnoreFileSymlinkIsRefused) {
  TempDir outside;
  outside.write("patterns", "*\n");
  TempDir dir;
  ASSERT_EQ(::symlink((outside / "patterns").c_str(), (dir / ".dockerignore").c_str()), 0);
  auto snap = scanContext(dir.path(), {});
  ASSERT_FALSE(snap.isOk());
  EXPECT_NE(snap.status().message().find(".dockerignore"), std::string::npos)
      << snap.status().message();
}

TEST(ScanContext, MissingRootIsAnError) {
  TempDir dir;
  auto snap = scanContext(dir / "nope", {});
  ASSERT_FALSE(snap.isOk());
  EXPECT_EQ(snap.status().code(), StatusCode::kNotFound);
  EXPECT_NE(snap.status().message().find("nope"), std::string::npos);
}

TEST(ScanContext, FileVanishedDuringScanNamesThePath) {
  TempDir dir;
  dir.write("keep", "k");
  dir.write("sub/gone", "bye");
  ScanOptions options;
  options.after_walk = [&](const WalkStats& stats) {
    EXPECT_EQ(stats.regular_files, 2u);
    fs::remove(dir / "sub/gone");
  };
  auto snap = scanContext(dir.path(), options);
  ASSERT_FALSE(snap.isOk());
  EXPECT_EQ(snap.status().code(), StatusCode::kNotFound);
  EXPECT_NE(snap.status().message().find("\"sub/gone\" vanished"), std::string::npos)
      << snap.status().message();
}

TEST(ScanContext, FileChangedSizeDuringScanNamesThePath) {
  TempDir dir;
  dir.write("grows", "1234");
  ScanOptions options;
  options.after_walk = [&](const WalkStats&) { dir.write("grows", "123456789"); };
  auto snap = scanContext(dir.path(), options);
  ASSERT_FALSE(snap.isOk());
  EXPECT_NE(snap.status().message().find("\"grows\" changed size"), std::string::npos)
      << snap.status().message();
}

TEST(ScanContext, FileReplacedBySymlinkDuringScanIsNotFollowed) {
  TempDir outside;
  outside.write("secret", "1234");  // same size as the original, to pass any size check
  TempDir dir;
  dir.write("d/f", "abcd");
  ScanOptions options;
  options.after_walk = [&](const WalkStats&) {
    fs::remove_all(dir / "d");
    ASSERT_EQ(::symlink(outside.path().c_str(), (dir / "d").c_str()), 0);
  };
  auto snap = scanContext(dir.path(), options);
  ASSERT_FALSE(snap.isOk());
  EXPECT_NE(snap.status().message().find("d/f"), std::string::npos) << snap.status().message();
}

// Root ignores permission bits, so the unreadable-file check runs in a child that dropped to an
// unprivileged user; as a normal user it runs directly.
TEST(ScanContext, UnreadableFileNamesThePath) {
  TempDir dir;
  dir.write("ok", "fine");
  dir.write("locked/secret", "no");
  chmodOrFail(dir / "locked/secret", 0000);
  chmodOrFail(dir.path(), 0755);
  auto check = [&]() -> std::string {
    auto snap = scanContext(dir.path(), {});
    if (snap.isOk()) return "scan succeeded";
    if (snap.status().code() != StatusCode::kPermissionDenied) return snap.status().toString();
    if (snap.status().message().find("\"locked/secret\"") == std::string::npos) {
      return snap.status().toString();
    }
    return "";
  };
  if (::geteuid() != 0) {
    EXPECT_EQ(check(), "");
    return;
  }
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string msg;
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      msg = "SKIP: cannot drop to uid 65534";
    } else {
      msg = check();
    }
    ssize_t ignored = ::write(pipe_fds[1], msg.data(), msg.size());
    (void)ignored;  // the parent sees a short message and fails the test
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0;) msg.append(buf, n);
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  if (msg.starts_with("SKIP: ")) GTEST_SKIP() << msg.substr(6);
  EXPECT_EQ(msg, "");
}

TEST(ScanContext, LargeFileHashMatchesAndThreadCountDoesNotMatter) {
  TempDir dir;
  std::string big((20u << 20) + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  dir.write("big.bin", big);
  for (int i = 0; i < 200; ++i) {
    dir.write("small/" + std::to_string(i), std::string(static_cast<size_t>(i) * 37, 'a' + i % 26));
  }
  ScanOptions one;
  one.threads = 1;
  ScanOptions many;
  many.threads = 4;
  ContextSnapshot a = scanOk(dir.path(), one);
  ContextSnapshot b = scanOk(dir.path(), many);
  EXPECT_EQ(a.find("big.bin")->content, Digest::sha256Of(big));
  EXPECT_EQ(a.entries(), b.entries());
  EXPECT_EQ(a.contextDigest(), b.contextDigest());
}

TEST(ScanContext, HardLinksShareOneHash) {
  TempDir dir;
  dir.write("orig", "linked content");
  ASSERT_EQ(::link((dir / "orig").c_str(), (dir / "alias").c_str()), 0);
  ContextSnapshot snap = scanOk(dir.path());
  EXPECT_EQ(snap.find("alias")->content, Digest::sha256Of("linked content"));
  EXPECT_EQ(snap.find("orig")->content, Digest::sha256Of("linked content"));
}

// Last in the file: the fallback switch lasts for the rest of the process (ctest runs every test
// in a process of its own anyway).
TEST(ScanContext, WorksAndStaysInsideWithoutOpenat2) {
  forceOpenat2FallbackForTesting();
  TempDir outside;
  outside.write("secret", "1234");
  TempDir dir;
  dir.write(".dockerignore", "ignored\n");
  dir.write("ignored", "x");
  dir.write("d/f", "abcd");
  ASSERT_EQ(::symlink(outside.path().c_str(), (dir / "escape").c_str()), 0);
  ContextSnapshot snap = scanOk(dir.path());
  EXPECT_EQ(paths(snap.entries()),
            (std::vector<std::string>{".dockerignore", "d", "d/f", "escape"}));
  EXPECT_EQ(snap.find("d/f")->content, Digest::sha256Of("abcd"));

  ScanOptions options;
  options.after_walk = [&](const WalkStats&) {
    fs::remove_all(dir / "d");
    ASSERT_EQ(::symlink(outside.path().c_str(), (dir / "d").c_str()), 0);
  };
  auto swapped = scanContext(dir.path(), options);
  ASSERT_FALSE(swapped.isOk());
  EXPECT_EQ(swapped.status().code(), StatusCode::kFailedPrecondition)
      << swapped.status().toString();
}

}  // namespace
}  // namespace lf::context
