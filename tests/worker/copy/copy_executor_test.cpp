// COPY destination rules, wildcards, modes, times and symlinks (no root needed).

#include "worker/copy/copy_executor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "tests/support/temp_dir.h"
#include "tests/worker/copy/copy_test_util.h"

namespace lf::worker {
namespace {

using lf::testing::readFile;

TEST(MatchPatternTest, FollowsGoFilepathMatch) {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const Case cases[] = {
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "a", true},
      {"a*", "abc", true},
      {"a*b*c*d*e*", "axbxcxdxe", true},
      {"ab[c]", "abc", true},
      {"ab[b-d]", "abc", true},
      {"ab[e-g]", "abc", false},
      {"ab[^c]", "abc", false},
      {"ab[^b-d]", "abe", true},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "a*b", true},
      {"a\\*b", "ab", false},
      {"a?b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a[^a]b",
       "a\xe2\x98\xba"
       "b",
       true},
      {"a???b",
       "a\xe2\x98\xba"
       "b",
       false},
      {"*x", "xxx", true},
      {"[\\]a]", "]", true},
      {"[\\-]", "-", true},
      {"[x\\-]", "z", false},
      {"hom?", "home.txt", false},
      {"*", ".hidden", true},
      {"a*", "", false},
      {"", "", true},
      {"", "a", false},
  };
  for (const Case& c : cases) {
    auto m = matchPattern(c.pattern, c.name);
    ASSERT_TRUE(m.isOk()) << c.pattern << " " << m.status().toString();
    EXPECT_EQ(*m, c.match) << "pattern " << c.pattern << " name " << c.name;
  }
  for (const char* bad : {"[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[a-b-c]", "a\\"}) {
    auto m = matchPattern(bad, "a");
    EXPECT_FALSE(m.isOk()) << bad;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(CopyTest, FileWithoutTrailingSlashBecomesTheDestinationPath) {
  writeCtx("a.txt", "hello");
  auto stats = copy(request({"a.txt"}, "/dst"));
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(readFile(root() / "dst"), "hello");
  EXPECT_EQ(stats->files, 1u);
  EXPECT_EQ(stats->bytes, 5u);
}

TEST_F(CopyTest, TrailingSlashPutsTheFileInsideAndCreatesParents) {
  writeCtx("a.txt", "hello");
  auto stats = copy(request({"a.txt"}, "/x/y/dst/"));
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(readFile(root() / "x/y/dst/a.txt"), "hello");
  EXPECT_EQ(modeOf(root() / "x"), 0755u);
  EXPECT_EQ(modeOf(root() / "x/y/dst"), 0755u);
  EXPECT_EQ(stats->directories, 3u);
}

TEST_F(CopyTest, FileIntoAnExistingDirectoryOrSymlinkToOne) {
  writeCtx("a.txt", "hello");
  fs::create_directories(root() / "existing");
  fs::create_directories(root() / "usr/lib");
  fs::create_directory_symlink("usr/lib", root() / "lib");
  ASSERT_TRUE(copy(request({"a.txt"}, "/existing")).isOk());
  EXPECT_EQ(readFile(root() / "existing/a.txt"), "hello");
  ASSERT_TRUE(copy(request({"a.txt"}, "/lib")).isOk());
  EXPECT_EQ(readFile(root() / "usr/lib/a.txt"), "hello");
  EXPECT_TRUE(fs::is_symlink(root() / "lib"));
}

TEST_F(CopyTest, DirectorySourceCopiesItsContentsNotItself) {
  writeCtx("app/main.py", "print()");
  writeCtx("app/pkg/mod.py", "x = 1");
  auto stats = copy(request({"app/"}, "/srv"));
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(readFile(root() / "srv/main.py"), "print()");
  EXPECT_EQ(readFile(root() / "srv/pkg/mod.py"), "x = 1");
  EXPECT_FALSE(fs::exists(root() / "srv/app"));
  EXPECT_EQ(stats->files, 2u);
}

TEST_F(CopyTest, WholeContextWithDotAndRelativeDestinationUsesWorkdir) {
  writeCtx("a.txt", "A");
  writeCtx("sub/b.txt", "B");
  CopyRequest r = request({"."}, ".");
  r.working_dir = "/app";
  ASSERT_TRUE(copy(r).isOk());
  EXPECT_EQ(readFile(root() / "app/a.txt"), "A");
  EXPECT_EQ(readFile(root() / "app/sub/b.txt"), "B");

  CopyRequest f = request({"a.txt"}, "conf/");
  f.working_dir = "/work";
  ASSERT_TRUE(copy(f).isOk());
  EXPECT_EQ(readFile(root() / "work/conf/a.txt"), "A");
  CopyRequest dot = request({"a.txt"}, ".");
  dot.working_dir = "/fresh";  // does not exist yet: "." still means a directory
  ASSERT_TRUE(copy(dot).isOk());
  EXPECT_EQ(readFile(root() / "fresh/a.txt"), "A");
}

TEST_F(CopyTest, WildcardsSelectSortedMatches) {
  for (const char* name : {"hom1", "home.txt", "homer", "other", "b.conf", "d.conf"}) {
    writeCtx(name, name);
  }
  writeCtx("dir1/x", "x1");
  writeCtx("dir2/y", "y2");
  ASSERT_TRUE(copy(request({"hom*"}, "/star/")).isOk());
  EXPECT_TRUE(fs::exists(root() / "star/hom1"));
  EXPECT_TRUE(fs::exists(root() / "star/home.txt"));
  EXPECT_TRUE(fs::exists(root() / "star/homer"));
  EXPECT_FALSE(fs::exists(root() / "star/other"));

  ASSERT_TRUE(copy(request({"hom?"}, "/q")).isOk());  // one match: no slash needed
  EXPECT_EQ(readFile(root() / "q"), "hom1");

  ASSERT_TRUE(copy(request({"[a-c].conf"}, "/range/")).isOk());
  EXPECT_TRUE(fs::exists(root() / "range/b.conf"));
  EXPECT_FALSE(fs::exists(root() / "range/d.conf"));

  // After a wildcard, a literal component filters: only dir2 has a "y".
  ASSERT_TRUE(copy(request({"dir*/y"}, "/lit")).isOk());
  EXPECT_EQ(readFile(root() / "lit"), "y2");

  ASSERT_TRUE(copy(request({"dir*/*"}, "/deep/")).isOk());
  EXPECT_EQ(readFile(root() / "deep/x"), "x1");
  EXPECT_EQ(readFile(root() / "deep/y"), "y2");
}

TEST_F(CopyTest, WildcardWithoutMatchNamesThePattern) {
  writeCtx("a.txt", "A");
  auto r = copy(request({"*.nothing"}, "/d/"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("*.nothing"), std::string::npos) << r.status().message();
}

TEST_F(CopyTest, SeveralSourcesNeedADirectoryDestination) {
  writeCtx("a", "A");
  writeCtx("b", "B");
  auto two = copy(request({"a", "b"}, "/d"));
  ASSERT_FALSE(two.isOk());
  EXPECT_EQ(two.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(two.status().message().find("must be a directory and end with a /"), std::string::npos);
  auto glob = copy(request({"[ab]"}, "/d"));
  ASSERT_FALSE(glob.isOk());
  EXPECT_FALSE(fs::exists(root() / "d"));
  ASSERT_TRUE(copy(request({"a", "b"}, "/d/")).isOk());
  EXPECT_EQ(readFile(root() / "d/a"), "A");
  EXPECT_EQ(readFile(root() / "d/b"), "B");
}

TEST_F(CopyTest, MissingSourceErrorNamesItAsWritten) {
  auto r = copy(request({"app/"}, "/srv/"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "COPY app/ /srv/: no such file or directory in the build context: app/");
}

TEST_F(CopyTest, ChmodAppliesToFilesAndDirectories) {
  writeCtx("app/run.sh", "#!/bin/sh");
  writeCtx("app/lib/x", "x");
  CopyRequest r = request({"app"}, "/opt/app");
  r.chmod = "0750";
  ASSERT_TRUE(copy(r).isOk());
  EXPECT_EQ(modeOf(root() / "opt/app/run.sh"), 0750u);
  EXPECT_EQ(modeOf(root() / "opt/app/lib"), 0750u);
  EXPECT_EQ(modeOf(root() / "opt/app/lib/x"), 0750u);
  EXPECT_EQ(modeOf(root() / "opt"), 0755u);  // a created parent, not a copied directory

  for (const char* bad : {"9", "rwx", "75555", "-1", "u+x"}) {
    CopyRequest b = request({"app"}, "/b");
    b.chmod = bad;
    auto result = copy(b);
    ASSERT_FALSE(result.isOk()) << bad;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find("--chmod"), std::string::npos);
  }
}

TEST_F(CopyTest, KeepsModesTimesAndSymlinks) {
  writeCtx("tree/bin/tool", "ELF");
  writeCtx("tree/data", "d");
  ASSERT_EQ(chmod((ctx() / "tree/bin/tool").c_str(), 04751), 0);
  ASSERT_EQ(chmod((ctx() / "tree/data").c_str(), 0600), 0);
  fs::create_symlink("../data", ctx() / "tree/bin/rel");
  fs::create_symlink("/etc/hostname", ctx() / "tree/abs");
  const timespec t1{1'400'000'000, 123'456'789};
  const timespec times[2] = {t1, t1};
  for (const char* rel : {"tree/bin/tool", "tree/bin", "tree"}) {
    ASSERT_EQ(utimensat(AT_FDCWD, (ctx() / rel).c_str(), times, 0), 0);
  }
  ASSERT_EQ(utimensat(AT_FDCWD, (ctx() / "tree/bin/rel").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);

  auto stats = copy(request({"tree"}, "/t"));
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(modeOf(root() / "t/bin/tool"), 04751u);
  EXPECT_EQ(modeOf(root() / "t/data"), 0600u);
  EXPECT_EQ(fs::read_symlink(root() / "t/bin/rel"), "../data");
  EXPECT_EQ(fs::read_symlink(root() / "t/abs"), "/etc/hostname");
  for (const char* rel : {"t/bin/tool", "t/bin", "t", "t/bin/rel"}) {
    struct stat st = lstatOf(root() / rel);
    EXPECT_EQ(st.st_mtim.tv_sec, t1.tv_sec) << rel;
    EXPECT_EQ(st.st_mtim.tv_nsec, t1.tv_nsec) << rel;
  }
  EXPECT_EQ(stats->symlinks, 2u);
}

TEST_F(CopyTest, NamedSymlinkSourceIsFollowedInsideTheContext) {
  writeCtx("real.txt", "real");
  fs::create_symlink("real.txt", ctx() / "link");
  ASSERT_TRUE(copy(request({"link"}, "/d/")).isOk());
  EXPECT_FALSE(fs::is_symlink(root() / "d/link"));
  EXPECT_EQ(readFile(root() / "d/link"), "real");
}

TEST_F(CopyTest, ReplacesFilesAndSymlinksButNotDirectories) {
  writeCtx("src/x", "new");
  writeCtx("f", "file");
  tmp().write("root/dst/y", "old");
  fs::create_directories(root() / "dst/x");
  auto r = copy(request({"src"}, "/dst"));
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("/dst/x"), std::string::npos) << r.status().message();

  fs::create_symlink("y", root() / "dst/link");
  ASSERT_TRUE(copy(request({"f"}, "/dst/link")).isOk());
  EXPECT_FALSE(fs::is_symlink(root() / "dst/link"));
  EXPECT_EQ(readFile(root() / "dst/link"), "file");
  EXPECT_EQ(readFile(root() / "dst/y"), "old");
}

TEST_F(CopyTest, FileWhereADirectoryIsNeededIsAnError) {
  writeCtx("a.txt", "A");
  tmp().write("root/etc/passwd", "root:x:0:0::/:/bin/sh\n");
  auto r = copy(request({"a.txt"}, "/etc/passwd/x"));
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("/etc/passwd"), std::string::npos) << r.status().message();
  writeCtx("dir/b", "B");
  auto d = copy(request({"dir"}, "/etc/passwd"));
  ASSERT_FALSE(d.isOk());
  EXPECT_NE(d.status().message().find("/etc/passwd"), std::string::npos) << d.status().message();
}

TEST_F(CopyTest, HardlinksInOneCopyStayLinked) {
  writeCtx("d/a", "same");
  ASSERT_EQ(link((ctx() / "d/a").c_str(), (ctx() / "d/b").c_str()), 0);
  ASSERT_TRUE(copy(request({"d"}, "/h")).isOk());
  EXPECT_EQ(lstatOf(root() / "h/a").st_ino, lstatOf(root() / "h/b").st_ino);
  EXPECT_EQ(readFile(root() / "h/b"), "same");
}

TEST_F(CopyTest, CopiesTenThousandSmallFilesQuickly) {
  for (int d = 0; d < 100; ++d) {
    fs::path dir = ctx() / "many" / std::to_string(d);
    fs::create_directories(dir);
    for (int f = 0; f < 100; ++f) {
      int fd = open((dir / std::to_string(f)).c_str(), O_WRONLY | O_CREAT, 0644);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(write(fd, "x", 1), 1);
      close(fd);
    }
  }
  auto start = std::chrono::steady_clock::now();
  auto stats = copy(request({"many"}, "/many"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  ASSERT_TRUE(stats.isOk()) << stats.status().toString();
  EXPECT_EQ(stats->files, 10000u);
  EXPECT_EQ(stats->bytes, 10000u);
  RecordProperty("copy_ms", static_cast<int>(ms));
  EXPECT_LT(ms, 30000) << "10,000 small files took " << ms << " ms";
}

TEST_F(CopyTest, RemoteAndEmptyRequestsAreRejectedClearly) {
  CopyRequest add = request({"https://example.com/x.tar.gz"}, "/d/");
  add.add = true;
  auto r = copy(add);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(r.status().message(),
            "ADD https://example.com/x.tar.gz: remote sources are not supported by the worker "
            "yet");
  auto url_copy = copy(request({"http://example.com/x"}, "/d/"));
  EXPECT_EQ(url_copy.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(copy(request({}, "/d/")).isOk());
}

}  // namespace
}  // namespace lf::worker
