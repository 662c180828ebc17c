#pragma once

// BaseResolver: turns a stage's `FROM <image>` into what the plan and the assembly need
// (issue 6 section 4): the pinned manifest digest, the base's runtime config, and its layers
// and config present in the coordinator's blob store (pull-through: fetched once, shared by
// every later build; workers read base layers from the same store).
//
// Resolution (tag -> digest) is cached for `resolution_ttl` so a burst of builds does not ask
// the registry each time; references pinned by digest are never re-resolved. Concurrent
// resolutions of the same reference share one registry round trip and one pull (single flight).
//
// Thread-safety: thread-safe. Blocking (registry I/O): call from a build's thread.
// Errors: the registry's errors, prefixed with the reference ("FROM busybox:1.36: ...").

#include <chrono>
#include <memory>
#include <string>

#include "common/base/status.h"
#include "common/blob/blob_store.h"
#include "common/plan/build_plan.h"
#include "common/registry/registry_client.h"
#include "coordinator/assembly/image_assembly.h"

namespace lf::coordinator {

struct ResolvedBase {
  std::string reference;    // normalised ("127.0.0.1:5000/library/busybox:1.36")
  std::string repository;   // where it came from ("127.0.0.1:5000/library/busybox"), for mounts
  plan::BaseImage plan_base;  // manifest digest, runtime config, layer count
  BaseImageInfo image;        // config and layer descriptors (all in the blob store)
};

struct BaseResolverOptions {
  std::chrono::milliseconds resolution_ttl{60'000};
  // Registries reached over plain HTTP are the RegistryClient's business (its config).
};

class BaseResolver {
 public:
  // `client` and `store` must outlive the resolver.
  BaseResolver(registry::RegistryClient& client, blob::BlobStore& store,
               BaseResolverOptions options = {});
  ~BaseResolver();

  // `ref` as written after expansion ("busybox:1.36", "registry/team/base@sha256:..."). Pulls
  // the platform's manifest, config and layers into the store when missing.
  Result<ResolvedBase> resolve(const std::string& ref, const plan::Platform& platform);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf::coordinator
