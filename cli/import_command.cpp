// `layerfarm import SOURCE -t NAME[:TAG] --output type=oci|docker,dest=PATH [--change LINE]...
//  [--platform os/arch[/variant]] [--compression gzip|zstd|none]`
// With --push (instead of or besides --output) the image goes to the registry NAME names
// (--insecure-registry HOST for plain HTTP, --registry-ca FILE, credentials from the Docker
// config file).
//
// Turns a root filesystem (a directory, or a tar file, optionally gzip/zstd compressed) into a
// single-layer image with a config like `docker import` makes, and writes it as an OCI layout
// directory (type=oci; a tar of the layout when dest ends in .tar) or a `docker load` tarball
// (type=docker). A tar source is unpacked safely (no entry escapes the scratch directory) into a
// temporary directory first. Blobs are assembled in a scratch blob store that is removed at the
// end; the output lands atomically. SOURCE_DATE_EPOCH, when set, fixes the created time and
// clamps file mtimes, so the same input gives the same digests.

#include <stdlib.h>
#include <sys/utsname.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "cli/cli_util.h"
#include "common/blob/directory_blob_store.h"
#include "common/layer/layer_reader.h"
#include "common/layer/layer_writer.h"
#include "common/oci/config_changes.h"
#include "common/oci/layout.h"
#include "common/oci/media_types.h"
#include "common/registry/client_config.h"
#include "common/registry/image_transfer.h"

namespace lf::cli {
namespace {

namespace fs = std::filesystem;

struct ImportOptions {
  std::string source;
  std::string tag;
  std::string output;
  std::vector<std::string> changes;
  std::string platform;
  std::string compression = "gzip";
  // --push (the registry client, common/registry): push to the registry -t names.
  bool push = false;
  std::vector<std::string> insecure_registries;
  std::string registry_ca;
};

struct ImageName {
  std::string name;
  std::string tag;
  std::string full() const { return name + ":" + tag; }
};

// NAME[:TAG] with Docker's rules: lowercase path components (a registry host[:port] may lead),
// tag [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, default tag "latest".
Result<ImageName> parseImageName(const std::string& text) {
  ImageName out;
  size_t colon = text.rfind(':');
  bool has_tag = colon != std::string::npos && text.find('/', colon) == std::string::npos;
  out.name = has_tag ? text.substr(0, colon) : text;
  out.tag = has_tag ? text.substr(colon + 1) : "latest";
  auto bad = [&](const std::string& why) { return invalidArgument("-t \"" + text + "\": " + why); };
  if (out.name.empty() || out.name.size() > 255) {
    return bad("the name must have 1 to 255 characters");
  }
  for (size_t i = 0; i < out.name.size(); ++i) {
    char c = out.name[i];
    bool in_host = out.name.find('/') != std::string::npos && i < out.name.find('/');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/' || (in_host && (c == ':' || (c >= 'A' && c <= 'Z')));
    if (!ok) {
      return bad(std::string("character '") + c +
                 "' is not allowed in an image name (lowercase letters, digits, . _ - /)");
    }
  }
  if (out.tag.empty() || out.tag.size() > 128 || out.tag[0] == '.' || out.tag[0] == '-') {
    return bad("the tag must have 1 to 128 characters and start with a letter, digit or _");
  }
  for (char c : out.tag) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return bad(std::string("character '") + c + "' is not allowed in a tag");
    }
  }
  return out;
}

oci::Platform hostPlatform() {
  oci::Platform p;
  p.os = "linux";
  struct utsname u {};
  std::string machine = ::uname(&u) == 0 ? u.machine : "x86_64";
  if (machine == "x86_64") {
    p.architecture = "amd64";
  } else if (machine == "aarch64") {
    p.architecture = "arm64";
    p.variant = "v8";
  } else if (machine.starts_with("armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (machine == "i686" || machine == "i386") {
    p.architecture = "386";
  } else {
    p.architecture = machine;  // ppc64le, s390x, riscv64 are spelt the same in OCI
  }
  return p;
}

Result<layer::Compression> parseCompression(const std::string& text) {
  if (text == "gzip") {
    return layer::Compression::kGzip;
  }
  if (text == "zstd") {
    return layer::Compression::kZstd;
  }
  if (text == "none") {
    return layer::Compression::kNone;
  }
  return invalidArgument("--compression: expected gzip, zstd or none, got \"" + text + "\"");
}

// A private scratch directory, removed with everything in it at scope exit.
class ScratchDir {
 public:
  static Result<std::unique_ptr<ScratchDir>> create() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    std::string tmpl = ((ec ? fs::path("/tmp") : base) / "layerfarm-import-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return errnoStatus(errno, "create scratch directory " + tmpl);
    }
    return std::make_unique<ScratchDir>(fs::path(tmpl));
  }
  explicit ScratchDir(fs::path path) : path_(std::move(path)) {}
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: a leftover scratch dir only wastes space
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The root filesystem to import: SOURCE itself, or SOURCE's tar unpacked under `scratch`.
Result<fs::path> rootfsFrom(const fs::path& source, const fs::path& scratch) {
  std::error_code ec;
  auto status = fs::status(source, ec);
  if (ec || !fs::exists(status)) {
    return notFound("import: SOURCE " + source.string() + " does not exist");
  }
  if (fs::is_directory(status)) {
    return source;
  }
  if (!fs::is_regular_file(status)) {
    return invalidArgument("import: SOURCE " + source.string() +
                           " must be a directory or a tar file");
  }
  fs::path rootfs = scratch / "rootfs";
  LF_RETURN_IF_ERROR(layer::unpackLayerFiles({source}, rootfs, layer::ApplyOptions{})
                         .withContext("import: unpack " + source.string()));
  return rootfs;
}

Result<oci::ImageConfig> makeConfig(const ImportOptions& opts, const oci::Platform& platform,
                                    const layer::LayerInfo& layer, int64_t created) {
  oci::ImageConfig config;
  config.architecture = platform.architecture;
  config.os = platform.os;
  config.variant = platform.variant;
  config.created = oci::formatRfc3339(created);
  config.rootfs.diff_ids = {layer.diff_id};
  config.history.push_back({config.created,
                            "layerfarm import " + fs::path(opts.source).filename().string(), "",
                            "Imported from " + opts.source, false});
  oci::ConfigChanges changes(&config);
  for (size_t i = 0; i < opts.changes.size(); ++i) {
    LF_RETURN_IF_ERROR(changes.apply(opts.changes[i], "--change " + std::to_string(i + 1)));
  }
  return config;
}

Status writeOutput(blob::BlobStore& store, const oci::Descriptor& manifest,
                   const BuildOutput& output, const ImageName& name) {
  if (output.type == "docker") {
    return oci::writeDockerArchive(store, manifest, {name.full()}, output.dest);
  }
  if (fs::path(output.dest).extension() == ".tar") {
    return oci::writeOciArchive(store, manifest, name.tag, output.dest);
  }
  return oci::writeOciLayout(store, manifest, name.tag, output.dest);
}

Status pushImported(const ImportOptions& opts, blob::BlobStore& store, const Digest& manifest,
                    Io io);

Status runImport(const ImportOptions& opts, Io io) {
  if (opts.output.empty() && !opts.push) {
    return invalidArgument("import: give --output, --push, or both");
  }
  BuildOutput output;
  if (!opts.output.empty()) {
    LF_ASSIGN_OR_RETURN(output, parseBuildOutput(opts.output));
  }
  LF_ASSIGN_OR_RETURN(ImageName name, parseImageName(opts.tag));
  LF_ASSIGN_OR_RETURN(layer::Compression compression, parseCompression(opts.compression));
  if (output.type == "docker" && compression == layer::Compression::kZstd) {
    return invalidArgument(
        "--compression zstd: docker load before Docker 23 cannot read zstd "
        "layers; use gzip (the default) for type=docker");
  }
  oci::Platform platform = hostPlatform();
  if (!opts.platform.empty()) {
    LF_ASSIGN_OR_RETURN(platform, oci::Platform::parse(opts.platform));
  }
  LF_ASSIGN_OR_RETURN(std::optional<int64_t> epoch, layer::sourceDateEpochFromEnv());
  int64_t created = epoch.value_or(static_cast<int64_t>(std::time(nullptr)));

  LF_ASSIGN_OR_RETURN(auto scratch, ScratchDir::create());
  LF_ASSIGN_OR_RETURN(fs::path rootfs, rootfsFrom(opts.source, scratch->path()));
  // Scratch blobs are thrown away at the end; the output is written (and fsynced) separately.
  LF_ASSIGN_OR_RETURN(auto store,
                      blob::DirectoryBlobStore::open(scratch->path() / "store", {.fsync = false}));
  layer::LayerOptions layer_options;
  layer_options.compression = compression;
  layer_options.source_date_epoch = epoch;
  LF_ASSIGN_OR_RETURN(layer::LayerInfo layer, layer::writeLayer(rootfs, layer_options, *store));

  LF_ASSIGN_OR_RETURN(oci::ImageConfig config, makeConfig(opts, platform, layer, created));
  oci::Descriptor layer_desc{layer.media_type, layer.digest, layer.size};
  LF_ASSIGN_OR_RETURN(oci::Descriptor manifest,
                      oci::storeImage(*store, config, {layer_desc},
                                      {{std::string(oci::kAnnotationCreated), config.created}}));
  if (opts.output.empty()) {
    return pushImported(opts, *store, manifest.digest, io);
  }
  LF_RETURN_IF_ERROR(writeOutput(*store, manifest, output, name));
  *io.out << "imported " << name.full() << " " << manifest.digest.toString() << " ("
          << platform.toString() << ", layer " << layer.digest.toString() << ", " << layer.size
          << " bytes) to " << output.type << ":" << output.dest << "\n";
  return opts.push ? pushImported(opts, *store, manifest.digest, io) : Status::ok();
}

// --push: the image in `store` goes to the registry named by -t (registry client, issue 4).
Status pushImported(const ImportOptions& opts, blob::BlobStore& store, const Digest& manifest,
                    Io io) {
  LF_ASSIGN_OR_RETURN(registry::Reference target, registry::Reference::parse(opts.tag));
  LF_ASSIGN_OR_RETURN(registry::RegistryConfig config,
                      registry::registryConfigForCli(opts.insecure_registries, opts.registry_ca));
  LF_ASSIGN_OR_RETURN(auto client, registry::RegistryClient::create(std::move(config)));
  registry::PushOptions push_options;
  push_options.progress = [&](std::string_view message) { *io.out << message << "\n"; };
  LF_ASSIGN_OR_RETURN(registry::PushResult pushed,
                      registry::pushImage(*client, target, manifest, store, push_options));
  *io.out << "pushed " << pushed.repository << "@" << pushed.manifest_digest.toString() << " ("
          << pushed.blobs_uploaded << " uploaded, " << pushed.blobs_mounted << " mounted, "
          << pushed.blobs_present << " already there)\n";
  return Status::ok();
}

}  // namespace

void registerImportCommand(CLI::App& app, Io io, int* exit_code) {
  auto opts = std::make_shared<ImportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "import", "Make a single-layer image from a root filesystem (a directory or a tar file)");
  cmd->add_option("SOURCE", opts->source, "Root filesystem: a directory or a tar (.gz/.zst) file")
      ->required();
  cmd->add_option("-t,--tag", opts->tag, "Image name NAME[:TAG] (tag defaults to latest)")
      ->required();
  cmd->add_option("--output", opts->output,
                  "type=oci,dest=PATH (layout dir, or a tar if PATH ends in .tar) or "
                  "type=docker,dest=PATH (docker load tarball)");
  cmd->add_option("-c,--change", opts->changes,
                  "Dockerfile instruction applied to the config: CMD, ENTRYPOINT, ENV, EXPOSE, "
                  "HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR");
  cmd->add_option("--platform", opts->platform, "os/arch[/variant] (default: this machine's)");
  cmd->add_option("--compression", opts->compression, "Layer compression: gzip, zstd or none");
  cmd->add_flag("--push", opts->push, "Push the image to the registry -t names");
  cmd->add_option("--insecure-registry", opts->insecure_registries,
                  "HOST[:PORT] to push to over plain HTTP (repeatable)");
  cmd->add_option("--registry-ca", opts->registry_ca,
                  "PEM file of CAs to trust for the registry (default: the system's)");
  cmd->callback([opts, io, exit_code] {
    Status s = runImport(*opts, io);
    if (!s.isOk()) {
      *io.err << "layerfarm import: " << s.message() << "\n";
      *exit_code = 1;
      return;
    }
    *exit_code = 0;
  });
}

}  // namespace lf::cli
