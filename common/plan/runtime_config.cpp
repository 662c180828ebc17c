#include <algorithm>

#include "common/plan/build_plan.h"

namespace lf::plan {

std::string Platform::toString() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

Result<Platform> Platform::parse(std::string_view text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  auto valid = [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    });
  };
  if (parts.size() < 2 || parts.size() > 3 || !std::all_of(parts.begin(), parts.end(), valid)) {
    return invalidArgument("invalid platform \"" + std::string(text) +
                           "\": expected os/arch[/variant] in lower case, e.g. linux/arm64");
  }
  Platform p;
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

std::optional<std::string> RuntimeConfig::getEnv(std::string_view key) const {
  for (const auto& kv : env) {
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') {
      return kv.substr(key.size() + 1);
    }
  }
  return std::nullopt;
}

void RuntimeConfig::setEnv(const std::string& key, const std::string& value) {
  for (auto& kv : env) {
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') {
      kv = key + "=" + value;
      return;
    }
  }
  env.push_back(key + "=" + value);
}

std::vector<std::string> RuntimeConfig::effectiveShell() const {
  if (!shell.empty()) return shell;
  return {"/bin/sh", "-c"};
}

std::string_view stepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kRun:
      return "run";
    case StepKind::kCopy:
      return "copy";
    case StepKind::kAdd:
      return "add";
    case StepKind::kConfig:
      return "config";
  }
  return "unknown";
}

std::optional<Digest> Stage::finalKey() const {
  if (!steps.empty()) return steps.back().cache_key;
  return base_key;
}

const RuntimeConfig& Stage::finalConfig() const {
  return steps.empty() ? base_config : *steps.back().config;
}

std::string Stage::displayName() const {
  return name.empty() ? "stage-" + std::to_string(index) : name;
}

}  // namespace lf::plan
