// Per-instruction argument parsing: the C++ counterpart of BuildKit's line parsers
// (parseMaybeJSON, parseMaybeJSONToList, parseStringsWhitespaceDelimited, parseNameVal,
// parseNameOrNameVal, parseString, parseSubCommand, parseHealthConfig), flag extraction and
// validation, and the argument-count checks Docker makes when it turns nodes into commands.

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/dockerfile/line_parsers.h"
#include "common/dockerfile/parser.h"

namespace lf::dockerfile {
namespace {

using K = FlagKind;
constexpr FlagSpec kFromFlags[] = {{"platform", K::kString}};
constexpr FlagSpec kRunFlags[] = {
    {"mount", K::kStrings}, {"network", K::kString}, {"security", K::kString}};
constexpr FlagSpec kCopyFlags[] = {{"chown", K::kString}, {"chmod", K::kString},
                                   {"from", K::kString},  {"link", K::kBool},
                                   {"parents", K::kBool}, {"exclude", K::kStrings}};
constexpr FlagSpec kAddFlags[] = {{"chown", K::kString},    {"chmod", K::kString},
                                  {"link", K::kBool},       {"keep-git-dir", K::kBool},
                                  {"checksum", K::kString}, {"exclude", K::kStrings},
                                  {"unpack", K::kBool}};
constexpr FlagSpec kHealthcheckFlags[] = {{"interval", K::kString},
                                          {"timeout", K::kString},
                                          {"start-period", K::kString},
                                          {"start-interval", K::kString},
                                          {"retries", K::kString}};

const std::array<InstructionSpec, 18> kSpecs = {{
    {"ADD", kAddFlags},
    {"ARG", {}},
    {"CMD", {}},
    {"COPY", kCopyFlags},
    {"ENTRYPOINT", {}},
    {"ENV", {}},
    {"EXPOSE", {}},
    {"FROM", kFromFlags},
    {"HEALTHCHECK", kHealthcheckFlags},
    {"LABEL", {}},
    {"MAINTAINER", {}},
    {"ONBUILD", {}},
    {"RUN", kRunFlags},
    {"SHELL", {}},
    {"STOPSIGNAL", {}},
    {"USER", {}},
    {"VOLUME", {}},
    {"WORKDIR", {}},
}};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::span<const InstructionSpec> instructionSpecs() { return kSpecs; }

const InstructionSpec* findInstructionSpec(std::string_view keyword) {
  for (const InstructionSpec& s : kSpecs) {
    if (iequals(s.keyword, keyword)) {
      return &s;
    }
  }
  return nullptr;
}

const FlagSpec* findFlagSpec(const InstructionSpec& spec, std::string_view name) {
  for (const FlagSpec& f : spec.flags) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

namespace detail {
namespace {

// Docker's reWhitespace: [\t\v\f\r ]+ (ASCII only, unlike unicode.IsSpace).
bool isSplitSpace(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

struct Word {
  std::string text;
  std::size_t offset;  // in the logical line
};

// Everything an argument parser needs: the instruction being filled, the argument text (a view
// into the logical line, already trimmed) and where the keyword is for error messages.
struct Args {
  const LineContext& ctx;
  Instruction* ins;
  std::string_view rest;
  std::size_t keyword_offset;

  std::size_t offsetOf(std::string_view v) const { return v.data() - ctx.line->text().data(); }
  Status fail(std::size_t offset, std::string_view msg) const {
    return errorAt(ctx.file_name, ctx.line->positionAt(offset), msg);
  }
  Status failAtKeyword(std::string_view msg) const { return fail(keyword_offset, msg); }
};

// parseStringsWhitespaceDelimited.
std::vector<Word> splitWhitespace(const Args& a) {
  std::vector<Word> words;
  std::string_view s = a.rest;
  std::size_t base = a.offsetOf(s);
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && isSplitSpace(s[i])) {
      ++i;
    }
    std::size_t start = i;
    while (i < s.size() && !isSplitSpace(s[i])) {
      ++i;
    }
    if (i > start) {
      words.push_back(Word{std::string(s.substr(start, i - start)), base + start});
    }
  }
  return words;
}

// BuildKit's parseWords: splits on white space outside quotes; quotes and escapes stay in the
// words (word expansion removes them later).
std::vector<Word> parseWords(const Args& a) {
  std::string_view s = a.rest;
  const char esc = a.ctx.escape;
  std::vector<Word> words;
  enum { kSpaces, kWord, kQuote } phase = kSpaces;
  std::string word;
  std::size_t start = 0;
  char quote = 0;
  bool blank_ok = false;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t sp = spaceLength(s, i);
    if (phase == kSpaces) {
      if (sp != 0) {
        i += sp;
        continue;
      }
      phase = kWord;
      start = i;
    }
    char ch = s[i];
    if (phase == kWord) {
      if (sp != 0) {
        if (blank_ok || !word.empty()) {
          words.push_back(Word{std::move(word), a.offsetOf(s) + start});
        }
        word.clear();
        phase = kSpaces;
        blank_ok = false;
        i += sp;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kQuote;
      } else if (ch == esc) {
        if (i + 1 == s.size()) {
          ++i;  // an escape at the very end is dropped
          continue;
        }
        word.push_back(ch);
        ch = s[++i];
      }
      word.push_back(ch);
      ++i;
      continue;
    }
    if (ch == quote) {
      phase = kWord;
    } else if (ch == esc && quote != '\'') {
      if (i + 1 == s.size()) {
        phase = kWord;
        ++i;
        continue;
      }
      word.push_back(ch);
      ch = s[++i];
    }
    word.push_back(ch);
    ++i;
  }
  if (phase != kSpaces && (blank_ok || !word.empty())) {
    words.push_back(Word{std::move(word), a.offsetOf(s) + start});
  }
  return words;
}

enum class JsonForm { kNotJson, kStrings, kNotStrings };

// parseJSON: a JSON array of strings. Anything that is not valid JSON is not exec form; a valid
// array holding something other than strings is an error (Docker's errDockerfileNotStringArray).
JsonForm parseJsonArray(std::string_view s, std::vector<std::string>* out) {
  s = trimLeftSpace(s);
  if (s.empty() || s[0] != '[') {
    return JsonForm::kNotJson;
  }
  try {
    nlohmann::json j = nlohmann::json::parse(s.begin(), s.end(), nullptr, false);
    if (j.is_discarded() || !j.is_array()) {
      return JsonForm::kNotJson;
    }
    for (auto& e : j) {
      if (!e.is_string()) {
        return JsonForm::kNotStrings;
      }
      out->push_back(std::move(e.get_ref<std::string&>()));
    }
  } catch (const nlohmann::json::exception&) {
    return JsonForm::kNotJson;  // allow_exceptions=false makes this unreachable; be safe
  }
  return JsonForm::kStrings;
}

constexpr std::string_view kNotStringArray =
    "when using JSON array syntax, arrays must be comprised of strings only";

// parseMaybeJSON: exec form, or the whole text as one shell-form string.
Status parseMaybeJson(const Args& a) {
  if (a.rest.empty()) {
    return Status::ok();
  }
  switch (parseJsonArray(a.rest, &a.ins->args)) {
    case JsonForm::kStrings:
      a.ins->json = true;
      return Status::ok();
    case JsonForm::kNotStrings:
      return a.fail(a.offsetOf(a.rest), kNotStringArray);
    case JsonForm::kNotJson:
      break;
  }
  a.ins->args.assign(1, std::string(a.rest));
  return Status::ok();
}

// parseMaybeJSONToList: exec form, or whitespace-separated words.
Status parseMaybeJsonToList(const Args& a) {
  switch (parseJsonArray(a.rest, &a.ins->args)) {
    case JsonForm::kStrings:
      a.ins->json = true;
      return Status::ok();
    case JsonForm::kNotStrings:
      return a.fail(a.offsetOf(a.rest), kNotStringArray);
    case JsonForm::kNotJson:
      break;
  }
  a.ins->args.clear();
  for (Word& w : splitWhitespace(a)) {
    a.ins->args.push_back(std::move(w.text));
  }
  return Status::ok();
}

Status parseRunLike(const Args& a) {
  LF_RETURN_IF_ERROR(parseMaybeJson(a));
  const std::string& kw = a.ins->keyword;
  if (kw == "RUN" && a.ins->args.empty()) {
    return a.failAtKeyword(
        "RUN needs a command: RUN <command> or RUN [\"executable\", \"arg\"...]");
  }
  if (kw == "SHELL") {
    if (a.ins->args.empty()) {
      return a.failAtKeyword("SHELL requires at least one argument: SHELL [\"executable\", ...]");
    }
    if (!a.ins->json) {
      return a.fail(a.offsetOf(a.rest),
                    "SHELL requires the arguments to be in JSON form: SHELL [\"executable\", "
                    "\"parameters\"] (for example SHELL [\"/bin/sh\", \"-c\"])");
    }
  }
  return Status::ok();
}

Status parseCopyLike(const Args& a) {
  LF_RETURN_IF_ERROR(parseMaybeJsonToList(a));
  const std::string& kw = a.ins->keyword;
  if (kw == "VOLUME") {
    if (a.ins->args.empty()) {
      return a.failAtKeyword("VOLUME requires at least one argument: VOLUME <path>...");
    }
    for (const std::string& v : a.ins->args) {
      if (v.empty()) {
        return a.fail(a.offsetOf(a.rest), "VOLUME specified can not be an empty string");
      }
    }
    return Status::ok();
  }
  if (a.ins->args.size() < 2) {
    return a.failAtKeyword(
        fmt::format("{0} needs a source and a destination: {0} [--flags] <src>... <dest>{1}", kw,
                    a.ins->args.empty() ? "" : " (only one argument was given)"));
  }
  return Status::ok();
}

bool isValidStageName(std::string_view name) {
  // BuildKit: ^[a-z][a-z0-9-_\.]*$ after lower-casing.
  if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

Status parseFrom(const Args& a) {
  std::vector<Word> words = splitWhitespace(a);
  if (words.empty()) {
    return a.failAtKeyword("FROM needs an image: FROM [--platform=<platform>] <image> [AS <name>]");
  }
  bool named = words.size() == 3 && iequals(words[1].text, "AS");
  if (words.size() != 1 && !named) {
    return a.fail(words[1].offset,
                  fmt::format("FROM requires either one or three arguments (FROM <image> [AS "
                              "<name>]), got {}",
                              words.size()));
  }
  if (named && !isValidStageName(words[2].text)) {
    return a.fail(words[2].offset,
                  fmt::format("invalid name for build stage: \"{}\", name can't start with a "
                              "number or contain symbols",
                              words[2].text));
  }
  for (Word& w : words) {
    a.ins->args.push_back(std::move(w.text));
  }
  return Status::ok();
}

Status parseExpose(const Args& a) {
  for (Word& w : splitWhitespace(a)) {
    a.ins->args.push_back(std::move(w.text));
  }
  if (a.ins->args.empty()) {
    return a.failAtKeyword("EXPOSE requires at least one argument: EXPOSE <port>[/<protocol>]...");
  }
  return Status::ok();
}

// parseString: MAINTAINER, USER, WORKDIR, STOPSIGNAL take the rest of the line as one string.
Status parseSingle(const Args& a) {
  if (a.rest.empty()) {
    return a.failAtKeyword(fmt::format("{} requires exactly one argument", a.ins->keyword));
  }
  a.ins->args.assign(1, std::string(a.rest));
  return Status::ok();
}

void addPair(Instruction* ins, std::string key, std::optional<std::string> value) {
  ins->args.push_back(key);
  if (value) {
    ins->args.push_back(*value);
  }
  ins->pairs.push_back(KeyValue{std::move(key), std::move(value)});
}

// parseNameVal: ENV and LABEL, `name value` (legacy, one pair) or `name=value ...`.
Status parseNameVal(const Args& a) {
  const std::string& kw = a.ins->keyword;
  std::vector<Word> words = parseWords(a);
  if (words.empty()) {
    return a.failAtKeyword(
        fmt::format("{0} requires at least one argument: {0} <name>=<value>...", kw));
  }
  if (words[0].text.find('=') == std::string::npos) {
    std::string_view s = a.rest;
    auto sep = std::find_if(s.begin(), s.end(), isSplitSpace);
    if (sep == s.end()) {
      return a.fail(words[0].offset,
                    fmt::format("{0} must have two arguments: no '=' in \"{1}\" (use {0} "
                                "{1}=<value>)",
                                kw, words[0].text));
    }
    std::string_view key = s.substr(0, sep - s.begin());
    std::string_view value = s.substr(sep - s.begin());
    while (!value.empty() && isSplitSpace(value.front())) {
      value.remove_prefix(1);
    }
    addPair(a.ins, std::string(key), std::string(value));
    return Status::ok();
  }
  for (Word& w : words) {
    std::size_t eq = w.text.find('=');
    if (eq == std::string::npos) {
      return a.fail(w.offset, fmt::format("can't find = in \"{}\": {} arguments must be of the "
                                          "form <name>=<value>",
                                          w.text, kw));
    }
    if (eq == 0) {
      return a.fail(w.offset, fmt::format("{} names can not be blank", kw));
    }
    addPair(a.ins, w.text.substr(0, eq), w.text.substr(eq + 1));
  }
  return Status::ok();
}

// parseNameOrNameVal: ARG name[=default] ...
Status parseArg(const Args& a) {
  std::vector<Word> words = parseWords(a);
  if (words.empty()) {
    return a.failAtKeyword("ARG requires at least one argument: ARG <name>[=<default>]...");
  }
  for (Word& w : words) {
    std::size_t eq = w.text.find('=');
    if (eq == 0) {
      return a.fail(w.offset, "ARG names can not be blank");
    }
    if (eq == std::string::npos) {
      addPair(a.ins, std::move(w.text), std::nullopt);
    } else {
      addPair(a.ins, w.text.substr(0, eq), w.text.substr(eq + 1));
    }
  }
  return Status::ok();
}

// parseHealthConfig plus Docker's HEALTHCHECK checks.
Status parseHealthcheck(const Args& a) {
  std::string_view s = a.rest;
  std::size_t sep = 0;
  while (sep < s.size() && !std::isspace(static_cast<unsigned char>(s[sep]))) {
    ++sep;
  }
  if (sep == 0) {
    return a.failAtKeyword(
        "HEALTHCHECK requires at least one argument: HEALTHCHECK [--flags] CMD "
        "<command>, or HEALTHCHECK NONE");
  }
  std::string type(s.substr(0, sep));
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  std::string_view cmd = trimLeftSpace(s.substr(sep));
  if (type == "NONE") {
    if (!cmd.empty()) {
      return a.fail(a.offsetOf(cmd), "HEALTHCHECK NONE takes no arguments");
    }
    if (!a.ins->flags.empty()) {
      return a.fail(a.offsetOf(a.rest), "HEALTHCHECK NONE takes no flags");
    }
    a.ins->args.assign(1, type);
    return Status::ok();
  }
  if (type != "CMD") {
    return a.fail(a.offsetOf(s), fmt::format("unknown type \"{}\" in HEALTHCHECK (try CMD or NONE)",
                                             s.substr(0, sep)));
  }
  a.ins->args.assign(1, type);
  Args sub{a.ctx, a.ins, cmd, a.keyword_offset};
  if (!cmd.empty()) {
    switch (parseJsonArray(cmd, &a.ins->args)) {
      case JsonForm::kStrings:
        a.ins->json = true;
        break;
      case JsonForm::kNotStrings:
        return sub.fail(sub.offsetOf(cmd), kNotStringArray);
      case JsonForm::kNotJson:
        a.ins->args.emplace_back(cmd);
        break;
    }
  }
  if (a.ins->args.size() < 2) {
    return a.fail(a.offsetOf(s), "missing command after HEALTHCHECK CMD");
  }
  return Status::ok();
}

// Splits `text` into its keyword and the rest, as BuildKit's splitCommand does.
std::string_view splitKeyword(std::string_view text, std::string_view* rest) {
  auto end = std::find_if(text.begin(), text.end(), isSplitSpace);
  std::string_view kw = text.substr(0, end - text.begin());
  *rest = text.substr(kw.size());
  return kw;
}

Status parseOnbuild(const Args& a) {
  if (a.rest.empty()) {
    return a.failAtKeyword("ONBUILD requires at least one argument: ONBUILD <instruction>");
  }
  std::string_view trigger_rest;
  std::string_view trigger_kw = splitKeyword(a.rest, &trigger_rest);
  if (iequals(trigger_kw, "ONBUILD")) {
    return a.fail(a.offsetOf(a.rest), "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  }
  if (iequals(trigger_kw, "FROM") || iequals(trigger_kw, "MAINTAINER")) {
    return a.fail(a.offsetOf(a.rest),
                  fmt::format("{} isn't allowed as an ONBUILD trigger", trigger_kw));
  }
  a.ins->args.assign(1, std::string(a.rest));
  auto trigger = std::make_unique<Instruction>();
  LF_RETURN_IF_ERROR(parseInstruction(a.rest, a.ctx, trigger.get()));
  trigger->original = std::string(a.rest);
  a.ins->trigger = std::move(trigger);
  return Status::ok();
}

using ArgParser = Status (*)(const Args&);

ArgParser argParserFor(std::string_view kw) {
  if (kw == "RUN" || kw == "CMD" || kw == "ENTRYPOINT" || kw == "SHELL") {
    return parseRunLike;
  }
  if (kw == "COPY" || kw == "ADD" || kw == "VOLUME") {
    return parseCopyLike;
  }
  if (kw == "ENV" || kw == "LABEL") {
    return parseNameVal;
  }
  if (kw == "FROM") {
    return parseFrom;
  }
  if (kw == "EXPOSE") {
    return parseExpose;
  }
  if (kw == "ARG") {
    return parseArg;
  }
  if (kw == "HEALTHCHECK") {
    return parseHealthcheck;
  }
  if (kw == "ONBUILD") {
    return parseOnbuild;
  }
  return parseSingle;  // MAINTAINER, USER, WORKDIR, STOPSIGNAL
}

}  // namespace

// Defined in flags.cpp.
Status parseFlags(const InstructionSpec& spec, std::string_view text, const LineContext& ctx,
                  std::vector<Flag>* flags, std::string_view* rest);

Status unknownInstruction(std::string_view kw, std::size_t offset, const LineContext& ctx) {
  std::string_view best;
  std::size_t best_distance = 3;
  if (kw.size() <= 32) {  // long garbage gets no suggestion (and no quadratic distance work)
    for (const InstructionSpec& s : kSpecs) {
      std::size_t d = editDistance(kw, s.keyword);
      if (d < best_distance && d < kw.size()) {
        best = s.keyword;
        best_distance = d;
      }
    }
  }
  std::string shown(kw.substr(0, 64));
  if (kw.size() > 64) {
    shown += "...";
  }
  std::string msg =
      best.empty() ? fmt::format(
                         "unknown instruction \"{}\" (expected one of ADD, ARG, CMD, COPY, "
                         "ENTRYPOINT, ENV, EXPOSE, FROM, HEALTHCHECK, LABEL, MAINTAINER, ONBUILD, "
                         "RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR)",
                         shown)
                   : fmt::format("unknown instruction \"{}\" (did you mean {}?)", shown, best);
  return errorAt(ctx.file_name, ctx.line->positionAt(offset), msg);
}

Status parseInstruction(std::string_view text, const LineContext& ctx, Instruction* out) {
  text = trimSpace(text);
  std::size_t kw_offset = text.data() - ctx.line->text().data();
  std::string_view after_kw;
  std::string_view kw = splitKeyword(text, &after_kw);
  const InstructionSpec* spec = findInstructionSpec(kw);
  if (spec == nullptr) {
    return unknownInstruction(kw, kw_offset, ctx);
  }
  out->keyword = std::string(spec->keyword);
  out->pos = ctx.line->positionAt(kw_offset);
  std::string_view rest;
  LF_RETURN_IF_ERROR(parseFlags(*spec, after_kw, ctx, &out->flags, &rest));
  Args a{ctx, out, trimSpace(rest), kw_offset};
  return argParserFor(out->keyword)(a);
}

}  // namespace detail
}  // namespace lf::dockerfile
