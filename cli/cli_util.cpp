#include "cli/cli_util.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace lf::cli {

std::string resolveServer(const std::string& flag) {
  if (!flag.empty()) {
    return flag;
  }
  const char* env = std::getenv("LAYERFARM_SERVER");
  if (env != nullptr && *env != '\0') {
    return env;
  }
  return std::string(kDefaultServer);
}

Result<std::map<std::string, std::string>> parseBuildArgs(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  std::map<std::string, std::string> out;
  for (const std::string& arg : args) {
    size_t eq = arg.find('=');
    std::string key = arg.substr(0, eq);
    if (key.empty()) {
      return invalidArgument("--build-arg \"" + arg + "\": expected KEY=VALUE or KEY");
    }
    if (eq == std::string::npos) {
      std::optional<std::string> value = getenv(key);
      if (value.has_value()) {
        out[key] = *value;
      }
      continue;
    }
    out[key] = arg.substr(eq + 1);
  }
  return out;
}

Result<BuildOutput> parseBuildOutput(std::string_view text) {
  BuildOutput out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view part =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq + 1 == part.size()) {
      return invalidArgument("--output: \"" + std::string(part) + "\" is not key=value");
    }
    std::string_view key = part.substr(0, eq);
    std::string value(part.substr(eq + 1));
    if (key == "type") {
      out.type = value;
    } else if (key == "dest") {
      out.dest = value;
    } else {
      return invalidArgument("--output: unknown key \"" + std::string(key) +
                             "\" (known: type, dest)");
    }
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  if (out.type != "oci" && out.type != "docker") {
    return invalidArgument("--output: type must be oci or docker, got \"" + out.type + "\"");
  }
  if (out.dest.empty()) {
    return invalidArgument("--output: dest=PATH is required");
  }
  return out;
}

std::string humanSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1000.0 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    v /= 1000.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g%s", v, kUnits[unit]);
  return buf;
}

std::string humanDuration(int64_t ms) {
  double seconds = static_cast<double>(ms) / 1000.0;
  int64_t s = static_cast<int64_t>(seconds);
  int64_t minutes = s / 60;
  int64_t hours = static_cast<int64_t>(std::lround(seconds / 3600.0));
  auto n = [](int64_t v, const char* unit) { return std::to_string(v) + " " + unit; };
  if (seconds < 1) return "Less than a second";
  if (s == 1) return "1 second";
  if (s < 60) return n(s, "seconds");
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return n(minutes, "minutes");
  if (hours == 1) return "About an hour";
  if (hours < 48) return n(hours, "hours");
  if (hours < 24 * 7 * 2) return n(hours / 24, "days");
  if (hours < 24 * 30 * 2) return n(hours / 24 / 7, "weeks");
  if (hours < 24 * 365 * 2) return n(hours / 24 / 30, "months");
  return n(hours / 24 / 365, "years");
}

std::string timeAgo(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) {
    return "N/A";
  }
  return humanDuration(now_ms - then_ms) + " ago";
}

std::string truncateText(std::string_view text, size_t width) {
  // Count characters, not bytes: UTF-8 continuation bytes (10xxxxxx) do not start one.
  auto starts = [&](size_t i) { return (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80; };
  size_t chars = 0;
  size_t cut = text.size();  // byte offset where character number `width` begins
  for (size_t i = 0; i < text.size(); ++i) {
    if (starts(i)) {
      if (chars + 1 == width) {
        cut = i;
      }
      ++chars;
    }
  }
  if (chars <= width || width == 0) {
    return std::string(text);
  }
  return std::string(text.substr(0, cut)) + "\xe2\x80\xa6";  // "…"
}

namespace {
size_t displayWidth(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  }
  return n;
}
}  // namespace

std::string formatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], displayWidth(row[i]));
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < widths.size()) {
        line += std::string(widths[i] - displayWidth(cell) + 3, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(header);
  for (const auto& row : rows) emit(row);
  return out;
}

}  // namespace lf::cli
