#pragma once

// Dumps of the Dockerfile syntax tree: JSON for tools and tests, and a readable listing for
// `layerfarm dockerfile parse`. Pure functions; strings that are not valid UTF-8 are written with
// U+FFFD in their place (JSON must be UTF-8), so any parsed Dockerfile can be dumped.

#include <nlohmann/json.hpp>
#include <string>

#include "common/dockerfile/ast.h"

namespace lf::dockerfile {

// {"instruction": "COPY", "flags": ["--from=build"], "args": [...], "json": false,
//  "heredocs": [{"name", "content", "expand"}], "line": 3, "end_line": 5}
// plus "trigger" (the same shape) for ONBUILD.
nlohmann::json instructionToJson(const Instruction& ins);

// A JSON array with one object per instruction, in order.
nlohmann::json toJson(const Dockerfile& df);

// toJson(df) serialised; indent < 0 gives one line.
std::string dumpJson(const Dockerfile& df, int indent = 2);

// One instruction per line: "  3  COPY --from=build /app /app", exec form as a JSON array,
// heredoc bodies indented below their instruction.
std::string toText(const Dockerfile& df);

}  // namespace lf::dockerfile
