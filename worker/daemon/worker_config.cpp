#include "worker/daemon/worker_config.h"

#include "common/config/yaml_config.h"

#include <unistd.h>

#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

namespace lf::worker {
namespace {

using config::FieldReader;
using config::kMaxI64;
using config::kMaxU32;
using config::kMaxU64;
using config::readMap;
using config::readScalar;
using config::Readers;
using Problems = config::ConfigProblems;

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
  WorkerConfig config;
  std::map<std::string, YAML::Node> seen;
  LF_RETURN_IF_ERROR(config::parseYamlConfig(yaml, source, [&](const YAML::Node& root, Problems& p) {
    readMap(root, "", topLevelReaders(config, Readers(p, seen)), p);
    validate(config, seen, p);
  }));
  return config;
}

Result<WorkerConfig> loadWorkerConfig(const std::filesystem::path& path) {
  auto text = config::readTextFile(path);
  if (!text.isOk()) {
    return text.status().withContext("config");
  }
  return parseWorkerConfig(*text, path.string());
}

}  // namespace lf::worker
