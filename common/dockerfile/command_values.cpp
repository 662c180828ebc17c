#include "common/dockerfile/command_values.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <limits>

namespace lf::dockerfile {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Splits a --mount value into fields the way Go's encoding/csv reads one record: a field that
// starts with '"' runs to the matching quote, with "" standing for one quote.
Result<std::vector<std::string>> splitCsv(std::string_view spec) {
  std::vector<std::string> fields;
  std::size_t i = 0;
  while (true) {
    std::string field;
    if (i < spec.size() && spec[i] == '"') {
      ++i;
      bool closed = false;
      while (i < spec.size()) {
        if (spec[i] == '"') {
          if (i + 1 < spec.size() && spec[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        field.push_back(spec[i++]);
      }
      if (!closed) return invalidArgument(fmt::format("unterminated quote in '{}'", spec));
      if (i < spec.size() && spec[i] != ',') {
        return invalidArgument(fmt::format("unexpected text after a quoted field in '{}'", spec));
      }
    } else {
      while (i < spec.size() && spec[i] != ',') field.push_back(spec[i++]);
    }
    fields.push_back(std::move(field));
    if (i >= spec.size()) break;
    ++i;  // the comma
  }
  return fields;
}

Result<MountType> parseMountType(std::string_view v) {
  std::string t = lower(v);
  if (t == "bind") return MountType::kBind;
  if (t == "cache") return MountType::kCache;
  if (t == "tmpfs") return MountType::kTmpfs;
  if (t == "secret") return MountType::kSecret;
  if (t == "ssh") return MountType::kSsh;
  return invalidArgument(
      fmt::format("unknown type '{}' (want bind, cache, tmpfs, secret or ssh)", v));
}

const char* mountTypeName(MountType t) {
  switch (t) {
    case MountType::kBind:
      return "bind";
    case MountType::kCache:
      return "cache";
    case MountType::kTmpfs:
      return "tmpfs";
    case MountType::kSecret:
      return "secret";
    case MountType::kSsh:
      return "ssh";
  }
  return "?";
}

// Which keys each mount type accepts (after aliases are folded).
bool keyAllowed(MountType t, std::string_view key) {
  if (key == "target" || key == "type") return true;
  if (key == "source" || key == "from") return t == MountType::kBind || t == MountType::kCache;
  if (key == "readonly") return true;
  if (key == "id") return t != MountType::kBind && t != MountType::kTmpfs;
  if (key == "sharing") return t == MountType::kCache;
  if (key == "mode" || key == "uid" || key == "gid") {
    return t == MountType::kCache || t == MountType::kSecret || t == MountType::kSsh;
  }
  if (key == "required") return t == MountType::kSecret || t == MountType::kSsh;
  if (key == "size") return t == MountType::kTmpfs;
  if (key == "env") return t == MountType::kSecret;
  return false;
}

std::string canonicalKey(const std::string& key) {
  if (key == "dst" || key == "destination") return "target";
  if (key == "src") return "source";
  if (key == "ro" || key == "rw" || key == "readwrite") return "readonly";
  return key;
}

Status applyMountField(Mount& m, const std::string& raw_key, const std::string& key,
                       const std::optional<std::string>& value) {
  auto need = [&]() -> Status {
    if (!value) return invalidArgument(fmt::format("key '{}' needs a value", raw_key));
    return Status::ok();
  };
  if (key == "readonly") {
    bool v = true;
    if (value) {
      auto b = parseBool(*value);
      if (!b) return invalidArgument(fmt::format("invalid boolean '{}' for {}", *value, raw_key));
      v = *b;
    }
    bool rw_key = raw_key == "rw" || raw_key == "readwrite";
    m.readonly = rw_key ? !v : v;
    return Status::ok();
  }
  if (key == "required") {
    bool v = true;
    if (value) {
      auto b = parseBool(*value);
      if (!b) return invalidArgument(fmt::format("invalid boolean '{}' for required", *value));
      v = *b;
    }
    m.required = v;
    return Status::ok();
  }
  LF_RETURN_IF_ERROR(need());
  const std::string& v = *value;
  if (key == "target") {
    m.target = v;
  } else if (key == "source") {
    m.source = v;
  } else if (key == "from") {
    m.from = v;
  } else if (key == "id") {
    m.id = v;
  } else if (key == "env") {
    m.env = v;
  } else if (key == "sharing") {
    std::string s = lower(v);
    if (s == "shared") {
      m.sharing = MountSharing::kShared;
    } else if (s == "private") {
      m.sharing = MountSharing::kPrivate;
    } else if (s == "locked") {
      m.sharing = MountSharing::kLocked;
    } else {
      return invalidArgument(fmt::format("sharing must be shared, private or locked, not '{}'", v));
    }
  } else if (key == "mode") {
    m.mode = parseOctalMode(v);
    if (!m.mode) return invalidArgument(fmt::format("invalid octal mode '{}'", v));
  } else if (key == "uid" || key == "gid") {
    auto id = parseUint32(v);
    if (!id) return invalidArgument(fmt::format("invalid {} '{}'", key, v));
    (key == "uid" ? m.uid : m.gid) = id;
  } else if (key == "size") {
    auto size = parseByteSize(v);
    if (!size.isOk()) return size.status();
    m.size_bytes = *size;
  }
  return Status::ok();
}

Status fillMountDefaults(Mount& m, int ssh_index) {
  const char* type = mountTypeName(m.type);
  switch (m.type) {
    case MountType::kBind:
    case MountType::kTmpfs:
      if (m.target.empty()) return invalidArgument(fmt::format("type={} needs a target", type));
      break;
    case MountType::kCache:
      if (m.target.empty()) return invalidArgument("type=cache needs a target");
      if (m.id.empty()) m.id = m.target;
      break;
    case MountType::kSecret:
      if (m.id.empty()) {
        if (!m.target.empty()) {
          std::string_view t = m.target;
          while (t.size() > 1 && t.back() == '/') t.remove_suffix(1);
          auto slash = t.rfind('/');
          m.id = std::string(slash == std::string_view::npos ? t : t.substr(slash + 1));
        } else if (!m.env.empty()) {
          m.id = m.env;
        }
      }
      if (m.id.empty() || m.id == "/") {
        return invalidArgument("type=secret needs an id, a target or an env");
      }
      if (m.target.empty() && m.env.empty()) m.target = "/run/secrets/" + m.id;
      break;
    case MountType::kSsh:
      if (m.id.empty()) m.id = "default";
      if (m.target.empty()) m.target = fmt::format("/run/buildkit/ssh_agent.{}", ssh_index);
      break;
  }
  return Status::ok();
}

}  // namespace

Result<Mount> parseMountSpec(std::string_view spec, const ValueExpander& expand, int ssh_index) {
  LF_ASSIGN_OR_RETURN(std::vector<std::string> fields, splitCsv(spec));
  struct Field {
    std::string raw_key;
    std::string key;
    std::optional<std::string> value;
  };
  std::vector<Field> parsed;
  Mount m;
  for (const std::string& f : fields) {
    if (f.empty()) continue;
    auto eq = f.find('=');
    Field field;
    field.raw_key = lower(f.substr(0, eq));
    field.key = canonicalKey(field.raw_key);
    if (eq != std::string::npos) field.value = f.substr(eq + 1);
    if (field.key == "type") {
      if (!field.value) return invalidArgument("key 'type' needs a value");
      LF_ASSIGN_OR_RETURN(m.type, parseMountType(*field.value));
      continue;
    }
    parsed.push_back(std::move(field));
  }
  m.readonly =
      m.type == MountType::kBind || m.type == MountType::kSecret || m.type == MountType::kSsh;
  for (Field& f : parsed) {
    if (f.key != "readonly" && f.key != "target" && f.key != "source" && f.key != "from" &&
        f.key != "id" && f.key != "sharing" && f.key != "mode" && f.key != "uid" &&
        f.key != "gid" && f.key != "required" && f.key != "size" && f.key != "env") {
      return invalidArgument(fmt::format("unexpected key '{}' in '{}'", f.raw_key, spec));
    }
    if (!keyAllowed(m.type, f.key)) {
      return invalidArgument(
          fmt::format("key '{}' is not allowed for type={}", f.raw_key, mountTypeName(m.type)));
    }
    if (f.value && expand) {
      LF_ASSIGN_OR_RETURN(f.value, expand(*f.value));
    }
    LF_RETURN_IF_ERROR(applyMountField(m, f.raw_key, f.key, f.value));
  }
  LF_RETURN_IF_ERROR(fillMountDefaults(m, ssh_index));
  return m;
}

std::optional<bool> parseBool(std::string_view text) {
  static constexpr std::array<std::string_view, 6> kTrue = {"1", "t", "T", "TRUE", "true", "True"};
  static constexpr std::array<std::string_view, 6> kFalse = {"0",     "f",     "F",
                                                             "FALSE", "false", "False"};
  for (auto t : kTrue) {
    if (text == t) return true;
  }
  for (auto f : kFalse) {
    if (text == f) return false;
  }
  return std::nullopt;
}

std::optional<std::uint32_t> parseUint32(std::string_view text) {
  if (!allDigits(text) || text.size() > 10) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) v = v * 10 + static_cast<std::uint64_t>(c - '0');
  if (v > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

std::optional<std::uint32_t> parseOctalMode(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    v = v * 8 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 07777) return std::nullopt;
  return v;
}

// Symbolic chmod(1) modes: [ugoa]*([-+=]([rwxXst]*|[ugo]))+ separated by commas.
static bool validSymbolicClause(std::string_view c) {
  std::size_t i = 0;
  while (i < c.size() && std::string_view("ugoa").find(c[i]) != std::string_view::npos) ++i;
  if (i >= c.size()) return false;
  while (i < c.size()) {
    if (std::string_view("-+=").find(c[i]) == std::string_view::npos) return false;
    ++i;
    if (i < c.size() && std::string_view("ugo").find(c[i]) != std::string_view::npos) {
      ++i;
      continue;
    }
    while (i < c.size() && std::string_view("rwxXst").find(c[i]) != std::string_view::npos) ++i;
  }
  return true;
}

Result<std::optional<std::uint32_t>> parseChmod(std::string_view text) {
  if (allDigits(text)) {
    auto mode = parseOctalMode(text);
    if (!mode) return invalidArgument("invalid mode");
    return std::optional<std::uint32_t>(mode);
  }
  if (text.empty()) return invalidArgument("invalid mode");
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    std::string_view clause = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (!validSymbolicClause(clause)) return invalidArgument("invalid mode");
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return std::optional<std::uint32_t>();
}

Result<PortSpec> parsePortSpec(std::string_view text) {
  PortSpec spec;
  std::string_view ports = text;
  auto slash = text.find('/');
  if (slash != std::string_view::npos) {
    spec.protocol = lower(text.substr(slash + 1));
    ports = text.substr(0, slash);
    if (spec.protocol != "tcp" && spec.protocol != "udp" && spec.protocol != "sctp") {
      return invalidArgument(fmt::format("invalid protocol '{}' in '{}' (want tcp, udp or sctp)",
                                         spec.protocol, text));
    }
  }
  auto port = [&](std::string_view p) -> std::optional<std::uint16_t> {
    auto v = parseUint32(p);
    if (!v || *v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(*v);
  };
  auto dash = ports.find('-');
  auto first = port(ports.substr(0, dash));
  auto last = dash == std::string_view::npos ? first : port(ports.substr(dash + 1));
  if (!first || !last) {
    return invalidArgument(fmt::format("invalid port '{}' (want 80, 80/tcp or 8000-8010)", text));
  }
  if (*last < *first) {
    return invalidArgument(fmt::format("invalid port range '{}': end is before start", text));
  }
  spec.first = *first;
  spec.last = *last;
  return spec;
}

Status validateSignal(std::string_view text) {
  static constexpr std::array<std::string_view, 32> kNames = {
      "HUP",  "INT",  "QUIT", "ILL",  "TRAP",   "ABRT",   "IOT",   "BUS",  "FPE",  "KILL", "USR1",
      "SEGV", "USR2", "PIPE", "ALRM", "TERM",   "STKFLT", "CHLD",  "CONT", "STOP", "TSTP", "TTIN",
      "TTOU", "URG",  "XCPU", "XFSZ", "VTALRM", "PROF",   "WINCH", "IO",   "PWR",  "SYS"};
  auto bad = [&] { return invalidArgument(fmt::format("invalid signal '{}'", text)); };
  if (allDigits(text)) {
    auto n = parseUint32(text);
    if (!n || *n < 1 || *n > 64) return bad();
    return Status::ok();
  }
  std::string name = upper(text);
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  for (auto known : kNames) {
    if (name == known || (known == "CHLD" && name == "CLD") || (known == "IO" && name == "POLL")) {
      return Status::ok();
    }
  }
  for (std::string_view rt : {std::string_view("RTMIN"), std::string_view("RTMAX")}) {
    if (name.rfind(rt, 0) != 0) continue;
    std::string_view rest = std::string_view(name).substr(rt.size());
    if (rest.empty()) return Status::ok();
    char sign = rest[0];
    auto n = parseUint32(rest.substr(1));
    if (((rt == "RTMIN" && sign == '+') || (rt == "RTMAX" && sign == '-')) && n && *n <= 30) {
      return Status::ok();
    }
  }
  return bad();
}

Result<std::int64_t> parseDuration(std::string_view text) {
  auto bad = [&] { return invalidArgument(fmt::format("invalid duration '{}'", text)); };
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::int64_t{0};
  if (s.empty()) return bad();
  long double total = 0;
  while (!s.empty()) {
    std::size_t i = 0;
    long double value = 0;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      value = value * 10 + (s[i++] - '0');
      digits = true;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i++] - '0') * scale;
        scale /= 10;
        digits = true;
      }
    }
    if (!digits) return bad();
    std::size_t u = i;
    while (u < s.size() && !(s[u] >= '0' && s[u] <= '9') && s[u] != '.') ++u;
    std::string_view unit = s.substr(i, u - i);
    long double ns = 0;
    if (unit == "ns") {
      ns = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      ns = 1e3L;
    } else if (unit == "ms") {
      ns = 1e6L;
    } else if (unit == "s") {
      ns = 1e9L;
    } else if (unit == "m") {
      ns = 60e9L;
    } else if (unit == "h") {
      ns = 3600e9L;
    } else {
      return unit.empty()
                 ? invalidArgument(fmt::format("missing unit in duration '{}'", text))
                 : invalidArgument(fmt::format("unknown unit '{}' in duration '{}'", unit, text));
    }
    total += value * ns;
    if (total > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) {
      return invalidArgument(fmt::format("duration '{}' is too large", text));
    }
    s.remove_prefix(u);
  }
  auto ns = static_cast<std::int64_t>(std::llroundl(total));
  return negative ? -ns : ns;
}

Result<std::uint64_t> parseByteSize(std::string_view text) {
  auto bad = [&] { return invalidArgument(fmt::format("invalid size '{}'", text)); };
  std::size_t i = 0;
  long double value = 0;
  bool digits = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + (text[i++] - '0');
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value += (text[i++] - '0') * scale;
      scale /= 10;
      digits = true;
    }
  }
  if (!digits) return bad();
  std::string unit = lower(text.substr(i));
  if (unit.size() == 3 && unit.substr(1) == "ib") unit = unit.substr(0, 1);
  if (unit.size() == 2 && unit[1] == 'b') unit = unit.substr(0, 1);
  static constexpr std::string_view kUnits = "bkmgtp";
  long double multiplier = 1;
  if (!unit.empty()) {
    auto idx = unit.size() == 1 ? kUnits.find(unit[0]) : std::string_view::npos;
    if (idx == std::string_view::npos) return bad();
    for (std::size_t k = 0; k < idx; ++k) multiplier *= 1024;
  }
  long double bytes = value * multiplier;
  if (bytes > static_cast<long double>(std::numeric_limits<std::int64_t>::max())) return bad();
  return static_cast<std::uint64_t>(bytes);
}

}  // namespace lf::dockerfile
