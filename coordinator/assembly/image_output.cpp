// Export and push of an assembled image: thin wrappers over common/oci/layout.h and
// registry::pushImage that turn user-facing references and `--output` specs into what those take.

#include <algorithm>
#include <string>

#include "common/oci/layout.h"
#include "common/registry/reference.h"
#include "common/registry/registry_blob_store.h"
#include "coordinator/assembly/image_assembly.h"

namespace lf::coordinator {

namespace {

// Docker's familiar name: "team/app:1", "busybox:latest", "127.0.0.1:5000/team/app:1".
std::string familiarTag(const registry::Reference& ref) {
  std::string name = ref.name();
  if (ref.domain == registry::kDockerHubDomain) {
    name = ref.repository;
    if (name.starts_with("library/") && name.find('/', 8) == std::string::npos) {
      name = name.substr(8);
    }
  }
  return name + ":" + (ref.tag.empty() ? "latest" : ref.tag);
}

Result<std::vector<registry::Reference>> parseTags(const std::vector<std::string>& tags) {
  std::vector<registry::Reference> refs;
  for (const auto& t : tags) {
    LF_ASSIGN_OR_RETURN(auto ref, registry::Reference::parse(t));
    refs.push_back(std::move(ref));
  }
  return refs;
}

Status parseExportOption(std::string_view key, std::string_view value, ExportOptions* out,
                         bool* has_type) {
  if (key == "type") {
    *has_type = true;
    if (value == "oci") {
      out->type = ExportOptions::Type::kOci;
    } else if (value == "docker") {
      out->type = ExportOptions::Type::kDocker;
    } else {
      return invalidArgument("--output: type \"" + std::string(value) +
                             "\" is not supported (use type=oci or type=docker)");
    }
  } else if (key == "dest") {
    out->dest = std::string(value);
  } else if (key == "tar") {
    if (value != "true" && value != "false") {
      return invalidArgument("--output: tar must be true or false, not \"" + std::string(value) +
                             "\"");
    }
    out->tar = value == "true";
  } else if (key == "name") {
    out->tags.insert(out->tags.begin(), std::string(value));
  } else {
    return invalidArgument("--output: unknown key \"" + std::string(key) +
                           "\" (known: type, dest, tar, name)");
  }
  return Status::ok();
}

}  // namespace

Result<ExportOptions> parseExportSpec(std::string_view spec, std::vector<std::string> tags) {
  ExportOptions out;
  out.tags = std::move(tags);
  bool has_type = false;
  size_t i = 0;
  while (i <= spec.size()) {
    size_t j = spec.find(',', i);
    if (j == std::string_view::npos) j = spec.size();
    std::string_view part = spec.substr(i, j - i);
    i = j + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return invalidArgument("--output: \"" + std::string(part) + "\" is not key=value");
    }
    LF_RETURN_IF_ERROR(parseExportOption(part.substr(0, eq), part.substr(eq + 1), &out, &has_type));
  }
  if (!has_type) return invalidArgument("--output: missing type= (oci or docker)");
  if (out.dest.empty()) return invalidArgument("--output: missing dest=");
  if (out.type == ExportOptions::Type::kDocker && !out.tar) {
    return invalidArgument("--output: type=docker is always a tar; tar=false is for type=oci");
  }
  LF_RETURN_IF_ERROR(parseTags(out.tags).status());
  return out;
}

Status exportImage(blob::BlobStore& store, const AssembledImage& image,
                   const ExportOptions& options) {
  if (options.dest.empty()) return invalidArgument("export: no destination given");
  LF_ASSIGN_OR_RETURN(auto refs, parseTags(options.tags));
  Status s;
  if (options.type == ExportOptions::Type::kDocker) {
    std::vector<std::string> repo_tags;
    for (const auto& r : refs) repo_tags.push_back(familiarTag(r));
    s = oci::writeDockerArchive(store, image.manifest, repo_tags, options.dest);
  } else {
    // BuildKit's OCI exporter names the index entry by the tag alone.
    std::string ref_name = "latest";
    if (!refs.empty() && !refs.front().tag.empty()) ref_name = refs.front().tag;
    s = options.tar ? oci::writeOciArchive(store, image.manifest, ref_name, options.dest)
                    : oci::writeOciLayout(store, image.manifest, ref_name, options.dest);
  }
  if (!s.isOk()) return s.withContext("export to " + options.dest.string());
  return Status::ok();
}

Result<std::vector<registry::PushResult>> pushAssembledImage(registry::RegistryClient& client,
                                                             blob::BlobStore& store,
                                                             const AssembledImage& image,
                                                             const std::vector<std::string>& tags,
                                                             const PushAssembledOptions& options) {
  if (tags.empty()) return invalidArgument("push: no image reference to push to");
  LF_ASSIGN_OR_RETURN(auto refs, parseTags(tags));
  // Group the tags by the repository they land in, keeping the order they were given.
  struct Group {
    registry::Repository repo;
    registry::Reference target;
    std::vector<std::string> extra_tags;
  };
  std::vector<Group> groups;
  for (const auto& ref : refs) {
    if (ref.digest && *ref.digest != image.manifest.digest) {
      return invalidArgument("push " + ref.toString() + ": the image's digest is " +
                             image.manifest.digest.toString());
    }
    auto repo = registry::pushRepository(ref, options.default_library_namespace);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return g.repo.host == repo.host && g.repo.name == repo.name;
    });
    if (it == groups.end()) {
      groups.push_back({repo, ref, {}});
    } else if (!ref.tag.empty()) {
      it->extra_tags.push_back(ref.tag);
    }
  }
  // The farm's registry-backed blob store already holds every layer: mount, don't upload.
  const auto* cache_repo = dynamic_cast<const registry::RegistryBlobStore*>(&store);
  std::vector<registry::PushResult> results;
  for (const auto& g : groups) {
    registry::PushOptions po;
    po.extra_tags = g.extra_tags;
    for (const auto& candidate : options.mount_from) {
      auto from = registry::Reference::parse(candidate);
      if (from.isOk() && from->registryHost() == g.repo.host &&
          from->repository != g.repo.name) {
        po.mount_from.push_back(from->repository);
      }
    }
    if (cache_repo != nullptr && cache_repo->repository().host == g.repo.host) {
      po.mount_from.insert(po.mount_from.begin(), cache_repo->repository().name);
    }
    po.default_library_namespace = options.default_library_namespace;
    po.progress = options.progress;
    LF_ASSIGN_OR_RETURN(auto r,
                        registry::pushImage(client, g.target, image.manifest.digest, store, po));
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace lf::coordinator
