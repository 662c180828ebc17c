#include "common/dockerfile/commands.h"

#include <fmt/format.h>

#include <initializer_list>

#include "common/dockerfile/command_values.h"

namespace lf::dockerfile {
namespace {

enum class FlagType { kBool, kString, kStrings };

struct AllowedFlag {
  std::string_view name;
  FlagType type;
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::size_t from = 0) {
  std::string out;
  for (std::size_t i = from; i < parts.size(); ++i) {
    if (i > from) out += ' ';
    out += parts[i];
  }
  return out;
}

bool isHex(std::string_view s) {
  for (char c : s) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return !s.empty();
}

bool validStageName(std::string_view name) {
  if (name.empty() || name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool isRemoteSource(std::string_view src) {
  for (std::string_view prefix : {"http://", "https://", "git@", "git://", "ssh://"}) {
    if (src.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// The delimiter a COPY/ADD argument names when it is a here-document ("<<EOF", "<<-'EOF'").
std::optional<std::string> heredocName(std::string_view arg) {
  if (arg.substr(0, 2) != "<<") return std::nullopt;
  arg.remove_prefix(2);
  if (!arg.empty() && arg[0] == '-') arg.remove_prefix(1);
  if (arg.size() >= 2 && (arg[0] == '"' || arg[0] == '\'') && arg.back() == arg[0]) {
    arg = arg.substr(1, arg.size() - 2);
  }
  if (arg.empty()) return std::nullopt;
  return std::string(arg);
}

// Decodes one instruction. Owns the expanders, so every variable the instruction reads is
// recorded in one place.
class Decoder {
 public:
  Decoder(const Instruction& inst, const shell::Lookup& lookup, const DecodeOptions& options)
      : inst_(inst),
        options_(options),
        keyword_(upper(inst.keyword)),
        expander_(lookup, shell::ExpandOptions{.escape = options.escape}),
        heredoc_expander_(lookup,
                          shell::ExpandOptions{.escape = options.escape, .keep_quotes = true}) {}

  Result<Command> decode();

  void collectReferences(std::set<std::string, std::less<>>* out) const {
    out->insert(expander_.referenced().begin(), expander_.referenced().end());
    out->insert(heredoc_expander_.referenced().begin(), heredoc_expander_.referenced().end());
  }

 private:
  Status error(Position pos, std::string_view msg) const {
    if (pos.line == 0) pos = inst_.pos;
    return invalidArgument(
        fmt::format("{}:{}:{}: {}", options_.file_name, pos.line, pos.column, msg));
  }
  Status error(std::string_view msg) const { return error(inst_.pos, msg); }

  Status checkFlags(std::initializer_list<AllowedFlag> allowed) const;
  const Flag* flag(std::string_view name) const;
  Result<std::string> expand(std::string_view word, Position pos, std::string_view what);
  Result<std::optional<std::string>> expandedFlag(std::string_view name);
  Result<bool> boolFlag(std::string_view name) const;
  Result<std::string> singleArg(bool expand_it);

  Result<Command> decodeFrom();
  Result<Command> decodeRun();
  Result<Command> decodeCopy(bool is_add);
  Status decodeCopyFlags(CopyCommand& cmd);
  Result<std::vector<std::pair<std::string, std::string>>> decodePairs();
  Result<Command> decodeArg();
  Result<Command> decodeExpose();
  Result<Command> decodeVolume();
  Result<Command> decodeHealthcheck();
  Status decodeHealthcheckFlags(HealthcheckCommand& cmd) const;
  Result<Command> decodeOnbuild();

  const Instruction& inst_;
  const DecodeOptions& options_;
  std::string keyword_;
  shell::WordExpander expander_;
  shell::WordExpander heredoc_expander_;
};

Status Decoder::checkFlags(std::initializer_list<AllowedFlag> allowed) const {
  for (std::size_t i = 0; i < inst_.flags.size(); ++i) {
    const Flag& f = inst_.flags[i];
    const AllowedFlag* spec = nullptr;
    for (const AllowedFlag& a : allowed) {
      if (a.name == f.name) spec = &a;
    }
    if (spec == nullptr)
      return error(f.pos, fmt::format("{}: unknown flag --{}", keyword_, f.name));
    if (spec->type == FlagType::kBool) {
      if (f.value && !parseBool(*f.value)) {
        return error(f.pos, fmt::format("{} --{}={}: expecting a boolean (true or false)", keyword_,
                                        f.name, *f.value));
      }
    } else if (!f.value) {
      return error(f.pos, fmt::format("{} --{}: missing a value", keyword_, f.name));
    }
    if (spec->type != FlagType::kStrings) {
      for (std::size_t j = 0; j < i; ++j) {
        if (inst_.flags[j].name == f.name) {
          return error(f.pos, fmt::format("{}: --{} given more than once", keyword_, f.name));
        }
      }
    }
  }
  return Status::ok();
}

const Flag* Decoder::flag(std::string_view name) const {
  for (const Flag& f : inst_.flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

Result<std::string> Decoder::expand(std::string_view word, Position pos, std::string_view what) {
  auto r = expander_.expandWord(word);
  if (!r.isOk()) {
    Status s =
        error(pos, fmt::format("{}: cannot expand '{}': {}", what, word, r.status().message()));
    return Status(r.status().code() == StatusCode::kInvalidArgument ? s.code() : r.status().code(),
                  s.message());
  }
  return std::move(r).value();
}

Result<std::optional<std::string>> Decoder::expandedFlag(std::string_view name) {
  const Flag* f = flag(name);
  if (f == nullptr || !f->value) return std::optional<std::string>();
  LF_ASSIGN_OR_RETURN(std::string v,
                      expand(*f->value, f->pos, fmt::format("{} --{}", keyword_, name)));
  return std::optional<std::string>(std::move(v));
}

Result<bool> Decoder::boolFlag(std::string_view name) const {
  const Flag* f = flag(name);
  if (f == nullptr) return false;
  if (!f->value) return true;
  return *parseBool(*f->value);  // checkFlags() validated it
}

Result<std::string> Decoder::singleArg(bool expand_it) {
  if (inst_.args.size() != 1) {
    return error(fmt::format("{} requires exactly one argument", keyword_));
  }
  if (!expand_it) return inst_.args[0];
  return expand(inst_.args[0], inst_.pos, keyword_);
}

Result<Command> Decoder::decodeFrom() {
  LF_RETURN_IF_ERROR(checkFlags({{"platform", FlagType::kString}}));
  const auto& args = inst_.args;
  if (args.size() != 1 && args.size() != 3) {
    return error("FROM requires either one or three arguments: image [AS name]");
  }
  FromCommand cmd;
  cmd.pos = inst_.pos;
  if (args.size() == 3) {
    if (upper(args[1]) != "AS") {
      return error(fmt::format("FROM: expected 'AS' after the image, got '{}'", args[1]));
    }
    cmd.stage_name = lower(args[2]);
    if (!validStageName(cmd.stage_name)) {
      return error(fmt::format(
          "FROM: invalid stage name '{}': it must start with a letter and contain only letters, "
          "digits, '-', '_' and '.'",
          args[2]));
    }
  }
  LF_ASSIGN_OR_RETURN(cmd.image, expand(args[0], inst_.pos, "FROM"));
  if (cmd.image.empty()) {
    return error(fmt::format("FROM: base image name '{}' is empty after expansion", args[0]));
  }
  LF_ASSIGN_OR_RETURN(cmd.platform, expandedFlag("platform"));
  return Command(std::move(cmd));
}

Result<Command> Decoder::decodeRun() {
  LF_RETURN_IF_ERROR(checkFlags({{"mount", FlagType::kStrings},
                                 {"network", FlagType::kString},
                                 {"security", FlagType::kString}}));
  RunCommand cmd;
  cmd.pos = inst_.pos;
  cmd.shell_form = !inst_.json;
  if (inst_.json) {
    cmd.args = inst_.args;
  } else if (!inst_.args.empty()) {
    cmd.args = {join(inst_.args)};
  }
  if ((cmd.args.empty() || (cmd.shell_form && cmd.args[0].empty())) && inst_.heredocs.empty()) {
    return error("RUN requires a command");
  }
  cmd.heredocs = inst_.heredocs;
  int ssh_index = 0;
  for (const Flag& f : inst_.flags) {
    if (f.name == "mount") {
      ValueExpander expand_value = [this, &f](std::string_view v) {
        return expand(v, f.pos, "RUN --mount");
      };
      auto m = parseMountSpec(*f.value, expand_value, ssh_index);
      if (!m.isOk()) {
        // Expansion errors already carry the position.
        if (m.status().message().find(options_.file_name + ":") == 0) return m.status();
        return error(f.pos, "RUN --mount: " + m.status().message());
      }
      if (m->type == MountType::kSsh) ++ssh_index;
      cmd.mounts.push_back(std::move(m).value());
    } else if (f.name == "network") {
      std::string v = lower(*f.value);
      if (v == "default") {
        cmd.network = NetworkMode::kDefault;
      } else if (v == "none") {
        cmd.network = NetworkMode::kNone;
      } else if (v == "host") {
        cmd.network = NetworkMode::kHost;
      } else {
        return error(
            f.pos, fmt::format("RUN --network must be default, none or host, not '{}'", *f.value));
      }
    } else if (f.name == "security") {
      std::string v = lower(*f.value);
      if (v == "sandbox" || v == "insecure") {
        cmd.security = v == "sandbox" ? SecurityMode::kSandbox : SecurityMode::kInsecure;
      } else {
        return error(f.pos,
                     fmt::format("RUN --security must be sandbox or insecure, not '{}'", *f.value));
      }
    }
  }
  return Command(std::move(cmd));
}

Status Decoder::decodeCopyFlags(CopyCommand& cmd) {
  LF_ASSIGN_OR_RETURN(cmd.from, expandedFlag("from"));
  if (cmd.from && cmd.from->empty()) return error(flag("from")->pos, "COPY --from is empty");
  LF_ASSIGN_OR_RETURN(cmd.chown, expandedFlag("chown"));
  if (cmd.chown) {
    const std::string& c = *cmd.chown;
    auto colon = c.find(':');
    bool ok = !c.empty() && colon != 0 &&
              (colon == std::string::npos ||
               (colon + 1 < c.size() && c.find(':', colon + 1) == std::string::npos));
    if (!ok) {
      return error(flag("chown")->pos,
                   fmt::format("{} --chown={}: invalid owner, want user[:group]", keyword_, c));
    }
  }
  LF_ASSIGN_OR_RETURN(cmd.chmod, expandedFlag("chmod"));
  if (cmd.chmod) {
    auto mode = parseChmod(*cmd.chmod);
    if (!mode.isOk()) {
      return error(flag("chmod")->pos,
                   fmt::format("{} --chmod={}: invalid mode", keyword_, *cmd.chmod));
    }
    cmd.chmod_octal = *mode;
  }
  LF_ASSIGN_OR_RETURN(cmd.link, boolFlag("link"));
  LF_ASSIGN_OR_RETURN(cmd.parents, boolFlag("parents"));
  LF_ASSIGN_OR_RETURN(cmd.keep_git_dir, boolFlag("keep-git-dir"));
  if (const Flag* u = flag("unpack")) cmd.unpack = !u->value || *parseBool(*u->value);
  for (const Flag& f : inst_.flags) {
    if (f.name != "exclude") continue;
    LF_ASSIGN_OR_RETURN(std::string pattern, expand(*f.value, f.pos, keyword_ + " --exclude"));
    cmd.excludes.push_back(std::move(pattern));
  }
  LF_ASSIGN_OR_RETURN(cmd.checksum, expandedFlag("checksum"));
  if (cmd.checksum) {
    const std::string& c = *cmd.checksum;
    bool digest = c.rfind("sha256:", 0) == 0 && c.size() == 7 + 64 && isHex(c.substr(7));
    bool commit = c.size() <= 64 && isHex(c);
    Position pos = flag("checksum")->pos;
    if (!digest && !commit) {
      return error(pos, fmt::format("ADD --checksum={}: want sha256:<64 hex digits> or a Git "
                                    "commit (hex)",
                                    c));
    }
    if (cmd.sources.size() != 1 || !cmd.inline_sources.empty() || !isRemoteSource(cmd.sources[0])) {
      return error(pos, "ADD --checksum needs exactly one HTTP(S) or Git source");
    }
  }
  return Status::ok();
}

Result<Command> Decoder::decodeCopy(bool is_add) {
  if (is_add) {
    LF_RETURN_IF_ERROR(checkFlags({{"chown", FlagType::kString},
                                   {"chmod", FlagType::kString},
                                   {"link", FlagType::kBool},
                                   {"exclude", FlagType::kStrings},
                                   {"checksum", FlagType::kString},
                                   {"keep-git-dir", FlagType::kBool},
                                   {"unpack", FlagType::kBool}}));
  } else {
    LF_RETURN_IF_ERROR(checkFlags({{"from", FlagType::kString},
                                   {"chown", FlagType::kString},
                                   {"chmod", FlagType::kString},
                                   {"link", FlagType::kBool},
                                   {"parents", FlagType::kBool},
                                   {"exclude", FlagType::kStrings}}));
  }
  if (inst_.args.size() < 2) {
    return error(
        fmt::format("{} requires at least two arguments, but only {} provided: the "
                    "destination could not be determined",
                    keyword_, inst_.args.size() == 1 ? "one was" : "none were"));
  }
  CopyCommand cmd;
  cmd.is_add = is_add;
  cmd.pos = inst_.pos;
  std::vector<bool> used(inst_.heredocs.size(), false);
  for (std::size_t i = 0; i + 1 < inst_.args.size(); ++i) {
    const std::string& arg = inst_.args[i];
    std::optional<std::string> name = inst_.json ? std::nullopt : heredocName(arg);
    std::size_t h = 0;
    while (name && h < inst_.heredocs.size() && (used[h] || inst_.heredocs[h].name != *name)) ++h;
    if (name && h < inst_.heredocs.size()) {
      used[h] = true;
      const Heredoc& doc = inst_.heredocs[h];
      InlineSource src{doc.name, doc.content};
      if (doc.expand) {
        auto r = heredoc_expander_.expandWord(doc.content);
        if (!r.isOk()) {
          return error(fmt::format("{}: cannot expand here-document {}: {}", keyword_, doc.name,
                                   r.status().message()));
        }
        src.content = std::move(r).value();
      }
      cmd.inline_sources.push_back(std::move(src));
      continue;
    }
    LF_ASSIGN_OR_RETURN(std::string source, expand(arg, inst_.pos, keyword_));
    cmd.sources.push_back(std::move(source));
  }
  LF_ASSIGN_OR_RETURN(cmd.dest, expand(inst_.args.back(), inst_.pos, keyword_));
  if (cmd.dest.empty()) {
    return error(
        fmt::format("{}: destination '{}' is empty after expansion", keyword_, inst_.args.back()));
  }
  LF_RETURN_IF_ERROR(decodeCopyFlags(cmd));
  return Command(std::move(cmd));
}

Result<std::vector<std::pair<std::string, std::string>>> Decoder::decodePairs() {
  LF_RETURN_IF_ERROR(checkFlags({}));
  std::vector<KeyValue> pairs = inst_.pairs;
  if (pairs.empty()) {
    for (std::size_t i = 0; i < inst_.args.size(); i += 2) {
      KeyValue kv{inst_.args[i], std::nullopt};
      if (i + 1 < inst_.args.size()) kv.value = inst_.args[i + 1];
      pairs.push_back(std::move(kv));
    }
  }
  if (pairs.empty()) return error(fmt::format("{} requires at least one argument", keyword_));
  std::vector<std::pair<std::string, std::string>> out;
  for (const KeyValue& kv : pairs) {
    if (!kv.value) {
      return error(fmt::format("{} {}: missing a value (want {}=value)", keyword_, kv.key, kv.key));
    }
    // Every pair is expanded against the scope from before the instruction (Docker: "ENV a=1
    // b=$a" uses the previous a).
    LF_ASSIGN_OR_RETURN(std::string key, expand(kv.key, inst_.pos, keyword_));
    if (key.empty()) return error(fmt::format("{} names can not be blank", keyword_));
    LF_ASSIGN_OR_RETURN(std::string value, expand(*kv.value, inst_.pos, keyword_));
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

Result<Command> Decoder::decodeArg() {
  LF_RETURN_IF_ERROR(checkFlags({}));
  std::vector<KeyValue> pairs = inst_.pairs;
  if (pairs.empty()) {
    for (const std::string& a : inst_.args) {
      auto eq = a.find('=');
      KeyValue kv{a.substr(0, eq), std::nullopt};
      if (eq != std::string::npos) kv.value = a.substr(eq + 1);
      pairs.push_back(std::move(kv));
    }
  }
  if (pairs.empty()) return error("ARG requires at least one argument");
  ArgCommand cmd;
  cmd.pos = inst_.pos;
  for (const KeyValue& kv : pairs) {
    if (kv.key.empty() || kv.key.find_first_of(" \t\r\n=") != std::string::npos) {
      return error(fmt::format("ARG: invalid name '{}'", kv.key));
    }
    ArgDeclaration decl{kv.key, std::nullopt};
    if (kv.value) {
      LF_ASSIGN_OR_RETURN(decl.default_value, expand(*kv.value, inst_.pos, "ARG " + kv.key));
    }
    cmd.args.push_back(std::move(decl));
  }
  return Command(std::move(cmd));
}

Result<Command> Decoder::decodeExpose() {
  LF_RETURN_IF_ERROR(checkFlags({}));
  if (inst_.args.empty()) return error("EXPOSE requires at least one argument");
  ExposeCommand cmd;
  cmd.pos = inst_.pos;
  for (const std::string& arg : inst_.args) {
    // EXPOSE is the instruction Docker expands into several words: EXPOSE $PORTS.
    auto words = expander_.expandWords(arg);
    if (!words.isOk()) {
      return error(fmt::format("EXPOSE: cannot expand '{}': {}", arg, words.status().message()));
    }
    for (std::string& w : *words) {
      auto spec = parsePortSpec(w);
      if (!spec.isOk()) return error("EXPOSE: " + spec.status().message());
      cmd.ports.push_back(std::move(w));
      cmd.specs.push_back(*spec);
    }
  }
  if (cmd.ports.empty()) return error("EXPOSE: no ports left after expansion");
  return Command(std::move(cmd));
}

Result<Command> Decoder::decodeVolume() {
  LF_RETURN_IF_ERROR(checkFlags({}));
  if (inst_.args.empty()) return error("VOLUME requires at least one argument");
  VolumeCommand cmd;
  cmd.pos = inst_.pos;
  for (const std::string& arg : inst_.args) {
    LF_ASSIGN_OR_RETURN(std::string path, expand(arg, inst_.pos, "VOLUME"));
    if (path.empty()) return error("VOLUME specified can not be an empty string");
    cmd.paths.push_back(std::move(path));
  }
  return Command(std::move(cmd));
}

Status Decoder::decodeHealthcheckFlags(HealthcheckCommand& cmd) const {
  struct Duration {
    std::string_view name;
    std::optional<std::int64_t>* out;
  };
  for (const Duration& d :
       {Duration{"interval", &cmd.interval_ns}, Duration{"timeout", &cmd.timeout_ns},
        Duration{"start-period", &cmd.start_period_ns},
        Duration{"start-interval", &cmd.start_interval_ns}}) {
    const Flag* f = flag(d.name);
    if (f == nullptr) continue;
    std::string prefix = fmt::format("HEALTHCHECK --{}={}", d.name, *f->value);
    auto ns = parseDuration(*f->value);
    if (!ns.isOk()) return error(f->pos, prefix + ": " + ns.status().message());
    if (*ns < 0) return error(f->pos, prefix + ": cannot be negative");
    if (*ns != 0 && *ns < 1000000) return error(f->pos, prefix + ": cannot be less than 1ms");
    *d.out = *ns;
  }
  if (const Flag* f = flag("retries")) {
    auto n = parseUint32(*f->value);
    if (!n || *n > 2147483647u) {
      return error(f->pos, fmt::format("HEALTHCHECK --retries={}: must be a non-negative integer",
                                       *f->value));
    }
    cmd.retries = static_cast<int>(*n);
  }
  return Status::ok();
}

Result<Command> Decoder::decodeHealthcheck() {
  LF_RETURN_IF_ERROR(checkFlags({{"interval", FlagType::kString},
                                 {"timeout", FlagType::kString},
                                 {"start-period", FlagType::kString},
                                 {"start-interval", FlagType::kString},
                                 {"retries", FlagType::kString}}));
  if (inst_.args.empty()) return error("HEALTHCHECK requires NONE or CMD");
  HealthcheckCommand cmd;
  cmd.pos = inst_.pos;
  std::string type = upper(inst_.args[0]);
  if (type == "NONE") {
    if (inst_.args.size() > 1) return error("HEALTHCHECK NONE takes no arguments");
    cmd.none = true;
    return Command(std::move(cmd));
  }
  if (type != "CMD") {
    return error(fmt::format("HEALTHCHECK: unknown type '{}' (want NONE or CMD)", inst_.args[0]));
  }
  cmd.shell_form = !inst_.json;
  if (inst_.json) {
    cmd.args.assign(inst_.args.begin() + 1, inst_.args.end());
  } else if (inst_.args.size() > 1) {
    cmd.args = {join(inst_.args, 1)};
  }
  if (cmd.args.empty() || (cmd.shell_form && cmd.args[0].empty())) {
    return error("HEALTHCHECK CMD requires a command");
  }
  LF_RETURN_IF_ERROR(decodeHealthcheckFlags(cmd));
  return Command(std::move(cmd));
}

Result<Command> Decoder::decodeOnbuild() {
  LF_RETURN_IF_ERROR(checkFlags({}));
  OnbuildCommand cmd;
  cmd.pos = inst_.pos;
  if (!inst_.args.empty()) {
    cmd.trigger = join(inst_.args);
  } else if (inst_.trigger) {
    cmd.trigger = inst_.trigger->original;
  }
  auto begin = cmd.trigger.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return error("ONBUILD requires an instruction");
  cmd.trigger.erase(0, begin);
  if (inst_.trigger) {
    cmd.trigger_keyword = upper(inst_.trigger->keyword);
  } else {
    cmd.trigger_keyword = upper(cmd.trigger.substr(0, cmd.trigger.find_first_of(" \t\r\n")));
  }
  const std::string& kw = cmd.trigger_keyword;
  if (kw == "ONBUILD") return error("ONBUILD ONBUILD is not allowed: triggers cannot be chained");
  if (kw == "FROM" || kw == "MAINTAINER") {
    return error(fmt::format("{} isn't allowed as an ONBUILD trigger", kw));
  }
  static constexpr std::string_view kKnown[] = {
      "ADD",   "ARG", "CMD",   "COPY",       "ENTRYPOINT", "ENV",    "EXPOSE", "HEALTHCHECK",
      "LABEL", "RUN", "SHELL", "STOPSIGNAL", "USER",       "VOLUME", "WORKDIR"};
  for (std::string_view k : kKnown) {
    if (kw == k) return Command(std::move(cmd));
  }
  return error(fmt::format("ONBUILD: unknown trigger instruction '{}'", kw));
}

Result<Command> Decoder::decode() {
  const std::string& kw = keyword_;
  if (kw == "FROM") return decodeFrom();
  if (kw == "RUN") return decodeRun();
  if (kw == "COPY" || kw == "ADD") return decodeCopy(kw == "ADD");
  if (kw == "ENV" || kw == "LABEL") {
    LF_ASSIGN_OR_RETURN(auto pairs, decodePairs());
    if (kw == "ENV") return Command(EnvCommand{std::move(pairs), inst_.pos});
    return Command(LabelCommand{std::move(pairs), inst_.pos});
  }
  if (kw == "ARG") return decodeArg();
  if (kw == "EXPOSE") return decodeExpose();
  if (kw == "VOLUME") return decodeVolume();
  if (kw == "HEALTHCHECK") return decodeHealthcheck();
  if (kw == "ONBUILD") return decodeOnbuild();
  if (kw == "CMD" || kw == "ENTRYPOINT") {
    LF_RETURN_IF_ERROR(checkFlags({}));
    std::vector<std::string> args = inst_.args;
    if (!inst_.json && !args.empty()) args = {join(inst_.args)};
    if (kw == "CMD") return Command(CmdCommand{std::move(args), !inst_.json, inst_.pos});
    return Command(EntrypointCommand{std::move(args), !inst_.json, inst_.pos});
  }
  if (kw == "SHELL") {
    LF_RETURN_IF_ERROR(checkFlags({}));
    if (!inst_.json) return error("SHELL requires the arguments to be in JSON form");
    if (inst_.args.empty()) return error("SHELL requires at least one argument");
    return Command(ShellCommand{inst_.args, inst_.pos});
  }
  if (kw == "MAINTAINER") {
    LF_RETURN_IF_ERROR(checkFlags({}));
    if (inst_.args.empty()) return error("MAINTAINER requires an argument");
    return Command(MaintainerCommand{join(inst_.args), inst_.pos});
  }
  if (kw == "WORKDIR" || kw == "USER" || kw == "STOPSIGNAL") {
    LF_RETURN_IF_ERROR(checkFlags({}));
    LF_ASSIGN_OR_RETURN(std::string value, singleArg(/*expand_it=*/true));
    if (value.empty()) {
      return error(fmt::format("{}: '{}' is empty after expansion", kw, inst_.args[0]));
    }
    if (kw == "WORKDIR") return Command(WorkdirCommand{std::move(value), inst_.pos});
    if (kw == "USER") return Command(UserCommand{std::move(value), inst_.pos});
    Status valid = validateSignal(value);
    if (!valid.isOk()) return error("STOPSIGNAL: " + valid.message());
    return Command(StopsignalCommand{std::move(value), inst_.pos});
  }
  return error(fmt::format("unknown instruction: {}", inst_.keyword));
}

}  // namespace

Result<Command> decodeInstruction(const Instruction& inst, const shell::Lookup& lookup,
                                  const DecodeOptions& options) {
  Decoder decoder(inst, lookup, options);
  Result<Command> result = decoder.decode();
  if (options.referenced != nullptr) decoder.collectReferences(options.referenced);
  return result;
}

Result<Command> decodeInstruction(const Instruction& inst, const shell::Lookup& lookup, char escape,
                                  std::string_view file_name) {
  DecodeOptions options;
  options.escape = escape;
  options.file_name = std::string(file_name);
  return decodeInstruction(inst, lookup, options);
}

Position commandPosition(const Command& command) {
  return std::visit([](const auto& c) { return c.pos; }, command);
}

}  // namespace lf::dockerfile
