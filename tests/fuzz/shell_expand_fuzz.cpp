// Fuzzes Docker word expansion (common/shell): any bytes must expand or fail with a Status,
// never crash, hang or grow without bound. The first byte picks the escape character and the
// entry point; the rest is the word. The scope has set, empty and glob-laden variables so the
// operators' every branch is reachable.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/shell/word_expander.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string_view word(reinterpret_cast<const char*>(data + 1), size - 1);

  lf::shell::Lookup lookup = [](std::string_view name) -> std::optional<std::string> {
    if (name == "A") return std::string("foobarbaz");
    if (name == "E") return std::string();
    if (name == "S") return std::string("a b\tc  d");
    if (name == "G") return std::string("*?a*b?");
    if (name == "L") return std::string(4096, 'x');
    if (name == "1") return std::string("one");
    return std::nullopt;
  };
  lf::shell::ExpandOptions options;
  options.escape = (mode & 1) ? '`' : '\\';
  options.keep_quotes = (mode & 4) != 0;
  options.max_result_bytes = 1 << 20;
  options.max_pattern_steps = 1 << 22;
  lf::shell::WordExpander expander(lookup, options);

  if (mode & 2) {
    auto words = expander.expandWords(word);
    if (words.isOk()) {
      for (const std::string& w : *words) {
        // Words never contain unquoted-split artefacts: no word is empty.
        if (w.empty()) __builtin_trap();
      }
    }
  } else {
    auto r = expander.expandWord(word);
    if (r.isOk() && r->size() > options.max_result_bytes) __builtin_trap();
  }
  for (const std::string& name : expander.unset()) {
    if (expander.referenced().count(name) == 0) __builtin_trap();
  }
  return 0;
}
