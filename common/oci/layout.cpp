#include "common/oci/layout.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "common/blob/blob_util.h"
#include "common/blob/directory_blob_store.h"
#include "common/oci/json_fields.h"
#include "common/oci/media_types.h"
#include "common/oci/tar_writer.h"

namespace lf::oci {

namespace fs = std::filesystem;
using detail::Json;

namespace {

constexpr std::string_view kOciLayoutFile = R"({"imageLayoutVersion":"1.0.0"})";
constexpr size_t kMaxIndexBytes = kMaxManifestBytes;

std::string blobName(const Digest& d) { return "blobs/sha256/" + d.hex(); }

Result<std::string> readSmallFile(const fs::path& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return notFound("cannot read " + path.string());
  }
  std::string data;
  char buf[64 * 1024];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > max_bytes) {
      return invalidArgument(path.string() + ": larger than the limit of " +
                             std::to_string(max_bytes) + " bytes");
    }
  }
  return data;
}

// Writes via a temporary file and rename so readers never see a partial file.
Status writeFileAtomically(const fs::path& path, std::string_view content) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errnoStatus(errno, "create " + tmp.string());
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      Status s = errnoStatus(errno, "write " + tmp.string());
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = errnoStatus(errno, "write " + path.string());
    ::unlink(tmp.c_str());
    return s;
  }
  return Status::ok();
}

struct ImageBlobs {
  Manifest manifest;
  std::vector<Descriptor> blobs;  // config, layers (manifest itself not included)
};

// Loads and checks the manifest so exports never write a layout pointing at missing blobs.
Result<ImageBlobs> loadImageBlobs(blob::BlobStore& store, const Descriptor& manifest) {
  if (!isManifestMediaType(manifest.media_type)) {
    return invalidArgument("descriptor " + manifest.digest.toString() + " has media type \"" +
                           manifest.media_type + "\", not an image manifest");
  }
  LF_ASSIGN_OR_RETURN(std::string bytes, store.getBytes(manifest.digest, kMaxManifestBytes));
  if (bytes.size() != manifest.size) {
    return dataLoss("manifest " + manifest.digest.toString() + " is " +
                    std::to_string(bytes.size()) + " bytes, descriptor says " +
                    std::to_string(manifest.size));
  }
  ImageBlobs out;
  LF_ASSIGN_OR_RETURN(out.manifest, Manifest::fromJson(bytes, manifest.digest.toString()));
  out.blobs.push_back(out.manifest.config);
  out.blobs.insert(out.blobs.end(), out.manifest.layers.begin(), out.manifest.layers.end());
  return out;
}

Descriptor indexEntry(const Descriptor& manifest, const std::string& ref_name) {
  Descriptor entry{manifest.media_type, manifest.digest, manifest.size};
  if (!ref_name.empty()) {
    entry.annotations[std::string(kAnnotationRefName)] = ref_name;
  }
  return entry;
}

std::string refNameOf(const Descriptor& d) {
  auto it = d.annotations.find(std::string(kAnnotationRefName));
  return it == d.annotations.end() ? "" : it->second;
}

Result<Index> readIndexJson(const fs::path& dir) {
  fs::path path = dir / "index.json";
  LF_ASSIGN_OR_RETURN(std::string text, readSmallFile(path, kMaxIndexBytes));
  return Index::fromJson(text, path.string());
}

Status checkLayoutFile(const fs::path& dir) {
  fs::path path = dir / "oci-layout";
  LF_ASSIGN_OR_RETURN(std::string text, readSmallFile(path, 4096));
  LF_ASSIGN_OR_RETURN(Json j, detail::parseObject(text, path.string(), 4096));
  LF_ASSIGN_OR_RETURN(auto r, detail::FieldReader::of(j, path.string()));
  std::string version;
  LF_RETURN_IF_ERROR(r.require("imageLayoutVersion"));
  LF_RETURN_IF_ERROR(r.getString("imageLayoutVersion", &version));
  if (!version.starts_with("1.")) {
    return invalidArgument(path.string() + ".imageLayoutVersion: unsupported version \"" +
                           version.substr(0, 40) + "\"");
  }
  return Status::ok();
}

}  // namespace

Result<Descriptor> storeImage(blob::BlobStore& store, const ImageConfig& config,
                              const std::vector<Descriptor>& layers,
                              const std::map<std::string, std::string>& annotations) {
  if (config.rootfs.diff_ids.size() != layers.size()) {
    return invalidArgument("image has " + std::to_string(layers.size()) + " layers but " +
                           std::to_string(config.rootfs.diff_ids.size()) + " rootfs.diff_ids");
  }
  std::string config_json = config.toJson();
  LF_ASSIGN_OR_RETURN(auto config_info, store.putBytes(config_json));
  Manifest m;
  m.media_type = std::string(kOciManifest);
  m.config = Descriptor{std::string(kOciConfig), config_info.digest, config_info.size};
  m.layers = layers;
  m.annotations = annotations;
  std::string manifest_json = m.toJson();
  LF_ASSIGN_OR_RETURN(auto manifest_info, store.putBytes(manifest_json));
  return Descriptor{std::string(kOciManifest), manifest_info.digest, manifest_info.size};
}

Status writeOciLayout(blob::BlobStore& store, const Descriptor& manifest,
                      const std::string& ref_name, const fs::path& dir) {
  LF_ASSIGN_OR_RETURN(ImageBlobs image, loadImageBlobs(store, manifest));
  Index index;
  index.media_type = std::string(kOciIndex);
  std::error_code ec;
  if (fs::exists(dir / "index.json", ec)) {
    LF_RETURN_IF_ERROR(checkLayoutFile(dir));
    LF_ASSIGN_OR_RETURN(index, readIndexJson(dir));
    index.media_type = std::string(kOciIndex);
  } else if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    return failedPrecondition(dir.string() + " exists and is not an OCI layout (no index.json)");
  }
  LF_ASSIGN_OR_RETURN(auto dest, blob::DirectoryBlobStore::open(dir));
  for (const auto& d : image.blobs) {
    LF_ASSIGN_OR_RETURN(auto info, blob::copyBlob(store, *dest, d.digest));
    if (info.size != d.size) {
      return dataLoss("blob " + d.digest.toString() + " is " + std::to_string(info.size) +
                      " bytes, manifest says " + std::to_string(d.size));
    }
  }
  LF_RETURN_IF_ERROR(blob::copyBlob(store, *dest, manifest.digest).status());
  fs::remove(dir / "tmp", ec);  // the store's scratch directory; only removed when empty
  std::erase_if(index.manifests,
                [&](const Descriptor& d) { return !ref_name.empty() && refNameOf(d) == ref_name; });
  index.manifests.push_back(indexEntry(manifest, ref_name));
  LF_RETURN_IF_ERROR(writeFileAtomically(dir / "oci-layout", kOciLayoutFile));
  return writeFileAtomically(dir / "index.json", index.toJson());
}

Status writeOciArchive(blob::BlobStore& store, const Descriptor& manifest,
                       const std::string& ref_name, const fs::path& tar_path) {
  LF_ASSIGN_OR_RETURN(ImageBlobs image, loadImageBlobs(store, manifest));
  Index index;
  index.media_type = std::string(kOciIndex);
  index.manifests.push_back(indexEntry(manifest, ref_name));
  LF_ASSIGN_OR_RETURN(auto tar, TarWriter::create(tar_path));
  LF_RETURN_IF_ERROR(tar->addFile("oci-layout", kOciLayoutFile));
  LF_RETURN_IF_ERROR(tar->addFile("index.json", index.toJson()));
  LF_RETURN_IF_ERROR(tar->addDirectory("blobs"));
  LF_RETURN_IF_ERROR(tar->addDirectory("blobs/sha256"));
  LF_RETURN_IF_ERROR(tar->addBlob(blobName(manifest.digest), store, manifest));
  std::set<Digest> written{manifest.digest};
  for (const auto& d : image.blobs) {
    if (written.insert(d.digest).second) {
      LF_RETURN_IF_ERROR(tar->addBlob(blobName(d.digest), store, d));
    }
  }
  return tar->commit();
}

Status writeDockerArchive(blob::BlobStore& store, const Descriptor& manifest,
                          const std::vector<std::string>& repo_tags, const fs::path& tar_path) {
  LF_ASSIGN_OR_RETURN(ImageBlobs image, loadImageBlobs(store, manifest));
  Json layers = Json::array();
  for (size_t i = 0; i < image.manifest.layers.size(); ++i) {
    const Descriptor& l = image.manifest.layers[i];
    if (l.media_type == kOciLayerTarZstd) {
      return failedPrecondition("layer " + std::to_string(i) + " (" + l.digest.toString() +
                                ") is zstd-compressed; docker load before Docker 23 cannot read "
                                "it: write the layer with gzip for a docker archive");
    }
    layers.push_back(blobName(l.digest));
  }
  Json entry = Json::object();
  entry["Config"] = blobName(image.manifest.config.digest);
  entry["RepoTags"] = repo_tags;
  entry["Layers"] = std::move(layers);
  Json docker_manifest = Json::array({std::move(entry)});

  Index index;
  index.media_type = std::string(kOciIndex);
  for (const auto& repo_tag : repo_tags) {
    // As Docker 25+ `docker save` does: ref.name holds the tag, containerd's annotation the
    // full reference.
    size_t colon = repo_tag.rfind(':');
    bool has_tag = colon != std::string::npos && repo_tag.find('/', colon) == std::string::npos;
    Descriptor entry = indexEntry(manifest, has_tag ? repo_tag.substr(colon + 1) : "latest");
    entry.annotations["io.containerd.image.name"] = repo_tag;
    index.manifests.push_back(std::move(entry));
  }
  if (repo_tags.empty()) {
    index.manifests.push_back(indexEntry(manifest, ""));
  }
  LF_ASSIGN_OR_RETURN(auto tar, TarWriter::create(tar_path));
  LF_RETURN_IF_ERROR(tar->addDirectory("blobs"));
  LF_RETURN_IF_ERROR(tar->addDirectory("blobs/sha256"));
  std::set<Digest> written;
  for (const auto& d : image.blobs) {
    if (written.insert(d.digest).second) {
      LF_RETURN_IF_ERROR(tar->addBlob(blobName(d.digest), store, d));
    }
  }
  LF_RETURN_IF_ERROR(tar->addBlob(blobName(manifest.digest), store, manifest));
  LF_RETURN_IF_ERROR(tar->addFile("oci-layout", kOciLayoutFile));
  LF_RETURN_IF_ERROR(tar->addFile("index.json", index.toJson()));
  LF_RETURN_IF_ERROR(tar->addFile("manifest.json", detail::canonicalDump(docker_manifest)));
  return tar->commit();
}

namespace {

Result<Descriptor> selectManifest(const Index& index, const fs::path& dir,
                                  const std::string& ref_name) {
  std::vector<const Descriptor*> matches;
  std::string names;
  for (const auto& d : index.manifests) {
    names += (names.empty() ? "" : ", ") + ("\"" + refNameOf(d) + "\"");
    if (ref_name.empty() || refNameOf(d) == ref_name) {
      matches.push_back(&d);
    }
  }
  std::string where = (dir / "index.json").string();
  if (matches.empty()) {
    return notFound(where + ": no manifest named \"" + ref_name + "\" (have: " + names + ")");
  }
  if (matches.size() > 1) {
    return invalidArgument(where + ": " + std::to_string(matches.size()) +
                           " manifests match; pick one by ref name (have: " + names + ")");
  }
  if (!isManifestMediaType(matches[0]->media_type)) {
    return unimplemented(where + ": entry " + matches[0]->digest.toString() + " has media type " +
                         matches[0]->media_type + "; only image manifests are supported");
  }
  return *matches[0];
}

Result<std::string> readVerifiedDocument(blob::BlobStore& store, const Descriptor& d,
                                         size_t max_bytes) {
  if (d.size > max_bytes) {
    return invalidArgument("blob " + d.digest.toString() + " is " + std::to_string(d.size) +
                           " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  LF_ASSIGN_OR_RETURN(std::string bytes, store.getBytes(d.digest, max_bytes));
  if (bytes.size() != d.size) {
    return dataLoss("blob " + d.digest.toString() + " is " + std::to_string(bytes.size()) +
                    " bytes, its descriptor says " + std::to_string(d.size));
  }
  return bytes;
}

Status checkLayers(blob::BlobStore& store, const Manifest& manifest, bool verify) {
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const Descriptor& l = manifest.layers[i];
    std::string what = "manifest.layers[" + std::to_string(i) + "] " + l.digest.toString();
    LF_ASSIGN_OR_RETURN(auto info, store.stat(l.digest));
    if (!info.has_value()) {
      return notFound(what + ": blob missing from the layout");
    }
    if (info->size != l.size) {
      return dataLoss(what + ": blob is " + std::to_string(info->size) + " bytes, manifest says " +
                      std::to_string(l.size));
    }
    if (verify) {
      LF_RETURN_IF_ERROR(blob::streamBlob(store, l.digest, [](const void*, size_t) {
                           return Status::ok();
                         }).withContext(what));
    }
  }
  return Status::ok();
}

}  // namespace

Result<LayoutImage> readOciLayout(const fs::path& dir, const ReadLayoutOptions& options) {
  LF_RETURN_IF_ERROR(checkLayoutFile(dir));
  LF_ASSIGN_OR_RETURN(Index index, readIndexJson(dir));
  LF_ASSIGN_OR_RETURN(auto store,
                      blob::DirectoryBlobStore::open(dir, {.create = false, .read_only = true}));
  LayoutImage out;
  LF_ASSIGN_OR_RETURN(out.manifest_descriptor, selectManifest(index, dir, options.ref_name));
  LF_ASSIGN_OR_RETURN(out.manifest_json,
                      readVerifiedDocument(*store, out.manifest_descriptor, kMaxManifestBytes));
  LF_ASSIGN_OR_RETURN(out.manifest, Manifest::fromJson(out.manifest_json, "manifest"));
  if (!isConfigMediaType(out.manifest.config.media_type)) {
    return invalidArgument("manifest.config.mediaType: \"" + out.manifest.config.media_type +
                           "\" is not an image config");
  }
  LF_ASSIGN_OR_RETURN(out.config_json,
                      readVerifiedDocument(*store, out.manifest.config, kMaxConfigBytes));
  LF_ASSIGN_OR_RETURN(out.config, ImageConfig::fromJson(out.config_json, "config"));
  if (out.config.rootfs.diff_ids.size() != out.manifest.layers.size()) {
    return invalidArgument(
        "config.rootfs.diff_ids has " + std::to_string(out.config.rootfs.diff_ids.size()) +
        " entries but the manifest has " + std::to_string(out.manifest.layers.size()) + " layers");
  }
  LF_RETURN_IF_ERROR(checkLayers(*store, out.manifest, options.verify_layers));
  return out;
}

}  // namespace lf::oci
