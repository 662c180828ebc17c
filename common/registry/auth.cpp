#include "common/registry/auth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace lf::registry {
namespace {

std::string toLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void skipSpace(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

// Parses `key=value` or `key="quoted"` at i. Returns false (without consuming) if what follows
// is not an auth-param (then it is the next challenge's scheme).
Result<bool> parseParam(std::string_view s, size_t& i, Challenge& ch) {
  size_t start = i;
  while (i < s.size() && isTokenChar(s[i])) ++i;
  std::string key = toLower(s.substr(start, i - start));
  size_t after_key = i;
  skipSpace(s, i);
  if (key.empty() || i >= s.size() || s[i] != '=') {
    i = start;
    return false;
  }
  (void)after_key;
  ++i;
  skipSpace(s, i);
  std::string value;
  if (i < s.size() && s[i] == '"') {
    ++i;
    while (true) {
      if (i >= s.size()) {
        return invalidArgument(
            fmt::format("WWW-Authenticate: unterminated quoted value for {}", key));
      }
      if (s[i] == '"') {
        ++i;
        break;
      }
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      value += s[i++];
    }
  } else {
    size_t vstart = i;
    while (i < s.size() && (isTokenChar(s[i]) || s[i] == '/')) ++i;
    value = std::string(s.substr(vstart, i - vstart));
  }
  ch.params[key] = value;
  return true;
}

}  // namespace

Result<std::vector<Challenge>> parseChallenges(std::string_view s) {
  std::vector<Challenge> out;
  size_t i = 0;
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) ++i;
    if (i >= s.size()) break;
    size_t start = i;
    while (i < s.size() && isTokenChar(s[i])) ++i;
    if (i == start) {
      return invalidArgument(
          fmt::format("WWW-Authenticate: expected an auth scheme at offset {}", i));
    }
    Challenge ch;
    ch.scheme = toLower(s.substr(start, i - start));
    skipSpace(s, i);
    // token68 form (`Basic abc==`) is not used by registries; params are `k=v` separated by ','.
    while (i < s.size()) {
      LF_ASSIGN_OR_RETURN(bool got, parseParam(s, i, ch));
      if (!got) break;
      skipSpace(s, i);
      if (i < s.size() && s[i] == ',') {
        ++i;
        skipSpace(s, i);
      } else {
        break;
      }
    }
    if (i < s.size() && s[i] != ',' && !isTokenChar(s[i])) {
      return invalidArgument(
          fmt::format("WWW-Authenticate: unexpected \"{}\" at offset {}", s[i], i));
    }
    out.push_back(std::move(ch));
  }
  if (out.empty()) {
    return invalidArgument("WWW-Authenticate: no challenge");
  }
  return out;
}

std::string CredentialStore::normaliseHost(std::string_view host) {
  if (size_t p = host.find("://"); p != std::string_view::npos) host = host.substr(p + 3);
  if (size_t p = host.find('/'); p != std::string_view::npos) host = host.substr(0, p);
  std::string h = toLower(host);
  if (h == "index.docker.io" || h == "registry-1.docker.io" || h == "registry.hub.docker.com") {
    return "docker.io";
  }
  return h;
}

void CredentialStore::add(std::string_view host, Credentials credentials) {
  by_host_.emplace(normaliseHost(host), std::move(credentials));
}

std::optional<Credentials> CredentialStore::lookup(std::string_view host) const {
  auto it = by_host_.find(normaliseHost(host));
  if (it == by_host_.end()) return std::nullopt;
  return it->second;
}

Status CredentialStore::loadDockerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return notFound(fmt::format("{}: cannot open", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return loadDockerConfigJson(ss.str(), path);
}

Status CredentialStore::loadDockerConfigJson(std::string_view json, std::string_view source) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return invalidArgument(fmt::format("{}: not a JSON object", source));
  }
  auto auths = doc.find("auths");
  if (auths == doc.end()) return Status::ok();
  if (!auths->is_object()) {
    return invalidArgument(fmt::format("{}: \"auths\" must be an object", source));
  }
  for (const auto& item : auths->items()) {
    // Not a structured binding: clang 14 cannot capture those in the lambda below.
    const std::string& host = item.key();
    const nlohmann::json& entry = item.value();
    if (!entry.is_object()) {
      return invalidArgument(fmt::format("{}: auths[\"{}\"] must be an object", source, host));
    }
    Credentials c;
    auto str = [&](const char* key) -> std::string {
      auto it = entry.find(key);
      return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    c.username = str("username");
    c.password = str("password");
    c.identity_token = str("identitytoken");
    if (std::string auth = str("auth"); !auth.empty()) {
      auto decoded = base64Decode(auth);
      size_t colon = decoded.isOk() ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        return invalidArgument(fmt::format(
            "{}: auths[\"{}\"].auth must be base64 of \"user:password\"", source, host));
      }
      c.username = decoded->substr(0, colon);
      c.password = decoded->substr(colon + 1);
    }
    if (!c.empty()) add(host, std::move(c));
  }
  return Status::ok();
}

Result<BearerToken> parseTokenResponse(std::string_view json,
                                       std::chrono::steady_clock::time_point now) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return invalidArgument("token response is not a JSON object");
  }
  BearerToken t;
  for (const char* key : {"token", "access_token"}) {
    auto it = doc.find(key);
    if (it != doc.end() && it->is_string() && !it->get<std::string>().empty()) {
      t.token = it->get<std::string>();
      break;
    }
  }
  if (t.token.empty()) {
    return invalidArgument("token response has no \"token\" or \"access_token\" string");
  }
  for (char c : t.token) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
      return invalidArgument("token contains characters not allowed in a header");
    }
  }
  int64_t expires_in = 60;
  if (auto it = doc.find("expires_in"); it != doc.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
      return invalidArgument("token response: \"expires_in\" must be a positive integer");
    }
    expires_in = std::min<int64_t>(it->get<int64_t>(), 24 * 3600);
  }
  t.expires = now + std::chrono::seconds(expires_in);
  return t;
}

std::string summariseErrorBody(std::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::string out;
  if (!doc.is_discarded() && doc.is_object()) {
    auto errors = doc.find("errors");
    if (errors != doc.end() && errors->is_array()) {
      for (const auto& e : *errors) {
        if (!e.is_object()) continue;
        std::string code =
            e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
        std::string msg = e.contains("message") && e["message"].is_string()
                              ? e["message"].get<std::string>()
                              : "";
        if (!out.empty()) out += "; ";
        out += code.empty() ? msg : (msg.empty() ? code : code + ": " + msg);
      }
    }
  }
  if (out.empty()) {
    out = std::string(body.substr(0, 200));
    std::replace_if(
        out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  }
  if (out.size() > 300) out = out.substr(0, 300) + "...";
  return out;
}

std::string base64Encode(std::string_view data) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kTable[(v >> s) & 63];
  }
  if (size_t rest = data.size() - i; rest > 0) {
    uint32_t v = uint8_t(data[i]) << 16;
    if (rest == 2) v |= uint8_t(data[i + 1]) << 8;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += rest == 2 ? kTable[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64Decode(std::string_view data) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : data) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+' || c == '-')
      v = 62;
    else if (c == '/' || c == '_')
      v = 63;
    else if (c == '=') {
      ++pad;
      continue;
    } else
      return invalidArgument("invalid base64 character");
    if (pad > 0) return invalidArgument("base64 data after padding");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (pad > 2) return invalidArgument("invalid base64 padding");
  return out;
}

}  // namespace lf::registry
