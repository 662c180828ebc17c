#pragma once

// Media types of the OCI image spec and of Docker's image manifest v2 schema 2, and predicates
// over them. Docker's types are accepted wherever the OCI equivalent is (registries and
// `docker save` still produce them); layerfarm writes OCI types unless a Docker format is asked
// for.

#include <string_view>

namespace lf::oci {

inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerTarZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kOciEmpty = "application/vnd.oci.empty.v1+json";

inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerTarGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerForeignLayerTarGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// An image manifest (OCI or Docker v2 schema 2).
bool isManifestMediaType(std::string_view media_type);
// An index / manifest list (OCI or Docker).
bool isIndexMediaType(std::string_view media_type);
// An image config (OCI or Docker).
bool isConfigMediaType(std::string_view media_type);
// A filesystem layer in any compression layerfarm can read (OCI or Docker, foreign included).
bool isLayerMediaType(std::string_view media_type);
// RFC 6838 syntax: type "/" subtype, restricted-name characters, at most 127 each, optional
// "+suffix" inside the subtype. Parameters (";charset=...") are not allowed in OCI descriptors.
bool isWellFormedMediaType(std::string_view media_type);

}  // namespace lf::oci
