// Fuzz target for the Dockerfile parser: any bytes must parse or fail with a positioned error,
// and anything that parses must dump to JSON and text without throwing.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/dockerfile/ast_json.h"
#include "common/dockerfile/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  lf::Result<lf::dockerfile::Dockerfile> df = lf::dockerfile::parse(text, "Dockerfile");
  if (!df.isOk()) {
    // Every error names where it is.
    if (df.status().message().rfind("Dockerfile:", 0) != 0) {
      std::abort();
    }
    return 0;
  }
  for (const lf::dockerfile::Instruction& ins : df->instructions) {
    if (ins.pos.line < 1 || ins.pos.column < 1 || ins.end_line < ins.pos.line) {
      std::abort();
    }
    if (ins.trigger &&
        (ins.trigger->pos.line < ins.pos.line || ins.trigger->end_line != ins.end_line)) {
      std::abort();
    }
  }
  std::string json = lf::dockerfile::dumpJson(*df, -1);
  std::string listing = lf::dockerfile::toText(*df);
  (void)json;
  (void)listing;
  return 0;
}
