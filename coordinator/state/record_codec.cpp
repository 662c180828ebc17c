#include "coordinator/state/record_codec.h"

#include <string>

#include "proto/layerfarm/v1/state.pb.h"

namespace lf::coordinator::codec {
namespace pb = ::layerfarm::v1;

namespace {

// Parses a stored digest field; empty stays empty (optional fields), anything else must be a
// valid digest.
Status parseDigestField(const std::string& text, std::string_view field, Digest* out) {
  if (text.empty()) {
    *out = Digest();
    return Status::ok();
  }
  Result<Digest> digest = Digest::parse(text);
  if (!digest.isOk()) {
    return dataLoss("field " + std::string(field) + ": " + digest.status().message());
  }
  *out = std::move(digest).value();
  return Status::ok();
}

template <typename Message>
Status parseMessage(std::string_view bytes, Message* message) {
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return dataLoss("stored " + std::string(Message::descriptor()->name()) + " of " +
                    std::to_string(bytes.size()) + " bytes does not parse");
  }
  return Status::ok();
}

template <typename Message>
std::string serialize(const Message& message) {
  std::string out;
  // Serializing a message we built in memory fails only on a >2 GiB message, which the size
  // limits on requests rule out.
  message.SerializeToString(&out);
  return out;
}

pb::StepKind toProto(InstructionKind kind) {
  switch (kind) {
    case InstructionKind::kRun:
      return pb::STEP_KIND_RUN;
    case InstructionKind::kCopy:
      return pb::STEP_KIND_COPY;
    case InstructionKind::kAdd:
      return pb::STEP_KIND_ADD;
    case InstructionKind::kUnspecified:
      break;
  }
  return pb::STEP_KIND_UNSPECIFIED;
}

InstructionKind fromProto(pb::StepKind kind) {
  switch (kind) {
    case pb::STEP_KIND_RUN:
      return InstructionKind::kRun;
    case pb::STEP_KIND_COPY:
      return InstructionKind::kCopy;
    case pb::STEP_KIND_ADD:
      return InstructionKind::kAdd;
    default:
      return InstructionKind::kUnspecified;
  }
}

void toProto(const LayerDescriptor& layer, pb::Descriptor* out) {
  out->set_media_type(layer.media_type);
  out->set_digest(layer.digest.toString());
  out->set_size(static_cast<int64_t>(layer.size));
}

Status fromProto(const pb::Descriptor& in, std::string_view field, LayerDescriptor* out) {
  out->media_type = in.media_type();
  LF_RETURN_IF_ERROR(parseDigestField(in.digest(), std::string(field) + ".digest", &out->digest));
  if (in.size() < 0) {
    return dataLoss("field " + std::string(field) + ".size is negative");
  }
  out->size = static_cast<uint64_t>(in.size());
  return Status::ok();
}

// Enum values outside the known range (a newer coordinator's) read as the first state so an old
// binary can still list the record; the raw number is lost only in what it shows.
template <typename E>
E enumFromProto(int value, int first, int last, E fallback) {
  if (value < first || value > last) {
    return fallback;
  }
  return static_cast<E>(value - first);
}

}  // namespace

std::string encode(const CacheEntry& entry) {
  pb::CacheEntryRecord m;
  m.set_key(entry.key.toString());
  toProto(entry.layer, m.mutable_layer());
  m.set_diff_id(entry.diff_id.toString());
  m.set_kind(toProto(entry.kind));
  m.set_created_by(entry.created_by);
  m.set_created_by_build(entry.created_by_build);
  m.set_created_unix_ms(entry.created_unix_ms);
  m.set_last_hit_unix_ms(entry.last_hit_unix_ms);
  m.set_hit_count(entry.hit_count);
  return serialize(m);
}

Result<CacheEntry> decodeCacheEntry(std::string_view bytes) {
  pb::CacheEntryRecord m;
  LF_RETURN_IF_ERROR(parseMessage(bytes, &m));
  CacheEntry e;
  LF_RETURN_IF_ERROR(parseDigestField(m.key(), "key", &e.key));
  if (e.key.empty()) {
    return dataLoss("field key is empty");
  }
  LF_RETURN_IF_ERROR(fromProto(m.layer(), "layer", &e.layer));
  if (e.layer.digest.empty()) {
    return dataLoss("field layer.digest is empty");
  }
  LF_RETURN_IF_ERROR(parseDigestField(m.diff_id(), "diff_id", &e.diff_id));
  e.kind = fromProto(m.kind());
  e.created_by = m.created_by();
  e.created_by_build = m.created_by_build();
  e.created_unix_ms = m.created_unix_ms();
  e.last_hit_unix_ms = m.last_hit_unix_ms();
  e.hit_count = m.hit_count();
  return e;
}

std::string encodeHitDelta(uint64_t count, int64_t last_hit_unix_ms) {
  pb::CacheHitDelta m;
  m.set_count(count);
  m.set_last_hit_unix_ms(last_hit_unix_ms);
  return serialize(m);
}

std::string encode(const Alias& alias) {
  pb::AliasRecord m;
  m.set_parent_chain_id(alias.parent_chain_id.toString());
  m.set_instruction_digest(alias.instruction_digest.toString());
  m.set_cache_key(alias.cache_key.toString());
  m.set_created_unix_ms(alias.created_unix_ms);
  return serialize(m);
}

Result<Alias> decodeAlias(std::string_view bytes) {
  pb::AliasRecord m;
  LF_RETURN_IF_ERROR(parseMessage(bytes, &m));
  Alias a;
  LF_RETURN_IF_ERROR(parseDigestField(m.parent_chain_id(), "parent_chain_id", &a.parent_chain_id));
  LF_RETURN_IF_ERROR(
      parseDigestField(m.instruction_digest(), "instruction_digest", &a.instruction_digest));
  LF_RETURN_IF_ERROR(parseDigestField(m.cache_key(), "cache_key", &a.cache_key));
  if (a.cache_key.empty()) {
    return dataLoss("field cache_key is empty");
  }
  a.created_unix_ms = m.created_unix_ms();
  return a;
}

namespace {

void encodeRequest(const BuildRequest& r, pb::BuildRequestRecord* m) {
  for (const std::string& tag : r.tags) {
    m->add_tags(tag);
  }
  for (const auto& [k, v] : r.build_args) {
    (*m->mutable_build_args())[k] = v;
  }
  m->set_target(r.target);
  m->set_dockerfile_path(r.dockerfile_path);
  m->set_context_digest(r.context_digest.toString());
  m->set_platform(r.platform);
  m->set_no_cache(r.no_cache);
  m->set_push(r.push);
  m->set_output(r.output);
}

Status decodeRequest(const pb::BuildRequestRecord& m, BuildRequest* r) {
  r->tags.assign(m.tags().begin(), m.tags().end());
  r->build_args.clear();
  for (const auto& [k, v] : m.build_args()) {
    r->build_args[k] = v;
  }
  r->target = m.target();
  r->dockerfile_path = m.dockerfile_path();
  LF_RETURN_IF_ERROR(
      parseDigestField(m.context_digest(), "request.context_digest", &r->context_digest));
  r->platform = m.platform();
  r->no_cache = m.no_cache();
  r->push = m.push();
  r->output = m.output();
  return Status::ok();
}

void encodeStep(const StepRecord& s, pb::BuildStepRecord* m) {
  m->set_index(s.index);
  m->set_stage(s.stage);
  m->set_key(s.key.toString());
  m->set_instruction(s.instruction);
  m->set_kind(toProto(s.kind));
  m->set_state(static_cast<pb::StepStateProto>(static_cast<int>(s.state) + 1));
  m->set_cached(s.cached);
  m->set_job_id(s.job_id);
  m->set_worker(s.worker);
  m->set_queued_unix_ms(s.queued_unix_ms);
  m->set_started_unix_ms(s.started_unix_ms);
  m->set_finished_unix_ms(s.finished_unix_ms);
  if (s.layer) {
    toProto(*s.layer, m->mutable_layer());
  }
  m->set_diff_id(s.diff_id.toString());
  m->set_error(s.error);
}

Status decodeStep(const pb::BuildStepRecord& m, size_t i, StepRecord* s) {
  const std::string field = "steps[" + std::to_string(i) + "]";
  s->index = m.index();
  s->stage = m.stage();
  LF_RETURN_IF_ERROR(parseDigestField(m.key(), field + ".key", &s->key));
  s->instruction = m.instruction();
  s->kind = fromProto(m.kind());
  s->state = enumFromProto<StepState>(m.state(), pb::STEP_STATE_PENDING, pb::STEP_STATE_CANCELLED,
                                      StepState::kPending);
  s->cached = m.cached();
  s->job_id = m.job_id();
  s->worker = m.worker();
  s->queued_unix_ms = m.queued_unix_ms();
  s->started_unix_ms = m.started_unix_ms();
  s->finished_unix_ms = m.finished_unix_ms();
  if (m.has_layer()) {
    LayerDescriptor layer;
    LF_RETURN_IF_ERROR(fromProto(m.layer(), field + ".layer", &layer));
    s->layer = std::move(layer);
  }
  LF_RETURN_IF_ERROR(parseDigestField(m.diff_id(), field + ".diff_id", &s->diff_id));
  s->error = m.error();
  return Status::ok();
}

}  // namespace

std::string encode(const BuildRecord& build) {
  pb::BuildRecordProto m;
  m.set_id(build.id);
  m.set_tenant(build.tenant);
  m.set_state(static_cast<pb::BuildStateProto>(static_cast<int>(build.state) + 1));
  encodeRequest(build.request, m.mutable_request());
  m.set_created_unix_ms(build.created_unix_ms);
  m.set_started_unix_ms(build.started_unix_ms);
  m.set_finished_unix_ms(build.finished_unix_ms);
  for (const StepRecord& step : build.steps) {
    encodeStep(step, m.add_steps());
  }
  m.set_manifest_digest(build.manifest_digest.toString());
  m.set_config_digest(build.config_digest.toString());
  m.set_failure_reason(build.failure_reason);
  return serialize(m);
}

Result<BuildRecord> decodeBuild(std::string_view bytes) {
  pb::BuildRecordProto m;
  LF_RETURN_IF_ERROR(parseMessage(bytes, &m));
  BuildRecord b;
  b.id = m.id();
  if (b.id.empty()) {
    return dataLoss("field id is empty");
  }
  b.tenant = m.tenant();
  if (m.state() == pb::BUILD_STATE_UNSPECIFIED) {
    return dataLoss("field state is unset");
  }
  b.state = enumFromProto<BuildState>(m.state(), pb::BUILD_STATE_QUEUED, pb::BUILD_STATE_CANCELLED,
                                      BuildState::kQueued);
  LF_RETURN_IF_ERROR(decodeRequest(m.request(), &b.request));
  b.created_unix_ms = m.created_unix_ms();
  b.started_unix_ms = m.started_unix_ms();
  b.finished_unix_ms = m.finished_unix_ms();
  b.steps.resize(static_cast<size_t>(m.steps_size()));
  for (int i = 0; i < m.steps_size(); ++i) {
    LF_RETURN_IF_ERROR(decodeStep(m.steps(i), static_cast<size_t>(i), &b.steps[i]));
  }
  LF_RETURN_IF_ERROR(parseDigestField(m.manifest_digest(), "manifest_digest", &b.manifest_digest));
  LF_RETURN_IF_ERROR(parseDigestField(m.config_digest(), "config_digest", &b.config_digest));
  b.failure_reason = m.failure_reason();
  return b;
}

std::string encode(const JobRecord& job) {
  pb::JobRecordProto m;
  m.set_id(job.id);
  m.set_key(job.key.toString());
  for (const std::string& id : job.build_ids) {
    m.add_build_ids(id);
  }
  m.set_attempt(job.attempt);
  m.set_worker(job.worker);
  m.set_lease_expiry_unix_ms(job.lease_expiry_unix_ms);
  m.set_state(static_cast<pb::JobStateProto>(static_cast<int>(job.state) + 1));
  m.set_created_unix_ms(job.created_unix_ms);
  m.set_started_unix_ms(job.started_unix_ms);
  m.set_finished_unix_ms(job.finished_unix_ms);
  m.set_error(job.error);
  return serialize(m);
}

Result<JobRecord> decodeJob(std::string_view bytes) {
  pb::JobRecordProto m;
  LF_RETURN_IF_ERROR(parseMessage(bytes, &m));
  JobRecord j;
  j.id = m.id();
  if (j.id.empty()) {
    return dataLoss("field id is empty");
  }
  LF_RETURN_IF_ERROR(parseDigestField(m.key(), "key", &j.key));
  j.build_ids.assign(m.build_ids().begin(), m.build_ids().end());
  j.attempt = m.attempt();
  j.worker = m.worker();
  j.lease_expiry_unix_ms = m.lease_expiry_unix_ms();
  if (m.state() == pb::JOB_STATE_UNSPECIFIED) {
    return dataLoss("field state is unset");
  }
  j.state = enumFromProto<JobState>(m.state(), pb::JOB_STATE_QUEUED, pb::JOB_STATE_LOST,
                                    JobState::kQueued);
  j.created_unix_ms = m.created_unix_ms();
  j.started_unix_ms = m.started_unix_ms();
  j.finished_unix_ms = m.finished_unix_ms();
  j.error = m.error();
  return j;
}

std::string encode(const ImageRecord& image) {
  pb::ImageRecordProto m;
  m.set_manifest_digest(image.manifest_digest.toString());
  m.set_config_digest(image.config_digest.toString());
  m.set_media_type(image.media_type);
  for (const std::string& ref : image.references) {
    m.add_references(ref);
  }
  m.set_build_id(image.build_id);
  m.set_platform(image.platform);
  m.set_created_unix_ms(image.created_unix_ms);
  for (const HistoryEntry& h : image.history) {
    pb::ImageHistoryEntry* e = m.add_history();
    e->set_created_unix_ms(h.created_unix_ms);
    e->set_created_by(h.created_by);
    e->set_comment(h.comment);
    e->set_empty_layer(h.empty_layer);
    e->set_layer_size(h.layer_size);
  }
  return serialize(m);
}

Result<ImageRecord> decodeImage(std::string_view bytes) {
  pb::ImageRecordProto m;
  LF_RETURN_IF_ERROR(parseMessage(bytes, &m));
  ImageRecord img;
  LF_RETURN_IF_ERROR(
      parseDigestField(m.manifest_digest(), "manifest_digest", &img.manifest_digest));
  if (img.manifest_digest.empty()) {
    return dataLoss("field manifest_digest is empty");
  }
  LF_RETURN_IF_ERROR(parseDigestField(m.config_digest(), "config_digest", &img.config_digest));
  img.media_type = m.media_type();
  img.references.assign(m.references().begin(), m.references().end());
  img.build_id = m.build_id();
  img.platform = m.platform();
  img.created_unix_ms = m.created_unix_ms();
  for (const pb::ImageHistoryEntry& e : m.history()) {
    img.history.push_back(HistoryEntry{.created_unix_ms = e.created_unix_ms(),
                                       .created_by = e.created_by(),
                                       .comment = e.comment(),
                                       .empty_layer = e.empty_layer(),
                                       .layer_size = e.layer_size()});
  }
  return img;
}

std::string encode(const ContextRecord& context) {
  pb::ContextRecordProto m;
  m.set_digest(context.digest.toString());
  m.set_size(context.size);
  m.set_uploaded_unix_ms(context.uploaded_unix_ms);
  m.set_last_used_unix_ms(context.last_used_unix_ms);
  if (!context.manifest.empty()) m.set_manifest(context.manifest.toString());
  return serialize(m);
}

Result<ContextRecord> decodeContext(std::string_view bytes) {
  pb::ContextRecordProto m;
  LF_RETURN_IF_ERROR(parseMessage(bytes, &m));
  ContextRecord c;
  LF_RETURN_IF_ERROR(parseDigestField(m.digest(), "digest", &c.digest));
  if (c.digest.empty()) {
    return dataLoss("field digest is empty");
  }
  c.size = m.size();
  c.uploaded_unix_ms = m.uploaded_unix_ms();
  c.last_used_unix_ms = m.last_used_unix_ms();
  LF_RETURN_IF_ERROR(parseDigestField(m.manifest(), "manifest", &c.manifest));
  return c;
}

}  // namespace lf::coordinator::codec
