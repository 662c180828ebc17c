// Fuzz target: applies arbitrary bytes as a layer blob (gzip / zstd / tar, auto-detected) into a
// fresh directory. The layer must never write outside it: a sibling directory with a marker file
// is checked after every input and the process aborts if anything there changed.

#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/layer/layer_reader.h"

namespace {

namespace fs = std::filesystem;

struct Sandbox {
  fs::path base;
  fs::path target;
  fs::path outside;
  Sandbox() {
    std::string tmpl = (fs::temp_directory_path() / "lf-layer-fuzz-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::abort();
    }
    base = tmpl;
    target = base / "root" / "target";
    outside = base / "outside";
    fs::create_directories(outside);
    std::ofstream(outside / "marker") << "original";
  }
  ~Sandbox() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

Sandbox& sandbox() {
  static Sandbox s;
  return s;
}

// Everything under base except root/target must be exactly what Sandbox created.
void checkNothingEscaped(const Sandbox& s) {
  std::error_code ec;
  size_t entries = 0;
  for (const auto& e : fs::recursive_directory_iterator(s.base, ec)) {
    const fs::path& p = e.path();
    if (p == s.base / "root" || p.string().rfind(s.target.string(), 0) == 0) {
      continue;
    }
    ++entries;
    if (p != s.outside && p != s.outside / "marker") {
      std::fprintf(stderr, "layer wrote outside its target: %s\n", p.c_str());
      std::abort();
    }
  }
  std::ifstream in(s.outside / "marker");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (entries != 2 || content != "original") {
    std::fprintf(stderr, "the outside marker changed\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Sandbox& s = sandbox();
  std::error_code ec;
  fs::remove_all(s.base / "root", ec);
  fs::create_directories(s.target);
  size_t pos = 0;
  lf::layer::Source source = [&](void* out, size_t n) -> lf::Result<size_t> {
    size_t take = std::min(n, size - pos);
    std::memcpy(out, data + pos, take);
    pos += take;
    return take;
  };
  lf::layer::ApplyOptions options;
  options.max_entries = 10000;
  auto result = lf::layer::applyLayer(std::move(source), s.target, options);
  (void)result;  // any error is fine; escaping or crashing is not
  checkNothingEscaped(s);
  return 0;
}
