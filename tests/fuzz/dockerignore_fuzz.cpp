// Fuzzes .dockerignore parsing and matching: arbitrary bytes as the file, then a few paths
// (fixed ones and ones cut from the input itself) through every matching entry point, checking
// that the incremental walk form agrees with the full match.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/context/dockerignore.h"
#include "common/context/pattern.h"

namespace {

using lf::context::DockerIgnore;

void checkPath(const DockerIgnore& ig, std::string_view path) {
  bool full = ig.isExcluded(path);
  DockerIgnore::MatchState state = ig.rootState();
  DockerIgnore::MatchState next;
  bool incremental = false;
  for (size_t pos = 0;;) {
    size_t slash = path.find('/', pos);
    incremental = ig.isExcludedUnder(path.substr(0, slash), state, &next);
    state.swap(next);
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  if (full != incremental) std::abort();
  if (ig.hasExceptions()) (void)ig.mayReincludeUnder(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // The first line doubles as a filepath.Match pattern, the last as a path.
  std::string_view first = input.substr(0, input.find('\n'));
  size_t last_nl = input.rfind('\n');
  std::string_view last = last_nl == std::string_view::npos ? input : input.substr(last_nl + 1);
  auto direct = lf::context::matchPath(first, last);
  (void)direct;
  (void)lf::context::cleanPath(input.substr(0, 256));

  auto ig = DockerIgnore::parse(input);
  if (!ig.isOk()) {
    if (ig.status().message().empty()) std::abort();
    return 0;
  }
  static const char* kPaths[] = {"a",
                                 "a/b",
                                 "src/main.go",
                                 "build/keep/x",
                                 ".git/config",
                                 "README.md",
                                 "x/y/z/w/v",
                                 "\xff\xfe/\xce\xb1",
                                 ""};
  for (const char* p : kPaths) checkPath(*ig, p);
  checkPath(*ig, last.substr(0, 512));
  checkPath(*ig, first.substr(0, 512));
  return 0;
}
