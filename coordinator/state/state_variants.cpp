// StateStore: layer variants, the compressed copies of uncompressed build layers made when an
// image is pushed or exported (coordinator/assembly/layer_variants.h). One small record per
// (layer, compression); the descriptor is stored as its OCI JSON, the form every other part of
// the farm already reads and validates (oci::Descriptor::fromJson), so no proto message is needed.

#include <rocksdb/write_batch.h>

#include "coordinator/state/rocks_status.h"
#include "coordinator/state/state_store.h"
#include "coordinator/state/state_store_internal.h"

namespace lf::coordinator {
namespace {

std::string variantKey(const Digest& source, std::string_view compression) {
  return source.toString() + " " + std::string(compression);
}

}  // namespace

Status StateStore::putLayerVariant(const Digest& source, std::string_view compression,
                                   const oci::Descriptor& variant) {
  const std::string key = variantKey(source, compression);
  if (compression.empty() || compression.find(' ') != std::string_view::npos) {
    return invalidArgument(recordContext(kCfLayerVariants, key) +
                           ": compression name must be a non-empty word");
  }
  if (variant.media_type.empty()) {
    return invalidArgument(recordContext(kCfLayerVariants, key) + ": variant has no media type");
  }
  rocksdb::WriteBatch batch;
  LF_RETURN_IF_ERROR(fromRocks(batch.Put(handles_->layer_variants, key, variant.toJson().dump()),
                               recordContext(kCfLayerVariants, key)));
  return write(batch, true, recordContext(kCfLayerVariants, key));
}

Result<std::optional<oci::Descriptor>> StateStore::getLayerVariant(const Digest& source,
                                                                   std::string_view compression) {
  const std::string key = variantKey(source, compression);
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_->layer_variants, key, &value);
  if (s.IsNotFound()) {
    return std::optional<oci::Descriptor>();
  }
  LF_RETURN_IF_ERROR(fromRocks(s, recordContext(kCfLayerVariants, key)));
  nlohmann::json json = nlohmann::json::parse(value.ToStringView(), nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return dataLoss(recordContext(kCfLayerVariants, key) + ": not JSON");
  }
  Result<oci::Descriptor> descriptor = oci::Descriptor::fromJson(json, "variant");
  if (!descriptor.isOk()) {
    return dataLoss(recordContext(kCfLayerVariants, key) + ": " + descriptor.status().message());
  }
  return std::optional<oci::Descriptor>(std::move(descriptor).value());
}

}  // namespace lf::coordinator
