#include "worker/layer_store/layer_meta.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <set>
#include <utility>
#include <vector>

#include "common/layer/unique_fd.h"

namespace lf::worker {
namespace {

constexpr std::string_view kFormatLine1 = "layerfarm-layer-meta 1";
constexpr std::string_view kFormatLine = "layerfarm-layer-meta 2";
// A meta file is a few hundred bytes; anything much larger is not one.
constexpr size_t kMaxMetaBytes = 4096;

Result<Digest> parseDigestField(std::string_view value, std::string_view key,
                                std::string_view where) {
  auto digest = Digest::parse(value);
  if (!digest.isOk()) {
    return dataLoss(std::string(where) + ": field " + std::string(key) + ": " +
                    digest.status().message());
  }
  return digest;
}

}  // namespace

std::string formatLayerMeta(const LayerMeta& meta) {
  // Without a boot id the layer is synced already: format 1 says exactly that.
  std::string out(meta.boot_id.empty() ? kFormatLine1 : kFormatLine);
  out += "\ndiff_id " + meta.diff_id.toString();
  out += "\ndigest " + meta.digest.toString();
  out += "\nmedia_type " + meta.media_type;
  out += "\nbytes " + std::to_string(meta.bytes);
  if (!meta.boot_id.empty()) {
    out += "\nboot_id " + meta.boot_id;
  }
  out += "\n";
  return out;
}

Result<LayerMeta> parseLayerMeta(std::string_view text, std::string_view where) {
  auto corrupt = [&](const std::string& why) {
    return dataLoss(std::string(where) + ": corrupt layer metadata: " + why);
  };
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      return corrupt("missing final newline");
    }
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  static constexpr std::string_view kKeys[] = {"diff_id", "digest", "media_type", "bytes",
                                               "boot_id"};
  // Format 1 has every field but the last.
  const size_t fields =
      !lines.empty() && lines[0] == kFormatLine1 ? std::size(kKeys) - 1 : std::size(kKeys);
  if (lines.size() != 1 + fields || (lines[0] != kFormatLine && lines[0] != kFormatLine1)) {
    return corrupt("expected the format line and " + std::to_string(fields) + " fields");
  }
  LayerMeta meta;
  for (size_t i = 0; i < fields; ++i) {
    std::string_view line = lines[i + 1];
    std::string_view key = kKeys[i];
    if (line.size() < key.size() + 1 || line.substr(0, key.size()) != key ||
        line[key.size()] != ' ') {
      return corrupt("line " + std::to_string(i + 2) + ": expected field " + std::string(key));
    }
    std::string_view value = line.substr(key.size() + 1);
    if (key == "diff_id") {
      LF_ASSIGN_OR_RETURN(meta.diff_id, parseDigestField(value, key, where));
    } else if (key == "digest") {
      if (!value.empty()) {
        LF_ASSIGN_OR_RETURN(meta.digest, parseDigestField(value, key, where));
      }
    } else if (key == "media_type") {
      meta.media_type = std::string(value);
    } else if (key == "boot_id") {
      if (value.empty() || value.find_first_of(" \t") != std::string_view::npos) {
        return corrupt("field boot_id: not a boot id: '" + std::string(value) + "'");
      }
      meta.boot_id = std::string(value);
    } else {
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), meta.bytes);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty()) {
        return corrupt("field bytes: not a number: '" + std::string(value) + "'");
      }
    }
  }
  return meta;
}

Result<LayerMetaFile> readLayerMeta(int dir_fd, const std::string& name, std::string_view where) {
  layer::UniqueFd fd(openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return errnoStatus(errno, "open layer metadata '" + std::string(where) + "'");
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return errnoStatus(errno, "stat layer metadata '" + std::string(where) + "'");
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kMaxMetaBytes) {
    return dataLoss(std::string(where) + ": corrupt layer metadata: not a small regular file");
  }
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, "read layer metadata '" + std::string(where) + "'");
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  LayerMetaFile file;
  LF_ASSIGN_OR_RETURN(file.meta, parseLayerMeta(text, where));
  file.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return file;
}

Status writeLayerMeta(int dir_fd, const std::string& name, const LayerMeta& meta,
                      std::string_view where) {
  layer::UniqueFd fd(
      openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) {
    return errnoStatus(errno, "create layer metadata '" + std::string(where) + "'");
  }
  std::string text = formatLayerMeta(meta);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errnoStatus(errno, "write layer metadata '" + std::string(where) + "'");
    }
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Result<uint64_t> treeBytes(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  if (ec) {
    return errnoStatus(ec.value(), "walk '" + dir.string() + "'");
  }
  uint64_t bytes = 0;
  std::set<std::pair<dev_t, ino_t>> linked;  // inodes with several names, counted once
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      return errnoStatus(ec.value(), "walk '" + dir.string() + "'");
    }
    struct stat st;
    if (lstat(it->path().c_str(), &st) != 0) {
      return errnoStatus(errno, "stat '" + it->path().string() + "'");
    }
    if (S_ISREG(st.st_mode) && st.st_nlink > 1 && !linked.insert({st.st_dev, st.st_ino}).second) {
      continue;
    }
    if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
      bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  if (ec) {
    return errnoStatus(ec.value(), "walk '" + dir.string() + "'");
  }
  return bytes;
}

}  // namespace lf::worker
