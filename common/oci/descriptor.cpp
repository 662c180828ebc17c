#include "common/oci/descriptor.h"

#include <limits>

#include "common/oci/json_fields.h"
#include "common/oci/media_types.h"

namespace lf::oci {

using detail::FieldReader;
using detail::Json;

std::string Platform::toString() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) {
    out += "/" + variant;
  }
  return out;
}

Result<Platform> Platform::parse(std::string_view text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash - start));
    if (slash == std::string_view::npos) {
      break;
    }
    start = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) {
    return invalidArgument("platform \"" + std::string(text) +
                           "\": expected os/architecture[/variant], e.g. linux/amd64");
  }
  for (const auto& p : parts) {
    bool ok = !p.empty() && p.size() <= 64;
    for (char c : p) {
      ok = ok &&
           ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.');
    }
    if (!ok) {
      return invalidArgument("platform \"" + std::string(text) + "\": component \"" + p +
                             "\" must be non-empty lowercase letters, digits, '_', '-' or '.'");
    }
  }
  Platform platform;
  platform.os = parts[0];
  platform.architecture = parts[1];
  if (parts.size() == 3) {
    platform.variant = parts[2];
  }
  return platform;
}

Json Platform::toJson() const {
  Json j = Json::object();
  j["architecture"] = architecture;
  j["os"] = os;
  detail::putString(j, "os.version", os_version);
  detail::putStrings(j, "os.features", os_features);
  detail::putString(j, "variant", variant);
  return j;
}

Result<Platform> Platform::fromJson(const Json& value, const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(value, path));
  Platform p;
  LF_RETURN_IF_ERROR(r.require("architecture"));
  LF_RETURN_IF_ERROR(r.require("os"));
  LF_RETURN_IF_ERROR(r.getString("architecture", &p.architecture));
  LF_RETURN_IF_ERROR(r.getString("os", &p.os));
  LF_RETURN_IF_ERROR(r.getString("os.version", &p.os_version));
  LF_RETURN_IF_ERROR(r.getStrings("os.features", &p.os_features));
  LF_RETURN_IF_ERROR(r.getString("variant", &p.variant));
  return p;
}

Json Descriptor::toJson() const {
  Json j = Json::object();
  j["mediaType"] = media_type;
  j["digest"] = digest.toString();
  j["size"] = size;
  detail::putStrings(j, "urls", urls);
  detail::putStringMap(j, "annotations", annotations);
  if (platform.has_value()) {
    j["platform"] = platform->toJson();
  }
  detail::putString(j, "artifactType", artifact_type);
  return j;
}

Result<Descriptor> Descriptor::fromJson(const Json& value, const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(value, path));
  Descriptor d;
  LF_RETURN_IF_ERROR(r.require("mediaType"));
  LF_RETURN_IF_ERROR(r.require("digest"));
  LF_RETURN_IF_ERROR(r.require("size"));
  LF_RETURN_IF_ERROR(r.getString("mediaType", &d.media_type));
  if (!isWellFormedMediaType(d.media_type)) {
    return invalidArgument(path + ".mediaType: \"" + d.media_type.substr(0, 200) +
                           "\" is not a media type (type/subtype)");
  }
  LF_RETURN_IF_ERROR(r.getDigest("digest", &d.digest));
  int64_t size = 0;
  LF_RETURN_IF_ERROR(r.getInt("size", 0, std::numeric_limits<int64_t>::max(), &size));
  d.size = static_cast<uint64_t>(size);
  LF_RETURN_IF_ERROR(r.getStrings("urls", &d.urls));
  LF_RETURN_IF_ERROR(r.getStringMap("annotations", &d.annotations));
  if (const Json* p = r.find("platform")) {
    LF_ASSIGN_OR_RETURN(d.platform, Platform::fromJson(*p, path + ".platform"));
  }
  LF_RETURN_IF_ERROR(r.getString("artifactType", &d.artifact_type));
  if (!d.artifact_type.empty() && !isWellFormedMediaType(d.artifact_type)) {
    return invalidArgument(path + ".artifactType: \"" + d.artifact_type.substr(0, 200) +
                           "\" is not a media type (type/subtype)");
  }
  return d;
}

}  // namespace lf::oci
