#include "coordinator/builds/context_file.h"

#include <algorithm>

namespace lf::coordinator {

Result<std::string> normalizeContextPath(std::string_view path) {
  if (path.empty()) return invalidArgument("dockerfile: empty path");
  if (path.front() == '/') {
    return invalidArgument("dockerfile \"" + std::string(path) +
                           "\": must be relative to the context");
  }
  std::string out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view part = path.substr(i, j - i);
    if (part == "..") {
      return invalidArgument("dockerfile \"" + std::string(path) + "\": leaves the context");
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    i = j + 1;
  }
  if (out.empty()) return invalidArgument("dockerfile \"" + std::string(path) + "\": not a file");
  return out;
}

Result<context::ContextManifest> loadContextManifest(blob::BlobStore& store, const Digest& digest) {
  const std::string where = "context manifest " + digest.toString();
  auto bytes = store.getBytes(digest, context::kMaxManifestBytes);
  if (!bytes.isOk()) {
    const Status& s = bytes.status();
    if (s.code() == StatusCode::kNotFound) return dataLoss(where + ": not in the blob store");
    return s.withContext(where);
  }
  auto manifest = context::parseContextManifest(*bytes);
  if (!manifest.isOk()) return dataLoss(where + ": " + manifest.status().message());
  return manifest;
}

Result<std::string> readContextFile(blob::BlobStore& store, const Digest& context_id,
                                    const context::ContextManifest& manifest, std::string_view path,
                                    uint64_t max_bytes) {
  LF_ASSIGN_OR_RETURN(std::string want, normalizeContextPath(path));
  const std::string where = "context " + context_id.toString();
  auto it = std::lower_bound(
      manifest.entries.begin(), manifest.entries.end(), want,
      [](const context::ManifestEntry& m, const std::string& p) { return m.entry.path < p; });
  if (it == manifest.entries.end() || it->entry.path != want) {
    return notFound(where + ": \"" + want + "\" not found in the context");
  }
  const context::ContextEntry& e = it->entry;
  if (e.type != context::EntryType::kRegular) {
    return invalidArgument(where + ": \"" + want + "\" is not a regular file");
  }
  if (e.size > max_bytes) {
    return resourceExhausted(where + ": \"" + want + "\" is larger than " +
                             std::to_string(max_bytes) + " bytes");
  }
  auto bytes = store.getBytes(e.content, max_bytes);
  if (!bytes.isOk()) {
    const Status& s = bytes.status();
    if (s.code() == StatusCode::kNotFound) {
      return dataLoss(where + ": \"" + want + "\" (" + e.content.toString() +
                      ") is not in the blob store");
    }
    return s.withContext(where + ": \"" + want + "\"");
  }
  return bytes;
}

}  // namespace lf::coordinator
