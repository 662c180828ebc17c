#include "common/oci/config_changes.h"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <type_traits>
#include <variant>

#include "common/dockerfile/commands.h"
#include "common/dockerfile/parser.h"

namespace lf::oci {

namespace df = lf::dockerfile;

namespace {

constexpr std::string_view kAllowed =
    "CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR";

bool isAllowed(std::string_view keyword) {
  for (std::string_view k : {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL",
                             "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}) {
    if (k == keyword) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> envLookup(const ImageConfig& config, std::string_view name) {
  // The last definition wins, as in a process environment built from this list.
  for (auto it = config.config.env.rbegin(); it != config.config.env.rend(); ++it) {
    if (it->size() > name.size() && it->compare(0, name.size(), name) == 0 &&
        (*it)[name.size()] == '=') {
      return it->substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

void setEnv(ContainerConfig& c, const std::string& key, const std::string& value) {
  std::string entry = key + "=" + value;
  for (auto& e : c.env) {
    if (e.compare(0, key.size() + 1, key + "=") == 0) {
      e = entry;
      return;
    }
  }
  c.env.push_back(entry);
}

// Shell form runs through the image's SHELL, default /bin/sh -c (Linux).
std::vector<std::string> commandLine(const ContainerConfig& c, const std::vector<std::string>& args,
                                     bool shell_form) {
  if (!shell_form) {
    return args;
  }
  std::vector<std::string> out =
      c.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : c.shell;
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

std::string joinWorkdir(const std::string& current, const std::string& path) {
  std::filesystem::path p(path);
  if (!p.is_absolute()) {
    p = std::filesystem::path(current.empty() ? "/" : current) / p;
  }
  std::string out = p.lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') {
    out.pop_back();
  }
  return out;
}

HealthConfig healthConfig(const df::HealthcheckCommand& h) {
  HealthConfig out;
  if (h.none) {
    out.test = {"NONE"};
    return out;
  }
  out.test = {h.shell_form ? "CMD-SHELL" : "CMD"};
  out.test.insert(out.test.end(), h.args.begin(), h.args.end());
  out.interval_ns = h.interval_ns.value_or(0);
  out.timeout_ns = h.timeout_ns.value_or(0);
  out.start_period_ns = h.start_period_ns.value_or(0);
  out.start_interval_ns = h.start_interval_ns.value_or(0);
  out.retries = h.retries.value_or(0);
  return out;
}

// Errors read "<where>:<line>:<column>: ..."; undo the line the FROM prefix added.
Status shiftLine(const Status& s, const std::string& where) {
  std::string prefix = where + ":";
  const std::string& m = s.message();
  if (!m.starts_with(prefix)) {
    return s;
  }
  size_t colon = m.find(':', prefix.size());
  if (colon == std::string::npos) {
    return s;
  }
  int line = std::atoi(m.substr(prefix.size(), colon - prefix.size()).c_str());
  if (line < 2) {
    return s;
  }
  return Status(s.code(), prefix + std::to_string(line - 1) + m.substr(colon));
}

}  // namespace

Status ConfigChanges::apply(std::string_view line, std::string_view label) {
  std::string where(label);
  // The parser insists a Dockerfile starts with FROM; a change is the line after one.
  auto parsed = df::parse("FROM scratch\n" + std::string(line), where);
  if (!parsed.isOk()) {
    return shiftLine(parsed.status(), where);
  }
  if (parsed->instructions.size() != 2) {
    return invalidArgument(where + ": expected exactly one instruction, got " +
                           std::to_string(parsed->instructions.size() - 1));
  }
  df::Instruction inst = std::move(parsed->instructions[1]);
  inst.pos.line -= 1;
  inst.end_line -= 1;
  if (!isAllowed(inst.keyword)) {
    return invalidArgument(where + ": instruction " + inst.keyword +
                           " is not allowed in a change (allowed: " + std::string(kAllowed) + ")");
  }
  ImageConfig& config = *config_;
  LF_ASSIGN_OR_RETURN(
      df::Command command,
      df::decodeInstruction(
          inst, [&](std::string_view name) { return envLookup(config, name); }, '\\', where));
  ContainerConfig& c = config.config;
  std::visit(
      [&](const auto& cmd) {
        using T = std::decay_t<decltype(cmd)>;
        if constexpr (std::is_same_v<T, df::EnvCommand>) {
          for (const auto& [k, v] : cmd.pairs) {
            setEnv(c, k, v);
          }
        } else if constexpr (std::is_same_v<T, df::LabelCommand>) {
          for (const auto& [k, v] : cmd.pairs) {
            c.labels[k] = v;
          }
        } else if constexpr (std::is_same_v<T, df::CmdCommand>) {
          c.cmd = commandLine(c, cmd.args, cmd.shell_form);
          cmd_set_ = true;
        } else if constexpr (std::is_same_v<T, df::EntrypointCommand>) {
          c.entrypoint = commandLine(c, cmd.args, cmd.shell_form);
          if (!cmd_set_) {
            c.cmd.reset();
          }
        } else if constexpr (std::is_same_v<T, df::WorkdirCommand>) {
          c.working_dir = joinWorkdir(c.working_dir, cmd.path);
        } else if constexpr (std::is_same_v<T, df::UserCommand>) {
          c.user = cmd.user;
        } else if constexpr (std::is_same_v<T, df::ExposeCommand>) {
          for (const auto& spec : cmd.specs) {
            for (uint32_t port = spec.first; port <= spec.last; ++port) {
              c.exposed_ports.insert(std::to_string(port) + "/" + spec.protocol);
            }
          }
        } else if constexpr (std::is_same_v<T, df::VolumeCommand>) {
          c.volumes.insert(cmd.paths.begin(), cmd.paths.end());
        } else if constexpr (std::is_same_v<T, df::StopsignalCommand>) {
          c.stop_signal = cmd.signal;
        } else if constexpr (std::is_same_v<T, df::HealthcheckCommand>) {
          c.healthcheck = healthConfig(cmd);
        } else if constexpr (std::is_same_v<T, df::OnbuildCommand>) {
          c.on_build.push_back(cmd.trigger);
        }
      },
      command);
  return Status::ok();
}

}  // namespace lf::oci
