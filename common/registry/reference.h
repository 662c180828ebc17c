#pragma once

// Image references ("ubuntu", "ghcr.io/org/app:v1", "localhost:5000/x@sha256:...") parsed and
// normalised the way Docker does.
//
// Grammar (github.com/distribution/reference):
//   reference        := name [ ":" tag ] [ "@" digest ]
//   name             := [domain "/"] path-component ["/" path-component]*
//   domain           := domain-component ["." domain-component]* [":" port-number]
//   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//   path-component   := alpha-numeric [separator alpha-numeric]*
//   alpha-numeric    := /[a-z0-9]+/
//   separator        := /[_.]|__|[-]*/
//   tag              := /[\w][\w.-]{0,127}/
// Normalisation: the first component is a domain only if it contains "." or ":", is
// "localhost", or has an uppercase letter; otherwise the domain is docker.io. On docker.io a
// one-component path gets "library/". Without tag and digest the tag is "latest". Only sha256
// digests are supported (lf::Digest).

#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::registry {

inline constexpr std::string_view kDockerHubDomain = "docker.io";
// Where docker.io's API actually lives.
inline constexpr std::string_view kDockerHubRegistryHost = "registry-1.docker.io";

struct Reference {
  std::string domain;      // "docker.io", "localhost:5000", "ghcr.io"
  std::string repository;  // path: "library/ubuntu", "org/app"
  std::string tag;         // empty when the reference names only a digest
  std::optional<Digest> digest;

  // Parses and normalises. Errors name the part that is wrong: "invalid reference "X": tag
  // "..." must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}".
  static Result<Reference> parse(std::string_view text);

  // "docker.io/library/ubuntu:latest", "host/repo@sha256:..", "host/repo:tag@sha256:.."
  std::string toString() const;
  // "docker.io/library/ubuntu"
  std::string name() const { return domain + "/" + repository; }
  // The string the registry API takes for a manifest: the digest when there is one, else the tag.
  std::string manifestReference() const;
  // The host:port to talk to ("registry-1.docker.io" for docker.io).
  std::string registryHost() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// Validates a repository path on its own ("library/ubuntu"); errors name the bad component.
Status validateRepository(std::string_view repository);
// Validates a tag.
Status validateTag(std::string_view tag);

}  // namespace lf::registry
