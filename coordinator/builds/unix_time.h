#pragma once

// The wall clock in the unit every coordinator record and event uses (Unix milliseconds,
// coordinator/state/state_records.h). One definition for the build manager's files.

#include <chrono>
#include <cstdint>

namespace lf::coordinator {

inline int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace lf::coordinator
