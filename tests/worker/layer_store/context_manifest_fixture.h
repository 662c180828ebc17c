#pragma once

// Shared set-up of the context-manifest tests: manifests made from entries, with their file
// blobs, stored in the fixture's blob store; and checks of a materialized tree.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/context/context_manifest.h"
#include "tests/support/temp_dir.h"
#include "tests/worker/layer_store/layer_store_fixture.h"

namespace lf::worker::testing {

using context::ContextEntry;
using context::ContextManifest;
using context::EntryType;
using context::ManifestEntry;

class ContextManifestTest : public LayerStoreTest {
 protected:
  // A regular file; its content goes into the blob store unless `upload` is false.
  ManifestEntry file(const std::string& path, uint32_t mode, int64_t mtime,
                     const std::string& content, bool upload = true) {
    ManifestEntry m;
    m.entry.path = path;
    m.entry.type = EntryType::kRegular;
    m.entry.mode = mode;
    m.entry.size = content.size();
    m.entry.content = Digest::sha256Of(content);
    m.mtime = mtime;
    if (upload) {
      auto put = blobs_->putBytes(content);
      EXPECT_TRUE(put.isOk()) << put.status().toString();
    }
    return m;
  }

  static ManifestEntry dir(const std::string& path, uint32_t mode, int64_t mtime) {
    return node(path, EntryType::kDirectory, mode, mtime);
  }

  static ManifestEntry symlink(const std::string& path, const std::string& target, int64_t mtime) {
    ManifestEntry m = node(path, EntryType::kSymlink, 0777, mtime);
    m.entry.link_target = target;
    m.entry.size = target.size();
    return m;
  }

  static ManifestEntry node(const std::string& path, EntryType type, uint32_t mode, int64_t mtime) {
    ManifestEntry m;
    m.entry.path = path;
    m.entry.type = type;
    m.entry.mode = mode;
    m.mtime = mtime;
    return m;
  }

  // Sorts the entries as the format wants and stores the encoded manifest.
  LayerRef storeManifest(std::vector<ManifestEntry> entries) {
    ContextManifest manifest;
    manifest.entries = std::move(entries);
    std::sort(
        manifest.entries.begin(), manifest.entries.end(),
        [](const ManifestEntry& a, const ManifestEntry& b) { return a.entry.path < b.entry.path; });
    return storeManifestBytes(context::encodeContextManifest(manifest));
  }

  LayerRef storeManifestBytes(const std::string& bytes) {
    auto put = blobs_->putBytes(bytes);
    EXPECT_TRUE(put.isOk()) << put.status().toString();
    if (!put.isOk()) {
      return {};
    }
    return LayerRef{put->digest, put->digest, put->size,
                    std::string(context::kContextManifestMediaType)};
  }
};

// lstat of `path`, failing the test when it is missing.
inline struct stat lstatOf(const std::filesystem::path& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st;
}

// The tree at `dir` holds exactly what `entries` say (type, mode, size, mtime, contents, link
// target; owner 0:0 when running as root), and nothing else apart from `implicit` directories.
inline void expectTree(const std::filesystem::path& dir, const std::vector<ManifestEntry>& entries,
                       const std::vector<std::string>& implicit,
                       const std::function<std::string(const Digest&)>& content_of) {
  namespace fs = std::filesystem;
  std::vector<std::string> want;
  for (const ManifestEntry& m : entries) {
    const ContextEntry& e = m.entry;
    want.push_back(e.path);
    fs::path p = dir / e.path;
    struct stat st = lstatOf(p);
    SCOPED_TRACE(e.path);
    switch (e.type) {
      case EntryType::kRegular:
        EXPECT_TRUE(S_ISREG(st.st_mode));
        EXPECT_EQ(static_cast<uint64_t>(st.st_size), e.size);
        EXPECT_EQ(lf::testing::readFile(p), content_of(e.content));
        break;
      case EntryType::kDirectory:
        EXPECT_TRUE(S_ISDIR(st.st_mode));
        break;
      case EntryType::kSymlink:
        EXPECT_TRUE(S_ISLNK(st.st_mode));
        EXPECT_EQ(fs::read_symlink(p).string(), e.link_target);
        break;
      case EntryType::kFifo:
        EXPECT_TRUE(S_ISFIFO(st.st_mode));
        break;
      default:
        ADD_FAILURE() << "devices are not expected in a materialized tree";
    }
    if (e.type != EntryType::kSymlink) {
      EXPECT_EQ(st.st_mode & 07777, e.mode);
    }
    EXPECT_EQ(st.st_mtim.tv_sec, m.mtime);
    EXPECT_EQ(st.st_mtim.tv_nsec, 0);
    if (geteuid() == 0) {
      EXPECT_EQ(st.st_uid, 0u);
      EXPECT_EQ(st.st_gid, 0u);
    }
  }
  for (const std::string& path : implicit) {
    want.push_back(path);
    struct stat st = lstatOf(dir / path);
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << path;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << path;
    EXPECT_EQ(st.st_mtim.tv_sec, 0) << path;
  }
  std::vector<std::string> got;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    got.push_back(it->path().lexically_relative(dir).string());
  }
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
}

}  // namespace lf::worker::testing
