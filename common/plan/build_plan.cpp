#include "common/plan/build_plan.h"

#include <algorithm>
#include <set>

#include "common/dockerfile/parser.h"
#include "common/plan/key_builder.h"
#include "common/plan/planner_internal.h"

namespace lf::plan {

using internal::ArgScope;
using internal::lower;

namespace {

constexpr std::string_view kDefaultPathEnv =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Docker's predefined proxy ARGs: usable without an ARG line, passed to RUN, never part of the
// cache key or the history.
const std::set<std::string, std::less<>> kProxyArgs = {
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
    "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy"};

// The automatic platform ARGs BuildKit defines in the global scope.
std::map<std::string, std::string> platformArgs(const Platform& target, const Platform& build) {
  return {
      {"TARGETPLATFORM", target.toString()}, {"TARGETOS", target.os},
      {"TARGETARCH", target.architecture},   {"TARGETVARIANT", target.variant},
      {"BUILDPLATFORM", build.toString()},   {"BUILDOS", build.os},
      {"BUILDARCH", build.architecture},     {"BUILDVARIANT", build.variant},
  };
}

std::optional<std::string> findArg(const ArgScope& scope, std::string_view name) {
  for (auto it = scope.rbegin(); it != scope.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return std::nullopt;
}

void setArg(ArgScope* scope, const std::string& name, std::optional<std::string> value) {
  for (auto& [k, v] : *scope) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  scope->emplace_back(name, std::move(value));
}

std::string where(const std::string& file, dockerfile::Position pos) {
  return file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

// Joins a WORKDIR onto the previous one, like path.Join with an absolute result.
std::string joinWorkdir(const std::string& current, const std::string& next) {
  std::string joined =
      next.starts_with("/") ? next : (current.empty() ? "/" : current) + "/" + next;
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= joined.size()) {
    size_t j = joined.find('/', i);
    if (j == std::string::npos) j = joined.size();
    std::string part = joined.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

// Shell-form CMD/ENTRYPOINT run through the SHELL in effect: ["/bin/sh", "-c", "cmd"].
std::vector<std::string> withShell(const RuntimeConfig& c, const std::vector<std::string>& args) {
  std::vector<std::string> out = c.effectiveShell();
  std::string joined;
  for (const auto& a : args) joined += (joined.empty() ? "" : " ") + a;
  out.push_back(joined);
  return out;
}

std::string healthcheckText(const dockerfile::HealthcheckCommand& x, RuntimeConfig& c) {
  if (x.none) {
    c.healthcheck = Healthcheck{{"NONE"}};
    return "HEALTHCHECK NONE";
  }
  Healthcheck h;
  if (x.shell_form) {
    std::string joined;
    for (const auto& a : x.args) joined += (joined.empty() ? "" : " ") + a;
    h.test = {"CMD-SHELL", joined};
  } else {
    h.test = {"CMD"};
    h.test.insert(h.test.end(), x.args.begin(), x.args.end());
  }
  h.interval_ns = x.interval_ns.value_or(0);
  h.timeout_ns = x.timeout_ns.value_or(0);
  h.start_period_ns = x.start_period_ns.value_or(0);
  h.start_interval_ns = x.start_interval_ns.value_or(0);
  h.retries = x.retries.value_or(0);
  c.healthcheck = h;
  return "HEALTHCHECK &{" + internal::quoteJsonArray(h.test) +
         " interval=" + std::to_string(h.interval_ns) + " timeout=" + std::to_string(h.timeout_ns) +
         " start_period=" + std::to_string(h.start_period_ns) +
         " start_interval=" + std::to_string(h.start_interval_ns) +
         " retries=" + std::to_string(h.retries) + "}";
}

// Mutable state while planning one stage.
struct StageState {
  RuntimeConfig config;
  std::shared_ptr<const RuntimeConfig> snapshot;  // == config, shared with the steps
  ArgScope args;
  std::optional<Digest> parent_key;
  bool cmd_set_in_stage = false;
};

class Planner {
 public:
  explicit Planner(const PlanInput& input)
      : in_(input),
        df_(*input.dockerfile),
        file_(df_.file_name.empty() ? "Dockerfile" : df_.file_name),
        platform_args_(platformArgs(input.target_platform, input.build_platform)) {
    for (const auto& [k, v] : in_.build_args) {
      if (kProxyArgs.contains(k)) proxy_args_[k] = v;
    }
  }

  Result<BuildPlan> run();

 private:
  Status planGlobalArgs(size_t end);
  Status collectStageNames();
  Status planFrom(const dockerfile::Instruction& ins, Stage* stage, StageState* st);
  Status planInstruction(const dockerfile::Instruction& ins, bool from_onbuild, Stage* stage,
                         StageState* st);
  Status runOnbuildTriggers(Stage* stage, StageState* st);
  void applyConfigCommand(const dockerfile::Command& cmd, Stage* stage, StageState* st, Step* step);
  Status declareArgs(const dockerfile::ArgCommand& cmd, StageState* st);
  Status selectTarget();
  shell::Lookup stageLookup(const StageState& st) const;

  const PlanInput& in_;
  const dockerfile::Dockerfile& df_;
  std::string file_;
  std::map<std::string, std::string> platform_args_;
  std::map<std::string, std::string> proxy_args_;
  ArgScope global_args_;
  std::set<std::string> consumed_args_;
  std::vector<std::string> stage_names_;  // per stage, lower-cased, "" when unnamed
  BuildPlan plan_;
};

shell::Lookup Planner::stageLookup(const StageState& st) const {
  // ENV always wins over an ARG of the same name (Dockerfile reference, "Using ARG variables").
  return [&st](std::string_view name) -> std::optional<std::string> {
    if (auto v = st.config.getEnv(name)) return v;
    return findArg(st.args, name);
  };
}

Status Planner::planGlobalArgs(size_t end) {
  shell::Lookup lookup = [this](std::string_view name) -> std::optional<std::string> {
    if (auto v = findArg(global_args_, name)) return v;
    auto it = platform_args_.find(std::string(name));
    if (it != platform_args_.end()) return it->second;
    return std::nullopt;
  };
  for (size_t i = 0; i < end; ++i) {
    const auto& ins = df_.instructions[i];
    LF_ASSIGN_OR_RETURN(auto cmd, dockerfile::decodeInstruction(ins, lookup, df_.escape, file_));
    const auto* arg = std::get_if<dockerfile::ArgCommand>(&cmd);
    if (arg == nullptr) {
      return invalidArgument(where(file_, ins.pos) + ": " + ins.keyword +
                             " before the first FROM: only ARG may come before FROM");
    }
    for (const auto& decl : arg->args) {
      std::optional<std::string> value = decl.default_value;
      if (auto it = in_.build_args.find(decl.name); it != in_.build_args.end()) {
        value = it->second;
        consumed_args_.insert(decl.name);
      }
      setArg(&global_args_, decl.name, value);
    }
  }
  return Status::ok();
}

Status Planner::declareArgs(const dockerfile::ArgCommand& cmd, StageState* st) {
  for (const auto& decl : cmd.args) {
    std::optional<std::string> value = decl.default_value;
    if (auto it = in_.build_args.find(decl.name); it != in_.build_args.end()) {
      value = it->second;
      consumed_args_.insert(decl.name);
    } else if (!decl.default_value) {
      // `ARG NAME` inside a stage re-declares a global ARG (taking its value) or an automatic
      // platform ARG; otherwise it is declared without a value.
      if (auto g = findArg(global_args_, decl.name)) {
        value = g;
      } else if (auto p = platform_args_.find(decl.name); p != platform_args_.end()) {
        value = p->second;
      }
    }
    setArg(&st->args, decl.name, value);
  }
  return Status::ok();
}

Status Planner::planFrom(const dockerfile::Instruction& ins, Stage* stage, StageState* st) {
  shell::Lookup lookup = [this](std::string_view name) -> std::optional<std::string> {
    if (auto v = findArg(global_args_, name)) return v;
    auto it = platform_args_.find(std::string(name));
    if (it != platform_args_.end()) return it->second;
    return std::nullopt;
  };
  LF_ASSIGN_OR_RETURN(auto cmd, dockerfile::decodeInstruction(ins, lookup, df_.escape, file_));
  const auto& from = std::get<dockerfile::FromCommand>(cmd);
  const std::string at = where(file_, ins.pos);
  stage->name = from.stage_name;
  stage->base_ref = from.image;
  stage->pos = ins.pos;
  stage->platform = in_.target_platform;
  if (from.platform) {
    auto p = Platform::parse(*from.platform);
    if (!p.isOk()) return p.status().withContext(at + ": FROM --platform");
    stage->platform = *p;
  }

  LF_ASSIGN_OR_RETURN(int base_stage, internal::findStageRef(from.image, plan_.stages, stage_names_,
                                                             stage->index, at + ": FROM"));
  if (base_stage >= 0) {
    const Stage& base = plan_.stages[base_stage];
    stage->base_stage = base_stage;
    stage->depends_on.insert(base_stage);
    stage->base_key = base.finalKey();
    st->config = base.finalConfig();
  } else if (lower(from.image) == "scratch") {
    stage->base_key =
        KeyBuilder("from-scratch").field("platform", stage->platform.toString()).finish();
  } else {
    auto it = in_.bases.find(from.image);
    if (it == in_.bases.end()) {
      if (std::find(plan_.unresolved_images.begin(), plan_.unresolved_images.end(), from.image) ==
          plan_.unresolved_images.end()) {
        plan_.unresolved_images.push_back(from.image);
      }
    } else {
      stage->base_key = KeyBuilder("from-image")
                            .field("platform", stage->platform.toString())
                            .field("manifest", it->second.manifest_digest)
                            .finish();
      if (it->second.config) st->config = *it->second.config;
    }
  }
  // BuildKit gives every image a PATH when its base has none (scratch, for one).
  if (!st->config.getEnv("PATH")) st->config.setEnv("PATH", std::string(kDefaultPathEnv));
  st->parent_key = stage->base_key;
  stage->base_config = st->config;
  return Status::ok();
}

Status Planner::runOnbuildTriggers(Stage* stage, StageState* st) {
  std::vector<std::string> triggers = std::move(st->config.onbuild);
  st->config.onbuild.clear();  // the child image does not inherit its base's triggers
  for (const auto& trigger : triggers) {
    // A trigger is one instruction's text; parse it behind a FROM so the parser accepts it.
    std::string source = "FROM scratch\n" + trigger + "\n";
    auto parsed = dockerfile::parse(source, file_ + " (ONBUILD of " + stage->base_ref + ")");
    if (!parsed.isOk()) {
      return parsed.status().withContext(where(file_, stage->pos) + ": base image ONBUILD trigger");
    }
    if (parsed->instructions.size() != 2) {
      return invalidArgument(where(file_, stage->pos) + ": ONBUILD trigger \"" + trigger +
                             "\" is not exactly one instruction");
    }
    plan_.trigger_sources.push_back(std::make_unique<dockerfile::Dockerfile>(std::move(*parsed)));
    LF_RETURN_IF_ERROR(
        planInstruction(plan_.trigger_sources.back()->instructions[1], true, stage, st));
  }
  return Status::ok();
}

void Planner::applyConfigCommand(const dockerfile::Command& cmd, Stage* stage, StageState* st,
                                 Step* step) {
  RuntimeConfig& c = st->config;
  std::string created_by;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, dockerfile::EnvCommand>) {
          created_by = "ENV";
          for (const auto& [k, v] : x.pairs) {
            c.setEnv(k, v);
            created_by += " " + k + "=" + v;
          }
        } else if constexpr (std::is_same_v<T, dockerfile::LabelCommand>) {
          created_by = "LABEL";
          for (const auto& [k, v] : x.pairs) {
            c.labels[k] = v;
            created_by += " " + k + "=" + v;
          }
        } else if constexpr (std::is_same_v<T, dockerfile::ArgCommand>) {
          created_by = "ARG";
          for (const auto& d : x.args) {
            created_by += " " + d.name + (d.default_value ? "=" + *d.default_value : "");
          }
        } else if constexpr (std::is_same_v<T, dockerfile::WorkdirCommand>) {
          c.workdir = joinWorkdir(c.workdir, x.path);
          created_by = "WORKDIR " + c.workdir;
        } else if constexpr (std::is_same_v<T, dockerfile::UserCommand>) {
          c.user = x.user;
          created_by = "USER " + x.user;
        } else if constexpr (std::is_same_v<T, dockerfile::CmdCommand>) {
          c.cmd = x.shell_form ? withShell(c, x.args) : x.args;
          // BuildKit marks every CMD's arguments as escaped (a Windows notion runtimes on Linux
          // ignore); the image config carries it, so does ours.
          c.args_escaped = true;
          st->cmd_set_in_stage = true;
          created_by = "CMD " + internal::goQuotedList(*c.cmd);
        } else if constexpr (std::is_same_v<T, dockerfile::EntrypointCommand>) {
          c.entrypoint = x.shell_form ? withShell(c, x.args) : x.args;
          // "If CMD is defined from the base image, setting ENTRYPOINT will reset CMD".
          if (!st->cmd_set_in_stage) c.cmd.reset();
          created_by = "ENTRYPOINT " + internal::goQuotedList(*c.entrypoint);
        } else if constexpr (std::is_same_v<T, dockerfile::ShellCommand>) {
          c.shell = x.args;
          created_by = "SHELL " + internal::goPlainList(x.args);
        } else if constexpr (std::is_same_v<T, dockerfile::ExposeCommand>) {
          // BuildKit prints the parsed port set, a Go map: "EXPOSE map[53/udp:{} 80/tcp:{}]".
          std::set<std::string> ports;
          for (const auto& p : x.specs) {
            for (uint32_t port = p.first; port <= p.last; ++port) {
              ports.insert(std::to_string(port) + "/" + p.protocol);
            }
          }
          created_by = "EXPOSE map[";
          for (const auto& p : ports) {
            created_by += (created_by.ends_with("[") ? "" : " ") + p + ":{}";
            c.exposed_ports.insert(p);
          }
          created_by += "]";
        } else if constexpr (std::is_same_v<T, dockerfile::VolumeCommand>) {
          created_by = "VOLUME " + internal::goPlainList(x.paths);
          for (const auto& v : x.paths) c.volumes.insert(v);
        } else if constexpr (std::is_same_v<T, dockerfile::StopsignalCommand>) {
          c.stop_signal = x.signal;
          created_by = "STOPSIGNAL " + x.signal;
        } else if constexpr (std::is_same_v<T, dockerfile::HealthcheckCommand>) {
          created_by = healthcheckText(x, c);
        } else if constexpr (std::is_same_v<T, dockerfile::OnbuildCommand>) {
          c.onbuild.push_back(x.trigger);
          created_by = "ONBUILD " + x.trigger;
        } else if constexpr (std::is_same_v<T, dockerfile::MaintainerCommand>) {
          c.author = x.name;
          created_by = "MAINTAINER " + x.name;
        }
      },
      cmd);
  step->created_by = std::move(created_by);
  step->cache_key.reset();
  if (st->parent_key) {
    step->cache_key = KeyBuilder("config")
                          .field("parent", *st->parent_key)
                          .field("instruction", step->created_by)
                          .finish();
  }
  (void)stage;
}

Status Planner::planInstruction(const dockerfile::Instruction& ins, bool from_onbuild, Stage* stage,
                                StageState* st) {
  std::set<std::string, std::less<>> referenced;
  dockerfile::DecodeOptions opts;
  opts.file_name = file_;
  opts.escape = df_.escape;
  opts.referenced = &referenced;
  LF_ASSIGN_OR_RETURN(auto cmd, dockerfile::decodeInstruction(ins, stageLookup(*st), opts));
  if (std::holds_alternative<dockerfile::FromCommand>(cmd)) {
    return invalidArgument(where(file_, ins.pos) + ": FROM is not allowed here");
  }

  Step step;
  step.index = static_cast<int>(stage->steps.size()) + 1;
  step.keyword = ins.keyword;
  step.pos = ins.pos;
  step.instruction = &ins;
  step.from_onbuild = from_onbuild;

  internal::StepEnv env;
  env.input = &in_;
  env.stages = &plan_.stages;
  env.stage_names = &stage_names_;
  env.config = &st->config;
  env.args = &st->args;
  env.platform = stage->platform;
  env.file_name = file_;
  env.proxy_args = proxy_args_;

  if (const auto* run = std::get_if<dockerfile::RunCommand>(&cmd)) {
    step.kind = StepKind::kRun;
    step.produces_layer = true;
    LF_RETURN_IF_ERROR(internal::keyRunStep(*run, st->parent_key, env, &step, &plan_));
  } else if (const auto* copy = std::get_if<dockerfile::CopyCommand>(&cmd)) {
    step.kind = copy->is_add ? StepKind::kAdd : StepKind::kCopy;
    step.produces_layer = true;
    LF_RETURN_IF_ERROR(internal::keyCopyStep(*copy, st->parent_key, env, &step, &plan_));
  } else {
    step.kind = StepKind::kConfig;
    if (const auto* arg = std::get_if<dockerfile::ArgCommand>(&cmd)) {
      LF_RETURN_IF_ERROR(declareArgs(*arg, st));
    }
    applyConfigCommand(cmd, stage, st, &step);
  }
  for (int s : step.uses_stages) stage->depends_on.insert(s);
  if (step.kind == StepKind::kConfig || st->snapshot == nullptr) {
    st->snapshot = std::make_shared<const RuntimeConfig>(st->config);
  }
  step.config = st->snapshot;
  step.command = std::move(cmd);
  st->parent_key = step.cache_key;
  stage->steps.push_back(std::move(step));
  return Status::ok();
}

Status Planner::collectStageNames() {
  std::map<std::string, int> seen;
  for (const auto& ins : df_.instructions) {
    if (ins.keyword != "FROM") continue;
    std::string name;
    // FROM image AS name: the parser keeps the words; names are case-insensitive.
    if (ins.args.size() == 3) name = lower(ins.args[2]);
    if (!name.empty()) {
      auto [it, fresh] = seen.emplace(name, ins.pos.line);
      if (!fresh) {
        return invalidArgument(where(file_, ins.pos) + ": duplicate stage name \"" + name +
                               "\" (first defined on line " + std::to_string(it->second) + ")");
      }
    }
    stage_names_.push_back(name);
  }
  return Status::ok();
}

Status Planner::selectTarget() {
  int target = static_cast<int>(plan_.stages.size()) - 1;
  if (!in_.target.empty()) {
    target = -1;
    std::string want = lower(in_.target);
    for (const auto& s : plan_.stages) {
      if (s.name == want) target = s.index;
    }
    // Stages can also be named by index, as COPY --from=0 does.
    if (target < 0 && want.size() < 6 &&
        std::all_of(want.begin(), want.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        std::stoi(want) < static_cast<int>(plan_.stages.size())) {
      target = std::stoi(want);
    }
    if (target < 0) {
      std::string names;
      for (const auto& s : plan_.stages) {
        if (!s.name.empty()) names += (names.empty() ? "" : ", ") + s.name;
      }
      return invalidArgument("target stage \"" + in_.target + "\" could not be found" +
                             (names.empty() ? " (no stage is named)" : " (stages: " + names + ")"));
    }
  }
  plan_.target_stage = target;
  // A stage is needed when the target reaches it through FROM, COPY --from or RUN --mount from=.
  std::vector<bool> needed(plan_.stages.size(), false);
  std::vector<int> todo = {target};
  while (!todo.empty()) {
    int s = todo.back();
    todo.pop_back();
    if (needed[s]) continue;
    needed[s] = true;
    for (int d : plan_.stages[s].depends_on) todo.push_back(d);
  }
  for (auto& s : plan_.stages) s.needed = needed[s.index];
  return Status::ok();
}

Result<BuildPlan> Planner::run() {
  const auto& ins = df_.instructions;
  size_t first_from = 0;
  while (first_from < ins.size() && ins[first_from].keyword != "FROM") ++first_from;
  if (first_from == ins.size()) {
    return invalidArgument(file_ +
                           ": no FROM instruction: a Dockerfile must start a stage with FROM");
  }
  LF_RETURN_IF_ERROR(planGlobalArgs(first_from));
  LF_RETURN_IF_ERROR(collectStageNames());

  for (size_t i = first_from; i < ins.size();) {
    Stage stage;
    stage.index = static_cast<int>(plan_.stages.size());
    StageState st;
    LF_RETURN_IF_ERROR(planFrom(ins[i], &stage, &st));
    if (!st.config.onbuild.empty()) LF_RETURN_IF_ERROR(runOnbuildTriggers(&stage, &st));
    size_t j = i + 1;
    for (; j < ins.size() && ins[j].keyword != "FROM"; ++j) {
      LF_RETURN_IF_ERROR(planInstruction(ins[j], false, &stage, &st));
    }
    plan_.stages.push_back(std::move(stage));
    i = j;
  }
  LF_RETURN_IF_ERROR(selectTarget());

  // Only what the target needs counts; images of pruned stages need no digest.
  std::vector<std::string> unresolved;
  for (const auto& s : plan_.stages) {
    if (!s.needed) continue;
    plan_.step_count += static_cast<int>(s.steps.size());
    for (const auto& step : s.steps) plan_.layer_step_count += step.produces_layer ? 1 : 0;
    auto note = [&](const std::string& ref) {
      if (std::find(plan_.unresolved_images.begin(), plan_.unresolved_images.end(), ref) !=
              plan_.unresolved_images.end() &&
          std::find(unresolved.begin(), unresolved.end(), ref) == unresolved.end()) {
        unresolved.push_back(ref);
      }
    };
    if (s.base_stage < 0) note(s.base_ref);
    for (const auto& step : s.steps) {
      for (const auto& img : step.uses_images) note(img);
    }
  }
  plan_.unresolved_images = std::move(unresolved);
  for (const auto& [k, v] : in_.build_args) {
    if (!consumed_args_.contains(k) && !kProxyArgs.contains(k))
      plan_.unused_build_args.push_back(k);
  }
  return std::move(plan_);
}

}  // namespace

Result<BuildPlan> makePlan(const PlanInput& input) {
  if (input.dockerfile == nullptr) return invalidArgument("makePlan: no Dockerfile given");
  Planner planner(input);
  return planner.run();
}

}  // namespace lf::plan
