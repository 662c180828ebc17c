#include "coordinator/state/hit_merge_operator.h"

#include <algorithm>
#include <string>

#include "proto/layerfarm/v1/state.pb.h"

namespace lf::coordinator {
namespace {

namespace pb = ::layerfarm::v1;

// Adds the operands that parse; damaged ones are dropped (see the header).
void sumDeltas(const std::vector<rocksdb::Slice>& operands, pb::CacheHitDelta* sum) {
  for (const rocksdb::Slice& operand : operands) {
    pb::CacheHitDelta delta;
    if (!delta.ParseFromArray(operand.data(), static_cast<int>(operand.size()))) {
      continue;
    }
    sum->set_count(sum->count() + delta.count());
    sum->set_last_hit_unix_ms(std::max(sum->last_hit_unix_ms(), delta.last_hit_unix_ms()));
  }
}

class HitMergeOperator : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override {
    if (in.existing_value == nullptr || in.existing_value->empty()) {
      out->new_value.clear();  // hits on a key without an entry: "no entry"
      return true;
    }
    pb::CacheEntryRecord entry;
    if (!entry.ParseFromArray(in.existing_value->data(),
                              static_cast<int>(in.existing_value->size()))) {
      out->existing_operand = *in.existing_value;  // keep the damage visible to readers
      return true;
    }
    pb::CacheHitDelta sum;
    sumDeltas(in.operand_list, &sum);
    entry.set_hit_count(entry.hit_count() + sum.count());
    entry.set_last_hit_unix_ms(std::max(entry.last_hit_unix_ms(), sum.last_hit_unix_ms()));
    entry.SerializeToString(&out->new_value);
    return true;
  }

  bool PartialMergeMulti(const rocksdb::Slice& /*key*/, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    pb::CacheHitDelta sum;
    sumDeltas(std::vector<rocksdb::Slice>(operands.begin(), operands.end()), &sum);
    sum.SerializeToString(new_value);
    return true;
  }

  const char* Name() const override { return "layerfarm.CacheHitMerge"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> newHitMergeOperator() {
  return std::make_shared<HitMergeOperator>();
}

}  // namespace lf::coordinator
