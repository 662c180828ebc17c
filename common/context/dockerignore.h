#pragma once

// .dockerignore: which paths of a build context are left out of the context sent to the builder.
//
// Semantics follow Docker (Dockerfile reference, ".dockerignore file", and moby's ignorefile +
// patternmatcher packages), re-implemented here:
//   - one pattern per line; the last line may lack '\n'; a trailing '\r' is dropped; a UTF-8 BOM
//     at the start of the file is skipped;
//   - a line whose FIRST character is '#' is a comment (Docker checks before trimming, so
//     "  # x" is the pattern "# x");
//   - surrounding Unicode whitespace is trimmed; blank lines are skipped;
//   - a leading '!' makes an exception (re-include); whitespace after the '!' is trimmed too;
//   - the pattern is cleaned like Go's filepath.Clean and one leading '/' is dropped, so "/foo",
//     "./foo" and "foo/" all mean "foo";
//   - matching uses GlobSyntax::kDockerignore (filepath.Match plus `**`) on the whole
//     '/'-separated path relative to the context root;
//   - a path is excluded when the LAST pattern that matches it or one of its parent directories
//     is an exclusion; so excluding a directory excludes everything below it, and "!dir/keep"
//     after "dir" brings dir/keep back.
// Differences, on purpose: a pattern longer than 4096 bytes is rejected (no path can need it,
// and it bounds matching time on untrusted files); character classes always follow
// filepath.Match (Docker hands them to Go's regexp, where `\d` is a digit class); errors carry
// ".dockerignore:LINE:" which Docker's do not.
//
// A DockerIgnore is immutable after parse() and safe to share between threads.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/context/pattern.h"

namespace lf::context {

// One pattern line after Docker's preprocessing.
struct IgnoreRule {
  GlobPattern pattern;     // cleaned, without the '!' and the leading '/'
  bool exception = false;  // a "!" line: re-includes what it matches
  int line = 0;            // 1-based line in the source
};

class DockerIgnore {
 public:
  // The largest .dockerignore parse() accepts, and the longest pattern.
  static constexpr size_t kMaxFileBytes = 16u << 20;
  static constexpr size_t kMaxPatternBytes = 4096;

  DockerIgnore() = default;  // excludes nothing

  // Parses file content; errors read "<source>:LINE: ...".
  static Result<DockerIgnore> parse(std::string_view content,
                                    std::string_view source = ".dockerignore");
  // Patterns given one per element (e.g. from a request), each processed exactly like a line of
  // the file (comments and blanks skipped); element i is "line" i + 1 in errors.
  static Result<DockerIgnore> fromPatterns(std::span<const std::string> patterns,
                                           std::string_view source = "ignore pattern");

  bool empty() const { return rules_.empty(); }
  bool hasExceptions() const { return has_exceptions_; }
  const std::vector<IgnoreRule>& rules() const { return rules_; }

  // Whether `path` (relative, '/'-separated, no "./", no trailing '/') is excluded, taking its
  // parent directories into account (moby's MatchesOrParentMatches).
  bool isExcluded(std::string_view path) const;

  // The same decision made incrementally during a top-down walk, without re-matching every
  // ancestor: `parent` says, per rule, whether the rule matched the parent directory or one of its
  // ancestors (rootState() for entries at the top of the context); `*self` receives the same for
  // `path`, to pass to its children.
  using MatchState = std::vector<uint8_t>;
  MatchState rootState() const { return MatchState(rules_.size(), 0); }
  bool isExcludedUnder(std::string_view path, const MatchState& parent, MatchState* self) const;

  // Whether an exception pattern could match something below the excluded directory `dir`; if so
  // the walk must still enter `dir` (the excluded directory itself is not sent).
  bool mayReincludeUnder(std::string_view dir) const;

 private:
  Status addLine(std::string_view raw, int line, std::string_view source);

  std::vector<IgnoreRule> rules_;
  bool has_exceptions_ = false;
};

}  // namespace lf::context
