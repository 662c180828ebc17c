#pragma once

// Status and Result<T>: how every expected failure travels in layerfarm.
//
// A Status is either ok or carries a code and a human-readable message with the context a user
// needs to act ("Dockerfile:3:1: unknown instruction FORM"). Result<T> holds a value or a non-ok
// Status. Neither throws; foreign errors (errno, rocksdb::Status, boost::system::error_code,
// OpenSSL) are converted once, at the boundary, with the helpers below.

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace lf {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input from a user: Dockerfile, flags, request, config
  kNotFound,          // a named thing does not exist
  kAlreadyExists,     // a thing that must be new exists
  kPermissionDenied,  // the caller may not do this
  kDataLoss,          // stored or received bytes are damaged (digest mismatch, truncation)
  kUnavailable,       // a peer could not be reached; retrying may help
  kDeadlineExceeded,  // an operation ran out of time
  kCancelled,         // the caller cancelled
  kResourceExhausted, // a limit was hit (size, memory, pids)
  kFailedPrecondition,// the system is not in a state where this can run
  kUnimplemented,     // not built yet
  kInternal,          // a bug or an unexpected failure of a dependency
};

std::string_view statusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool isOk() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "invalid argument: Dockerfile:3:1: unknown instruction FORM"
  std::string toString() const;

  // Returns a copy whose message is "<context>: <message>", keeping the code.
  Status withContext(std::string_view context) const;

  // Explicitly drops a status that the caller decided it does not need; say why at the call site.
  void ignore() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status invalidArgument(std::string message);
Status notFound(std::string message);
Status alreadyExists(std::string message);
Status permissionDenied(std::string message);
Status dataLoss(std::string message);
Status unavailable(std::string message);
Status deadlineExceeded(std::string message);
Status cancelled(std::string message);
Status resourceExhausted(std::string message);
Status failedPrecondition(std::string message);
Status unimplemented(std::string message);
Status internalError(std::string message);

// Converts an errno value: "<context>: <strerror>" with a code chosen from the errno
// (ENOENT -> kNotFound, EACCES/EPERM -> kPermissionDenied, ENOSPC -> kResourceExhausted, ...).
Status errnoStatus(int err, std::string_view context);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).isOk() && "a Result must not hold an ok Status");
  }

  bool isOk() const { return v_.index() == 0; }
  explicit operator bool() const { return isOk(); }

  const Status& status() const {
    static const Status kOkStatus;
    return isOk() ? kOkStatus : std::get<Status>(v_);
  }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace lf

#define LF_CONCAT_INNER(a, b) a##b
#define LF_CONCAT(a, b) LF_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not ok.
#define LF_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::lf::Status lf_status_ = (expr);            \
    if (!lf_status_.isOk()) return lf_status_;   \
  } while (false)

// `LF_ASSIGN_OR_RETURN(auto x, makeX());` binds the value or returns the error Status.
#define LF_ASSIGN_OR_RETURN(lhs, expr) \
  LF_ASSIGN_OR_RETURN_IMPL(LF_CONCAT(lf_result_, __LINE__), lhs, expr)
#define LF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.isOk()) return tmp.status();          \
  lhs = std::move(tmp).value()

// For states that cannot be recovered (a broken invariant): logs and aborts, in every build.
#define LF_CHECK(cond, msg)                                        \
  do {                                                             \
    if (!(cond)) ::lf::checkFailed(__FILE__, __LINE__, #cond, msg); \
  } while (false)

namespace lf {
[[noreturn]] void checkFailed(const char* file, int line, const char* cond, std::string_view msg);
}
