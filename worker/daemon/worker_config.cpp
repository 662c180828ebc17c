#include "worker/daemon/worker_config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

namespace lf::worker {
namespace {

// Collects every problem of one file; yaml-cpp throws, so all its calls stay in this file.
class Problems {
 public:
  explicit Problems(std::string_view source) : source_(source) {}
  void add(const YAML::Node& node, std::string_view key, std::string_view what) {
    std::string where = source_;
    if (node.IsDefined() && node.Mark().line >= 0) {
      where += ":" + std::to_string(node.Mark().line + 1);
    }
    lines_.push_back(where + ": " + std::string(key) + ": " + std::string(what));
  }
  void addPlain(std::string text) { lines_.push_back(source_ + ": " + std::move(text)); }
  bool empty() const { return lines_.empty(); }
  Status status() const {
    std::string message;
    for (const auto& line : lines_) {
      message += (message.empty() ? "" : "\n") + line;
    }
    return invalidArgument(message);
  }

 private:
  std::string source_;
  std::vector<std::string> lines_;
};

bool readScalar(const YAML::Node& node, std::string_view key, std::string& out, Problems& p) {
  if (!node.IsScalar()) {
    p.add(node, key, "must be a string");
    return false;
  }
  out = node.Scalar();
  return true;
}

template <typename T>
void readInt(const YAML::Node& node, std::string_view key, T& out, int64_t min, uint64_t max,
             Problems& p) {
  std::string text;
  if (!readScalar(node, key, text, p)) {
    return;
  }
  try {
    size_t used = 0;
    bool negative = !text.empty() && text[0] == '-';
    if (negative) {
      long long v = std::stoll(text, &used, 10);
      if (used != text.size()) throw std::invalid_argument("trailing");
      if (v < min) throw std::out_of_range("min");
      out = static_cast<T>(v);
      return;
    }
    unsigned long long v = std::stoull(text, &used, 10);
    if (used != text.size()) throw std::invalid_argument("trailing");
    if (v > max || static_cast<long double>(v) < static_cast<long double>(min)) {
      throw std::out_of_range("range");
    }
    out = static_cast<T>(v);
  } catch (const std::invalid_argument&) {
    p.add(node, key, "must be an integer, got \"" + text + "\"");
  } catch (const std::out_of_range&) {
    p.add(
        node, key,
        "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + text);
  }
}

void readBool(const YAML::Node& node, std::string_view key, bool& out, Problems& p) {
  std::string text;
  if (!readScalar(node, key, text, p)) {
    return;
  }
  if (text == "true" || text == "yes" || text == "on") {
    out = true;
  } else if (text == "false" || text == "no" || text == "off") {
    out = false;
  } else {
    p.add(node, key, "must be true or false, got \"" + text + "\"");
  }
}

constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kMaxI64 = std::numeric_limits<int64_t>::max();

using FieldReader = std::function<void(const YAML::Node&, const std::string&)>;

// Calls the reader of each key of `map`; unknown and repeated keys are problems.
void readMap(const YAML::Node& map, std::string_view name,
             const std::map<std::string, FieldReader>& readers, Problems& p) {
  if (!map.IsMap()) {
    p.add(map, name, "must be a map");
    return;
  }
  for (const auto& entry : map) {
    std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
    std::string full = name.empty() ? key : std::string(name) + "." + key;
    auto it = readers.find(key);
    if (it == readers.end()) {
      std::string known;
      for (const auto& [k, unused] : readers) {
        known += (known.empty() ? "" : ", ") + k;
      }
      p.add(entry.first, full, "unknown key (known: " + known + ")");
      continue;
    }
    it->second(entry.second, full);
  }
}

Status parseUrl(WorkerConfig& c) {
  constexpr std::string_view kScheme = "ws://";
  std::string_view url = c.coordinator_url;
  if (url.substr(0, kScheme.size()) != kScheme) {
    return invalidArgument("must start with ws:// (wss:// is not supported yet), got \"" +
                           c.coordinator_url + "\"");
  }
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  c.coordinator_path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  size_t colon = authority.rfind(':');
  std::string_view host = authority;
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    host = authority.substr(0, colon);
    std::string port(authority.substr(colon + 1));
    char* end = nullptr;
    unsigned long value = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || value == 0 || value > 65535) {
      return invalidArgument("bad port \"" + port + "\" in \"" + c.coordinator_url + "\"");
    }
    c.coordinator_port = static_cast<uint16_t>(value);
  }
  if (host.empty()) {
    return invalidArgument("no host in \"" + c.coordinator_url + "\"");
  }
  c.coordinator_host = std::string(host);
  return Status::ok();
}

bool validToken(const std::string& token) {
  if (token.empty()) {
    return false;
  }
  for (char ch : token) {
    if (ch <= ' ' || ch > '~') {
      return false;
    }
  }
  return true;
}

bool validWorkerId(const std::string& id) {
  if (id.empty() || id.size() > 128) {
    return false;
  }
  for (char ch : id) {
    bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string trim(std::string text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  size_t end = text.find_last_not_of(" \t\r\n");
  return begin == std::string::npos ? std::string() : text.substr(begin, end - begin + 1);
}

// Makes FieldReaders. They outlive the builder: each captures only what outlives it (the field,
// the problems, the map of nodes seen) and plain values.
class Readers {
 public:
  Readers(Problems& p, std::map<std::string, YAML::Node>& seen) : p_(p), seen_(seen) {}

  FieldReader str(std::string& out) const {
    return [p = &p_, seen = &seen_, &out](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      readScalar(n, k, out, *p);
    };
  }
  FieldReader absolutePath(std::filesystem::path& out) const {
    return [p = &p_, seen = &seen_, &out](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      std::string text;
      if (readScalar(n, k, text, *p)) {
        if (text.empty() || text[0] != '/') {
          p->add(n, k, "must be an absolute path, got \"" + text + "\"");
        }
        out = text;
      }
    };
  }
  template <typename T>
  FieldReader integer(T& out, int64_t min, uint64_t max) const {
    return [p = &p_, seen = &seen_, &out, min, max](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      readInt(n, k, out, min, max, *p);
    };
  }
  FieldReader boolean(bool& out) const {
    return [p = &p_, &out](const YAML::Node& n, const std::string& k) { readBool(n, k, out, *p); };
  }
  FieldReader labels(std::map<std::string, std::string>& out) const {
    return [p = &p_, &out](const YAML::Node& n, const std::string& k) {
      if (!n.IsMap()) {
        p->add(n, k, "must be a map of strings");
        return;
      }
      for (const auto& e : n) {
        std::string value;
        if (e.first.IsScalar() && readScalar(e.second, k + "." + e.first.Scalar(), value, *p)) {
          out[e.first.Scalar()] = value;
        }
      }
    };
  }
  // A nested map whose readers are made when it is read.
  FieldReader nested(std::map<std::string, FieldReader> sub) const {
    return [p = &p_, sub = std::move(sub)](const YAML::Node& n, const std::string& k) {
      readMap(n, k, sub, *p);
    };
  }

 private:
  Problems& p_;
  std::map<std::string, YAML::Node>& seen_;
};

std::map<std::string, FieldReader> topLevelReaders(WorkerConfig& c, const Readers& r) {
  WorkerLimitsConfig& limits = c.default_limits;
  return {
      {"coordinator", r.str(c.coordinator_url)},
      {"token", r.str(c.token)},
      {"token_file", r.str(c.token_file)},
      {"worker_id", r.str(c.worker_id)},
      {"slots", r.integer(c.slots, 1, 1024)},
      {"labels", r.labels(c.labels)},
      {"state_dir", r.absolutePath(c.state_dir)},
      {"blob_store", r.nested({{"directory", r.absolutePath(c.blob_dir)}})},
      {"layer_budget_bytes", r.integer(c.layer_budget_bytes, 0, kMaxU64)},
      {"allow_host_network", r.boolean(c.allow_host_network)},
      {"default_limits", r.nested({{"timeout_ms", r.integer(limits.timeout_ms, 0, kMaxI64)},
                                   {"memory_bytes", r.integer(limits.memory_bytes, 0, kMaxI64)},
                                   {"pids_max", r.integer(limits.pids_max, 0, kMaxI64)}})},
      {"cgroups", r.boolean(c.use_cgroups)},
      {"cgroup_parent", r.str(c.cgroup_parent)},
      {"heartbeat_interval_ms", r.integer(c.heartbeat_interval_ms, 100, 600000)},
      {"reconnect_backoff_min_ms", r.integer(c.reconnect_backoff_min_ms, 10, 3600000)},
      {"reconnect_backoff_max_ms", r.integer(c.reconnect_backoff_max_ms, 10, 3600000)},
      {"connect_timeout_ms", r.integer(c.connect_timeout_ms, 100, 3600000)},
      {"log_queue_bytes", r.integer(c.log_queue_bytes, 4096, kMaxI64)},
      {"log_block_ms", r.integer(c.log_block_ms, 0, kMaxU32)},
      {"drain_deliver_timeout_ms", r.integer(c.drain_deliver_timeout_ms, 0, kMaxU32)},
  };
}

void resolveToken(WorkerConfig& c, const std::map<std::string, YAML::Node>& seen, Problems& p) {
  auto node = [&](const std::string& key) {
    auto it = seen.find(key);
    return it == seen.end() ? YAML::Node() : it->second;
  };
  bool has_token = seen.count("token") != 0;
  bool has_file = seen.count("token_file") != 0;
  if (has_token == has_file) {
    p.addPlain(has_token ? "token and token_file: give one, not both"
                         : "token or token_file: required (the coordinator's bearer token)");
    return;
  }
  if (has_file) {
    std::ifstream in(c.token_file);
    if (!in) {
      p.add(node("token_file"), "token_file", "cannot read " + c.token_file);
      return;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    c.token = trim(buffer.str());
  }
  if (!validToken(c.token)) {
    p.add(node(has_file ? "token_file" : "token"), has_file ? "token_file" : "token",
          "the token must be non-empty printable ASCII without spaces");
  }
}

void validate(WorkerConfig& c, const std::map<std::string, YAML::Node>& seen, Problems& p) {
  auto node = [&](const std::string& key) {
    auto it = seen.find(key);
    return it == seen.end() ? YAML::Node() : it->second;
  };
  if (c.coordinator_url.empty()) {
    p.addPlain("coordinator: required (ws://host:port/path)");
  } else if (Status s = parseUrl(c); !s.isOk()) {
    p.add(node("coordinator"), "coordinator", s.message());
  }
  resolveToken(c, seen, p);
  if (c.worker_id.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) == 0) {
      c.worker_id = host;
    }
  }
  if (!validWorkerId(c.worker_id)) {
    p.add(node("worker_id"), "worker_id",
          "must be 1..128 characters of [A-Za-z0-9._-], got \"" + c.worker_id + "\"");
  }
  if (c.blob_dir.empty() && seen.count("blob_store.directory") == 0) {
    p.addPlain("blob_store.directory: required (the shared directory blob store)");
  }
  if (c.reconnect_backoff_min_ms > c.reconnect_backoff_max_ms) {
    p.add(node("reconnect_backoff_min_ms"), "reconnect_backoff_min_ms",
          "must not exceed reconnect_backoff_max_ms (" +
              std::to_string(c.reconnect_backoff_max_ms) + ")");
  }
  if (c.cgroup_parent.empty()) {
    c.cgroup_parent = "layerfarm/" + c.worker_id;
  } else if (c.cgroup_parent[0] == '/' || c.cgroup_parent.find("..") != std::string::npos) {
    p.add(node("cgroup_parent"), "cgroup_parent",
          "must be a relative path without \"..\", got \"" + c.cgroup_parent + "\"");
  }
}

}  // namespace

Result<WorkerConfig> parseWorkerConfig(std::string_view yaml, std::string_view source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return invalidArgument(std::string(source) + ":" + std::to_string(e.mark.line + 1) + ":" +
                           std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  WorkerConfig config;
  Problems problems(source);
  std::map<std::string, YAML::Node> seen;
  try {
    if (!root.IsMap()) {
      problems.addPlain("must be a YAML map of settings");
      return problems.status();
    }
    auto readers = topLevelReaders(config, Readers(problems, seen));
    readMap(root, "", readers, problems);
    validate(config, seen, problems);
  } catch (const YAML::Exception& e) {
    problems.addPlain(std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!problems.empty()) {
    return problems.status();
  }
  return config;
}

Result<WorkerConfig> loadWorkerConfig(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return errnoStatus(errno, "config " + path.string());
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parseWorkerConfig(buffer.str(), path.string());
}

}  // namespace lf::worker
