// Fuzzes parseContextManifest, the coordinator's and workers' reader of uploaded context
// manifests: arbitrary bytes must give either an error or a manifest that keeps the invariants
// materializing relies on (clean relative paths, no "..", no ".wh." names, sorted and unique,
// nothing below a non-directory), and that encodes back to bytes which parse to the same value.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_set>

#include "common/context/context_manifest.h"

namespace {

using lf::context::EntryType;

void checkPath(std::string_view p) {
  if (p.empty() || p.front() == '/' || p.back() == '/' || p.size() > 4096) std::abort();
  std::string_view rest = p;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    if (part.empty() || part == "." || part == ".." || part.substr(0, 4) == ".wh.") std::abort();
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto m = lf::context::parseContextManifest(bytes);
  if (!m.isOk()) {
    if (m.status().message().empty()) std::abort();
    return 0;
  }
  std::unordered_set<std::string> non_dirs;
  for (size_t i = 0; i < m->entries.size(); ++i) {
    const auto& e = m->entries[i].entry;
    checkPath(e.path);
    if (i > 0 && !(m->entries[i - 1].entry.path < e.path)) std::abort();
    for (size_t s = e.path.find('/'); s != std::string::npos; s = e.path.find('/', s + 1)) {
      if (non_dirs.count(e.path.substr(0, s))) std::abort();
    }
    if (e.type != EntryType::kDirectory) non_dirs.insert(e.path);
    if (e.type == EntryType::kRegular && e.content.empty()) std::abort();
    if (e.mode > 07777) std::abort();
  }
  auto again = lf::context::parseContextManifest(lf::context::encodeContextManifest(*m));
  if (!again.isOk() || !(*again == *m)) std::abort();
  return 0;
}
