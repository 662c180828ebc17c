// Fuzzes typed-command decoding (common/dockerfile/commands.h): the input is parsed as a
// Dockerfile and every instruction decoded against a small variable scope; the raw bytes also go
// straight to the value parsers (mount specs, durations, sizes, ports, signals, modes). Nothing
// may crash or hang, and decoded commands must keep their invariants.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/dockerfile/command_values.h"
#include "common/dockerfile/commands.h"
#include "common/dockerfile/parser.h"

namespace {

void checkInvariants(const lf::dockerfile::Command& cmd) {
  using namespace lf::dockerfile;
  if (const auto* from = std::get_if<FromCommand>(&cmd)) {
    if (from->image.empty()) __builtin_trap();
  } else if (const auto* expose = std::get_if<ExposeCommand>(&cmd)) {
    if (expose->ports.size() != expose->specs.size()) __builtin_trap();
    for (const PortSpec& p : expose->specs) {
      if (p.last < p.first) __builtin_trap();
    }
  } else if (const auto* run = std::get_if<RunCommand>(&cmd)) {
    for (const Mount& m : run->mounts) {
      if (m.type != MountType::kSecret && m.target.empty()) __builtin_trap();
    }
  } else if (const auto* shell = std::get_if<ShellCommand>(&cmd)) {
    if (shell->args.empty()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  lf::shell::Lookup lookup = [](std::string_view name) -> std::optional<std::string> {
    if (name == "A") return std::string("alpine");
    if (name == "E") return std::string();
    if (name == "P") return std::string("80 443/udp");
    if (name == "M") return std::string("0755");
    return std::nullopt;
  };

  auto parsed = lf::dockerfile::parse(text, "Dockerfile");
  if (parsed.isOk()) {
    for (const lf::dockerfile::Instruction& inst : parsed->instructions) {
      std::set<std::string, std::less<>> referenced;
      lf::dockerfile::DecodeOptions options;
      options.escape = parsed->escape;
      options.referenced = &referenced;
      auto cmd = lf::dockerfile::decodeInstruction(inst, lookup, options);
      if (cmd.isOk()) checkInvariants(*cmd);
    }
  }

  // The value parsers see the raw bytes too, so they are fuzzed without the parser's filtering.
  auto mount = lf::dockerfile::parseMountSpec(text, nullptr, 0);
  if (mount.isOk() && mount->type == lf::dockerfile::MountType::kCache && mount->id.empty()) {
    __builtin_trap();
  }
  lf::dockerfile::parseDuration(text).status().ignore();  // only must not crash
  lf::dockerfile::parseByteSize(text).status().ignore();  // only must not crash
  lf::dockerfile::parsePortSpec(text).status().ignore();  // only must not crash
  lf::dockerfile::validateSignal(text).ignore();          // only must not crash
  lf::dockerfile::parseChmod(text).status().ignore();     // only must not crash
  return 0;
}
