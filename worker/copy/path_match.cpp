// Go's path/filepath.Match, ported so that COPY wildcards select exactly the files Docker selects.
// Kept structurally close to the Go source (scanChunk / matchChunk / getEsc) so the two can be
// compared line by line; '/' never occurs in a name here (patterns are matched per component).

#include <cstdint>
#include <string_view>

#include "worker/copy/copy_executor.h"

namespace lf::worker {
namespace {

constexpr int32_t kRuneError = 0xFFFD;

// Decodes one UTF-8 rune from the front of `s`; returns {rune, length}. Invalid input yields
// {kRuneError, 1}, as Go's utf8.DecodeRuneInString does.
std::pair<int32_t, size_t> decodeRune(std::string_view s) {
  auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    return {b0, 1};
  }
  size_t len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 0;
  if (len == 0 || len > 4 || s.size() < len) {
    return {kRuneError, 1};
  }
  int32_t r = b0 & (0xFF >> (len + 1));
  for (size_t i = 1; i < len; ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) {
      return {kRuneError, 1};
    }
    r = (r << 6) | (b & 0x3F);
  }
  return {r, len};
}

struct Chunk {
  bool star = false;
  std::string_view chunk;
  std::string_view rest;
};

Chunk scanChunk(std::string_view pattern) {
  Chunk out;
  while (!pattern.empty() && pattern[0] == '*') {
    pattern.remove_prefix(1);
    out.star = true;
  }
  bool in_range = false;
  size_t i = 0;
  for (; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      if (i + 1 < pattern.size()) {
        ++i;
      }
    } else if (c == '[') {
      in_range = true;
    } else if (c == ']') {
      in_range = false;
    } else if (c == '*' && !in_range) {
      break;
    }
  }
  out.chunk = pattern.substr(0, i);
  out.rest = pattern.substr(i);
  return out;
}

// One character of a [class], unescaping "\x". False for a malformed class.
bool getEsc(std::string_view& chunk, int32_t& r) {
  if (chunk.empty() || chunk[0] == '-' || chunk[0] == ']') {
    return false;
  }
  if (chunk[0] == '\\') {
    chunk.remove_prefix(1);
    if (chunk.empty()) {
      return false;
    }
  }
  auto [rune, n] = decodeRune(chunk);
  if (rune == kRuneError && n == 1) {
    return false;
  }
  r = rune;
  chunk.remove_prefix(n);
  return !chunk.empty();
}

struct ChunkMatch {
  bool bad_pattern = false;
  bool ok = false;
  std::string_view rest;
};

constexpr ChunkMatch kBadPattern{true, false, {}};

// Matches rune `r` against the class after "[" at the front of `chunk` ("^a-z]..."), consuming
// it; `matched` tells whether r is in the class (negation applied). False for a malformed class.
bool matchClass(std::string_view& chunk, int32_t r, bool& matched) {
  bool negated = false;
  if (!chunk.empty() && chunk[0] == '^') {
    negated = true;
    chunk.remove_prefix(1);
  }
  bool match = false;
  for (int ranges = 0;; ++ranges) {
    if (!chunk.empty() && chunk[0] == ']' && ranges > 0) {
      chunk.remove_prefix(1);
      break;
    }
    int32_t lo = 0;
    if (!getEsc(chunk, lo)) {
      return false;
    }
    int32_t hi = lo;
    if (chunk[0] == '-') {
      chunk.remove_prefix(1);
      if (!getEsc(chunk, hi)) {
        return false;
      }
    }
    if (lo <= r && r <= hi) {
      match = true;
    }
  }
  matched = match != negated;
  return true;
}

ChunkMatch matchChunk(std::string_view chunk, std::string_view s) {
  bool failed = false;
  while (!chunk.empty()) {
    if (!failed && s.empty()) {
      failed = true;
    }
    if (chunk[0] == '[') {
      int32_t r = 0;
      if (!failed) {
        auto [rune, n] = decodeRune(s);
        r = rune;
        s.remove_prefix(n);
      }
      chunk.remove_prefix(1);
      bool in_class = false;
      if (!matchClass(chunk, r, in_class)) {
        return kBadPattern;
      }
      if (!in_class) {
        failed = true;
      }
      continue;
    }
    if (chunk[0] == '?') {
      if (!failed) {
        if (s[0] == '/') {
          failed = true;
        }
        s.remove_prefix(decodeRune(s).second);
      }
      chunk.remove_prefix(1);
      continue;
    }
    if (chunk[0] == '\\') {
      chunk.remove_prefix(1);
      if (chunk.empty()) {
        return kBadPattern;
      }
    }
    if (!failed) {
      if (chunk[0] != s[0]) {
        failed = true;
      }
      s.remove_prefix(1);
    }
    chunk.remove_prefix(1);
  }
  if (failed) {
    return {};
  }
  return {false, true, s};
}

Status badPattern(std::string_view pattern) {
  return invalidArgument("syntax error in pattern '" + std::string(pattern) + "'");
}

}  // namespace

Result<bool> matchPattern(std::string_view pattern, std::string_view name) {
  const std::string_view whole = pattern;
  while (!pattern.empty()) {
    Chunk c = scanChunk(pattern);
    pattern = c.rest;
    if (c.star && c.chunk.empty()) {
      return name.find('/') == std::string_view::npos;  // a trailing * takes the rest
    }
    ChunkMatch m = matchChunk(c.chunk, name);
    if (m.ok && (m.rest.empty() || !pattern.empty())) {
      name = m.rest;
      continue;
    }
    if (m.bad_pattern) {
      return badPattern(whole);
    }
    bool matched = false;
    if (c.star) {
      for (size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        ChunkMatch skip = matchChunk(c.chunk, name.substr(i + 1));
        if (skip.ok) {
          if (pattern.empty() && !skip.rest.empty()) {
            continue;
          }
          name = skip.rest;
          matched = true;
          break;
        }
        if (skip.bad_pattern) {
          return badPattern(whole);
        }
      }
    }
    if (matched) {
      continue;
    }
    // Like Go: before answering "no", make sure the rest of the pattern is well formed.
    while (!pattern.empty()) {
      Chunk rest = scanChunk(pattern);
      pattern = rest.rest;
      if (matchChunk(rest.chunk, "").bad_pattern) {
        return badPattern(whole);
      }
    }
    return false;
  }
  return name.empty();
}

}  // namespace lf::worker
