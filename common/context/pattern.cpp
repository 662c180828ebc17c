#include "common/context/pattern.h"

#include <bit>

namespace lf::context {

namespace {

constexpr uint32_t kInvalidBase = 0x110000;  // units >= this stand for one invalid byte
constexpr uint32_t kReplacement = 0xFFFD;

bool isContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

std::string offsetText(size_t offset) { return "offset " + std::to_string(offset); }

}  // namespace

uint32_t decodeUnit(std::string_view s, size_t i, size_t* len) {
  auto b0 = static_cast<unsigned char>(s[i]);
  *len = 1;
  if (b0 < 0x80) {
    return b0;
  }
  size_t need = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    need = 1, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    need = 2, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    need = 3, cp = b0 & 0x07, min = 0x10000;
  } else {
    return kInvalidBase + b0;
  }
  if (i + need >= s.size()) {
    return kInvalidBase + b0;
  }
  for (size_t k = 1; k <= need; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if (!isContinuation(b)) {
      return kInvalidBase + b0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid, as in Go's utf8 package.
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return kInvalidBase + b0;
  }
  *len = need + 1;
  return cp;
}

bool GlobPattern::CharClass::contains(uint32_t unit) const {
  // Go decodes an invalid byte to U+FFFD before testing a class; so do we.
  uint32_t c = unit >= kInvalidBase ? kReplacement : unit;
  bool in = false;
  for (const Range& r : ranges) {
    if (r.lo <= c && c <= r.hi) {
      in = true;
      break;
    }
  }
  return in != negated;
}

// Turns pattern text into NFA states; one instance per compile() call.
class GlobPattern::Parser {
 public:
  Parser(std::string_view text, GlobSyntax syntax, GlobPattern* out)
      : p_(text), syntax_(syntax), out_(out) {}

  Status parse() {
    while (i_ < p_.size()) {
      char c = p_[i_];
      if (c == '*') {
        parseStar();
      } else if (c == '?') {
        emit(Op::kAnyButSep);
        ++i_;
      } else if (c == '[') {
        LF_RETURN_IF_ERROR(parseClass());
      } else if (c == '\\') {
        if (i_ + 1 >= p_.size()) {
          return invalidArgument("trailing backslash at " + offsetText(i_) +
                                 " escapes nothing (write \\\\ for a literal backslash)");
        }
        ++i_;
        literalUnit();
      } else {
        literalUnit();
      }
    }
    return Status::ok();
  }

 private:
  void emit(Op op, uint32_t arg = 0) {
    out_->states_.push_back(State{op, arg});
    if (op != Op::kLiteral) {
      out_->literal_ = false;
    }
  }

  void literalUnit() {
    size_t len = 0;
    uint32_t unit = decodeUnit(p_, i_, &len);
    out_->literal_text_.append(p_.substr(i_, len));
    i_ += len;
    emit(Op::kLiteral, unit);
  }

  // True when p_[from..] holds no wildcard, class or escape: moby's "suffix match" condition.
  bool restIsPlainText(size_t from) const {
    return p_.find_first_of("*?[]\\", from) == std::string_view::npos;
  }

  void parseStar() {
    bool double_star =
        syntax_ == GlobSyntax::kDockerignore && i_ + 1 < p_.size() && p_[i_ + 1] == '*';
    if (!double_star) {
      ++i_;
      // Consecutive stars match the same set of strings as one; keep the NFA small.
      if (out_->states_.empty() || out_->states_.back().op != Op::kStar) {
        emit(Op::kStar);
      } else {
        out_->literal_ = false;
      }
      return;
    }
    bool at_start = i_ == 0;
    i_ += 2;
    bool slash = i_ < p_.size() && p_[i_] == '/';
    if (slash) {
      ++i_;  // "**/" behaves as "**" followed by the rest
    }
    if (i_ >= p_.size() || (at_start && !slash && restIsPlainText(i_))) {
      emit(Op::kAnyTail);
    } else {
      emit(Op::kSplit);
      emit(Op::kGroupLoop);
    }
  }

  // One class bound (Go's getEsc): a character or `\c`; '-' and ']' must be escaped.
  Result<uint32_t> classChar(size_t class_start) {
    if (i_ >= p_.size()) {
      return unterminated(class_start);
    }
    char c = p_[i_];
    if (c == '-' || c == ']') {
      return invalidArgument(std::string("unexpected '") + c + "' in character class at " +
                             offsetText(i_) + " (escape it as \\" + c + ")");
    }
    if (c == '\\') {
      ++i_;
      if (i_ >= p_.size()) {
        return unterminated(class_start);
      }
    }
    size_t len = 0;
    uint32_t unit = decodeUnit(p_, i_, &len);
    i_ += len;
    if (i_ >= p_.size()) {
      return unterminated(class_start);
    }
    return unit >= kInvalidBase ? kReplacement : unit;
  }

  Status unterminated(size_t class_start) const {
    return invalidArgument("unterminated character class '[' at " + offsetText(class_start));
  }

  Status parseClass() {
    size_t start = i_;
    ++i_;
    CharClass cls;
    if (i_ < p_.size() && (p_[i_] == '^' || (syntax_ == GlobSyntax::kFilepath && p_[i_] == '!'))) {
      cls.negated = true;
      ++i_;
    }
    while (true) {
      if (i_ < p_.size() && p_[i_] == ']' && !cls.ranges.empty()) {
        ++i_;
        break;
      }
      if (i_ < p_.size() && p_[i_] == ']') {
        return invalidArgument("empty character class at " + offsetText(start));
      }
      LF_ASSIGN_OR_RETURN(uint32_t lo, classChar(start));
      uint32_t hi = lo;
      if (p_[i_] == '-') {
        ++i_;
        LF_ASSIGN_OR_RETURN(hi, classChar(start));
      }
      cls.ranges.push_back(Range{lo, hi});
    }
    out_->classes_.push_back(std::move(cls));
    emit(Op::kClass, static_cast<uint32_t>(out_->classes_.size() - 1));
    return Status::ok();
  }

  std::string_view p_;
  GlobSyntax syntax_;
  GlobPattern* out_;
  size_t i_ = 0;
};

Result<GlobPattern> GlobPattern::compile(std::string_view pattern, GlobSyntax syntax) {
  GlobPattern g;
  g.text_ = std::string(pattern);
  g.literal_ = true;
  Parser parser(pattern, syntax, &g);
  Status st = parser.parse();
  if (!st.isOk()) {
    return invalidArgument("bad pattern \"" + std::string(pattern.substr(0, 200)) +
                           "\": " + st.message());
  }
  if (!g.literal_) {
    g.literal_text_.clear();
  }
  return g;
}

void GlobPattern::closure(std::vector<uint64_t>& set) const {
  // Every epsilon edge points forward, so one ascending pass reaches the fixed point.
  const size_t n = states_.size();
  for (size_t s = 0; s < n; ++s) {
    if ((set[s >> 6] >> (s & 63) & 1) == 0) {
      continue;
    }
    Op op = states_[s].op;
    if (op == Op::kStar || op == Op::kAnyTail || op == Op::kSplit) {
      set[(s + 1) >> 6] |= uint64_t{1} << ((s + 1) & 63);
    }
    if (op == Op::kSplit) {
      set[(s + 2) >> 6] |= uint64_t{1} << ((s + 2) & 63);
    }
  }
}

void GlobPattern::step(const std::vector<uint64_t>& cur, uint32_t unit,
                       std::vector<uint64_t>& next) const {
  auto set = [&next](size_t s) { next[s >> 6] |= uint64_t{1} << (s & 63); };
  const size_t n = states_.size();
  for (size_t w = 0; w < cur.size(); ++w) {
    for (uint64_t bits = cur[w]; bits != 0; bits &= bits - 1) {
      size_t s = w * 64 + static_cast<size_t>(std::countr_zero(bits));
      if (s >= n) {
        continue;  // the accepting state consumes nothing
      }
      const State& st = states_[s];
      switch (st.op) {
        case Op::kLiteral:
          if (unit == st.arg) set(s + 1);
          break;
        case Op::kAnyButSep:
          if (unit != '/') set(s + 1);
          break;
        case Op::kClass:
          if (classes_[st.arg].contains(unit)) set(s + 1);
          break;
        case Op::kStar:
          if (unit != '/') set(s);
          break;
        case Op::kAnyTail:
          set(s);
          break;
        case Op::kSplit:
          break;
        case Op::kGroupLoop:
          set(s);
          if (unit == '/') set(s + 1);
          break;
      }
    }
  }
}

void GlobPattern::run(std::string_view input, bool* accepted, bool* alive) const {
  const size_t n = states_.size();
  const size_t words = (n + 1 + 63) / 64 + 1;  // +1: closure may touch s + 2 without a check
  std::vector<uint64_t> cur(words, 0);
  std::vector<uint64_t> next(words, 0);
  cur[0] = 1;
  closure(cur);
  for (size_t i = 0; i < input.size();) {
    size_t len = 0;
    uint32_t unit = decodeUnit(input, i, &len);
    i += len;
    std::fill(next.begin(), next.end(), 0);
    step(cur, unit, next);
    closure(next);
    cur.swap(next);
    bool any = false;
    for (uint64_t w : cur) {
      any = any || w != 0;
    }
    if (!any) {
      *accepted = false;
      *alive = false;
      return;
    }
  }
  *accepted = (cur[n >> 6] >> (n & 63) & 1) != 0;
  *alive = true;
}

bool GlobPattern::matches(std::string_view path) const {
  if (literal_) {
    return path == literal_text_;
  }
  bool accepted = false;
  bool alive = false;
  run(path, &accepted, &alive);
  return accepted;
}

bool GlobPattern::mayMatchWithPrefix(std::string_view prefix) const {
  if (literal_) {
    return std::string_view(literal_text_).starts_with(prefix);
  }
  bool accepted = false;
  bool alive = false;
  run(prefix, &accepted, &alive);
  return alive;
}

Result<bool> matchPath(std::string_view pattern, std::string_view path) {
  LF_ASSIGN_OR_RETURN(GlobPattern g, GlobPattern::compile(pattern, GlobSyntax::kFilepath));
  return g.matches(path);
}

std::string cleanPath(std::string_view path) {
  if (path.empty()) {
    return ".";
  }
  const bool rooted = path[0] == '/';
  const size_t n = path.size();
  std::string out;
  out.reserve(n);
  size_t r = 0;
  size_t dotdot = 0;  // out[:dotdot] cannot be backtracked over (leading "/" or "../..")
  if (rooted) {
    out.push_back('/');
    r = 1;
    dotdot = 1;
  }
  while (r < n) {
    if (path[r] == '/') {
      ++r;
    } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
      ++r;
    } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
      r += 2;
      if (out.size() > dotdot) {
        size_t w = out.size() - 1;
        while (w > dotdot && out[w] != '/') {
          --w;
        }
        out.resize(w);
      } else if (!rooted) {
        if (!out.empty()) {
          out.push_back('/');
        }
        out.append("..");
        dotdot = out.size();
      }
    } else {
      if ((rooted && out.size() != 1) || (!rooted && !out.empty())) {
        out.push_back('/');
      }
      while (r < n && path[r] != '/') {
        out.push_back(path[r++]);
      }
    }
  }
  if (out.empty()) {
    return ".";
  }
  return out;
}

}  // namespace lf::context
