#pragma once

// Docker's word expansion: what BuildKit's shell lexer does to the arguments of ADD, COPY, ENV,
// EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR (and flags such as COPY --chown) before
// an instruction is executed. See the Dockerfile reference, "Environment replacement".
//
// Supported forms:
//   $VAR  ${VAR}                    the value, or "" when unset
//   ${VAR:-word}  ${VAR-word}       word when VAR is unset (or, with ':', empty)
//   ${VAR:+word}  ${VAR+word}       word when VAR is set (and, with ':', non-empty), else ""
//   ${VAR:?msg}   ${VAR?msg}        an error "VAR: msg" when VAR is unset (or, with ':', empty)
//   ${VAR#pat} ${VAR##pat}          remove the shortest / longest prefix matching the glob pat
//   ${VAR%pat} ${VAR%%pat}          remove the shortest / longest suffix matching pat
//   ${VAR/pat/rep} ${VAR//pat/rep}  replace the first / every (leftmost, longest) match of pat
// `word`, `pat` and `rep` may contain quotes and further expansions. Glob patterns know `*` and
// `?`; quoted or escaped characters in a pattern are literal. '...' is literal, "..." expands
// $ inside, and the quotes themselves are removed. The escape character (backslash, or the one a
// Dockerfile's `# escape=` directive chose, e.g. backtick) makes the next character literal; at
// the very end of a word it is dropped, as Docker does. `$` followed by anything that cannot
// start a name (and is not `{`) stays a literal `$`. Names are [A-Za-z_][A-Za-z0-9_]* or a run
// of digits ($1 is looked up as "1").
//
// Error contract: syntax errors (unterminated quotes or `${`, bad substitution, unsupported
// modifier) and `${VAR?msg}` failures return kInvalidArgument with the message starting
// "column N: " where N is the 1-based column in the word at which the construct starts.
// Expansion never throws and runs in time linear in the input plus the size of what it
// produces; pattern operations are bounded by a work budget and the output by
// ExpandOptions::max_result_bytes (kResourceExhausted beyond either).
//
// Thread-compatible: one WordExpander per thread; the Lookup is called synchronously.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::shell {

// Looks a variable up in the scope the caller owns (for a Dockerfile step: ENV plus the ARGs in
// scope). nullopt means unset; an empty string is a set, empty variable.
using Lookup = std::function<std::optional<std::string>(std::string_view name)>;

struct ExpandOptions {
  // The Dockerfile's escape character: '\\' (default) or '`'.
  char escape = '\\';
  // Quotes are ordinary characters and the escape character only escapes '$' and itself. Used
  // for here-document bodies, which BuildKit expands without quote processing.
  bool keep_quotes = false;
  // Upper bound on the bytes one expansion may produce (nested expansions included).
  std::size_t max_result_bytes = std::size_t{16} << 20;
  // Upper bound on glob-matching steps per expansion (guards ${V//pat/rep} on huge values).
  std::int64_t max_pattern_steps = std::int64_t{1} << 26;
};

// Expands words against one variable scope and remembers every variable name the expansions
// referenced, so a build plan can put only the build args a step really uses into its cache key.
class WordExpander {
 public:
  explicit WordExpander(Lookup lookup, ExpandOptions options = {});

  // Docker's ProcessWord: the word expanded to one string, quotes removed, whitespace kept.
  Result<std::string> expandWord(std::string_view word);

  // Docker's ProcessWords: the text expanded and split on unquoted whitespace, including
  // whitespace that comes from unquoted expansions ("$PORTS" stays one word, $PORTS may be
  // several). Empty words are dropped, as Docker does. EXPOSE uses this form.
  Result<std::vector<std::string>> expandWords(std::string_view text);

  // Every variable name looked up since construction (or the last clearReferences()), set or
  // not, including names inside operator words that did not end up in the result.
  const std::set<std::string, std::less<>>& referenced() const { return referenced_; }
  // The subset of referenced() that was unset when looked up.
  const std::set<std::string, std::less<>>& unset() const { return unset_; }
  void clearReferences();

  const ExpandOptions& options() const { return options_; }

 private:
  Lookup lookup_;
  ExpandOptions options_;
  std::set<std::string, std::less<>> referenced_;
  std::set<std::string, std::less<>> unset_;
};

// Convenience wrappers for one-off expansions.
Result<std::string> expandWord(std::string_view word, const Lookup& lookup, char escape = '\\');
Result<std::vector<std::string>> expandWords(std::string_view text, const Lookup& lookup,
                                             char escape = '\\');

}  // namespace lf::shell
