#pragma once

// Content digests ("sha256:<64 lowercase hex>") and a streaming SHA-256 over OpenSSL EVP.
//
// Digest is a value type: two digests are equal when their algorithm and hex are. parse() is the
// one place untrusted digest strings (from users, registries, manifests) are validated.
// Sha256 is not thread-safe; use one per stream.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace lf {

class Digest {
 public:
  Digest() = default;

  // Accepts exactly "sha256:" followed by 64 lowercase hex characters.
  static Result<Digest> parse(std::string_view text);
  // The digest of 32 raw SHA-256 bytes.
  static Digest fromSha256Bytes(std::span<const uint8_t, 32> bytes);
  // SHA-256 of a whole buffer, in one call.
  static Digest sha256Of(std::string_view data);

  bool empty() const { return hex_.empty(); }
  const std::string& hex() const { return hex_; }
  std::string_view algorithm() const { return "sha256"; }
  std::string toString() const { return empty() ? std::string() : "sha256:" + hex_; }
  // The first 12 hex characters, as `docker images` shows them.
  std::string shortHex() const { return hex_.substr(0, 12); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::string hex_;
};

// Streaming SHA-256. update() any number of times, then finish() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  std::array<uint8_t, 32> finishBytes();
  Digest finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Lowercase hex of arbitrary bytes.
std::string toHex(std::span<const uint8_t> bytes);

}  // namespace lf

template <>
struct std::hash<lf::Digest> {
  size_t operator()(const lf::Digest& d) const noexcept { return std::hash<std::string>()(d.hex()); }
};
