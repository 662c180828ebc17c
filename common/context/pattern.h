#pragma once

// Path glob patterns: Go's filepath.Match syntax, plus Docker's `**` for .dockerignore.
//
// GlobPattern is compiled once (syntax errors are reported then, never while matching) and is
// immutable afterwards, so one pattern may be shared by any number of threads. Matching runs a
// small NFA over the path: time is O(pattern length x path length) whatever the input, with no
// backtracking blow-up, so untrusted patterns cannot hang a scan.
//
// Syntax (filepath.Match):
//   *        any sequence of characters except '/' (possibly empty)
//   ?        exactly one character except '/'
//   [...]    one character from the class: single characters, ranges lo-hi, `\c` escapes;
//            `[^...]` negates; with GlobSyntax::kFilepath `[!...]` negates too (shell habit)
//   \c       the character c literally
// GlobSyntax::kDockerignore adds, as moby's patternmatcher does:
//   **       any number of directories, including zero: `**/` and a middle `**` match any prefix
//            ending in '/' (or nothing), a trailing `**` matches anything; a leading `**`
//            followed only by literal text matches any path ending with that text (moby's
//            suffix fast path, kept for fidelity: `**foo` matches `barfoo`)
// and reads `[!a]` as the class {'!', 'a'}, as Docker's regexp translation does.
//
// Characters are UTF-8 code points for `?` and classes, like Go's runes; a byte that is not valid
// UTF-8 counts as one character that only the same byte matches literally.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::context {

enum class GlobSyntax {
  kFilepath,      // Go filepath.Match (+ `[!...]` negation): COPY/ADD source wildcards
  kDockerignore,  // moby patternmatcher: adds `**`
};

class GlobPattern {
 public:
  GlobPattern() = default;

  // Fails with kInvalidArgument naming the problem ("unterminated character class at offset 3").
  static Result<GlobPattern> compile(std::string_view pattern, GlobSyntax syntax);

  // Whether the whole of `path` matches the pattern.
  bool matches(std::string_view path) const;

  // Whether some path starting with `prefix` could match (the NFA survives reading `prefix`).
  // Used to decide whether an excluded directory must still be walked: call it with "dir/".
  bool mayMatchWithPrefix(std::string_view prefix) const;

  // True when the pattern has no wildcard at all (it matches exactly one path).
  bool isLiteral() const { return literal_; }
  const std::string& text() const { return text_; }

 private:
  enum class Op : uint8_t {
    kLiteral,    // consumes unit == arg
    kAnyButSep,  // `?`
    kClass,      // consumes a unit in classes_[arg]
    kStar,       // `*`: loops on non-'/', epsilon to next
    kAnyTail,    // `.*`: loops on anything, epsilon to next
    kSplit,      // `(.*/)?` entry: epsilon to next (group body) and to next+1 (skip the group)
    kGroupLoop,  // `(.*/)?` body: loops on anything, '/' also moves to next
  };
  struct State {
    Op op;
    uint32_t arg = 0;
  };
  struct Range {
    uint32_t lo;
    uint32_t hi;
  };
  struct CharClass {
    std::vector<Range> ranges;
    bool negated = false;
    bool contains(uint32_t unit) const;
  };
  class Parser;

  // Runs the NFA over `input`; returns the final state set's (accepting, non-empty) flags.
  void run(std::string_view input, bool* accepted, bool* alive) const;
  void closure(std::vector<uint64_t>& set) const;
  void step(const std::vector<uint64_t>& cur, uint32_t unit, std::vector<uint64_t>& next) const;

  std::string text_;
  std::vector<State> states_;  // the accepting state is states_.size()
  std::vector<CharClass> classes_;
  bool literal_ = false;
  std::string literal_text_;  // the path the pattern matches when literal_
};

// Go's filepath.Match: whether the whole of `path` matches `pattern` (GlobSyntax::kFilepath).
// A malformed pattern (unterminated `[`, trailing `\`, empty class) is an error, never a crash.
Result<bool> matchPath(std::string_view pattern, std::string_view path);

// Go's filepath.Clean for '/'-separated paths: collapses "//", removes "." elements, resolves
// ".." lexically (a leading ".." of a relative path stays), drops a trailing '/', "" -> ".".
std::string cleanPath(std::string_view path);

// Decodes one UTF-8 code point at `s[i]`: sets *len (>= 1) and returns the code point, or
// 0x110000 + byte for a byte that does not start a valid sequence (consumed alone).
uint32_t decodeUnit(std::string_view s, size_t i, size_t* len);

}  // namespace lf::context
