#include "common/context/context_snapshot.h"

#include <algorithm>

#include "common/context/pattern.h"

namespace lf::context {

namespace {

constexpr std::string_view kEncodingTag = "layerfarm.context.v1";

void appendU64(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) {
    out->push_back(static_cast<char>(v >> (8 * i)));
  }
}

void appendU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) {
    out->push_back(static_cast<char>(v >> (8 * i)));
  }
}

void appendString(std::string_view s, std::string* out) {
  appendU64(s.size(), out);
  out->append(s);
}

bool pathLess(const ContextEntry& a, const ContextEntry& b) { return a.path < b.path; }

bool sortedUnique(const std::vector<ContextEntry>& v) {
  for (size_t i = 1; i < v.size(); ++i) {
    if (!(v[i - 1].path < v[i].path)) {
      return false;
    }
  }
  return true;
}

// Hashes `buf` whenever it grows past a few hundred KiB, so large contexts need no large buffer.
class CanonicalHasher {
 public:
  CanonicalHasher() { appendString(kEncodingTag, &buf_); }
  void add(const ContextEntry& e, std::string_view rel) {
    appendCanonical(e, rel, &buf_);
    if (buf_.size() > (256u << 10)) {
      flush();
    }
  }
  // Starts a named list of `count` entries; the count keeps the encoding unambiguous.
  void section(std::string_view name, size_t count) {
    appendString(name, &buf_);
    appendU64(count, &buf_);
  }
  Digest finish() {
    flush();
    return sha_.finish();
  }

 private:
  void flush() {
    sha_.update(buf_);
    buf_.clear();
  }
  Sha256 sha_;
  std::string buf_;
};

}  // namespace

std::string_view entryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kRegular:
      return "file";
    case EntryType::kDirectory:
      return "directory";
    case EntryType::kSymlink:
      return "symlink";
    case EntryType::kFifo:
      return "fifo";
    case EntryType::kCharDevice:
      return "character device";
    case EntryType::kBlockDevice:
      return "block device";
  }
  return "unknown";
}

void appendCanonical(const ContextEntry& entry, std::string_view rel_path, std::string* out) {
  appendString(rel_path, out);
  out->push_back(static_cast<char>(entry.type));
  appendU32(entry.mode, out);
  appendU64(entry.size, out);
  appendString(entry.link_target, out);
  appendString(entry.content.hex(), out);
  appendU32(entry.dev_major, out);
  appendU32(entry.dev_minor, out);
}

ContextSnapshot::ContextSnapshot(std::vector<ContextEntry> entries,
                                 std::vector<ContextEntry> builder_only,
                                 std::vector<SkippedEntry> skipped)
    : entries_(std::move(entries)),
      builder_only_(std::move(builder_only)),
      skipped_(std::move(skipped)) {
  // The scanner sorts before constructing; an unsorted list would break every lookup.
  LF_CHECK(sortedUnique(entries_) && sortedUnique(builder_only_),
           "ContextSnapshot entries must be sorted by path and unique");
}

Result<std::string> normalizeContextPath(std::string_view path) {
  std::string clean = cleanPath(path);
  size_t start = clean.find_first_not_of('/');
  if (start == std::string::npos) {
    return std::string();  // "/" is the context root
  }
  clean.erase(0, start);
  if (clean == ".") {
    return std::string();
  }
  if (clean == ".." || clean.starts_with("../")) {
    return invalidArgument("path \"" + std::string(path) + "\" is outside the build context");
  }
  return clean;
}

const ContextEntry* ContextSnapshot::find(std::string_view path) const {
  auto norm = normalizeContextPath(path);
  if (!norm.isOk() || norm->empty()) {
    return nullptr;
  }
  ContextEntry key;
  key.path = *norm;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), key, pathLess);
  if (it == entries_.end() || it->path != key.path) {
    return nullptr;
  }
  return &*it;
}

std::span<const ContextEntry> ContextSnapshot::under(std::string_view dir) const {
  auto norm = normalizeContextPath(dir);
  if (!norm.isOk()) {
    return {};
  }
  if (norm->empty()) {
    return entries_;
  }
  // All paths starting with "dir/" are contiguous in byte order.
  const std::string prefix = *norm + "/";
  auto first =
      std::lower_bound(entries_.begin(), entries_.end(), prefix,
                       [](const ContextEntry& e, const std::string& p) { return e.path < p; });
  auto last = first;
  while (last != entries_.end() && std::string_view(last->path).starts_with(prefix)) {
    ++last;
  }
  return std::span<const ContextEntry>(entries_.data() + (first - entries_.begin()),
                                       static_cast<size_t>(last - first));
}

Result<Digest> ContextSnapshot::digestOf(std::string_view subtree) const {
  LF_ASSIGN_OR_RETURN(std::string root, normalizeContextPath(subtree));
  CanonicalHasher h;
  if (root.empty()) {
    h.section("copy", entries_.size());
    for (const ContextEntry& e : entries_) {
      h.add(e, e.path);
    }
    return h.finish();
  }
  const ContextEntry* self = find(root);
  std::span<const ContextEntry> below = under(root);
  if (self == nullptr && below.empty()) {
    return notFound("\"" + root + "\" is not in the build context (or .dockerignore excludes it)");
  }
  // An excluded directory walked only for an exception has no entry of its own: its digest is
  // that of what it contains.
  h.section("copy", below.size() + (self != nullptr ? 1 : 0));
  if (self != nullptr) {
    h.add(*self, "");
  }
  for (const ContextEntry& e : below) {
    h.add(e, std::string_view(e.path).substr(root.size() + 1));
  }
  return h.finish();
}

Digest ContextSnapshot::contextDigest() const {
  CanonicalHasher h;
  h.section("upload", entries_.size());
  for (const ContextEntry& e : entries_) {
    h.add(e, e.path);
  }
  h.section("builder-only", builder_only_.size());
  for (const ContextEntry& e : builder_only_) {
    h.add(e, e.path);
  }
  return h.finish();
}

uint64_t ContextSnapshot::totalFileBytes() const {
  uint64_t total = 0;
  for (const auto* list : {&entries_, &builder_only_}) {
    for (const ContextEntry& e : *list) {
      if (e.type == EntryType::kRegular) {
        total += e.size;
      }
    }
  }
  return total;
}

}  // namespace lf::context
