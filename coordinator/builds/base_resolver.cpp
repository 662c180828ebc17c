// How a FROM reference is resolved:
//   1. an answer for (reference, platform) younger than the TTL (pinned: any age) is returned;
//   2. a concurrent resolution of the same key is waited for (single flight);
//   3. else the tag is HEADed (pinned references skip this) to the top-level digest, and the
//      content for (digest, platform) comes from memory, from the blob store (everything already
//      there: a restart, or another tag of the same image), or from a pull by digest.
// A HEAD is one request (and free of Docker Hub's pull limits), so a TTL expiry with the tag
// unmoved costs one round trip and no transfer. When the registry is unreachable, a reference
// that resolved before keeps its last digest (see resolve()).

#include "coordinator/builds/base_resolver.h"

#include <fmt/format.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/oci/manifest.h"
#include "common/registry/image_transfer.h"
#include "common/registry/reference.h"

namespace lf::coordinator {

namespace {

using Clock = std::chrono::steady_clock;

// Digest-addressed content never changes, so these entries are only dropped to bound memory; a
// coordinator sees a few hundred distinct bases, far below this.
constexpr size_t kMaxContentEntries = 4096;

oci::Platform ociPlatform(const plan::Platform& p) {
  oci::Platform out;
  out.os = p.os;
  out.architecture = p.architecture;
  out.variant = p.variant;
  return out;
}

// The part of a resolution that depends only on (top-level digest, platform).
struct Content {
  plan::BaseImage plan_base;
  BaseImageInfo image;
};

// Turns a pulled (or locally found) manifest and config into what the plan and assembly need.
Result<Content> makeContent(const Digest& manifest_digest, const oci::Manifest& manifest,
                            std::string_view config_bytes) {
  const std::string what = "config " + manifest.config.digest.toString();
  LF_ASSIGN_OR_RETURN(oci::ImageConfig config, oci::ImageConfig::fromJson(config_bytes, what));
  if (config.rootfs.diff_ids.size() != manifest.layers.size()) {
    return invalidArgument(fmt::format("manifest {} has {} layers but its config lists {} diff_ids",
                                       manifest_digest.toString(), manifest.layers.size(),
                                       config.rootfs.diff_ids.size()));
  }
  Content out;
  out.plan_base.manifest_digest = manifest_digest;
  out.plan_base.config = runtimeConfigOf(config);
  out.plan_base.layer_count = static_cast<int>(manifest.layers.size());
  out.image.config = std::move(config);
  out.image.layers = manifest.layers;
  return out;
}

// Every blob of an image already in the store (after a restart, or another tag of the same
// image): resolves without the registry. nullopt when anything is missing or unreadable; the
// caller then pulls, which repairs the store and reports real errors.
std::optional<Content> contentFromStore(blob::BlobStore& store, const Digest& top,
                                        const oci::Platform& platform) {
  auto bytes = store.getBytes(top, oci::kMaxManifestBytes);
  if (!bytes.isOk()) return std::nullopt;
  Digest manifest_digest = top;
  auto json = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  if (json.contains("manifests")) {
    auto index = oci::Index::fromJson(*bytes, "index");
    if (!index.isOk()) return std::nullopt;
    auto chosen = registry::selectPlatform(*index, platform, "index");
    if (!chosen.isOk()) return std::nullopt;
    manifest_digest = chosen->digest;
    bytes = store.getBytes(manifest_digest, oci::kMaxManifestBytes);
    if (!bytes.isOk()) return std::nullopt;
  }
  auto manifest = oci::Manifest::fromJson(*bytes, "manifest");
  if (!manifest.isOk()) return std::nullopt;
  for (const auto& layer : manifest->layers) {
    auto info = store.stat(layer.digest);
    if (!info.isOk() || !*info || (*info)->size != layer.size) return std::nullopt;
  }
  auto config_bytes = store.getBytes(manifest->config.digest, oci::kMaxManifestBytes);
  if (!config_bytes.isOk()) return std::nullopt;
  auto content = makeContent(manifest_digest, *manifest, *config_bytes);
  if (!content.isOk()) return std::nullopt;
  return std::move(*content);
}

bool isTransient(const Status& status) {
  return status.code() == StatusCode::kUnavailable ||
         status.code() == StatusCode::kDeadlineExceeded;
}

}  // namespace

struct BaseResolver::Impl {
  registry::RegistryClient& client;
  blob::BlobStore& store;
  BaseResolverOptions options;

  // One resolution in progress; later callers for the same key wait for its result.
  struct Flight {
    bool done = false;
    std::optional<Result<ResolvedBase>> result;
  };
  // A reference's last answer. Pinned references never expire.
  struct Answer {
    std::shared_ptr<const ResolvedBase> base;
    Clock::time_point expires;
  };

  std::mutex mu;
  std::condition_variable flight_done;
  std::map<std::string, std::shared_ptr<Flight>> flights;  // by (reference, platform)
  std::map<std::string, Answer> answers;                   // by (reference, platform)
  // Content by (top-level digest, platform): a re-resolution that finds the tag unmoved, or
  // another tag naming the same image, needs no pull.
  std::map<std::string, std::shared_ptr<const Content>> contents;

  Impl(registry::RegistryClient& c, blob::BlobStore& s, BaseResolverOptions o)
      : client(c), store(s), options(o) {}

  Result<ResolvedBase> resolveUncached(const registry::Reference& ref,
                                       const plan::Platform& platform);
  Result<std::shared_ptr<const Content>> contentFor(const registry::Reference& ref,
                                                    const Digest& top,
                                                    const plan::Platform& platform);
};

Result<std::shared_ptr<const Content>> BaseResolver::Impl::contentFor(
    const registry::Reference& ref, const Digest& top, const plan::Platform& platform) {
  const std::string key = top.toString() + "|" + platform.toString();
  {
    std::lock_guard lock(mu);
    auto it = contents.find(key);
    if (it != contents.end()) return it->second;
  }
  oci::Platform want = ociPlatform(platform);
  std::optional<Content> content = contentFromStore(store, top, want);
  if (!content) {
    // Pull by digest, so a tag that moves between our HEAD and GET cannot mix two images.
    registry::Reference pinned = ref;
    pinned.digest = top;
    LF_ASSIGN_OR_RETURN(registry::ResolvedImage image,
                        registry::pullImage(client, pinned, want, store));
    LF_ASSIGN_OR_RETURN(content,
                        makeContent(image.manifest_digest, image.manifest, image.config_bytes));
  }
  auto shared = std::make_shared<const Content>(std::move(*content));
  std::lock_guard lock(mu);
  if (contents.size() >= kMaxContentEntries) contents.erase(contents.begin());
  contents[key] = shared;
  return shared;
}

Result<ResolvedBase> BaseResolver::Impl::resolveUncached(const registry::Reference& ref,
                                                         const plan::Platform& platform) {
  Digest top;
  if (ref.digest) {
    top = *ref.digest;
  } else {
    LF_ASSIGN_OR_RETURN(registry::ManifestHead head, registry::resolveDigest(client, ref));
    top = head.digest;
  }
  LF_ASSIGN_OR_RETURN(std::shared_ptr<const Content> content, contentFor(ref, top, platform));
  ResolvedBase out;
  out.reference = ref.toString();
  out.repository = ref.name();
  out.plan_base = content->plan_base;
  out.image = content->image;
  return out;
}

BaseResolver::BaseResolver(registry::RegistryClient& client, blob::BlobStore& store,
                           BaseResolverOptions options)
    : impl_(std::make_unique<Impl>(client, store, options)) {}

BaseResolver::~BaseResolver() = default;

Result<ResolvedBase> BaseResolver::resolve(const std::string& ref_text,
                                           const plan::Platform& platform) {
  const std::string context = "FROM " + ref_text;
  if (ref_text == "scratch") {
    return invalidArgument(context + ": scratch is not an image to resolve");
  }
  auto parsed = registry::Reference::parse(ref_text);
  if (!parsed.isOk()) return parsed.status().withContext(context);
  const registry::Reference& ref = *parsed;
  const std::string key = ref.toString() + "|" + platform.toString();

  Impl& d = *impl_;
  std::shared_ptr<Impl::Flight> flight;
  {
    std::unique_lock lock(d.mu);
    auto answer = d.answers.find(key);
    if (answer != d.answers.end() && Clock::now() < answer->second.expires) {
      return *answer->second.base;
    }
    auto running = d.flights.find(key);
    if (running != d.flights.end()) {
      std::shared_ptr<Impl::Flight> waiting = running->second;
      d.flight_done.wait(lock, [&] { return waiting->done; });
      return *waiting->result;
    }
    flight = std::make_shared<Impl::Flight>();
    d.flights[key] = flight;
  }

  Result<ResolvedBase> result = d.resolveUncached(ref, platform);
  if (!result.isOk()) result = result.status().withContext(context);

  std::lock_guard lock(d.mu);
  auto answer = d.answers.find(key);
  if (result.isOk()) {
    auto expires = ref.digest ? Clock::time_point::max() : Clock::now() + d.options.resolution_ttl;
    if (answer == d.answers.end() && d.answers.size() >= kMaxContentEntries) {
      d.answers.erase(d.answers.begin());
    }
    d.answers[key] = Impl::Answer{std::make_shared<const ResolvedBase>(*result), expires};
  } else if (answer != d.answers.end() && isTransient(result.status())) {
    // The registry is unreachable but the tag resolved before: build on the last known digest
    // (recorded in the build like any other) rather than fail every build while it is down,
    // and wait a TTL before asking again so each build does not sit through the retries.
    answer->second.expires = Clock::now() + d.options.resolution_ttl;
    result = *answer->second.base;
  }
  flight->result = result;
  flight->done = true;
  d.flights.erase(key);
  d.flight_done.notify_all();
  return result;
}

}  // namespace lf::coordinator
