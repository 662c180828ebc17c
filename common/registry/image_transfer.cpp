#include "common/registry/image_transfer.h"

#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "common/oci/media_types.h"

namespace lf::registry {

Status parallelFor(size_t n, size_t parallel, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto worker = [&] {
    while (!failed) {
      size_t i = next++;
      if (i >= n) return;
      Status s = fn(i);
      if (!s.isOk()) {
        std::lock_guard lock(mu);
        if (first.isOk()) first = s;
        failed = true;
      }
    }
  };
  size_t threads = std::min(n, std::max<size_t>(parallel, 1));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return first;
}

Result<ManifestHead> resolveDigest(RegistryClient& client, const Reference& ref) {
  if (ref.digest) {
    return ManifestHead{*ref.digest, "", 0};
  }
  return client.headManifest(Repository::of(ref), ref.manifestReference());
}

Result<oci::Descriptor> selectPlatform(const oci::Index& index, const oci::Platform& want,
                                       std::string_view what) {
  auto normVariant = [](const oci::Platform& p) {
    return (p.architecture == "arm64" && p.variant == "v8") ? std::string() : p.variant;
  };
  std::vector<std::string> available;
  for (const auto& d : index.manifests) {
    if (!d.platform) continue;
    const oci::Platform& p = *d.platform;
    if (p.os == "unknown") continue;  // attestation manifests
    available.push_back(p.toString());
    if (p.os == want.os && p.architecture == want.architecture &&
        (want.variant.empty() || normVariant(p) == normVariant(want))) {
      return d;
    }
  }
  std::string list;
  for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
  return notFound(fmt::format("{}: no manifest for platform {}; available: {}", what,
                              want.toString(), list.empty() ? "none" : list));
}

namespace {

Result<ResolvedImage> resolveFrom(RegistryClient& client, const Reference& ref,
                                  const oci::Platform& platform, FetchedManifest top) {
  Repository repo = Repository::of(ref);
  std::string what = ref.toString();
  ResolvedImage image;
  image.reference = ref;
  image.digest = top.digest;
  FetchedManifest current = std::move(top);
  for (int depth = 0; oci::isIndexMediaType(current.media_type); ++depth) {
    if (depth >= 3) return invalidArgument(fmt::format("{}: indexes nested too deeply", what));
    LF_ASSIGN_OR_RETURN(oci::Index index, oci::Index::fromJson(current.bytes, what + ": index"));
    LF_ASSIGN_OR_RETURN(oci::Descriptor d, selectPlatform(index, platform, what));
    if (image.index_bytes.empty()) image.index_bytes = current.bytes;
    LF_ASSIGN_OR_RETURN(current, client.getManifest(repo, d.digest.toString()));
    if (current.digest != d.digest) {
      return dataLoss(
          fmt::format("{}: manifest {} does not match the index", what, current.digest.toString()));
    }
    if (current.media_type.empty()) current.media_type = d.media_type;
  }
  auto manifest = oci::Manifest::fromJson(current.bytes, what + ": manifest");
  if (!manifest.isOk()) return manifest.status();
  if (!current.media_type.empty() && !oci::isManifestMediaType(current.media_type)) {
    return invalidArgument(
        fmt::format("{}: unsupported manifest type \"{}\"", what, current.media_type));
  }
  image.manifest = std::move(*manifest);
  image.manifest_digest = current.digest;
  image.manifest_media_type =
      current.media_type.empty() ? image.manifest.media_type : current.media_type;
  image.manifest_bytes = std::move(current.bytes);
  return image;
}

Status fetchConfig(RegistryClient& client, ResolvedImage& image) {
  const oci::Descriptor& config = image.manifest.config;
  if (config.size > client.config().max_manifest_bytes) {
    return resourceExhausted(fmt::format("{}: config is {} bytes, over the {} byte limit",
                                         image.reference.toString(), config.size,
                                         client.config().max_manifest_bytes));
  }
  std::string bytes;
  Status s = client.readBlob(
      Repository::of(image.reference), config.digest, [&](std::string_view chunk) -> Status {
        if (bytes.size() + chunk.size() > config.size) {
          return dataLoss(fmt::format("config {} is longer than its descriptor's {} bytes",
                                      config.digest.toString(), config.size));
        }
        bytes.append(chunk);
        return Status::ok();
      });
  LF_RETURN_IF_ERROR(s);
  image.config_bytes = std::move(bytes);
  return Status::ok();
}

}  // namespace

Result<ResolvedImage> resolveImage(RegistryClient& client, const Reference& ref,
                                   const oci::Platform& platform) {
  LF_ASSIGN_OR_RETURN(FetchedManifest top,
                      client.getManifest(Repository::of(ref), ref.manifestReference()));
  LF_ASSIGN_OR_RETURN(ResolvedImage image, resolveFrom(client, ref, platform, std::move(top)));
  LF_RETURN_IF_ERROR(fetchConfig(client, image));
  return image;
}

Result<ResolvedImage> pullImage(RegistryClient& client, const Reference& ref,
                                const oci::Platform& platform, blob::BlobStore& store) {
  LF_ASSIGN_OR_RETURN(ResolvedImage image, resolveImage(client, ref, platform));
  Repository repo = Repository::of(ref);
  LF_RETURN_IF_ERROR(store.putBytes(image.config_bytes, image.manifest.config.digest).status());
  std::vector<oci::Descriptor> layers;
  std::set<Digest> seen;
  for (const auto& l : image.manifest.layers) {
    if (seen.insert(l.digest).second) layers.push_back(l);
  }
  LF_RETURN_IF_ERROR(parallelFor(
      layers.size(), client.config().max_parallel_downloads,
      [&](size_t i) { return client.fetchBlob(repo, layers[i].digest, layers[i].size, store); }));
  LF_RETURN_IF_ERROR(store.putBytes(image.manifest_bytes, image.manifest_digest).status());
  if (!image.index_bytes.empty()) {
    LF_RETURN_IF_ERROR(store.putBytes(image.index_bytes, image.digest).status());
  }
  return image;
}

Repository pushRepository(const Reference& ref, bool default_library_namespace) {
  Repository repo = Repository::of(ref);
  if (default_library_namespace && repo.name.find('/') == std::string::npos) {
    repo.name = "library/" + repo.name;
  }
  return repo;
}

namespace {

// Makes one blob present in `repo`: already there, mounted, or uploaded.
Status pushBlob(RegistryClient& client, const Repository& repo, const oci::Descriptor& d,
                blob::BlobStore& store, const PushOptions& options, PushResult& result,
                std::mutex& mu) {
  auto report = [&](std::string_view how) {
    if (options.progress) {
      options.progress(fmt::format("{} {} ({} bytes)", how, d.digest.toString(), d.size));
    }
  };
  LF_ASSIGN_OR_RETURN(auto present, client.statBlob(repo, d.digest));
  if (present) {
    std::lock_guard lock(mu);
    ++result.blobs_present;
    report("present");
    return Status::ok();
  }
  for (const auto& from : options.mount_from) {
    if (from == repo.name) continue;
    LF_ASSIGN_OR_RETURN(bool mounted, client.mountBlob(repo, d.digest, from));
    if (mounted) {
      std::lock_guard lock(mu);
      ++result.blobs_mounted;
      report(fmt::format("mounted from {}", from));
      return Status::ok();
    }
  }
  LF_ASSIGN_OR_RETURN(auto local, store.stat(d.digest));
  if (!local) {
    return notFound(fmt::format("push {}: blob {} is not in the local store", repo.toString(),
                                d.digest.toString()));
  }
  if (local->size != d.size) {
    return dataLoss(fmt::format("push {}: blob {} is {} bytes, the manifest says {}",
                                repo.toString(), d.digest.toString(), local->size, d.size));
  }
  LF_RETURN_IF_ERROR(client.uploadBlob(repo, *local, store));
  std::lock_guard lock(mu);
  ++result.blobs_uploaded;
  report("uploaded");
  return Status::ok();
}

}  // namespace

Result<PushResult> pushImage(RegistryClient& client, const Reference& target,
                             const Digest& manifest_digest, blob::BlobStore& store,
                             const PushOptions& options) {
  Repository repo = pushRepository(target, options.default_library_namespace);
  PushResult result;
  result.repository = repo.toString();
  if (options.progress) options.progress(fmt::format("pushing to {}", result.repository));
  LF_ASSIGN_OR_RETURN(std::string manifest_bytes,
                      store.getBytes(manifest_digest, oci::kMaxManifestBytes));
  LF_ASSIGN_OR_RETURN(
      oci::Manifest manifest,
      oci::Manifest::fromJson(manifest_bytes, "manifest " + manifest_digest.toString()));
  if (manifest.media_type.empty()) {
    return invalidArgument(fmt::format("push manifest {}: it has no mediaType field to send",
                                       manifest_digest.toString()));
  }
  std::vector<oci::Descriptor> blobs = {manifest.config};
  std::set<Digest> seen = {manifest.config.digest};
  for (const auto& l : manifest.layers) {
    if (seen.insert(l.digest).second) blobs.push_back(l);
  }
  std::mutex mu;
  LF_RETURN_IF_ERROR(parallelFor(blobs.size(), client.config().max_parallel_uploads, [&](size_t i) {
    return pushBlob(client, repo, blobs[i], store, options, result, mu);
  }));
  std::vector<std::string> tags;
  if (!target.tag.empty()) tags.push_back(target.tag);
  for (const auto& t : options.extra_tags) {
    LF_RETURN_IF_ERROR(validateTag(t));
    if (std::find(tags.begin(), tags.end(), t) == tags.end()) tags.push_back(t);
  }
  if (tags.empty()) tags.push_back(manifest_digest.toString());
  for (const auto& tag : tags) {
    LF_ASSIGN_OR_RETURN(Digest pushed,
                        client.putManifest(repo, tag, manifest.media_type, manifest_bytes));
    if (pushed != manifest_digest) {
      return internalError(
          fmt::format("push {}: manifest digest changed in flight", repo.toString()));
    }
    if (options.progress) options.progress(fmt::format("tagged {}:{}", result.repository, tag));
  }
  result.manifest_digest = manifest_digest;
  return result;
}

}  // namespace lf::registry
