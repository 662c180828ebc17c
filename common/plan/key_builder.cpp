#include "common/plan/key_builder.h"

namespace lf::plan {

namespace {
constexpr size_t kDirectBytes = 64 * 1024;
}  // namespace

KeyBuilder::KeyBuilder(std::string_view kind) {
  raw('V', kKeyVersion);
  raw('K', kind);
}

void KeyBuilder::raw(char tag, std::string_view bytes) {
  // tag, 8-byte little-endian length, bytes.
  char header[9];
  header[0] = tag;
  uint64_t n = bytes.size();
  for (int i = 0; i < 8; ++i) header[1 + i] = static_cast<char>((n >> (8 * i)) & 0xff);
  buffer_.append(header, sizeof(header));
  if (bytes.size() >= kDirectBytes) {
    flush();
    hash_.update(bytes);
    return;
  }
  buffer_.append(bytes);
  if (buffer_.size() >= kDirectBytes) flush();
}

void KeyBuilder::flush() {
  hash_.update(buffer_);
  buffer_.clear();
}

KeyBuilder& KeyBuilder::field(std::string_view name, std::string_view value) {
  raw('N', name);
  raw('S', value);
  return *this;
}

KeyBuilder& KeyBuilder::field(std::string_view name, int64_t value) {
  raw('N', name);
  raw('I', std::to_string(value));
  return *this;
}

KeyBuilder& KeyBuilder::field(std::string_view name, bool value) {
  raw('N', name);
  raw('B', value ? "1" : "0");
  return *this;
}

KeyBuilder& KeyBuilder::field(std::string_view name, const Digest& value) {
  raw('N', name);
  raw('D', value.toString());
  return *this;
}

KeyBuilder& KeyBuilder::list(std::string_view name, const std::vector<std::string>& values) {
  raw('N', name);
  raw('L', std::to_string(values.size()));
  for (const auto& v : values) raw('S', v);
  return *this;
}

KeyBuilder& KeyBuilder::map(std::string_view name,
                            const std::map<std::string, std::string>& values) {
  raw('N', name);
  raw('M', std::to_string(values.size()));
  for (const auto& [k, v] : values) {
    raw('S', k);
    raw('S', v);
  }
  return *this;
}

Digest KeyBuilder::finish() {
  flush();
  return hash_.finish();
}

}  // namespace lf::plan
