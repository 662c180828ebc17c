#include "common/oci/media_types.h"

namespace lf::oci {

namespace {

// RFC 6838 section 4.2 restricted-name: ALPHA / DIGIT first, then also ! # $ & - ^ _ . +
bool isRestrictedName(std::string_view s) {
  if (s.empty() || s.size() > 127) {
    return false;
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(s[0])) {
    return false;
  }
  for (char c : s.substr(1)) {
    if (!alnum(c) && std::string_view("!#$&-^_.+").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool isManifestMediaType(std::string_view t) { return t == kOciManifest || t == kDockerManifest; }

bool isIndexMediaType(std::string_view t) { return t == kOciIndex || t == kDockerManifestList; }

bool isConfigMediaType(std::string_view t) { return t == kOciConfig || t == kDockerConfig; }

bool isLayerMediaType(std::string_view t) {
  return t == kOciLayerTar || t == kOciLayerTarGzip || t == kOciLayerTarZstd ||
         t == kDockerLayerTarGzip || t == kDockerForeignLayerTarGzip ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
         t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
}

bool isWellFormedMediaType(std::string_view t) {
  size_t slash = t.find('/');
  if (slash == std::string_view::npos) {
    return false;
  }
  return isRestrictedName(t.substr(0, slash)) && isRestrictedName(t.substr(slash + 1));
}

}  // namespace lf::oci
