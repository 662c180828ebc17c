// Fuzzes what a worker reads from the coordinator: the JSON form of a StepSpec (parse and
// validate), and user-database files (passwd/group) that come from untrusted images, resolving
// USER and --chown specs against them.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "worker/exec/step_spec.h"
#include "worker/exec/user_db.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = lf::worker::parseStepSpecJson(text, "fuzz");
  if (spec.isOk()) {
    // A valid spec must survive a round trip through its JSON form.
    auto again = lf::worker::parseStepSpecJson(lf::worker::stepSpecToJson(*spec), "again");
    if (!again.isOk()) {
      __builtin_trap();
    }
  }
  lf::worker::UserDatabase db{lf::worker::parsePasswd(text), lf::worker::parseGroup(text)};
  size_t newline = text.find('\n');
  std::string_view user = text.substr(0, newline == std::string_view::npos ? 16 : newline);
  (void)lf::worker::resolveUser(db, user);
  (void)lf::worker::resolveChown(db, user);
  return 0;
}
