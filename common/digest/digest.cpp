#include "common/digest/digest.h"

#include <openssl/evp.h>

namespace lf {

namespace {
bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
}  // namespace

Result<Digest> Digest::parse(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!text.starts_with(kPrefix)) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) {
      return invalidArgument("invalid digest \"" + std::string(text.substr(0, 80)) +
                             "\": expected sha256:<64 hex characters>");
    }
    return invalidArgument("unsupported digest algorithm \"" +
                           std::string(text.substr(0, std::min<size_t>(colon, 40))) +
                           "\": only sha256 is supported");
  }
  std::string_view hex = text.substr(kPrefix.size());
  if (hex.size() != 64) {
    return invalidArgument("invalid digest \"" + std::string(text.substr(0, 80)) + "\": expected 64 hex characters after sha256:, got " +
                           std::to_string(hex.size()));
  }
  for (char c : hex) {
    if (!isLowerHex(c)) {
      return invalidArgument("invalid digest \"" + std::string(text) +
                             "\": hex must be lowercase 0-9a-f");
    }
  }
  Digest d;
  d.hex_ = std::string(hex);
  return d;
}

Digest Digest::fromSha256Bytes(std::span<const uint8_t, 32> bytes) {
  Digest d;
  d.hex_ = toHex(bytes);
  return d;
}

Digest Digest::sha256Of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  LF_CHECK(ctx_->md != nullptr, "EVP_MD_CTX_new failed (out of memory)");
  LF_CHECK(EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1, "EVP_DigestInit_ex(sha256)");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  // EVP_DigestUpdate only fails on a broken context, which cannot happen after a successful init.
  LF_CHECK(EVP_DigestUpdate(ctx_->md, data, size) == 1, "EVP_DigestUpdate");
}

std::array<uint8_t, 32> Sha256::finishBytes() {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  LF_CHECK(EVP_DigestFinal_ex(ctx_->md, out.data(), &len) == 1 && len == 32, "EVP_DigestFinal_ex");
  return out;
}

Digest Sha256::finish() {
  auto bytes = finishBytes();
  return Digest::fromSha256Bytes(bytes);
}

std::string toHex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace lf
