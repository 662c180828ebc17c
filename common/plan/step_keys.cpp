// Cache keys and history text of the steps that produce layers: RUN, COPY and ADD
// (../shared/ARCHITECTURE.md, "Cache keys").

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/context/context_snapshot.h"
#include "common/context/dockerignore.h"
#include "common/context/pattern.h"
#include "common/plan/key_builder.h"
#include "common/plan/planner_internal.h"

namespace lf::plan::internal {

namespace {

std::string where(const StepEnv& env, dockerfile::Position pos) {
  return env.file_name + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

bool isRemoteSource(std::string_view src) {
  return src.starts_with("http://") || src.starts_with("https://") || src.starts_with("git@") ||
         src.starts_with("git://");
}

bool hasWildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::string_view baseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Appends every context entry a COPY source selects, named as it will land under the
// destination: a file by its base name, a directory by its contents (Docker copies a directory's
// contents, not the directory itself). Fails when the source selects nothing.
Status selectContextSource(const context::ContextSnapshot& ctx, const std::string& source,
                           const context::DockerIgnore& excludes, const std::string& at,
                           std::string* out) {
  std::string_view trimmed = source;
  while (trimmed.starts_with("/")) trimmed.remove_prefix(1);
  auto norm = context::normalizeContextPath(trimmed);
  if (!norm.isOk()) {
    return invalidArgument(at + ": source \"" + source + "\" is outside the build context");
  }
  auto addEntry = [&](const context::ContextEntry& e, std::string_view name) {
    if (!excludes.empty() && excludes.isExcluded(e.path)) return;
    context::appendCanonical(e, name, out);
  };
  auto addTree = [&](const context::ContextEntry* root, const std::string& dir) {
    if (root != nullptr) addEntry(*root, "");
    std::string prefix = dir.empty() ? "" : dir + "/";
    for (const auto& e : ctx.under(dir))
      addEntry(e, std::string_view(e.path).substr(prefix.size()));
  };
  const std::string& path = *norm;
  size_t before = out->size();
  if (path.empty()) {
    addTree(nullptr, "");
  } else if (hasWildcard(path)) {
    auto glob = context::GlobPattern::compile(path, context::GlobSyntax::kFilepath);
    if (!glob.isOk()) return glob.status().withContext(at + ": source \"" + source + "\"");
    // Only entries below the pattern's literal directory prefix can match ("src/*.c" -> "src").
    size_t wild = path.find_first_of("*?[\\");
    size_t slash = path.rfind('/', wild);
    std::string prefix = slash == std::string::npos ? "" : path.substr(0, slash);
    for (const auto& e : ctx.under(prefix)) {
      if (!glob->matches(e.path)) continue;
      out->append("\x1fmatch:").append(e.path);
      if (e.type == context::EntryType::kDirectory) {
        addTree(&e, e.path);
      } else {
        addEntry(e, baseName(e.path));
      }
    }
  } else if (const auto* e = ctx.find(path)) {
    if (e->type == context::EntryType::kDirectory) {
      addTree(e, e->path);
    } else {
      addEntry(*e, baseName(e->path));
    }
  }
  if (out->size() == before) {
    return notFound(at + ": \"" + source +
                    "\": not found in the build context or excluded by .dockerignore");
  }
  return Status::ok();
}

// The key input for `--from=<ref>`: an earlier stage's final key, or an image's digest.
// Returns nullopt (unresolved) when the referenced thing has no key yet.
Result<std::optional<Digest>> fromSourceKey(const std::string& ref, const StepEnv& env,
                                            const std::string& at, Step* step, BuildPlan* plan) {
  LF_ASSIGN_OR_RETURN(int idx, findStageRef(ref, *env.stages, *env.stage_names,
                                            static_cast<int>(env.stages->size()), at));
  if (idx >= 0) {
    step->uses_stages.push_back(idx);
    return (*env.stages)[idx].finalKey();
  }
  step->uses_images.push_back(ref);
  auto it = env.input->bases.find(ref);
  if (it == env.input->bases.end()) {
    if (std::find(plan->unresolved_images.begin(), plan->unresolved_images.end(), ref) ==
        plan->unresolved_images.end()) {
      plan->unresolved_images.push_back(ref);
    }
    return std::optional<Digest>();
  }
  return std::optional<Digest>(KeyBuilder("from-image")
                                   .field("platform", env.platform.toString())
                                   .field("manifest", it->second.manifest_digest)
                                   .finish());
}

std::string mountText(const dockerfile::Mount& m) {
  static constexpr const char* kTypes[] = {"bind", "cache", "tmpfs", "secret", "ssh"};
  static constexpr const char* kSharing[] = {"shared", "private", "locked"};
  std::string t = std::string("type=") + kTypes[static_cast<int>(m.type)] + ",target=" + m.target;
  if (!m.source.empty()) t += ",source=" + m.source;
  if (!m.from.empty()) t += ",from=" + m.from;
  t += m.readonly ? ",ro" : ",rw";
  if (!m.id.empty()) t += ",id=" + m.id;
  if (m.type == dockerfile::MountType::kCache)
    t += std::string(",sharing=") + kSharing[static_cast<int>(m.sharing)];
  if (m.mode) t += ",mode=" + std::to_string(*m.mode);
  if (m.uid) t += ",uid=" + std::to_string(*m.uid);
  if (m.gid) t += ",gid=" + std::to_string(*m.gid);
  if (m.required) t += ",required";
  if (m.size_bytes) t += ",size=" + std::to_string(*m.size_bytes);
  if (!m.env.empty()) t += ",env=" + m.env;
  return t;
}

// The context path a RUN --mount=type=bind source names, its symlinks resolved inside the
// context the way the worker resolves them (openat2 RESOLVE_IN_ROOT: ".." stops at the root, an
// absolute target starts from it), so the key covers what is bound, not the link.
Result<std::string> resolveInContext(const context::ContextSnapshot& ctx, std::string_view path) {
  auto split = [](std::string_view text) {
    std::vector<std::string> parts;
    for (size_t pos = 0; pos <= text.size();) {
      size_t end = std::min(text.find('/', pos), text.size());
      parts.emplace_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    return parts;
  };
  auto join = [](const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
    return out;
  };
  std::vector<std::string> done;
  std::vector<std::string> todo = split(path);
  std::reverse(todo.begin(), todo.end());  // a stack: next component at the back
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.back());
    todo.pop_back();
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(std::move(part));
    const context::ContextEntry* e = ctx.find(join(done));
    if (e == nullptr || e->type != context::EntryType::kSymlink) continue;
    if (++links > 40) return invalidArgument("\"" + std::string(path) + "\": too many symlinks");
    done.pop_back();
    if (!e->link_target.empty() && e->link_target.front() == '/') done.clear();
    std::vector<std::string> target = split(e->link_target);
    todo.insert(todo.end(), target.rbegin(), target.rend());
  }
  return join(done);
}

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string quoteJsonArray(const std::vector<std::string>& items) {
  return nlohmann::json(items).dump();
}

// strconv.Quote for the ASCII range; bytes from 0x80 on are copied as they are (Go keeps
// printable UTF-8 too and escapes only non-printable runes, which Dockerfiles hardly hold).
std::string goQuotedList(const std::vector<std::string>& items) {
  static constexpr std::string_view kEscaped = "\"\\\a\b\f\n\r\t\v", kNames = "\"\\abfnrtv";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    out += i ? " \"" : "\"";
    for (char ch : items[i]) {
      auto c = static_cast<unsigned char>(ch);
      if (size_t e = kEscaped.find(ch); e != std::string_view::npos) {
        out += {'\\', kNames[e]};
      } else if (c < 0x20 || c == 0x7f) {
        out += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
      } else {
        out += ch;
      }
    }
    out += "\"";
  }
  return out + "]";
}

std::string goPlainList(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? " " : "") + items[i];
  return out + "]";
}

std::map<std::string, std::string> effectiveArgs(const ArgScope& args,
                                                 const RuntimeConfig& config) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : args) {
    if (v) out[k] = *v;
  }
  if (out.empty()) return out;
  // One pass over the env instead of a lookup per ARG: both can be long in generated files.
  for (const auto& kv : config.env) {
    auto eq = kv.find('=');
    auto it = out.find(kv.substr(0, eq));
    if (it != out.end()) out.erase(it);
  }
  return out;
}

Result<int> findStageRef(std::string_view ref, const std::vector<Stage>& stages,
                         const std::vector<std::string>& all_stage_names, int current_stage,
                         const std::string& at) {
  if (!ref.empty() &&
      std::all_of(ref.begin(), ref.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (ref.size() > 6 || std::stoi(std::string(ref)) >= current_stage) {
      return invalidArgument(at + ": stage index " + std::string(ref) +
                             " does not name an earlier stage (this is stage " +
                             std::to_string(current_stage) + ")");
    }
    return std::stoi(std::string(ref));
  }
  std::string name = lower(ref);
  for (const auto& s : stages) {
    if (!s.name.empty() && s.name == name && s.index < current_stage) return s.index;
  }
  for (size_t i = static_cast<size_t>(std::max(current_stage, 0)); i < all_stage_names.size();
       ++i) {
    if (!all_stage_names[i].empty() && all_stage_names[i] == name) {
      return invalidArgument(
          at + ": stage \"" + name + "\" is " +
          (static_cast<int>(i) == current_stage ? "the current stage" : "defined later") +
          ": a stage can only use the stages before it (this would be a cycle)");
    }
  }
  return -1;
}

Status keyRunStep(const dockerfile::RunCommand& run, const std::optional<Digest>& parent,
                  const StepEnv& env, Step* step, BuildPlan* plan) {
  const std::string at = where(env, run.pos);
  const RuntimeConfig& c = *env.config;
  std::vector<std::string> argv;
  if (run.shell_form) {
    argv = c.effectiveShell();
    argv.push_back(run.args.empty() ? std::string() : run.args.front());
  } else {
    argv = run.args;
  }
  auto args = effectiveArgs(*env.args, c);

  // History text as BuildKit writes it: "RUN |2 B=2 A=1 /bin/sh -c make # buildkit", the ARGs in
  // the order they were declared (the key takes them sorted).
  std::string text = "RUN ";
  if (!args.empty()) {
    text += "|" + std::to_string(args.size());
    for (const auto& [k, unused] : *env.args) {
      if (auto it = args.find(k); it != args.end()) text += " " + k + "=" + it->second;
    }
    text += " ";
  }
  for (size_t i = 0; i < argv.size(); ++i) text += (i ? " " : "") + argv[i];
  step->created_by = text + " # buildkit";

  step->run_env = c.env;
  for (const auto& [k, v] : args) step->run_env.push_back(k + "=" + v);
  for (const auto& [k, v] : env.proxy_args) step->run_env.push_back(k + "=" + v);

  static constexpr const char* kNet[] = {"default", "none", "host"};
  KeyBuilder kb("run");
  bool resolved = parent.has_value();
  kb.field("parent", parent.value_or(Digest()))
      .list("argv", argv)
      .field("exec_form", !run.shell_form)
      .list("env", c.env)
      .map("args", args)
      .field("user", c.user)
      .field("workdir", c.workdir)
      .field("network", std::string_view(kNet[static_cast<int>(run.network)]))
      .field("insecure", run.security == dockerfile::SecurityMode::kInsecure)
      .field("platform", env.platform.toString());
  for (const auto& h : run.heredocs) {
    kb.field("heredoc", h.name).field("heredoc_body", h.content).field("heredoc_expand", h.expand);
  }
  for (const auto& m : run.mounts) {
    kb.field("mount", mountText(m));
    if (m.type != dockerfile::MountType::kBind) continue;
    // A bind mount's content changes the result: key on what it exposes.
    if (!m.from.empty()) {
      LF_ASSIGN_OR_RETURN(auto from_key,
                          fromSourceKey(m.from, env, at + ": RUN --mount", step, plan));
      if (!from_key) resolved = false;
      kb.field("mount_from", from_key.value_or(Digest()));
    } else if (env.input->context != nullptr) {
      auto rel = resolveInContext(*env.input->context, m.source);
      auto d = rel.isOk() ? env.input->context->digestOf(*rel) : Result<Digest>(rel.status());
      if (!d.isOk())
        return d.status().withContext(at + ": RUN --mount source \"" + m.source + "\"");
      kb.field("mount_context", *d);
    } else {
      return invalidArgument(at +
                             ": RUN --mount=type=bind reads the build context, but none was given");
    }
  }
  step->cache_key.reset();
  Digest key = kb.finish();
  if (resolved) step->cache_key = key;
  return Status::ok();
}

Status keyCopyStep(const dockerfile::CopyCommand& copy, const std::optional<Digest>& parent,
                   const StepEnv& env, Step* step, BuildPlan* plan) {
  const std::string at = where(env, copy.pos);
  const char* keyword = copy.is_add ? "ADD" : "COPY";
  std::string text = keyword;
  if (copy.from) text += " --from=" + *copy.from;
  if (copy.chown) text += " --chown=" + *copy.chown;
  if (copy.chmod) text += " --chmod=" + *copy.chmod;
  if (copy.link) text += " --link";
  for (const auto& s : copy.sources) text += " " + s;
  for (const auto& s : copy.inline_sources) text += " <<" + s.name;
  text += " " + copy.dest;
  step->created_by = text + " # buildkit";

  // A relative destination lands under the WORKDIR in effect.
  std::string dest = copy.dest;
  if (!dest.starts_with("/"))
    dest = (env.config->workdir.empty() ? "/" : env.config->workdir + "/") + dest;

  KeyBuilder kb(copy.is_add ? "add" : "copy");
  bool resolved = parent.has_value();
  kb.field("parent", parent.value_or(Digest()))
      .field("dest", dest)
      .field("dest_is_dir", copy.dest.ends_with("/"))
      .field("chown", copy.chown.value_or(""))
      .field("chmod", copy.chmod.value_or(""))
      .field("link", copy.link)
      .field("parents", copy.parents)
      .list("excludes", copy.excludes)
      .field("checksum", copy.checksum.value_or(""))
      .field("keep_git_dir", copy.keep_git_dir)
      .field("unpack", copy.unpack ? (*copy.unpack ? "true" : "false") : "default")
      .field("platform", env.platform.toString());
  // USER does not change COPY's result unless --chown names a user, which is keyed above; the
  // image's /etc/passwd that resolves it is part of the parent.
  for (const auto& s : copy.inline_sources)
    kb.field("inline", s.name).field("inline_body", s.content);

  if (copy.from) {
    LF_ASSIGN_OR_RETURN(
        auto from_key, fromSourceKey(*copy.from, env, at + ": " + keyword + " --from", step, plan));
    if (!from_key) resolved = false;
    kb.field("from", from_key.value_or(Digest())).list("sources", copy.sources);
  } else {
    context::DockerIgnore excludes;
    if (!copy.excludes.empty()) {
      LF_ASSIGN_OR_RETURN(excludes,
                          context::DockerIgnore::fromPatterns(copy.excludes, at + ": --exclude"));
    }
    for (const auto& src : copy.sources) {
      kb.field("source", src);
      if (copy.is_add && isRemoteSource(src)) {
        // Remote content is unknown until fetched; with --checksum the key is exact.
        if (!copy.checksum) {
          plan->warnings.push_back(at + ": ADD " + src +
                                   " without --checksum: the cache key covers the URL, not the "
                                   "content it will return");
        }
        continue;
      }
      if (env.input->context == nullptr) {
        return invalidArgument(at + ": " + keyword + " " + src +
                               " reads the build context, but none was given");
      }
      std::string files;
      LF_RETURN_IF_ERROR(selectContextSource(*env.input->context, src, excludes, at, &files));
      kb.field("files", files);
    }
  }
  step->cache_key.reset();
  Digest key = kb.finish();
  if (resolved) step->cache_key = key;
  return Status::ok();
}

}  // namespace lf::plan::internal
