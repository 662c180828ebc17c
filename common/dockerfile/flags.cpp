// Instruction flags (`--name=value` words at the start of the arguments): extraction as
// BuildKit's extractBuilderFlags does it, then validation against the instruction's FlagSpecs as
// BuildKit's BFlags.Parse does it.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/dockerfile/line_parsers.h"
#include "common/dockerfile/parser.h"

namespace lf::dockerfile::detail {
namespace {

bool isAsciiSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

struct RawFlag {
  std::string word;  // quotes and backslash escapes removed, as BuildKit does
  std::size_t begin;
  std::size_t end;
};

// Reads one flag word starting at s[i] ("--..."); returns the offset just past it.
std::size_t readFlagWord(std::string_view s, std::size_t i, std::string* word, bool* blank_ok) {
  char quote = 0;
  while (i < s.size()) {
    char ch = s[i];
    if (quote == 0) {
      if (isAsciiSpace(ch)) {
        break;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        *blank_ok = true;
        ++i;
        continue;
      }
    } else if (ch == quote) {
      quote = 0;
      ++i;
      continue;
    }
    if (ch == '\\') {
      if (i + 1 == s.size()) {
        ++i;  // a backslash at the very end is dropped
        break;
      }
      ch = s[++i];
    }
    word->push_back(ch);
    ++i;
  }
  return i;
}

// Splits the leading --flags off `s`. Returns the offset in `s` where the arguments start.
std::size_t extractFlags(std::string_view s, std::vector<RawFlag>* out) {
  std::size_t i = 0;
  while (true) {
    while (i < s.size() && isAsciiSpace(s[i])) {
      ++i;
    }
    if (i + 1 >= s.size() || s[i] != '-' || s[i + 1] != '-') {
      return std::min(i, s.size());
    }
    RawFlag f;
    f.begin = i;
    bool blank_ok = false;
    i = readFlagWord(s, i, &f.word, &blank_ok);
    f.end = i;
    if (f.word == "--") {
      return i;  // "--" ends the flags and is dropped
    }
    out->push_back(std::move(f));
  }
}

std::string allowedList(const InstructionSpec& spec) {
  std::string out;
  for (const FlagSpec& f : spec.flags) {
    out += out.empty() ? "--" : ", --";
    out += f.name;
  }
  return out;
}

Status unknownFlag(const InstructionSpec& spec, std::string_view name, Position pos,
                   const LineContext& ctx) {
  std::string shown(name.substr(0, 64));
  if (spec.flags.empty()) {
    return errorAt(ctx.file_name, pos,
                   fmt::format("unknown flag --{} for {} ({} takes no flags)", shown, spec.keyword,
                               spec.keyword));
  }
  std::string_view best;
  std::size_t best_distance = 3;
  if (name.size() <= 32) {
    for (const FlagSpec& f : spec.flags) {
      std::size_t d = editDistance(name, f.name);
      if (d < best_distance && d < name.size()) {
        best = f.name;
        best_distance = d;
      }
    }
  }
  std::string msg =
      fmt::format("unknown flag --{} for {} (allowed: {})", shown, spec.keyword, allowedList(spec));
  if (!best.empty()) {
    msg += fmt::format("; did you mean --{}?", best);
  }
  return errorAt(ctx.file_name, pos, msg);
}

Status checkFlagValue(const InstructionSpec& spec, const FlagSpec& fs, const Flag& flag,
                      const LineContext& ctx) {
  if (fs.kind != FlagKind::kBool) {
    if (!flag.value) {
      return errorAt(
          ctx.file_name, flag.pos,
          fmt::format("flag --{0} for {1} needs a value: --{0}=<value>", fs.name, spec.keyword));
    }
    return Status::ok();
  }
  if (!flag.value) {
    return Status::ok();
  }
  std::string v = *flag.value;
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v.empty()) {
    return errorAt(ctx.file_name, flag.pos,
                   fmt::format("flag --{} for {} is missing a value after '=' (use --{} or "
                               "--{}=true|false)",
                               fs.name, spec.keyword, fs.name, fs.name));
  }
  if (v != "true" && v != "false") {
    return errorAt(ctx.file_name, flag.pos,
                   fmt::format("flag --{} for {} expects a boolean value (true or false), not "
                               "\"{}\"",
                               fs.name, spec.keyword, flag.value->substr(0, 64)));
  }
  return Status::ok();
}

}  // namespace

Status parseFlags(const InstructionSpec& spec, std::string_view text, const LineContext& ctx,
                  std::vector<Flag>* flags, std::string_view* rest) {
  std::vector<RawFlag> raw;
  std::size_t args_at = extractFlags(text, &raw);
  *rest = text.substr(args_at);
  std::size_t base = text.data() - ctx.line->text().data();
  for (RawFlag& r : raw) {
    Flag flag;
    flag.raw = std::string(text.substr(r.begin, r.end - r.begin));
    flag.pos = ctx.line->positionAt(base + r.begin);
    std::string_view body = std::string_view(r.word).substr(2);
    std::size_t eq = body.find('=');
    flag.name = std::string(body.substr(0, eq));
    if (eq != std::string_view::npos) {
      flag.value = std::string(body.substr(eq + 1));
    }
    const FlagSpec* fs = findFlagSpec(spec, flag.name);
    if (fs == nullptr) {
      return unknownFlag(spec, flag.name, flag.pos, ctx);
    }
    if (fs->kind != FlagKind::kStrings) {
      bool dup = std::any_of(flags->begin(), flags->end(),
                             [&](const Flag& f) { return f.name == flag.name; });
      if (dup) {
        return errorAt(ctx.file_name, flag.pos,
                       fmt::format("duplicate flag --{} for {} (it may be given only once)",
                                   flag.name, spec.keyword));
      }
    }
    LF_RETURN_IF_ERROR(checkFlagValue(spec, *fs, flag, ctx));
    flags->push_back(std::move(flag));
  }
  return Status::ok();
}

}  // namespace lf::dockerfile::detail
