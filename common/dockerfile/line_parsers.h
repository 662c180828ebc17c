#pragma once

// Internals of the Dockerfile parser (common/dockerfile/parser.cpp): the per-instruction argument
// parsers, flag extraction and heredoc detection, working on one logical line (the instruction
// with its continuation lines joined). Not part of the public API; tests use it through parse().

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/dockerfile/ast.h"

namespace lf::dockerfile::detail {

// An instruction's text with continuations joined (escape character and line break removed, as
// Docker does), plus where each piece came from so offsets map back to source positions.
// Lookups are O(log pieces); appending is amortised O(length).
class LogicalLine {
 public:
  void append(std::string_view piece, int line, int column, std::size_t source_offset);

  const std::string& text() const { return text_; }
  Position positionAt(std::size_t offset) const;
  std::size_t sourceOffsetAt(std::size_t offset) const;
  int firstLine() const { return segments_.empty() ? 0 : segments_.front().line; }

 private:
  struct Segment {
    std::size_t offset;  // in text_
    int line;
    int column;
    std::size_t source_offset;
  };
  const Segment& segmentAt(std::size_t offset) const;

  std::string text_;
  std::vector<Segment> segments_;
};

struct LineContext {
  std::string_view file_name;
  char escape = '\\';
  const LogicalLine* line = nullptr;
};

// "<file>:<line>:<column>: <message>" as an invalid-argument Status.
Status errorAt(std::string_view file_name, Position pos, std::string_view message);

// Parses the instruction in `text`, which must be a view into ctx.line->text(). Fills keyword,
// flags, args, json, pairs, trigger and pos; leaves original, end_line and heredocs to the caller.
Status parseInstruction(std::string_view text, const LineContext& ctx, Instruction* out);

// A heredoc marker (<<EOF, <<-EOF, <<"EOF", 2<<EOF) found among the shell words of `line`,
// with its offset in `line`. The body is read by the caller.
struct HeredocMarker {
  Heredoc heredoc;
  std::size_t offset = 0;
};
std::vector<HeredocMarker> findHeredocs(std::string_view line);

// Byte length of the Unicode white-space character at s[i] (Go's unicode.IsSpace), or 0.
std::size_t spaceLength(std::string_view s, std::size_t i);
std::string_view trimSpace(std::string_view s);
std::string_view trimLeftSpace(std::string_view s);

// Optimal-string-alignment edit distance, case-insensitive; for "did you mean" suggestions.
std::size_t editDistance(std::string_view a, std::string_view b);

}  // namespace lf::dockerfile::detail
