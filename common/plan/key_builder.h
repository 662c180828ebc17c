#pragma once

// KeyBuilder: the canonical encoding behind every cache key.
//
// A key is SHA-256 over a sequence of typed, length-prefixed fields, so no two different inputs
// encode to the same bytes ("ab"+"c" never collides with "a"+"bc"), and the encoding does not
// depend on the platform's byte order or on map iteration order (callers add fields in a fixed
// order; maps are added sorted). Every key starts with a version tag: changing what goes into a
// key means bumping kKeyVersion, which invalidates old cache entries instead of mis-hitting them.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/digest/digest.h"

namespace lf::plan {

inline constexpr std::string_view kKeyVersion = "layerfarm-cache-key/v1";

class KeyBuilder {
 public:
  // `kind` names what the key is for ("run", "copy", "config", "from-image"...).
  explicit KeyBuilder(std::string_view kind);

  KeyBuilder& field(std::string_view name, std::string_view value);
  // Without this overload a string literal would pick the bool one.
  KeyBuilder& field(std::string_view name, const char* value) {
    return field(name, std::string_view(value));
  }
  KeyBuilder& field(std::string_view name, int64_t value);
  KeyBuilder& field(std::string_view name, bool value);
  KeyBuilder& field(std::string_view name, const Digest& value);
  KeyBuilder& list(std::string_view name, const std::vector<std::string>& values);
  KeyBuilder& map(std::string_view name, const std::map<std::string, std::string>& values);

  Digest finish();

 private:
  void raw(char tag, std::string_view bytes);
  void flush();

  Sha256 hash_;
  std::string buffer_;  // fields are batched: one hash update per ~64 KiB, not two per field
};

}  // namespace lf::plan
