#include "common/dockerfile/line_parsers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace lf::dockerfile::detail {

void LogicalLine::append(std::string_view piece, int line, int column, std::size_t source_offset) {
  segments_.push_back(Segment{text_.size(), line, column, source_offset});
  text_.append(piece);
}

const LogicalLine::Segment& LogicalLine::segmentAt(std::size_t offset) const {
  // The last segment starting at or before `offset`; callers only ask after one append.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), offset,
                             [](std::size_t off, const Segment& s) { return off < s.offset; });
  if (it != segments_.begin()) {
    --it;
  }
  return *it;
}

Position LogicalLine::positionAt(std::size_t offset) const {
  if (segments_.empty()) {
    return Position{1, 1};
  }
  const Segment& s = segmentAt(offset);
  return Position{s.line, s.column + static_cast<int>(offset - s.offset)};
}

std::size_t LogicalLine::sourceOffsetAt(std::size_t offset) const {
  if (segments_.empty()) {
    return 0;
  }
  const Segment& s = segmentAt(offset);
  return s.source_offset + (offset - s.offset);
}

Status errorAt(std::string_view file_name, Position pos, std::string_view message) {
  return invalidArgument(fmt::format("{}:{}:{}: {}", file_name, pos.line, pos.column, message));
}

std::size_t spaceLength(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
  };
  unsigned c = at(0);
  if (c == ' ' || (c >= '\t' && c <= '\r')) {
    return 1;
  }
  switch (c) {
    case 0xC2:  // U+0085 NEL, U+00A0 NBSP
      return (at(1) == 0x85 || at(1) == 0xA0) ? 2 : 0;
    case 0xE1:  // U+1680
      return (at(1) == 0x9A && at(2) == 0x80) ? 3 : 0;
    case 0xE2: {  // U+2000..U+200A, U+2028, U+2029, U+202F, U+205F
      unsigned b1 = at(1);
      unsigned b2 = at(2);
      if (b1 == 0x80 && ((b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF)) {
        return 3;
      }
      return (b1 == 0x81 && b2 == 0x9F) ? 3 : 0;
    }
    case 0xE3:  // U+3000
      return (at(1) == 0x80 && at(2) == 0x80) ? 3 : 0;
    default:
      return 0;
  }
}

std::string_view trimLeftSpace(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t n = spaceLength(s, i);
    if (n == 0) {
      break;
    }
    i += n;
  }
  return s.substr(i);
}

std::string_view trimSpace(std::string_view s) {
  s = trimLeftSpace(s);
  while (!s.empty()) {
    std::size_t n = s.size();
    if (spaceLength(s, n - 1) == 1) {
      s.remove_suffix(1);
    } else if (n >= 2 && spaceLength(s, n - 2) == 2) {
      s.remove_suffix(2);
    } else if (n >= 3 && spaceLength(s, n - 3) == 3) {
      s.remove_suffix(3);
    } else {
      break;
    }
  }
  return s;
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  std::size_t n = a.size();
  std::size_t m = b.size();
  // Three rolling rows of the optimal-string-alignment table (transpositions cost 1).
  std::vector<std::size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (std::size_t j = 0; j <= m; ++j) {
    prev[j] = j;
  }
  for (std::size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

namespace {

// Scans one shell word starting at s[i] the way BuildKit's lexer does with raw quotes and raw
// escapes (nothing is removed). Returns the end offset, or npos for an unterminated quote.
std::size_t scanShellWord(std::string_view s, std::size_t i) {
  while (i < s.size() && spaceLength(s, i) == 0) {
    char c = s[i];
    if (c == '\\') {
      i = std::min(s.size(), i + 2);
    } else if (c == '\'') {
      std::size_t close = s.find('\'', i + 1);
      if (close == std::string_view::npos) {
        return std::string_view::npos;
      }
      i = close + 1;
    } else if (c == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        i += (s[i] == '\\') ? 2 : 1;
      }
      if (i >= s.size()) {
        return std::string_view::npos;
      }
      ++i;
    } else {
      ++i;
    }
  }
  return i;
}

// Removes shell quoting from a heredoc delimiter word. Sets *quoted when a quote was removed
// (which turns expansion of the body off). Returns false for an unterminated quote.
bool unquoteDelimiter(std::string_view w, std::string* out, bool* quoted) {
  *quoted = false;
  for (std::size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    if (c == '\\') {
      if (i + 1 < w.size()) {
        out->push_back(w[++i]);
      }
    } else if (c == '\'') {
      std::size_t close = w.find('\'', i + 1);
      if (close == std::string_view::npos) {
        return false;
      }
      out->append(w.substr(i + 1, close - i - 1));
      i = close;
      *quoted = true;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < w.size() && w[j] != '"'; ++j) {
        if (w[j] == '\\' && j + 1 < w.size() &&
            (w[j + 1] == '"' || w[j + 1] == '\\' || w[j + 1] == '$' || w[j + 1] == '`')) {
          ++j;
        }
        out->push_back(w[j]);
      }
      if (j >= w.size()) {
        return false;
      }
      i = j;
      *quoted = true;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

// Matches BuildKit's ^(\d*)<<(-?)([^<]*)$ with a non-empty delimiter.
bool heredocFromWord(std::string_view word, Heredoc* out) {
  std::size_t j = 0;
  while (j < word.size() && std::isdigit(static_cast<unsigned char>(word[j]))) {
    ++j;
  }
  if (word.substr(j, 2) != "<<") {
    return false;
  }
  j += 2;
  bool chomp = j < word.size() && word[j] == '-';
  if (chomp) {
    ++j;
  }
  std::string_view rest = word.substr(j);
  if (rest.empty() || rest.find('<') != std::string_view::npos) {
    return false;
  }
  bool quoted = false;
  std::string name;
  if (!unquoteDelimiter(rest, &name, &quoted)) {
    return false;
  }
  out->name = std::move(name);
  out->expand = !quoted;
  out->strip_tabs = chomp;
  return true;
}

}  // namespace

std::vector<HeredocMarker> findHeredocs(std::string_view line) {
  std::vector<HeredocMarker> out;
  if (line.find("<<") == std::string_view::npos) {
    return out;
  }
  std::size_t i = 0;
  while (i < line.size()) {
    std::size_t sp = spaceLength(line, i);
    if (sp != 0) {
      i += sp;
      continue;
    }
    std::size_t end = scanShellWord(line, i);
    if (end == std::string_view::npos) {
      // BuildKit's lexer fails on an unbalanced quote and then finds no heredoc at all.
      return {};
    }
    HeredocMarker m;
    if (heredocFromWord(line.substr(i, end - i), &m.heredoc)) {
      m.offset = i;
      out.push_back(std::move(m));
    }
    i = end;
  }
  return out;
}

}  // namespace lf::dockerfile::detail
