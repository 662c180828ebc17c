// Fuzzes ADD of an untrusted archive from a build context (libarchive reading + extraction
// beneath the destination) and Go-style wildcard matching of COPY sources. The input is the
// archive; its first line doubles as a pattern and its second as a name. After each input,
// nothing may exist outside the destination tree: a sibling directory must stay empty.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "worker/copy/copy_executor.h"

namespace {

namespace fs = std::filesystem;

// Never destroyed, so the atexit clean-up can still use it.
const fs::path& scratch() {
  static const fs::path* dir = [] {
    char tmpl[] = "/tmp/lf-copy-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    auto* path = new fs::path(tmpl);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return path;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t nl = input.find('\n');
  std::string_view pattern = input.substr(0, std::min<size_t>(nl, 256));
  std::string_view rest = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
  std::string_view name = rest.substr(0, std::min<size_t>(rest.find('\n'), 256));
  if (pattern.find('/') == std::string_view::npos && name.find('/') == std::string_view::npos) {
    (void)lf::worker::matchPattern(pattern, name);
  }

  const fs::path src = scratch() / "src", dst = scratch() / "dst", outside = scratch() / "outside";
  std::error_code ec;
  fs::remove_all(src, ec);
  fs::remove_all(dst, ec);
  fs::create_directories(src);
  fs::create_directories(dst);
  fs::create_directories(outside);
  std::ofstream(src / "archive", std::ios::binary).write(input.data(), input.size());
  lf::worker::CopyRequest request;
  request.sources = {"archive"};
  request.destination = "/out/";
  request.add = true;
  (void)lf::worker::copyIntoRoot(src, dst, request);
  if (!fs::is_empty(outside) || fs::exists(scratch() / "escaped")) std::abort();
  return 0;
}
