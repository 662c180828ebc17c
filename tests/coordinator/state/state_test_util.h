#pragma once

// Helpers for the StateStore tests: records with plausible contents and an always-ok blob check.

#include <string>

#include "common/digest/digest.h"
#include "coordinator/state/state_records.h"
#include "coordinator/state/state_store.h"

namespace lf::coordinator::testing {

inline Digest digestOf(const std::string& text) { return Digest::sha256Of(text); }

inline CacheEntry makeEntry(const std::string& name, InstructionKind kind = InstructionKind::kRun,
                            uint64_t size = 100) {
  CacheEntry e;
  e.key = digestOf("key:" + name);
  e.layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  e.layer.digest = digestOf("layer:" + name);
  e.layer.size = size;
  e.diff_id = digestOf("diff:" + name);
  e.kind = kind;
  e.created_by = "RUN " + name;
  e.created_by_build = "b-" + name;
  e.created_unix_ms = 1'700'000'000'000;
  return e;
}

inline BlobCheck alwaysPresent() {
  return [](const LayerDescriptor&) { return Status::ok(); };
}

inline BuildRecord makeBuild(const std::string& id, const std::string& tenant,
                             int64_t created_unix_ms, BuildState state = BuildState::kSucceeded) {
  BuildRecord b;
  b.id = id;
  b.tenant = tenant;
  b.state = state;
  b.created_unix_ms = created_unix_ms;
  b.request.tags = {"registry.local/team/app:1"};
  b.request.build_args = {{"VERSION", "1.2"}};
  b.request.dockerfile_path = "Dockerfile";
  b.request.context_digest = digestOf("context:" + id);
  b.request.push = true;
  return b;
}

}  // namespace lf::coordinator::testing
