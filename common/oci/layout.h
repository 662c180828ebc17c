#pragma once

// Image layouts on disk: storing an image's config and manifest in a BlobStore, exporting it as
// an OCI image layout directory (image-spec image-layout.md), as a tar of that layout
// (`skopeo ... oci-archive:`), or as a `docker load` tarball, and reading an OCI layout back
// with every document verified against its digest.
//
// An image here is a manifest blob in a BlobStore whose config and layer blobs are in the same
// store. Exports stream blobs (bounded memory, digests verified while copying) and land
// atomically: a layout's index.json is replaced by rename, archives are written to a temporary
// file and renamed. Errors name the file and, for JSON, the field.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/oci/descriptor.h"
#include "common/oci/image_config.h"
#include "common/oci/manifest.h"

namespace lf::oci {

// Stores `config` (as an OCI config blob) and an OCI manifest over it and `layers` in `store`;
// returns the manifest's descriptor. Fails if rootfs.diff_ids and layers differ in count.
Result<Descriptor> storeImage(blob::BlobStore& store, const ImageConfig& config,
                              const std::vector<Descriptor>& layers,
                              const std::map<std::string, std::string>& annotations = {});

// Writes (or adds to) an OCI image layout at `dir`: oci-layout, blobs/sha256/..., and index.json
// listing the manifest with annotation org.opencontainers.image.ref.name = ref_name (an entry
// with the same ref name is replaced; an empty ref_name adds no annotation).
Status writeOciLayout(blob::BlobStore& store, const Descriptor& manifest,
                      const std::string& ref_name, const std::filesystem::path& dir);

// The same layout, as one tar file.
Status writeOciArchive(blob::BlobStore& store, const Descriptor& manifest,
                       const std::string& ref_name, const std::filesystem::path& tar_path);

// A tarball `docker load` accepts: manifest.json ([{Config, RepoTags, Layers}]) naming the
// config and layer blobs, stored as blobs/sha256/<hex> the way Docker 25+ `docker save` does; the
// tar is an OCI layout as well (oci-layout, index.json, the manifest blob). docker load
// decompresses gzip layers itself (all versions); zstd layers need Docker 23+, so they are
// refused here. repo_tags are "name:tag" strings ("busybox:latest").
Status writeDockerArchive(blob::BlobStore& store, const Descriptor& manifest,
                          const std::vector<std::string>& repo_tags,
                          const std::filesystem::path& tar_path);

struct LayoutImage {
  Descriptor manifest_descriptor;  // the index.json entry
  Manifest manifest;
  ImageConfig config;
  std::string manifest_json;  // the exact bytes, verified against manifest_descriptor.digest
  std::string config_json;
};

struct ReadLayoutOptions {
  // Which index.json entry: the one whose ref.name annotation equals this; empty means the
  // layout must hold exactly one manifest.
  std::string ref_name;
  // Read every layer blob to check its digest (slow for big images); off checks size only.
  bool verify_layers = true;
};

// Reads index.json → manifest → config from the layout at `dir`, verifying digests and sizes,
// that every layer blob is present, and that the config's diff_ids match the layer count. The
// layout is only read, never modified.
Result<LayoutImage> readOciLayout(const std::filesystem::path& dir,
                                  const ReadLayoutOptions& options = {});

}  // namespace lf::oci
