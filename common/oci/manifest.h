#pragma once

// Manifest and Index: the OCI image manifest and image index (image-spec manifest.md,
// image-index.md), also reading Docker's manifest v2 schema 2 and manifest list, which have the
// same shape. Same contract as ImageConfig: canonical toJson(), validating fromJson() for
// untrusted input with errors naming the field ("manifest.layers[2].digest: ...").

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/oci/descriptor.h"

namespace lf::oci {

// Registries refuse manifests over 4 MiB; so do we.
inline constexpr size_t kMaxManifestBytes = 4u << 20;

struct Manifest {
  int schema_version = 2;
  std::string media_type;  // kOciManifest or kDockerManifest; empty only when read so
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  std::string toJson() const;
  // Rejects: schemaVersion other than 2, a mediaType that is not a manifest's (an index is named
  // as such), a missing config or layers, any malformed descriptor.
  static Result<Manifest> fromJson(std::string_view text, std::string_view what = "manifest");

  friend bool operator==(const Manifest&, const Manifest&) = default;
};

struct Index {
  int schema_version = 2;
  std::string media_type;  // kOciIndex or kDockerManifestList
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  std::string toJson() const;
  static Result<Index> fromJson(std::string_view text, std::string_view what = "index");

  friend bool operator==(const Index&, const Index&) = default;
};

}  // namespace lf::oci
