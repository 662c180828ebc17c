#pragma once

// Internals of the OCI JSON codecs (descriptor.cpp, image_config.cpp, manifest.cpp): parsing
// untrusted JSON with size and depth bounds, reading typed fields with errors that name the field
// path ("manifest.layers[2].digest: ..."), and canonical serialisation. Not a public API.
//
// Canonical JSON here means: nlohmann's std::map-backed objects (keys sorted by byte value), no
// insignificant whitespace, UTF-8 kept as is (invalid sequences replaced by U+FFFD rather than
// throwing). The same value always serialises to the same bytes, so digests are stable.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/digest/digest.h"

namespace lf::oci::detail {

using Json = nlohmann::json;

inline constexpr int kMaxJsonDepth = 64;

// Parses `text` (at most max_bytes) into a JSON object; errors start with `what`.
Result<Json> parseObject(std::string_view text, std::string_view what, size_t max_bytes);

std::string canonicalDump(const Json& value);

// "<path>.<key>" / "<path>[<i>]".
std::string fieldPath(std::string_view path, std::string_view key);
std::string indexPath(std::string_view path, size_t i);

// Reads the fields of one JSON object. Absent and null fields leave the output untouched
// (Go's encoding/json does the same); a present field of the wrong type is an error naming it.
// Unknown fields are ignored, as the OCI spec requires.
class FieldReader {
 public:
  // Fails unless `value` is an object.
  static Result<FieldReader> of(const Json& value, std::string path);

  const std::string& path() const { return path_; }
  // The field's value when present and not null.
  const Json* find(std::string_view key) const;
  Status require(std::string_view key) const;

  Status getString(std::string_view key, std::string* out) const;
  Status getBool(std::string_view key, bool* out) const;
  Status getInt(std::string_view key, int64_t min, int64_t max, int64_t* out) const;
  Status getStrings(std::string_view key, std::vector<std::string>* out) const;
  // Distinguishes absent/null (nullopt) from [] (empty vector).
  Status getOptionalStrings(std::string_view key,
                            std::optional<std::vector<std::string>>* out) const;
  Status getStringMap(std::string_view key, std::map<std::string, std::string>* out) const;
  // An object used as a set: {"80/tcp": {}, ...}; values must be objects (ignored).
  Status getKeySet(std::string_view key, std::set<std::string>* out) const;
  Status getDigest(std::string_view key, Digest* out) const;

 private:
  FieldReader(const Json* obj, std::string path) : obj_(obj), path_(std::move(path)) {}
  Status typeError(std::string_view key, std::string_view expected) const;

  const Json* obj_;
  std::string path_;
};

// Writers used by toJson(): skip empty values (Go's omitempty) so output stays minimal.
void putString(Json& obj, std::string_view key, const std::string& value);
void putStrings(Json& obj, std::string_view key, const std::vector<std::string>& values);
void putStringMap(Json& obj, std::string_view key, const std::map<std::string, std::string>& m);
void putKeySet(Json& obj, std::string_view key, const std::set<std::string>& keys);

}  // namespace lf::oci::detail
