#include "common/context/dockerignore.h"

namespace lf::context {

namespace {

// Go's unicode.IsSpace, which strings.TrimSpace uses.
bool isGoSpace(uint32_t cp) {
  switch (cp) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

// strings.TrimSpace: strips leading and trailing Unicode white space.
std::string_view trimSpace(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t len = 0;
    if (!isGoSpace(decodeUnit(s, begin, &len))) {
      break;
    }
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    // Step back to the start of the last code point (at most 4 bytes).
    size_t start = end - 1;
    while (start > begin && end - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
      --start;
    }
    size_t len = 0;
    uint32_t cp = decodeUnit(s, start, &len);
    if (start + len != end) {
      cp = 0xFFFFFFFF;  // not a whole code point ending at `end`: not white space
    }
    if (!isGoSpace(cp)) {
      break;
    }
    end = start;
  }
  return s.substr(begin, end - begin);
}

std::string location(std::string_view source, int line) {
  return std::string(source) + ":" + std::to_string(line);
}

}  // namespace

Status DockerIgnore::addLine(std::string_view raw, int line, std::string_view source) {
  // moby ignorefile.ReadAll: the comment test comes before trimming.
  if (raw.starts_with('#')) {
    return Status::ok();
  }
  std::string_view text = trimSpace(raw);
  if (text.empty()) {
    return Status::ok();
  }
  bool invert = text[0] == '!';
  if (invert) {
    text = trimSpace(text.substr(1));
  }
  std::string pattern;
  if (!text.empty()) {
    pattern = cleanPath(text);
    if (pattern.size() > 1 && pattern[0] == '/') {
      pattern.erase(0, 1);
    }
  }
  if (invert) {
    pattern.insert(0, "!");
  }
  // moby patternmatcher.New: cleans again, then takes the '!' off. A line "/!x" therefore becomes
  // the exception "x" in Docker too.
  pattern = cleanPath(pattern);
  IgnoreRule rule;
  rule.line = line;
  if (pattern[0] == '!') {
    if (pattern.size() == 1) {
      return invalidArgument(location(source, line) +
                             ": illegal exclusion pattern \"!\": it names no path");
    }
    rule.exception = true;
    pattern.erase(0, 1);
  }
  if (pattern.size() > kMaxPatternBytes) {
    return invalidArgument(location(source, line) + ": pattern is " +
                           std::to_string(pattern.size()) + " bytes long, more than the " +
                           std::to_string(kMaxPatternBytes) + " a path can have");
  }
  auto compiled = GlobPattern::compile(pattern, GlobSyntax::kDockerignore);
  if (!compiled.isOk()) {
    return compiled.status().withContext(location(source, line));
  }
  rule.pattern = std::move(compiled).value();
  has_exceptions_ = has_exceptions_ || rule.exception;
  rules_.push_back(std::move(rule));
  return Status::ok();
}

Result<DockerIgnore> DockerIgnore::parse(std::string_view content, std::string_view source) {
  if (content.size() > kMaxFileBytes) {
    return invalidArgument(std::string(source) + ": " + std::to_string(content.size()) +
                           " bytes, more than the " + std::to_string(kMaxFileBytes) + " accepted");
  }
  if (content.starts_with("\xEF\xBB\xBF")) {
    content.remove_prefix(3);
  }
  DockerIgnore out;
  int line = 0;
  while (!content.empty()) {
    size_t nl = content.find('\n');
    std::string_view raw = content.substr(0, nl);
    content.remove_prefix(nl == std::string_view::npos ? content.size() : nl + 1);
    if (raw.ends_with('\r')) {
      raw.remove_suffix(1);  // bufio.ScanLines drops one trailing CR
    }
    ++line;
    LF_RETURN_IF_ERROR(out.addLine(raw, line, source));
  }
  return out;
}

Result<DockerIgnore> DockerIgnore::fromPatterns(std::span<const std::string> patterns,
                                                std::string_view source) {
  DockerIgnore out;
  int line = 0;
  for (const std::string& p : patterns) {
    ++line;
    if (p.find('\n') != std::string::npos) {
      return invalidArgument(location(source, line) + ": a pattern cannot contain a newline");
    }
    LF_RETURN_IF_ERROR(out.addLine(p, line, source));
  }
  return out;
}

bool DockerIgnore::isExcluded(std::string_view path) const {
  bool excluded = false;
  for (const IgnoreRule& rule : rules_) {
    bool hit = rule.pattern.matches(path);
    for (size_t slash = path.find('/'); !hit && slash != std::string_view::npos;
         slash = path.find('/', slash + 1)) {
      hit = rule.pattern.matches(path.substr(0, slash));
    }
    if (hit) {
      excluded = !rule.exception;
    }
  }
  return excluded;
}

bool DockerIgnore::isExcludedUnder(std::string_view path, const MatchState& parent,
                                   MatchState* self) const {
  self->assign(rules_.size(), 0);
  bool excluded = false;
  for (size_t i = 0; i < rules_.size(); ++i) {
    bool hit = parent[i] != 0 || rules_[i].pattern.matches(path);
    (*self)[i] = hit ? 1 : 0;
    if (hit) {
      excluded = !rules_[i].exception;
    }
  }
  return excluded;
}

bool DockerIgnore::mayReincludeUnder(std::string_view dir) const {
  if (!has_exceptions_) {
    return false;
  }
  std::string prefix(dir);
  prefix.push_back('/');
  for (const IgnoreRule& rule : rules_) {
    if (rule.exception && rule.pattern.mayMatchWithPrefix(prefix)) {
      return true;
    }
  }
  return false;
}

}  // namespace lf::context
