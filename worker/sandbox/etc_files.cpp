#include "worker/sandbox/etc_files.h"

#include <arpa/inet.h>

namespace lf::worker::sandbox {
namespace {

bool isIpAddress(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool isHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string_view trimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool isLoopbackNameserver(std::string_view line) {
  line = trimSpace(line);
  constexpr std::string_view kKey = "nameserver";
  if (line.substr(0, kKey.size()) != kKey) {
    return false;
  }
  std::string_view addr = trimSpace(line.substr(kKey.size()));
  size_t end = addr.find_first_of(" \t#");
  addr = addr.substr(0, end);
  return addr.substr(0, 4) == "127." || addr == "::1" || addr == "0:0:0:0:0:0:0:1";
}

bool isNameserver(std::string_view line) {
  line = trimSpace(line);
  return line.substr(0, 10) == "nameserver" && line.size() > 10 &&
         (line[10] == ' ' || line[10] == '\t');
}

}  // namespace

Result<std::string> makeHostsFile(std::string_view hostname,
                                  const std::vector<std::string>& extra_hosts) {
  std::string out = "127.0.0.1\tlocalhost";
  if (!hostname.empty() && hostname != "localhost") {
    out += ' ';
    out += hostname;
  }
  out +=
      "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "ff00::0\tip6-mcastprefix\n"
      "ff02::1\tip6-allnodes\n"
      "ff02::2\tip6-allrouters\n";
  for (const std::string& entry : extra_hosts) {
    size_t colon = entry.find(':');
    if (colon == std::string::npos) {
      return invalidArgument("add-host \"" + entry + "\": want name:ip");
    }
    std::string name = entry.substr(0, colon);
    std::string ip = entry.substr(colon + 1);
    if (!isHostName(name)) {
      return invalidArgument("add-host \"" + entry + "\": invalid host name \"" + name + "\"");
    }
    if (!isIpAddress(ip)) {
      return invalidArgument("add-host \"" + entry + "\": invalid IP address \"" + ip + "\"");
    }
    out += ip + "\t" + name + "\n";
  }
  return out;
}

std::string makeResolvConf(std::string_view host_content, bool host_network) {
  if (host_network) {
    return std::string(host_content);
  }
  std::string out;
  bool has_nameserver = false;
  while (!host_content.empty()) {
    size_t end = host_content.find('\n');
    std::string_view line = host_content.substr(0, end);
    host_content =
        end == std::string_view::npos ? std::string_view() : host_content.substr(end + 1);
    if (isLoopbackNameserver(line)) {
      continue;
    }
    has_nameserver = has_nameserver || isNameserver(line);
    out.append(line);
    out += '\n';
  }
  if (!has_nameserver) {
    out += "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";
  }
  return out;
}

}  // namespace lf::worker::sandbox
