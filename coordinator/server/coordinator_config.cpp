#include "coordinator/server/coordinator_config.h"

#include <algorithm>
#include <map>

#include "common/config/yaml_config.h"

namespace lf::coordinator {
namespace {

using config::ConfigProblems;
using config::FieldReader;
using config::readMap;
using config::Readers;

std::string trim(std::string text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  size_t end = text.find_last_not_of(" \t\r\n");
  return begin == std::string::npos ? std::string() : text.substr(begin, end - begin + 1);
}

// "host:port", "[v6]:port".
bool parseHostPort(const std::string& text, HostPort& out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  unsigned value = std::stoul(port);
  if (value > 65535) return false;
  out.host = host;
  out.port = static_cast<uint16_t>(value);
  return true;
}

FieldReader hostPort(HostPort& out, ConfigProblems& p) {
  return [&out, p = &p](const YAML::Node& n, const std::string& k) {
    std::string text;
    if (config::readScalar(n, k, text, *p) && !parseHostPort(text, out)) {
      p->add(n, k, "must be \"address:port\", got \"" + text + "\"");
    }
  };
}

// A compression name among `allowed` ("none", "gzip", "zstd": layer::compressionName).
FieldReader compression(layer::Compression& out, std::vector<layer::Compression> allowed,
                        ConfigProblems& p) {
  return [&out, allowed = std::move(allowed), p = &p](const YAML::Node& n, const std::string& k) {
    std::string text;
    if (!config::readScalar(n, k, text, *p)) return;
    std::string names;
    for (layer::Compression c : allowed) {
      if (layer::compressionName(c) == text) {
        out = c;
        return;
      }
      names += std::string(names.empty() ? "" : ", ") + std::string(layer::compressionName(c));
    }
    p->add(n, k, "must be one of " + names + ", got \"" + text + "\"");
  };
}

bool validToken(const std::string& token) {
  return !token.empty() && std::all_of(token.begin(), token.end(),
                                       [](char c) { return c > ' ' && c < 0x7f; });
}

// Reads `token` or `token_file` of one map into `out`.
void resolveToken(const YAML::Node& node, const std::string& key, const std::string& token,
                  const std::string& token_file, std::string& out, ConfigProblems& p) {
  if (!token.empty() && !token_file.empty()) {
    p.add(node, key, "give token or token_file, not both");
    return;
  }
  out = token;
  if (!token_file.empty()) {
    auto text = config::readTextFile(token_file);
    if (!text.isOk()) {
      p.add(node, key + ".token_file", text.status().message());
      return;
    }
    out = trim(*text);
  }
  if (!validToken(out)) {
    p.add(node, key, "token must be non-empty printable ASCII without spaces");
  }
}

FieldReader clientList(std::vector<ApiClient>& out, ConfigProblems& p) {
  return [&out, p = &p](const YAML::Node& n, const std::string& k) {
    if (!n.IsSequence()) {
      p->add(n, k, "must be a list of {token|token_file, tenant, namespaces, admin}");
      return;
    }
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string name = k + "[" + std::to_string(i) + "]";
      ApiClient client;
      std::string token, token_file;
      std::map<std::string, YAML::Node> seen;
      Readers r(*p, seen);
      readMap(n[i], name,
              {{"token", r.str(token)},
               {"token_file", r.str(token_file)},
               {"tenant", r.str(client.tenant)},
               {"namespaces", r.stringList(client.namespaces)},
               {"admin", r.boolean(client.admin)}},
              *p);
      resolveToken(n[i], name, token, token_file, client.token, *p);
      if (client.tenant.empty()) p->add(n[i], name + ".tenant", "required");
      out.push_back(std::move(client));
    }
  };
}

void validate(CoordinatorConfig& c, const std::map<std::string, YAML::Node>& seen,
              const std::string& worker_token_file, ConfigProblems& p) {
  auto node = [&](const char* key) {
    auto it = seen.find(key);
    return it == seen.end() ? YAML::Node() : it->second;
  };
  if (c.data_dir.empty()) p.addPlain("data_dir: required (the coordinator's state directory)");
  if (c.blob_dir.empty()) {
    p.addPlain("blob_store.directory: required (the blob store shared with the workers)");
  }
  if (!worker_token_file.empty()) {
    auto text = config::readTextFile(worker_token_file);
    if (!text.isOk()) {
      p.add(node("worker_token_file"), "worker_token_file", text.status().message());
    } else {
      c.worker_tokens.push_back(trim(*text));
    }
  }
  for (const auto& token : c.worker_tokens) {
    if (!validToken(token)) {
      p.addPlain("worker_tokens: tokens must be non-empty printable ASCII without spaces");
    }
  }
  std::map<std::string, int> tokens;
  for (const auto& client : c.clients) {
    if (++tokens[client.token] == 2) p.addPlain("clients: two clients share one token");
  }
}

}  // namespace

std::string HostPort::toString() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

Result<CoordinatorConfig> parseCoordinatorConfig(std::string_view yaml, std::string_view source) {
  CoordinatorConfig c;
  std::map<std::string, YAML::Node> seen;
  std::string worker_token_file;
  LF_RETURN_IF_ERROR(config::parseYamlConfig(yaml, source, [&](const YAML::Node& root,
                                                              ConfigProblems& p) {
    Readers r(p, seen);
    std::map<std::string, FieldReader> readers = {
        {"listen", hostPort(c.listen, p)},
        {"worker_listen", hostPort(c.worker_listen, p)},
        {"data_dir", r.absolutePath(c.data_dir)},
        {"blob_store", r.nested({{"directory", r.absolutePath(c.blob_dir)}})},
        {"platform", r.str(c.platform)},
        {"worker_tokens", r.stringList(c.worker_tokens)},
        {"worker_token_file", r.str(worker_token_file)},
        {"clients", clientList(c.clients, p)},
        {"registry", r.nested({{"insecure", r.stringList(c.insecure_registries)},
                               {"docker_config", r.absolutePath(c.docker_config)}})},
        {"scheduler", r.nested({{"lease_ms", r.integer(c.lease_ms, 100, 86'400'000)},
                                {"heartbeat_timeout_ms",
                                 r.integer(c.heartbeat_timeout_ms, 100, 86'400'000)},
                                {"max_attempts", r.integer(c.max_attempts, 1, 100)}})},
        {"heartbeat_interval_ms", r.integer(c.heartbeat_interval_ms, 50, 600'000)},
        {"builds", r.nested({{"max_concurrent", r.integer(c.max_concurrent_builds, 1, 100'000)},
                             {"resolution_ttl_ms",
                              r.integer(c.resolution_ttl_ms, 0, 86'400'000)}})},
        {"resume_builds", r.boolean(c.resume_builds)},
        {"max_context_bytes", r.integer(c.max_context_bytes, 1, config::kMaxI64)},
        {"layer_compression",
         compression(c.layer_compression,
                     {layer::Compression::kNone, layer::Compression::kGzip,
                      layer::Compression::kZstd},
                     p)},
        {"push_compression",
         compression(c.push_compression, {layer::Compression::kGzip, layer::Compression::kZstd},
                     p)},
    };
    readMap(root, "", readers, p);
    validate(c, seen, worker_token_file, p);
  }));
  return c;
}

Result<CoordinatorConfig> loadCoordinatorConfig(const std::filesystem::path& path) {
  auto text = config::readTextFile(path);
  if (!text.isOk()) {
    return text.status().withContext("config");
  }
  return parseCoordinatorConfig(*text, path.string());
}

}  // namespace lf::coordinator
