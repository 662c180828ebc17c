#include "common/registry/reference.h"

#include <fmt/format.h>

#include <vector>

namespace lf::registry {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool isAlnum(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool isWord(char c) { return isAlnum(c) || c == '_'; }
bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) {
      return parts;
    }
    start = pos + 1;
  }
}

// path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
Status validatePathComponent(std::string_view c) {
  if (c.empty()) {
    return invalidArgument("empty path component (\"//\", or a leading or trailing \"/\")");
  }
  for (char ch : c) {
    if (ch >= 'A' && ch <= 'Z') {
      return invalidArgument(fmt::format("path component \"{}\" must be lowercase", c));
    }
  }
  size_t i = 0;
  while (i < c.size()) {
    if (!isLowerAlnum(c[i])) {
      return invalidArgument(fmt::format(
          "path component \"{}\": unexpected \"{}\" at offset {} (components are [a-z0-9] "
          "separated by \".\", \"_\", \"__\" or dashes)",
          c, c[i], i));
    }
    while (i < c.size() && isLowerAlnum(c[i])) ++i;
    if (i == c.size()) break;
    size_t sep_start = i;
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return invalidArgument(
          fmt::format("path component \"{}\": invalid character \"{}\"", c, c[i]));
    }
    if (i == c.size() || !isLowerAlnum(c[i])) {
      return invalidArgument(
          fmt::format("path component \"{}\": separator \"{}\" must be followed by [a-z0-9]", c,
                      c.substr(sep_start, i - sep_start)));
    }
  }
  return Status::ok();
}

Status validateDomain(std::string_view domain) {
  std::string_view host = domain;
  size_t colon = domain.rfind(':');
  if (colon != std::string_view::npos) {
    host = domain.substr(0, colon);
    std::string_view port = domain.substr(colon + 1);
    if (port.empty() || port.size() > 5) {
      return invalidArgument(fmt::format("domain \"{}\": port must be 1-5 digits", domain));
    }
    for (char ch : port) {
      if (ch < '0' || ch > '9') {
        return invalidArgument(
            fmt::format("domain \"{}\": port \"{}\" is not a number", domain, port));
      }
    }
  }
  for (std::string_view comp : split(host, '.')) {
    bool ok = !comp.empty() && isAlnum(comp.front()) && isAlnum(comp.back());
    for (char ch : comp) ok = ok && (isAlnum(ch) || ch == '-');
    if (!ok) {
      return invalidArgument(
          fmt::format("domain \"{}\": component \"{}\" must be letters, digits and inner dashes",
                      domain, comp));
    }
  }
  return Status::ok();
}

Result<Digest> parseDigest(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return invalidArgument(fmt::format("digest \"{}\" must be ALGORITHM:HEX", text));
  }
  std::string_view algorithm = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  if (algorithm != "sha256") {
    return invalidArgument(
        fmt::format("digest \"{}\": unsupported algorithm \"{}\" (only sha256)", text, algorithm));
  }
  bool hex_ok = hex.size() == 64;
  for (char ch : hex) hex_ok = hex_ok && isHex(ch);
  if (!hex_ok) {
    return invalidArgument(fmt::format("digest \"{}\": sha256 needs 64 hex characters", text));
  }
  auto digest = Digest::parse(text);
  if (!digest.isOk()) {
    return invalidArgument(fmt::format("digest \"{}\": hex must be lowercase", text));
  }
  return digest;
}

bool isAllHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char ch : s) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

}  // namespace

Status validateRepository(std::string_view repository) {
  if (repository.empty()) {
    return invalidArgument("repository name is empty");
  }
  for (std::string_view comp : split(repository, '/')) {
    LF_RETURN_IF_ERROR(validatePathComponent(comp));
  }
  return Status::ok();
}

Status validateTag(std::string_view tag) {
  bool ok = !tag.empty() && tag.size() <= kMaxTagLength && isWord(tag.front());
  for (char ch : tag) ok = ok && (isWord(ch) || ch == '.' || ch == '-');
  if (!ok) {
    return invalidArgument(
        fmt::format("tag \"{}\" must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}", tag));
  }
  return Status::ok();
}

namespace {

Result<Reference> parseImpl(std::string_view text) {
  if (text.empty()) {
    return invalidArgument("reference is empty");
  }
  Reference ref;
  std::string_view rest = text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    LF_ASSIGN_OR_RETURN(ref.digest, parseDigest(rest.substr(at + 1)));
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t tag_colon = rest.rfind(':');
  if (tag_colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || tag_colon > last_slash)) {
    std::string_view tag = rest.substr(tag_colon + 1);
    LF_RETURN_IF_ERROR(validateTag(tag));
    ref.tag = std::string(tag);
    rest = rest.substr(0, tag_colon);
  }
  if (rest.empty()) {
    return invalidArgument("repository name is empty");
  }
  if (rest.size() > kMaxNameLength) {
    return invalidArgument(
        fmt::format("name is {} characters, longer than {}", rest.size(), kMaxNameLength));
  }
  size_t slash = rest.find('/');
  std::string_view first = rest.substr(0, slash);
  bool has_upper = false;
  for (char ch : first) has_upper = has_upper || (ch >= 'A' && ch <= 'Z');
  bool is_domain =
      slash != std::string_view::npos &&
      (first.find_first_of(".:") != std::string_view::npos || first == "localhost" || has_upper);
  std::string_view path = rest;
  if (is_domain) {
    LF_RETURN_IF_ERROR(validateDomain(first));
    ref.domain = std::string(first);
    path = rest.substr(slash + 1);
  } else {
    ref.domain = std::string(kDockerHubDomain);
  }
  if (ref.domain == "index.docker.io") {
    ref.domain = std::string(kDockerHubDomain);
  }
  if (isAllHex64(rest)) {
    return invalidArgument("a 64-character hexadecimal string is an image ID, not a name");
  }
  LF_RETURN_IF_ERROR(validateRepository(path));
  ref.repository = std::string(path);
  if (ref.domain == kDockerHubDomain && path.find('/') == std::string_view::npos) {
    ref.repository = "library/" + ref.repository;
  }
  if (ref.name().size() > kMaxNameLength) {
    return invalidArgument(fmt::format("name \"{}\" is {} characters, longer than {}", ref.name(),
                                       ref.name().size(), kMaxNameLength));
  }
  if (ref.tag.empty() && !ref.digest) {
    ref.tag = "latest";
  }
  return ref;
}

}  // namespace

Result<Reference> Reference::parse(std::string_view text) {
  auto ref = parseImpl(text);
  if (!ref.isOk()) {
    return ref.status().withContext(fmt::format("invalid reference \"{}\"", text));
  }
  return ref;
}

std::string Reference::toString() const {
  std::string out = name();
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + digest->toString();
  return out;
}

std::string Reference::manifestReference() const { return digest ? digest->toString() : tag; }

std::string Reference::registryHost() const {
  return domain == kDockerHubDomain ? std::string(kDockerHubRegistryHost) : domain;
}

}  // namespace lf::registry
