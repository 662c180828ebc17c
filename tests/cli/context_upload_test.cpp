// FilesTar, the streamed tar of the files the coordinator lacks: libarchive reads it back with the
// right names, sizes and bytes; its length is exactly what size() promised (the Content-Length);
// a file changed since the scan stops the stream with an error naming it.

#include "cli/context_upload.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace lf::cli {
namespace {

namespace fs = std::filesystem;
using lf::testing::TempDir;

TarFile fileOf(const TempDir& dir, const std::string& path, const std::string& content) {
  dir.write(path, content);
  return TarFile{path, content.size(), Digest::sha256Of(content)};
}

// Reads the whole stream `chunk` bytes at a time.
Result<std::string> drain(FilesTar& tar, size_t chunk) {
  std::string out;
  std::vector<char> buf(chunk);
  while (true) {
    LF_ASSIGN_OR_RETURN(size_t n, tar.read(buf.data(), buf.size()));
    if (n == 0) return out;
    out.append(buf.data(), n);
  }
}

struct ReadEntry {
  std::string name;
  int64_t size;
  unsigned type;
  std::string data;
};

std::vector<ReadEntry> readBack(const std::string& bytes) {
  std::vector<ReadEntry> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_memory(a, bytes.data(), bytes.size()), ARCHIVE_OK);
  archive_entry* e = nullptr;
  int r;
  while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    ReadEntry re{archive_entry_pathname(e), archive_entry_size(e),
                 static_cast<unsigned>(archive_entry_filetype(e)), ""};
    char buf[4096];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) re.data.append(buf, n);
    EXPECT_EQ(n, 0) << archive_error_string(a);
    out.push_back(std::move(re));
  }
  EXPECT_EQ(r, ARCHIVE_EOF) << archive_error_string(a);
  archive_read_free(a);
  return out;
}

TEST(FilesTar, LibarchiveReadsBackNamesSizesAndBytesAndTheLengthIsExact) {
  TempDir dir;
  std::vector<TarFile> files = {
      fileOf(dir, "empty", ""),
      fileOf(dir, "a/511", std::string(511, 'a')),
      fileOf(dir, "a/512", std::string(512, 'b')),
      fileOf(dir, "b/513", std::string(513, 'c')),
      fileOf(dir, "big", std::string(3 << 20, 'd') + "end"),
  };
  uint64_t expected = FilesTar::sizeOf(files);
  EXPECT_EQ(expected, 1024u + 5 * 512 + 0 + 512 + 512 + 1024 + ((3u << 20) + 512));
  for (size_t chunk : {size_t{1} << 18, size_t{4099}, size_t{511}}) {
    auto tar = FilesTar::create(dir.path(), files);
    ASSERT_TRUE(tar.isOk()) << tar.status().toString();
    EXPECT_EQ((*tar)->size(), expected);
    auto bytes = drain(**tar, chunk);
    ASSERT_TRUE(bytes.isOk()) << bytes.status().toString();
    EXPECT_EQ(bytes->size(), expected) << "chunk " << chunk;
    auto entries = readBack(*bytes);
    ASSERT_EQ(entries.size(), files.size());
    for (size_t i = 0; i < files.size(); ++i) {
      EXPECT_EQ(entries[i].name, files[i].digest.toString());
      EXPECT_EQ(entries[i].size, static_cast<int64_t>(files[i].size));
      EXPECT_EQ(entries[i].type, static_cast<unsigned>(AE_IFREG));
      EXPECT_EQ(Digest::sha256Of(entries[i].data), files[i].digest) << files[i].path;
    }
  }
  // No files: just the end marker.
  auto none = FilesTar::create(dir.path(), {});
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ((*none)->size(), 1024u);
  EXPECT_EQ(drain(**none, 100).value(), std::string(1024, '\0'));
}

TEST(FilesTar, FilesOfEightGibibytesGetAPaxSize) {
  TempDir dir;
  uint64_t size = (uint64_t{8} << 30) + 1;  // one more than ustar's 11 octal digits hold
  int fd = ::open((dir / "huge").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    GTEST_SKIP() << "no sparse 8 GiB file on this filesystem";
  }
  ::close(fd);
  std::vector<TarFile> files = {TarFile{"huge", size, Digest::sha256Of("not checked here")}};
  auto tar = FilesTar::create(dir.path(), files);
  ASSERT_TRUE(tar.isOk());
  // pax header, its record block, the ustar header, the data padded, the end marker.
  EXPECT_EQ((*tar)->size(), 512u + 512 + 512 + ((size + 511) / 512 * 512) + 1024);
  // libarchive needs only the headers (and reads a little ahead): stream the first 64 KiB.
  std::string head(65536, '\0');
  size_t got = 0;
  while (got < head.size()) {
    auto n = (*tar)->read(head.data() + got, head.size() - got);
    ASSERT_TRUE(n.isOk()) << n.status().toString();
    got += *n;
  }
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  ASSERT_EQ(archive_read_open_memory(a, head.data(), head.size()), ARCHIVE_OK);
  archive_entry* e = nullptr;
  ASSERT_EQ(archive_read_next_header(a, &e), ARCHIVE_OK) << archive_error_string(a);
  EXPECT_EQ(std::string(archive_entry_pathname(e)), files[0].digest.toString());
  EXPECT_EQ(archive_entry_size(e), static_cast<int64_t>(size));
  archive_read_free(a);
}

TEST(FilesTar, AFileChangedSinceTheScanStopsTheStreamNamingIt) {
  TempDir dir;
  TarFile ok = fileOf(dir, "ok.txt", "fine");
  TarFile f = fileOf(dir, "data/x", "1234");
  dir.write("data/x", "5678");  // same size, other bytes
  auto tar = FilesTar::create(dir.path(), {ok, f});
  ASSERT_TRUE(tar.isOk());
  auto bytes = drain(**tar, 1 << 16);
  ASSERT_FALSE(bytes.isOk());
  EXPECT_EQ(bytes.status().message(),
            "context file \"data/x\" changed while the context was being sent; run the build "
            "again");

  dir.write("data/x", "12345");  // other size
  auto grown = FilesTar::create(dir.path(), {f});
  EXPECT_NE(drain(**grown, 1 << 16).status().message().find("\"data/x\" changed"),
            std::string::npos);

  fs::remove(dir / "data/x");
  ASSERT_EQ(::symlink("../ok.txt", (dir / "data/x").c_str()), 0);  // never followed
  auto linked = FilesTar::create(dir.path(), {f});
  EXPECT_NE(drain(**linked, 1 << 16).status().message().find("\"data/x\" changed"),
            std::string::npos);

  fs::remove(dir / "data/x");
  auto gone = FilesTar::create(dir.path(), {f});
  EXPECT_NE(drain(**gone, 1 << 16).status().message().find("\"data/x\" changed"),
            std::string::npos);
}

TEST(ProgressLine, SaysWhatWasSent) {
  ContextUploadResult r;
  r.id = Digest::sha256Of("x");
  r.files = 3;
  r.bytes = 20'971'533;
  EXPECT_EQ(progressLine(r), "context: 21MB in 3 files, nothing to send (" + r.id.shortHex() + ")");
  r.sent_files = 1;
  r.sent_bytes = 13;
  EXPECT_EQ(progressLine(r),
            "context: 21MB in 3 files, 1 file (13B) sent (" + r.id.shortHex() + ")");
  r.files = 1;
  r.sent_files = 2;
  EXPECT_EQ(progressLine(r),
            "context: 21MB in 1 file, 2 files (13B) sent (" + r.id.shortHex() + ")");
}

}  // namespace
}  // namespace lf::cli
