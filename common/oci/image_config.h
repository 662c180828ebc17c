#pragma once

// ImageConfig: the image configuration document (OCI image-spec config.md; Docker's image JSON
// is the same shape). What a runtime needs to start a container (config.*), the layer diff IDs
// (rootfs.diff_ids) and the build history.
//
// toJson() is canonical (sorted keys, no whitespace, empty fields omitted), so serialising the
// same value twice gives identical bytes and the config digest is stable. fromJson() is for
// untrusted input (registries, tarballs): bounded size, every field type-checked, errors name
// the field ("config.rootfs.diff_ids[1]: invalid digest ..."); unknown fields are ignored.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::oci {

inline constexpr size_t kMaxConfigBytes = 8u << 20;

// Docker's HEALTHCHECK; durations in nanoseconds, as Go's time.Duration marshals.
struct HealthConfig {
  std::vector<std::string> test;  // ["NONE"], ["CMD", args...], ["CMD-SHELL", command]
  int64_t interval_ns = 0;
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int64_t start_interval_ns = 0;
  int64_t retries = 0;

  friend bool operator==(const HealthConfig&, const HealthConfig&) = default;
};

// The "config" object: how to run a container from the image.
struct ContainerConfig {
  std::string user;
  std::set<std::string> exposed_ports;  // "80/tcp"
  std::vector<std::string> env;         // "KEY=value"
  // nullopt: not set (inherit); an empty vector is written as [] (set to nothing).
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> cmd;
  std::set<std::string> volumes;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::optional<HealthConfig> healthcheck;
  std::vector<std::string> on_build;
  std::vector<std::string> shell;
  bool args_escaped = false;

  friend bool operator==(const ContainerConfig&, const ContainerConfig&) = default;
};

struct RootFs {
  std::string type = "layers";
  std::vector<Digest> diff_ids;

  friend bool operator==(const RootFs&, const RootFs&) = default;
};

struct History {
  std::string created;  // RFC 3339
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;

  friend bool operator==(const History&, const History&) = default;
};

struct ImageConfig {
  std::string created;  // RFC 3339, e.g. "2026-11-27T18:00:00Z"
  std::string author;
  std::string architecture;  // required
  std::string os;            // required
  std::string os_version;
  std::vector<std::string> os_features;
  std::string variant;
  ContainerConfig config;
  RootFs rootfs;
  std::vector<History> history;

  std::string toJson() const;
  // `what` prefixes every error ("config", or the blob's digest).
  static Result<ImageConfig> fromJson(std::string_view text, std::string_view what = "config");

  friend bool operator==(const ImageConfig&, const ImageConfig&) = default;
};

// Formats seconds since the epoch as RFC 3339 UTC ("1970-01-01T00:00:00Z").
std::string formatRfc3339(int64_t seconds_since_epoch);

}  // namespace lf::oci
