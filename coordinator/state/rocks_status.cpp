#include "coordinator/state/rocks_status.h"

#include <string>

namespace lf::coordinator {

Status fromRocks(const rocksdb::Status& status, std::string_view context) {
  if (status.ok()) {
    return Status::ok();
  }
  std::string message = std::string(context) + ": " + status.ToString();
  switch (status.code()) {
    case rocksdb::Status::kNotFound:
      return notFound(std::move(message));
    case rocksdb::Status::kCorruption:
      return dataLoss(std::move(message));
    case rocksdb::Status::kInvalidArgument:
      return invalidArgument(std::move(message));
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      return unavailable(std::move(message));
    case rocksdb::Status::kIOError:
      if (status.IsNoSpace()) {
        return resourceExhausted(std::move(message));
      }
      // RocksDB reports a LOCK file held by another process (or another open in this one) as an
      // IOError "lock hold by current process" / "While lock file ...: Resource temporarily
      // unavailable".
      if (message.find("lock") != std::string::npos || message.find("LOCK") != std::string::npos) {
        return failedPrecondition(message + " (is another coordinator using this directory?)");
      }
      return internalError(std::move(message));
    default:
      return internalError(std::move(message));
  }
}

}  // namespace lf::coordinator
