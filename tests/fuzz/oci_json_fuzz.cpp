// Fuzzes the OCI JSON parsers that read untrusted registry and tarball input: image config,
// manifest and index. Whatever parses must serialise canonically and re-parse to the same value.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/oci/image_config.h"
#include "common/oci/manifest.h"

namespace {

template <typename T>
void roundTrip(std::string_view text) {
  auto parsed = T::fromJson(text);
  if (!parsed.isOk()) {
    return;
  }
  std::string json = parsed->toJson();
  auto again = T::fromJson(json);
  // Output of toJson() must always be accepted and be a fixed point.
  if (!again.isOk() || again->toJson() != json) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  roundTrip<lf::oci::ImageConfig>(text);
  roundTrip<lf::oci::Manifest>(text);
  roundTrip<lf::oci::Index>(text);
  return 0;
}
