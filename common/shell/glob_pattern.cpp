#include "common/shell/glob_pattern.h"

#include <algorithm>

namespace lf::shell {

GlobPattern::GlobPattern(std::string_view text, const std::vector<bool>& literal) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool lit = i < literal.size() && literal[i];
    char c = text[i];
    if (!lit && c == '*') {
      // Consecutive stars match the same strings as one star; collapsing them keeps the NFA small.
      if (tokens_.empty() || tokens_.back().kind != Kind::kStar) {
        tokens_.push_back({Kind::kStar, c});
      }
    } else if (!lit && c == '?') {
      tokens_.push_back({Kind::kAny, c});
    } else {
      tokens_.push_back({Kind::kLiteral, c});
    }
  }
  reversed_.assign(tokens_.rbegin(), tokens_.rend());
}

Result<std::int64_t> GlobPattern::run(const std::vector<Token>& tokens, std::string_view s,
                                      bool longest, std::int64_t* budget) {
  const std::size_t k = tokens.size();
  std::vector<std::uint8_t> cur(k + 1, 0);
  std::vector<std::uint8_t> next(k + 1, 0);
  // A star may match nothing, so the state after it is active whenever the star's state is.
  auto close = [&](std::vector<std::uint8_t>& states) {
    for (std::size_t j = 0; j < k; ++j) {
      if (states[j] && tokens[j].kind == Kind::kStar) states[j + 1] = 1;
    }
  };
  cur[0] = 1;
  close(cur);
  std::int64_t best = -1;
  if (cur[k]) {
    best = 0;
    if (!longest) return best;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    *budget -= static_cast<std::int64_t>(k + 1);
    if (*budget < 0) {
      return resourceExhausted("pattern matching exceeded its work limit");
    }
    std::fill(next.begin(), next.end(), 0);
    for (std::size_t j = 0; j < k; ++j) {
      if (!cur[j]) continue;
      const Token& t = tokens[j];
      if (t.kind == Kind::kStar) {
        next[j] = 1;
      } else if (t.kind == Kind::kAny || t.c == s[i]) {
        next[j + 1] = 1;
      }
    }
    close(next);
    cur.swap(next);
    if (std::none_of(cur.begin(), cur.end(), [](std::uint8_t v) { return v != 0; })) break;
    if (cur[k]) {
      best = static_cast<std::int64_t>(i + 1);
      if (!longest) return best;
    }
  }
  return best;
}

Result<std::int64_t> GlobPattern::matchPrefix(std::string_view s, bool longest,
                                              std::int64_t* budget) const {
  return run(tokens_, s, longest, budget);
}

Result<std::int64_t> GlobPattern::matchSuffix(std::string_view s, bool longest,
                                              std::int64_t* budget) const {
  std::string reversed(s.rbegin(), s.rend());
  return run(reversed_, reversed, longest, budget);
}

Result<std::string> trimMatch(std::string_view value, const GlobPattern& pattern, bool from_end,
                              bool longest, std::int64_t* budget) {
  if (from_end) {
    LF_ASSIGN_OR_RETURN(std::int64_t n, pattern.matchSuffix(value, longest, budget));
    if (n < 0) return std::string(value);
    return std::string(value.substr(0, value.size() - static_cast<std::size_t>(n)));
  }
  LF_ASSIGN_OR_RETURN(std::int64_t n, pattern.matchPrefix(value, longest, budget));
  if (n < 0) return std::string(value);
  return std::string(value.substr(static_cast<std::size_t>(n)));
}

Result<std::string> replaceMatches(std::string_view value, const GlobPattern& pattern,
                                   std::string_view replacement, bool all, std::size_t max_bytes,
                                   std::int64_t* budget) {
  if (pattern.empty()) return std::string(value);
  std::string out;
  std::size_t pos = 0;
  bool replaced = false;
  while (pos < value.size()) {
    std::int64_t n = -1;
    if (all || !replaced) {
      LF_ASSIGN_OR_RETURN(n, pattern.matchPrefix(value.substr(pos), /*longest=*/true, budget));
    }
    if (n > 0) {
      out.append(replacement);
      pos += static_cast<std::size_t>(n);
      replaced = true;
    } else if (n < 0 && replaced && !all) {
      out.append(value.substr(pos));
      pos = value.size();
    } else {
      out.push_back(value[pos]);
      ++pos;
    }
    if (out.size() > max_bytes) {
      return resourceExhausted("expansion result exceeds " + std::to_string(max_bytes) + " bytes");
    }
  }
  return out;
}

}  // namespace lf::shell
