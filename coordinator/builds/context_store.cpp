#include "coordinator/builds/context_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <utility>

#include "common/context/context_tar_convert.h"
#include "coordinator/builds/unix_time.h"
#include "coordinator/metrics/coordinator_metrics.h"

namespace lf::coordinator {
namespace {

std::string notPosted(const Digest& id) {
  return "context manifest " + id.toString() + " was never posted (POST /v1/contexts first)";
}

}  // namespace

Result<bool> ContextStore::ready(const Digest& id) const {
  LF_ASSIGN_OR_RETURN(auto record, state_.getContext(id));
  if (!record || record->manifest.empty()) return false;
  LF_ASSIGN_OR_RETURN(auto info, blobs_.stat(record->manifest));
  return info.has_value();
}

Result<Digest> ContextStore::resolve(const Digest& id) const {
  LF_ASSIGN_OR_RETURN(auto record, state_.getContext(id));
  if (record && record->manifest.empty()) {
    return invalidArgument("context: " + id.toString() +
                           " was uploaded before context manifests existed; upload it again "
                           "(layerfarm build does, or PUT /v1/contexts/" +
                           id.toString() + ")");
  }
  std::optional<blob::BlobInfo> manifest;
  if (record) {
    LF_ASSIGN_OR_RETURN(manifest, blobs_.stat(record->manifest));
  }
  if (!manifest) {
    return invalidArgument("context: " + id.toString() +
                           " has not been uploaded (POST /v1/contexts with its manifest, or "
                           "PUT /v1/contexts/" +
                           id.toString() + " with its tar)");
  }
  return record->manifest;
}

Result<context::ContextManifest> ContextStore::loadManifest(const Digest& id) const {
  auto bytes = blobs_.getBytes(id, context::kMaxManifestBytes);
  if (!bytes.isOk()) {
    if (bytes.status().code() == StatusCode::kNotFound) return notFound(notPosted(id));
    if (bytes.status().code() == StatusCode::kResourceExhausted) return notFound(notPosted(id));
    return bytes.status();
  }
  auto manifest = context::parseContextManifest(*bytes);
  // A blob that is not a manifest (a layer, a legacy tar) was never posted as one.
  if (!manifest.isOk()) return notFound(notPosted(id));
  return manifest;
}

Result<std::map<Digest, uint64_t>> ContextStore::manifestFiles(const Digest& id) const {
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, loadManifest(id));
  std::map<Digest, uint64_t> files;
  for (const context::ManifestEntry& m : manifest.entries) {
    if (m.entry.type == context::EntryType::kRegular) files.emplace(m.entry.content, m.entry.size);
  }
  return files;
}

Result<ContextUploadStatus> ContextStore::check(const Digest& id,
                                                const context::ContextManifest& manifest,
                                                bool* recorded, uint64_t* reused_bytes) const {
  ContextUploadStatus out;
  out.digest = id;
  std::map<Digest, std::pair<uint64_t, const std::string*>> sizes;  // size, first path
  for (const context::ManifestEntry& m : manifest.entries) {
    const context::ContextEntry& e = m.entry;
    if (e.type != context::EntryType::kRegular) continue;
    ++out.files;
    out.bytes += e.size;
    auto [it, inserted] = sizes.emplace(e.content, std::make_pair(e.size, &e.path));
    if (!inserted && it->second.first != e.size) {
      return invalidArgument(fmt::format(
          "context manifest: entry \"{}\": size {} but \"{}\" with the same digest {} has size {}",
          e.path, e.size, *it->second.second, e.content.toString(), it->second.first));
    }
  }
  uint64_t reused = 0;
  for (const auto& [digest, size_path] : sizes) {
    LF_ASSIGN_OR_RETURN(auto info, blobs_.stat(digest));
    if (!info) {
      out.missing.push_back(digest);
      out.missing_bytes += size_path.first;
    } else if (info->size != size_path.first) {
      return invalidArgument(
          fmt::format("context manifest: entry \"{}\": size {} but {} is {} bytes",
                      *size_path.second, size_path.first, digest.toString(), info->size));
    } else {
      reused += size_path.first;
    }
  }
  if (reused_bytes != nullptr) *reused_bytes = reused;
  *recorded = false;
  if (out.missing.empty()) LF_RETURN_IF_ERROR(record(id, out.bytes, id, recorded));
  return out;
}

Status ContextStore::record(const Digest& id, uint64_t size, const Digest& manifest,
                            bool* created) const {
  LF_ASSIGN_OR_RETURN(auto existing, state_.getContext(id));
  const int64_t now = nowUnixMs();
  *created = !existing || existing->manifest != manifest;
  ContextRecord record;
  record.digest = id;
  record.size = size;
  record.manifest = manifest;
  record.uploaded_unix_ms = existing ? existing->uploaded_unix_ms : now;
  record.last_used_unix_ms = now;
  return state_.putContext(record);
}

Result<ContextUploadStatus> ContextStore::addManifest(std::string_view bytes) const {
  if (bytes.size() > context::kMaxManifestBytes) {
    return resourceExhausted(fmt::format("context manifest is {} bytes, over the limit of {}",
                                         bytes.size(), context::kMaxManifestBytes));
  }
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, context::parseContextManifest(bytes));
  const Digest id = Digest::sha256Of(bytes);
  LF_ASSIGN_OR_RETURN(auto stored, blobs_.stat(id));
  if (!stored) LF_RETURN_IF_ERROR(blobs_.putBytes(bytes, id).status());
  bool recorded = false;
  uint64_t reused = 0;
  LF_ASSIGN_OR_RETURN(ContextUploadStatus out, check(id, manifest, &recorded, &reused));
  // Counted here only: what a POST finds present is what the client need not send.
  if (metrics_ != nullptr) metrics_->contextFileBytes(0, reused);
  out.created = !stored;
  return out;
}

Result<ContextUploadStatus> ContextStore::filesAdded(const Digest& id) const {
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, loadManifest(id));
  bool recorded = false;
  LF_ASSIGN_OR_RETURN(ContextUploadStatus out, check(id, manifest, &recorded));
  out.created = recorded;
  return out;
}

Status ContextStore::addTar(const Digest& tar, uint64_t size) const {
  LF_ASSIGN_OR_RETURN(context::ContextManifest manifest, context::convertContextTar(blobs_, tar));
  const std::string bytes = context::encodeContextManifest(manifest);
  LF_ASSIGN_OR_RETURN(blob::BlobInfo info, blobs_.putBytes(bytes));
  bool recorded = false;
  LF_ASSIGN_OR_RETURN(ContextUploadStatus status, check(info.digest, manifest, &recorded));
  if (!status.missing.empty()) {
    // convertContextTar stored every file a moment ago; nothing deletes file blobs.
    return internalError("context " + tar.toString() + ": " + status.missing.front().toString() +
                         " vanished right after the tar was split");
  }
  bool created = false;
  LF_RETURN_IF_ERROR(record(tar, size, info.digest, &created));
  spdlog::info("context={} manifest={} files={} bytes={} converted from a tar", tar.toString(),
               info.digest.toString(), status.files, status.bytes);
  return Status::ok();
}

}  // namespace lf::coordinator
