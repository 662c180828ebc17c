#pragma once

// The Dockerfile parser: text in, syntax tree (common/dockerfile/ast.h) out.
//
// It follows the Dockerfile reference and BuildKit's parser: parser directives (# syntax=,
// # escape=, # check=) at the very top, comments, line continuations with the escape character,
// here-documents for RUN/COPY/ADD, per-instruction argument forms (exec form, whitespace words,
// name=value pairs), and the flags each instruction accepts. Every problem is reported as an
// invalid-argument Status whose message starts with "<file>:<line>:<column>: ".
//
// parse() is a pure function of its input: no I/O, no global state, safe to call from any
// thread. It never throws, and it runs in time linear in the input (bounded work per byte), so
// untrusted Dockerfiles can be fed to it directly.

#include <span>
#include <string_view>

#include "common/base/status.h"
#include "common/dockerfile/ast.h"

namespace lf::dockerfile {

[[nodiscard]] Result<Dockerfile> parse(std::string_view text,
                                       std::string_view file_name = "Dockerfile");

// How a flag takes its value, as BuildKit declares it per instruction.
enum class FlagKind {
  kBool,     // --link or --link=true/false
  kString,   // --from=<value>; given at most once
  kStrings,  // --mount=<value>; may repeat
};

struct FlagSpec {
  std::string_view name;  // without "--"
  FlagKind kind;
};

// One instruction the parser knows, with the flags it accepts (in the order the reference lists
// them).
struct InstructionSpec {
  std::string_view keyword;  // upper-case
  std::span<const FlagSpec> flags;
};

// All instructions, sorted by keyword.
std::span<const InstructionSpec> instructionSpecs();

// The spec for `keyword` (case-insensitive), or nullptr for an unknown instruction.
const InstructionSpec* findInstructionSpec(std::string_view keyword);

// The flag `name` (without "--") of `spec`, or nullptr.
const FlagSpec* findFlagSpec(const InstructionSpec& spec, std::string_view name);

}  // namespace lf::dockerfile
