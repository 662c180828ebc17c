// Fuzzes readContextTar, the coordinator's reader of uploaded build contexts: arbitrary bytes
// (fed in small uneven chunks, as a network upload arrives) must give either an error with a
// message or a snapshot whose entries keep the invariants the build plan relies on: clean
// relative paths, no ".." and no ".wh." names, no duplicates, every regular file hashed.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/context/context_tar.h"

namespace {

using lf::context::ContextEntry;
using lf::context::EntryType;

void checkEntry(const ContextEntry& e) {
  std::string_view p = e.path;
  if (p.empty() || p.front() == '/' || p.back() == '/' || p.size() > 4096) std::abort();
  if (p == ".." || p.substr(0, 3) == "../" || p.find("/../") != std::string_view::npos ||
      (p.size() >= 3 && p.substr(p.size() - 3) == "/..")) {
    std::abort();
  }
  if (p.substr(0, 4) == ".wh." || p.find("/.wh.") != std::string_view::npos) std::abort();
  if (e.type == EntryType::kRegular && e.content.empty()) std::abort();
  if (e.type == EntryType::kSymlink && e.link_target.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  size_t chunk = 1 + (size % 997);
  auto snap = lf::context::readContextTar([&](void* buf, size_t want) -> lf::Result<size_t> {
    size_t n = std::min({want, chunk, input.size() - pos});
    std::memcpy(buf, input.data() + pos, n);
    pos += n;
    return n;
  });
  if (!snap.isOk()) {
    if (snap.status().message().empty()) std::abort();
    return 0;
  }
  for (const auto* list : {&snap->entries(), &snap->builderOnly()}) {
    for (size_t i = 0; i < list->size(); ++i) {
      checkEntry((*list)[i]);
      if (i > 0 && !((*list)[i - 1].path < (*list)[i].path)) std::abort();
    }
  }
  return 0;
}
