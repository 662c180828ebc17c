// Url and Headers from http_client.h: plain string handling, kept apart from the Beast code.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/registry/http_client.h"

namespace lf::registry {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

uint16_t defaultPort(std::string_view scheme) { return scheme == "https" ? 443 : 80; }

}  // namespace

Result<Url> Url::parse(std::string_view text) {
  Url url;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return invalidArgument(fmt::format("URL \"{}\" has no scheme", text));
  }
  std::string scheme(text.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "http" && scheme != "https") {
    return invalidArgument(fmt::format("URL \"{}\": scheme must be http or https", text));
  }
  url.scheme = scheme;
  std::string_view rest = text.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? "" : rest.substr(end);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority = authority.substr(at + 1);  // user info is never used
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return invalidArgument(fmt::format("URL \"{}\": unterminated IPv6 address", text));
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return invalidArgument(fmt::format("URL \"{}\": junk after IPv6 address", text));
      }
      port = after.substr(1);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    return invalidArgument(fmt::format("URL \"{}\" has no host", text));
  }
  bool bracketed = !authority.empty() && authority.front() == '[';
  for (char c : host) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
              (bracketed ? c == ':' : (c == '-' || c == '_' || c == '~'));
    if (!ok) {
      return invalidArgument(fmt::format("URL \"{}\": invalid character in host", text));
    }
  }
  url.host = std::string(host);
  url.port = defaultPort(url.scheme);
  if (!port.empty()) {
    unsigned value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || value > 65535) {
        return invalidArgument(fmt::format("URL \"{}\": bad port \"{}\"", text, port));
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
      return invalidArgument(fmt::format("URL \"{}\": bad port \"{}\"", text, port));
    }
    url.port = static_cast<uint16_t>(value);
  }
  if (size_t hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
  }
  url.target = target.empty() ? "/" : std::string(target);
  if (url.target.front() == '?') {
    url.target.insert(0, "/");
  }
  return url;
}

Result<Url> Url::resolve(std::string_view location) const {
  if (location.empty()) {
    return invalidArgument("empty Location");
  }
  if (location.find("://") != std::string_view::npos) {
    return Url::parse(location);
  }
  if (location.size() >= 2 && location.substr(0, 2) == "//") {
    return Url::parse(scheme + ":" + std::string(location));
  }
  Url out = *this;
  if (location.front() == '/') {
    out.target = std::string(location);
    return out;
  }
  std::string base = target.substr(0, target.find('?'));
  base = base.substr(0, base.rfind('/') + 1);
  out.target = base + std::string(location);
  return out;
}

std::string Url::origin() const {
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}:{}", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port);
}

std::string Url::hostHeader() const {
  bool v6 = host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + host + "]" : host;
  if (port != defaultPort(scheme)) {
    h += ":" + std::to_string(port);
  }
  return h;
}

std::string Url::toString() const { return scheme + "://" + hostHeader() + target; }

void Headers::add(std::string name, std::string value) {
  entries_.emplace_back(std::move(name), std::move(value));
}

void Headers::set(std::string name, std::string value) {
  remove(name);
  add(std::move(name), std::move(value));
}

void Headers::remove(std::string_view name) {
  std::erase_if(entries_, [&](const auto& e) { return iequals(e.first, name); });
}

std::optional<std::string> Headers::get(std::string_view name) const {
  for (const auto& [n, v] : entries_) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> Headers::getAll(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : entries_) {
    if (iequals(n, name)) out.push_back(v);
  }
  return out;
}

std::string urlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace lf::registry
