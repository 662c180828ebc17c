#include "common/dockerfile/ast_json.h"

#include <fmt/format.h>

namespace lf::dockerfile {
namespace {

using nlohmann::json;

std::string dumpReplacing(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

// One argument for the text listing: bare when it is a plain word, JSON-quoted otherwise.
std::string showArg(const std::string& s) {
  bool plain = !s.empty() && s.find_first_of(" \t\n\"\\") == std::string::npos;
  return plain ? s : dumpReplacing(json(s));
}

void appendArgs(const Instruction& ins, std::string* out) {
  if (ins.json) {
    *out += ' ';
    *out += dumpReplacing(json(ins.args));
    return;
  }
  if (!ins.pairs.empty()) {
    for (const KeyValue& kv : ins.pairs) {
      *out += ' ';
      *out += showArg(kv.key);
      if (kv.value) {
        *out += '=';
        *out += showArg(*kv.value);
      }
    }
    return;
  }
  for (const std::string& a : ins.args) {
    *out += ' ';
    *out += showArg(a);
  }
}

void appendInstruction(const Instruction& ins, std::string* out) {
  *out += ins.keyword;
  for (const Flag& f : ins.flags) {
    *out += ' ';
    *out += f.raw;
  }
  if (ins.trigger) {
    *out += ' ';
    appendInstruction(*ins.trigger, out);
    return;
  }
  appendArgs(ins, out);
}

}  // namespace

json instructionToJson(const Instruction& ins) {
  json flags = json::array();
  for (const Flag& f : ins.flags) {
    flags.push_back(f.raw);
  }
  json heredocs = json::array();
  for (const Heredoc& h : ins.heredocs) {
    heredocs.push_back({{"name", h.name}, {"content", h.content}, {"expand", h.expand}});
  }
  json j = {{"instruction", ins.keyword}, {"flags", std::move(flags)},       {"args", ins.args},
            {"json", ins.json},           {"heredocs", std::move(heredocs)}, {"line", ins.pos.line},
            {"end_line", ins.end_line}};
  if (ins.trigger) {
    j["trigger"] = instructionToJson(*ins.trigger);
  }
  return j;
}

json toJson(const Dockerfile& df) {
  json out = json::array();
  for (const Instruction& ins : df.instructions) {
    out.push_back(instructionToJson(ins));
  }
  return out;
}

std::string dumpJson(const Dockerfile& df, int indent) { return dumpReplacing(toJson(df), indent); }

std::string toText(const Dockerfile& df) {
  std::string out;
  for (const Instruction& ins : df.instructions) {
    out += fmt::format("{:>5}  ", ins.pos.line);
    appendInstruction(ins, &out);
    out += '\n';
    for (const Heredoc& h : ins.heredocs) {
      out += fmt::format("       <<{}{}{}\n", h.strip_tabs ? "-" : "", h.name,
                         h.expand ? "" : " (not expanded)");
      std::size_t i = 0;
      while (i < h.content.size()) {
        std::size_t nl = h.content.find('\n', i);
        std::size_t end = nl == std::string::npos ? h.content.size() : nl;
        out += "       | ";
        out.append(h.content, i, end - i);
        out += '\n';
        i = end + 1;
      }
    }
  }
  return out;
}

}  // namespace lf::dockerfile
