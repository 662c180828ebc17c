// The line-level half of the Dockerfile parser: source lines, parser directives, comments, line
// continuations and heredoc bodies, as BuildKit's parser.Parse reads them. Each logical line is
// handed to detail::parseInstruction (instruction_parser.cpp).

#include "common/dockerfile/parser.h"

#include <fmt/format.h>

#include <cctype>
#include <cstring>

#include "common/dockerfile/line_parsers.h"

namespace lf::dockerfile {
namespace {

using detail::errorAt;
using detail::LogicalLine;

struct SourceLine {
  std::string_view text;  // without the line break and trailing '\r's
  int number = 0;
  std::size_t offset = 0;  // of text in the whole input
};

bool isDirectiveSpace(char c) {
  // RE2's \s: [\t\n\f\r ]
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

// Matches BuildKit's ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ on a comment line.
bool matchDirective(std::string_view s, std::string* name, std::string* value) {
  if (s.empty() || s[0] != '#') {
    return false;
  }
  std::size_t i = 1;
  while (i < s.size() && isDirectiveSpace(s[i])) {
    ++i;
  }
  std::size_t start = i;
  if (i >= s.size() || !std::isalpha(static_cast<unsigned char>(s[i]))) {
    return false;
  }
  while (i < s.size() && std::isalnum(static_cast<unsigned char>(s[i]))) {
    ++i;
  }
  std::string_view n = s.substr(start, i - start);
  while (i < s.size() && isDirectiveSpace(s[i])) {
    ++i;
  }
  if (i >= s.size() || s[i] != '=') {
    return false;
  }
  ++i;
  while (i < s.size() && isDirectiveSpace(s[i])) {
    ++i;
  }
  std::size_t end = s.size();
  while (end > i && isDirectiveSpace(s[end - 1])) {
    --end;
  }
  if (end == i) {
    return false;
  }
  name->clear();
  for (char c : n) {
    name->push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  *value = std::string(s.substr(i, end - i));
  return true;
}

// Whether `s` ends with the escape character followed only by spaces and tabs; if so, *body
// is `s` without them.
bool continues(std::string_view s, char escape, std::string_view* body) {
  std::size_t end = s.size();
  while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
    --end;
  }
  if (end > 0 && s[end - 1] == escape) {
    *body = s.substr(0, end - 1);
    return true;
  }
  *body = s;
  return false;
}

// Reads one Dockerfile. Holds views into the input; lives for one parse() call.
class Parser {
 public:
  Parser(std::string_view text, std::string_view file_name) : text_(text) {
    df_.file_name = std::string(file_name);
    if (text_.substr(0, 3) == "\xEF\xBB\xBF") {
      text_.remove_prefix(3);  // a UTF-8 byte-order mark; columns count from after it
    }
  }

  Result<Dockerfile> run();

 private:
  bool nextLine(SourceLine* out);
  Status directive(std::string_view stripped, int number);
  Status readInstruction(const SourceLine& first, std::size_t lead);
  Status readHeredocs(const LogicalLine& line, Instruction* ins);
  std::string originalText(std::size_t from) const;
  Status checkOrder(const Instruction& ins);

  std::string_view text_;
  std::size_t pos_ = 0;
  int line_no_ = 0;
  std::size_t consumed_end_ = 0;  // end offset (in text_) of the last line read
  bool directives_done_ = false;
  bool seen_from_ = false;
  Dockerfile df_;
};

bool Parser::nextLine(SourceLine* out) {
  if (pos_ >= text_.size()) {
    return false;
  }
  const char* base = text_.data();
  const void* nl = std::memchr(base + pos_, '\n', text_.size() - pos_);
  std::size_t end = nl ? static_cast<const char*>(nl) - base : text_.size();
  std::size_t trimmed = end;
  while (trimmed > pos_ && text_[trimmed - 1] == '\r') {
    --trimmed;
  }
  out->text = text_.substr(pos_, trimmed - pos_);
  out->offset = pos_;
  out->number = ++line_no_;
  consumed_end_ = trimmed;
  pos_ = nl ? end + 1 : end;
  return true;
}

Status Parser::directive(std::string_view stripped, int number) {
  std::string name;
  std::string value;
  if (!matchDirective(stripped, &name, &value) ||
      (name != "syntax" && name != "escape" && name != "check")) {
    directives_done_ = true;  // an unknown directive is a comment and ends the directives
    return Status::ok();
  }
  for (const Directive& d : df_.directives) {
    if (d.name == name) {
      return errorAt(df_.file_name, Position{number, 1},
                     fmt::format("only one {} parser directive can be used (the first is on line "
                                 "{})",
                                 name, d.line));
    }
  }
  if (name == "escape") {
    if (value != "\\" && value != "`") {
      return errorAt(df_.file_name, Position{number, 1},
                     fmt::format("invalid escape parser directive '{}': the escape character must "
                                 "be \\ or `",
                                 value.substr(0, 64)));
    }
    df_.escape = value[0];
  }
  df_.directives.push_back(Directive{std::move(name), std::move(value), number});
  return Status::ok();
}

Result<Dockerfile> Parser::run() {
  SourceLine line;
  while (nextLine(&line)) {
    std::size_t lead = line.text.size() - detail::trimLeftSpace(line.text).size();
    std::string_view stripped = line.text.substr(lead);
    if (!directives_done_) {
      LF_RETURN_IF_ERROR(directive(stripped, line.number));
    }
    if (!stripped.empty() && stripped[0] == '#') {
      continue;  // a comment (or a directive, recorded above)
    }
    if (stripped.empty()) {
      continue;
    }
    LF_RETURN_IF_ERROR(readInstruction(line, lead));
  }
  if (df_.instructions.empty()) {
    return errorAt(df_.file_name, Position{std::max(1, line_no_), 1},
                   "the Dockerfile has no instructions (it needs at least a FROM)");
  }
  if (!seen_from_) {
    return errorAt(df_.file_name, df_.instructions.front().pos,
                   "no FROM instruction: a Dockerfile needs at least one build stage "
                   "(FROM <image>); only ARG may come before it");
  }
  return std::move(df_);
}

Status Parser::readInstruction(const SourceLine& first, std::size_t lead) {
  LogicalLine ll;
  std::string_view body;
  bool more = continues(first.text.substr(lead), df_.escape, &body);
  ll.append(body, first.number, static_cast<int>(lead) + 1, first.offset + lead);
  SourceLine line;
  while (more && nextLine(&line)) {
    std::string_view stripped = detail::trimLeftSpace(line.text);
    if (stripped.empty() || stripped[0] == '#') {
      continue;  // comments and blank lines inside a continuation are skipped
    }
    more = continues(line.text, df_.escape, &body);
    ll.append(body, line.number, 1, line.offset);
  }
  if (detail::trimSpace(ll.text()).empty()) {
    return Status::ok();  // only escape characters and blank lines: nothing to parse
  }
  Instruction ins;
  detail::LineContext ctx{df_.file_name, df_.escape, &ll};
  LF_RETURN_IF_ERROR(detail::parseInstruction(ll.text(), ctx, &ins));
  std::size_t kw_source =
      ll.sourceOffsetAt(detail::trimLeftSpace(ll.text()).data() - ll.text().data());
  LF_RETURN_IF_ERROR(readHeredocs(ll, &ins));
  ins.end_line = line_no_;
  if (ins.trigger) {
    ins.trigger->end_line = ins.end_line;  // a trigger spans its ONBUILD's lines
  }
  ins.original = originalText(kw_source);
  LF_RETURN_IF_ERROR(checkOrder(ins));
  df_.instructions.push_back(std::move(ins));
  return Status::ok();
}

Status Parser::readHeredocs(const LogicalLine& ll, Instruction* ins) {
  const std::string& kw = ins->keyword;
  if ((kw != "RUN" && kw != "COPY" && kw != "ADD") || ins->json) {
    return Status::ok();
  }
  for (detail::HeredocMarker& m : detail::findHeredocs(ll.text())) {
    Heredoc& doc = m.heredoc;
    bool terminated = false;
    SourceLine line;
    while (nextLine(&line)) {
      std::string_view body = line.text;
      if (doc.strip_tabs) {
        body.remove_prefix(std::min(body.size(), body.find_first_not_of('\t')));
      }
      if (body == doc.name) {
        terminated = true;
        break;
      }
      doc.content.append(body);
      doc.content.push_back('\n');
    }
    if (!terminated) {
      std::string shown = doc.name.substr(0, 64);
      return errorAt(df_.file_name, ll.positionAt(m.offset),
                     fmt::format("unterminated heredoc: no line \"{}\" ends the heredoc started "
                                 "here before the end of the file",
                                 shown));
    }
    ins->heredocs.push_back(std::move(doc));
  }
  return Status::ok();
}

// The instruction as written: from its keyword to the end of its last line, line breaks as
// '\n' (carriage returns before them dropped).
std::string Parser::originalText(std::size_t from) const {
  std::string_view s = text_.substr(from, consumed_end_ - std::min(from, consumed_end_));
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t nl = s.find('\n', i);
    std::size_t end = nl == std::string_view::npos ? s.size() : nl;
    std::size_t trimmed = end;
    while (trimmed > i && s[trimmed - 1] == '\r') {
      --trimmed;
    }
    out.append(s.substr(i, trimmed - i));
    if (nl == std::string_view::npos) {
      break;
    }
    out.push_back('\n');
    i = nl + 1;
  }
  return out;
}

Status Parser::checkOrder(const Instruction& ins) {
  if (ins.keyword == "FROM") {
    seen_from_ = true;
  } else if (!seen_from_ && ins.keyword != "ARG") {
    return errorAt(df_.file_name, ins.pos,
                   fmt::format("{} before the first FROM: a Dockerfile must start with FROM "
                               "(only ARG, comments and parser directives may come before it)",
                               ins.keyword));
  }
  return Status::ok();
}

}  // namespace

Result<Dockerfile> parse(std::string_view text, std::string_view file_name) {
  Parser parser(text, file_name);
  return parser.run();
}

}  // namespace lf::dockerfile
