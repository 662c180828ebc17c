#include "common/context/hash_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>

#include "common/digest/digest.h"

namespace lf::context {

namespace fs = std::filesystem;

struct HashCache::Entry {
  std::string path;
  FileStamp stamp;
  std::array<uint8_t, 32> sha256{};
};

namespace {

constexpr char kMagic[8] = {'L', 'F', 'H', 'A', 'S', 'H', 'C', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = sizeof(kMagic) + 4 + 4 + 8;
constexpr size_t kEntryFixedBytes = 4 + 8 * 5 + 32;

template <typename T>
void put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

// Reads fixed-size fields from a byte range; any overrun marks the reader bad.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <typename T>
  T get() {
    T v{};
    if (data_.size() - pos_ < sizeof(T)) {
      bad_ = true;
      return v;
    }
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view bytes(size_t n) {
    if (data_.size() - pos_ < n) {
      bad_ = true;
      return {};
    }
    std::string_view v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  bool bad() const { return bad_; }
  bool atEnd() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  bool bad_ = false;
};

// The whole file, or nullopt when it is missing, unreadable or too large.
std::optional<std::string> readWholeFile(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string data;
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) > HashCache::kMaxFileBytes) {
    ::close(fd);
    return std::nullopt;
  }
  data.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got != data.size()) {
    return std::nullopt;  // shrank while read: another writer; treat as no cache
  }
  return data;
}

bool stampIsRacy(const FileStamp& s, int64_t scan_start_ns, int64_t margin_ns) {
  int64_t limit = scan_start_ns - margin_ns;
  return s.mtime_ns >= limit || s.ctime_ns >= limit;
}

// Removes the least recently written cache files beyond the limit (other contexts' caches).
void pruneDirectory(const fs::path& dir, const fs::path& keep) {
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (const auto& de : fs::directory_iterator(dir, ec)) {
    std::error_code fec;
    if (de.is_regular_file(fec) && de.path() != keep) {
      files.emplace_back(de.last_write_time(fec), de.path());
    }
  }
  if (files.size() < HashCache::kMaxCacheFiles) {
    return;
  }
  std::sort(files.begin(), files.end());
  size_t excess = files.size() - (HashCache::kMaxCacheFiles - 1);  // -1: the file just written
  for (size_t i = 0; i < excess; ++i) {
    fs::remove(files[i].second, ec);  // best effort: another CLI may have removed it already
  }
}

}  // namespace

Result<fs::path> HashCache::defaultFileFor(const fs::path& root) {
  fs::path dir;
  const char* own = std::getenv("LAYERFARM_CACHE_DIR");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (own != nullptr && *own != '\0') {
    dir = fs::path(own) / "hashes";
  } else if (xdg != nullptr && *xdg == '/') {  // the XDG spec: relative values are ignored
    dir = fs::path(xdg) / "layerfarm" / "hashes";
  } else if (home != nullptr && *home != '\0') {
    dir = fs::path(home) / ".cache" / "layerfarm" / "hashes";
  } else {
    return notFound("no cache directory: set LAYERFARM_CACHE_DIR, XDG_CACHE_HOME or HOME");
  }
  std::error_code ec;
  fs::path abs = fs::canonical(root, ec);
  if (ec) {
    abs = fs::absolute(root, ec).lexically_normal();
  }
  return dir / Digest::sha256Of(abs.string()).hex();
}

HashCache::HashCache(fs::path file, Options options)
    : file_(std::move(file)), options_(std::move(options)) {}

HashCache::~HashCache() = default;

std::unique_ptr<HashCache> HashCache::open(fs::path file, Options options) {
  std::unique_ptr<HashCache> cache(new HashCache(std::move(file), std::move(options)));
  cache->load();
  return cache;
}

int64_t HashCache::now() const {
  if (options_.now_ns) {
    return options_.now_ns();
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Any deviation from the format leaves the cache empty: it is only an optimization.
void HashCache::load() {
  loaded_.clear();
  std::optional<std::string> data = readWholeFile(file_);
  if (!data || data->size() < kHeaderBytes + 32) {
    return;
  }
  std::string_view body(data->data(), data->size() - 32);
  std::array<uint8_t, 32> want{};
  std::memcpy(want.data(), data->data() + body.size(), 32);
  Sha256 sum;
  sum.update(body);
  if (sum.finishBytes() != want) {
    return;
  }
  Reader r(body);
  if (r.bytes(sizeof(kMagic)) != std::string_view(kMagic, sizeof(kMagic)) ||
      r.get<uint32_t>() != kVersion) {
    return;
  }
  uint32_t count = r.get<uint32_t>();
  int64_t scan_start = r.get<int64_t>();
  if (r.bad() || count > kMaxEntries || count > body.size() / kEntryFixedBytes) {
    return;
  }
  std::vector<Entry> entries;
  entries.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    Entry e;
    uint32_t len = r.get<uint32_t>();
    e.path = std::string(r.bytes(len));
    e.stamp.dev = r.get<uint64_t>();
    e.stamp.ino = r.get<uint64_t>();
    e.stamp.size = r.get<uint64_t>();
    e.stamp.mtime_ns = r.get<int64_t>();
    e.stamp.ctime_ns = r.get<int64_t>();
    std::string_view sha = r.bytes(32);
    if (r.bad() || (!entries.empty() && entries.back().path >= e.path)) {
      return;  // truncated, or not sorted and unique as written
    }
    std::memcpy(e.sha256.data(), sha.data(), 32);
    entries.push_back(std::move(e));
  }
  if (!r.atEnd()) {
    return;
  }
  loaded_ = std::move(entries);
  loaded_scan_start_ns_ = scan_start;
  stats_.loaded = loaded_.size();
}

void HashCache::beginScan() {
  scan_start_ns_ = now();
  recorded_.clear();
  uint64_t loaded = stats_.loaded;
  stats_ = Stats{};
  stats_.loaded = loaded;
}

std::optional<std::array<uint8_t, 32>> HashCache::lookup(std::string_view path,
                                                         const FileStamp& stamp) const {
  auto it = std::lower_bound(loaded_.begin(), loaded_.end(), path,
                             [](const Entry& e, std::string_view p) { return e.path < p; });
  if (it == loaded_.end() || it->path != path || it->stamp != stamp) {
    stats_.misses += 1;
    return std::nullopt;
  }
  if (stampIsRacy(stamp, loaded_scan_start_ns_, options_.racy_margin_ns)) {
    stats_.misses += 1;
    stats_.racy += 1;
    return std::nullopt;
  }
  stats_.hits += 1;
  return it->sha256;
}

void HashCache::record(std::string_view path, const FileStamp& stamp,
                       const std::array<uint8_t, 32>& sha256) {
  recorded_.push_back(Entry{std::string(path), stamp, sha256});
}

Status HashCache::save() {
  stats_.written = false;
  std::sort(recorded_.begin(), recorded_.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  recorded_.erase(std::unique(recorded_.begin(), recorded_.end(),
                              [](const Entry& a, const Entry& b) { return a.path == b.path; }),
                  recorded_.end());
  // Unchanged: every file was a trusted hit and none disappeared. The old scan start stays; the
  // entries were trusted against it and stay so.
  bool same = stats_.misses == 0 && recorded_.size() == loaded_.size() &&
              std::equal(recorded_.begin(), recorded_.end(), loaded_.begin(),
                         [](const Entry& a, const Entry& b) {
                           return a.path == b.path && a.stamp == b.stamp && a.sha256 == b.sha256;
                         });
  if (same) {
    return Status::ok();
  }
  if (recorded_.size() > kMaxEntries) {
    return resourceExhausted("hash cache " + file_.string() + ": more than " +
                             std::to_string(kMaxEntries) + " files; not written");
  }
  std::string out;
  out.append(kMagic, sizeof(kMagic));
  put<uint32_t>(&out, kVersion);
  put<uint32_t>(&out, static_cast<uint32_t>(recorded_.size()));
  put<int64_t>(&out, scan_start_ns_);
  for (const Entry& e : recorded_) {
    put<uint32_t>(&out, static_cast<uint32_t>(e.path.size()));
    out.append(e.path);
    put<uint64_t>(&out, e.stamp.dev);
    put<uint64_t>(&out, e.stamp.ino);
    put<uint64_t>(&out, e.stamp.size);
    put<int64_t>(&out, e.stamp.mtime_ns);
    put<int64_t>(&out, e.stamp.ctime_ns);
    out.append(reinterpret_cast<const char*>(e.sha256.data()), 32);
  }
  if (out.size() + 32 > kMaxFileBytes) {
    return resourceExhausted("hash cache " + file_.string() + ": larger than " +
                             std::to_string(kMaxFileBytes) + " bytes; not written");
  }
  Sha256 sum;
  sum.update(out);
  std::array<uint8_t, 32> check = sum.finishBytes();
  out.append(reinterpret_cast<const char*>(check.data()), 32);
  LF_RETURN_IF_ERROR(writeAtomically(out));
  loaded_ = recorded_;
  loaded_scan_start_ns_ = scan_start_ns_;
  stats_.written = true;
  return Status::ok();
}

Status HashCache::writeAtomically(const std::string& bytes) const {
  fs::path dir = file_.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return errnoStatus(ec.value(), "hash cache: create " + dir.string());
  }
  // A unique temp name per writer: two CLIs on one context each rename a whole file.
  std::string tmp = file_.string() + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    return errnoStatus(errno, "hash cache: create " + tmp);
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return errnoStatus(err, "hash cache: write " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  // No fsync: after a crash the file is the new one, the old one, gone, or garbage the checksum
  // rejects; each only costs a hash.
  if (::close(fd) != 0 || ::rename(tmp.c_str(), file_.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errnoStatus(err, "hash cache: write " + file_.string());
  }
  pruneDirectory(dir, file_);
  return Status::ok();
}

}  // namespace lf::context
