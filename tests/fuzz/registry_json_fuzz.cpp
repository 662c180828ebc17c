// Fuzzes what the registry client parses from untrusted peers and users: the first byte picks
// the parser, the rest is its input. WWW-Authenticate challenges, token responses, registry error
// bodies, docker config.json, image references, URLs / Location resolution, and an index's
// platform selection.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/oci/manifest.h"
#include "common/registry/auth.h"
#include "common/registry/http_client.h"
#include "common/registry/image_transfer.h"
#include "common/registry/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace lf::registry;
  switch (data[0] % 7) {
    case 0: {
      auto c = parseChallenges(input);
      if (c.isOk() && c->empty()) __builtin_trap();  // parse promises at least one challenge
      break;
    }
    case 1: {
      auto t = parseTokenResponse(input, std::chrono::steady_clock::now());
      if (t.isOk() && t->token.empty()) __builtin_trap();
      (void)summariseErrorBody(input);
      break;
    }
    case 2: {
      CredentialStore store;
      store.loadDockerConfigJson(input, "fuzz").ignore();  // only crashes matter here
      (void)store.lookup("docker.io");
      break;
    }
    case 3: {
      auto r = Reference::parse(input);
      if (r.isOk()) {
        // Normalisation is idempotent: the printed form parses back to the same reference.
        auto again = Reference::parse(r->toString());
        if (!again.isOk() || !(*again == *r)) __builtin_trap();
      }
      break;
    }
    case 4: {
      auto u = Url::parse(input);
      if (u.isOk()) {
        auto again = Url::parse(u->toString());
        if (!again.isOk() || again->origin() != u->origin()) __builtin_trap();
      }
      break;
    }
    case 5: {
      auto base = Url::parse("https://registry.example:5000/v2/a/b/blobs/uploads/x?y=1");
      (void)base->resolve(input);
      break;
    }
    case 6: {
      auto index = lf::oci::Index::fromJson(input);
      if (index.isOk()) {
        (void)selectPlatform(*index, lf::oci::Platform{"amd64", "linux", "", {}, ""}, "fuzz");
      }
      break;
    }
  }
  return 0;
}
