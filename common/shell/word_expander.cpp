#include "common/shell/word_expander.h"

#include <fmt/format.h>

#include <utility>

#include "common/shell/glob_pattern.h"

namespace lf::shell {
namespace {

// Deep ${A:-${B:-${C:-...}}} nesting recurses; past this depth the word is rejected instead of
// exhausting the stack on a hostile Dockerfile.
constexpr int kMaxNesting = 64;

bool isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isNameChar(char c) { return isNameStart(c) || isDigit(c); }

// Receives the pieces of an expanded word. `quoted` marks characters that came from quotes or
// escapes (or from an expansion inside double quotes): they never split words and are literal
// in glob patterns.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void literal(char c, bool quoted) = 0;
  virtual void value(std::string_view v, bool quoted) = 0;
};

class StringSink : public Sink {
 public:
  void literal(char c, bool quoted) override {
    text.push_back(c);
    quoted_mask.push_back(quoted);
  }
  void value(std::string_view v, bool quoted) override {
    text.append(v);
    quoted_mask.insert(quoted_mask.end(), v.size(), quoted);
  }
  std::string text;
  std::vector<bool> quoted_mask;
};

// Splits on unquoted whitespace the way BuildKit's ProcessWords does: empty words are dropped.
class WordsSink : public Sink {
 public:
  void literal(char c, bool quoted) override {
    if (!quoted && isSpace(c)) {
      boundary();
    } else {
      word_.push_back(c);
    }
  }
  void value(std::string_view v, bool quoted) override {
    if (quoted) {
      word_.append(v);
      return;
    }
    for (char c : v) literal(c, false);
  }
  std::vector<std::string> finish() {
    boundary();
    return std::move(words_);
  }

 private:
  void boundary() {
    if (!word_.empty()) words_.push_back(std::move(word_));
    word_.clear();
  }
  std::string word_;
  std::vector<std::string> words_;
};

// One pass over one word. Positions in errors are 1-based columns within the word.
class Lexer {
 public:
  Lexer(std::string_view in, const Lookup& lookup, const ExpandOptions& options,
        std::set<std::string, std::less<>>* referenced, std::set<std::string, std::less<>>* unset)
      : in_(in),
        lookup_(lookup),
        options_(options),
        referenced_(referenced),
        unset_(unset),
        budget_(options.max_pattern_steps) {}

  Status run(Sink& sink) {
    char stopped = 0;
    return processUntil(sink, {}, 0, &stopped);
  }

 private:
  bool atEnd() const { return pos_ >= in_.size(); }
  char peek() const { return in_[pos_]; }

  static Status syntaxError(std::size_t index, std::string_view what) {
    return invalidArgument(fmt::format("column {}: {}", index + 1, what));
  }

  Status charge(std::size_t bytes) {
    produced_ += bytes;
    if (produced_ > options_.max_result_bytes) {
      return resourceExhausted(
          fmt::format("expansion result exceeds {} bytes", options_.max_result_bytes));
    }
    return Status::ok();
  }

  Status processUntil(Sink& sink, std::string_view stops, int depth, char* stopped);
  Status singleQuote(Sink& sink);
  Status doubleQuote(Sink& sink, int depth);
  Status escaped(Sink& sink);
  Result<std::string> dollar(int depth);
  Result<std::string> braced(std::size_t start, int depth);
  Result<StringSink> nestedWord(std::size_t start, std::string_view stops, int depth,
                                char* stopped);
  Result<std::string> conditional(const std::string& name, char op, bool colon, std::size_t start,
                                  int depth);
  Result<std::string> trim(const std::string& name, char op, std::size_t start, int depth);
  Result<std::string> replace(const std::string& name, std::size_t start, int depth);
  std::string readName();
  std::optional<std::string> lookupVar(const std::string& name);

  std::string_view in_;
  std::size_t pos_ = 0;
  const Lookup& lookup_;
  const ExpandOptions& options_;
  std::set<std::string, std::less<>>* referenced_;
  std::set<std::string, std::less<>>* unset_;
  std::int64_t budget_;
  std::size_t produced_ = 0;
};

Status Lexer::processUntil(Sink& sink, std::string_view stops, int depth, char* stopped) {
  *stopped = 0;
  while (!atEnd()) {
    char c = peek();
    if (stops.find(c) != std::string_view::npos) {
      ++pos_;
      *stopped = c;
      return Status::ok();
    }
    if (!options_.keep_quotes && c == '\'') {
      LF_RETURN_IF_ERROR(singleQuote(sink));
    } else if (!options_.keep_quotes && c == '"') {
      LF_RETURN_IF_ERROR(doubleQuote(sink, depth));
    } else if (c == '$') {
      ++pos_;
      LF_ASSIGN_OR_RETURN(std::string v, dollar(depth));
      LF_RETURN_IF_ERROR(charge(v.size()));
      sink.value(v, false);
    } else if (c == options_.escape) {
      ++pos_;
      LF_RETURN_IF_ERROR(escaped(sink));
    } else {
      LF_RETURN_IF_ERROR(charge(1));
      sink.literal(c, false);
      ++pos_;
    }
  }
  return Status::ok();
}

// After an escape character outside quotes. Docker drops a trailing escape at the end of a word.
Status Lexer::escaped(Sink& sink) {
  if (atEnd()) return Status::ok();
  char n = in_[pos_++];
  LF_RETURN_IF_ERROR(charge(2));
  if (options_.keep_quotes && n != '$' && n != options_.escape) {
    // Here-document bodies keep escapes that do not protect a '$'.
    sink.literal(options_.escape, false);
    sink.literal(n, false);
    return Status::ok();
  }
  sink.literal(n, true);
  return Status::ok();
}

Status Lexer::singleQuote(Sink& sink) {
  std::size_t start = pos_++;
  while (!atEnd()) {
    char c = in_[pos_++];
    if (c == '\'') return Status::ok();
    LF_RETURN_IF_ERROR(charge(1));
    sink.literal(c, true);
  }
  return syntaxError(start, "unterminated single-quoted string (missing closing ')");
}

Status Lexer::doubleQuote(Sink& sink, int depth) {
  std::size_t start = pos_++;
  while (!atEnd()) {
    char c = in_[pos_++];
    if (c == '"') return Status::ok();
    if (c == '$') {
      LF_ASSIGN_OR_RETURN(std::string v, dollar(depth));
      LF_RETURN_IF_ERROR(charge(v.size()));
      sink.value(v, true);
      continue;
    }
    LF_RETURN_IF_ERROR(charge(1));
    if (c == options_.escape && !atEnd()) {
      // Inside double quotes only '"', '$' and the escape character itself can be escaped;
      // any other escape stays in the text, as in Docker.
      char n = peek();
      if (n == '"' || n == '$' || n == options_.escape) {
        ++pos_;
        sink.literal(n, true);
        continue;
      }
    }
    sink.literal(c, true);
  }
  return syntaxError(start, "unterminated double-quoted string (missing closing \")");
}

std::string Lexer::readName() {
  std::size_t begin = pos_;
  if (!atEnd() && isDigit(peek())) {
    while (!atEnd() && isDigit(peek())) ++pos_;
  } else if (!atEnd() && isNameStart(peek())) {
    while (!atEnd() && isNameChar(peek())) ++pos_;
  }
  return std::string(in_.substr(begin, pos_ - begin));
}

std::optional<std::string> Lexer::lookupVar(const std::string& name) {
  referenced_->insert(name);
  std::optional<std::string> v;
  if (lookup_) v = lookup_(name);
  if (!v) unset_->insert(name);
  return v;
}

// Called just after a '$'.
Result<std::string> Lexer::dollar(int depth) {
  std::size_t start = pos_ - 1;
  if (atEnd()) return std::string("$");
  if (peek() == '{') {
    ++pos_;
    if (depth + 1 > kMaxNesting) {
      return syntaxError(start, fmt::format("expansions nested more than {} deep", kMaxNesting));
    }
    return braced(start, depth + 1);
  }
  std::string name = readName();
  if (name.empty()) return std::string("$");
  return lookupVar(name).value_or("");
}

Result<std::string> Lexer::braced(std::size_t start, int depth) {
  if (atEnd()) return syntaxError(start, "missing '}' to close '${'");
  char first = peek();
  std::string name = readName();
  if (name.empty()) {
    return syntaxError(start, fmt::format("bad substitution: '${{' followed by '{}'", first));
  }
  if (atEnd()) return syntaxError(start, "missing '}' to close '${'");
  char op = in_[pos_++];
  switch (op) {
    case '}':
      return lookupVar(name).value_or("");
    case ':': {
      if (atEnd()) return syntaxError(start, "missing '}' to close '${'");
      char op2 = in_[pos_++];
      if (op2 != '-' && op2 != '+' && op2 != '?') {
        return syntaxError(start,
                           fmt::format("unsupported modifier ':{}' in ${{{}...}}", op2, name));
      }
      return conditional(name, op2, true, start, depth);
    }
    case '-':
    case '+':
    case '?':
      return conditional(name, op, false, start, depth);
    case '#':
    case '%':
      return trim(name, op, start, depth);
    case '/':
      return replace(name, start, depth);
    default:
      return syntaxError(start, fmt::format("unsupported modifier '{}' in ${{{}...}}", op, name));
  }
}

Result<StringSink> Lexer::nestedWord(std::size_t start, std::string_view stops, int depth,
                                     char* stopped) {
  StringSink word;
  LF_RETURN_IF_ERROR(processUntil(word, stops, depth, stopped));
  if (*stopped == 0) return syntaxError(start, "missing '}' to close '${'");
  return word;
}

Result<std::string> Lexer::conditional(const std::string& name, char op, bool colon,
                                       std::size_t start, int depth) {
  char stopped = 0;
  // Docker expands the operand before testing the variable, so its variables count as
  // referenced and its syntax errors are reported either way.
  LF_ASSIGN_OR_RETURN(StringSink word, nestedWord(start, "}", depth, &stopped));
  std::optional<std::string> v = lookupVar(name);
  bool missing = !v || (colon && v->empty());
  switch (op) {
    case '-':
      return missing ? std::move(word.text) : *v;
    case '+':
      return missing ? std::string() : std::move(word.text);
    default:  // '?'
      if (!v) {
        return syntaxError(
            start, fmt::format("{}: {}", name,
                               word.text.empty() ? "is not allowed to be unset" : word.text));
      }
      if (colon && v->empty()) {
        return syntaxError(
            start, fmt::format("{}: {}", name,
                               word.text.empty() ? "is not allowed to be empty" : word.text));
      }
      return *v;
  }
}

Result<std::string> Lexer::trim(const std::string& name, char op, std::size_t start, int depth) {
  bool longest = !atEnd() && peek() == op;
  if (longest) ++pos_;
  char stopped = 0;
  LF_ASSIGN_OR_RETURN(StringSink pat, nestedWord(start, "}", depth, &stopped));
  std::string value = lookupVar(name).value_or("");
  GlobPattern pattern(pat.text, pat.quoted_mask);
  return trimMatch(value, pattern, /*from_end=*/op == '%', longest, &budget_);
}

Result<std::string> Lexer::replace(const std::string& name, std::size_t start, int depth) {
  bool all = !atEnd() && peek() == '/';
  if (all) ++pos_;
  char stopped = 0;
  LF_ASSIGN_OR_RETURN(StringSink pat, nestedWord(start, "/}", depth, &stopped));
  StringSink rep;
  if (stopped == '/') {
    LF_ASSIGN_OR_RETURN(rep, nestedWord(start, "}", depth, &stopped));
  }
  std::string value = lookupVar(name).value_or("");
  GlobPattern pattern(pat.text, pat.quoted_mask);
  return replaceMatches(value, pattern, rep.text, all, options_.max_result_bytes, &budget_);
}

}  // namespace

WordExpander::WordExpander(Lookup lookup, ExpandOptions options)
    : lookup_(std::move(lookup)), options_(options) {}

void WordExpander::clearReferences() {
  referenced_.clear();
  unset_.clear();
}

Result<std::string> WordExpander::expandWord(std::string_view word) {
  StringSink sink;
  Lexer lexer(word, lookup_, options_, &referenced_, &unset_);
  LF_RETURN_IF_ERROR(lexer.run(sink));
  return std::move(sink.text);
}

Result<std::vector<std::string>> WordExpander::expandWords(std::string_view text) {
  WordsSink sink;
  Lexer lexer(text, lookup_, options_, &referenced_, &unset_);
  LF_RETURN_IF_ERROR(lexer.run(sink));
  return sink.finish();
}

Result<std::string> expandWord(std::string_view word, const Lookup& lookup, char escape) {
  ExpandOptions options;
  options.escape = escape;
  return WordExpander(lookup, options).expandWord(word);
}

Result<std::vector<std::string>> expandWords(std::string_view text, const Lookup& lookup,
                                             char escape) {
  ExpandOptions options;
  options.escape = escape;
  return WordExpander(lookup, options).expandWords(text);
}

}  // namespace lf::shell
