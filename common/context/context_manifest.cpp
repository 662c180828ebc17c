// The context manifest: writing (manifestOf, encodeContextManifest), reading
// (parseContextManifest) and the snapshot a build plan keys on (snapshotOfManifest).
// The format and its rules are in context_manifest.h.

#include "common/context/context_manifest.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>
#include <utility>

#include "common/context/archive_read.h"
#include "common/context/dockerignore.h"

namespace lf::context {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxPathBytes = 4096;

struct TypeName {
  EntryType type;
  std::string_view name;
};
constexpr std::array<TypeName, 6> kTypeNames = {{
    {EntryType::kRegular, "file"},
    {EntryType::kDirectory, "dir"},
    {EntryType::kSymlink, "symlink"},
    {EntryType::kFifo, "fifo"},
    {EntryType::kCharDevice, "char"},
    {EntryType::kBlockDevice, "block"},
}};

std::string_view typeName(EntryType type) {
  for (const auto& t : kTypeNames) {
    if (t.type == type) return t.name;
  }
  return "file";
}

std::optional<EntryType> typeOf(std::string_view name) {
  for (const auto& t : kTypeNames) {
    if (t.name == name) return t.type;
  }
  return std::nullopt;
}

bool isDevice(EntryType type) {
  return type == EntryType::kCharDevice || type == EntryType::kBlockDevice;
}

void appendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (c < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xF]);
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

std::string inQuotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

Status entryError(size_t index, std::string_view path, std::string_view what) {
  return invalidArgument("context manifest: entry " + std::to_string(index) +
                         (path.empty() ? std::string() : " " + inQuotes(path)) + ": " +
                         std::string(what));
}

// A path as ContextEntry holds it: relative, '/'-separated, no empty/"."/".." components, no
// layer whiteout names (a worker materializes the tree next to layers).
std::optional<std::string_view> pathProblem(std::string_view path) {
  if (path.empty()) return "empty path";
  if (path.size() > kMaxPathBytes) return "path longer than 4096 bytes";
  if (path.front() == '/') return "absolute path";
  if (!isUtf8(path)) return "path is not valid UTF-8";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty()) return "empty path component (\"//\" or a trailing '/')";
    if (part == ".") return "path has a \".\" component";
    if (part == "..") return "path leaves the context";
    if (part.starts_with(".wh.")) return "name of the layer whiteout form (.wh.*)";
    if (part.find('\0') != std::string_view::npos) return "NUL in path";
    start = end + 1;
  }
  return std::nullopt;
}

// Reads the keys of one entry object; unknown or missing keys are errors.
Status parseEntry(const Json& j, size_t index, ManifestEntry* out) {
  if (!j.is_object()) return entryError(index, "", "not a JSON object");
  auto str = [&](const char* key, std::string* dst) -> Status {
    auto it = j.find(key);
    if (it == j.end())
      return entryError(index, out->entry.path, std::string("missing \"") + key + "\"");
    if (!it->is_string())
      return entryError(index, out->entry.path, std::string("\"") + key + "\" is not a string");
    *dst = it->get<std::string>();
    return Status::ok();
  };
  auto num = [&](const char* key, auto* dst, auto lo, auto hi) -> Status {
    auto it = j.find(key);
    if (it == j.end())
      return entryError(index, out->entry.path, std::string("missing \"") + key + "\"");
    if (!it->is_number_integer()) {
      return entryError(index, out->entry.path, std::string("\"") + key + "\" is not an integer");
    }
    bool ok = it->is_number_unsigned() ? it->get<uint64_t>() <= static_cast<uint64_t>(hi)
                                       : it->get<int64_t>() >= static_cast<int64_t>(lo) &&
                                             it->get<int64_t>() <= static_cast<int64_t>(hi);
    if (!ok) return entryError(index, out->entry.path, std::string("\"") + key + "\" out of range");
    *dst = it->is_number_unsigned()
               ? static_cast<std::remove_pointer_t<decltype(dst)>>(it->get<uint64_t>())
               : static_cast<std::remove_pointer_t<decltype(dst)>>(it->get<int64_t>());
    return Status::ok();
  };
  ContextEntry& e = out->entry;
  LF_RETURN_IF_ERROR(str("path", &e.path));
  if (auto problem = pathProblem(e.path)) return entryError(index, e.path, *problem);
  std::string type;
  LF_RETURN_IF_ERROR(str("type", &type));
  auto parsed_type = typeOf(type);
  if (!parsed_type) return entryError(index, e.path, "unknown type " + inQuotes(type));
  e.type = *parsed_type;
  size_t expected_keys = 4;  // path, type, mode, mtime
  LF_RETURN_IF_ERROR(num("mode", &e.mode, 0, 07777));
  LF_RETURN_IF_ERROR(num("mtime", &out->mtime, INT64_MIN, INT64_MAX));
  if (e.type == EntryType::kRegular) {
    expected_keys += 2;
    LF_RETURN_IF_ERROR(num("size", &e.size, 0, INT64_MAX));
    std::string digest;
    LF_RETURN_IF_ERROR(str("digest", &digest));
    auto d = Digest::parse(digest);
    if (!d.isOk()) return entryError(index, e.path, "digest: " + d.status().message());
    e.content = *d;
  } else if (e.type == EntryType::kSymlink) {
    expected_keys += 1;
    LF_RETURN_IF_ERROR(str("target", &e.link_target));
    if (e.link_target.empty() || e.link_target.size() > kMaxPathBytes) {
      return entryError(index, e.path, "symlink target empty or longer than 4096 bytes");
    }
    if (e.link_target.find('\0') != std::string::npos) {
      return entryError(index, e.path, "NUL in symlink target");
    }
    e.size = e.link_target.size();
  } else if (isDevice(e.type)) {
    expected_keys += 2;
    LF_RETURN_IF_ERROR(num("major", &e.dev_major, 0, UINT32_MAX));
    LF_RETURN_IF_ERROR(num("minor", &e.dev_minor, 0, UINT32_MAX));
  }
  if (j.size() != expected_keys) {
    return entryError(index, e.path, "unexpected keys for an entry of type " + inQuotes(type));
  }
  return Status::ok();
}

}  // namespace

Result<ContextManifest> manifestOf(const ContextSnapshot& snapshot,
                                   const std::function<int64_t(const ContextEntry&)>& mtime_of) {
  ContextManifest m;
  m.entries.reserve(snapshot.entries().size() + snapshot.builderOnly().size());
  for (const auto* list : {&snapshot.entries(), &snapshot.builderOnly()}) {
    for (const ContextEntry& e : *list) {
      if (!isUtf8(e.path) || (e.type == EntryType::kSymlink && !isUtf8(e.link_target))) {
        return invalidArgument("context: " + inQuotes(e.path) +
                               ": the name or link target is not valid UTF-8, which the upload "
                               "cannot carry; rename the file or list it in .dockerignore");
      }
      m.entries.push_back({e, mtime_of(e)});
    }
  }
  std::sort(m.entries.begin(), m.entries.end(), [](const ManifestEntry& a, const ManifestEntry& b) {
    return a.entry.path < b.entry.path;
  });
  return m;
}

std::string encodeContextManifest(const ContextManifest& manifest) {
  std::string out;
  out.reserve(96 + manifest.entries.size() * 160);
  out.append("{\"mediaType\":");
  appendJsonString(kContextManifestMediaType, &out);
  out.append(",\"entries\":[");
  bool first = true;
  for (const ManifestEntry& m : manifest.entries) {
    const ContextEntry& e = m.entry;
    out.append(first ? "\n{\"path\":" : ",\n{\"path\":");
    first = false;
    appendJsonString(e.path, &out);
    out.append(",\"type\":\"").append(typeName(e.type)).append("\"");
    out.append(",\"mode\":").append(std::to_string(e.mode));
    out.append(",\"mtime\":").append(std::to_string(m.mtime));
    if (e.type == EntryType::kRegular) {
      out.append(",\"size\":").append(std::to_string(e.size));
      out.append(",\"digest\":\"").append(e.content.toString()).append("\"");
    } else if (e.type == EntryType::kSymlink) {
      out.append(",\"target\":");
      appendJsonString(e.link_target, &out);
    } else if (isDevice(e.type)) {
      out.append(",\"major\":").append(std::to_string(e.dev_major));
      out.append(",\"minor\":").append(std::to_string(e.dev_minor));
    }
    out.push_back('}');
  }
  out.append("\n]}\n");
  return out;
}

Result<ContextManifest> parseContextManifest(std::string_view bytes) {
  if (bytes.size() > kMaxManifestBytes) {
    return resourceExhausted("context manifest: " + std::to_string(bytes.size()) +
                             " bytes, over the limit of " + std::to_string(kMaxManifestBytes));
  }
  Json doc = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalidArgument("context manifest: not valid JSON");
  if (!doc.is_object()) return invalidArgument("context manifest: not a JSON object");
  auto media = doc.find("mediaType");
  if (media == doc.end() || !media->is_string() ||
      media->get<std::string>() != kContextManifestMediaType) {
    return invalidArgument("context manifest: \"mediaType\" must be \"" +
                           std::string(kContextManifestMediaType) + "\"");
  }
  auto entries = doc.find("entries");
  if (entries == doc.end() || !entries->is_array()) {
    return invalidArgument("context manifest: \"entries\" must be an array");
  }
  if (doc.size() != 2) return invalidArgument("context manifest: unknown top-level keys");
  if (entries->size() > kMaxManifestEntries) {
    return resourceExhausted("context manifest: " + std::to_string(entries->size()) +
                             " entries, over the limit of " + std::to_string(kMaxManifestEntries));
  }
  ContextManifest m;
  m.entries.resize(entries->size());
  std::unordered_set<std::string_view> non_dirs;
  for (size_t i = 0; i < entries->size(); ++i) {
    ManifestEntry& out = m.entries[i];
    LF_RETURN_IF_ERROR(parseEntry((*entries)[i], i, &out));
    const std::string& path = out.entry.path;
    if (i > 0 && !(m.entries[i - 1].entry.path < path)) {
      return entryError(i, path,
                        m.entries[i - 1].entry.path == path ? "listed twice"
                                                            : "out of order (entries are sorted "
                                                              "by path in byte order)");
    }
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      if (non_dirs.contains(std::string_view(path).substr(0, slash))) {
        return entryError(
            i, path, "below " + inQuotes(path.substr(0, slash)) + ", which is not a directory");
      }
    }
    if (out.entry.type != EntryType::kDirectory) non_dirs.insert(path);
  }
  return m;
}

std::vector<Digest> manifestFileDigests(const ContextManifest& manifest) {
  std::vector<Digest> digests;
  for (const ManifestEntry& m : manifest.entries) {
    if (m.entry.type == EntryType::kRegular) digests.push_back(m.entry.content);
  }
  std::sort(digests.begin(), digests.end(),
            [](const Digest& a, const Digest& b) { return a.hex() < b.hex(); });
  digests.erase(std::unique(digests.begin(), digests.end()), digests.end());
  return digests;
}

Result<ContextSnapshot> snapshotOfManifest(
    const ContextManifest& manifest, std::string_view dockerfile,
    const std::function<Result<std::string>(const Digest& digest)>& read_file) {
  auto find = [&](std::string_view path) -> const ManifestEntry* {
    auto it = std::lower_bound(
        manifest.entries.begin(), manifest.entries.end(), path,
        [](const ManifestEntry& m, std::string_view p) { return m.entry.path < p; });
    return it != manifest.entries.end() && it->entry.path == path ? &*it : nullptr;
  };
  // The ignore file as scanContext() picks it: "<dockerfile>.dockerignore", else ".dockerignore".
  std::string ignore_file;
  DockerIgnore ignore;
  const std::string df(dockerfile);
  for (const std::string& name :
       {df.empty() ? std::string() : df + ".dockerignore", std::string(".dockerignore")}) {
    const ManifestEntry* m = name.empty() ? nullptr : find(name);
    if (m == nullptr) continue;
    if (m->entry.type != EntryType::kRegular) {
      return invalidArgument("context manifest: " + inQuotes(name) + " is not a regular file");
    }
    if (m->entry.size > DockerIgnore::kMaxFileBytes) {
      return resourceExhausted("context manifest: " + inQuotes(name) + " is larger than " +
                               std::to_string(DockerIgnore::kMaxFileBytes) + " bytes");
    }
    LF_ASSIGN_OR_RETURN(std::string text, read_file(m->entry.content));
    auto parsed = DockerIgnore::parse(text, name);
    if (!parsed.isOk()) return parsed.status().withContext("context manifest");
    ignore = std::move(parsed).value();
    ignore_file = name;
    break;
  }
  std::vector<ContextEntry> entries;
  std::vector<ContextEntry> builder_only;
  entries.reserve(manifest.entries.size());
  for (const ManifestEntry& m : manifest.entries) {
    const std::string& path = m.entry.path;
    const bool build_file = path == df || (!ignore_file.empty() && path == ignore_file);
    if (build_file && ignore.isExcluded(path)) {
      builder_only.push_back(m.entry);
    } else {
      entries.push_back(m.entry);
    }
  }
  return ContextSnapshot(std::move(entries), std::move(builder_only), {});
}

}  // namespace lf::context
