#include "common/oci/manifest.h"

#include "common/oci/json_fields.h"
#include "common/oci/media_types.h"

namespace lf::oci {

using detail::FieldReader;
using detail::Json;

namespace {

Status readSchemaVersion(const FieldReader& r) {
  LF_RETURN_IF_ERROR(r.require("schemaVersion"));
  int64_t version = 0;
  LF_RETURN_IF_ERROR(r.getInt("schemaVersion", 2, 2, &version));
  return Status::ok();
}

Result<std::vector<Descriptor>> readDescriptors(const FieldReader& r, std::string_view key) {
  const Json* v = r.find(key);
  std::string path = detail::fieldPath(r.path(), key);
  if (v == nullptr) {
    return invalidArgument(path + ": required field is missing");
  }
  if (!v->is_array()) {
    return invalidArgument(path + ": expected an array of descriptors");
  }
  std::vector<Descriptor> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    LF_ASSIGN_OR_RETURN(auto d, Descriptor::fromJson((*v)[i], detail::indexPath(path, i)));
    out.push_back(std::move(d));
  }
  return out;
}

Status readOptionalDescriptor(const FieldReader& r, std::string_view key,
                              std::optional<Descriptor>* out) {
  if (const Json* v = r.find(key)) {
    LF_ASSIGN_OR_RETURN(*out, Descriptor::fromJson(*v, detail::fieldPath(r.path(), key)));
  }
  return Status::ok();
}

Json descriptorsToJson(const std::vector<Descriptor>& descriptors) {
  Json out = Json::array();
  for (const auto& d : descriptors) {
    out.push_back(d.toJson());
  }
  return out;
}

}  // namespace

std::string Manifest::toJson() const {
  Json j = Json::object();
  j["schemaVersion"] = schema_version;
  detail::putString(j, "mediaType", media_type);
  detail::putString(j, "artifactType", artifact_type);
  j["config"] = config.toJson();
  j["layers"] = descriptorsToJson(layers);
  if (subject.has_value()) {
    j["subject"] = subject->toJson();
  }
  detail::putStringMap(j, "annotations", annotations);
  return detail::canonicalDump(j);
}

Result<Manifest> Manifest::fromJson(std::string_view text, std::string_view what) {
  LF_ASSIGN_OR_RETURN(Json j, detail::parseObject(text, what, kMaxManifestBytes));
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(j, std::string(what)));
  Manifest m;
  LF_RETURN_IF_ERROR(readSchemaVersion(r));
  LF_RETURN_IF_ERROR(r.getString("mediaType", &m.media_type));
  if (!m.media_type.empty() && !isManifestMediaType(m.media_type)) {
    std::string hint = isIndexMediaType(m.media_type) ? " (this is an index, not a manifest)" : "";
    return invalidArgument(std::string(what) + ".mediaType: \"" + m.media_type.substr(0, 200) +
                           "\" is not an image manifest media type" + hint);
  }
  LF_RETURN_IF_ERROR(r.getString("artifactType", &m.artifact_type));
  LF_RETURN_IF_ERROR(r.require("config"));
  LF_ASSIGN_OR_RETURN(m.config,
                      Descriptor::fromJson(*r.find("config"), std::string(what) + ".config"));
  LF_ASSIGN_OR_RETURN(m.layers, readDescriptors(r, "layers"));
  LF_RETURN_IF_ERROR(readOptionalDescriptor(r, "subject", &m.subject));
  LF_RETURN_IF_ERROR(r.getStringMap("annotations", &m.annotations));
  return m;
}

std::string Index::toJson() const {
  Json j = Json::object();
  j["schemaVersion"] = schema_version;
  detail::putString(j, "mediaType", media_type);
  detail::putString(j, "artifactType", artifact_type);
  j["manifests"] = descriptorsToJson(manifests);
  if (subject.has_value()) {
    j["subject"] = subject->toJson();
  }
  detail::putStringMap(j, "annotations", annotations);
  return detail::canonicalDump(j);
}

Result<Index> Index::fromJson(std::string_view text, std::string_view what) {
  LF_ASSIGN_OR_RETURN(Json j, detail::parseObject(text, what, kMaxManifestBytes));
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(j, std::string(what)));
  Index index;
  LF_RETURN_IF_ERROR(readSchemaVersion(r));
  LF_RETURN_IF_ERROR(r.getString("mediaType", &index.media_type));
  if (!index.media_type.empty() && !isIndexMediaType(index.media_type)) {
    std::string hint =
        isManifestMediaType(index.media_type) ? " (this is a manifest, not an index)" : "";
    return invalidArgument(std::string(what) + ".mediaType: \"" + index.media_type.substr(0, 200) +
                           "\" is not an image index media type" + hint);
  }
  LF_RETURN_IF_ERROR(r.getString("artifactType", &index.artifact_type));
  LF_ASSIGN_OR_RETURN(index.manifests, readDescriptors(r, "manifests"));
  LF_RETURN_IF_ERROR(readOptionalDescriptor(r, "subject", &index.subject));
  LF_RETURN_IF_ERROR(r.getStringMap("annotations", &index.annotations));
  return index;
}

}  // namespace lf::oci
