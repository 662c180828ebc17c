#pragma once

// Descriptor and Platform: how OCI documents point at blobs (image-spec descriptor.md,
// image-index.md). Plain values; toJson()/fromJson() convert to and from the JSON objects other
// documents embed (common/oci/json_fields.h carries the shared rules: unknown fields ignored,
// errors name the field path, canonical output).

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::oci {

struct Platform {
  std::string architecture;  // "amd64", "arm64"
  std::string os;            // "linux"
  std::string os_version;
  std::vector<std::string> os_features;
  std::string variant;  // "v8"

  // "linux/arm64/v8"
  std::string toString() const;
  // Parses "os/arch[/variant]" as given on the command line (--platform linux/amd64).
  static Result<Platform> parse(std::string_view text);

  nlohmann::json toJson() const;
  static Result<Platform> fromJson(const nlohmann::json& value, const std::string& path);

  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::string artifact_type;

  nlohmann::json toJson() const;
  // Validates: mediaType well formed, digest "sha256:<64 hex>", size a non-negative integer
  // below 2^63. Errors are prefixed with `path` ("manifest.layers[2]").
  static Result<Descriptor> fromJson(const nlohmann::json& value, const std::string& path);

  friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

// Annotation keys layerfarm reads and writes.
inline constexpr std::string_view kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kAnnotationCreated = "org.opencontainers.image.created";

}  // namespace lf::oci
