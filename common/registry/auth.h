#pragma once

// Registry authentication pieces: WWW-Authenticate challenges, credentials (the farm's config and
// ~/.docker/config.json-style files), and Bearer token responses.
//
// The flow itself (401 -> challenge -> token from the realm -> retry, tokens cached per scope
// until expiry) lives in RegistryClient; everything here is pure parsing, so it can be fuzzed.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::registry {

// One challenge of a WWW-Authenticate header: `Bearer realm="https://auth",service="reg"`.
struct Challenge {
  std::string scheme;                         // lowercase: "basic", "bearer"
  std::map<std::string, std::string> params;  // keys lowercase
};

// Parses a WWW-Authenticate value (RFC 7235: one or more challenges, auth-params with quoted or
// token values). Errors name the offset of the problem.
Result<std::vector<Challenge>> parseChallenges(std::string_view header);

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // an OAuth refresh token (docker login with a token)
  bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
};

// Credentials by registry host. Keys are normalised: scheme and path are dropped and Docker
// Hub's aliases (index.docker.io, registry-1.docker.io, https://index.docker.io/v1/) all map to
// "docker.io".
class CredentialStore {
 public:
  void add(std::string_view host, Credentials credentials);
  // Adds the "auths" of a Docker config.json: {"auths": {"host": {"auth": base64("user:pass")}}}
  // (also "username"/"password" and "identitytoken" fields). Entries already present win, so
  // load the farm's own configuration first. Errors name the file and the entry.
  Status loadDockerConfig(const std::string& path);
  Status loadDockerConfigJson(std::string_view json, std::string_view source_name);
  std::optional<Credentials> lookup(std::string_view host) const;

  static std::string normaliseHost(std::string_view host);

 private:
  std::map<std::string, Credentials> by_host_;
};

struct BearerToken {
  std::string token;
  std::chrono::steady_clock::time_point expires;
};

// Parses a token server's answer {"token"|"access_token": "...", "expires_in": N}. Without
// expires_in a token lives 60 s (the distribution token spec's default).
Result<BearerToken> parseTokenResponse(std::string_view json,
                                       std::chrono::steady_clock::time_point now);

// Registry error bodies: {"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}, summarised
// as "MANIFEST_UNKNOWN: manifest unknown". Returns the trimmed raw text (bounded) otherwise.
std::string summariseErrorBody(std::string_view body);

std::string base64Encode(std::string_view data);
Result<std::string> base64Decode(std::string_view data);

}  // namespace lf::registry
