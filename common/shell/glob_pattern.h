#pragma once

// The glob patterns of Docker's ${VAR#pat}, ${VAR%pat} and ${VAR/pat/rep}: `*` matches any run
// of characters (including none), `?` any one character, everything else itself. Characters
// that were quoted or escaped in the Dockerfile are literal even when they are `*` or `?`, so
// the pattern is built from text plus a per-character "literal" mask.
//
// Matching simulates the pattern as an NFA (one state per token), so finding every prefix of a
// string that the pattern matches costs O(length × pattern tokens). Each step is charged to a
// caller-owned budget; when it runs out the match fails with kResourceExhausted instead of
// running for minutes on a hostile Dockerfile.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::shell {

class GlobPattern {
 public:
  // `literal[i]` true makes text[i] match only itself; literal.size() must equal text.size().
  GlobPattern(std::string_view text, const std::vector<bool>& literal);

  bool empty() const { return tokens_.empty(); }

  // The length of the shortest (or longest) prefix of `s` the whole pattern matches, or -1.
  Result<std::int64_t> matchPrefix(std::string_view s, bool longest, std::int64_t* budget) const;

  // The same for suffixes of `s`.
  Result<std::int64_t> matchSuffix(std::string_view s, bool longest, std::int64_t* budget) const;

 private:
  enum class Kind : std::uint8_t { kLiteral, kAny, kStar };
  struct Token {
    Kind kind;
    char c;
  };

  static Result<std::int64_t> run(const std::vector<Token>& tokens, std::string_view s,
                                  bool longest, std::int64_t* budget);

  std::vector<Token> tokens_;
  std::vector<Token> reversed_;
};

// Removes the shortest/longest matching prefix (from_end=false) or suffix (from_end=true).
Result<std::string> trimMatch(std::string_view value, const GlobPattern& pattern, bool from_end,
                              bool longest, std::int64_t* budget);

// Replaces the first (or every) leftmost-longest match of `pattern` in `value`. An empty pattern
// matches nothing; an empty match is skipped so the loop always advances.
Result<std::string> replaceMatches(std::string_view value, const GlobPattern& pattern,
                                   std::string_view replacement, bool all, std::size_t max_bytes,
                                   std::int64_t* budget);

}  // namespace lf::shell
