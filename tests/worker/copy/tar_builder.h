#pragma once

// Test helper: writes small tar archives (optionally compressed) entry by entry with libarchive,
// so tests can craft hostile archives ("../" names, symlink tricks, stray hardlinks).

#include <archive.h>
#include <archive_entry.h>

#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

namespace lf::testing {

struct TarEntry {
  std::string name;
  char type = 'f';      // 'f' file, 'd' directory, 'l' symlink, 'h' hardlink
  std::string content;  // file data, or the link target for 'l' and 'h'
  int mode = 0644;
  int uid = 0;
  int gid = 0;
  time_t mtime = 1'500'000'000;
  std::string xattr_name;  // one extended attribute, recorded as a PAX SCHILY.xattr header
  std::string xattr_value;
};

// Writes `entries` to `path`; `filter` is "", "gzip", "bzip2", "xz" or "zstd". False on failure.
inline bool writeTar(const std::filesystem::path& path, const std::vector<TarEntry>& entries,
                     const std::string& filter = "") {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (filter == "gzip") {
    archive_write_add_filter_gzip(a);
  } else if (filter == "bzip2") {
    archive_write_add_filter_bzip2(a);
  } else if (filter == "xz") {
    archive_write_add_filter_xz(a);
  } else if (filter == "zstd") {
    archive_write_add_filter_zstd(a);
  }
  if (archive_write_open_filename(a, path.c_str()) != ARCHIVE_OK) {
    archive_write_free(a);
    return false;
  }
  bool ok = true;
  for (const TarEntry& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_perm(e, static_cast<mode_t>(t.mode));
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, t.mtime, 0);
    if (!t.xattr_name.empty()) {
      archive_entry_xattr_add_entry(e, t.xattr_name.c_str(), t.xattr_value.data(),
                                    t.xattr_value.size());
    }
    if (t.type == 'd') {
      archive_entry_set_filetype(e, AE_IFDIR);
    } else if (t.type == 'l') {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_symlink(e, t.content.c_str());
    } else if (t.type == 'h') {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_hardlink(e, t.content.c_str());
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_size(e, static_cast<la_int64_t>(t.content.size()));
    }
    ok = ok && archive_write_header(a, e) == ARCHIVE_OK;
    if (ok && t.type == 'f' && !t.content.empty()) {
      ok = archive_write_data(a, t.content.data(), t.content.size()) ==
           static_cast<la_ssize_t>(t.content.size());
    }
    archive_entry_free(e);
  }
  ok = archive_write_close(a) == ARCHIVE_OK && ok;
  archive_write_free(a);
  return ok;
}

}  // namespace lf::testing
